//! The log commands (spec §3.2): `replay`, `whatif`, `verify` and `rules`, on an event log
//! (a file, stdin or `.gz`) or a DockerDiscordControl installation (`--ddc DIR`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use indicatif::ProgressBar;
use mechfund_core::replay::Severity;
use mechfund_core::whatif::goal_table;
use mechfund_core::{DiagnosticKind, Now, ReplayOptions, ReplayResult, Rules};
use serde::Serialize;

use super::error::CliError;
use super::output::{bytes_bar, print_json};
use super::rules::load_rules;
use crate::ddc::Installation;
use crate::pipeline::{Keeping, Workers, replay_on};

/// The log to read: FILE under --rules, or a DDC installation.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The events.jsonl to read; `-` for stdin; `.gz` files are decompressed.
    file: Option<PathBuf>,
    /// Rules JSON (spec §2.1); defaults when omitted.
    #[arg(long, value_name = "R.json")]
    rules: Option<PathBuf>,
    /// Read a DockerDiscordControl installation instead of FILE and --rules: DDC's config dir
    /// (its log, rules files and its own snapshot of the mech, whose goal is used).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "rules"])]
    ddc: Option<PathBuf>,
    /// Which mech to replay.
    #[arg(long, default_value = "main")]
    mech: String,
}

/// Arguments of `mechfund replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Compute the display at this RFC 3339 time (default: the last event's time).
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Stop with exit code 1 at the first bad line.
    #[arg(long)]
    strict: bool,
    /// Include the state after each event, for charts.
    #[arg(long)]
    timeline: bool,
}

/// Arguments of `mechfund whatif`.
#[derive(Debug, Args)]
pub struct WhatifArgs {
    /// The hypothetical member count (clamped to 0..=member_cap).
    #[arg(long, allow_negative_numbers = true)]
    members: i64,
    /// Rules JSON; defaults when omitted.
    #[arg(long, value_name = "R.json")]
    rules: Option<PathBuf>,
}

/// Arguments of `mechfund verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Verify a server's store instead of a log: the hash chain over its event rows, the
    /// recorded last row and every snapshot (exit 1 at the first damage).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "ddc", "rules"])]
    data: Option<PathBuf>,
    /// Verify a PostgreSQL store (`postgres://USER@HOST/DB`) the same way.
    #[arg(long, value_name = "URL", conflicts_with_all = ["file", "ddc", "rules", "data"])]
    store: Option<String>,
}

impl VerifyArgs {
    /// `--data DIR`: verify this server store instead of a log.
    #[must_use]
    pub fn store_dir(&self) -> Option<&Path> {
        self.data.as_deref()
    }

    /// `--store URL`: verify this PostgreSQL store instead of a log.
    #[must_use]
    pub fn store_url(&self) -> Option<&str> {
        self.store.as_deref()
    }
}

/// Arguments of `mechfund rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// DockerDiscordControl's config dir, whose rules files to read.
    #[arg(long, value_name = "DIR")]
    ddc: PathBuf,
}

pub fn replay_command(args: &ReplayArgs) -> Result<ExitCode, CliError> {
    let now = args
        .now
        .as_deref()
        .map(|text| Now::parse(text).map_err(|e| CliError::Usage(format!("--now: {e}"))))
        .transpose()?;
    let options = ReplayOptions { strict: args.strict, timeline: args.timeline, now, ..ReplayOptions::default() };
    let result = args.log.replay(options)?;
    print_json(&result)?;
    Ok(ExitCode::SUCCESS)
}

impl LogArgs {
    /// Replays the log these arguments name: FILE under --rules, or a DDC installation.
    fn replay(&self, options: ReplayOptions) -> Result<ReplayResult, CliError> {
        let options = ReplayOptions { mech: self.mech.clone(), ..options };
        if let Some(dir) = &self.ddc {
            let ddc = Installation::open(dir).map_err(CliError::Usage)?;
            let reading = ddc.read_for(&self.mech).map_err(|e| ddc_error(&ddc, &e))?;
            for note in &reading.notes {
                eprintln!("mechfund: note: {note}");
            }
            let options = ReplayOptions { ddc_snapshot: reading.snapshot, ..options };
            let events = ddc.events();
            if !events.exists() {
                return replay_buffer(b"", &reading.rules, options, &events.display().to_string());
            }
            return replay_path(&events, &reading.rules, options);
        }
        let rules = load_rules(self.rules.as_deref())?;
        // clap requires FILE unless --ddc is given.
        let file = self.file.as_deref().ok_or_else(|| CliError::Usage("give a log FILE or --ddc DIR".to_owned()))?;
        replay_path(file, &rules, options)
    }

