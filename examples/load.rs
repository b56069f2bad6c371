//! The load client every chapter measures with.
//!
//!     cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8001/sleep?ms=2000'
//!
//! `--help` lists the flags. The engine lives in `src/load/`: this file is its
//! command line, so the reproduce run and this command measure the same way.

fn main() {
    std::process::exit(evt::load::cli::main());
}
