//! The load engine every chapter measures with, split by concern as oha is:
//! [`target`] (the URL), [`shared`] (what a run's threads share: its
//! configuration, stop rule and tickets), [`engine`] (a run: its threads),
//! [`schedule`] (when an open run's requests fall due), [`connection`] (one
//! connection's loop), [`http1`] (the protocol on one
//! connection), [`record`] (what is
//! measured), [`report`] (printing it) and [`cli`] (the `load` command line).

pub mod cli;
pub mod connection;
pub mod engine;
pub mod http1;
pub mod record;
pub mod report;
pub mod schedule;
pub mod shared;
pub mod target;

pub use engine::{LoadConfig, LoadRun, Stop, run};
pub use record::{ErrorKind, Results};
pub use report::Summary;
pub use target::Target;
