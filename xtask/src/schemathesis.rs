//! `cargo xtask schemathesis`: property-based tests of `mechfund serve` against its own OpenAPI
//! document. Starts the debug server on a free port with an empty store (rate limit off) and runs
//! schemathesis (installed by `cargo xtask setup`) with the admin token: every operation, all
//! phases, checks `not_a_server_error`, `response_schema_conformance`, `status_code_conformance`
//! and `content_type_conformance`. Fails on any finding, and when fewer operations were tested
//! than the document lists (a run that tests nothing is a failure, not a pass).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use mechfund_procgroup::Group;

use crate::args::Args;
use crate::tools::schemathesis_bin;
use crate::workspace::{cargo, run, target_dir};

pub const USAGE: &str = "cargo xtask schemathesis [--examples N] [--seed S]   (schemathesis against `mechfund serve`)";

/// Test cases per operation and phase: about a minute on two cores.
pub const EXAMPLES: u32 = 30;

const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance";

const TOKEN: &str = "schemathesis-admin-token";

pub fn run_schemathesis(mut args: Args) -> Result<()> {
    let examples: u32 = args.value("--examples")?.unwrap_or(EXAMPLES);
    let seed: Option<String> = args.value("--seed")?;
    args.finish()?;
    schemathesis(examples, seed.as_deref())
}

/// The server process, killed by its own handle when dropped (also on every early return).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds and starts the server, runs schemathesis against it and checks the report.
pub fn schemathesis(examples: u32, seed: Option<&str>) -> Result<()> {
    let st = schemathesis_bin();
    ensure!(st.is_file(), "{} is missing: run `cargo xtask setup`", st.display());
    run(cargo().args(["build", "--locked", "--quiet", "-p", "mechfund-server", "--bin", "mechfund"]))?;
    let target = target_dir()?;
    let work = target.join(format!("schemathesis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = run_against_server(&target.join("debug/mechfund"), &work, &st, examples, seed);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The operationId of `GET …/events/stream`.
const STREAM_OPERATION: &str = "stream_events";

fn run_against_server(mechfund: &Path, work: &Path, st: &Path, examples: u32, seed: Option<&str>) -> Result<()> {
    let child = Command::new(mechfund)
        .args(["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--data"])
        .arg(work.join("data"))
        .arg("--dist")
        .arg(work.join("no-dist"))
        .arg("--embed")
        .arg(work.join("no-embed"))
        .env("MECHFUND_ADMIN_TOKEN", TOKEN)
        .env("MECHFUND_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", mechfund.display()))?;
    let mut server = Server(child);
    let stdout = server.0.stdout.take().context("server stdout")?;
    let mut line = String::new();
    let mut lines = BufReader::new(stdout);
    lines.read_line(&mut line).context("reading the server's address")?;
    let addr = line.trim().strip_prefix("listening on http://").with_context(|| format!("no address: {line:?}"))?;
    let addr = addr.to_owned();
    std::thread::spawn(move || for _ in lines.lines() {});
    let documented = documented_operations(&addr)?;
    eprintln!("schemathesis: {documented} operations documented at http://{addr}/api/v1/openapi.json");
    let report = work.join("report.json");
    let mut command = Command::new(st);
    command
        .args(["run", &format!("http://{addr}/api/v1/openapi.json"), "--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", &examples.to_string(), "--generation-database", "none", "--no-color"])
        // The event stream never ends (it follows the log); tests/http/stream.rs covers it.
        .args(["--exclude-operation-id", STREAM_OPERATION])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .current_dir(work);
    if let Some(seed) = seed {
        command.args(["--seed", seed]);
    }
    let started = std::time::Instant::now();
    // In a process group of its own, ended (with anything it started) once it exits.
    let status = Group::spawn(command.stdin(Stdio::null()))
        .and_then(|mut schemathesis| schemathesis.wait())
        .with_context(|| format!("running {}", st.display()))?;
    drop(server);
    let text = std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).context("parsing the schemathesis report")?;
    let tested = report["operations"]["tested"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let generated = report["test_cases"]["generated"].as_u64().unwrap_or(0);
    let failures = report["failures"].as_array().map_or(0, Vec::len);
    let errors = report["errors"].as_array().map_or(0, Vec::len);
    eprintln!(
        "schemathesis: {tested} operations (of {documented}, the document's own left out), {generated} test cases, {failures} failures, {errors} errors \
         in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    ensure!(status.success(), "schemathesis found problems ({status}); see above");
    ensure!(failures == 0 && errors == 0, "schemathesis reported {failures} failures and {errors} errors");
    // Every operation but `GET /api/v1/openapi.json` itself, which schemathesis leaves out of a
    // run loaded from it (the document is fetched and parsed above and by tests/http/openapi.rs), and
    // the event stream, left out above.
    let expected = documented.saturating_sub(2);
    ensure!(
        expected > 0 && tested == expected,
        "schemathesis tested {tested} operations; the document lists {expected} besides itself and the stream"
    );
    ensure!(generated > 0, "schemathesis generated no test cases");
    Ok(())
}

/// How many operations the served document lists (a plain HTTP/1.0 GET: no client needed).
fn documented_operations(addr: &str) -> Result<usize> {
    let mut stream = std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    write!(stream, "GET /api/v1/openapi.json HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the OpenAPI document")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).context("no body in the document's response")?;
    let doc: serde_json::Value = serde_json::from_str(body).context("the OpenAPI document is not JSON")?;
    let paths = doc["paths"].as_object().context("the OpenAPI document has no paths")?;
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    Ok(paths.values().map(|item| methods.iter().filter(|m| item.get(**m).is_some()).count()).sum())
}
