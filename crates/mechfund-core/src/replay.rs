//! Replay: the pure fold of a log into a state (spec §2.4), with diagnostics.
//!
//! Replay reads the log twice. The first pass collects what later lines decide about earlier
//! ones (deletion toggles and recorded goals); the second pass folds the events with
//! [`State::apply`]. Both passes stream, so memory stays flat however long the log is; only a log
//! whose seqs are out of order is buffered (and sorted) in memory.
//!
//! Drivers feed lines to a [`Replayer`]; [`replay_bytes`] is the driver for text in memory.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use thiserror::Error;

use crate::ddc::Snapshot;
use crate::display::{Display, Now, display};
use crate::parse::{Kind, Line, Record, TsText, Val, parse_line};
use crate::rules::Rules;
use crate::state::{Effects, LevelUp, Note, RecordedGoal, State, record_goal};

/// The diagnostic kinds of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum DiagnosticKind {
    BadLine,
    DuplicateSeq,
    TsBackwards,
    InvalidPayload,
    UnknownType,
    BadDeleteTarget,
    RecordedGoalDiffers,
    LevelupMissing,
    LevelupExtra,
    LevelupMismatch,
    Superseded,
    NoEvents,
    BonusDeletion,
    DdcSnapshotDiffers,
}

impl DiagnosticKind {
    /// `info` for `superseded`, `no_events`, `bonus_deletion` and `ddc_snapshot_differs`,
    /// `warning` otherwise.
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            DiagnosticKind::Superseded
            | DiagnosticKind::NoEvents
            | DiagnosticKind::BonusDeletion
            | DiagnosticKind::DdcSnapshotDiffers => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, nothing is wrong.
    Info,
    /// Something in the log was ignored or does not add up.
    Warning,
}

/// Something replay noticed, with where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// What kind of problem.
    pub kind: DiagnosticKind,
    /// Its severity (fixed per kind).
    pub severity: Severity,
    /// 1-based line number in the log, when it concerns a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Seq of the event concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Plain-language explanation.
    pub message: String,
}

impl Diagnostic {
    fn new(kind: DiagnosticKind, line: Option<u64>, seq: Option<u64>, message: String) -> Diagnostic {
        Diagnostic { kind, severity: kind.severity(), line, seq, message }
    }
}

/// The state after one clock-moving event, for charts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct TimelinePoint {
    pub seq: u64,
    /// The event's `ts` as written (inline: a million points make no million strings).
    pub ts: TsText,
    pub level: u8,
    pub evo_acc: i64,
    pub power_acc: i64,
    pub goal_requirement: i64,
    pub cumulative_donations_cents: i64,
    pub member_count: i64,
}

/// The replay result of the contract (spec §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayResult {
    /// The final state (serialises the contract's ten fields).
    pub state: State,
    /// What a UI shows at `now`.
    pub display: Display,
    /// Everything noticed, ordered by line.
    pub diagnostics: Vec<Diagnostic>,
    /// Level-ups derived by replay.
    pub level_ups: Vec<LevelUp>,
    /// The state after each clock-moving event, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelinePoint>>,
}

/// How to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// The mech to replay.
    pub mech: String,
    /// Stop at the first bad line instead of skipping it.
    pub strict: bool,
    /// Collect a [`TimelinePoint`] after each clock-moving event.
    pub timeline: bool,
    /// When to compute the display (defaults to the last event's time).
    pub now: Option<Now>,
    /// DDC's own snapshot of the mech (spec §2.8): its goal prices the level it is at, and
    /// every other difference from the replay is a `ddc_snapshot_differs` diagnostic.
    pub ddc_snapshot: Option<Snapshot>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { mech: "main".to_owned(), strict: false, timeline: false, now: None, ddc_snapshot: None }
    }
}

/// Strict replay stopped at a bad line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct StrictError {
    /// 1-based line number.
    pub line: u64,
    /// Why the line is bad.
    pub message: String,
}

/// A deletion toggle found in the first pass.
#[derive(Clone, Copy, Debug)]
struct Deletion {
    seq: u64,
    line: u64,
    target: u64,
}

/// What the second pass learns about a deletion target when it reaches it.
#[derive(Clone, Debug)]
enum Target {
    Deletable,
    Other(String),
}

/// What the first pass collects: facts later lines establish about earlier ones.
#[derive(Debug, Default)]
struct Plan {
    toggles: HashMap<u64, u32>,
    deletions: Vec<Deletion>,
    recorded_goals: [Option<RecordedGoal>; 10],
    /// Lines added, in order (a sparse scan checks them against the second pass).
    lines: Vec<u64>,
}

