//! Replay on every core: a log read in blocks of whole lines, parsed by every worker thread and
//! folded in file order (`blocks.rs`), for the CLI's `replay` and `verify` of files and for the
//! store's replays of a mech (a deletion toggle, recovery, import).

mod blocks;

use std::io::{self, Read};

use mechfund_core::replay::{Kept, Source, candidates, replay_bytes_kept, replay_source};
use mechfund_core::{Line, ReplayOptions, Replayer, Rules, State, StrictError, parse_line};

pub use blocks::{Workers, for_each_block, for_each_line, parse_lines};

/// Where a replay starts and what it keeps (see [`Replayer::keeping`]).
#[derive(Clone, Debug, Default)]
pub struct Keeping {
    /// The state after the events before the log's lines (`None`: the start).
    pub checkpoint: Option<State>,
    /// Keep the state after every this many events (0: none).
    pub every: u64,
}

/// The core's replay ([`replay_source`]), parsing on `workers`: a sparse first pass (only lines
/// that may be deletions or level-ups are parsed), the fold, and — only if the sparse pass's
/// assumptions did not hold — an exact first pass and the fold again. `open` gives the log from
/// its start each time it is called (two or four times); `tick` gets the bytes each pass consumes.
///
/// # Errors
/// What `open` or reading returns, or in strict mode the first bad line.
pub fn replay_on<R, E>(
    workers: Workers,
    rules: &Rules,
    options: ReplayOptions,
    keeping: Keeping,
    open: impl Fn() -> Result<R, E>,
    tick: impl Fn(u64) + Sync,
) -> Result<Kept, E>
where
    R: Read + Send,
    E: From<io::Error> + From<StrictError> + Send,
{
    let mech = options.mech.clone();
    let mut blocks = Blocks { workers, open, tick, mech: &mech };
    replay_source(&mut blocks, rules, options, keeping.checkpoint, keeping.every)
}

/// A log read from its start by `open` on every pass, in blocks parsed on `workers`.
struct Blocks<'m, O, T> {
    workers: Workers,
    open: O,
    tick: T,
    mech: &'m str,
}

impl<R, E, O, T> Source for Blocks<'_, O, T>
where
    R: Read + Send,
    E: From<io::Error> + From<StrictError> + Send,
    O: Fn() -> Result<R, E>,
    T: Fn(u64) + Sync,
{
    type Error = E;

    fn candidates(&mut self, replayer: &mut Replayer<'_>) -> Result<(), E> {
        let (mech, tick) = (self.mech, &self.tick);
        let mut base = 0;
        blocks::for_each_block_on(
            self.workers,
            (self.open)()?,
            |block| {
                let found = candidates(block);
                let parsed: Vec<(u64, Line)> =
                    found.lines.into_iter().map(|(index, line)| (index, parse_line(line, mech))).collect();
                (parsed, found.line_count)
            },
            |(parsed, line_count), bytes| {
                for (index, line) in &parsed {
                    replayer.scan_candidate(base + index + 1, line);
                }
                base += line_count;
                tick(bytes as u64);
                Ok::<_, E>(())
            },
        )
    }

    fn each(&mut self, mut f: impl FnMut(u64, &Line) -> Result<(), StrictError> + Send) -> Result<(), E> {
        let tick = &self.tick;
        for_each_line(self.workers, (self.open)()?, self.mech, tick, |n, line| f(n, line).map_err(E::from))
    }
}

/// [`replay_on`] every core of a log held in memory; a log of two blocks or less is replayed
/// on this thread ([`replay_bytes_kept`]), which starting workers would only slow down.
///
/// # Errors
/// In strict mode, the first bad line.
pub fn replay_bytes_on_all_cores(
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    keeping: Keeping,
) -> Result<Kept, StrictError> {
    let workers = Workers::all_cores();
    if workers.threads == 1 || bytes.len() <= 2 * workers.block {
        return replay_bytes_kept(bytes, rules, options, keeping.checkpoint, keeping.every);
    }
    replay_on(workers, rules, options, keeping, || Ok::<_, ReadOrStrict>(bytes), |_| {}).map_err(|e| {
        match e {
            ReadOrStrict::Strict(e) => e,
            // Reading a slice cannot fail.
            ReadOrStrict::Read(e) => StrictError { line: 0, message: e.to_string() },
        }
    })
}

