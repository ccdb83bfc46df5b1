//! `cargo xtask bench-follow`: `mechfund serve --ddc DIR` following a DDC log as DDC appends to
//! it (method in BENCHMARKS.md).

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::args::Args;
use crate::bench::thousands;
use crate::bench_server::subscribers::Subscribers;
use crate::bench_server::{Conn, Sample, Server, TempDir, first_number_after};
use crate::workspace;

pub const USAGE: &str =
    "cargo xtask bench-follow [--lines 1000] [--rate 100] [--growth 1000000] [--seed S] [--bin PATH]

Builds `mechfund` in release (or uses --bin) and writes a DDC config dir in a temporary
directory whose progress/events.jsonl holds the first 1,000 lines of a generated log (cached
like `cargo xtask bench`'s). Starts `mechfund serve --ddc DIR --addr 127.0.0.1:0` and one
subscriber of GET /api/v1/mechs/main/events/stream. Then:

1. --lines further lines are appended at --rate lines/s as DDC appends them: one write(2) per
   line, every fifth line split in two writes 5 ms apart. The latency of a line is from the end
   of its last write to its arrival at the subscriber; all must arrive, each once.
2. --growth more lines are appended in writes of 1,000 lines as fast as the server follows, and
   the server's resident memory (VmRSS, and the peak VmHWM) is sampled every tenth of the way,
   each time once GET …/state has caught up with what was written.";

/// Issue 12's targets.
const TARGET_P99_MS: f64 = 1000.0;

struct Options {
    lines: u64,
    rate: f64,
    growth: u64,
    seed: u64,
    bin: Option<std::path::PathBuf>,
}

/// Lines in the log before the server starts.
const INITIAL: u64 = 1000;

pub fn run(mut args: Args) -> Result<()> {
    let options = Options {
        lines: args.value("--lines")?.unwrap_or(1000),
        rate: args.value("--rate")?.unwrap_or(100.0),
        growth: args.value("--growth")?.unwrap_or(1_000_000),
        seed: args.value("--seed")?.unwrap_or(1),
        bin: args.value("--bin")?,
    };
    args.finish()?;
    ensure!(options.lines > 0, "--lines must be positive");
    ensure!(options.rate > 0.0 && options.rate.is_finite(), "--rate must be positive");
    bench(&options)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn last_seq(conn: &mut Conn) -> Result<u64> {
    let (status, _, body) = conn.request("GET", "/api/v1/mechs/main/state", None)?;
    ensure!(status == 200, "GET …/state answered {status}");
    first_number_after(&body, b"\"last_event_seq\":").context("no last_event_seq in the state")
}

fn seq_of(line: &str) -> Result<u64> {
    first_number_after(line.as_bytes(), b"\"seq\":").with_context(|| format!("no seq in {line:?}"))
}

fn bench(options: &Options) -> Result<()> {
    let target = workspace::target_dir()?;
    let bin = crate::bench::release_mechfund(options.bin.as_deref())?;
    let bench_data = target.join("bench-data");
    std::fs::create_dir_all(&bench_data).with_context(|| format!("creating {}", bench_data.display()))?;
    let total = INITIAL + options.lines + options.growth;
    let source = crate::bench::ensure_log(&bench_data, total, options.seed)?;
    let text = std::fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() as u64 >= total, "{} has {} lines, fewer than {total}", source.display(), lines.len());
    let (initial, rest) = lines.split_at(INITIAL as usize);
    let (paced, growth) = rest.split_at(options.lines as usize);

    let dir = TempDir(std::env::temp_dir().join(format!("mechfund-bench-follow-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let progress = dir.0.join("progress");
    std::fs::create_dir_all(&progress).with_context(|| format!("creating {}", progress.display()))?;
    let log = progress.join("events.jsonl");
    std::fs::write(&log, initial.iter().map(|l| format!("{l}\n")).collect::<String>())?;

    let (server, addr) =
        Server::spawn(&bin, &["serve", "--ddc", &dir.0.display().to_string(), "--addr", "127.0.0.1:0"], &dir.0, &[])?;
    let pid = server.0.id();
    let mut conn = Conn::open(&addr)?;
    let after = last_seq(&mut conn)?;
    ensure!(after == seq_of(initial[initial.len() - 1])?, "the server did not mirror the initial log");
    let memory_start = memory_mib(pid).context("no /proc status of the server")?;
    let subscriber = Subscribers::start(std::slice::from_ref(&addr), 1, after)?;

    eprintln!("appending {} lines at {}/s, as DDC does...", options.lines, options.rate);
    let mut file = OpenOptions::new().append(true).open(&log)?;
    let pace = Duration::from_secs_f64(1.0 / options.rate);
    let mut samples = Vec::with_capacity(paced.len());
    let started = Instant::now();
    for (i, line) in paced.iter().enumerate() {
        let due = started + pace * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if i % 5 == 4 {
            let (head, tail) = line.split_at(line.len() / 2);
            file.write_all(head.as_bytes())?;
            std::thread::sleep(Duration::from_millis(5));
            file.write_all(format!("{tail}\n").as_bytes())?;
        } else {
            file.write_all(format!("{line}\n").as_bytes())?;
        }
        samples.push(Sample { status: 201, millis: 0.0, acked: Some((seq_of(line)?, Instant::now())) });
    }
    let delivery = subscriber.finish(&samples)?;

    eprintln!("growing the log by {} lines...", thousands(options.growth));
    let mut memory = vec![(0u64, memory_start)];
    let step = (options.growth / 10).max(1);
    let grow_started = Instant::now();
    for (i, block) in growth.chunks(1000).enumerate() {
        let mut bytes = String::with_capacity(block.iter().map(|l| l.len() + 1).sum());
        for line in block {
            bytes.push_str(line);
            bytes.push('\n');
        }
        file.write_all(bytes.as_bytes())?;
        let written = ((i + 1) * 1000).min(growth.len()) as u64;
        if written.is_multiple_of(step) || written == growth.len() as u64 {
            let want = seq_of(block[block.len() - 1])?;
            wait_for(&mut conn, want)?;
            memory.push((written, memory_mib(pid).context("the server is gone")?));
        }
    }
    let grow_secs = grow_started.elapsed().as_secs_f64();
    drop(server);

    println!(
        "| appended lines | rate | delivered (expected) | p50 | p95 | p99 | max |\n|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {:.0}/s | {} ({}) | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        thousands(options.lines),
        options.rate,
        thousands(delivery.delivered),
        thousands(delivery.expected),
        delivery.p50,
        delivery.p95,
        delivery.p99,
        delivery.max,
    );
    println!("\n| lines appended | server RSS | peak RSS |\n|---:|---:|---:|");
    for (written, (rss, hwm)) in &memory {
        println!("| {} | {rss:.1} MiB | {hwm:.1} MiB |", thousands(*written));
    }
    println!(
        "\nfollowed {} lines in {grow_secs:.1} s ({:.0} lines/s, writes of 1,000 lines)",
        thousands(options.growth),
        options.growth as f64 / grow_secs
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let (first, last) = (memory[0].1.0, memory[memory.len() - 1].1.0);
    println!(
        "targets: every appended line at the subscriber, in order ({}: {} of {}), p99 <= {TARGET_P99_MS:.0} ms ({}: \
         {:.1} ms); memory flat while the log grows by {} lines (RSS {first:.1} -> {last:.1} MiB)",
        verdict(delivery.delivered == delivery.expected && delivery.failed == 0),
        delivery.delivered,
        delivery.expected,
        verdict(delivery.p99 <= TARGET_P99_MS),
        delivery.p99,
        thousands(options.growth),
    );
    ensure!(delivery.delivered == delivery.expected, "lines missing at the subscriber");
    Ok(())
}

/// Waits (60 s at most) until the server's state is at `seq`.
fn wait_for(conn: &mut Conn, seq: u64) -> Result<()> {
    let started = Instant::now();
    while last_seq(conn)? < seq {
        ensure!(started.elapsed() < Duration::from_secs(60), "the server did not reach seq {seq} in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
