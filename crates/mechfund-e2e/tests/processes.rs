//! The harness ends exactly what it starts. A headless Chromium it did not start (started here
//! the way another tool would start one) still answers after a browser session of the
//! harness; the session's chromedriver holds none of the test's descriptors; nothing of the
//! session's process group is left once the page is closed, nor once a test holding a page
//! panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::Router;
use mechfund_e2e::Page;
use mechfund_procgroup::{Group, group_has_processes};

/// Whether the process group `id` is empty within `secs` (what an ended group leaves is
/// reaped by init).
fn gone_within(id: u32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while group_has_processes(id) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A page for the sessions to load.
fn site() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>t</title><p id=p>hello</p>")?;
    Ok(dir)
}

/// A headless Chromium that is none of the harness's business: its own profile, its stdout and
/// stderr piped to this test (as a tool that reads its output would have them).
struct Unrelated {
    group: Group,
    port: u16,
    /// One message per pipe, once every process holding it has closed it.
    closed: mpsc::Receiver<()>,
    _profile: tempfile::TempDir,
}

impl Unrelated {
    fn start() -> Result<Unrelated> {
        let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        let profile = tempfile::tempdir()?;
        let mut group = Group::spawn(
            Command::new(&chromium)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("about:blank")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .with_context(|| format!("starting {}", chromium.display()))?;
        let (closed_tx, closed) = mpsc::channel();
        let stdout = group.take_stdout().context("stdout")?;
        let stdout_closed = closed_tx.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut { stdout }, &mut std::io::sink());
            let _ = stdout_closed.send(());
        });
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…" on stderr.
        let (port_tx, port_rx) = mpsc::channel();
        let stderr = BufReader::new(group.take_stderr().context("stderr")?);
        std::thread::spawn(move || {
            for line in stderr.split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1)
                    && let Some(port) = rest.split('/').next().and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
            let _ = closed_tx.send(());
        });
        let port = port_rx.recv_timeout(Duration::from_secs(30)).context("Chromium printed no DevTools port")?;
        Ok(Unrelated { group, port, closed, _profile: profile })
    }

    /// Checks that the browser is running and its DevTools endpoint answers.
    async fn answers(&self) -> Result<()> {
        ensure!(self.group.running()?, "the unrelated Chromium's browser process is gone");
        let url = format!("http://127.0.0.1:{}/json/version", self.port);
        let body = reqwest::get(&url).await.with_context(|| url.clone())?.text().await?;
        let version: serde_json::Value = serde_json::from_str(&body).with_context(|| body.clone())?;
        ensure!(version["Browser"].as_str().is_some_and(|b| b.contains("Chrom")), "{url}: {body}");
        Ok(())
    }

    /// Ends it by its own group; then nothing of it may hold its pipes.
    fn end(mut self) -> Result<()> {
        self.group.end()?;
        for _ in 0..2 {
            self.closed
                .recv_timeout(Duration::from_secs(10))
                .context("a process of the ended Chromium still holds its output")?;
        }
        ensure!(gone_within(self.group.id(), 10), "a process of the unrelated Chromium's group survived its end");
        Ok(())
    }
}

#[tokio::test]
async fn a_chromium_the_harness_did_not_start_outlives_its_session() -> Result<()> {
    let unrelated = Unrelated::start()?;
    unrelated.answers().await?;
    let site = site()?;
    let page = Page::open_dir(site.path(), Router::new()).await?;
    let group = page.process_group();
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{group}/fd/{fd}"))?;
        ensure!(target == Path::new("/dev/null"), "chromedriver's fd {fd} is {}, not /dev/null", target.display());
    }
    page.goto("index.html").await?;
    assert_eq!(page.js("return document.getElementById('p').textContent", vec![]).await?, "hello");
    page.close().await;
    ensure!(gone_within(group, 10), "a process of the session's group {group} survived the session");
    unrelated.answers().await.context("the harness ended a Chromium it did not start")?;
    unrelated.end()
}

#[test]
fn a_test_that_panics_with_a_page_open_ends_its_session() -> Result<()> {
    let site = site()?;
    let dir = site.path().to_owned();
    let panicked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let page = Page::open_dir(&dir, Router::new()).await.expect("a session");
            page.goto("index.html").await.expect("the page loads");
            std::panic::panic_any(page.process_group());
        })
    })
    .join()
    .err()
    .context("the test thread did not panic")?;
    let group = *panicked.downcast::<u32>().ok().context("the panic carries the session's process group")?;
    ensure!(gone_within(group, 10), "the session's process group {group} survived the panic");
    Ok(())
}
