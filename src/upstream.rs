//! Chapter 7's proxies call an upstream server. What both of them share: the
//! answer `/proxy` gives (JSON, or a 502 that says why), and for the blocking
//! proxy a truly blocking HTTP/1.1 client on `std::net`, one kept-alive
//! connection per thread, so no runtime hides behind its threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::load::Target;
use crate::load::http1::{Body, parse_head};
use crate::routes::Reply;

/// What one upstream call came back with.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub status: u16,
    pub bytes: usize,
    pub took: Duration,
}

/// `/proxy`'s answer: the upstream's status, size and time as JSON; a
/// failed call, or an upstream error status, as 502 with the reason.
pub fn proxy_reply(result: Result<Fetched, String>) -> Reply {
    match result {
        Ok(fetched) if fetched.status < 400 => Reply {
            status: 200,
            body: format!(
                "{{\"upstream_status\":{},\"bytes\":{},\"upstream_ms\":{:.3}}}\n",
                fetched.status,
                fetched.bytes,
                fetched.took.as_secs_f64() * 1e3
            ),
        },
        Ok(fetched) => Reply {
            status: 502,
            body: format!("bad gateway: the upstream answered {}\n", fetched.status),
        },
        Err(reason) => Reply {
            status: 502,
            body: format!("bad gateway: {reason}\n"),
        },
    }
}

// ANCHOR: blocking_client
/// A blocking HTTP/1.1 client for one URL, keeping its connection alive
/// between calls. The calling thread waits in `read` for the whole call.
pub struct BlockingUpstream {
    target: Target,
    request: Vec<u8>,
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
}

impl BlockingUpstream {
    pub fn new(url: &str, timeout: Duration) -> Result<BlockingUpstream, String> {
        let target = Target::parse(url)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            target.path_and_query, target.authority
        )
        .into_bytes();
        Ok(BlockingUpstream {
            target,
            request,
            timeout,
            connection: None,
        })
    }

    /// GETs the URL. A kept-alive connection the upstream has closed in the
    /// meantime is retried once on a new one.
    pub fn get(&mut self) -> Result<Fetched, String> {
        let started = Instant::now();
        let reused = self.connection.is_some();
        match self.exchange() {
            Err(_) if reused => {
                self.connection = None;
                self.exchange()
            }
            other => other,
        }
        .map(|(status, bytes)| Fetched {
            status,
            bytes,
            took: started.elapsed(),
        })
        .inspect_err(|_| self.connection = None)
    }

    fn exchange(&mut self) -> Result<(u16, usize), String> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.target.addr)
                .map_err(|error| format!("cannot connect to {}: {error}", self.target.authority))?;
            let _ = stream.set_nodelay(true);
            stream
                .set_read_timeout(Some(self.timeout))
                .map_err(|error| error.to_string())?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().expect("connected above");
        connection
            .get_mut()
            .write_all(&self.request)
            .map_err(|error| format!("cannot send to the upstream: {error}"))?;
        let (status, length, keep_alive) = read_head(connection)?;
        let mut body = vec![0; length];
        connection
            .read_exact(&mut body)
            .map_err(|error| describe_read_error(&error))?;
        if !keep_alive {
            self.connection = None;
        }
        Ok((status, length))
    }
}

/// Reads a response head: status, Content-Length, and whether the
/// connection stays open.
fn read_head(connection: &mut BufReader<TcpStream>) -> Result<(u16, usize, bool), String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let read = connection
            .read_until(b'\n', &mut head)
            .map_err(|error| describe_read_error(&error))?;
        if read == 0 {
            return Err("the upstream closed the connection before answering".into());
        }
        if head.len() > 64 * 1024 {
            return Err("the upstream's answer has over 64 KiB of headers".into());
        }
    }
    let head = parse_head(&head)
        .ok()
        .flatten()
        .ok_or("the upstream's answer is not HTTP/1.1")?;
    match head.body {
        Body::Length(length) => Ok((head.status, length as usize, head.keep_alive)),
        Body::None => Ok((head.status, 0, head.keep_alive)),
        _ => Err("the upstream's answer has no Content-Length".into()),
    }
}
// ANCHOR_END: blocking_client

fn describe_read_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "the upstream did not answer in time".into()
        }
        _ => format!("reading from the upstream failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_upstream_is_a_502_with_the_reason() {
        let mut upstream =
            BlockingUpstream::new("http://127.0.0.1:9/", Duration::from_secs(1)).unwrap();
        let reply = proxy_reply(upstream.get());
        assert_eq!(reply.status, 502);
        assert!(
            reply.body.starts_with("bad gateway: cannot connect"),
            "{}",
            reply.body
        );
        let error = proxy_reply(Ok(Fetched {
            status: 500,
            bytes: 0,
            took: Duration::ZERO,
        }));
        assert_eq!(error.status, 502);
    }
}
