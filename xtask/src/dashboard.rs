//! `cargo xtask dashboard`: builds the Yew dashboard into `dist/` with Trunk and checks its
//! size budget (issue 4: wasm + js + css <= 300 KB gzipped). `cargo xtask serve`: builds it and
//! serves `dist/` on loopback until interrupted.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use crate::args::Args;
use crate::tools::{path_with_tools, setup};
use crate::wasm::gzip_len;
use crate::workspace::{root, run};

pub const USAGE: &str = "cargo xtask dashboard   (trunk build --release --offline into dist/, then the size budget: \
    wasm + js + css <= 300 KB gzipped)";

pub const SERVE_USAGE: &str = "cargo xtask serve [--port 8080]

Builds the dashboard (as `cargo xtask dashboard`) and serves dist/ on http://127.0.0.1:PORT/
until interrupted. Open the printed URL; `?log=samples/ddc-mixed-1500.jsonl` loads the bundled
sample, `&now=2029-03-14T00:00:00Z` freezes the clock, `&members=N` presets the what-if.";

/// The dashboard's transfer budget: its `.wasm`, `.js` and `.css`, gzipped (issue 4).
pub const DASHBOARD_GZIP_BUDGET: u64 = 300 * 1024;

/// `dist/`, where Trunk writes the dashboard.
pub fn dist_dir() -> PathBuf {
    root().join("dist")
}

pub fn run_dashboard(args: Args) -> Result<()> {
    args.finish()?;
    setup()?;
    let sizes = build_dashboard()?;
    eprintln!("{sizes}");
    sizes.check_budget()
}

/// One built file and its sizes.
pub struct Asset {
    pub name: String,
    pub bytes: u64,
    pub gzip: u64,
}

/// The sizes of the dashboard's transferred assets.
pub struct DistSizes {
    pub assets: Vec<Asset>,
}

impl DistSizes {
    /// The gzipped total of the assets.
    pub fn gzip_total(&self) -> u64 {
        self.assets.iter().map(|a| a.gzip).sum()
    }

    /// Fails if the total is over [`DASHBOARD_GZIP_BUDGET`].
    pub fn check_budget(&self) -> Result<()> {
        let total = self.gzip_total();
        ensure!(
            total <= DASHBOARD_GZIP_BUDGET,
            "the dashboard is {total} bytes gzipped (wasm + js + css), over its {DASHBOARD_GZIP_BUDGET} byte \
             budget; see BENCHMARKS.md"
        );
        Ok(())
    }
}

impl std::fmt::Display for DistSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kb = |n: u64| n as f64 / 1024.0;
        writeln!(f, "dashboard (dist/):")?;
        for a in &self.assets {
            writeln!(f, "  {:<48} {:>8.1} KB  {:>7.1} KB gzipped", a.name, kb(a.bytes), kb(a.gzip))?;
        }
        write!(
            f,
            "  total transferred (wasm + js + css, gzipped): {:.1} KB of {:.0} KB",
            kb(self.gzip_total()),
            kb(DASHBOARD_GZIP_BUDGET)
        )
    }
}

/// Runs `trunk build --release --offline` (npm's wasm-opt and cargo's bin first on PATH; the
/// target dir is whatever the environment says) and measures `dist/`.
pub fn build_dashboard() -> Result<DistSizes> {
    run(Command::new("trunk")
        .args(["build", "--release", "--offline"])
        .current_dir(root())
        .env("PATH", path_with_tools())
        .env("CARGO_CACHE_RUSTC_INFO", "0")
        .stdin(Stdio::null()))
    .context("building the dashboard (`cargo xtask setup` installs trunk, wasm-bindgen-cli and wasm-opt)")?;
    dist_sizes(&dist_dir())
}

/// The `.wasm`, `.js` and `.css` files at the top of `dist` and their gzipped sizes.
pub fn dist_sizes(dist: &Path) -> Result<DistSizes> {
    let mut assets = Vec::new();
    for entry in std::fs::read_dir(dist).with_context(|| format!("reading {}", dist.display()))? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if path.is_file() && matches!(ext, "wasm" | "js" | "css") {
            assets.push(Asset {
                name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                bytes: std::fs::metadata(&path)?.len(),
                gzip: gzip_len(&path)?,
            });
        }
    }
    ensure!(
        assets.iter().any(|a| a.name.ends_with(".wasm")),
        "{} holds no .wasm: the dashboard build produced nothing",
        dist.display()
    );
    assets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(DistSizes { assets })
}

pub fn run_serve(mut args: Args) -> Result<()> {
    let port: u16 = args.value("--port")?.unwrap_or(8080);
    args.finish()?;
    setup()?;
    let sizes = build_dashboard()?;
    eprintln!("{sizes}");
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("listening on 127.0.0.1:{port} (is it in use? pick another with --port)"))?;
    let url = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
    println!("\nThe dashboard is at {url}");
    println!("With the bundled sample loaded: {url}?log=samples/ddc-mixed-1500.jsonl");
    println!("(serving {} until Ctrl-C)", dist_dir().display());
    let dist = dist_dir();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let dist = dist.clone();
        std::thread::spawn(move || {
            // A client that goes away mid-response is not our problem.
            let _ = respond(stream, &dist);
        });
    }
    Ok(())
}

/// The content type of a file the dashboard serves (`.wasm` must be `application/wasm` for
/// streaming compilation).
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "jsonl" | "txt" | "log" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The file under `dist` a request path names, if it is one (no `..`, `/` is `index.html`).
fn resolve(dist: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut decoded = Vec::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) =
                bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
        {
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(decoded).ok()?;
    let mut file = dist.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." || part.contains('\\') {
            return None;
        }
        file.push(part);
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

/// Answers one HTTP/1.1 request (GET or HEAD) from `dist`, then closes the connection.
fn respond(stream: TcpStream, dist: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
    let mut out = std::io::BufWriter::new(stream);
    if method != "GET" && method != "HEAD" {
        write!(
            out,
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return out.flush();
    }
    let Some(file) = resolve(dist, target) else {
        let body = "not found\n";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            if method == "GET" { body } else { "" }
        )?;
        return out.flush();
    };
    let mut body = std::fs::File::open(&file)?;
    let len = body.metadata()?.len();
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        content_type(&file)
    )?;
    if method == "GET" {
        std::io::copy(&mut body, &mut out)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_stay_inside_dist() {
        let dist = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(dist.join("samples")).expect("temp dir");
        std::fs::write(dist.join("index.html"), "<!doctype html>").expect("write");
        std::fs::write(dist.join("samples/a b.jsonl"), "{}").expect("write");
        assert_eq!(resolve(&dist, "/"), Some(dist.join("index.html")));
        assert_eq!(resolve(&dist, "/?log=samples/x.jsonl&now=1"), Some(dist.join("index.html")));
        assert_eq!(resolve(&dist, "/samples/a%20b.jsonl"), Some(dist.join("samples/a b.jsonl")));
        assert_eq!(resolve(&dist, "/samples/"), None);
        assert_eq!(resolve(&dist, "/../Cargo.toml"), None);
        assert_eq!(resolve(&dist, "/samples/%2e%2e/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(&dist, "/missing.js"), None);
        assert_eq!(content_type(Path::new("x_bg.wasm")), "application/wasm");
        let _ = std::fs::remove_dir_all(&dist);
    }
}
