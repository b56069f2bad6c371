//! may's socket as the book's blocking connection code wants it
//! (chapter 14 and its exercise): its reads and writes block the
//! coroutine, not the thread.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use evt::blocking::Stream;

// ANCHOR: stream
/// may's socket, as the blocking connection code wants it: its reads and
/// writes block the coroutine, not the thread.
pub struct Coroutined(pub may::net::TcpStream);

impl Read for Coroutined {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read(buffer)
    }
}

impl Write for Coroutined {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for Coroutined {
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.set_nodelay(on)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }
    fn discard_unread(&mut self) {
        // The socket underneath is non-blocking (may's reads wait on epoll):
        // read it directly until it is empty.
        let mut sink = [0u8; 1024];
        while let Ok(1..) = self.0.inner().read(&mut sink) {}
    }
}
// ANCHOR_END: stream
