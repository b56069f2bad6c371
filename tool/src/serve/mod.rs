//! `serve`: the book built in-process and served on loopback, rebuilt when
//! `book/` changes (the open page reloads), with a live lab: each chapter
//! page served this way can run its chapter on the reader's machine.
//!
//! It starts processes when a web page asks, so every request must name
//! this server in its `Host` (against DNS rebinding), a run or a cancel must
//! come from this server's own pages (`Origin`) and carry the token that
//! only those pages hold, and one run goes at a time.

pub mod lab;
pub mod stage;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::reproduce::record::ChapterRecord;
use lab::{Lab, RunView};
use stage::{Paths, Site};

/// `cargo run --release -- serve`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The address to serve on. The live lab runs only on a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (0: any free one).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// The project whose book is served [default: this clone].
    #[arg(long, hide = true)]
    pub root: Option<PathBuf>,
}

/// What every request handler shares.
struct App {
    paths: Paths,
    site: Arc<Site>,
    lab: Arc<Lab>,
    /// `Host` values that name this server.
    hosts: Vec<String>,
    /// Whether pages get the lab (loopback only).
    lab_on: bool,
    /// The secret only this server's pages carry.
    token: String,
    /// Chapter pages (`chapter1_blocking.html`), their numbers, and how
    /// long a full run took on the book's machine (seconds).
    pages: Vec<(String, u32, Option<f64>)>,
}

/// Serves the book until Ctrl-C; the exit code.
pub fn run(args: ServeArgs, root: PathBuf) -> Result<(), String> {
    if args.host.is_unspecified() {
        return Err(format!(
            "--host {}: give the address readers will type (this machine's own), not a wildcard: \
             the Host check needs it",
            args.host
        ));
    }
    let listener = std::net::TcpListener::bind(SocketAddr::new(args.host, args.port)).map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "port {} is already in use (is another serve or mdbook running?); pick another with --port",
            args.port
        ),
        _ => format!("cannot listen on {}:{}: {error}", args.host, args.port),
    })?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let paths = Paths::under(&args.root.unwrap_or(root));
    let site = Arc::new(Site::default());
    eprintln!("building the book from {}…", paths.book.display());
    site.rebuild(&paths)?;
    stage::keep_reference(&paths);
    listener
        .set_nonblocking(true)
        .map_err(|error| error.to_string())?;
    let port = addr.port();
    let mut hosts = vec![match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        IpAddr::V4(ip) => format!("{ip}:{port}"),
    }];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{port}"));
    }
    let pages = crate::reproduce::ALL
        .iter()
        .filter_map(|chapter| {
            let number = chapter.number?;
            let took = reference_run_time(&paths, number);
            Some((chapter.page?.replace(".md", ".html"), number, took))
        })
        .collect();
    let app = Arc::new(App {
        lab: Arc::new(Lab::new(paths.clone(), Arc::clone(&site))),
        paths,
        site,
        hosts,
        lab_on: addr.ip().is_loopback(),
        token: token()?,
        pages,
    });
    watch(Arc::clone(&app));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|error| error.to_string())?;
        println!("serving the book on http://{}/", app.hosts[0]);
        if !app.lab_on {
            println!("(the live lab is off: it runs only on a loopback address)");
        }
        let router = router(Arc::clone(&app));
        let stop = Arc::clone(&app);
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { ctrl_c(&stop).await })
            .await
            .map_err(|error| error.to_string())
    })
}

/// Ctrl-C: a run going is stopped first (Ctrl-C again stops serving);
/// with no run, serving stops.
async fn ctrl_c(app: &App) {
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
        if app
            .lab
            .cancel("cancelled by Ctrl-C where the book is served")
        {
            eprintln!("\nstopped the run and every process it started; Ctrl-C again stops serving");
            continue;
        }
        return;
    }
}

/// A thread that rebuilds the book when `book/` or the code it includes changes (not while a run
/// writes it: the run rebuilds when it ends), and stops unwatched runs.
fn watch(app: Arc<App>) {
    let _ = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            // The pages, the lab's overlay, and the code the pages include.
            let code = stage::CODE.map(|dir| app.paths.root.join(dir));
            let mut dirs = vec![app.paths.book.as_path(), app.paths.overlay.as_path()];
            dirs.extend(code.iter().map(PathBuf::as_path));
            let mut seen = stage::fingerprint(&dirs);
            let mut built = app.site.state().generation;
            loop {
                std::thread::sleep(Duration::from_millis(400));
                app.lab.cancel_if_unwatched();
                if app.lab.is_running() {
                    continue;
                }
                let now = stage::fingerprint(&dirs);
                if app.site.state().generation != built {
                    // A run rebuilt the book as it ended: its files are in.
                    built = app.site.state().generation;
                    seen = now;
                    continue;
                }
                if now != seen {
                    match app.site.rebuild(&app.paths) {
                        Ok(()) => eprintln!("rebuilt the book"),
                        Err(message) => eprintln!("error: {message}"),
                    }
                    seen = stage::fingerprint(&dirs);
                    built = app.site.state().generation;
                }
            }
        });
}

