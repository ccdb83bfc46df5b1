//! `cargo xtask gen-log`: writes a seeded, realistic DDC-format log (see mechfund-loggen).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use mechfund_loggen::Stats;

use crate::args::Args;

pub const USAGE: &str = "cargo xtask gen-log --events N --out PATH [--seed S]

Writes exactly N lines (derived level-ups included) of mech \"main\" under the default rules.
The same N and seed give the same file, byte for byte. Default seed: 1.";

pub fn run(mut args: Args) -> Result<()> {
    let events: u64 = args.required("--events")?;
    let out: PathBuf = args.required("--out")?;
    let seed: u64 = args.value("--seed")?.unwrap_or(1);
    args.finish()?;
    let started = Instant::now();
    let stats = write(&out, events, seed)?;
    eprintln!(
        "wrote {} ({} lines, {:.1} MB, {:.0} bytes/line) in {:.1} s",
        out.display(),
        stats.lines,
        stats.bytes as f64 / 1e6,
        stats.bytes as f64 / stats.lines.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    eprintln!("{}", describe(&stats));
    Ok(())
}

/// Writes the log to `path` (through a temporary file, so a crash leaves no partial log).
pub fn write(path: &Path, events: u64, seed: u64) -> Result<Stats> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let stats = mechfund_loggen::write_log(file, events, seed).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(stats)
}

/// One line describing the mix.
pub fn describe(s: &Stats) -> String {
    format!(
        "mix: {} donations, {} member counts, {} system donations, {} deletions + {} restores, \
         {} gifts, {} level-ups ({} exact hits){}",
        s.donations,
        s.member_counts,
        s.system_donations,
        s.deletions,
        s.restores,
        s.gifts,
        s.level_ups,
        s.exact_hits,
        s.max_level_at_seq.map(|seq| format!(", level 11 from seq {seq}")).unwrap_or_default()
    )
}
