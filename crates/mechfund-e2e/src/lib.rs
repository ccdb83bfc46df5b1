//! mechfund-e2e: the harness of the browser end-to-end tests (the tests are in `tests/`).
//!
//! It starts chromedriver on a free port, serves `examples/embed/` or the built dashboard `dist/`
//! (plus test-specific routes) on 127.0.0.1, and opens a headless Chromium session with the flags
//! that work on a machine running as root without network (`CHROMIUM_FLAGS`). It also finds and
//! runs the real `mechfund` binary, whose output the pages are checked against, and generates
//! (and caches) large seeded logs.
//!
//! It is not a test framework: a missing prerequisite (the built JS package or dashboard,
//! chromedriver, Chromium, the release binary) is an error that says how to get it, so the tests
//! fail instead of skipping.
//!
//! It ends exactly what it starts: chromedriver runs with no stdin, stdout or stderr of ours in
//! a process group of its own ([`mechfund_procgroup::Group`]), with the Chromium it starts, and
//! closing or dropping the [`Page`] ends that group by its id. (Chromium's crash handler,
//! `chrome_crashpad_handler`, puts itself in a session of its own; it holds nothing of ours and
//! exits once the browser it watches is gone.) A [`MechfundServer`] is ended by its own child
//! handle. Both are drop guards, so a failing test ends them too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Router;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use mechfund_procgroup::Group;
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
pub const BUILD_PACKAGE: &str = "cargo xtask wasm   (cargo build, wasm-bindgen, wasm-opt, and the package's \
    hand-written entry module and stylesheet from crates/mechfund-wasm)";

/// How to build the dashboard, for messages.
pub const BUILD_DASHBOARD: &str = "cargo xtask dashboard   (or by hand: PATH=$PWD/node_modules/.bin:$PATH trunk \
    build --release --offline)";

/// Reads the `<mechfund-progress>` element matching the selector `arguments[0]` once it is
/// ready or failed (else `null`): its `data-status`, and each part (`level`, `evo-bar`,
/// `power-bar`, `total`, `error`) with its text, visibility, attributes and computed text styles.
pub const READ_ELEMENT: &str = r#"
const el = document.querySelector(arguments[0]);
if (!el || !el.shadowRoot) return null;
const status = el.getAttribute("data-status");
if (status !== "ready" && status !== "error") return null;
const part = (name) => {
  const e = el.shadowRoot.querySelector(`[part~="${name}"]`);
  if (!e) return null;
  const attrs = Object.fromEntries([...e.attributes].map((a) => [a.name, a.value]));
  const style = getComputedStyle(e);
  return { text: e.textContent, visible: e.checkVisibility(), attrs,
           textAlign: style.textAlign, letterSpacing: style.letterSpacing, textTransform: style.textTransform };
};
return { status, level: part("level"), evo: part("evo-bar"), power: part("power-bar"), total: part("total"),
         error: part("error") };
"#;

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    // The first directory holding this crate above the manifest dir cargo sets when it runs the
    // tests (`cargo xtask test` runs them with its own), else above the current dir. Not the
    // compile-time manifest dir first: it names the checkout this library was built in, which a
    // shared target dir reuses for other checkouts.
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let starts =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).into_iter().chain(std::env::current_dir().ok());
    starts
        .chain([compiled.clone()])
        .find_map(|start| {
            start.ancestors().find(|dir| dir.join("crates/mechfund-e2e/Cargo.toml").is_file()).map(Path::to_path_buf)
        })
        .unwrap_or_else(|| compiled.join("../.."))
}

/// `examples/embed/`, the directory the static server serves.
#[must_use]
pub fn embed_dir() -> PathBuf {
    workspace_root().join("examples/embed")
}

/// `dist/`, the dashboard Trunk builds (`trunk build --release --offline`).
#[must_use]
pub fn dist_dir() -> PathBuf {
    workspace_root().join("dist")
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
    for file in ["mechfund-progress.js", "mechfund-progress.css", "mechfund_wasm.js", "mechfund_wasm_bg.wasm"] {
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
        &[
            root.join("crates/mechfund-core/src"),
            root.join("crates/mechfund-wasm/src"),
            root.join("crates/mechfund-wasm/js"),
        ],
        BUILD_PACKAGE,
    )
}

