//! HTTP/1.1 on a blocking socket: what the book's hand-written blocking
//! servers share. A [`Connection`] reads one request head with `httparse`
//! (hyper's parser), says what it asks for as a [`Route`], and writes one
//! reply. The accept loop and the threads are each chapter's lesson and stay
//! in its example.
//!
//! Every read has a deadline ([`READ_TIMEOUT`]): on a blocking server, a
//! client that connects and sends nothing (a browser's speculative
//! pre-connect does exactly that) would otherwise hold a thread forever.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::routes::{MAX_HEADER_BYTES, Reply, Route};

/// How long a connection may take to send a whole request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body a server reads (and throws away) to keep the
/// connection usable; a larger one is answered and the connection closed.
const MAX_DISCARDED_BODY: u64 = 1024 * 1024;
/// The most headers a request may have before it is answered 431.
const MAX_HEADERS: usize = 64;

/// One request, read and understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub route: Route,
    /// Whether the client may send another request on this connection
    /// (HTTP/1.1 unless it said `Connection: close`; a bad request never).
    pub keep_alive: bool,
}

// ANCHOR: stream
/// What a blocking connection needs of its socket: std's `TcpStream`, or a
/// socket whose reads block only the coroutine that makes them (chapter 14).
pub trait Stream: Read + Write {
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// Reads and throws away whatever the client sent and we did not read,
    /// without waiting for more.
    fn discard_unread(&mut self);
}
// ANCHOR_END: stream

impl Stream for TcpStream {
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn discard_unread(&mut self) {
        if self.set_nonblocking(true).is_ok() {
            let mut sink = [0u8; 4096];
            while let Ok(1..) = self.read(&mut sink) {}
        }
    }
}

/// A client connection on a blocking socket.
pub struct Connection<S: Stream = TcpStream> {
    stream: S,
    buffer: Vec<u8>,
    /// Bytes read but not yet used: `buffer[..filled]`.
    filled: usize,
}

impl<S: Stream> Connection<S> {
    pub fn new(stream: S) -> Connection<S> {
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        Connection {
            stream,
            buffer: vec![0; 1024],
            filled: 0,
        }
    }

    /// Reads the next request. `None` when the client closed the connection,
    /// went silent for [`READ_TIMEOUT`], or broke it: nothing to answer.
    /// A malformed or oversized request is a [`Route`] that answers 400 or 431.
    pub fn next_request(&mut self) -> Option<Request> {
        loop {
            match parse(&self.buffer[..self.filled]) {
                Parsed::Complete {
                    request,
                    head_length,
                    body,
                } => {
                    self.consume(head_length);
                    // Past a 431 we stop reading: the connection closes after the answer.
                    let keep_alive = request.keep_alive
                        && request.route != Route::HeadersTooLarge
                        && self.discard_body(body);
                    return Some(Request {
                        keep_alive,
                        ..request
                    });
                }
                Parsed::Bad(route) => {
                    self.filled = 0;
                    return Some(Request {
                        route,
                        keep_alive: false,
                    });
                }
                Parsed::Partial if self.filled > MAX_HEADER_BYTES => {
                    self.filled = 0;
                    return Some(Request {
                        route: Route::HeadersTooLarge,
                        keep_alive: false,
                    });
                }
                Parsed::Partial => {}
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Sends `reply`; `keep_alive` says whether this connection stays open
    /// for another request (`Connection: keep-alive`) or not (`close`).
    pub fn respond(&mut self, reply: &Reply, keep_alive: bool) -> io::Result<()> {
        self.stream.write_all(&response_bytes(reply, keep_alive))
    }

    /// Closes the connection so that the client reads the whole answer: we
    /// send our FIN first and throw away anything the client had sent that
    /// we did not read (closing with unread bytes would send a reset, and a
    /// reset can destroy the answer before the client reads it).
    pub fn close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.stream.discard_unread();
    }

    /// How long a read may wait: while a request comes in, [`READ_TIMEOUT`];
    /// between requests, a server may allow less (its keep-alive time).
    pub fn set_read_timeout(&self, timeout: Duration) {
        if !timeout.is_zero() {
            let _ = self.stream.set_read_timeout(Some(timeout));
        }
    }

    /// Whether bytes of a next request are already read (a pipelining
    /// client): then there is something to do without waiting for the socket.
    pub fn has_buffered_bytes(&self) -> bool {
        self.filled > 0
    }

    /// Reads more bytes; false when the connection is over.
    fn fill(&mut self) -> bool {
        if self.filled == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        match self.stream.read(&mut self.buffer[self.filled..]) {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.filled += read;
                true
            }
        }
    }

    /// Drops the first `count` buffered bytes, keeping what follows (a
    /// pipelined next request).
    fn consume(&mut self, count: usize) {
        self.buffer.copy_within(count..self.filled, 0);
        self.filled -= count;
    }

    /// Reads and throws away a request body; false if the connection cannot
    /// carry another request after it.
    fn discard_body(&mut self, body: BodyLength) -> bool {
        let mut left = match body {
            BodyLength::Known(length) if length <= MAX_DISCARDED_BODY => length,
            BodyLength::Known(_) | BodyLength::Unframed => return false,
        };
        loop {
            let buffered = (self.filled as u64).min(left);
            self.consume(buffered as usize);
            left -= buffered;
            if left == 0 {
                return true;
            }
            if !self.fill() {
                return false;
            }
        }
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for Connection<TcpStream> {
    /// The socket, for a poller (chapter 2's pool waits on idle connections with poll(2)).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    Known(u64),
    /// Chunked or otherwise encoded: this server does not read it, so the
    /// connection closes after the answer.
    Unframed,
}

/// What the bytes read so far make: a whole request head, not yet one, or
/// something to answer with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Complete {
        request: Request,
        head_length: usize,
        body: BodyLength,
    },
    Partial,
    Bad(Route),
}

/// Parses a request head from the start of `bytes` (shared with chapter 8's
/// hand-written event loop, which reads sockets its own way).
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(Route::HeadersTooLarge),
        Err(error) => {
            return Parsed::Bad(Route::BadRequest(format!(
                "not an HTTP/1.x request ({error})"
            )));
        }
    };
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Parsed::Bad(Route::BadRequest("no request line".into()));
    };
    let mut keep_alive = request.version == Some(1);
    let mut body = BodyLength::Known(0);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = crate::routes::keep_alive_after(header.value, keep_alive);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            body = BodyLength::Unframed;
        } else if header.name.eq_ignore_ascii_case("content-length") && body != BodyLength::Unframed
        {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
            {
                Some(length) => body = BodyLength::Known(length),
                None => return Parsed::Bad(Route::BadRequest("a bad Content-Length".into())),
            }
        }
    }
    Parsed::Complete {
        request: Request {
            route: Route::parse_checked(method, target, head_length),
            keep_alive,
        },
        head_length,
        body,
    }
}

