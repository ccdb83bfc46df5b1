//! Replay in slices, so a million-event log never freezes the page.
//!
//! The same passes as the core's `replay_bytes` (a sparse first pass over the lines that can
//! change history, the fold, an exact rescan if the sparse pass's assumptions fail), cut into
//! slices of about [`SLICE_MS`] of work. Between slices the job awaits `pause()`, which in the
//! browser yields to the event loop (rendering, input); natively it is a no-op, so the tests run
//! the same code. The fold also collects the event table's rows and the log's mech ids.

use std::collections::BTreeSet;
use std::future::Future;

use mechfund_core::replay::{Replayer, SecondPass, candidate_lines, count_lines, lines};
use mechfund_core::{Line, ReplayOptions, Rules, StrictError, parse_line};
use serde::Deserialize;

use crate::analysis::{Analysis, EventRow, Interner, OrderedRows, row};

/// Work per slice, in milliseconds: well under a frame budget's worth of jank (the issue asks for
/// no main-thread gap over 200 ms).
pub const SLICE_MS: f64 = 25.0;

/// Every [`Progress::phase`] of a load (reading, then the job's), for progress that crosses to the page as text.
pub const PHASES: [&str; 5] = ["Reading", "Scanning", "Replaying", "Re-scanning", "Summarising"];

/// Lines between clock reads.
const CHECK_EVERY: usize = 512;

/// Block size of the first pass.
const BLOCK: usize = 1 << 20;

/// Where a replay is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// What runs: "Scanning", "Replaying", "Re-scanning".
    pub phase: &'static str,
    /// 0.0 ..= 1.0 of the whole job.
    pub fraction: f64,
}

/// What the job needs from its host.
pub trait Host {
    /// Milliseconds from any fixed origin.
    fn now_ms(&self) -> f64;
    /// Lets the page breathe (the browser: a macrotask); reports progress first.
    fn pause(&mut self, progress: Progress) -> impl Future<Output = ()>;
}

#[derive(Deserialize)]
struct MechOnly<'a> {
    #[serde(borrow)]
    mech_id: std::borrow::Cow<'a, str>,
}

/// Splits `bytes` into blocks of about `size` bytes that end just after a newline.
fn blocks(bytes: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= size {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[size..]).map_or(rest.len(), |i| size + i + 1)
        };
        let (block, tail) = rest.split_at(end);
        rest = tail;
        Some(block)
    })
}

struct Slicer<'h, H: Host> {
    host: &'h mut H,
    started: f64,
    counter: usize,
}

impl<H: Host> Slicer<'_, H> {
    /// Pauses when the slice has run long enough.
    async fn tick(&mut self, phase: &'static str, fraction: f64) {
        self.counter += 1;
        if !self.counter.is_multiple_of(CHECK_EVERY) {
            return;
        }
        if self.host.now_ms() - self.started >= SLICE_MS {
            self.host.pause(Progress { phase, fraction: fraction.clamp(0.0, 1.0) }).await;
            self.started = self.host.now_ms();
        }
    }
}