impl Plan {
    /// Takes what a kept event establishes for the whole log (only deletions and level-ups do).
    fn add(&mut self, line: u64, rec: &Record, diagnostics: &mut Vec<Diagnostic>) {
        if !is_plan_kind(&rec.kind) {
            return;
        }
        self.lines.push(line);
        let p = &rec.payload;
        match rec.kind {
            Kind::DonationDeleted => match p.deleted_seq {
                Val::Int(target) if target > 0 => {
                    let target = target.unsigned_abs();
                    *self.toggles.entry(target).or_default() += 1;
                    self.deletions.push(Deletion { seq: rec.seq, line, target });
                }
                other => diagnostics.push(Diagnostic::new(
                    DiagnosticKind::BadDeleteTarget,
                    Some(line),
                    Some(rec.seq),
                    format!(
                        "\"deleted_seq\" must be a positive integer, found {}; the deletion is ignored",
                        other.describe()
                    ),
                )),
            },
            Kind::LevelUpCommitted => {
                record_goal(&mut self.recorded_goals, p.from_level, p.old_goal_requirement, rec.seq);
                record_goal(&mut self.recorded_goals, p.to_level, p.new_goal_requirement, rec.seq);
            }
            _ => {}
        }
    }
}

fn is_plan_kind(kind: &Kind) -> bool {
    kind.shapes_history()
}

/// A derived event waiting to be matched by a recorded one.
#[derive(Clone, Debug)]
enum Expected {
    LevelUp { from: u8, to: u8, exact: bool },
    Bonus { from: u8, to: u8, units: i64 },
}

impl Expected {
    fn describe(&self) -> String {
        match self {
            Expected::LevelUp { from, to, exact } => {
                format!("LevelUpCommitted {from}->{to} (exact_hit {exact})")
            }
            Expected::Bonus { from, to, units } => {
                format!("ExactHitBonusGranted {from}->{to} of {units} cents")
            }
        }
    }

    fn matches(&self, rec: &Record) -> bool {
        let p = &rec.payload;
        let level = |l: &u8| Val::Int(i64::from(*l));
        match (self, &rec.kind) {
            (Expected::LevelUp { from, to, exact }, Kind::LevelUpCommitted) => {
                p.from_level == level(from) && p.to_level == level(to) && p.exact_hit == Val::Bool(*exact)
            }
            (Expected::Bonus { from, to, units }, Kind::ExactHitBonusGranted) => {
                p.from_level == level(from) && p.to_level == level(to) && p.power_units == Val::Int(*units)
            }
            _ => false,
        }
    }
}

fn describe_recorded(rec: &Record) -> String {
    let p = &rec.payload;
    let detail = match rec.kind {
        Kind::ExactHitBonusGranted => format!("of {} cents", p.power_units.describe()),
        _ => format!("(exact_hit {})", p.exact_hit.describe()),
    };
    format!("{} {}->{} {detail}", rec.kind.name(), p.from_level.describe(), p.to_level.describe())
}

/// A cross-check problem, possibly superseded later.
#[derive(Debug)]
struct Mismatch {
    kind: DiagnosticKind,
    line: u64,
    seq: u64,
    message: String,
}

/// Where a replay starts, and which states it keeps along the way.
#[derive(Clone, Debug, Default)]
struct Origin {
    /// A checkpoint: the state after the events before the lines replayed (none: the start).
    start: Option<State>,
    /// Keep the state after every this many events (0: none).
    every: u64,
}

/// The second pass: folds the kept events and cross-checks the recorded derived ones.
#[derive(Debug)]
struct Engine {
    state: State,
    plan: Plan,
    targets: HashMap<u64, Target>,
    queue: VecDeque<Expected>,
    cause: (u64, u64),
    mismatches: Vec<Mismatch>,
    diagnostics: Vec<Diagnostic>,
    level_ups: Vec<LevelUp>,
    timeline: Option<Vec<TimelinePoint>>,
    effects: Effects,
    events: u64,
    /// The state after every this many events goes to `checkpoints` (0: none).
    every: u64,
    checkpoints: Vec<State>,
}

impl Engine {
    fn new(
        options: &ReplayOptions,
        rules: &Rules,
        plan: Plan,
        diagnostics: Vec<Diagnostic>,
        origin: &Origin,
    ) -> Engine {
        let state = match &origin.start {
            Some(start) => {
                let mut state = start.clone();
                for (slot, recorded) in state.recorded_goals.iter_mut().zip(plan.recorded_goals) {
                    if let Some(recorded) = recorded
                        && slot.is_none_or(|r| r.seq <= recorded.seq)
                    {
                        *slot = Some(recorded);
                    }
                }
                state
            }
            None => {
                let known_goal = options.ddc_snapshot.as_ref().and_then(Snapshot::known_goal);
                State::initial_known(&options.mech, rules, plan.recorded_goals, known_goal)
            }
        };
        Engine {
            state,
            plan,
            targets: HashMap::new(),
            queue: VecDeque::new(),
            cause: (0, 0),
            mismatches: Vec::new(),
            diagnostics,
            level_ups: Vec::new(),
            timeline: options.timeline.then(Vec::new),
            effects: Effects::default(),
            events: 0,
            every: origin.every,
            checkpoints: Vec::new(),
        }
    }

    /// Whether the goals the log records for the levels the start state has been through are
    /// still the ones it was computed with. A level-up recorded later can give a level another
    /// goal; the state would then not be the log's.
    fn start_holds(&self, origin: &Origin) -> bool {
        origin.start.as_ref().is_none_or(|start| {
            (1..=start.level.min(10)).all(|level| start.recorded_goal(level) == self.state.recorded_goal(level))
        })
    }

