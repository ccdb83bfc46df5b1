//! `cargo xtask bench`: replay throughput and peak RSS of the `mechfund` binary on generated
//! logs, printed as a Markdown table (the method is in BENCHMARKS.md).

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::args::Args;
use crate::workspace;

pub const USAGE: &str =
    "cargo xtask bench [--runs N] [--sizes 100000,1000000] [--seed S] [--bin PATH] [--quick] [--no-wasm]

Builds `mechfund` in release (or uses --bin), generates seeded logs under
<target dir>/bench-data (reused when events, seed and generator version match), checks one
replay of each, then times `mechfund replay FILE` N times (default 5) after a warm-up run and
measures its peak RSS and CPU time with /usr/bin/time -f '%M %U %S'. The smallest log is also replayed from FILE.gz
and from stdin (`-`); `cat FILE` and `wc -l FILE` are timed on every log for context.
--quick is --runs 2 --sizes 100000 (a smoke test, e.g. for CI).";

/// The targets for the 1M-event log (BENCHMARKS.md).
const TARGET_SECS: f64 = 0.3;
const TARGET_RSS_MIB: f64 = 64.0;
const GNU_TIME: &str = "/usr/bin/time";

struct Options {
    runs: usize,
    sizes: Vec<u64>,
    seed: u64,
    bin: Option<PathBuf>,
    /// Also time `replayLog` in Chromium against native replay (`--no-wasm` skips it).
    wasm: bool,
}

pub fn run(mut args: Args) -> Result<()> {
    let quick = args.flag("--quick");
    let sizes = match args.value::<String>("--sizes")? {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().replace('_', "").parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .context("--sizes: a comma-separated list of event counts")?,
        None if quick => vec![100_000],
        None => vec![100_000, 1_000_000],
    };
    let options = Options {
        runs: args.value("--runs")?.unwrap_or(if quick { 2 } else { 5 }).max(1),
        sizes,
        seed: args.value("--seed")?.unwrap_or(1),
        bin: args.value("--bin")?,
        wasm: !args.flag("--no-wasm"),
    };
    args.finish()?;
    ensure!(
        !options.sizes.is_empty() && options.sizes.iter().all(|&n| n > 0),
        "--sizes: give at least one positive event count"
    );
    if !Path::new(GNU_TIME).is_file() {
        bail!(
            "{GNU_TIME} is missing: peak RSS is measured with GNU time's `-f %M`; \
             install it (Debian: `apt-get install time`) and run again"
        );
    }
    bench(&options)
}

fn bench(options: &Options) -> Result<()> {
    let target = workspace::target_dir()?;
    let bin = release_mechfund(options.bin.as_deref())?;
    let data = target.join("bench-data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let load_before = load_average();
    eprintln!("machine: {}", machine());
    if load_before > 0.5 {
        eprintln!(
            "warning: load average {load_before:.2} before the run: something else is using the \
             CPU, so the times will be noisy"
        );
    }

    let mut rows = Vec::new();
    let mut target_row = None;
    let smallest = options.sizes.iter().copied().min().unwrap_or(0);
    for &events in &options.sizes {
        let log = ensure_log(&data, events, options.seed)?;
        let bytes = std::fs::metadata(&log)?.len();
        let name = count_label(events);
        let file = log.display().to_string();
        let replay =
            |input: Input| Job { bin: bin.clone(), args: vec!["replay".into(), input.arg()], stdin: input.stdin() };
        let mut jobs = vec![(format!("`mechfund replay` {name}"), replay(Input::File(log.clone())), true)];
        let plain = rows.len();
        if events == smallest {
            let gz = ensure_gz(&log)?;
            jobs.push((format!("`mechfund replay` {name} `.gz`"), replay(Input::File(gz)), true));
            jobs.push((format!("`mechfund replay -` {name} (stdin)"), replay(Input::Stdin(log.clone())), true));
        }
        jobs.push((format!("`cat` {name}"), Job::tool("cat", &file), false));
        jobs.push((format!("`wc -l` {name}"), Job::tool("wc", &file).arg("-l"), false));
        for (label, job, is_replay) in jobs {
            eprintln!("timing {label}...");
            if is_replay {
                check_output(&job, events)?;
            }
            let times = job.times(options.runs)?;
            let list: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
            eprintln!("  wall times (s): {}", list.join(" "));
            let usage = if is_replay { Some(job.usage()?) } else { None };
            rows.push(Row { label, events, bytes, times, usage });
        }
        if events == 1_000_000 {
            target_row = Some(plain);
        }
    }
    let table = table(&rows, options.runs);
    println!("{table}");
    let load_after = load_average();
    println!("machine: {}; load average {load_before:.2} before, {load_after:.2} after", machine());
    if let Some(row) = target_row.and_then(|i| rows.get(i)) {
        let (median, rss) = (row.median(), row.rss_mib().unwrap_or(f64::NAN));
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "target for 1M events: < {TARGET_SECS} s ({}: median {median:.3} s), \
             < {TARGET_RSS_MIB} MiB peak RSS ({}: {rss:.1} MiB)",
            verdict(median < TARGET_SECS),
            verdict(rss < TARGET_RSS_MIB),
        );
    }
    if options.wasm {
        wasm_vs_native(&data, options.seed)?;
    }
    Ok(())
}

