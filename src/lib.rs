//! The lessons' shared parts, for the book *Event loops versus threads, in Rust*.
//!
//! The examples in `examples/` are the lessons; what they need lives here,
//! once: the route table ([`routes`]), the server command line ([`server`])
//! and defaults ([`defaults`]), HTTP/1.1 on blocking sockets for the
//! hand-written servers ([`blocking`]), the blocking pools ([`pool`]),
//! pre-forked workers ([`prefork`]), the blocking upstream client
//! ([`upstream`]), what servers report of themselves ([`report`]), the load
//! client ([`load`]), child processes and their groups ([`process`]) and the
//! system calls they share ([`sys`]).
//!
//! The book tool (the reproduce run, the served book, doctor) is another
//! crate, `tool/`, built on this one; this crate cannot name it, so the
//! lessons never depend on the tool.

pub mod blocking;
pub mod defaults;
pub mod load;
pub mod pool;
pub mod prefork;
pub mod process;
pub mod report;
pub mod routes;
pub mod server;
pub mod sys;
pub mod upstream;
pub mod uring;