    fn feed(&mut self, line: u64, rec: &Record, rules: &Rules) {
        self.feed_event(line, rec, rules);
        if self.every != 0 && self.events.is_multiple_of(self.every) {
            self.checkpoints.push(self.state.clone());
        }
    }

    fn flush_missing(&mut self) {
        let (line, seq) = self.cause;
        for expected in self.queue.drain(..) {
            self.mismatches.push(Mismatch {
                kind: DiagnosticKind::LevelupMissing,
                line,
                seq,
                message: format!(
                    "replay derives {} from this donation, but the log does not record it",
                    expected.describe()
                ),
            });
        }
    }

    fn cross_check(&mut self, line: u64, rec: &Record) {
        let (kind, message) = match self.queue.pop_front() {
            None => (
                DiagnosticKind::LevelupExtra,
                format!("the log records {}, but replay derives no such event here", describe_recorded(rec)),
            ),
            Some(expected) if expected.matches(rec) => return,
            Some(expected) => (
                DiagnosticKind::LevelupMismatch,
                format!("the log records {}, but replay derives {}", describe_recorded(rec), expected.describe()),
            ),
        };
        self.mismatches.push(Mismatch { kind, line, seq: rec.seq, message });
    }

    fn feed_event(&mut self, line: u64, rec: &Record, rules: &Rules) {
        let seq = rec.seq;
        self.events += 1;
        self.state.last_event_seq = self.state.last_event_seq.max(seq);
        if let Some(&count) = self.plan.toggles.get(&seq) {
            let target =
                if rec.kind.is_deletable() { Target::Deletable } else { Target::Other(rec.kind.name().to_owned()) };
            self.targets.insert(seq, target);
            if rec.kind.is_deletable() && count % 2 == 1 {
                if let Some(campaign) = rec.payload.campaign_id.as_ref().filter(|_| rec.kind == Kind::PowerGiftGranted)
                {
                    self.state.used_campaigns.insert(campaign.to_string());
                }
                return;
            }
        }
        match rec.kind {
            Kind::DonationDeleted => return,
            Kind::LevelUpCommitted | Kind::ExactHitBonusGranted => {
                self.cross_check(line, rec);
                return;
            }
            Kind::DonationAdded => self.flush_missing(),
            _ => {}
        }
        self.effects.clear();
        self.state.apply(rec, rules, &mut self.effects);
        for note in self.effects.notes.drain(..) {
            let (kind, message) = match note {
                Note::TsBackwards { clock } => (
                    DiagnosticKind::TsBackwards,
                    format!(
                        "ts {} is before the previous event ({clock}); no time is counted as elapsed",
                        rec.ts_text.as_str()
                    ),
                ),
                Note::InvalidPayload(why) => {
                    (DiagnosticKind::InvalidPayload, format!("{} ignored: {why}", rec.kind.name()))
                }
                Note::UnknownType(name) => {
                    (DiagnosticKind::UnknownType, format!("unknown event type \"{name}\" ignored"))
                }
                Note::RecordedGoalDiffers { level, recorded, formula, from_snapshot: false } => (
                    DiagnosticKind::RecordedGoalDiffers,
                    format!(
                        "level {level}: the log's recorded goal {recorded} is used; the rules would give {formula}"
                    ),
                ),
                Note::RecordedGoalDiffers { level, recorded, formula, from_snapshot: true } => (
                    DiagnosticKind::RecordedGoalDiffers,
                    format!(
                        "level {level}: DDC's snapshot goal {recorded} is used; the rules would give {formula} \
                         (DDC prices a new level with progress/member_count.json, 50 members without it)"
                    ),
                ),
            };
            self.diagnostics.push(Diagnostic::new(kind, Some(line), Some(seq), message));
        }
        if !self.effects.level_ups.is_empty() {
            self.cause = (line, seq);
            for up in &self.effects.level_ups {
                self.queue.push_back(Expected::LevelUp { from: up.from_level, to: up.to_level, exact: up.exact_hit });
                if up.exact_hit {
                    self.queue.push_back(Expected::Bonus { from: up.from_level, to: up.to_level, units: up.bonus });
                }
            }
            self.level_ups.append(&mut self.effects.level_ups);
        }
        if let Some(timeline) = &mut self.timeline {
            let s = &self.state;
            timeline.push(TimelinePoint {
                seq,
                ts: rec.ts_text,
                level: s.level,
                evo_acc: s.evo_acc,
                power_acc: s.power_acc,
                goal_requirement: s.goal_requirement,
                cumulative_donations_cents: s.cumulative_donations_cents,
                member_count: s.last_user_count_sample,
            });
        }
    }