    /// What to call the log in messages.
    fn label(&self) -> String {
        match (&self.ddc, &self.file) {
            (Some(dir), _) => format!("DDC installation {}", dir.display()),
            (None, Some(file)) => file.display().to_string(),
            (None, None) => "the log".to_owned(),
        }
    }
}

fn ddc_error(ddc: &Installation, e: &mechfund_core::ddc::DdcError) -> CliError {
    CliError::Usage(format!("{}: {e}", ddc.dir().display()))
}

pub fn rules_command(args: &RulesArgs) -> Result<ExitCode, CliError> {
    let ddc = Installation::open(&args.ddc).map_err(CliError::Usage)?;
    let (rules, notes) = ddc.rules().map_err(|e| ddc_error(&ddc, &e))?;
    for note in &notes {
        eprintln!("mechfund: note: {note}");
    }
    print_json(&rules.to_value())?;
    Ok(ExitCode::SUCCESS)
}

pub fn whatif_command(args: &WhatifArgs) -> Result<ExitCode, CliError> {
    #[derive(Serialize)]
    struct Whatif {
        members: i64,
        table: Vec<mechfund_core::rules::GoalParts>,
    }
    let rules = load_rules(args.rules.as_deref())?;
    print_json(&Whatif { members: args.members, table: goal_table(args.members, &rules) })?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify_command(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let result = args.log.replay(ReplayOptions::default())?;
    print_json(&result.diagnostics)?;
    let failing = result
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning && d.kind != DiagnosticKind::RecordedGoalDiffers)
        .count();
    if failing > 0 {
        eprintln!("mechfund: {failing} warning(s) in {}", args.log.label());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Replays a log from a file path (`-` for stdin; `.gz` decompressed).
///
/// Plain files are read twice and never held in memory; stdin and `.gz` are buffered.
///
/// # Errors
/// Unreadable input, or a bad line in strict mode.
pub fn replay_path(path: &Path, rules: &Rules, options: ReplayOptions) -> Result<ReplayResult, CliError> {
    let label = path.display().to_string();
    if path == Path::new("-") {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf)?;
        return replay_buffer(&buf, rules, options, &label);
    }
    let open = || File::open(path).map_err(|e| CliError::Usage(format!("cannot open {label}: {e}")));
    let file = open()?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        let mut buf = Vec::new();
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::Usage(format!("cannot decompress {label}: {e}")))?;
        return replay_buffer(&buf, rules, options, &label);
    }
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = bytes_bar(size, size * 2, format!("replaying {label}"));
    let result = two_passes(rules, options, &bar, || Ok(io::BufReader::with_capacity(0, open()?)));
    bar.finish_and_clear();
    result
}

fn replay_buffer(buf: &[u8], rules: &Rules, options: ReplayOptions, label: &str) -> Result<ReplayResult, CliError> {
    let bar = bytes_bar(buf.len() as u64, buf.len() as u64 * 2, format!("replaying {label}"));
    let result = two_passes(rules, options, &bar, || Ok(buf));
    bar.finish_and_clear();
    result
}

/// [`replay_on`] every core of a source that can be opened again, its progress on `bar` (whose
/// length doubles should an exact rescan read the source twice more).
fn two_passes<R: Read + Send>(
    rules: &Rules,
    options: ReplayOptions,
    bar: &ProgressBar,
    open: impl Fn() -> Result<R, CliError>,
) -> Result<ReplayResult, CliError> {
    let tick = |n: u64| {
        let length = bar.length().unwrap_or(0);
        if bar.position() + n > length {
            bar.set_length(length * 2);
        }
        bar.inc(n);
    };
    Ok(replay_on(Workers::all_cores(), rules, options, Keeping::default(), open, tick)?.result)
}
