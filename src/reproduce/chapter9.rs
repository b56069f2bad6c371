//! Chapter 9, inside the loop: an async runtime by hand (a reactor on mio,
//! a timer heap, a one-thread executor) under the book's server. Its page
//! and experiments are still to come; the example is registered so that
//! every shared server test runs against it.

use super::chapter::{Chapter, Example};
use super::model::Capacity;
use crate::defaults;

pub const RUNTIME: Example = Example::server(
    "chapter9_runtime",
    "the book's server on a hand-written async runtime: mio reactor, timer heap, one-thread executor",
    defaults::CHAPTER9_RUNTIME_PORT,
    Capacity::Unlimited,
);

pub const CHAPTER: Chapter = Chapter {
    examples: &[RUNTIME],
    ..Chapter::planned(9, "Inside the loop")
};