/// Checks that the dashboard is built into `dist/` (with the bundled sample) and is not older
/// than its sources (`web/`, `mechfund-core`, `index.html`, `Trunk.toml`, the sample).
///
/// # Errors
/// If `dist/` lacks the page, its wasm or the sample, or is stale; the message says how to build it.
pub fn require_dashboard() -> Result<()> {
    let dist = dist_dir();
    let index = dist.join("index.html");
    ensure!(
        index.is_file(),
        "the dashboard is not built ({} is missing): build it with\n  {BUILD_DASHBOARD}",
        index.display()
    );
    let has_wasm = std::fs::read_dir(&dist)
        .with_context(|| dist.display().to_string())?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with("_bg.wasm"));
    ensure!(has_wasm, "{} holds no *_bg.wasm: rebuild the dashboard with\n  {BUILD_DASHBOARD}", dist.display());
    let sample = dist.join("samples/ddc-mixed-1500.jsonl");
    ensure!(
        sample.is_file(),
        "{} is missing (index.html copies it): rebuild the dashboard with\n  {BUILD_DASHBOARD}",
        sample.display()
    );
    let root = workspace_root();
    check_fresh(
        &index,
        &[
            root.join("web"),
            root.join("index.html"),
            root.join("Trunk.toml"),
            root.join("tests/samples/ddc-mixed-1500.jsonl"),
            root.join("crates/mechfund-core/src"),
        ],
        BUILD_DASHBOARD,
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

/// A seeded generated log of `events` lines (mech "main", default rules; see mechfund-loggen),
/// cached in `<target dir>/bench-data/` under the name and stamp `cargo xtask bench` uses, so
/// either one reuses the other's file. Generated here (slowly, in a debug build) if missing;
/// `cargo xtask test` makes the ones the tests use with a release build first.
///
/// # Errors
/// If the log cannot be written.
pub fn generated_log(events: u64, seed: u64) -> Result<PathBuf> {
    let version = mechfund_loggen::GENERATOR_VERSION;
    let name = format!("events-{events}-seed{seed}-v{version}.jsonl");
    let expected = |bytes: u64| format!("events={events} seed={seed} version={version} bytes={bytes}\n");
    let dirs: Vec<PathBuf> = target_dirs().into_iter().map(|d| d.join("bench-data")).collect();
    for dir in &dirs {
        let path = dir.join(&name);
        if let (Ok(m), Ok(text)) =
            (std::fs::metadata(&path), std::fs::read_to_string(path.with_extension("jsonl.meta")))
            && text == expected(m.len())
        {
            return Ok(path);
        }
    }
    let dir = dirs.first().context("no target directory")?;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let path = dir.join(&name);
    eprintln!("generating {} (cached for later runs) ...", path.display());
    // Through a per-process temporary file: parallel tests may generate the same log.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp).with_context(|| tmp.display().to_string())?;
    let stats = mechfund_loggen::write_log(file, events, seed).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    std::fs::write(path.with_extension("jsonl.meta"), expected(stats.bytes))?;
    Ok(path)
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

/// chromedriver in a process group of its own, with no stdin, stdout or stderr of ours; dropping
/// it ends the group (chromedriver and the browser it started) by its id.
#[derive(Debug)]
struct Chromedriver {
    group: Group,
    port: u16,
}

impl Chromedriver {
    async fn start() -> Result<Chromedriver> {
        let install = "install it with `apt-get install -y chromium chromium-driver`";
        let driver = program("CHROMEDRIVER", "/usr/bin/chromedriver", install)?;
        let port = free_port()?;
        let group = Group::spawn(
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .with_context(|| format!("starting {}", driver.display()))?;
        let mut driver = Chromedriver { group, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if !driver.group.running()? {
                bail!("chromedriver exited at start ({})", driver.group.end()?);
            }
            ensure!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(driver)
    }
}

/// A browser session on a page server: a directory (`examples/embed/` or `dist/`) plus the
/// given routes.
#[derive(Debug)]
pub struct Page {
    /// The WebDriver client.
    pub client: Client,
    /// `http://127.0.0.1:PORT`, the page server's origin.
    pub origin: String,
    /// The page server, unless the pages are served elsewhere ([`Page::connect`]).
    server: Option<tokio::task::JoinHandle<()>>,
    _driver: Chromedriver,
}

/// Starts chromedriver and opens a headless Chromium session through it.
async fn session(chromium: &Path, flags: &[&str]) -> Result<(Client, Chromedriver)> {
    let driver = Chromedriver::start().await?;
    let capabilities = json!({
        "goog:chromeOptions": { "binary": chromium, "args": CHROMIUM_FLAGS.iter().chain(flags).collect::<Vec<_>>() }
    });
    let Value::Object(capabilities) = capabilities else { bail!("capabilities are an object") };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .context("opening a Chromium session through chromedriver")?;
    Ok((client, driver))
}

impl Page {
    /// Checks the prerequisites, starts the page server on `examples/embed/` and chromedriver,
    /// and opens a session.
    ///
    /// # Errors
    /// A missing package, chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open(routes: Router) -> Result<Page> {
        require_package()?;
        Page::open_dir(&embed_dir(), routes).await
    }

    /// Like [`Page::open`], on the built dashboard `dist/`.
    ///
    /// # Errors
    /// A missing or stale `dist/`, chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open_dashboard(routes: Router) -> Result<Page> {
        Page::open_dashboard_with(routes, &[]).await
    }

    /// Like [`Page::open_dashboard`], with extra Chromium flags (e.g. `--force-dark-mode`, which
    /// makes `prefers-color-scheme: dark` match).
    ///
    /// # Errors
    /// A missing or stale `dist/`, chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open_dashboard_with(routes: Router, flags: &[&str]) -> Result<Page> {
        require_dashboard()?;
        Page::open_dir_with(&dist_dir(), routes, flags).await
    }

    /// Serves `dir` (after `routes`), starts chromedriver and opens a session.
    ///
    /// # Errors
    /// A missing chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open_dir(dir: &Path, routes: Router) -> Result<Page> {
        Page::open_dir_with(dir, routes, &[]).await
    }

    /// Like [`Page::open_dir`], with Chromium flags added to [`CHROMIUM_FLAGS`].
    ///
    /// # Errors
    /// A missing chromedriver or Chromium, or a session that cannot be opened.
    pub async fn open_dir_with(dir: &Path, routes: Router, flags: &[&str]) -> Result<Page> {
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "install it with `apt-get install -y chromium`")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let app = routes.fallback_service(ServeDir::new(dir));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (client, driver) = session(&chromium, flags).await?;
        Ok(Page { client, origin, server: Some(server), _driver: driver })
    }

    /// A browser session on pages served elsewhere (e.g. by a [`MechfundServer`] at `origin`).
    ///
    /// # Errors
    /// A missing chromedriver or Chromium, or a session that cannot be opened.
    pub async fn connect(origin: &str, flags: &[&str]) -> Result<Page> {
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "install it with `apt-get install -y chromium`")?;
        let (client, driver) = session(&chromium, flags).await?;
        Ok(Page { client, origin: origin.trim_end_matches('/').to_owned(), server: None, _driver: driver })
    }

    /// The id of the process group chromedriver and its browser run in (chromedriver's pid);
    /// the group is ended when the page is closed or dropped.
    #[must_use]
    pub fn process_group(&self) -> u32 {
        self._driver.group.id()
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
        if let Some(server) = server {
            server.abort();
        }
    }
}

