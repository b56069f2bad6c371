//! The page on measuring: the load client, which has no experiments of its own.

use super::chapter::{Chapter, Example};

pub const LOAD: Example = Example::client(
    "load",
    "the HTTP load client: closed, or open with `--rate` (`--help` explains)",
);

pub const PAGE: Chapter = Chapter::page("Measuring: the load client", "measuring.md", &[LOAD]);
