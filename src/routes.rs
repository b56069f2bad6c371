//! The routes every server in this book answers, defined once.
//!
//! A server turns a request's method and target into a [`Route`], waits for
//! [`Route::delay`] in its own way (that is what each chapter is about: a
//! blocking sleep, an `.await`, a thread pool) and then sends [`Route::reply`].
//!
//! | request             | answer                                            |
//! |---------------------|---------------------------------------------------|
//! | `GET /`             | `Hello` at once                                   |
//! | `GET /sleep?ms=N`   | waits N ms (default 2000), then answers           |
//! | `GET /sleeper?ms=N` | waits N ms (default 10000): seed 001's slow route |
//! | `GET /activer`      | at once: seed 001's fast route                    |
//! | `GET /work?us=N`    | spends N µs of CPU (default 200) computing the answer, on the thread that answers |
//! | `GET /proxy`        | a proxy (chapter 7) calls its upstream once and answers JSON; 404 elsewhere |
//! | `GET /report`       | what the server measures of itself, as JSON (chapter 2: connections per worker; chapter 4: the loop's lag); 404 where it keeps nothing |
//! | anything else       | 404; a bad `ms` or `us` is 400; a method other than GET 405 |

use std::time::Duration;

/// The longest wait a client may ask for, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;
/// `/sleep` without `ms=`: the 2 s of seed 000.
pub const DEFAULT_SLEEP_MS: u64 = 2_000;
/// `/sleeper` without `ms=`: the 10 s of seed 001.
pub const DEFAULT_SLEEPER_MS: u64 = 10_000;
/// `/work` without `us=`: 200 µs of CPU, far more than a client spends.
pub const DEFAULT_WORK_US: u64 = 200;
/// The most CPU one request may ask for: one second.
pub const MAX_WORK_US: u64 = 1_000_000;
/// The most bytes of request line and headers a server accepts before it
/// answers 431 (what nginx and most servers allow).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// hyper's smallest read buffer: `max_buf_size` below it panics. The hyper
/// servers pass [`MAX_HEADER_BYTES`] as their `max_buf_size`, so it may not
/// go lower: this stops the build rather than a server.
pub const HYPER_MIN_BUF_SIZE: usize = 8192;
const _: () = assert!(
    MAX_HEADER_BYTES >= HYPER_MIN_BUF_SIZE,
    "MAX_HEADER_BYTES is hyper's max_buf_size, which panics below 8192"
);

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`
    Hello,
    /// `GET /sleep?ms=N`
    Sleep(Duration),
    /// `GET /sleeper?ms=N`
    Sleeper(Duration),
    /// `GET /activer`
    Activer,
    /// `GET /work?us=N`: N µs of CPU to compute the answer (chapter 11).
    Work(Duration),
    /// `GET /proxy`: a proxy calls its upstream; servers without one answer 404.
    Proxy,
    /// `GET /report`: what this server measures of itself. The servers that
    /// keep something answer it themselves; the rest answer 404.
    Report,
    /// A path this book's servers do not have.
    NotFound,
    /// A method other than GET.
    MethodNotAllowed,
    /// A known path with a bad query; the text says what is wrong.
    BadRequest(String),
    /// Request line and headers over [`MAX_HEADER_BYTES`].
    HeadersTooLarge,
}

/// The status and body a route answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Route {
    /// Reads a request line's method and target (`/sleep?ms=100`).
    pub fn parse(method: &str, target: &str) -> Route {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let route = match path {
            "/" => Route::Hello,
            "/activer" => Route::Activer,
            "/report" => Route::Report,
            "/proxy" => Route::Proxy,
            "/sleep" => match delay_from_query(query, DEFAULT_SLEEP_MS) {
                Ok(delay) => Route::Sleep(delay),
                Err(reason) => return Route::BadRequest(reason),
            },
            "/sleeper" => match delay_from_query(query, DEFAULT_SLEEPER_MS) {
                Ok(delay) => Route::Sleeper(delay),
                Err(reason) => return Route::BadRequest(reason),
            },
            "/work" => match work_from_query(query) {
                Ok(work) => Route::Work(work),
                Err(reason) => return Route::BadRequest(reason),
            },
            _ => Route::NotFound,
        };
        if method != "GET" && route != Route::NotFound {
            return Route::MethodNotAllowed;
        }
        route
    }

    /// Like [`Route::parse`], for servers that read the whole header block
    /// themselves and so must check its size (`header_bytes`) here.
    pub fn parse_checked(method: &str, target: &str, header_bytes: usize) -> Route {
        if header_bytes > MAX_HEADER_BYTES {
            return Route::HeadersTooLarge;
        }
        Route::parse(method, target)
    }

    /// How long this route waits before answering, if at all.
    pub fn delay(&self) -> Option<Duration> {
        match self {
            Route::Sleep(delay) | Route::Sleeper(delay) => Some(*delay),
            _ => None,
        }
    }

    /// The answer, once the delay is over. For `/work`, computing it takes
    /// the CPU time asked for, on the thread that calls this: a handler that
    /// computes, as real ones do.
    pub fn reply(&self) -> Reply {
        let (status, body) = match self {
            Route::Work(work) => (
                200,
                format!("worked {} µs: {:x}\n", work.as_micros(), spend_cpu(*work)),
            ),
            Route::Hello => (200, "Hello\n".to_string()),
            Route::Activer => (200, "activer: at once\n".to_string()),
            Route::Sleep(delay) => (200, format!("slept {} ms\n", delay.as_millis())),
            Route::Sleeper(delay) => (200, format!("sleeper: slept {} ms\n", delay.as_millis())),
            Route::Report => (404, "this server keeps no report\n".to_string()),
            Route::Proxy => (404, "this server has no upstream\n".to_string()),
            Route::NotFound => (
                404,
                "not found: try /, /sleep?ms=N, /work?us=N, /sleeper or /activer\n".to_string(),
            ),
            Route::MethodNotAllowed => (405, "method not allowed: only GET\n".to_string()),
            Route::BadRequest(reason) => (400, format!("bad request: {reason}\n")),
            Route::HeadersTooLarge => (
                431,
                format!("request header fields too large: at most {MAX_HEADER_BYTES} bytes\n"),
            ),
        };
        Reply { status, body }
    }
}

/// What a `Connection` header's value says of keeping the connection open:
/// `close` ends it, `keep-alive` keeps it, anything else leaves `current`.
/// Servers read it off requests and the load client off responses.
pub fn keep_alive_after(connection_header: &[u8], current: bool) -> bool {
    let mut keep_alive = current;
    for token in connection_header.split(|&byte| byte == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            keep_alive = false;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            keep_alive = true;
        }
    }
    keep_alive
}

fn work_from_query(query: &str) -> Result<Duration, String> {
    let mut us = DEFAULT_WORK_US;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "us" {
            continue;
        }
        us = value
            .parse::<u64>()
            .map_err(|_| format!("us must be a whole number of microseconds, got {value:?}"))?;
        if us > MAX_WORK_US {
            return Err(format!("us must be at most {MAX_WORK_US}, got {us}"));
        }
    }
    Ok(Duration::from_micros(us))
}

// ANCHOR: cpu
/// Hashes until this thread has used `work` of CPU time: real work, which
/// no scheduler can overlap with other work on the same core. Returns the
/// hash, so the compiler cannot skip it.
pub fn spend_cpu(work: Duration) -> u64 {
    let start = crate::sys::thread_cpu_time();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    while crate::sys::thread_cpu_time() - start < work {
        for byte in 0..=255u8 {
            // FNV-1a, 256 rounds between clock reads.
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    std::hint::black_box(hash)
}
// ANCHOR_END: cpu

fn delay_from_query(query: &str, default_ms: u64) -> Result<Duration, String> {
    let mut ms = default_ms;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "ms" {
            continue;
        }
        ms = value
            .parse::<u64>()
            .map_err(|_| format!("ms must be a whole number of milliseconds, got {value:?}"))?;
        if ms > MAX_DELAY_MS {
            return Err(format!("ms must be at most {MAX_DELAY_MS}, got {ms}"));
        }
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_asks_for_cpu_and_spends_at_least_that_much() {
        assert_eq!(
            Route::parse("GET", "/work"),
            Route::Work(Duration::from_micros(DEFAULT_WORK_US))
        );
        assert_eq!(
            Route::parse("GET", "/work?us=500"),
            Route::Work(Duration::from_micros(500))
        );
        for bad in ["/work?us=lots", "/work?us=-1", "/work?us=1000001"] {
            assert!(
                matches!(Route::parse("GET", bad), Route::BadRequest(_)),
                "{bad}"
            );
        }
        assert_eq!(Route::parse("POST", "/work"), Route::MethodNotAllowed);
        // Thread CPU time only grows while this thread runs: a lower bound
        // however busy the machine.
        let before = crate::sys::thread_cpu_time();
        let reply = Route::Work(Duration::from_millis(20)).reply();
        assert!(crate::sys::thread_cpu_time() - before >= Duration::from_millis(20));
        assert_eq!(reply.status, 200);
        assert!(reply.body.starts_with("worked 20000 µs"), "{}", reply.body);
    }

    #[test]
    fn parses_every_route() {
        assert_eq!(Route::parse("GET", "/"), Route::Hello);
        assert_eq!(Route::parse("GET", "/activer"), Route::Activer);
        assert_eq!(
            Route::parse("GET", "/sleep"),
            Route::Sleep(Duration::from_millis(2000))
        );
        assert_eq!(
            Route::parse("GET", "/sleep?ms=150"),
            Route::Sleep(Duration::from_millis(150))
        );
        assert_eq!(
            Route::parse("GET", "/sleeper"),
            Route::Sleeper(Duration::from_secs(10))
        );
        assert_eq!(
            Route::parse("GET", "/sleeper?x=1&ms=0"),
            Route::Sleeper(Duration::ZERO)
        );
        assert_eq!(Route::parse("GET", "/nope"), Route::NotFound);
        assert_eq!(Route::parse("POST", "/"), Route::MethodNotAllowed);
        assert_eq!(Route::parse("POST", "/nope"), Route::NotFound);
        assert_eq!(Route::parse_checked("GET", "/", 100), Route::Hello);
        let huge = Route::parse_checked("GET", "/", MAX_HEADER_BYTES + 1);
        assert_eq!(huge.reply().status, 431);
    }

    #[test]
    fn bad_delays_are_400_with_a_reason() {
        for target in [
            "/sleep?ms=abc",
            "/sleep?ms=-1",
            "/sleep?ms=60001",
            "/sleeper?ms=",
        ] {
            let reply = Route::parse("GET", target).reply();
            assert_eq!(reply.status, 400, "{target}");
            assert!(
                reply.body.starts_with("bad request: ms must be"),
                "{target}"
            );
        }
        assert_eq!(
            Route::parse("GET", "/sleep?ms=60000").delay(),
            Some(Duration::from_secs(60))
        );
    }
}