/// A real `mechfund serve` process (the release binary of [`mechfund_bin`]) serving the built
/// dashboard and a JS package directory, with writes unthrottled; killed when dropped. It can
/// be killed and started again on the same address and data dir.
#[derive(Debug)]
pub struct MechfundServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    args: Vec<std::ffi::OsString>,
    token: String,
    stderr: PathBuf,
}

impl MechfundServer {
    /// Starts `mechfund serve --addr 127.0.0.1:0 --data DATA --dist dist/ --embed EMBED
    /// --rate-limit 0` with `MECHFUND_ADMIN_TOKEN=token` and waits for its address.
    ///
    /// # Errors
    /// A missing binary or dashboard, or a server that does not start.
    pub fn start(data: &Path, embed: &Path, token: &str) -> Result<MechfundServer> {
        require_dashboard()?;
        let bin = mechfund_bin()?;
        let mut args: Vec<std::ffi::OsString> = vec!["serve".into(), "--data".into(), data.into()];
        args.extend(["--dist".into(), dist_dir().into(), "--embed".into(), embed.into()]);
        args.extend(["--rate-limit".into(), "0".into(), bin.into()]);
        let mut server = MechfundServer {
            child: None,
            origin: String::new(),
            args,
            token: token.to_owned(),
            stderr: data.with_extension("stderr.log"),
        };
        server.spawn("127.0.0.1:0")?;
        Ok(server)
    }

    fn spawn(&mut self, addr: &str) -> Result<()> {
        use std::io::{BufRead, BufReader};
        let (bin, args) = self.args.split_last().context("arguments")?;
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr)?;
        let mut child = Command::new(bin)
            .args(args)
            .args(["--addr", addr])
            .env("MECHFUND_ADMIN_TOKEN", &self.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", Path::new(bin).display()))?;
        let stdout = child.stdout.take();
        // Held by `self` from here on, so that every way out below (and a drop) ends it.
        self.child = Some(child);
        let mut out = BufReader::new(stdout.context("stdout")?);
        let mut line = String::new();
        let read = out.read_line(&mut line);
        let Some(origin) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            self.kill();
            bail!("mechfund serve printed no address ({read:?}, {line:?}); stderr: {}", self.stderr_text());
        };
        std::thread::spawn(move || for _ in out.lines() {});
        self.origin = origin;
        Ok(())
    }

    /// What the server wrote to stderr so far.
    #[must_use]
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL: the server stops at once (open streams break).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address and data dir.
    ///
    /// # Errors
    /// If it does not start (e.g. the port was taken meanwhile).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let addr = self.origin.trim_start_matches("http://").to_owned();
        self.spawn(&addr)
    }

    /// `{origin}/api/v1{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.origin)
    }
}

impl Drop for MechfundServer {
    fn drop(&mut self) {
        self.kill();
    }
}
