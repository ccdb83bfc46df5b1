//! `cargo xtask setup`: installs what the wasm build and the browser tests need, idempotently.
//!
//! Every tool is version-checked first, so a second run on a warm machine costs nothing:
//! the wasm32 target and rust-src, wasm-bindgen-cli equal to the `wasm-bindgen` locked in Cargo.lock,
//! Trunk (the dashboard's build), Chromium + ChromeDriver (Debian packages), and the npm packages
//! of package.json: binaryen (`wasm-opt`, first on PATH) and axe-core (the dashboard's
//! accessibility check), schemathesis (PyPI, pinned) in a venv under `~/.cache`, and
//! PostgreSQL 15 (Debian's `postgresql-15`, whose `initdb` and `postgres` the throwaway
//! clusters of `mechfund-pgtest` run).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::args::Args;
use crate::workspace::{root, run};

pub const USAGE: &str = "cargo xtask setup   (install the wasm target, wasm-bindgen-cli, trunk, Chromium, wasm-opt, axe-core, schemathesis, PostgreSQL 15)";

/// The version of binaryen whose `wasm-opt` understands what rustc 1.95 emits.
const BINARYEN: &str = "132";

/// The Trunk that builds the dashboard: 0.22 needs rustc >= 1.96.
const TRUNK: &str = "0.21.14";

/// The schemathesis that tests the server against its OpenAPI document (`cargo xtask schemathesis`).
const SCHEMATHESIS: &str = "4.32.5";

/// The PostgreSQL major version the tests run against, and where Debian's package puts its
/// programs (`mechfund-pgtest` looks there unless `MECHFUND_PG_BIN` names another directory).
const POSTGRES_MAJOR: &str = "15";
const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
const POSTGRES_BIN_ENV: &str = "MECHFUND_PG_BIN";

pub fn run_setup(args: Args) -> Result<()> {
    args.finish()?;
    setup()
}

/// Installs whatever is missing.
pub fn setup() -> Result<()> {
    wasm_target()?;
    wasm_bindgen_cli()?;
    trunk()?;
    chromium()?;
    npm_packages()?;
    schemathesis()?;
    postgresql()?;
    Ok(())
}

/// The Python venv that holds schemathesis: `$HOME/.cache/mechfund-venv`.
fn venv() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".cache/mechfund-venv")
}

/// The `schemathesis` executable of the venv.
pub fn schemathesis_bin() -> PathBuf {
    venv().join("bin/schemathesis")
}

/// `pip install schemathesis==SCHEMATHESIS` into the venv unless that version is there.
fn schemathesis() -> Result<()> {
    let have = output(&schemathesis_bin().to_string_lossy(), &["--version"]).unwrap_or_default();
    if have.split_whitespace().last() == Some(SCHEMATHESIS) {
        eprintln!("setup: schemathesis {SCHEMATHESIS} present");
        return Ok(());
    }
    eprintln!("setup: installing schemathesis {SCHEMATHESIS} into {} (have: {:?})", venv().display(), have.trim());
    if !venv().join("bin/python").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv()))?;
    }
    run(Command::new(venv().join("bin/pip")).args(["install", "--quiet", &format!("schemathesis=={SCHEMATHESIS}")]))
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wasm_target() -> Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        eprintln!("setup: wasm32-unknown-unknown target present");
    } else {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    // The standard library's source, which the embeddable package's size build recompiles.
    let components = output("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    if components.lines().any(|l| l.trim() == "rust-src") {
        eprintln!("setup: rust-src present");
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

/// The `wasm-bindgen` version Cargo.lock pins.
pub fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines.next().and_then(|v| v.strip_prefix("version = \"")?.strip_suffix('"'));
            return version.map(str::to_owned).context("Cargo.lock: wasm-bindgen has no version");
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

fn wasm_bindgen_cli() -> Result<()> {
    let want = locked_wasm_bindgen()?;
    let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    let runner = output("wasm-bindgen-test-runner", &["--version"]).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) && runner.contains(&want) {
        eprintln!("setup: wasm-bindgen-cli {want} present");
        return Ok(());
    }
    eprintln!("setup: installing wasm-bindgen-cli {want} (have: {:?}); about 2 minutes", have.trim());
    // `--locked` fails for 0.2.130 (a locked dependency is missing from the registry).
    run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &want, "--force"]))
}

fn trunk() -> Result<()> {
    let have = Command::new("trunk")
        .arg("--version")
        .env("PATH", path_with_tools())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if have == format!("trunk {TRUNK}") {
        eprintln!("setup: trunk {TRUNK} present");
        return Ok(());
    }
    eprintln!("setup: installing trunk {TRUNK} (have: {have:?}); about 6-11 minutes");
    run(Command::new("cargo").args(["install", "--locked", "trunk", "--version", TRUNK, "--force"]))
}