/// Replays `bytes` for `options.mech` (with a timeline) and builds the dashboard's [`Analysis`].
///
/// # Errors
/// Strict replay's first bad line.
pub async fn replay<H: Host>(
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    host: &mut H,
) -> Result<Analysis, StrictError> {
    let options = ReplayOptions { timeline: true, ..options };
    let mech = options.mech.clone();
    let total = bytes.len().max(1) as f64;
    let started = host.now_ms();
    let mut slicer = Slicer { host, started, counter: 0 };

    // Pass 1 (sparse): only lines that can rewrite history are parsed.
    let mut replayer = Replayer::sparse(rules, options.clone());
    let mut done = 0usize;
    let mut base = 0u64;
    for block in blocks(bytes, BLOCK) {
        for (index, line) in candidate_lines(block) {
            replayer.scan_candidate(base + index + 1, &parse_line(line, &mech));
        }
        base += count_lines(block);
        done += block.len();
        slicer.counter = CHECK_EVERY - 1; // a block is a slice's worth of checking
        slicer.tick("Scanning", 0.1 * done as f64 / total).await;
    }
    let mut collected = fold(&mut replayer, bytes, &mech, &mut slicer, (0.1, 0.9)).await?;
    if replayer.needs_exact_rescan() {
        replayer = Replayer::new(rules, options);
        for (n, line) in lines(bytes) {
            replayer.scan_line(n, &parse_line(line, &mech))?;
            slicer.tick("Re-scanning", 0.5).await;
        }
        collected = fold(&mut replayer, bytes, &mech, &mut slicer, (0.5, 1.0)).await?;
    }
    // The rest cannot be sliced further; each step gets a task of its own.
    let summarising = |fraction| Progress { phase: "Summarising", fraction };
    slicer.host.pause(summarising(0.96)).await;
    let Collected { rows, interner, mechs, lines } = collected;
    let result = replayer.finish();
    slicer.host.pause(summarising(0.98)).await;
    let rows = OrderedRows::new(rows);
    slicer.host.pause(summarising(0.99)).await;
    let texts = interner.into_texts();
    let analysis = Analysis::from_ordered(result, rows, texts, mechs.into_iter().collect(), lines, bytes.len() as u64);
    slicer.host.pause(summarising(1.0)).await;
    Ok(analysis)
}

struct Collected {
    rows: Vec<EventRow>,
    interner: Interner,
    mechs: BTreeSet<String>,
    lines: u64,
}

/// Lines per chunk of [`Parsed`]'s store (no reallocation copies a million parsed lines).
const PARSED_CHUNK: usize = 1 << 16;

/// A parsed line replay uses (an event of the mech, or a bad line), with its number and where
/// it is in the log (for its table row).
struct Kept {
    n: u64,
    start: usize,
    end: usize,
    line: Line,
}

/// A log's lines parsed for one mech as its bytes arrive: the replay worker parses a body while
/// the rest of it is still on the way, and [`replay_parsed`] then replays without parsing again.
/// It keeps the parsed lines replay uses (the mech's events and bad lines) and the mech ids.
pub struct Parsed {
    mech: String,
    /// The lines replay uses, in file order.
    lines: Vec<Vec<Kept>>,
    mechs: BTreeSet<String>,
    /// Whether a line was an event of the mech.
    events: bool,
    /// Lines seen.
    count: u64,
    /// Bytes taken: up to just after the last newline seen.
    taken: usize,
}

impl Parsed {
    #[must_use]
    pub fn new(mech: &str) -> Parsed {
        Parsed { mech: mech.to_owned(), lines: Vec::new(), mechs: BTreeSet::new(), events: false, count: 0, taken: 0 }
    }

    /// The mech the lines were parsed for.
    #[must_use]
    pub fn mech(&self) -> &str {
        &self.mech
    }

    /// Takes the complete lines of `bytes` (the log's bytes so far, a prefix of the whole log)
    /// that it has not taken yet.
    pub fn take(&mut self, bytes: &[u8]) {
        let base = self.taken;
        let mut start = base;
        for newline in memchr::memchr_iter(b'\n', bytes.get(base..).unwrap_or_default()) {
            self.line(bytes, start, base + newline);
            start = base + newline + 1;
        }
        self.taken = start;
    }

    /// Takes the rest of `bytes` (the whole log): its last line, if it has no newline.
    pub fn finish(&mut self, bytes: &[u8]) {
        self.take(bytes);
        if self.taken < bytes.len() {
            self.line(bytes, self.taken, bytes.len());
            self.taken = bytes.len();
        }
    }

