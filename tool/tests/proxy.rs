//! Chapter 7's proxy, with a real upstream (chapter 3's server) behind it.

use evt::load::{self, LoadConfig, Target};
use evt_book::reproduce::harness::{ServerProcess, http_get};

mod common;
use common::start_with;

fn proxy(model: &[&str], upstream: &str) -> ServerProcess {
    let mut args = vec!["--port", "0", "--upstream", upstream];
    args.extend_from_slice(model);
    start_with("chapter7_proxy", &args).unwrap_or_else(|error| panic!("{error}"))
}

const MODELS: [&[&str]; 2] = [
    &["--model", "threads", "--pool", "4"],
    &["--model", "async"],
];

#[test]
fn the_proxy_answers_through_a_real_upstream() {
    let upstream = start_with("chapter3_async", &["--port", "0"]).unwrap();
    for model in MODELS {
        let proxy = proxy(model, &upstream.url("/sleep?ms=20"));
        let body = http_get(&proxy.base_url, "/proxy").unwrap();
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["upstream_status"], 200, "{model:?}: {body}");
        assert!(
            answer["upstream_ms"].as_f64().unwrap() >= 20.0,
            "{model:?}: {body}"
        );
        // Under load, every request goes through (kept-alive upstream connections).
        let target = Target::parse(&proxy.url("/proxy")).unwrap();
        let results = load::run(LoadConfig::new(target, 200, 20)).unwrap();
        assert_eq!(results.completed(), 200, "{model:?}");
        assert_eq!(
            results.record.status_codes.get(&200),
            Some(&200),
            "{model:?}"
        );
    }
}

#[test]
fn an_upstream_that_is_down_is_a_counted_502_not_a_hang() {
    for model in MODELS {
        let proxy = proxy(model, "http://127.0.0.1:9/");
        let target = Target::parse(&proxy.url("/proxy")).unwrap();
        let results = load::run(LoadConfig::new(target, 20, 4)).unwrap();
        assert_eq!(results.completed(), 20, "{model:?}");
        assert_eq!(
            results.record.status_codes.get(&502),
            Some(&20),
            "{model:?}"
        );
        // And the proxy itself keeps serving.
        assert_eq!(http_get(&proxy.base_url, "/").unwrap(), "Hello\n");
    }
}

#[test]
fn a_bad_upstream_url_is_one_line_and_exit_2() {
    let output = std::process::Command::new(common::example("chapter7_proxy"))
        .args(["--upstream", "ftp://example.com/"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: --upstream"), "{stderr}");
}
