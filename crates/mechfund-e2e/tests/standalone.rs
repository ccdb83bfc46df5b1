//! One binary: the release `mechfund` that `cargo xtask test` builds after the dashboard and the
//! JS package carries both, so `mechfund serve` started in a directory outside the checkout,
//! without `--dist` or `--embed`, serves the dashboard at `/` and the package at `/embed/`; the
//! two flags still override what it carries.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};

/// `mechfund serve` in `cwd`, killed when dropped (also when a test fails).
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> Result<PathBuf> {
    std::env::var_os("MECHFUND_BIN")
        .map(PathBuf::from)
        .context("MECHFUND_BIN names the release mechfund (cargo xtask test sets it)")
}

fn serve(cwd: &Path, extra: &[&str]) -> Result<Served> {
    let data = cwd.join("data");
    let mut child = Command::new(bin()?)
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(extra)
        .current_dir(cwd)
        .env("MECHFUND_ADMIN_TOKEN", "standalone-token-0123456789")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mechfund serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut served = Served { child, base: String::new() };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("listening on ").with_context(|| format!("no address printed: {line:?}"))?;
    served.base = addr.to_owned();
    Ok(served)
}

async fn get(url: &str) -> Result<(u16, String, Vec<u8>)> {
    let response = reqwest::get(url).await.with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    Ok((status, kind, response.bytes().await?.to_vec()))
}

#[tokio::test(flavor = "current_thread")]
async fn serve_outside_the_checkout_carries_the_dashboard_and_the_package() -> Result<()> {
    let outside = tempfile::tempdir()?;
    let server = serve(outside.path(), &[])?;
    let (status, kind, body) = get(&format!("{}/", server.base)).await?;
    let page = String::from_utf8_lossy(&body);
    ensure!(status == 200 && kind.starts_with("text/html"), "GET /: {status} {kind}");
    ensure!(page.contains("mechfund-web") && page.contains("<title>"), "not the dashboard: {page}");
    // Every file the page names is there too (the wasm, the script, the styles).
    for name in ["mechfund-progress.js", "mechfund_wasm.js", "mechfund_wasm_bg.wasm", "mechfund-progress.css"] {
        let (status, _, body) = get(&format!("{}/embed/{name}", server.base)).await?;
        ensure!(status == 200 && !body.is_empty(), "GET /embed/{name}: {status}");
    }
    let (_, kind, _) = get(&format!("{}/embed/mechfund_wasm_bg.wasm", server.base)).await?;
    ensure!(kind == "application/wasm", "the wasm is served as {kind}");
    let script = page.split("src=\"/").nth(1).and_then(|rest| rest.split('"').next());
    if let Some(script) = script {
        let (status, _, _) = get(&format!("{}/{script}", server.base)).await?;
        ensure!(status == 200, "GET /{script}: {status}");
    }
    let (status, _, _) = get(&format!("{}/no-such-file.js", server.base)).await?;
    ensure!(status == 404, "a missing file: {status}");
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn dist_and_embed_still_override_what_the_binary_carries() -> Result<()> {
    let outside = tempfile::tempdir()?;
    let dist = outside.path().join("my-dist");
    let embed = outside.path().join("my-embed");
    std::fs::create_dir_all(&dist)?;
    std::fs::create_dir_all(&embed)?;
    std::fs::write(dist.join("index.html"), "<!doctype html><title>my own dashboard</title>")?;
    std::fs::write(embed.join("mechfund-progress.js"), "export const mine = 1;")?;
    let server = serve(outside.path(), &["--dist", "my-dist", "--embed", "my-embed"])?;
    let (status, _, body) = get(&format!("{}/", server.base)).await?;
    ensure!(status == 200 && String::from_utf8_lossy(&body).contains("my own dashboard"), "GET /: {status}");
    let (status, _, body) = get(&format!("{}/embed/mechfund-progress.js", server.base)).await?;
    ensure!(status == 200 && body == b"export const mine = 1;", "GET /embed/…: {status}");
    Ok(())
}
