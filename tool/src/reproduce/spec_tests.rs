//! The experiment specs' own tests.
use super::*;
use clap::Parser;
use evt::load::cli::LoadArgs;

#[test]
fn the_command_shown_is_the_arguments_that_run() {
    let load = LoadSpec::sleeps(5, 5, Duration::from_millis(5));
    let args = load.load_args("http://127.0.0.1:8001/sleep?ms=5");
    let parsed = LoadArgs::try_parse_from(std::iter::once("load".to_string()).chain(args.clone()))
        .unwrap()
        .to_config()
        .unwrap();
    assert_eq!(parsed.timeout, DEFAULT_TIMEOUT);
    assert_eq!(parsed.connections, 5);
    assert_eq!(
        command_line("load", &args),
        "cargo run --release --example load -- -n 5 -c 5 --timeout 2m \
         'http://127.0.0.1:8001/sleep?ms=5'"
    );
}
