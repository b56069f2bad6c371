//! The book tool of *Event loops versus threads, in Rust*: what
//! `cargo run --release` runs.
//!
//! [`reproduce`] measures every number the book prints and writes its tables;
//! [`serve`] serves the book itself, with a live lab that runs a chapter from
//! its page; [`doctor`] says whether a machine is ready for the book. All of
//! it builds on the lessons' crate, `evt` (the load client, the servers'
//! shared parts), which knows nothing of this one.

use std::path::{Path, PathBuf};

pub mod doctor;
pub mod reproduce;
pub mod serve;

/// The book's top-level directory (the workspace root: `book/`, `examples/`,
/// `src/`), where the run writes `book/generated/` and builds the examples.
pub fn root() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR"));
    tool.parent().unwrap_or(tool).to_path_buf()
}
