//! mechfund-e2e: the harness of the browser end-to-end tests (the tests are in `tests/`).
//!
//! It starts chromedriver on a free port, serves `examples/embed/` (plus test-specific routes)
//! on 127.0.0.1, and opens a headless Chromium session with the flags of `docs`/TOOLCHAIN. It
//! also finds and runs the real `mechfund` binary, whose output the pages are checked against.
//!
//! It is not a test framework: a missing prerequisite (the built JS package, chromedriver,
//! Chromium, the release binary) is an error that says how to get it, so the tests fail instead
//! of skipping.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Router;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tower_http::services::ServeDir;

/// The Chromium flags this machine kind needs (root, no network, no GPU, no /dev/shm).
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// How to build the JS package, for messages.
pub const BUILD_PACKAGE: &str = "cargo xtask wasm   (or by hand: cargo build -p mechfund-wasm --target \
    wasm32-unknown-unknown --profile wasm-release && wasm-bindgen --target web --out-dir examples/embed/pkg \
    $CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/mechfund_wasm.wasm)";

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// `examples/embed/`, the directory the static server serves.
#[must_use]
pub fn embed_dir() -> PathBuf {
    workspace_root().join("examples/embed")
}

/// The newest modification time of the files under `dirs` (recursively).
fn newest(dirs: &[PathBuf]) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if let Ok(modified) = meta.modified()
            && newest.as_ref().is_none_or(|(t, _)| modified > *t)
        {
            newest = Some((modified, path));
        }
    }
    newest
}

/// Fails if `built` is older than a file under `sources` (it would test old code).
fn check_fresh(built: &Path, sources: &[PathBuf], rebuild: &str) -> Result<()> {
    let built_at = std::fs::metadata(built).and_then(|m| m.modified()).with_context(|| built.display().to_string())?;
    if let Some((changed_at, source)) = newest(sources)
        && changed_at > built_at
    {
        bail!("{} is older than {}: rebuild it with\n  {rebuild}", built.display(), source.display());
    }
    Ok(())
}

/// Checks that the JS package is built (and not older than its sources).
///
/// # Errors
/// If `examples/embed/pkg/` lacks the package, or is stale; the message says how to build it.
pub fn require_package() -> Result<()> {
    let pkg = embed_dir().join("pkg");
    for file in ["mechfund_wasm.js", "mechfund_wasm_bg.wasm"] {
        let path = pkg.join(file);
        ensure!(
            path.is_file(),
            "the JS package is not built ({} is missing): build it with\n  {BUILD_PACKAGE}",
            path.display()
        );
    }
    let root = workspace_root();
    check_fresh(
        &pkg.join("mechfund_wasm_bg.wasm"),
        &[root.join("crates/mechfund-core/src"), root.join("crates/mechfund-wasm/src")],
        BUILD_PACKAGE,
    )
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one this test binary was built in.
fn target_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    // <target>/<profile>/deps/<test binary>
    if let Some(dir) =
        std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
    {
        dirs.push(dir);
    }
    dirs.push(workspace_root().join("target"));
    dirs
}

/// The `mechfund` binary: `$MECHFUND_BIN`, else `release/mechfund` in the target directory.
///
/// # Errors
/// If there is none (or it is older than its sources); the message says how to build it.
pub fn mechfund_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("MECHFUND_BIN") {
        let bin = PathBuf::from(bin);
        ensure!(bin.is_file(), "MECHFUND_BIN={} does not exist", bin.display());
        return Ok(bin);
    }
    let candidates: Vec<PathBuf> = target_dirs().into_iter().map(|d| d.join("release/mechfund")).collect();
    let Some(bin) = candidates.iter().find(|p| p.is_file()) else {
        bail!(
            "the mechfund binary is not built (looked for {}): build it with\n  cargo build --release -p \
             mechfund-server\nor set MECHFUND_BIN",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    };
    let root = workspace_root();
    check_fresh(
        bin,
        &[root.join("crates/mechfund-core/src"), root.join("crates/mechfund-server/src")],
        "cargo build --release -p mechfund-server",
    )?;
    Ok(bin.clone())
}

/// Runs `mechfund ARGS` and parses its standard output as JSON.
///
/// # Errors
/// If the binary is missing, fails, or prints something that is not JSON.
pub fn cli_json(args: &[&str]) -> Result<Value> {
    let bin = mechfund_bin()?;
    let output = Command::new(&bin).args(args).current_dir(workspace_root()).output()?;
    ensure!(
        output.status.success(),
        "{} {} failed ({}): {}",
        bin.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).with_context(|| format!("mechfund {} printed no JSON", args.join(" ")))
}

fn program(env: &str, default: &str, install: &str) -> Result<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    ensure!(path.is_file(), "{} not found: {install} (or set {env})", path.display());
    Ok(path)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A chromedriver process in its own process group; dropping it ends the group (chromedriver
/// and any browser it started).
#[derive(Debug)]
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    async fn start() -> Result<Chromedriver> {
        use std::os::unix::process::CommandExt;
        let install = "install it with `apt-get install -y chromium chromium-driver`";
        let driver = program("CHROMEDRIVER", "/usr/bin/chromedriver", install)?;
        let port = free_port()?;
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;
        let mut driver = Chromedriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = driver.child.try_wait()? {
                bail!("chromedriver exited at start ({status})");
            }
            ensure!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(driver)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session on a page server: `examples/embed/` plus the given routes.
#[derive(Debug)]
pub struct Page {
    /// The WebDriver client.
    pub client: Client,
    /// `http://127.0.0.1:PORT`, the page server's origin.
    pub origin: String,
    server: tokio::task::JoinHandle<()>,
    _driver: Chromedriver,
}

impl Page {
    /// Checks the prerequisites, starts the page server and chromedriver, and opens a session.
    ///
    /// # Errors
    /// A missing package, chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open(routes: Router) -> Result<Page> {
        require_package()?;
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "install it with `apt-get install -y chromium`")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let app = routes.fallback_service(ServeDir::new(embed_dir()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let driver = Chromedriver::start().await?;
        let capabilities = json!({
            "goog:chromeOptions": { "binary": chromium, "args": CHROMIUM_FLAGS }
        });
        let Value::Object(capabilities) = capabilities else { bail!("capabilities are an object") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .context("opening a Chromium session through chromedriver")?;
        Ok(Page { client, origin, server, _driver: driver })
    }

    /// Navigates to `path` (relative to the page server's origin).
    ///
    /// # Errors
    /// If the navigation fails.
    pub async fn goto(&self, path: &str) -> Result<()> {
        self.client.goto(&format!("{}/{}", self.origin, path.trim_start_matches('/'))).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    ///
    /// # Errors
    /// If the script throws.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.client.execute(script, args).await.map_err(|e| anyhow!("script failed: {e}\n{script}"))
    }

    /// Runs `script` until it returns something other than `null`/`false`, for up to `secs`.
    ///
    /// # Errors
    /// If the script throws, or never returns a value in time (`what` says what was awaited).
    pub async fn wait_for(&self, what: &str, secs: u64, script: &str, args: Vec<Value>) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let value = self.js(script, args.clone()).await?;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return Ok(value);
            }
            ensure!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the session (and then chromedriver and the page server).
    pub async fn close(self) {
        let Page { client, server, _driver, .. } = self;
        let _ = client.close().await;
        server.abort();
    }
}