/// How long chapter `n`'s full run took on the book's machine: its whole
/// run where the record keeps it, else its time under load.
fn reference_run_time(paths: &Paths, n: u32) -> Option<f64> {
    let text = std::fs::read_to_string(paths.reference.join(format!("chapter{n}.json"))).ok()?;
    let record: ChapterRecord = serde_json::from_str(&text).ok()?;
    Some(record.wall_s.unwrap_or_else(|| record.load_s()))
}

/// 128 random bits from the system's generator, as hex: the lab's token.
/// Without them `serve` does not start (a guessable token would let any page
/// start runs on this machine).
fn token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|error| format!("cannot make the lab's token (no random bits: {error})"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/__lab/lab.js", get(lab_js))
        .route("/__lab/status", get(status))
        .route("/__lab/compare", get(compare))
        .route("/__lab/run", post(start_run))
        .route("/__lab/cancel", post(cancel_run))
        .fallback(file)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), check_host))
        .with_state(app)
}

/// A refusal: a status and one line saying why.
fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// Every request must name this server: a page of another site whose name
/// was pointed at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
async fn check_host(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(host)) {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "refused: Host {host:?} is not this server ({})",
                app.hosts.join(" or ")
            ),
        );
    }
    next.run(request).await
}

/// A run or a cancel must come from this server's page: its Origin, and the
/// token the page carries (in a header, or in the body for a beacon).
fn check_lab_request(
    app: &App,
    headers: &HeaderMap,
    body_token: Option<&str>,
) -> Result<(), String> {
    if !app.lab_on {
        return Err("refused: the live lab runs only on loopback".into());
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let ours = origin.is_some_and(|origin| {
        app.hosts
            .iter()
            .any(|host| origin.eq_ignore_ascii_case(&format!("http://{host}")))
    });
    if !ours {
        return Err(format!(
            "refused: Origin {} is not this server's page",
            origin.unwrap_or("(none)")
        ));
    }
    let token = headers
        .get("x-lab-token")
        .and_then(|t| t.to_str().ok())
        .or(body_token);
    if token != Some(app.token.as_str()) {
        return Err("refused: no lab token, or not this server's".into());
    }
    Ok(())
}

async fn lab_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("lab.js"),
    )
        .into_response()
}

#[derive(Serialize)]
struct Status {
    generation: u64,
    build_error: Option<String>,
    lab: bool,
    pages: Vec<(String, u32, Option<f64>)>,
    run: Option<RunView>,
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let site = app.site.state();
    let status = Status {
        generation: site.generation,
        build_error: site.error,
        lab: app.lab_on,
        pages: app.pages.clone(),
        run: app.lab.view(),
    };
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(status)).into_response()
}

#[derive(Deserialize)]
struct RunAsk {
    chapter: u32,
    /// `quick` or `full`.
    mode: String,
}

async fn start_run(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    if let Err(why) = check_lab_request(&app, &headers, None) {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    let Ok(ask) = serde_json::from_str::<RunAsk>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a run needs {\"chapter\": N, \"mode\": \"quick\" or \"full\"}",
        );
    };
    if !app.pages.iter().any(|(_, n, _)| *n == ask.chapter) {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!("there is no chapter {}", ask.chapter),
        );
    }
    let quick = match ask.mode.as_str() {
        "quick" => true,
        "full" => false,
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("mode {other:?}: quick or full"),
            );
        }
    };
    match app.lab.start(ask.chapter, quick) {
        Ok(run) => (StatusCode::ACCEPTED, axum::Json(run)).into_response(),
        Err(message) => refuse(StatusCode::CONFLICT, &message),
    }
}

#[derive(Deserialize, Default)]
struct CancelAsk {
    token: Option<String>,
}