    fn finish(mut self, rules: &Rules, options: &ReplayOptions) -> ReplayResult {
        self.flush_missing();
        let mut valid: Vec<(u64, u64)> = Vec::new();
        for d in &self.plan.deletions {
            let problem = match self.targets.get(&d.target) {
                Some(Target::Deletable) => {
                    valid.push((d.seq, d.target));
                    continue;
                }
                Some(Target::Other(name)) if name == Kind::ExactHitBonusGranted.name() => {
                    self.diagnostics.push(Diagnostic::new(
                        DiagnosticKind::BonusDeletion,
                        Some(d.line),
                        Some(d.seq),
                        format!(
                            "seq {} is an ExactHitBonusGranted: the bonus belongs to its level-up, so the deletion \
                             changes nothing (as in DDC)",
                            d.target
                        ),
                    ));
                    continue;
                }
                Some(Target::Other(name)) => format!(
                    "seq {} is a {name}; only DonationAdded, SystemDonationAdded and PowerGiftGranted can be deleted",
                    d.target
                ),
                None => format!("seq {} does not exist in mech \"{}\"", d.target, self.state.mech_id),
            };
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::BadDeleteTarget,
                Some(d.line),
                Some(d.seq),
                format!("{problem}; the deletion is ignored"),
            ));
        }
        // A mismatch at S is superseded when a deletion after S toggled an event before S.
        valid.sort_unstable();
        let mut min_target_after = vec![u64::MAX; valid.len() + 1];
        for i in (0..valid.len()).rev() {
            min_target_after[i] = min_target_after[i + 1].min(valid[i].1);
        }
        for m in self.mismatches {
            let first_after = valid.partition_point(|&(dseq, _)| dseq <= m.seq);
            // A missing level-up's recorded event would sit just after its donation (seq S), so
            // a toggle of the donation itself is a toggle "below" it: restoring a deleted
            // donation that now levels up is history rewritten, not a broken log.
            let below = if m.kind == DiagnosticKind::LevelupMissing { m.seq + 1 } else { m.seq };
            let superseded = min_target_after[first_after] < below;
            let (kind, message) = if superseded {
                (
                    DiagnosticKind::Superseded,
                    format!("{} (superseded: a later deletion rewrote the history before it)", m.message),
                )
            } else {
                (m.kind, m.message)
            };
            self.diagnostics.push(Diagnostic::new(kind, Some(m.line), Some(m.seq), message));
        }
        self.diagnostics.sort_by_key(|d| d.line.unwrap_or(u64::MAX));
        if self.events == 0 {
            self.diagnostics.push(Diagnostic::new(
                DiagnosticKind::NoEvents,
                None,
                None,
                format!("the log has no events for mech \"{}\"", self.state.mech_id),
            ));
        }
        let mut result = ReplayResult {
            display: display(&self.state, rules, options.now.as_ref()),
            state: self.state,
            diagnostics: self.diagnostics,
            level_ups: self.level_ups,
            timeline: self.timeline,
        };
        if let Some(snapshot) = &options.ddc_snapshot {
            compare_snapshot(snapshot, &mut result);
        }
        result
    }
}

/// Reports where the replay differs from DDC's own snapshot of the mech (spec §2.8).
fn compare_snapshot(snapshot: &Snapshot, result: &mut ReplayResult) {
    let entered = result.level_ups.last().map_or(0, |up| up.seq);
    for (field, ddc, ours) in snapshot.differences(result) {
        let why = match field {
            "goal_requirement" if snapshot.level == result.state.level && entered > snapshot.last_event_seq => format!(
                "; the snapshot (at seq {}) is older than the level-up at seq {entered}, so its goal is not used",
                snapshot.last_event_seq
            ),
            "goal_requirement" if snapshot.level != result.state.level => {
                "; the snapshot is at another level, so its goal is not used".to_owned()
            }
            _ => String::new(),
        };
        result.diagnostics.push(Diagnostic::new(
            DiagnosticKind::DdcSnapshotDiffers,
            None,
            None,
            format!("DDC's snapshot has {field} {ddc}, replay gives {ours}{why}; the replay is shown"),
        ));
    }
}

/// The order of the selected mech's seqs, checked as lines arrive in file order.
#[derive(Debug)]
struct Order {
    last: u64,
    sorted: bool,
}

impl Default for Order {
    fn default() -> Self {
        Order { last: 0, sorted: true }
    }
}

enum Seen {
    New,
    Duplicate,
    OutOfOrder,
}

impl Order {
    fn see(&mut self, seq: u64) -> Seen {
        if seq > self.last {
            self.last = seq;
            Seen::New
        } else if seq == self.last {
            Seen::Duplicate
        } else {
            self.sorted = false;
            Seen::OutOfOrder
        }
    }
}

fn duplicate(line: u64, seq: u64) -> Diagnostic {
    Diagnostic::new(
        DiagnosticKind::DuplicateSeq,
        Some(line),
        Some(seq),
        format!("seq {seq} appears again; the first line with it is kept and this one is dropped"),
    )
}

fn bad_line(line: u64, message: &str) -> Diagnostic {
    Diagnostic::new(DiagnosticKind::BadLine, Some(line), None, message.to_owned())
}

/// How the first pass looked at the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanMode {
    /// Every line was parsed: bad lines, duplicates and the order are known.
    Exact,
    /// Only lines that may be deletions or level-ups were parsed; the second pass reports bad
    /// lines and duplicates and checks the first pass's assumptions.
    Sparse,
}