/// A whole HTTP/1.1 response: status line, headers and body, with
/// `Connection: keep-alive` or `close`.
pub fn response_bytes(reply: &Reply, keep_alive: bool) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {}\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(reply.body.as_bytes());
    bytes
}

/// The reason phrase for the statuses the book's routes answer with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn heads_are_parsed_into_routes() {
        let Parsed::Complete {
            request,
            head_length,
            body,
        } = parse(b"GET /sleep?ms=5 HTTP/1.1\r\nHost: x\r\n\r\nNEXT")
        else {
            panic!("a whole head");
        };
        assert_eq!(request.route, Route::Sleep(Duration::from_millis(5)));
        assert!(request.keep_alive);
        assert_eq!((head_length, body), (37, BodyLength::Known(0)));
        let close = parse(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(matches!(close, Parsed::Complete { request, .. } if !request.keep_alive));
        let old = parse(b"GET / HTTP/1.0\r\n\r\n");
        assert!(matches!(old, Parsed::Complete { request, .. } if !request.keep_alive));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHo"), Parsed::Partial);
        assert!(matches!(
            parse(b"\x00\x01 nonsense\r\n\r\n"),
            Parsed::Bad(Route::BadRequest(_))
        ));
        let chunked = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(
            chunked,
            Parsed::Complete {
                body: BodyLength::Unframed,
                ..
            }
        ));
    }

    /// A real socket pair: what the client writes, the server's Connection reads.
    fn pair(client_sends: &'static [u8]) -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(client_sends).unwrap();
        let (server, _) = listener.accept().unwrap();
        (Connection::new(server), client)
    }

    #[test]
    fn pipelined_requests_and_bodies_are_read_in_turn() {
        let (mut connection, _client) = pair(
            b"POST /nope HTTP/1.1\r\nContent-Length: 5\r\n\r\nHELLOGET /activer HTTP/1.1\r\n\r\n",
        );
        let first = connection.next_request().unwrap();
        assert_eq!((first.route, first.keep_alive), (Route::NotFound, true));
        let second = connection.next_request().unwrap();
        assert_eq!(second.route, Route::Activer);
    }

    #[test]
    fn oversized_heads_are_431_and_close() {
        let big: &'static [u8] = Box::leak(
            format!(
                "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
                "a".repeat(MAX_HEADER_BYTES + 10)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (mut connection, _client) = pair(big);
        let request = connection.next_request().unwrap();
        assert_eq!(request.route, Route::HeadersTooLarge);
        assert!(!request.keep_alive);
    }

    #[test]
    fn replies_say_their_length_and_whether_the_connection_stays() {
        let (mut connection, mut client) = pair(b"GET / HTTP/1.1\r\n\r\n");
        let request = connection.next_request().unwrap();
        connection.respond(&request.route.reply(), false).unwrap();
        connection.close();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(
            answer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 6\r\nConnection: close\r\n\r\nHello\n"
        );
    }

    #[test]
    fn a_client_that_leaves_is_nothing_to_answer() {
        let (mut connection, client) = pair(b"GET / HT");
        drop(client);
        assert_eq!(connection.next_request(), None);
    }
}
