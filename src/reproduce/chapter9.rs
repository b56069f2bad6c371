//! Chapter 9, inside the loop: an async runtime by hand (a reactor on mio,
//! a timer heap, a one-thread executor) under the book's server, and what a
//! switch costs between threads and between tasks. Its page and experiments
//! are still to come; the examples are registered so that every shared
//! server test runs against the runtime.

use super::chapter::{Chapter, Example};
use super::model::Capacity;
use crate::defaults;

pub const RUNTIME: Example = Example::server(
    "chapter9_runtime",
    "the book's server on a hand-written async runtime: mio reactor, timer heap, one-thread executor",
    defaults::CHAPTER9_RUNTIME_PORT,
    Capacity::Unlimited,
);

pub const SWITCH: Example = Example::client(
    "chapter9_switch",
    "what a switch, a start and a waiting worker cost, threads against tokio tasks (a brigade)",
);

pub const CHAPTER: Chapter = Chapter {
    examples: &[RUNTIME, SWITCH],
    ..Chapter::planned(9, "Inside the loop")
};
