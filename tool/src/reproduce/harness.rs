//! Starting the book's example servers as their own processes, the way a
//! reader does in a second terminal, and stopping them again.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use evt::load::http1::parse_head;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a server may take to print `listening on` before it counts as failed.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The directory the running program's build profile puts examples in
/// (`target/release/examples` for `cargo run --release`).
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live one level down, in `deps/`.
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    dir.join("examples")
}

/// The book's examples not yet built in [`examples_dir`]: a run that finds
/// any must build them before it measures.
pub fn unbuilt_examples() -> Vec<&'static str> {
    let dir = examples_dir();
    super::examples()
        .map(|(_, example)| example.name)
        .filter(|name| !dir.join(name).is_file())
        .collect()
}

/// Whether this program was built with optimisations (so its examples are too).
pub fn is_release_build() -> bool {
    !cfg!(debug_assertions)
}

/// Builds every example with this program's profile, so the servers measured
/// are the ones in `examples/` as they are now.
pub fn build_examples() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(&cargo);
    command
        // From the top level, as a reader's `cargo run --release --example`
        // builds them: the same features, so the same artifacts as the
        // program's own build (`--package evt` alone would build tokio and
        // hyper a second time with fewer features).
        .args(["build", "--quiet", "--examples"])
        .current_dir(crate::root());
    if is_release_build() {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|error| format!("cannot run {cargo} to build the examples: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{cargo} build --examples` failed ({status}); see its output above"
        ))
    }
}

/// An example server running as a child process. Dropping it stops it.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the server's own `listening on` line.
    pub base_url: String,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `example` with `args` (add `--port 0` for a free port) and waits
    /// until it prints `listening on`. A server that exits or stays silent is
    /// an error carrying what it wrote to stderr.
    pub fn start(example: &str, args: &[String]) -> Result<ServerProcess, String> {
        Self::start_on(example, args, &[])
    }

    /// As [`ServerProcess::start`], kept on `cpus` (every CPU when empty),
    /// with every thread and process it starts.
    pub fn start_on(
        example: &str,
        args: &[String],
        cpus: &[usize],
    ) -> Result<ServerProcess, String> {
        let program = examples_dir().join(example);
        if !program.exists() {
            return Err(format!(
                "no built example at {}: run `cargo build --examples` (with --release for \
                 release runs) first",
                program.display()
            ));
        }
        let mut command = Command::new(&program);
        // Its own process group, so stopping it stops every process it
        // started (chapter 2's workers) by the group's id, never by pids read
        // earlier that may have been reused. Out of the terminal's group it
        // would miss a Ctrl-C meant for the run, so it dies with the run.
        evt::process::own_group(&mut command, cpus.to_vec());
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", program.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                    }
                }
            });
        }
        let (ready, announced) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = ready.send(url.trim().to_string());
                    }
                }
            });
        }
        let mut server = ServerProcess {
            child,
            base_url: String::new(),
            stderr,
        };
        match announced.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => {
                server.base_url = url;
                Ok(server)
            }
            Err(_) => {
                // Give its stderr a moment to arrive, then report it.
                std::thread::sleep(Duration::from_millis(100));
                let exited = server.child.try_wait().ok().flatten();
                let said = server.stderr_text();
                let what = match exited {
                    Some(status) => format!("exited ({status}) before it was listening"),
                    None => format!("did not print `listening on` within {STARTUP_TIMEOUT:?}"),
                };
                Err(format!(
                    "{example} {what}; its stderr: {}",
                    if said.trim().is_empty() {
                        "(empty)"
                    } else {
                        said.trim()
                    }
                ))
            }
        }
    }

    /// The server's URL for `path` (`/sleep?ms=100`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Everything the server has written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// The server's process id (for sampling its memory and threads).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    /// Stops the server and every process it started (its process group),
    /// and waits until they are gone, so the port is free for the next one.
    fn drop(&mut self) {
        // Gone already is fine: it is stopped either way.
        let _ = evt::process::signal_group(self.pid(), evt::process::Sig::KILL);
        let _ = self.child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while super::sample::group_is_alive(self.pid()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `GET base_url + path` over a fresh connection; the body of a 200 answer.
pub fn http_get(base_url: &str, path: &str) -> Result<String, String> {
    use std::io::Write;
    let authority = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority)
        .map_err(|error| format!("cannot connect to {authority}: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|error| format!("cannot send to {authority}: {error}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| format!("no answer from {authority}{path}: {error}"))?;
    let head = parse_head(&answer)
        .ok()
        .flatten()
        .ok_or_else(|| format!("{authority}{path} answered no HTTP head"))?;
    if head.status != 200 {
        return Err(format!("{authority}{path} answered {}", head.status));
    }
    Ok(String::from_utf8_lossy(&answer[head.length..]).into_owned())
}
