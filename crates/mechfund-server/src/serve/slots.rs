//! The export slots of `mechfund serve`: how many exports of `…/events.jsonl` stream at once
//! (`--max-exports`) and how long one waits for its client (`--export-stall-secs`); see
//! [`super::export`].

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::Semaphore;

/// The export options of `mechfund serve`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// Seconds an export of `…/events.jsonl` waits for a client to take its next 256 KiB before it
    /// gives up its read transaction (the client sees a broken transfer).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    export_stall_secs: u64,
    /// Exports streaming at once (each holds a read transaction and a thread); one more answers
    /// 503 busy with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    max_exports: u32,
}

/// The exports streaming now, and how long one waits for its client.
#[derive(Debug)]
pub struct Exports {
    /// One permit per export that may stream now.
    pub slots: Arc<Semaphore>,
    /// How many exports may stream at once.
    pub max: usize,
    /// How long an export waits for its client to take a chunk.
    pub stall: Duration,
}

impl Exports {
    /// At most `max` exports at once, each giving up after `stall` without progress.
    #[must_use]
    pub fn new(max: usize, stall: Duration) -> Exports {
        Exports { slots: Arc::new(Semaphore::new(max)), max, stall }
    }
}

impl Default for Exports {
    /// The defaults of [`ExportArgs`].
    fn default() -> Exports {
        Exports::new(16, Duration::from_secs(30))
    }
}

impl From<&ExportArgs> for Exports {
    fn from(args: &ExportArgs) -> Exports {
        Exports::new(
            usize::try_from(args.max_exports).unwrap_or(usize::MAX),
            Duration::from_secs(args.export_stall_secs),
        )
    }
}