/// `replayLog` in headless Chromium (package built at opt-level 3) against the native
/// single-thread replay of the same 100k-event log, in one run (budget: at most 3x).
fn wasm_vs_native(data: &Path, seed: u64) -> Result<()> {
    crate::tools::setup()?;
    let pkg = workspace::target_dir()?.join("wasm-speed-pkg");
    eprintln!("building the package at opt-level 3...");
    crate::wasm::build_package_with(crate::wasm::Build::Speed, &pkg)?;
    crate::wasm::build_package()?;
    let log = ensure_log(data, 100_000, seed)?;
    eprintln!("timing replayLog in Chromium against native replay_bytes...");
    workspace::run(
        workspace::cargo()
            .args(["run", "--quiet", "--release", "-p", "mechfund-e2e", "--bin", "wasm-bench", "--"])
            .arg(&log)
            .arg(&pkg),
    )
}

/// A replay input: a path, or a file fed to stdin.
enum Input {
    File(PathBuf),
    Stdin(PathBuf),
}

impl Input {
    fn arg(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Stdin(_) => "-".to_owned(),
        }
    }

    fn stdin(&self) -> Option<PathBuf> {
        match self {
            Input::Stdin(path) => Some(path.clone()),
            Input::File(_) => None,
        }
    }
}

/// One command to time.
struct Job {
    bin: PathBuf,
    args: Vec<String>,
    stdin: Option<PathBuf>,
}

impl Job {
    fn tool(name: &str, file: &str) -> Job {
        Job { bin: name.into(), args: vec![file.to_owned()], stdin: None }
    }

    fn arg(mut self, arg: &str) -> Job {
        self.args.insert(0, arg.to_owned());
        self
    }

    fn stdin(&self) -> Result<Stdio> {
        Ok(match &self.stdin {
            Some(path) => Stdio::from(File::open(path).with_context(|| format!("opening {}", path.display()))?),
            None => Stdio::null(),
        })
    }