async fn cancel_run(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    let ask: CancelAsk = serde_json::from_str(&body).unwrap_or_default();
    if let Err(why) = check_lab_request(&app, &headers, ask.token.as_deref()) {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    if app.lab.cancel("cancelled from the page") {
        refuse(StatusCode::OK, "cancelled")
    } else {
        refuse(StatusCode::OK, "no run was going")
    }
}

#[derive(Deserialize)]
struct CompareAsk {
    chapter: u32,
}

/// One headline figure, the reader's beside the book's machine's, judged.
#[derive(Serialize)]
struct CompareRow {
    experiment: String,
    figure: String,
    unit: String,
    yours: f64,
    book: Option<f64>,
    timer_bound: bool,
    /// What sets it, in words (`timers`, `chance`, `CPU (hello)`).
    set_by: String,
    /// Where it should have landed, as "low–high".
    range: Option<String>,
    /// `as expected`, `outside, +12 %`, or why it was not judged.
    verdict: String,
    /// Why it may land outside, where it did.
    reason: Option<String>,
}

#[derive(Serialize)]
struct Comparison {
    yours: String,
    book: Option<String>,
    quick: bool,
    /// As expected, outside, not judged, as one line.
    tally: Option<String>,
    rows: Vec<CompareRow>,
}

/// The reader's record of a chapter (a quick run's, else the book's own
/// directory's when it is not the reference) beside the reference, each
/// figure judged against the book's.
async fn compare(State(app): State<Arc<App>>, Query(ask): Query<CompareAsk>) -> Response {
    use crate::reproduce::{calibrate, judge::Verdict, room};
    let read = |path: PathBuf| -> Option<ChapterRecord> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let name = format!("chapter{}.json", ask.chapter);
    let reference = read(app.paths.reference.join(&name));
    let yours = read(app.paths.overlay.join(&name)).or_else(|| {
        read(app.paths.generated().join(&name)).filter(|own| {
            reference
                .as_ref()
                .is_none_or(|r| r.measured_at != own.measured_at)
        })
    });
    let Some(yours) = yours else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no run of yours for this chapter yet",
        );
    };
    let calibrations = |dirs: &[PathBuf]| -> Vec<calibrate::Calibration> {
        dirs.iter()
            .flat_map(|dir| calibrate::read_all(dir).unwrap_or_default())
            .collect()
    };
    let book_side = room::Side {
        name: "the book".into(),
        calibrations: calibrations(std::slice::from_ref(&app.paths.reference)),
        headlines: reference
            .as_ref()
            .map(|r| room::headlines(std::slice::from_ref(r)))
            .unwrap_or_default(),
    };
    let your_side = room::Side {
        name: "yours".into(),
        calibrations: calibrations(&[
            app.paths.overlay.clone(),
            app.paths.quick_out.clone(),
            app.paths.generated(),
        ]),
        headlines: room::headlines(std::slice::from_ref(&yours)),
    };
    let kinds_differ = reference.as_ref().is_some_and(|r| r.quick != yours.quick);
    let judged = if kinds_differ {
        Vec::new()
    } else {
        room::judge_side(&book_side, &your_side)
    };
    let rows = your_side
        .headlines
        .iter()
        .map(|mine| {
            let judgment = judged.iter().find(|j| j.mine.same_figure(mine));
            CompareRow {
                book: book_side
                    .headlines
                    .iter()
                    .find(|b| b.same_figure(mine))
                    .map(|b| b.value),
                experiment: mine.experiment.clone(),
                figure: mine.figure.clone(),
                unit: mine.unit.clone(),
                yours: mine.value,
                timer_bound: mine.timer_bound,
                set_by: judgment
                    .map_or(mine.set_by(), |j| j.set_by)
                    .words()
                    .to_string(),
                range: judgment.and_then(|j| j.expected.as_ref().ok()).map(|e| {
                    format!(
                        "{}–{}",
                        room::number(e.low, &mine.unit),
                        room::number(e.high, &mine.unit)
                    )
                }),
                verdict: match judgment {
                    Some(j) => j.verdict.words(),
                    None if kinds_differ => {
                        "not judged: a quick run beside the book's full one".into()
                    }
                    None => "not judged: the book has no such figure".into(),
                },
                reason: judgment.and_then(|j| match &j.verdict {
                    Verdict::Outside { reason, .. } => Some(reason.clone()),
                    _ => None,
                }),
            }
        })
        .collect();
    let describe = |r: &ChapterRecord| format!("{}, {}", r.machine.describe(), r.measured_at);
    axum::Json(Comparison {
        yours: describe(&yours),
        book: reference.as_ref().map(describe),
        quick: yours.quick,
        tally: (!judged.is_empty()).then(|| room::tally(&judged)),
        rows,
    })
    .into_response()
}

/// The site's files; HTML pages get the lab's script when the lab is on.
async fn file(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/').to_string();
    if path
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return refuse(StatusCode::NOT_FOUND, "not found");
    }
    let mut file = app.paths.site.join(&path);
    if path.is_empty() || path.ends_with('/') {
        file = file.join("index.html");
    }
    let read =
        tokio::task::spawn_blocking(move || std::fs::read(&file).map(|bytes| (file, bytes))).await;
    let Ok(Ok((file, bytes))) = read else {
        return refuse(StatusCode::NOT_FOUND, &format!("not found: /{path}"));
    };
    let kind = content_type(&file);
    let body = if kind.starts_with("text/html") && app.lab_on {
        let html = String::from_utf8_lossy(&bytes);
        let script = format!(
            "<script src=\"/__lab/lab.js\" data-token=\"{}\"></script>\n",
            app.token
        );
        match html.rfind("</body>") {
            Some(at) => format!("{}{script}{}", &html[..at], &html[at..]).into_bytes(),
            None => bytes,
        }
    } else {
        bytes
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn content_type(file: &std::path::Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lab_token_is_128_random_bits() {
        let (a, b) = (super::token().unwrap(), super::token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(a, "0".repeat(32));
    }
}