/// The errors of a replay of bytes in memory.
enum ReadOrStrict {
    Read(io::Error),
    Strict(StrictError),
}

impl From<io::Error> for ReadOrStrict {
    fn from(e: io::Error) -> ReadOrStrict {
        ReadOrStrict::Read(e)
    }
}

impl From<StrictError> for ReadOrStrict {
    fn from(e: StrictError) -> ReadOrStrict {
        ReadOrStrict::Strict(e)
    }
}

#[cfg(test)]
mod tests {
    use mechfund_core::{replay_bytes_after, replay_bytes_with_checkpoints};
    use proptest::prelude::*;

    use super::*;

    fn options() -> ReplayOptions {
        ReplayOptions { mech: "main".to_owned(), ..ReplayOptions::default() }
    }

    fn replay(log: &[u8], workers: Workers, keeping: Keeping) -> Kept {
        replay_on(workers, &Rules::default(), options(), keeping, || Ok::<_, ReadOrStrict>(log), |_| {})
            .unwrap_or_else(|_| panic!("a lenient replay of bytes failed"))
    }

    /// A generated DDC log (donations, deletions and restorations, level-ups), with two lines
    /// swapped when `swap` is given: seqs out of order, which the sparse pass cannot take, so the
    /// exact rescan and the buffered fold run too.
    fn log(events: u64, seed: u64, swap: Option<prop::sample::Index>) -> Vec<u8> {
        let mut lines: Vec<String> = mechfund_loggen::log_text(events, seed).lines().map(str::to_owned).collect();
        if let Some(at) = swap.filter(|_| lines.len() > 1) {
            let i = at.index(lines.len() - 1);
            lines.swap(i, i + 1);
        }
        lines.iter().flat_map(|line| [line.as_bytes(), b"\n"]).flatten().copied().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any block size and number of workers gives the core's single-thread replay: the
        /// result and every checkpoint, and from any checkpoint the core's resumed replay.
        #[test]
        fn parallel_replay_is_the_cores_replay(
            events in 1u64..1_500,
            seed in any::<u64>(),
            swap in proptest::option::of(any::<prop::sample::Index>()),
            threads in 1usize..5,
            block in 16usize..4_096,
            every in 1u64..300,
            resume_at in any::<prop::sample::Index>(),
        ) {
            let text = log(events, seed, swap);
            let workers = Workers { threads, block };
            let (result, checkpoints) = replay_bytes_with_checkpoints(&text, &Rules::default(), options(), every).unwrap();
            let ours = replay(&text, workers, Keeping { checkpoint: None, every });
            prop_assert_eq!(&ours.result, &result);
            prop_assert_eq!(&ours.checkpoints, &checkpoints);
            prop_assert!(ours.holds);
            // Swapped lines are seqs out of order: only then does the exact pass run.
            prop_assert_eq!(ours.rescanned, swap.is_some() && events > 1);

            if checkpoints.is_empty() {
                return Ok(());
            }
            let checkpoint = checkpoints[resume_at.index(checkpoints.len())].clone();
            let after: Vec<u8> = mechfund_core::replay::lines(&text)
                .filter(|(_, line)| {
                    matches!(parse_line(line, "main"), Line::Mine(rec) if rec.seq > checkpoint.last_event_seq)
                })
                .flat_map(|(_, line)| [line, b"\n"])
                .flatten()
                .copied()
                .collect();
            let core = replay_bytes_after(&checkpoint, &after, &Rules::default(), options(), every).unwrap();
            let ours = replay(&after, workers, Keeping { checkpoint: Some(checkpoint), every });
            prop_assert_eq!(ours.holds, core.is_some());
            if let Some((result, checkpoints)) = core {
                prop_assert_eq!(&ours.result, &result);
                prop_assert_eq!(&ours.checkpoints, &checkpoints);
            }
        }
    }
}
