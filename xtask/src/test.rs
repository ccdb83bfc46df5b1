//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//!
//! Installs missing tools (`cargo xtask setup`), then: fmt, clippy (`-D warnings`, all targets,
//! and again for wasm32), the native test suite, schemathesis against the server's OpenAPI
//! document, the wasm package and its size budget, the dashboard (Trunk) and its size budget,
//! rustdoc with warnings as errors, the example page and the dashboard in headless Chromium, the
//! JS API in headless Chromium (each test command in a process group of its own, ended by its
//! id when it exits; a headless Chromium the browser steps did not start must still answer
//! after them: `group.rs`), and four guards: every relative link of the repository's
//! Markdown names a file of the repository and `docs/spec.md` names every conformance rule id
//! (`docs`), the core's dependency list stays tiny, and the suites that must run tests did run
//! them (a suite that silently runs 0 tests is a failure).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::args::Args;
use crate::bench::ensure_log;
use crate::dashboard::build_dashboard;
use crate::group::{Bystander, count_passed};
use crate::tools::{path_with_tools, setup};
use crate::wasm::build_package;
use crate::workspace::{cargo, root, run, target_dir};
use std::path::PathBuf;
use std::process::Command;

pub const USAGE: &str = "cargo xtask test   (fmt, links, clippy, tests, docs, dependency and suite guards)";

/// Native test suites that must exist and hold at least this many tests.
const REQUIRED_SUITES: &[(&str, &str, usize)] = &[
    ("mechfund-core", "conformance", 2),
    ("mechfund-core", "paths", 4),
    ("mechfund-core", "properties", 3),
    ("mechfund-core", "decide", 10),
    ("mechfund-core", "serialisation", 3),
    ("mechfund-server", "cli", 5),
    ("mechfund-server", "http", 34),
    ("mechfund-server", "serve", 6),
    ("mechfund-server", "admin", 8),
    ("mechfund-server", "stream", 2),
    ("mechfund-server", "ddc", 9),
    ("mechfund-server", "follow", 6),
    ("mechfund-server", "hostile", 5),
    ("mechfund-server", "postgres", 3),
    ("mechfund-server", "postgres_tls", 7),
    ("mechfund-e2e", "embed", 5),
    ("mechfund-e2e", "ddc", 5),
    ("mechfund-e2e", "standalone", 2),
    ("mechfund-e2e", "dashboard", 12),
    ("mechfund-e2e", "live", 8),
    ("mechfund-e2e", "processes", 2),
    ("mechfund-procgroup", "group", 4),
    ("mechfund-pgtest", "cluster", 7),
];

/// The server suites that use a store, run on SQLite and again on PostgreSQL.
const POSTGRES_SUITES: &[&str] = &["http", "serve", "stream", "admin", "hostile"];

/// At least this many of their tests pass on PostgreSQL: 34 `http`, 6 `serve`, 2 `stream`, 7
/// `admin` (the other 6 are about the SQLite file), 5 `hostile`.
const POSTGRES_MINIMUM: usize = 54;

/// The generated logs (events, seed) the dashboard's browser tests load; made here with a
/// release build, before any browser runs (the tests would generate them slowly otherwise).
const DASHBOARD_LOGS: &[(u64, u64)] = &[(1_000_000, 1), (44_000, 1)];

/// The only normal dependencies mechfund-core may have (no I/O: docs/architecture.md).
const CORE_DEPENDENCIES: &[&str] = &["memchr", "serde", "serde_json", "sha2", "thiserror"];

fn step(name: &str) {
    eprintln!("\n== xtask test: {name} ==");
}

