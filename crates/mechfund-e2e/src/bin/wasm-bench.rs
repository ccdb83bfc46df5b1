//! `wasm-bench LOG SPEED_PKG_DIR`: times `replayLog` on LOG in headless Chromium (the package in
//! SPEED_PKG_DIR, built at opt-level 3) against the native single-thread `replay_bytes` on the
//! same bytes, in the same run, and prints a Markdown row. Run by `cargo xtask bench`.
//!
//! Method: the log is fetched into the page once; each timed run is one `replayLog(text)` call
//! measured with `performance.now()`; native runs time `replay_bytes` with `Instant`. Both take
//! the best of 15 runs after a warm-up (the best, because this shared machine's noise only ever
//! adds time), so the ratio compares steady states; medians are printed too.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::Router;
use mechfund_core::{ReplayOptions, Rules, replay_bytes};
use mechfund_e2e::Page;
use serde_json::{Value, json};
use tower_http::services::ServeDir;

const RUNS: usize = 15;

const START: &str = r#"
window.__bench = null;
(async () => {
  try {
    const m = await import("/speed/mechfund_wasm.js");
    await m.default();
    const text = await (await fetch("/log.jsonl")).text();
    m.replayLog(text);
    const times = [];
    let level = 0;
    for (let i = 0; i < arguments[0]; i++) {
      const t = performance.now();
      level = m.replayLog(text).state.level;
      times.push(performance.now() - t);
    }
    window.__bench = { times, level, bytes: text.length };
  } catch (e) {
    window.__bench = { error: String(e) };
  }
})();
return true;
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(log), Some(pkg)) = (args.next(), args.next()) else {
        bail!("usage: wasm-bench LOG SPEED_PKG_DIR");
    };
    let (log, pkg) = (PathBuf::from(log), PathBuf::from(pkg));
    let bytes = std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
    let rules = Rules::default();
    let mut native = Vec::new();
    let mut level = 0;
    for _ in 0..=RUNS {
        let t = Instant::now();
        let result = replay_bytes(&bytes, &rules, ReplayOptions::default()).context("lenient replay")?;
        native.push(t.elapsed().as_secs_f64() * 1000.0);
        level = result.state.level;
    }
    native.remove(0);
    let routes = Router::new()
        .nest_service("/speed", ServeDir::new(&pkg))
        .route_service("/log.jsonl", tower_http::services::ServeFile::new(&log));
    let page = Page::open(routes).await?;
    let outcome = async {
        page.goto("index.html").await?;
        page.js(START, vec![json!(RUNS)]).await?;
        page.wait_for("the wasm runs", 300, "return window.__bench;", vec![]).await
    }
    .await;
    page.close().await;
    let bench = outcome?;
    if let Some(error) = bench.get("error") {
        bail!("in the browser: {error}");
    }
    let wasm: Vec<f64> = bench["times"].as_array().context("times")?.iter().filter_map(Value::as_f64).collect();
    if bench["level"] != json!(level) {
        bail!("wasm and native disagree: level {} vs {level}", bench["level"]);
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (n, w) = (best(&native), best(&wasm));
    let (nm, wm) = (median(&native), median(&wasm));
    let events = bytecount(&bytes);
    println!(
        "| events | MB | native `replay_bytes`, 1 thread: best (median) of {RUNS} | `replayLog` in Chromium: best (median) | ratio of bests (of medians) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "| {events} | {mb:.1} | {n:.0} ms ({nm:.0} ms) | {w:.0} ms ({wm:.0} ms) | {:.2}x ({:.2}x) |",
        w / n,
        wm / nm
    );
    Ok(())
}

fn bytecount(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}
