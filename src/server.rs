//! What every server example shares: its command line, binding the port with a
//! clear error, and the `listening on` line the harness waits for. What is
//! particular to one framework (tiny_http, axum) lives in that example.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use clap::Parser;

/// The flags every server in the book takes. An example with flags of its own
/// flattens these into its parser (`#[command(flatten)] server: ServerArgs`)
/// and parses with [`parse_flags`], so every server reads the same way.
#[derive(Debug, Clone, Parser)]
pub struct ServerArgs {
    /// Address to listen on. The default keeps the server on this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    pub listen: ListenOptions,
}

/// How the listening socket is set up.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenOptions {
    /// Connections the kernel may queue before the server accepts them (the
    /// listen backlog; Linux caps it at net.core.somaxconn).
    #[arg(long, default_value_t = LISTEN_BACKLOG, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub backlog: i32,
    /// Let several processes listen on the same port (SO_REUSEPORT): the
    /// kernel then spreads new connections over them.
    #[arg(long)]
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: LISTEN_BACKLOG,
            reuse_port: false,
        }
    }
}

/// Parses the command line of the example `name` into `T` (a parser that is
/// or flattens [`ServerArgs`]), with `--port` defaulting to `default_port`.
pub fn parse_flags<T: Parser>(name: &'static str, about: &'static str, default_port: u16) -> T {
    let command = T::command()
        .name(name)
        .about(about)
        .mut_arg("port", |port| {
            port.default_value(default_port.to_string()).required(false)
        });
    let matches = command.get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Refuses a flag given where it changes nothing (`applies` false): one line
/// saying why, and exit 2, as clap refuses a bad flag. A flag that is taken
/// and ignored would leave the reader measuring something else than they
/// think.
pub fn refuse_unless(given: bool, applies: bool, why: &str) {
    if given && !applies {
        eprintln!("error: {why}");
        std::process::exit(2);
    }
}

impl ServerArgs {
    /// Parses the command line of the example `name`, whose port defaults to `default_port`.
    pub fn parse_for(name: &'static str, about: &'static str, default_port: u16) -> ServerArgs {
        parse_flags(name, about, default_port)
    }

    /// Binds the listening socket, or exits with one line that says what went wrong.
    /// Also raises the open-file limit as far as it goes: every connection is a file.
    pub fn bind_or_exit(&self) -> TcpListener {
        crate::sys::raise_open_file_limit();
        self.bind().unwrap_or_else(|message| {
            eprintln!("error: {message}");
            std::process::exit(1);
        })
    }

    /// Binds the listening socket; the error is one line naming the problem and the fix.
    pub fn bind(&self) -> Result<TcpListener, String> {
        let (host, port) = (self.host.as_str(), self.port);
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("--host {host:?} is not an IP address or a known host name"))?;
        listen(addr, &self.listen).map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {port} on {host} is already in use (is another server still running?); \
                 stop it or pick another with --port"
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("{host} is not an address of this machine; try --host 127.0.0.1")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("port {port} needs privileges; pick one above 1023 with --port")
            }
            _ => format!("cannot listen on {addr}: {error}"),
        })
    }
}

// ANCHOR: listen
/// How many connections the kernel may hold for a server before it accepts
/// them. Rust's std (and mio, under tokio) listens with 128: a thousand
/// clients connecting at once overflow that, and the kernel drops the
/// connection attempts it has no room for; each client's kernel retries only
/// after a second (then 3 s, 7 s...). Linux caps whatever we ask for at
/// `net.core.somaxconn` (4,096 on recent kernels, 128 on older ones and macOS).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds and listens on `addr` with the backlog asked for, allowing a
/// restarted server to reuse its port at once (SO_REUSEADDR, as servers do on
/// Unix) and, if asked, other processes to share it (SO_REUSEPORT).
fn listen(addr: SocketAddr, options: &ListenOptions) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    Ok(socket.into())
}
// ANCHOR_END: listen

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
fn set_reuse_port(socket: &socket2::Socket) -> std::io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
fn set_reuse_port(_socket: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "--reuse-port (SO_REUSEPORT) is not available on this platform",
    ))
}

/// Where SO_REUSEPORT shares a port but does not spread TCP connections
/// over the sockets that share it, the line that says so: Linux (and
/// Android) hash each new connection to one of them; macOS and the BSDs let
/// the last socket bound (or one of them, unbalanced) take them all, and
/// FreeBSD balances only with its own `SO_REUSEPORT_LB`. A loop per core
/// built on it is then one loop with idle neighbours.
pub fn reuse_port_spread_warning() -> Option<&'static str> {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        None
    } else {
        Some(
            "warning: on this system SO_REUSEPORT does not spread connections between the sockets that share a port \
             (Linux does; FreeBSD needs SO_REUSEPORT_LB): expect one loop to get them all",
        )
    }
}

/// How long an accept loop waits after a failed accept before trying again.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Failed accepts (out of file descriptors, most often): a server must not
/// die of one, nor flood its stderr. The first is said in one line.
#[derive(Debug, Default)]
pub struct AcceptFailures {
    count: u64,
}

impl AcceptFailures {
    pub fn note(&mut self, error: &std::io::Error) {
        self.count += 1;
        if self.count == 1 {
            eprintln!(
                "warning: accept failed: {error} (raise `ulimit -n` if it says too many open files)"
            );
        }
    }
}

/// Prints the line the harness and the tests wait for: `listening on http://HOST:PORT`.
pub fn announce(addr: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server: the line is for whoever still listens.
    let _ = writeln!(stdout, "listening on http://{addr}");
    let _ = stdout.flush();
}