pub fn run_tests(args: Args) -> Result<()> {
    args.finish()?;
    step("tools");
    setup()?;
    step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    step("Markdown links stay inside the repository");
    let links = crate::docs::check_links(&root())?;
    eprintln!("{links} links checked: every relative link names a file of the repository");
    step("the spec names every conformance rule");
    let ids = crate::docs::check_spec_rule_ids(&root())?;
    eprintln!("docs/spec.md names all {ids} rule ids of tests/conformance/rules.json");
    step("no import cycles between modules");
    let modules = crate::layout::check_no_cycles(&root())?;
    eprintln!("{modules} modules of the server and the dashboard: no import cycles");
    step("cargo clippy -D warnings");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]))?;
    step("core dependencies");
    check_core_dependencies()?;
    step("clippy for wasm32");
    run(cargo()
        .args(["clippy", "--locked", "-p", "mechfund-wasm", "-p", "mechfund-web", "--target", "wasm32-unknown-unknown"])
        .arg("--all-targets")
        .args(["--", "-D", "warnings"]))?;
    step("cargo test");
    let mut passed = test_workspace(cargo().args(["test", "--workspace", "--locked", "--exclude", "mechfund-e2e"]))?;
    step("the server suites against PostgreSQL");
    // The suites that use a store run again, each data dir with a PostgreSQL database of its own
    // (mechfund-pgtest); clusters on tmpfs when there is one: they start in a third of the time.
    // Not `cli`, `ddc` and `follow`: they replay files or follow DDC's, and use no store.
    let mut on_postgres = cargo();
    on_postgres.args(["test", "--locked", "-p", "mechfund-server"]);
    for suite in POSTGRES_SUITES {
        on_postgres.args(["--test", suite]);
    }
    on_postgres.args(["--", "--skip", "sqlite_file::"]).env("MECHFUND_TEST_STORE", "postgres");
    if std::path::Path::new("/dev/shm").is_dir() {
        on_postgres.env("TMPDIR", "/dev/shm");
    }
    eprintln!(
        "skipped here: the tests in `sqlite_file` modules (the SQLite file's lock, backup and restore, WAL, \
         old schema)"
    );
    let on_postgres = test_workspace(&mut on_postgres)?;
    ensure!(
        on_postgres >= POSTGRES_MINIMUM,
        "only {on_postgres} server tests passed on PostgreSQL; at least {POSTGRES_MINIMUM} must run"
    );
    passed += on_postgres;
    step("schemathesis against mechfund serve (OpenAPI document)");
    crate::schemathesis::schemathesis(crate::schemathesis::EXAMPLES, None)?;
    step("wasm package (size budget)");
    let sizes = build_package()?;
    eprintln!("{sizes}");
    sizes.check_budget()?;
    step("dashboard (trunk build, size budget)");
    let dist = build_dashboard()?;
    eprintln!("{dist}");
    dist.check_budget()?;
    step("required suites ran");
    check_required_suites()?;
    step("cargo doc -D warnings");
    run(cargo().args(["doc", "--workspace", "--no-deps", "--locked"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    // The browser suites are compiled first and their test binaries run directly, each in a
    // process group of its own that is ended when it exits (`count_passed`).
    step("build the browser suites");
    run(cargo().args(["build", "--locked", "--release", "--bin", "mechfund"]))?;
    let mechfund = target_dir()?.join("release/mechfund");
    let e2e = test_executables(cargo().args(["test", "--locked", "--no-run", "-p", "mechfund-e2e", "--tests"]))?;
    let wasm = test_executables(cargo().args([
        "test",
        "--locked",
        "--no-run",
        "-p",
        "mechfund-wasm",
        "--target",
        "wasm32-unknown-unknown",
        "--tests",
    ]))?;
    ensure!(!e2e.is_empty() && !wasm.is_empty(), "the browser suites built no test binaries");
    let data = target_dir()?.join("bench-data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    for &(events, seed) in DASHBOARD_LOGS {
        ensure_log(&data, events, seed)?;
    }
    step("a headless Chromium the browser steps did not start");
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let bystander = Bystander::start(&chromium, &target_dir()?)?;
    step("pages in headless Chromium (mechfund-e2e: the embed page and the dashboard)");
    let mut e2e_passed = 0;
    for exe in &e2e {
        e2e_passed += count_passed(
            Command::new(exe).current_dir(root().join("crates/mechfund-e2e")).env("MECHFUND_BIN", &mechfund),
        )?;
    }
    ensure!(e2e_passed > 0, "the page suites ran no tests");
    passed += e2e_passed;
    step("JS API in headless Chromium (wasm-bindgen-test)");
    let mut wasm_passed = 0;
    for module in &wasm {
        wasm_passed += count_passed(
            Command::new("wasm-bindgen-test-runner")
                .arg(module)
                .current_dir(root().join("crates/mechfund-wasm"))
                .env("PATH", path_with_tools())
                .env("CHROMEDRIVER", "/usr/bin/chromedriver")
                .env("WASM_BINDGEN_TEST_TIMEOUT", "120"),
        )?;
    }
    ensure!(wasm_passed > 0, "the browser suites of mechfund-wasm ran no tests");
    passed += wasm_passed;
    step("the browser steps ended only what they started");
    bystander.answers(Duration::from_secs(5)).context("the browser steps ended a Chromium they did not start")?;
    drop(bystander);
    eprintln!("\nxtask test: all checks passed ({passed} tests)");
    Ok(())
}

/// Builds test binaries with `command` (a `cargo test --no-run`) and returns their paths.
fn test_executables(command: &mut Command) -> Result<Vec<PathBuf>> {
    let output = command.arg("--message-format=json").stderr(Stdio::inherit()).output().context("building tests")?;
    ensure!(output.status.success(), "{command:?} failed ({})", output.status);
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["profile"]["test"] == true
            && let Some(exe) = message["executable"].as_str()
        {
            out.push(PathBuf::from(exe));
        }
    }
    Ok(out)
}

fn check_core_dependencies() -> Result<()> {
    let output = cargo()
        .args(["tree", "-p", "mechfund-core", "-e", "normal", "--depth", "1", "--prefix", "none", "--locked"])
        .output()
        .context("running cargo tree")?;
    ensure!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let deps: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    let extra: Vec<&&str> = deps.iter().filter(|d| !CORE_DEPENDENCIES.contains(d)).collect();
    ensure!(extra.is_empty(), "mechfund-core must stay pure and small; unexpected dependencies: {extra:?}");
    eprintln!("mechfund-core depends on: {}", deps.join(", "));
    Ok(())
}

/// Runs a test command (`cargo test` or a test binary), echoing its output; fails if it fails or ran no test at all, and
/// returns how many tests passed.
fn test_workspace(command: &mut Command) -> Result<usize> {
    let passed = count_passed(command)?;
    ensure!(passed > 0, "{command:?} ran no tests at all");
    Ok(passed)
}

fn check_required_suites() -> Result<()> {
    for &(package, suite, minimum) in REQUIRED_SUITES {
        let output = cargo()
            .args(["test", "--locked", "-p", package, "--test", suite, "--", "--list"])
            .output()
            .with_context(|| format!("listing {package} --test {suite}"))?;
        ensure!(
            output.status.success(),
            "{package} has no test suite {suite:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let count = String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.ends_with(": test")).count();
        ensure!(count >= minimum, "{package} --test {suite} holds {count} tests; at least {minimum} must run");
        eprintln!("{package} --test {suite}: {count} tests");
    }
    Ok(())
}
