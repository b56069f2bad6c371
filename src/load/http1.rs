//! The client side of HTTP/1.1, as little of it as a load client needs: write
//! a request prepared once as bytes, read one whole response, and know whether
//! the connection can carry the next one.
//!
//! Why not hyper's client? It is excellent and general, and general costs:
//! measured here it spent about three times wrk's user-space CPU per request,
//! on a machine the client shares with the server it measures. This module
//! parses with `httparse` (hyper's own parser) and frames bodies by
//! Content-Length, chunked encoding or connection close, discarding them as
//! they stream past.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes of status line and headers accepted in a response.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers accepted in a response.
const MAX_HEADERS: usize = 100;
/// Read buffer size: one read usually takes a whole small response.
const READ_BUFFER: usize = 16 * 1024;

/// A GET request serialised once, sent many times.
#[derive(Debug, Clone)]
pub struct RequestBytes(Vec<u8>);

impl RequestBytes {
    /// `GET path_and_query HTTP/1.1` with `Host`, and `Connection: close` when not keeping alive.
    pub fn get(path_and_query: &str, authority: &str, keepalive: bool) -> RequestBytes {
        let connection = if keepalive {
            ""
        } else {
            "Connection: close\r\n"
        };
        RequestBytes(
            format!(
                "GET {path_and_query} HTTP/1.1\r\nHost: {authority}\r\n\
                 User-Agent: evt-load/0.1\r\n{connection}\r\n"
            )
            .into_bytes(),
        )
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A response, once its last byte has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Whether the connection can carry another request.
    pub reusable: bool,
}

/// Why an exchange did not produce a response.
#[derive(Debug)]
pub enum ExchangeError {
    /// A reused connection was closed or reset before any byte of the response:
    /// the server let an idle keep-alive connection go. Safe to retry elsewhere.
    Stale(io::Error),
    /// The socket failed.
    Io(io::Error),
    /// The connection closed in the middle of a response.
    Closed(&'static str),
    /// The bytes were not an HTTP/1.x response.
    BadResponse(String),
}

/// One client connection and its read buffer.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// Responses read on this connection so far.
    responses: u64,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            responses: 0,
        })
    }

    /// Whether the server still has this connection open: nothing to read
    /// yet means open; end of stream (or an error) means it was closed.
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(error) => error.kind() == io::ErrorKind::WouldBlock,
            Ok(0) => false,
            // Bytes nobody asked for: open, if odd.
            Ok(_) => true,
        }
    }

    /// Sends `request` and reads the whole response to it.
    pub async fn exchange(&mut self, request: &RequestBytes) -> Result<Response, ExchangeError> {
        let reused = self.responses > 0;
        if let Err(error) = self.stream.write_all(request.as_bytes()).await {
            return Err(if reused {
                ExchangeError::Stale(error)
            } else {
                ExchangeError::Io(error)
            });
        }
        let response = self.read_response(reused).await?;
        self.responses += 1;
        Ok(response)
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buffer.len() {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // A head that does not fit: grow, within MAX_HEAD_BYTES (checked by the caller).
                self.buffer.resize(self.buffer.len() * 2, 0);
            }
        }
        let read = self.stream.read(&mut self.buffer[self.end..]).await?;
        self.end += read;
        Ok(read > 0)
    }

    // ANCHOR: read_response
    async fn read_response(&mut self, reused: bool) -> Result<Response, ExchangeError> {
        let mut received_any = false;
        loop {
            // The head: status line and headers.
            let head = loop {
                match parse_head(&self.buffer[self.start..self.end]) {
                    Ok(Some(head)) => break head,
                    Ok(None) if self.end - self.start > MAX_HEAD_BYTES => {
                        return Err(ExchangeError::BadResponse(format!(
                            "response headers over {MAX_HEAD_BYTES} bytes"
                        )));
                    }
                    Ok(None) => {}
                    Err(message) => return Err(ExchangeError::BadResponse(message)),
                }
                match self.fill().await {
                    Ok(true) => received_any = true,
                    Ok(false) if !received_any && reused => {
                        return Err(ExchangeError::Stale(io::ErrorKind::UnexpectedEof.into()));
                    }
                    Ok(false) => {
                        return Err(ExchangeError::Closed(
                            "connection closed before a whole response arrived",
                        ));
                    }
                    Err(error) if !received_any && reused => {
                        return Err(ExchangeError::Stale(error));
                    }
                    Err(error) => return Err(ExchangeError::Io(error)),
                }
            };
            // The check above sees only a partial head; a whole one read in a
            // single large read must keep to the limit too.
            if head.length > MAX_HEAD_BYTES {
                return Err(ExchangeError::BadResponse(format!(
                    "response headers over {MAX_HEAD_BYTES} bytes"
                )));
            }
            self.start += head.length;
            // 1xx responses are interim: the real one follows.
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            let reusable = head.keep_alive && head.status != 101;
            match head.body {
                Body::None => {}
                Body::Length(length) => self.skip(length).await?,
                Body::Chunked => self.skip_chunked().await?,
                Body::UntilClose => {
                    while self.discard_and_fill().await? {}
                    return Ok(Response {
                        status: head.status,
                        reusable: false,
                    });
                }
            }
            return Ok(Response {
                status: head.status,
                reusable,
            });
        }
    }
    // ANCHOR_END: read_response

    /// Drops what is buffered and reads more; `Ok(false)` at end of stream.
    async fn discard_and_fill(&mut self) -> Result<bool, ExchangeError> {
        self.start = self.end;
        self.fill().await.map_err(ExchangeError::Io)
    }

    /// Skips `length` bytes of body.
    async fn skip(&mut self, mut length: u64) -> Result<(), ExchangeError> {
        loop {
            let buffered = (self.end - self.start) as u64;
            if buffered >= length {
                self.start += length as usize;
                return Ok(());
            }
            length -= buffered;
            if !self.discard_and_fill().await? {
                return Err(ExchangeError::Closed(
                    "connection closed in the middle of a body",
                ));
            }
        }
    }

    /// Skips a chunked body, trailers included.
    async fn skip_chunked(&mut self) -> Result<(), ExchangeError> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buffer[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(ExchangeError::BadResponse("bad chunk size".into())),
                }
                if self.end - self.start > MAX_HEAD_BYTES {
                    return Err(ExchangeError::BadResponse(
                        "chunk size line too long".into(),
                    ));
                }
                if !self.fill().await.map_err(ExchangeError::Io)? {
                    return Err(ExchangeError::Closed(
                        "connection closed in the middle of a body",
                    ));
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            // The chunk's data and the CRLF after it.
            let with_crlf = size
                .checked_add(2)
                .ok_or_else(|| ExchangeError::BadResponse("bad chunk size".into()))?;
            self.skip(with_crlf).await?;
        }
    }

    /// After the last chunk: trailer lines up to an empty one.
    async fn skip_trailers(&mut self) -> Result<(), ExchangeError> {
        loop {
            let unread = &self.buffer[self.start..self.end];
            if let Some(line_end) = unread.windows(2).position(|pair| pair == b"\r\n") {
                self.start += line_end + 2;
                if line_end == 0 {
                    return Ok(());
                }
                continue;
            }
            if unread.len() > MAX_HEAD_BYTES {
                return Err(ExchangeError::BadResponse("trailers too long".into()));
            }
            if !self.fill().await.map_err(ExchangeError::Io)? {
                return Err(ExchangeError::Closed("connection closed in the trailers"));
            }
        }
    }
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response's status line and headers, as far as a client needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of status line and headers.
    pub length: usize,
    pub body: Body,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// Parses a response head; `Ok(None)` when more bytes are needed. The one