fn chromium() -> Result<()> {
    let have = |p: &str| PathBuf::from(p).exists();
    if have("/usr/bin/chromium") && have("/usr/bin/chromedriver") {
        eprintln!("setup: chromium and chromedriver present");
        return Ok(());
    }
    eprintln!("setup: installing Debian's chromium and chromium-driver");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The version `postgres --version` of `bin` reports (`15.18` of `postgres (PostgreSQL) 15.18
/// (Debian 15.18-0+deb12u1)`), if `bin` also holds `initdb`.
fn postgres_version(bin: &Path) -> Option<String> {
    if !bin.join("initdb").is_file() {
        return None;
    }
    let version = output(&bin.join("postgres").to_string_lossy(), &["--version"])?;
    version.split_whitespace().nth(2).map(str::to_owned)
}

/// Debian's `postgresql-15` unless its `postgres --version` says 15.x; a directory named by
/// `MECHFUND_PG_BIN` is used as it is. Installing it also creates and starts Debian's system
/// cluster (port 5432); nothing here uses that one.
fn postgresql() -> Result<()> {
    if let Some(bin) = std::env::var_os(POSTGRES_BIN_ENV).map(PathBuf::from) {
        let version = postgres_version(&bin)
            .with_context(|| format!("{POSTGRES_BIN_ENV}={} holds no initdb and postgres that run", bin.display()))?;
        eprintln!("setup: PostgreSQL {version} in {} ({POSTGRES_BIN_ENV})", bin.display());
        return Ok(());
    }
    let bin = Path::new(POSTGRES_BIN);
    let is_wanted =
        |version: &Option<String>| version.as_deref().is_some_and(|v| v.split('.').next() == Some(POSTGRES_MAJOR));
    let have = postgres_version(bin);
    if is_wanted(&have) {
        eprintln!("setup: PostgreSQL {} present", have.unwrap_or_default());
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!(
            "PostgreSQL {POSTGRES_MAJOR} is missing from {POSTGRES_BIN} (have: {have:?}); the tests start throwaway \
             clusters with it. Install Debian's package as root (`apt-get install postgresql-{POSTGRES_MAJOR}`), \
             or set {POSTGRES_BIN_ENV} to the bin directory of a PostgreSQL {POSTGRES_MAJOR}"
        );
    }
    eprintln!("setup: installing Debian's postgresql-{POSTGRES_MAJOR} (have: {have:?})");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", &format!("postgresql-{POSTGRES_MAJOR}")])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let have = postgres_version(bin);
    if !is_wanted(&have) {
        bail!("installed postgresql-{POSTGRES_MAJOR}, but {POSTGRES_BIN}/postgres reports {have:?}");
    }
    Ok(())
}

/// `node_modules/.bin`, where npm's wasm-opt lives; it must come first on PATH (Trunk and our
/// build run the first `wasm-opt` they find, and Debian's is too old).
pub fn node_bin() -> PathBuf {
    root().join("node_modules/.bin")
}

/// The version of the npm package `name` that package.json pins, and the one installed.
fn npm_versions(name: &str) -> Result<(String, Option<String>)> {
    let read = |path: PathBuf| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let manifest = read(root().join("package.json"))?;
    let want =
        manifest["devDependencies"][name].as_str().with_context(|| format!("package.json pins no {name}"))?.to_owned();
    let have = read(root().join("node_modules").join(name).join("package.json"))
        .ok()
        .and_then(|m| m["version"].as_str().map(str::to_owned));
    Ok((want, have))
}

/// `npm ci` unless npm's wasm-opt is binaryen 132 and axe-core is the version package.json pins.
fn npm_packages() -> Result<()> {
    let wasm_opt = node_bin().join("wasm-opt");
    let version = output(&wasm_opt.to_string_lossy(), &["--version"]).unwrap_or_default();
    let binaryen_ok = version.contains(&format!("version {BINARYEN}"));
    let (axe_want, axe_have) = npm_versions("axe-core")?;
    let axe_ok =
        axe_have.as_deref() == Some(axe_want.as_str()) && root().join("node_modules/axe-core/axe.min.js").is_file();
    if binaryen_ok && axe_ok {
        eprintln!("setup: wasm-opt {BINARYEN} and axe-core {axe_want} present");
        return Ok(());
    }
    eprintln!("setup: installing npm binaryen@{BINARYEN} and axe-core@{axe_want} (npm ci)");
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root()))
}

/// PATH with `node_modules/.bin` and cargo's bin directory first.
pub fn path_with_tools() -> std::ffi::OsString {
    let mut paths = vec![node_bin()];
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        paths.push(home.join("bin"));
    }
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap_or_default()
}