/// Assumptions of a sparse first pass, checked by the second.
#[derive(Debug, Default)]
struct Check {
    matched: usize,
    failed: bool,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per replay")]
enum Phase {
    Scan { order: Order, plan: Plan, mode: ScanMode },
    Fold { order: Order, engine: Engine, mode: ScanMode, check: Check },
    Buffer { records: Vec<(u64, Record)> },
}

/// What a [`Replayer`] needs for its second pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondPass {
    /// Feed every line again, in file order, to [`Replayer::fold_line`].
    Stream,
    /// The seqs are out of order: feed every line again to [`Replayer::buffer_line`]; they are
    /// sorted in memory before folding.
    Buffer,
}

/// The replay state machine.
///
/// 1. First pass: for a replayer made with [`new`](Replayer::new),
///    [`scan_line`](Replayer::scan_line) for every line (exact); for one made with
///    [`sparse`](Replayer::sparse), [`scan_candidate`](Replayer::scan_candidate) for only the
///    lines [`candidate_lines`] picks (much cheaper);
/// 2. [`second_pass`](Replayer::second_pass), then every line again as it says;
/// 3. if [`needs_exact_rescan`](Replayer::needs_exact_rescan) (a sparse scan's assumption did
///    not hold: rare, for corrupt or unsorted logs), start over with an exact scan;
/// 4. [`finish`](Replayer::finish).
///
/// Line numbers are 1-based and must be the same in both passes.
#[derive(Debug)]
pub struct Replayer<'r> {
    rules: &'r Rules,
    options: ReplayOptions,
    diagnostics: Vec<Diagnostic>,
    phase: Phase,
    origin: Origin,
}