/// reader of response heads: the load client's, the blocking upstream
/// client's and the reproduce run's.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("not an HTTP/1.x response ({error})")),
    };
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let mut keep_alive = http11;
    let mut content_length = None;
    let mut encoded = false;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or("a Content-Length that is not a number")?;
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = header
                .value
                .split(|&byte| byte == b',')
                .next_back()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = crate::routes::keep_alive_after(header.value, keep_alive);
        }
    }
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Body::None
    } else if chunked {
        Body::Chunked
    } else if encoded {
        // Encoded, but not chunked last: only the connection's end ends the
        // body, and Content-Length does not count (RFC 9112 §6.3).
        keep_alive = false;
        Body::UntilClose
    } else if let Some(length) = content_length {
        Body::Length(length)
    } else {
        Body::UntilClose
    };
    Ok(Some(Head {
        status,
        length,
        body,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_say_how_the_body_ends() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.status, head.body, head.keep_alive),
            (200, Body::Length(5), true)
        );
        assert_eq!(head.length, 38);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse_head(chunked).unwrap().unwrap().body, Body::Chunked);
        let closing = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n";
        let head = parse_head(closing).unwrap().unwrap();
        assert_eq!((head.body, head.keep_alive), (Body::UntilClose, false));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!parse_head(old).unwrap().unwrap().keep_alive);
        // A final coding other than chunked: the body ends when the connection
        // does, whatever Content-Length says (RFC 9112 §6.3).
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n";
        let head = parse_head(gzip).unwrap().unwrap();
        assert_eq!((head.body, head.keep_alive), (Body::UntilClose, false));
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_head(empty).unwrap().unwrap().body, Body::None);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert!(parse_head(b"this is not HTTP\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn requests_are_prepared_once() {
        let request = RequestBytes::get("/sleep?ms=5", "127.0.0.1:8001", false);
        let text = String::from_utf8(request.as_bytes().to_vec()).unwrap();
        assert!(text.starts_with("GET /sleep?ms=5 HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }
}
