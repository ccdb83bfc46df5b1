//! `mechfund serve` as a real process on loopback against hostile clients: odd paths answer
//! 4xx with a bounded number of log lines.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, client, get_text};

/// A built dashboard where the harness points `--dist` (`DATA/no-dist`).
fn with_dashboard(data: &Path) {
    let dist = data.join("no-dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>dashboard</title>").unwrap();
}

/// The `suppressed=N` of a log line.
fn suppressed(line: &str) -> u64 {
    let rest = line.split("suppressed=").nth(1).unwrap_or_else(|| panic!("no count in {line}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_paths_get_404_and_a_bounded_number_of_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    with_dashboard(dir.path());
    let server = Server::start(dir.path());
    let c = client();
    let long = "a".repeat(300);
    let started = Instant::now();
    let requests = 300;
    for i in 0..requests {
        // ENAMETOOLONG from the file system: 500 and two ERROR lines each, before.
        let (status, body) = get_text(&c, &format!("{}/{long}{i}", server.base)).await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("\"not_found\""), "{body}");
    }
    let seconds = started.elapsed().as_secs() + 1;
    // A second later the budget is back: the next line says how many were dropped.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_text(&c, &format!("{}/{long}", server.base)).await.0, 404);
    let log = server.stderr_text();
    assert!(!log.contains("ERROR"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("a request path names no file")).collect();
    assert!(!lines.is_empty() && lines.len() as u64 <= 10 * (seconds + 1), "{} lines in {seconds} s", lines.len());
    let counted = lines.len() as u64 - 1 + lines.iter().map(|l| suppressed(l)).sum::<u64>();
    assert_eq!(counted, requests, "every bad request is logged or counted: {lines:#?}");
}
