//! `cargo xtask bench-server`: durable donations/s, latency and start-up of `mechfund serve`
//! over real HTTP on loopback, with a store holding an imported log (method in BENCHMARKS.md).
//!
//! The load generator is a minimal HTTP/1.1 client on `std::net` (one keep-alive connection and
//! one thread per client): no async runtime or HTTP crate is needed for fixed POSTs to a
//! server we control, and a blocking client adds no scheduler noise to the latencies.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub(crate) mod subscribers;

use crate::args::Args;
use crate::bench::{clock_ticks_per_sec, cpu_ticks, thousands};
use crate::workspace;
use subscribers::Subscribers;

pub const USAGE: &str =
    "cargo xtask bench-server [--events 1000000] [--clients 32] [--seconds 10] [--seed S] [--bin PATH]
                         [--subscribers N [--rate 2100]] [--store sqlite|postgres [--instances N]]
                         [--toggles PER_SEC]

Builds `mechfund` in release (or uses --bin), imports the cached generated log of --events
events (see `cargo xtask bench`) into a fresh store in a temporary directory (timed), starts
`mechfund serve --addr 127.0.0.1:0 --rate-limit 0` and times start-up to the `listening` line
and to the first 200 from GET /healthz. Then --clients keep-alive connections each POST
/api/v1/mechs/main/donations {\"amount\":\"1.00\",\"donor\":\"bench-<client>\"} in a loop for
--seconds; every request's latency and status are recorded. Finally the server gets SIGTERM and
`mechfund export` counts the stored lines. Prints a Markdown table row and the targets.

With --subscribers N, N connections first follow GET /api/v1/mechs/main/events/stream (from the
current last seq) and the clients are paced to --rate donations/s in total (default 2100: 5%
above the 2000/s throughput target, so that the rate achieved over the whole run, its start and
end included, reaches the target); every subscriber records when each donation's line arrives,
and the delivery latency is that time minus when the donation's 201 arrived (0 when the line
came first).

