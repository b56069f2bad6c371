//! Slow clients (slowloris): connections that send half a request head and
//! then wait, holding whatever the server gives each connection, while an
//! experiment's loads measure what the other clients see.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The half of a request head they send: no blank line, so the head never
/// ends.
pub const HALF_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";

/// How long one connect may take before the slow client gives it up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the held connections are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// What an experiment asks for: `connections` slow clients, starting
/// `after` the experiment began, holding for `hold`, then leaving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowClients {
    pub connections: usize,
    pub after: Duration,
    pub hold: Duration,
}

/// What the slow clients saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRecord {
    pub connections: usize,
    /// Connections opened (a refused or timed-out connect is not).
    pub opened: usize,
    /// Seconds after the experiment began: the slow clients started, and
    /// left.
    pub started_s: f64,
    pub left_s: f64,
    /// Connections the server closed while they were held (a read timeout).
    pub closed_by_server: usize,
    /// When the server closed the first of them, in seconds after they
    /// were opened (None: it closed none).
    pub first_closed_after_s: Option<f64>,
}

impl SlowClients {
    /// Opens the connections to `addr`, sends each half a head, holds them,
    /// then closes them. `began` is when the experiment began.
    pub fn run(self, addr: SocketAddr, began: Instant) -> SlowRecord {
        std::thread::sleep(self.after.saturating_sub(began.elapsed()));
        let started = began.elapsed();
        let mut held: Vec<TcpStream> = (0..self.connections)
            .filter_map(|_| {
                let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok()?;
                stream.write_all(HALF_HEAD).ok()?;
                stream.set_nonblocking(true).ok()?;
                Some(stream)
            })
            .collect();
        let opened = held.len();
        let opened_at = Instant::now();
        let mut closed_by_server = 0;
        let mut first_closed_after_s = None;
        let until = opened_at + self.hold;
        while Instant::now() < until {
            std::thread::sleep(LOOK_EVERY.min(until.saturating_duration_since(Instant::now())));
            let before = held.len();
            held.retain_mut(still_open);
            if held.len() < before {
                closed_by_server += before - held.len();
                first_closed_after_s.get_or_insert(opened_at.elapsed().as_secs_f64());
            }
        }
        drop(held);
        SlowRecord {
            connections: self.connections,
            opened,
            started_s: started.as_secs_f64(),
            left_s: began.elapsed().as_secs_f64(),
            closed_by_server,
            first_closed_after_s,
        }
    }
}

/// A held connection the server has not closed: a read finds nothing yet.
/// Anything it answers (a 408, a 400) also means it is done with it.
fn still_open(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 512];
    match stream.read(&mut byte) {
        Err(error) => error.kind() == ErrorKind::WouldBlock,
        // Closed (0 bytes) or answered (any bytes): done with it either way.
        Ok(_read) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn slow_clients_see_which_connections_the_server_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // A server that reads each head until it has waited 200 ms, then
        // closes the connection, as a read timeout would.
        let server = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for _ in 0..3 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut head = vec![0u8; HALF_HEAD.len()];
                stream.read_exact(&mut head).unwrap();
                assert_eq!(head, HALF_HEAD);
                connections.push(stream);
            }
            std::thread::sleep(Duration::from_millis(200));
            connections.truncate(1); // two closed, one still held
            std::thread::sleep(Duration::from_secs(1));
        });
        let record = SlowClients {
            connections: 3,
            after: Duration::ZERO,
            hold: Duration::from_millis(900),
        }
        .run(addr, Instant::now());
        assert_eq!(record.opened, 3);
        assert_eq!(record.closed_by_server, 2);
        let first = record.first_closed_after_s.expect("two were closed");
        assert!(first >= 0.2, "{first}");
        assert!(record.left_s >= 0.9);
        server.join().unwrap();
    }
}
