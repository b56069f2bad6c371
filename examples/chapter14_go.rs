//! Chapter 14's peer from another language: Go's net/http, where go is
//! installed.
//!
//!     cargo run --release --example chapter14_go
//!
//! Builds `peers/go/main.go` (the book's routes on net/http, a goroutine per
//! connection) with the machine's `go` into `target/`, then becomes that
//! server, flags and all, so that whoever started this process (a reader,
//! the reproduce run's sampler) is looking at Go's server itself. Without
//! `go`, one line says how to install it, and the example exits with
//! status 2.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target").join("go-peer");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(root.join("peers").join("go"))
        .status();
    match built {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("error: `go build` in peers/go failed ({status})");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!(
                "error: go is not installed here: apt-get install golang-go, dnf install golang, \
                 brew install go, or https://go.dev/dl"
            );
            std::process::exit(2);
        }
    }
    // Become the Go server: same process, so its memory and threads are what
    // a sampler of this process reads.
    let error = Command::new(&binary)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("error: cannot start {}: {error}", binary.display());
    std::process::exit(1);
}