With --store postgres a PostgreSQL 15 cluster is started for the run (mechfund-pgtest, with
fsync and full_page_writes on: commits are durable, as SQLite's are) and removed after; the log
is imported into it and --instances servers (default 1) share it, the clients and subscribers
spread round-robin over them.

With --toggles R (issue 16), one more connection toggles the deletion of donations R times a
second while the clients post (from its first acknowledged write on: until then the writer checks
the stored rows): nine times in ten a recent donation (it posts one of its own each time and
toggles the one it posted the time before, which the clients' writes since follow), every tenth
time the log's very first donation. Each toggle's latency is recorded by kind, and the
donations' percentiles are then those of writes made while toggles run.";

/// Issue 5's targets.
const TARGET_DONATIONS_PER_SEC: f64 = 2000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_STARTUP_SECS: f64 = 1.0;
/// Issue 16's targets: a toggle of a recent donation and of the very first one, with 1M events.
const TARGET_TOGGLE_RECENT_MS: f64 = 20.0;
const TARGET_TOGGLE_FIRST_MS: f64 = 300.0;
/// Issue 6's target: each subscriber gets each new event within this of the acknowledgement.
const TARGET_DELIVERY_P99_MS: f64 = 100.0;
/// The default paced rate with subscribers: the throughput target plus 5% (see USAGE).
const DEFAULT_PACED_RATE: f64 = TARGET_DONATIONS_PER_SEC * 1.05;
const TOKEN: &str = "bench-server-token";

struct Options {
    events: u64,
    clients: usize,
    seconds: f64,
    seed: u64,
    bin: Option<PathBuf>,
    subscribers: usize,
    rate: f64,
    postgres: bool,
    instances: usize,
    toggles: f64,
}

pub fn run(mut args: Args) -> Result<()> {
    let options = Options {
        events: args.value("--events")?.unwrap_or(1_000_000),
        clients: args.value("--clients")?.unwrap_or(32),
        seconds: args.value("--seconds")?.unwrap_or(10.0),
        seed: args.value("--seed")?.unwrap_or(1),
        bin: args.value("--bin")?,
        subscribers: args.value("--subscribers")?.unwrap_or(0),
        rate: args.value("--rate")?.unwrap_or(DEFAULT_PACED_RATE),
        postgres: match args.value::<String>("--store")?.as_deref() {
            None | Some("sqlite") => false,
            Some("postgres") => true,
            Some(other) => bail!("--store: {other:?} is neither sqlite nor postgres"),
        },
        instances: args.value("--instances")?.unwrap_or(1),
        toggles: args.value("--toggles")?.unwrap_or(0.0),
    };
    args.finish()?;
    ensure!(options.events > 0 && options.clients > 0, "--events and --clients must be positive");
    ensure!(options.seconds > 0.0 && options.seconds.is_finite(), "--seconds must be positive");
    ensure!(options.rate > 0.0 && options.rate.is_finite(), "--rate must be positive");
    ensure!((1..=16).contains(&options.instances), "--instances must be 1 to 16");
    ensure!(options.toggles >= 0.0 && options.toggles.is_finite(), "--toggles must be 0 or more per second");
    ensure!(options.postgres || options.instances == 1, "--instances above 1 needs --store postgres (a shared store)");
    bench(&options)
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server process, killed on drop if still running.
pub(crate) struct Server(pub(crate) Child);

impl Server {
    /// Starts `bin ARGS` in `cwd` and waits (60 s at most) for its `listening on http://ADDR`;
    /// returns the server and ADDR. Its stderr is this process's.
    pub(crate) fn spawn(bin: &Path, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Result<(Server, String)> {
        let mut command = Command::new(bin);
        command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut server = Server(command.spawn().context("starting mechfund serve")?);
        let stdout = server.0.stdout.take().context("no stdout from mechfund serve")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let addr =
            rx.recv_timeout(Duration::from_secs(60)).context("the server did not print `listening on` in 60 s")?;
        Ok((server, addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn bench(options: &Options) -> Result<()> {
    let target = workspace::target_dir()?;
    let bin = crate::bench::release_mechfund(options.bin.as_deref())?;
    let bench_data = target.join("bench-data");
    std::fs::create_dir_all(&bench_data).with_context(|| format!("creating {}", bench_data.display()))?;
    let log = crate::bench::ensure_log(&bench_data, options.events, options.seed)?;

    let dir = TempDir(std::env::temp_dir().join(format!("mechfund-bench-server-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
    let data = dir.0.display().to_string();
    // Started here, on the thread that owns it (mechfund-pgtest), and removed at the end.
    let cluster = if options.postgres {
        eprintln!("starting PostgreSQL...");
        Some(
            mechfund_pgtest::Cluster::start_with(&[("fsync", "on"), ("full_page_writes", "on")])
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        None
    };
    let url = match &cluster {
        Some(cluster) => Some(cluster.create_database("bench").map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    // `--data DIR`, or `--store URL`.
    let store_args: Vec<String> = match &url {
        Some(url) => vec!["--store".to_owned(), url.clone()],
        None => vec!["--data".to_owned(), data.clone()],
    };
    let store: Vec<&str> = store_args.iter().map(String::as_str).collect();

    eprintln!("importing {} ...", log.display());
    let started = Instant::now();
    let log_path = log.display().to_string();
    let import = Command::new(&bin)
        .args(["import", &log_path])
        .args(&store)
        .stdin(Stdio::null())
        .output()
        .context("running mechfund import")?;
    let import_secs = started.elapsed().as_secs_f64();
    ensure!(import.status.success(), "mechfund import failed: {}", String::from_utf8_lossy(&import.stderr));
    let imported = count_lines(&bin, &store)?;
    eprintln!("imported {imported} lines in {import_secs:.2} s");

    eprintln!("starting {} server(s)...", options.instances);
    let started = Instant::now();
    let mut servers = Vec::with_capacity(options.instances);
    let mut addrs = Vec::with_capacity(options.instances);
    for i in 0..options.instances {
        let own = dir.0.join(format!("server-{i}"));
        std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
        let own = own.display().to_string();
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--data"];
        args.push(if url.is_some() { &own } else { &data });
        if let Some(url) = &url {
            args.extend(["--store", url.as_str()]);
        }
        let (server, addr) = Server::spawn(&bin, &args, &dir.0, &[("MECHFUND_ADMIN_TOKEN", TOKEN)])?;
        servers.push(server);
        addrs.push(addr);
    }
    let listening_secs = started.elapsed().as_secs_f64();
    let healthy_secs = loop {
        let healthy = addrs.iter().all(|addr| {
            Conn::open(addr).is_ok_and(|mut conn| matches!(conn.request("GET", "/healthz", None), Ok((200, _, _))))
        });
        if healthy {
            break started.elapsed().as_secs_f64();
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "GET /healthz did not answer 200 in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    let addr = addrs[0].clone();
    eprintln!("listening after {listening_secs:.3} s, healthy after {healthy_secs:.3} s at {}", addrs.join(", "));

    let duration = Duration::from_secs_f64(options.seconds);
    let subscribers = if options.subscribers > 0 {
        let mut conn = Conn::open(&addr)?;
        let (status, _, body) = conn.request("GET", "/api/v1/mechs/main/state", None)?;
        ensure!(status == 200, "GET …/state answered {status}");
        let after = first_number_after(&body, b"\"last_event_seq\":").context("no last_event_seq in the state")?;
        eprintln!("{} subscribers following the stream after seq {after}...", options.subscribers);
        Some(Subscribers::start(&addrs, options.subscribers, after)?)
    } else {
        None
    };
    // Paced when measuring delivery (the throughput target, not the most the server can take).
    let pace = subscribers.as_ref().map(|_| Duration::from_secs_f64(options.clients as f64 / options.rate));
    match pace {
        Some(_) => {
            eprintln!("{} clients posting {} donations/s for {} s...", options.clients, options.rate, options.seconds)
        }
        None => eprintln!("{} clients posting donations for {} s...", options.clients, options.seconds),
    }
    // Who used the CPU meanwhile: on a small machine the load generator competes with the server.
    let server_pids: Vec<String> = servers.iter().map(|server| server.0.id().to_string()).collect();
    let servers_ticks = || server_pids.iter().map(|pid| cpu_ticks(pid)).sum::<Option<u64>>();
    let cpu_before = (servers_ticks(), cpu_ticks("self"));
    let load_started = Instant::now();
    let deadline = load_started + duration;
    let toggler = if options.toggles > 0.0 {
        let first = first_donation(&log)?;
        let (addr, every) = (addr.clone(), Duration::from_secs_f64(1.0 / options.toggles));
        Some(std::thread::spawn(move || toggle_loop(&addr, first, deadline, every)))
    } else {
        None
    };
    let workers: Vec<_> = (0..options.clients)
        .map(|client| {
            let addr = addrs[client % addrs.len()].clone();
            std::thread::spawn(move || client_loop(&addr, client, deadline, pace))
        })
        .collect();
    let mut samples = Vec::new();
    let mut connect_errors = 0u64;
    for worker in workers {
        let result = worker.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        samples.extend(result.samples);
        connect_errors += result.io_errors;
    }
    let toggled = match toggler {
        Some(toggler) => Some(toggler.join().map_err(|_| anyhow::anyhow!("the toggle thread panicked"))??),
        None => None,
    };
    let load_secs = load_started.elapsed().as_secs_f64();
    let cores = |before: Option<u64>, after: Option<u64>| {
        before.zip(after).map(|(b, a)| a.saturating_sub(b) as f64 / clock_ticks_per_sec() / load_secs)
    };
    let server_cores = cores(cpu_before.0, servers_ticks());
    let generator_cores = cores(cpu_before.1, cpu_ticks("self"));
    let delivery = match subscribers {
        Some(subscribers) => Some(subscribers.finish(&samples)?),
        None => None,
    };

    // SIGTERM, as an operator (or systemd) would stop them, then wait for clean exits.
    for server in &mut servers {
        workspace::run(Command::new("kill").args(["-TERM", &server.0.id().to_string()]))?;
        let status = server.0.wait().context("waiting for the server")?;
        ensure!(status.success(), "a server exited with {status} after SIGTERM");
    }
    let stored = count_lines(&bin, &store)?;

    let accepted = samples.iter().filter(|s| s.status == 201).count() as u64;
    let errors = samples.len() as u64 - accepted + connect_errors;
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.millis).collect();
    latencies.sort_by(f64::total_cmp);
    let per_sec = accepted as f64 / load_secs;
    let p = |q: f64| percentile(&latencies, q);
    let (p50, p95, p99, max) = (p(0.50), p(0.95), p(0.99), latencies.last().copied().unwrap_or(f64::NAN));

    let mut out = String::from(
        "| store (servers) | events stored | clients | seconds | import | start-up (listening / healthz) | requests | \
         201s | errors | durable donations/s | p50 | p95 | p99 | max | lines after (imported + new) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| {} ({}) | {} | {} | {load_secs:.1} | {import_secs:.2} s | {listening_secs:.3} s / {healthy_secs:.3} s | {} | {} | \
         {errors} | {per_sec:.0} | {p50:.2} ms | {p95:.2} ms | {p99:.2} ms | {max:.2} ms | {} ({} + {}) |",
        if options.postgres { "PostgreSQL" } else { "SQLite" },
        options.instances,
        thousands(imported),
        options.clients,
        thousands(samples.len() as u64),
        thousands(accepted),
        thousands(stored),
        thousands(imported),
        thousands(stored.saturating_sub(imported)),
    );
    println!("{out}");
    let mut statuses: Vec<(u16, u64)> = Vec::new();
    for s in &samples {
        match statuses.iter_mut().find(|(code, _)| *code == s.status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((s.status, 1)),
        }
    }
    statuses.sort_unstable();
    let list: Vec<String> = statuses.iter().map(|(code, n)| format!("{code}: {n}")).collect();
    println!("statuses: {}; connection errors: {connect_errors}", list.join(", "));
    println!(
        "stored lines: {stored} = {imported} imported + {} written ({accepted} donations accepted, \
         {} other events, e.g. level-ups)",
        stored.saturating_sub(imported),
        stored.saturating_sub(imported).saturating_sub(accepted),
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "targets: >= {TARGET_DONATIONS_PER_SEC:.0} durable donations/s ({}: {per_sec:.0}), p99 <= \
         {TARGET_P99_MS:.0} ms ({}: {p99:.2} ms), start-up <= {TARGET_STARTUP_SECS:.0} s ({}: {healthy_secs:.3} s \
         to the first 200 from /healthz)",
        verdict(per_sec >= TARGET_DONATIONS_PER_SEC),
        verdict(p99 <= TARGET_P99_MS),
        verdict(healthy_secs <= TARGET_STARTUP_SECS),
    );
    println!(
        "machine: {} cores; load average {:.2}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::bench::load_average()
    );
    if let (Some(server), Some(generator)) = (server_cores, generator_cores) {
        println!(
            "CPU during the load: mechfund {server:.2} cores, this load generator {generator:.2} cores \
             (its clients{})",
            if delivery.is_some() { " and subscribers" } else { "" }
        );
    }
    if let Some(t) = &toggled {
        let summary = |kind: &str, millis: &[f64]| {
            let mut sorted = millis.to_vec();
            sorted.sort_by(f64::total_cmp);
            format!(
                "| {kind} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
                sorted.len(),
                percentile(&sorted, 0.5),
                percentile(&sorted, 0.99),
                sorted.last().copied().unwrap_or(f64::NAN)
            )
        };
        println!(
            "\n| toggle of | toggles | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n{}\n{}",
            summary("a recent donation (its own, posted one toggle earlier)", &t.recent),
            summary("the first donation", &t.first)
        );
        let worst = |millis: &[f64]| millis.iter().copied().fold(0.0, f64::max);
        println!(
            "targets while toggles run: donations p99 <= {TARGET_P99_MS:.0} ms ({}: {p99:.2} ms), a recent donation's \
             toggle <= {TARGET_TOGGLE_RECENT_MS:.0} ms ({}: max {:.2} ms), the first donation's <= \
             {TARGET_TOGGLE_FIRST_MS:.0} ms ({}: max {:.2} ms)",
            verdict(p99 <= TARGET_P99_MS),
            verdict(worst(&t.recent) <= TARGET_TOGGLE_RECENT_MS),
            worst(&t.recent),
            verdict(worst(&t.first) <= TARGET_TOGGLE_FIRST_MS),
            worst(&t.first),
        );
    }
    if let Some(d) = &delivery {
        println!(
            "\n| subscribers | paced rate | donations/s achieved | deliveries (expected) | p50 | p95 | p99 | max | \
             lines before their 201 |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | {} | {:.0}/s | {per_sec:.0} | {} ({}) | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            options.subscribers,
            options.rate,
            thousands(d.delivered),
            thousands(d.expected),
            d.p50,
            d.p95,
            d.p99,
            d.max,
            thousands(d.early),
        );
        println!(
            "target: each event at every subscriber with p99 <= {TARGET_DELIVERY_P99_MS:.0} ms after its 201 while \
             >= {TARGET_DONATIONS_PER_SEC:.0} donations/s ({}: p99 {:.2} ms at {per_sec:.0}/s; {} deliveries missing; \
             {} streams failed{})",
            verdict(
                d.p99 <= TARGET_DELIVERY_P99_MS
                    && per_sec >= TARGET_DONATIONS_PER_SEC
                    && d.delivered == d.expected
                    && d.failed == 0
            ),
            d.p99,
            d.expected - d.delivered.min(d.expected),
            d.failed,
            d.first_error.as_deref().map(|e| format!(", the first: {e}")).unwrap_or_default(),
        );
    }
    ensure!(
        stored >= imported + accepted,
        "the store has {stored} lines, fewer than {imported} imported + {accepted} accepted"
    );
    Ok(())
}

/// The seq of the log's first donation.
fn first_donation(log: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    text.lines()
        .filter(|line| line.contains("\"type\":\"DonationAdded\""))
        .find_map(|line| first_number_after(line.as_bytes(), b"\"seq\":"))
        .context("the log has no donation to toggle")
}

/// Toggle latencies in milliseconds, by kind.
struct Toggled {
    recent: Vec<f64>,
    first: Vec<f64>,
}

/// Toggles `targets` once per `every` until the deadline (see USAGE); each must answer 201.
fn toggle_loop(addr: &str, first_donation: u64, deadline: Instant, every: Duration) -> Result<Toggled> {
    let mut conn = Conn::open(addr)?;
    let mut toggled = Toggled { recent: Vec::new(), first: Vec::new() };
    // The first write waits until the writer has checked every stored row (a few seconds with
    // 1M events); toggles are timed from then on.
    let donate = |conn: &mut Conn| -> Result<u64> {
        let (status, _, answer) =
            conn.request("POST", "/api/v1/mechs/main/donations", Some("{\"amount\":\"1.00\"}"))?;
        ensure!(status == 201, "a donation answered {status}: {}", String::from_utf8_lossy(&answer));
        first_number_after(&answer, b"\"seq\":").context("a donation's answer has no seq")
    };
    let mut posted = donate(&mut conn)?;
    let body = "{\"reason\":\"bench-server toggle\"}";
    let mut next = Instant::now();
    for i in 0usize.. {
        next += every;
        if next > deadline {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (seq, first) = if i % 10 == 9 {
            (first_donation, true)
        } else {
            let recent = posted;
            posted = donate(&mut conn)?;
            (recent, false)
        };
        let path = format!("/api/v1/mechs/main/donations/{seq}/toggle-deletion");
        let started = Instant::now();
        let (status, _, answer) = conn.request("POST", &path, Some(body))?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(status == 201, "toggling {seq} answered {status}: {}", String::from_utf8_lossy(&answer));
        if first { toggled.first.push(millis) } else { toggled.recent.push(millis) }
    }
    Ok(toggled)
}

/// `mechfund export --data DIR | wc -l` (or `--store URL`).
fn count_lines(bin: &Path, store: &[&str]) -> Result<u64> {
    let mut child = Command::new(bin)
        .arg("export")
        .args(store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("running mechfund export")?;
    let mut stdout = child.stdout.take().context("no stdout from mechfund export")?;
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0u64;
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let status = child.wait()?;
    ensure!(status.success(), "mechfund export failed ({status})");
    Ok(lines)
}

pub(crate) struct Sample {
    pub(crate) status: u16,
    pub(crate) millis: f64,
    /// The donation's seq (from the 201) and when its answer was complete.
    pub(crate) acked: Option<(u64, Instant)>,
}

struct ClientResult {
    samples: Vec<Sample>,
    io_errors: u64,
}

/// One client: POSTs on one keep-alive connection until the deadline, one request per `pace` if
/// given, else back to back (reconnects after an I/O error, which is counted).
fn client_loop(addr: &str, client: usize, deadline: Instant, pace: Option<Duration>) -> ClientResult {
    let body = format!("{{\"amount\":\"1.00\",\"donor\":\"bench-{client}\"}}");
    let mut result = ClientResult { samples: Vec::new(), io_errors: 0 };
    let mut conn = None;
    let mut next = Instant::now();
    while Instant::now() < deadline {
        if let Some(pace) = pace {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += pace;
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match Conn::open(addr) {
                Ok(c) => c,
                Err(_) => {
                    result.io_errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let mut c = c;
        let started = Instant::now();
        match c.request("POST", "/api/v1/mechs/main/donations", Some(&body)) {
            Ok((status, keep_alive, body)) => {
                let done = Instant::now();
                let seq = if status == 201 { first_number_after(&body, b"\"seq\":") } else { None };
                result.samples.push(Sample {
                    status,
                    millis: (done - started).as_secs_f64() * 1000.0,
                    acked: seq.map(|seq| (seq, done)),
                });
                if keep_alive {
                    conn = Some(c);
                }
            }
            Err(_) => result.io_errors += 1,
        }
    }
    result
}

/// The unsigned integer right after the first `key` in `body`.
pub(crate) fn first_number_after(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = body[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// A keep-alive HTTP/1.1 connection (responses must carry Content-Length or be chunked).
pub(crate) struct Conn {
    addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub(crate) fn open(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        Ok(Conn { addr: addr.to_owned(), reader: BufReader::new(stream), writer })
    }

    /// Sends one request and reads the whole response: (status, whether the connection stays
    /// open, body).
    pub(crate) fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, bool, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n", self.addr);
        if let Some(body) = body {
            let _ = write!(head, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        head.push_str(body.unwrap_or(""));
        self.writer.write_all(head.as_bytes())?;

        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut content = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)?;
                let start = content.len();
                content.resize(start + size + 2, 0);
                self.reader.read_exact(&mut content[start..])?;
                content.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            content.resize(n, 0);
            self.reader.read_exact(&mut content)?;
        } else {
            bail!("response without Content-Length");
        }
        Ok((status, keep_alive, content))
    }
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