impl<'r> Replayer<'r> {
    /// A replayer for `options.mech` under `rules` whose first pass sees every line
    /// ([`scan_line`](Replayer::scan_line)).
    #[must_use]
    pub fn new(rules: &'r Rules, options: ReplayOptions) -> Replayer<'r> {
        Replayer::with_mode(rules, options, ScanMode::Exact)
    }

    /// A replayer whose first pass sees only the lines [`candidate_lines`] picks
    /// ([`scan_candidate`](Replayer::scan_candidate)).
    #[must_use]
    pub fn sparse(rules: &'r Rules, options: ReplayOptions) -> Replayer<'r> {
        Replayer::with_mode(rules, options, ScanMode::Sparse)
    }

    fn with_mode(rules: &'r Rules, options: ReplayOptions, mode: ScanMode) -> Replayer<'r> {
        Replayer {
            rules,
            options,
            diagnostics: Vec::new(),
            phase: Phase::Scan { order: Order::default(), plan: Plan::default(), mode },
            origin: Origin::default(),
        }
    }

    fn with_origin(mut self, origin: Origin) -> Replayer<'r> {
        self.origin = origin;
        self
    }

    /// This replayer, starting from `checkpoint` (the state after the events before the lines it
    /// will see; `None`: the start) and keeping the state after every `every` events (0: none),
    /// as [`replay_bytes_after`] and [`replay_bytes_with_checkpoints`] do. End it with
    /// [`finish_kept`](Replayer::finish_kept).
    #[must_use]
    pub fn keeping(self, checkpoint: Option<State>, every: u64) -> Replayer<'r> {
        self.with_origin(Origin { start: checkpoint, every })
    }

    /// The mech being replayed.
    #[must_use]
    pub fn mech(&self) -> &str {
        &self.options.mech
    }

    /// Exact first pass: every line, already parsed for [`mech`](Replayer::mech).
    ///
    /// # Errors
    /// In strict mode, the first bad line.
    pub fn scan_line(&mut self, line: u64, parsed: &Line) -> Result<(), StrictError> {
        let Phase::Scan { order, plan, mode: ScanMode::Exact } = &mut self.phase else {
            return Ok(());
        };
        match parsed {
            Line::Blank | Line::Other => {}
            Line::Bad(message) => {
                if self.options.strict {
                    return Err(StrictError { line, message: message.clone() });
                }
                self.diagnostics.push(bad_line(line, message));
            }
            Line::Mine(rec) => match order.see(rec.seq) {
                Seen::New => plan.add(line, rec, &mut self.diagnostics),
                Seen::Duplicate => self.diagnostics.push(duplicate(line, rec.seq)),
                Seen::OutOfOrder => {}
            },
        }
        Ok(())
    }

    /// Sparse first pass: one of the lines [`candidate_lines`] found, in file order.
    pub fn scan_candidate(&mut self, line: u64, parsed: &Line) {
        let Phase::Scan { plan, mode: ScanMode::Sparse, .. } = &mut self.phase else {
            return;
        };
        if let Line::Mine(rec) = parsed {
            plan.add(line, rec, &mut self.diagnostics);
        }
    }

    /// Ends the first pass and says how to feed the second.
    pub fn second_pass(&mut self) -> SecondPass {
        let phase = std::mem::replace(&mut self.phase, Phase::Buffer { records: Vec::new() });
        let Phase::Scan { order, plan, mode } = phase else {
            self.phase = phase;
            return SecondPass::Stream;
        };
        if order.sorted {
            let diagnostics = std::mem::take(&mut self.diagnostics);
            let engine = Engine::new(&self.options, self.rules, plan, diagnostics, &self.origin);
            self.phase = Phase::Fold { order: Order::default(), engine, mode, check: Check::default() };
            SecondPass::Stream
        } else {
            // Duplicates found by the in-order scan are found again after sorting.
            self.diagnostics.retain(|d| d.kind == DiagnosticKind::BadLine);
            SecondPass::Buffer
        }
    }

    /// Second pass, streaming: one line again.
    ///
    /// # Errors
    /// In strict mode after a sparse scan, the first bad line.
    pub fn fold_line(&mut self, line: u64, parsed: &Line) -> Result<(), StrictError> {
        let Phase::Fold { order, engine, mode, check } = &mut self.phase else {
            return Ok(());
        };
        let sparse = *mode == ScanMode::Sparse;
        match parsed {
            Line::Mine(rec) => match order.see(rec.seq) {
                Seen::New => {
                    if sparse && is_plan_kind(&rec.kind) {
                        // Every deletion and level-up must be one the first pass took, in order.
                        if engine.plan.lines.get(check.matched) == Some(&line) {
                            check.matched += 1;
                        } else {
                            check.failed = true;
                        }
                    }
                    engine.feed(line, rec, self.rules);
                }
                Seen::Duplicate if sparse => engine.diagnostics.push(duplicate(line, rec.seq)),
                Seen::Duplicate => {}
                Seen::OutOfOrder => check.failed = true,
            },
            Line::Bad(message) if sparse => {
                if self.options.strict {
                    return Err(StrictError { line, message: message.clone() });
                }
                engine.diagnostics.push(bad_line(line, message));
            }
            Line::Bad(_) | Line::Blank | Line::Other => {}
        }
        Ok(())
    }

    /// Whether a sparse first pass turned out wrong (a deletion or level-up it missed or took
    /// wrongly, or seqs out of order): the caller must replay again from an exact
    /// [`scan_line`](Replayer::scan_line) pass with a new [`Replayer`].
    #[must_use]
    pub fn needs_exact_rescan(&self) -> bool {
        match &self.phase {
            Phase::Fold { engine, check, mode: ScanMode::Sparse, .. } => {
                check.failed || check.matched != engine.plan.lines.len()
            }
            _ => false,
        }
    }

    /// Second pass, buffered: one line again (kept in memory until [`finish`](Replayer::finish)).
    pub fn buffer_line(&mut self, line: u64, parsed: Line) {
        if let (Phase::Buffer { records }, Line::Mine(rec)) = (&mut self.phase, parsed) {
            records.push((line, rec));
        }
    }

    /// Ends replay and computes the result.
    #[must_use]
    pub fn finish(self) -> ReplayResult {
        self.finish_kept().result
    }

    /// [`finish`](Replayer::finish), with the states kept (see [`keeping`](Replayer::keeping)).
    #[must_use]
    pub fn finish_kept(mut self) -> Kept {
        let mut engine = match std::mem::replace(&mut self.phase, Phase::Buffer { records: Vec::new() }) {
            Phase::Fold { engine, .. } => engine,
            Phase::Buffer { mut records } => {
                // Stable: equal seqs stay in file order, so the first line wins.
                records.sort_by_key(|(line, rec)| (rec.seq, *line));
                records.dedup_by(|(line, rec), (_, kept)| {
                    let dup = rec.seq == kept.seq;
                    if dup {
                        self.diagnostics.push(duplicate(*line, rec.seq));
                    }
                    dup
                });
                let mut plan = Plan::default();
                for (line, rec) in &records {
                    plan.add(*line, rec, &mut self.diagnostics);
                }
                let diagnostics = std::mem::take(&mut self.diagnostics);
                let mut engine = Engine::new(&self.options, self.rules, plan, diagnostics, &self.origin);
                for (line, rec) in &records {
                    engine.feed(*line, rec, self.rules);
                }
                engine
            }
            Phase::Scan { plan, .. } => {
                let diagnostics = std::mem::take(&mut self.diagnostics);
                Engine::new(&self.options, self.rules, plan, diagnostics, &self.origin)
            }
        };
        let holds = engine.start_holds(&self.origin);
        let checkpoints = std::mem::take(&mut engine.checkpoints);
        Kept { result: engine.finish(self.rules, &self.options), checkpoints, holds, rescanned: false }
    }
}

/// Splits text into lines the way replay numbers them: on `\n`, with a trailing `\r` removed.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut rest = (!bytes.is_empty()).then_some(body);
    let mut number = 0;
    std::iter::from_fn(move || {
        let text = rest?;
        let line = match memchr::memchr(b'\n', text) {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                &text[..i]
            }
            None => {
                rest = None;
                text
            }
        };
        number += 1;
        Some((number, strip_cr(line)))
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    // Byte-wide counters over short chunks vectorise well; a chunk of 255 cannot overflow one.
    bytes.chunks(255).map(|chunk| u64::from(chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')))).sum()
}

/// The number of lines [`lines`] finds in `block`.
#[must_use]
pub fn count_lines(block: &[u8]) -> u64 {
    count_newlines(block) + u64::from(!block.is_empty() && !block.ends_with(b"\n"))
}

/// The lines of `block` that may be a `DonationDeleted` or `LevelUpCommitted` (they contain the
/// type's name), as 0-based line indexes within the block, for a sparse first pass.
///
/// A type name spelled with escapes is missed; the second pass notices and asks for an exact scan.
#[must_use]
pub fn candidate_lines(block: &[u8]) -> Vec<(u64, &[u8])> {
    candidates(block).lines
}

/// What the sparse first pass needs of a block: [`candidate_lines`], and how many lines the block
/// holds ([`count_lines`]), from one count of its newlines.
#[derive(Debug)]
pub struct Candidates<'a> {
    /// The candidate lines, by 0-based index within the block.
    pub lines: Vec<(u64, &'a [u8])>,
    /// The lines in the block.
    pub line_count: u64,
}

/// [`candidate_lines`] and [`count_lines`] of `block` at once.
#[must_use]
pub fn candidates(block: &[u8]) -> Candidates<'_> {
    let mut starts = Vec::new();
    for name in [&b"DonationDeleted"[..], b"LevelUpCommitted"] {
        for_each_match(block, name, |at| starts.push(memchr::memrchr(b'\n', &block[..at]).map_or(0, |i| i + 1)));
    }
    starts.sort_unstable();
    starts.dedup();
    let mut index = 0;
    let mut counted = 0;
    let lines = starts
        .into_iter()
        .map(|start| {
            index += count_newlines(&block[counted..start]);
            counted = start;
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
            (index, strip_cr(&block[start..end]))
        })
        .collect();
    let line_count = index + count_lines(&block[counted..]);
    Candidates { lines, line_count }
}

/// Calls `each` with the offset of every match of `needle` in `haystack`.
#[cfg(not(target_arch = "wasm32"))]
fn for_each_match(haystack: &[u8], needle: &[u8], each: impl FnMut(usize)) {
    memchr::memmem::find_iter(haystack, needle).for_each(each);
}

/// Calls `each` with the offset of every match of `needle` in `haystack`.
///
/// In WebAssembly, `memchr` for the needle's first byte and a comparison: 2.8 KB gzipped smaller
/// than `memmem`, which the JS package's size budget needs, and no slower for the names
/// `candidates` looks for (`replayLog` of 100k events: 88-90 ms, against 107 ms with memchr's
/// SIMD packed-pair search).
#[cfg(target_arch = "wasm32")]
fn for_each_match(haystack: &[u8], needle: &[u8], each: impl FnMut(usize)) {
    let Some(&first) = needle.first() else { return };
    memchr::memchr_iter(first, haystack).filter(|&at| haystack[at..].starts_with(needle)).for_each(each);
}

/// A replay's result, and the states it kept.
#[derive(Debug)]
pub struct Kept {
    /// What the replay found.
    pub result: ReplayResult,
    /// The state after every `every` events (see [`Replayer::keeping`]).
    pub checkpoints: Vec<State>,
    /// The checkpoint it started from still holds for the log (see [`replay_bytes_after`]).
    pub holds: bool,
    /// The sparse first pass's assumptions did not hold (seqs out of order), so an exact one
    /// ran and the fold ran again ([`replay_source`]).
    pub rescanned: bool,
}

/// Replays a whole log held in memory.
///
/// # Errors
/// In strict mode, the first bad line.
pub fn replay_bytes(bytes: &[u8], rules: &Rules, options: ReplayOptions) -> Result<ReplayResult, StrictError> {
    Ok(replay_from(bytes, rules, options, Origin::default())?.result)
}

/// [`replay_bytes`], keeping the state after every `every` events of the mech (each one a
/// checkpoint to resume from with [`replay_bytes_after`]).
///
/// # Errors
/// In strict mode, the first bad line.
pub fn replay_bytes_with_checkpoints(
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    every: u64,
) -> Result<(ReplayResult, Vec<State>), StrictError> {
    let kept = replay_bytes_kept(bytes, rules, options, None, every)?;
    Ok((kept.result, kept.checkpoints))
}

/// The replay of a log from a checkpoint: `checkpoint` is the mech's state after its events up
/// to `checkpoint.last_event_seq` (kept by [`replay_bytes_with_checkpoints`] under the same
/// rules), and `bytes` holds the lines after those events. The state is the one a replay of
/// the whole log gives, provided no deletion of an event up to the checkpoint was added since
/// it was kept (the caller drops such checkpoints); the diagnostics cover only `bytes`.
///
/// `None` when the checkpoint no longer holds: a level-up recorded since gives a level the
/// checkpoint went through another goal. Replay the whole log then. Checkpoints are kept along
/// the way as with [`replay_bytes_with_checkpoints`].
///
/// # Errors
/// In strict mode, the first bad line.
pub fn replay_bytes_after(
    checkpoint: &State,
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    every: u64,
) -> Result<Option<(ReplayResult, Vec<State>)>, StrictError> {
    let kept = replay_bytes_kept(bytes, rules, options, Some(checkpoint.clone()), every)?;
    Ok(kept.holds.then_some((kept.result, kept.checkpoints)))
}

/// [`replay_bytes_with_checkpoints`] (no `checkpoint`) and [`replay_bytes_after`] in one: the
/// replay of `bytes` from `checkpoint`, keeping the state after every `every` events, and
/// whether the checkpoint holds (see [`Replayer::keeping`]).
///
/// # Errors
/// In strict mode, the first bad line.
pub fn replay_bytes_kept(
    bytes: &[u8],
    rules: &Rules,
    options: ReplayOptions,
    checkpoint: Option<State>,
    every: u64,
) -> Result<Kept, StrictError> {
    replay_from(bytes, rules, options, Origin { start: checkpoint, every })
}

/// A log replay reads more than once ([`replay_source`]): text in memory, blocks parsed on
/// every core, or packs.
pub trait Source {
    /// What reading fails with; a strict replay's bad line is one of them.
    type Error: From<StrictError>;

    /// Feeds `replayer` the lines of a sparse first pass, in order, with [`Replayer::scan_candidate`]:
    /// at least every event of a kind that [shapes history](crate::Kind::shapes_history),
    /// numbered as [`each`](Source::each) numbers them.
    ///
    /// # Errors
    /// What reading fails with.
    fn candidates(&mut self, replayer: &mut Replayer<'_>) -> Result<(), Self::Error>;

    /// Calls `f` with every line and its 1-based number, in order, until it fails.
    ///
    /// # Errors
    /// What reading or `f` fails with.
    fn each(&mut self, f: impl FnMut(u64, &Line) -> Result<(), StrictError> + Send) -> Result<(), Self::Error>;

    /// [`each`](Source::each) with lines of its own, for a fold that buffers them (seqs out of
    /// order): a source that parses each line anyway gives it instead of a copy.
    ///
    /// # Errors
    /// What reading fails with.
    fn each_owned(&mut self, mut f: impl FnMut(u64, Line) + Send) -> Result<(), Self::Error> {
        self.each(|n, line| {
            f(n, line.clone());
            Ok(())
        })
    }
}

/// The replay of a [`Source`], as every driver runs it: a sparse first pass, the fold, and only
/// if the sparse pass's assumptions did not hold (seqs out of order) an exact first pass and the
/// fold again. It starts from `checkpoint` and keeps the state after every `every` events (see
/// [`Replayer::keeping`]).
///
/// # Errors
/// What the source fails with, or in strict mode the first bad line.
pub fn replay_source<S: Source>(
    source: &mut S,
    rules: &Rules,
    options: ReplayOptions,
    checkpoint: Option<State>,
    every: u64,
) -> Result<Kept, S::Error> {
    let mut replayer = Replayer::sparse(rules, options.clone()).keeping(checkpoint.clone(), every);
    source.candidates(&mut replayer)?;
    fold_source(&mut replayer, source)?;
    if !replayer.needs_exact_rescan() {
        return Ok(replayer.finish_kept());
    }
    let mut replayer = Replayer::new(rules, options).keeping(checkpoint, every);
    source.each(|n, line| replayer.scan_line(n, line))?;
    fold_source(&mut replayer, source)?;
    Ok(Kept { rescanned: true, ..replayer.finish_kept() })
}

fn fold_source<S: Source>(replayer: &mut Replayer<'_>, source: &mut S) -> Result<(), S::Error> {
    match replayer.second_pass() {
        SecondPass::Stream => source.each(|n, line| replayer.fold_line(n, line)),
        SecondPass::Buffer => source.each_owned(|n, line| replayer.buffer_line(n, line)),
    }
}

/// A log's text in memory, as a [`Source`] for `mech`.
struct Text<'a> {
    bytes: &'a [u8],
    mech: &'a str,
}

impl Source for Text<'_> {
    type Error = StrictError;

    fn candidates(&mut self, replayer: &mut Replayer<'_>) -> Result<(), StrictError> {
        for (index, line) in candidate_lines(self.bytes) {
            replayer.scan_candidate(index + 1, &parse_line(line, self.mech));
        }
        Ok(())
    }

    fn each(&mut self, mut f: impl FnMut(u64, &Line) -> Result<(), StrictError> + Send) -> Result<(), StrictError> {
        lines(self.bytes).try_for_each(|(n, line)| f(n, &parse_line(line, self.mech)))
    }

    fn each_owned(&mut self, mut f: impl FnMut(u64, Line) + Send) -> Result<(), StrictError> {
        lines(self.bytes).for_each(|(n, line)| f(n, parse_line(line, self.mech)));
        Ok(())
    }
}

fn replay_from(bytes: &[u8], rules: &Rules, options: ReplayOptions, origin: Origin) -> Result<Kept, StrictError> {
    let mech = options.mech.clone();
    replay_source(&mut Text { bytes, mech: &mech }, rules, options, origin.start, origin.every)
}