    /// Takes the line `bytes[start..end]` (without its newline).
    fn line(&mut self, bytes: &[u8], start: usize, end: usize) {
        let line = &bytes[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.count += 1;
        let parsed = parse_line(line, &self.mech);
        match &parsed {
            Line::Mine(_) if !self.events => {
                self.events = true;
                self.mechs.insert(self.mech.clone());
            }
            Line::Other => {
                if let Ok(other) = serde_json::from_slice::<MechOnly<'_>>(line)
                    && !self.mechs.contains(&*other.mech_id)
                {
                    self.mechs.insert(other.mech_id.into_owned());
                }
                return;
            }
            Line::Blank => return,
            Line::Mine(_) | Line::Bad(_) => {}
        }
        if self.lines.last().is_none_or(|chunk| chunk.len() == PARSED_CHUNK) {
            self.lines.push(Vec::with_capacity(PARSED_CHUNK));
        }
        if let Some(chunk) = self.lines.last_mut() {
            chunk.push(Kept { n: self.count, start, end: start + line.len(), line: parsed });
        }
    }

    fn kept(&self) -> impl Iterator<Item = &Kept> {
        self.lines.iter().flatten()
    }
}

/// What [`replay_parsed`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parts {
    /// The summary alone, [`summary_only`](Analysis::summary_only) when the log has events of
    /// the mech: no rows, toggles, donors or chart (no timeline is kept: a page shows it first).
    Summary,
    /// Everything [`replay`] builds.
    Whole,
}

/// [`replay`] of a log already [`Parsed`] (finished) for `options.mech`; `bytes` is the log.
/// The same result as [`replay`], through the core's exact first pass over the parsed lines
/// (the lines it skips, blank ones and other mechs' events, change nothing in either pass).
///
/// # Errors
/// Strict replay's first bad line.
pub async fn replay_parsed<H: Host>(
    parsed: &Parsed,
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    parts: Parts,
    host: &mut H,
) -> Result<Analysis, StrictError> {
    let options = ReplayOptions { timeline: parts == Parts::Whole, ..options };
    let started = host.now_ms();
    let mut slicer = Slicer { host, started, counter: 0 };
    let total = parsed.lines.iter().map(Vec::len).sum::<usize>().max(1) as f64;
    let mut replayer = Replayer::new(rules, options);
    for kept in parsed.kept() {
        replayer.scan_line(kept.n, &kept.line)?;
    }
    match replayer.second_pass() {
        SecondPass::Stream => {
            for (done, kept) in parsed.kept().enumerate() {
                replayer.fold_line(kept.n, &kept.line)?;
                slicer.tick("Replaying", 0.1 + 0.8 * done as f64 / total).await;
            }
        }
        SecondPass::Buffer => {
            for kept in parsed.kept() {
                replayer.buffer_line(kept.n, kept.line.clone());
            }
        }
    }
    let mechs = parsed.mechs.iter().cloned().collect();
    let result = replayer.finish();
    let summary = Analysis::from_ordered(
        result,
        OrderedRows::new(Vec::new()),
        Vec::new(),
        mechs,
        parsed.count,
        bytes.len() as u64,
    );
    if parts == Parts::Summary {
        return Ok(Analysis { summary_only: parsed.events, ..summary });
    }
    let mut interner = Interner::default();
    let mut rows = Vec::new();
    for kept in parsed.kept() {
        if let Line::Mine(record) = &kept.line {
            rows.push(row(kept.n, record, &bytes[kept.start..kept.end], &mut interner));
        }
    }
    Ok(summary.with_rows(OrderedRows::new(rows), interner.into_texts()))
}

