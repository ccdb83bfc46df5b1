//! `cargo xtask dashboard`: builds the Yew dashboard into `dist/` with Trunk and checks its
//! size budget (issue 4: wasm + js + css <= 300 KB gzipped). `cargo xtask serve`: builds it and
//! the server and runs `mechfund serve` on loopback (store in `./data`) until interrupted.

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

Builds the dashboard (as `cargo xtask dashboard`) and the release `mechfund`, then runs
`mechfund serve` on http://127.0.0.1:PORT/ with its SQLite store in ./data until interrupted.
Open the printed URL: the dashboard shows the store's `main` mech (or, while it is empty, the
first-visit screen); `?log=samples/ddc-mixed-1500.jsonl` loads a bundled sample instead.";

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
    let bin = crate::bench::release_mechfund(None)?;
    let data = root().join("data");
    let url = format!("http://127.0.0.1:{port}/");
    println!("\nThe dashboard is at {url}  (Ctrl-C stops the server)");
    println!(
        "Its store is {} (SQLite); writes need the admin token in {}",
        data.display(),
        data.join("admin-token").display()
    );
    println!("(or MECHFUND_ADMIN_TOKEN). An empty store shows the first-visit screen: load the bundled sample there.");
    run(Command::new(&bin)
        .args(["serve", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(&data)
        .arg("--dist")
        .arg(dist_dir())
        .current_dir(root())
        .stdin(Stdio::null()))
    .with_context(|| format!("running {} serve (is port {port} in use? pick another with --port)", bin.display()))
}