    /// The command, optionally run under `wrapper` (e.g. GNU time), with stdout to /dev/null
    /// and stderr captured (no progress bar; the error shows if it fails).
    fn command(&self, wrapper: &[String]) -> Result<Command> {
        let mut command = match wrapper.split_first() {
            Some((program, pre)) => {
                let mut c = Command::new(program);
                c.args(pre).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        command.args(&self.args).stdin(self.stdin()?).stdout(Stdio::null()).stderr(Stdio::piped());
        Ok(command)
    }

    fn run_once(&self, mut command: Command) -> Result<()> {
        let output = command.output().with_context(|| format!("running {}", self.bin.display()))?;
        if !output.status.success() {
            bail!(
                "{} {} failed ({}): {}",
                self.bin.display(),
                self.args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Wall times of `runs` runs, sorted, after one untimed warm-up run (page cache, CPU
    /// frequency). The clock covers process start to exit.
    fn times(&self, runs: usize) -> Result<Vec<f64>> {
        self.run_once(self.command(&[])?)?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let command = self.command(&[])?;
            let started = Instant::now();
            self.run_once(command)?;
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times)
    }

    /// Peak resident set size (KiB) and CPU time (user + system seconds) of one run, from GNU
    /// time's `%M %U %S`.
    fn usage(&self) -> Result<Usage> {
        let out = std::env::temp_dir().join(format!("mechfund-bench-time-{}", std::process::id()));
        let wrapper = [GNU_TIME, "-f", "%M %U %S", "-o"].map(str::to_owned);
        let wrapper = [&wrapper[..], &[out.display().to_string()]].concat();
        self.run_once(self.command(&wrapper)?)?;
        let text = std::fs::read_to_string(&out).context("reading /usr/bin/time's output")?;
        let _ = std::fs::remove_file(&out);
        let fields: Vec<&str> = text.lines().last().unwrap_or_default().split_whitespace().collect();
        match fields[..] {
            [rss, user, sys] => Ok(Usage {
                rss_kib: rss.parse().context("GNU time's %M")?,
                cpu_secs: user.parse::<f64>().context("GNU time's %U")?
                    + sys.parse::<f64>().context("GNU time's %S")?,
            }),
            _ => bail!("unexpected /usr/bin/time output {text:?}"),
        }
    }
}

/// What GNU time reports about one run.
#[derive(Clone, Copy)]
struct Usage {
    rss_kib: u64,
    cpu_secs: f64,
}

/// Replays once with the output captured and checks it replayed every event.
fn check_output(job: &Job, events: u64) -> Result<()> {
    let output = Command::new(&job.bin)
        .args(&job.args)
        .stdin(job.stdin()?)
        .stderr(Stdio::piped())
        .output()
        .context("running mechfund")?;
    ensure!(
        output.status.success(),
        "mechfund {} failed: {}",
        job.args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("mechfund printed no replay result")?;
    let seq = result["state"]["last_event_seq"].as_u64();
    ensure!(seq == Some(events), "replay ended at seq {seq:?}, expected {events}: the log or the replay is wrong");
    let warnings = result["diagnostics"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["severity"] == "warning" && d["kind"] != "recorded_goal_differs").count());
    ensure!(warnings == 0, "replay reported {warnings} unexpected warnings on a generated log");
    Ok(())
}

/// The log for `events` and `seed`, generated unless a matching one is cached.
pub fn ensure_log(dir: &Path, events: u64, seed: u64) -> Result<PathBuf> {
    let version = mechfund_loggen::GENERATOR_VERSION;
    let path = dir.join(format!("events-{events}-seed{seed}-v{version}.jsonl"));
    let meta = path.with_extension("jsonl.meta");
    let expected = |bytes: u64| format!("events={events} seed={seed} version={version} bytes={bytes}\n");
    if let (Ok(m), Ok(text)) = (std::fs::metadata(&path), std::fs::read_to_string(&meta))
        && text == expected(m.len())
    {
        eprintln!("reusing {}", path.display());
        return Ok(path);
    }
    eprintln!("generating {} ...", path.display());
    // Generate with a release build of xtask: the debug generator is ~10x slower.
    workspace::run(workspace::cargo().args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "xtask",
        "--",
        "gen-log",
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        &path.display().to_string(),
    ]))?;
    let bytes = std::fs::metadata(&path)?.len();
    std::fs::write(&meta, expected(bytes))?;
    Ok(path)
}

/// `log.gz` next to `log`, made unless it is newer than the log.
fn ensure_gz(log: &Path) -> Result<PathBuf> {
    let gz = PathBuf::from(format!("{}.gz", log.display()));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(g), Some(l)) = (modified(&gz), modified(log))
        && g >= l
    {
        return Ok(gz);
    }
    let tmp = gz.with_extension("gz.tmp");
    let mut encoder = flate2::write::GzEncoder::new(
        File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        flate2::Compression::default(),
    );
    std::io::copy(&mut File::open(log)?, &mut encoder)?;
    encoder.finish()?;
    std::fs::rename(&tmp, &gz)?;
    Ok(gz)
}

struct Row {
    label: String,
    events: u64,
    bytes: u64,
    times: Vec<f64>,
    usage: Option<Usage>,
}

impl Row {
    fn best(&self) -> f64 {
        self.times.first().copied().unwrap_or(f64::NAN)
    }

    fn median(&self) -> f64 {
        let n = self.times.len();
        match n {
            0 => f64::NAN,
            _ if !n.is_multiple_of(2) => self.times[n / 2],
            _ => (self.times[n / 2 - 1] + self.times[n / 2]) / 2.0,
        }
    }

    fn rss_mib(&self) -> Option<f64> {
        self.usage.map(|u| u.rss_kib as f64 / 1024.0)
    }
}

fn table(rows: &[Row], runs: usize) -> String {
    let mut out = String::from(
        "| command | events | MB | wall best | wall median | MB/s | events/s | CPU | peak RSS |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let median = r.median();
        let mb = r.bytes as f64 / 1e6;
        let _ = writeln!(
            out,
            "| {} | {} | {mb:.1} | {:.3} s | {median:.3} s | {:.0} | {} | {} | {} |",
            r.label,
            thousands(r.events),
            r.best(),
            mb / median,
            thousands((r.events as f64 / median) as u64),
            r.usage.map_or_else(|| "—".to_owned(), |u| format!("{:.2} s", u.cpu_secs)),
            r.rss_mib().map_or_else(|| "—".to_owned(), |m| format!("{m:.1} MiB")),
        );
    }
    let _ = write!(
        out,
        "\n{runs} timed runs each after one warm-up run; MB = 10^6 bytes of log text \
         (uncompressed for `.gz`); MB/s and events/s from the median; CPU (user + system) and peak \
         RSS from one more run under GNU time."
    );
    out
}

fn count_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n.is_multiple_of(1000) => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `bin`, or the release `mechfund` built now.
pub fn release_mechfund(bin: Option<&std::path::Path>) -> Result<PathBuf> {
    let bin = match bin {
        Some(bin) => bin.to_path_buf(),
        None => {
            eprintln!("building mechfund (release)...");
            workspace::run(workspace::cargo().args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                "mechfund-server",
                "--bin",
                "mechfund",
            ]))?;
            workspace::target_dir()?.join("release").join("mechfund")
        }
    };
    ensure!(bin.is_file(), "no mechfund binary at {}", bin.display());
    Ok(bin)
}

/// The 1-minute load average (NaN where /proc is missing).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system, every thread) a process has used so far, in clock ticks of
/// `getconf CLK_TCK` (`None` where /proc is missing or the process is gone).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/PID/stat` line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second for [`cpu_ticks`] (100 unless `getconf` says otherwise).
pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_whatever_the_command_name() {
        // Fields 14 (utime) and 15 (stime) of proc(5); the name holds a space and a parenthesis.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(stat_cpu_ticks("4242 (cut short) S 1 2"), None);
        assert!(cpu_ticks("self").is_some());
    }

    #[test]
    fn formats_numbers_and_labels() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(count_label(100_000), "100k");
        assert_eq!(count_label(1_000_000), "1M");
        assert_eq!(count_label(1234), "1234");
    }

    #[test]
    fn median_and_best() {
        let row = |times: Vec<f64>| Row { label: String::new(), events: 1, bytes: 1, times, usage: None };
        assert_eq!(row(vec![1.0, 2.0, 9.0]).median(), 2.0);
        assert_eq!(row(vec![1.0, 2.0, 4.0, 9.0]).median(), 3.0);
        assert_eq!(row(vec![1.0, 2.0]).best(), 1.0);
    }
}