/// The second pass, collecting rows and mech ids as it goes.
async fn fold<H: Host>(
    replayer: &mut Replayer<'_>,
    bytes: &[u8],
    mech: &str,
    slicer: &mut Slicer<'_, H>,
    (from, to): (f64, f64),
) -> Result<Collected, StrictError> {
    let stream = matches!(replayer.second_pass(), SecondPass::Stream);
    let mut collected = Collected { rows: Vec::new(), interner: Interner::default(), mechs: BTreeSet::new(), lines: 0 };
    let total = bytes.len().max(1) as f64;
    let mut offset = 0usize;
    for (n, line) in lines(bytes) {
        offset += line.len() + 1;
        collected.lines = n;
        let parsed = parse_line(line, mech);
        match &parsed {
            Line::Mine(record) => {
                collected.mechs.insert(mech.to_owned());
                collected.rows.push(row(n, record, line, &mut collected.interner));
            }
            Line::Other => {
                if let Ok(other) = serde_json::from_slice::<MechOnly<'_>>(line)
                    && !collected.mechs.contains(&*other.mech_id)
                {
                    collected.mechs.insert(other.mech_id.into_owned());
                }
            }
            Line::Blank | Line::Bad(_) => {}
        }
        if stream {
            replayer.fold_line(n, &parsed)?;
        } else {
            replayer.buffer_line(n, parsed);
        }
        slicer.tick("Replaying", from + (to - from) * offset as f64 / total).await;
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// A clock that advances a whole slice per read, so the job pauses at every check.
    #[derive(Default)]
    struct Native {
        clock: Cell<f64>,
        pauses: Vec<Progress>,
    }

    impl Host for Native {
        fn now_ms(&self) -> f64 {
            self.clock.set(self.clock.get() + SLICE_MS);
            self.clock.get()
        }

        async fn pause(&mut self, progress: Progress) {
            self.pauses.push(progress);
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn blocks_end_after_newlines_and_cover_everything() {
        let text = b"aaa\nbb\n\ncccc\nd";
        let parts: Vec<&[u8]> = blocks(text, 2).collect();
        assert_eq!(parts, [&b"aaa\n"[..], b"bb\n", b"\ncccc\n", b"d"]);
        let counted: u64 = parts.iter().map(|b| count_lines(b)).sum();
        assert_eq!(counted, lines(text).count() as u64);
    }

    #[test]
    fn sliced_replay_equals_the_core_replay_and_pauses() {
        let log = include_bytes!("../../tests/samples/ddc-mixed-1500.jsonl");
        let rules = Rules::default();
        let options = ReplayOptions { timeline: true, ..ReplayOptions::default() };
        let want = mechfund_core::replay_bytes(log, &rules, options.clone()).expect("lenient replay");
        let mut host = Native::default();
        let analysis = block_on(replay(log, &rules, options, &mut host)).expect("lenient replay");
        assert_eq!(analysis.result.state, want.state);
        assert_eq!(analysis.result.display, want.display);
        assert_eq!(analysis.result.diagnostics, want.diagnostics);
        assert_eq!(analysis.result.level_ups, want.level_ups);
        assert_eq!(analysis.lines, lines(log).count() as u64);
        assert_eq!(analysis.mechs, ["main"]);
        assert!(host.pauses.len() > 2, "the job never paused: {:?}", host.pauses);
        let fractions: Vec<f64> = host.pauses.iter().map(|p| p.fraction).collect();
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "progress went backwards: {fractions:?}");
        assert_eq!(fractions.last().copied(), Some(1.0));
    }

    #[test]
    fn an_unsorted_log_takes_the_buffered_path_and_still_agrees() {
        let log = b"{\"seq\":2,\"ts\":\"2025-01-01T00:00:02Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{\"units\":500,\"donor\":\"b\"}}\n{\"seq\":1,\"ts\":\"2025-01-01T00:00:01Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{\"units\":300,\"donor\":\"a\"}}\n{\"seq\":3,\"ts\":\"2025-01-01T00:00:03Z\",\"type\":\"MemberCountUpdated\",\"mech_id\":\"alpha\",\"payload\":{\"member_count\":50}}\n";
        let rules = Rules::default();
        let want = mechfund_core::replay_bytes(log, &rules, ReplayOptions::default()).expect("lenient replay");
        let analysis =
            block_on(replay(log, &rules, ReplayOptions::default(), &mut Native::default())).expect("lenient");
        assert_eq!(analysis.result.state, want.state);
        assert_eq!(analysis.result.diagnostics, want.diagnostics);
        assert_eq!(analysis.mechs, ["alpha", "main"]);
        let seqs: Vec<u64> = analysis.rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(analysis.text(analysis.rows[0].text), Some("a"));
        assert_eq!(analysis.rows[1].amount, Some(500));
    }

    /// `replay_parsed` of `log` fed to [`Parsed`] in pieces of `piece` bytes, for `mech`.
    fn parsed_in_pieces(log: &[u8], piece: usize, mech: &str) -> Analysis {
        let mut parsed = Parsed::new(mech);
        let mut end = 0;
        while end < log.len() {
            end = (end + piece).min(log.len());
            parsed.take(&log[..end]);
        }
        parsed.finish(log);
        let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
        let replay = |parts| {
            block_on(replay_parsed(&parsed, log, &Rules::default(), options.clone(), parts, &mut Native::default()))
                .expect("lenient replay")
        };
        let (summary, whole) = (replay(Parts::Summary), replay(Parts::Whole));
        assert!(summary.rows.is_empty() && summary.donors.is_empty() && summary.toggles.is_empty());
        assert!(summary.chart.is_empty());
        assert_eq!(summary.summary_only, summary.result.state.last_event_seq > 0);
        assert_eq!(summary.result, whole.result);
        assert_eq!((&summary.mechs, summary.lines, summary.bytes), (&whole.mechs, whole.lines, whole.bytes));
        whole
    }

    #[track_caller]
    fn assert_same_analysis(got: &Analysis, want: &Analysis) {
        assert_eq!(got.result, want.result);
        assert_eq!(got.rows, want.rows);
        assert_eq!(got.texts, want.texts);
        assert_eq!(got.toggles, want.toggles);
        assert_eq!(got.donors, want.donors);
        assert_eq!(got.chart, want.chart);
        assert_eq!(got.mechs, want.mechs);
        assert_eq!((got.lines, got.bytes), (want.lines, want.bytes));
        assert!(!got.summary_only && !want.summary_only);
    }

    #[test]
    fn parsed_as_it_arrives_equals_the_sliced_replay() {
        let sample = include_bytes!("../../tests/samples/ddc-mixed-1500.jsonl");
        let mut crlf = Vec::new();
        for line in sample.split(|&b| b == b'\n') {
            crlf.extend_from_slice(line);
            crlf.extend_from_slice(b"\r\n");
        }
        let unsorted = b"{\"seq\":2,\"ts\":\"2025-01-01T00:00:02Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{\"units\":500,\"donor\":\"b\"}}\n\nnot json\n{\"seq\":1,\"ts\":\"2025-01-01T00:00:01Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{\"units\":300,\"donor\":\"a\"}}\n{\"seq\":3,\"ts\":\"2025-01-01T00:00:03Z\",\"type\":\"MemberCountUpdated\",\"mech_id\":\"alpha\",\"payload\":{\"member_count\":50}}";
        let no_final_newline = sample.strip_suffix(b"\n").unwrap_or(sample);
        let logs: [(&[u8], &str); 6] = [
            (sample, "main"),
            (&crlf, "main"),
            (no_final_newline, "main"),
            (unsorted, "main"),
            (unsorted, "alpha"),
            (b"\n\n", "main"),
        ];
        for (log, mech) in logs {
            let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
            let want = block_on(replay(log, &Rules::default(), options, &mut Native::default())).expect("lenient");
            for piece in [1, 7, 4096, log.len().max(1)] {
                assert_same_analysis(&parsed_in_pieces(log, piece, mech), &want);
            }
        }
        assert_same_analysis(
            &parsed_in_pieces(b"", 1, "main"),
            &block_on(replay(b"", &Rules::default(), ReplayOptions::default(), &mut Native::default()))
                .expect("lenient"),
        );
    }
}
