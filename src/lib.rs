//! Shared plumbing for the book *Event loops versus threads, in Rust*.
//!
//! The examples in `examples/` are the lessons; what they need lives here,
//! once: the route table ([`routes`]), the server command line ([`server`])
//! and defaults ([`defaults`]), HTTP/1.1 on blocking sockets for the
//! hand-written servers ([`blocking`]), the blocking pools ([`pool`]),
//! pre-forked workers ([`prefork`]), the blocking upstream client
//! ([`upstream`]), what servers report of themselves ([`report`]), the load
//! client ([`load`]) and the system calls they share ([`sys`]); and
//! whether a machine is ready for the book ([`doctor`]).
//!
//! [`reproduce`] is the other side: the reproduce run that measures every
//! number the book prints and writes its tables. It builds on the lesson
//! side; no example imports it. [`serve`] serves the book itself, with a
//! live lab that runs a chapter from its page.

pub mod blocking;
pub mod defaults;
pub mod doctor;
pub mod load;
pub mod pool;
pub mod prefork;
pub mod report;
pub mod reproduce;
pub mod routes;
pub mod serve;
pub mod server;
pub mod sys;
pub mod upstream;
