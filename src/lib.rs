//! Shared plumbing for the book *Event loops versus threads, in Rust*.
//!
//! The examples in `examples/` are the lessons; what they all need lives here,
//! once: the route table ([`routes`]), the server command line ([`server`]),
//! HTTP/1.1 on blocking sockets for the hand-written servers ([`blocking`]),
//! the load client ([`load`]), and the machinery of the reproduce run that
//! writes the book's numbers ([`chapters`], [`model`], [`harness`],
//! [`experiments`], [`sample`], [`generated`], [`charts`]).

pub mod blocking;
pub mod chapters;
pub mod charts;
pub mod experiments;
pub mod generated;
pub mod harness;
pub mod load;
pub mod model;
pub mod pool;
pub mod prefork;
pub mod routes;
pub mod sample;
pub mod server;
pub mod sys;
pub mod upstream;
