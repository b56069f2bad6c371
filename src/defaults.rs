//! What an example starts with by default and the reproduce run must know
//! too, stated once: each example takes its default port (and the flag
//! defaults that fix how many requests it serves at once) from here, and the
//! book's chapter list reads the same constants.

/// Chapter 1: one blocking thread on `std::net`.
pub const CHAPTER1_BLOCKING_PORT: u16 = 8001;
/// Chapter 1: the same loop on tiny_http.
pub const CHAPTER1_TINY_HTTP_PORT: u16 = 8011;

/// Chapter 2: pre-forked workers × threads.
pub const CHAPTER2_THREADS_PORT: u16 = 8002;
/// Chapter 2: worker processes by default.
pub const CHAPTER2_WORKERS: u16 = 1;
/// Chapter 2: threads per worker by default.
pub const CHAPTER2_THREADS: u16 = 4;

/// Chapter 3: axum on one tokio thread.
pub const CHAPTER3_ASYNC_PORT: u16 = 8003;
/// Chapter 4: chapter 3's server with the wait done four ways.
pub const CHAPTER4_BLOCKING_PORT: u16 = 8004;
/// Chapter 5: tide on async-std.
pub const CHAPTER5_ASYNC_STD_PORT: u16 = 8005;
/// Chapter 5: hyper on smol.
pub const CHAPTER5_SMOL_PORT: u16 = 8006;

/// Chapter 7: the proxy.
pub const CHAPTER7_PROXY_PORT: u16 = 8007;
/// Chapter 7: worker processes by default (seed 004's gunicorn had two).
pub const CHAPTER7_WORKERS: u16 = 2;
/// Chapter 7: threads per worker with `--model threads`, by default.
pub const CHAPTER7_POOL: u16 = 10;

/// Chapter 8: a thread started for every connection.
pub const CHAPTER8_THREADS_PORT: u16 = 8018;
/// Chapter 8: the hand-written event loop.
pub const CHAPTER8_MINIMAL_LOOP_PORT: u16 = 8008;

/// Chapter 9: the book's server on a hand-written async runtime.
pub const CHAPTER9_RUNTIME_PORT: u16 = 8009;

/// Chapter 11: one server, every core, four ways.
pub const CHAPTER11_CORES_PORT: u16 = 8010;
/// Chapter 12's server with its overload controls.
pub const CHAPTER12_OVERLOAD_PORT: u16 = 8012;

/// Chapter 13: the hand-written loop on completions (io_uring).
pub const CHAPTER13_URING_PORT: u16 = 8013;
/// Chapter 13: chapter 9's handler on monoio (io_uring underneath).
pub const CHAPTER13_MONOIO_PORT: u16 = 8033;
/// Chapter 14: chapter 8's blocking code on stackful coroutines (may).
pub const CHAPTER14_COROUTINES_PORT: u16 = 8014;
/// Chapter 14's peer: Go's net/http, where go is installed.
pub const CHAPTER14_GO_PORT: u16 = 8034;
