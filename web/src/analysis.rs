//! What the dashboard shows of a replayed log, computed once per load: the replay result (from
//! the core), one compact row per event of the mech for the event table, deletion toggles, the
//! top donors and a chart series small enough to draw.
//!
//! Pure Rust with no browser types, so it is tested natively.

use std::collections::HashMap;

use mechfund_core::replay::{ReplayResult, TimelinePoint};
use mechfund_core::state::{Effects, LevelUp};
use mechfund_core::{Kind, Line, Now, Record, Rules, Timestamp, display, parse_line};

/// How many points the history chart draws at most (plus the points around level changes).
pub const CHART_POINTS: usize = 600;

/// One event of the replayed mech, as the event table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: u64,
    /// 1-based line in the log.
    pub line: u64,
    pub ts: Timestamp,
    pub kind: Kind,
    /// Cents: a donation's amount, a system donation's or a gift's power.
    pub amount: Option<i64>,
    /// A member-count sample, or the count a donation carried.
    pub members: Option<i64>,
    /// Index into [`Analysis::texts`]: the donor, a system donation's event name, a gift's
    /// campaign or a deletion's reason.
    pub text: Option<u32>,
    /// A deletion toggle's target seq.
    pub target: Option<u64>,
    /// Whether the event ends up deleted (an odd number of toggles).
    pub deleted: bool,
}

/// Interns repeated strings (donor names) so a million rows stay small.
#[derive(Debug, Default)]
pub struct Interner {
    texts: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

impl Interner {
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.push(text.into());
        self.index.insert(text.into(), i);
        i
    }

    pub fn into_texts(self) -> Vec<Box<str>> {
        self.texts
    }

    /// An interner that already holds `texts` (at their indices).
    #[must_use]
    pub fn from_texts(texts: Vec<Box<str>>) -> Interner {
        let index = texts.iter().enumerate().map(|(i, t)| (t.clone(), u32::try_from(i).unwrap_or(u32::MAX))).collect();
        Interner { texts, index }
    }
}

/// Builds the table row of one event line (`bytes` is the line, for its free-text fields).
pub fn row(line: u64, record: &Record, bytes: &[u8], interner: &mut Interner) -> EventRow {
    let p = &record.payload;
    let int = |v: mechfund_core::parse::Val| match v {
        mechfund_core::parse::Val::Int(n) => Some(n),
        _ => None,
    };
    let (amount, members, target) = match record.kind {
        Kind::DonationAdded => (int(p.units), int(p.member_count), None),
        Kind::SystemDonationAdded | Kind::PowerGiftGranted => (int(p.power_units), None, None),
        Kind::MemberCountUpdated => (None, int(p.member_count), None),
        Kind::DonationDeleted => (None, None, int(p.deleted_seq).and_then(|s| u64::try_from(s).ok())),
        _ => (None, None, None),
    };
    let text = match record.kind {
        Kind::DonationAdded | Kind::SystemDonationAdded | Kind::DonationDeleted => {
            let fields = crate::row_text::texts(bytes);
            let text = match record.kind {
                Kind::DonationAdded => fields.donor,
                Kind::SystemDonationAdded => fields.event_name,
                _ => fields.reason,
            };
            text.map(|t| interner.intern(&t))
        }
        Kind::PowerGiftGranted => p.campaign_id.as_deref().map(|c| interner.intern(c)),
        _ => None,
    };
    EventRow {
        seq: record.seq,
        line,
        ts: record.ts,
        kind: record.kind.clone(),
        amount,
        members,
        text,
        target,
        deleted: false,
    }
}

/// A donor's total on the leaderboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Donor {
    /// Index into [`Analysis::texts`]; `None` for donations without a donor.
    pub name: Option<u32>,
    pub cents: i64,
    pub donations: u64,
}

/// Everything the dashboard shows of one load.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The core's replay result (with the full timeline dropped: see `chart`).
    pub result: ReplayResult,
    /// The mech's events in seq order.
    pub rows: Vec<EventRow>,
    /// Interned free texts of the rows.
    pub texts: Vec<Box<str>>,
    /// For each toggled event: the seqs of the deletions that toggled it, in order.
    pub toggles: HashMap<u64, Vec<u64>>,
    /// Donors by total (non-deleted normal donations), largest first.
    pub donors: Vec<Donor>,
    /// The timeline, thinned to about [`CHART_POINTS`] points, keeping each level change.
    pub chart: Vec<TimelinePoint>,
    /// Every mech id in the log, sorted.
    pub mechs: Vec<String>,
    /// Lines and bytes read.
    pub lines: u64,
    pub bytes: u64,
    /// Only the summary: the rows, toggles, donors and chart are still being built (the replay
    /// worker sends the summary first, so the level shows sooner, and the whole analysis after it).
    pub summary_only: bool,
}

impl PartialEq for Analysis {
    /// Loads are compared by identity in the UI; two analyses are equal if they describe the
    /// same replay.
    fn eq(&self, other: &Analysis) -> bool {
        self.result == other.result
            && self.lines == other.lines
            && self.bytes == other.bytes
            && self.summary_only == other.summary_only
    }
}

impl Analysis {
    /// Puts the parts together: totals donors and thins the timeline (ordering the rows is
    /// [`OrderedRows::new`], a separate step so a caller can give each its own task).
    #[must_use]
    pub fn from_ordered(
        mut result: ReplayResult,
        ordered: OrderedRows,
        texts: Vec<Box<str>>,
        mechs: Vec<String>,
        lines: u64,
        bytes: u64,
    ) -> Analysis {
        let OrderedRows { rows, toggles } = ordered;
        let donors = donors(&rows, texts.len());
        let chart = thin(result.timeline.take().unwrap_or_default(), CHART_POINTS);
        Analysis { result, rows, texts, toggles, donors, chart, mechs, lines, bytes, summary_only: false }
    }

    /// This analysis with its rows (and whatever it had already: its chart).
    #[must_use]
    pub fn with_rows(self, ordered: OrderedRows, texts: Vec<Box<str>>) -> Analysis {
        let OrderedRows { rows, toggles } = ordered;
        let donors = donors(&rows, texts.len());
        Analysis { rows, texts, toggles, donors, summary_only: false, ..self }
    }

    /// Whether the log has events of the mech (rows, or rows still to come).
    #[must_use]
    pub fn has_events(&self) -> bool {
        !self.rows.is_empty() || self.summary_only
    }

    /// The interned text `i`.
    #[must_use]
    pub fn text(&self, i: Option<u32>) -> Option<&str> {
        i.and_then(|i| self.texts.get(i as usize)).map(|t| &**t)
    }

    /// The row with `seq`.
    #[must_use]
    pub fn row(&self, seq: u64) -> Option<&EventRow> {
        index_of(&self.rows, seq).map(|i| &self.rows[i])
    }
}

/// What new log lines (from the live stream) do to an [`Analysis`].
#[derive(Debug)]
pub enum Extension {
    /// Nothing new (every line already applied, or not of this mech).
    Same,
    /// The analysis with the lines applied, and the level-ups they caused.
    Next(Box<Analysis>, Vec<LevelUp>),
    /// A line rewrites history (a deletion toggle): only a full replay can say what it does.
    Rewrite,
}

impl Analysis {
    /// Applies lines appended to the log after this analysis (in seq order), without replaying
    /// the log again: each event of `mech` with a seq above the last one seen goes through the
    /// core's `State::apply`, as the server's live path does, and gets its table row and chart
    /// point. Lines already applied are skipped, so a line delivered twice counts once. A
    /// `DonationDeleted` returns [`Extension::Rewrite`] (the caller replays instead).
    ///
    /// The recorded-vs-derived cross-checks of replay are not run for these lines (they are the
    /// server's own events, derived by the same `decide`).
    #[must_use]
    pub fn extend(&self, mech: &str, lines: &[String], rules: &Rules, now: Option<&Now>) -> Extension {
        let mut next: Option<Analysis> = None;
        let mut interner: Option<Interner> = None;
        let mut level_ups = Vec::new();
        let mut effects = Effects::default();
        for text in lines {
            let Line::Mine(record) = parse_line(text.as_bytes(), mech) else { continue };
            let last = next.as_ref().unwrap_or(self).result.state.last_event_seq;
            if record.seq <= last {
                continue;
            }
            if record.kind == Kind::DonationDeleted {
                return Extension::Rewrite;
            }
            let analysis = next.get_or_insert_with(|| self.clone());
            let interner = interner.get_or_insert_with(|| Interner::from_texts(std::mem::take(&mut analysis.texts)));
            analysis.lines += 1;
            analysis.bytes += text.len() as u64 + 1;
            analysis.rows.push(row(analysis.lines, &record, text.as_bytes(), interner));
            effects.clear();
            let state = &mut analysis.result.state;
            state.apply(&record, rules, &mut effects);
            if !record.kind.is_derived() {
                analysis.chart.push(TimelinePoint {
                    seq: record.seq,
                    ts: record.ts_text,
                    level: state.level,
                    evo_acc: state.evo_acc,
                    power_acc: state.power_acc,
                    goal_requirement: state.goal_requirement,
                    cumulative_donations_cents: state.cumulative_donations_cents,
                    member_count: state.last_user_count_sample,
                });
            }
            level_ups.extend(effects.level_ups.iter().cloned());
            analysis.result.level_ups.append(&mut effects.level_ups);
        }
        let Some(mut analysis) = next else { return Extension::Same };
        if let Some(interner) = interner {
            analysis.texts = interner.into_texts();
        }
        // `mechs` is sorted (it comes from a `BTreeSet`): insert in place rather than sort, which
        // would link a stable sort of `String`s just for this.
        if let Err(at) = analysis.mechs.binary_search_by(|m| m.as_str().cmp(mech)) {
            analysis.mechs.insert(at, mech.to_owned());
        }
        analysis.donors = donors(&analysis.rows, analysis.texts.len());
        analysis.result.display = display(&analysis.result.state, rules, now);
        Extension::Next(Box::new(analysis), level_ups)
    }
}

/// Rows in seq order (the first of a duplicate seq kept, as replay keeps it) with their
/// deletion toggles applied.
#[derive(Debug)]
pub struct OrderedRows {
    rows: Vec<EventRow>,
    toggles: HashMap<u64, Vec<u64>>,
}

impl OrderedRows {
    /// Sorts (a log in seq order, as DDC writes it, is only checked), dedups, toggles.
    #[must_use]
    pub fn new(mut rows: Vec<EventRow>) -> OrderedRows {
        if !rows.is_sorted_by_key(|r| r.seq) {
            rows.sort_by_key(|r| r.seq);
        }
        rows.dedup_by_key(|r| r.seq);
        let toggles = apply_toggles(&mut rows);
        OrderedRows { rows, toggles }
    }
}

/// Where the row with `seq` is in `rows` (sorted by seq). A mech's seqs are usually dense, so
/// the first guess is `seq - first seq`: one memory access instead of a binary search's twenty
/// cache misses over a million rows.
fn index_of(rows: &[EventRow], seq: u64) -> Option<usize> {
    let first = rows.first()?.seq;
    let guess = usize::try_from(seq.checked_sub(first)?).ok()?;
    if rows.get(guess).is_some_and(|r| r.seq == seq) {
        return Some(guess);
    }
    rows.binary_search_by_key(&seq, |r| r.seq).ok()
}

/// Marks toggled rows deleted (odd toggle counts) and returns each target's toggles. A toggle
/// whose target is missing or not deletable is ignored, as replay ignores it.
fn apply_toggles(rows: &mut [EventRow]) -> HashMap<u64, Vec<u64>> {
    let mut toggles: HashMap<u64, Vec<u64>> = HashMap::new();
    let deletions: Vec<(u64, u64)> =
        rows.iter().filter(|r| r.kind == Kind::DonationDeleted).filter_map(|r| Some((r.seq, r.target?))).collect();
    for (seq, target) in deletions {
        if let Some(i) = index_of(rows, target)
            && rows[i].kind.is_deletable()
        {
            rows[i].deleted = !rows[i].deleted;
            toggles.entry(target).or_default().push(seq);
        }
    }
    toggles
}

/// Totals per donor, through a slot per interned name (a million rows: no hashing).
fn donors(rows: &[EventRow], names: usize) -> Vec<Donor> {
    // Slot 0: donations without a donor; slot i + 1: interned text i.
    let mut slots = vec![(0i64, 0u64); names + 1];
    for r in rows.iter().filter(|r| r.kind == Kind::DonationAdded && !r.deleted) {
        let slot = &mut slots[r.text.map_or(0, |t| t as usize + 1)];
        slot.0 = slot.0.saturating_add(r.amount.unwrap_or(0));
        slot.1 += 1;
    }
    let mut donors: Vec<Donor> = slots
        .into_iter()
        .enumerate()
        .filter(|(_, (_, donations))| *donations > 0)
        .map(|(i, (cents, donations))| Donor {
            name: i.checked_sub(1).and_then(|i| u32::try_from(i).ok()),
            cents,
            donations,
        })
        .collect();
    donors.sort_by(|a, b| b.cents.cmp(&a.cents).then(b.donations.cmp(&a.donations)).then(a.name.cmp(&b.name)));
    donors
}

/// Keeps about `max` evenly spaced points, the first and last, and both sides of every level
/// change (so level-ups and the evolution reset they cause stay visible).
#[must_use]
pub fn thin(points: Vec<TimelinePoint>, max: usize) -> Vec<TimelinePoint> {
    if points.len() <= max || max == 0 {
        return points;
    }
    let step = points.len().div_ceil(max);
    let last = points.len() - 1;
    let levels: Vec<u8> = points.iter().map(|p| p.level).collect();
    points
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| {
            i == 0
                || i == last
                || i % step == step - 1
                || levels[i] != levels[i - 1]
                || levels.get(i + 1).is_some_and(|&next| next != levels[i])
        })
        .map(|(_, p)| p)
        .collect()
}

/// What the event table shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this type (its name), or all.
    pub kind: Option<String>,
    /// Only events whose donor (or other text) equals this, ignoring case.
    pub donor: Option<String>,
    /// Free text searched in the type, the text, the amount, the seq and the time.
    pub search: String,
}

impl Filter {
    /// Whether `row` passes.
    #[must_use]
    pub fn matches(&self, analysis: &Analysis, row: &EventRow) -> bool {
        if self.kind.as_deref().is_some_and(|k| k != row.kind.name()) {
            return false;
        }
        let text = analysis.text(row.text);
        if let Some(donor) = &self.donor
            && !text.is_some_and(|t| t.eq_ignore_ascii_case(donor) || t.to_lowercase() == donor.to_lowercase())
        {
            return false;
        }
        let needle = self.search.trim().to_lowercase();
        if needle.is_empty() {
            return true;
        }
        let amount = row.amount.map(|c| mechfund_core::Cents(c).to_string()).unwrap_or_default();
        text.is_some_and(|t| t.to_lowercase().contains(&needle))
            || row.kind.name().to_lowercase().contains(&needle)
            || amount.contains(&needle)
            || row.seq.to_string() == needle
            || row.ts.to_string().contains(&needle)
    }
}

/// The rows `filter` keeps, in seq order.
#[must_use]
pub fn filtered<'a>(analysis: &'a Analysis, filter: &Filter) -> Vec<&'a EventRow> {
    analysis.rows.iter().filter(|r| filter.matches(analysis, r)).collect()
}

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-` or `@` neutralised so a
/// spreadsheet never runs a donor name as a formula.
fn csv_field(out: &mut String, text: &str) {
    let guarded = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guarded || text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The rows as CSV (RFC 4180, with a header line).
#[must_use]
pub fn to_csv(analysis: &Analysis, rows: &[&EventRow]) -> String {
    let mut out =
        String::from("seq,line,ts,type,text,amount_cents,amount,member_count,target_seq,deleted,toggled_by\r\n");
    for r in rows {
        let toggled_by = analysis
            .toggles
            .get(&r.seq)
            .map(|t| t.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let fields = [
            r.seq.to_string(),
            r.line.to_string(),
            r.ts.to_string(),
            r.kind.name().to_owned(),
            analysis.text(r.text).unwrap_or_default().to_owned(),
            r.amount.map(|c| c.to_string()).unwrap_or_default(),
            r.amount.map(|c| mechfund_core::Cents(c).to_string()).unwrap_or_default(),
            r.members.map(|m| m.to_string()).unwrap_or_default(),
            r.target.map(|t| t.to_string()).unwrap_or_default(),
            r.deleted.to_string(),
            toggled_by,
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
}

/// A small live log and the dashboard's analysis of it, for the tests here and the reducer's.
#[cfg(test)]
pub(crate) mod fixtures {
    use mechfund_core::{Line, Rules, parse_line};

    use super::{Analysis, Interner, OrderedRows, row};

    /// A line of mech `main` in DDC's format.
    pub(crate) fn line(seq: u64, kind: &str, payload: &str) -> String {
        format!(
            "{{\"seq\":{seq},\"ts\":\"2025-01-01T00:00:{seq:02}+00:00\",\"type\":\"{kind}\",\"mech_id\":\"main\",\"payload\":{payload}}}"
        )
    }

    /// 20 members, so level 1 costs 1000 + 10 * 10 = 1100 and level 2 costs 1500 + 10 * 10 =
    /// 1600 (default rules). 600 + 500 of donations hit 1100 exactly: level 2 with a bonus;
    /// 250 more leave evolution at 250. Donations in all: 600 + 100 + 500 + 250 = 1450.
    pub(crate) fn live_log() -> Vec<String> {
        vec![
            line(1, "MemberCountUpdated", "{\"member_count\":20}"),
            line(2, "DonationAdded", "{\"units\":600,\"donor\":\"ann\"}"),
            line(3, "SystemDonationAdded", "{\"power_units\":100,\"event_name\":\"launch\"}"),
            // 600 + 500 = 1100 = the level-1 goal for 20 members (1000 + 10 * 10): exact hit.
            line(4, "DonationAdded", "{\"units\":500,\"donor\":\"bob\"}"),
            line(
                5,
                "LevelUpCommitted",
                "{\"from_level\":1,\"to_level\":2,\"old_goal_requirement\":1100,\"exact_hit\":true,\"new_goal_requirement\":1600,\"member_count\":20}",
            ),
            line(6, "ExactHitBonusGranted", "{\"power_units\":100,\"from_level\":1,\"to_level\":2}"),
            line(7, "DonationAdded", "{\"units\":250,\"donor\":\"ann\"}"),
        ]
    }

    pub(crate) fn analysis_of(lines: &[String]) -> Analysis {
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let options = mechfund_core::ReplayOptions { timeline: true, ..mechfund_core::ReplayOptions::default() };
        let result = mechfund_core::replay_bytes(text.as_bytes(), &Rules::default(), options).expect("lenient");
        let mut interner = Interner::default();
        let rows = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match parse_line(l.as_bytes(), "main") {
                Line::Mine(rec) => Some(row(i as u64 + 1, &rec, l.as_bytes(), &mut interner)),
                _ => None,
            })
            .collect();
        Analysis::from_ordered(
            result,
            OrderedRows::new(rows),
            interner.into_texts(),
            vec!["main".into()],
            lines.len() as u64,
            text.len() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{analysis_of, live_log};
    use super::*;

    fn row(seq: u64, kind: Kind, amount: Option<i64>, text: Option<u32>, target: Option<u64>) -> EventRow {
        EventRow { seq, line: seq, ts: Timestamp(0), kind, amount, members: None, text, target, deleted: false }
    }

    fn point(seq: u64, level: u8) -> TimelinePoint {
        TimelinePoint {
            seq,
            ts: mechfund_core::parse::TsText::new("2025-01-01T00:00:00Z").expect("short"),
            level,
            evo_acc: 0,
            power_acc: 0,
            goal_requirement: 0,
            cumulative_donations_cents: 0,
            member_count: 0,
        }
    }

    #[test]
    fn toggles_delete_and_restore_and_ignore_bad_targets() {
        let rows = vec![
            row(3, Kind::DonationDeleted, None, None, Some(1)), // out of order on purpose
            row(1, Kind::DonationAdded, Some(500), Some(0), None),
            row(2, Kind::MemberCountUpdated, None, None, None),
            row(4, Kind::DonationDeleted, None, None, Some(2)), // not deletable: ignored
            row(5, Kind::DonationDeleted, None, None, Some(1)), // restores 1
            row(6, Kind::DonationDeleted, None, None, Some(1)), // deletes 1 again
            row(7, Kind::DonationDeleted, None, None, Some(99)), // missing: ignored
            row(6, Kind::DonationAdded, Some(1), None, None),   // duplicate seq 6: dropped
        ];
        let ordered = OrderedRows::new(rows);
        let seqs: Vec<u64> = ordered.rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        assert!(ordered.rows[0].deleted);
        assert_eq!(ordered.toggles.get(&1), Some(&vec![3, 5, 6]));
        assert_eq!(ordered.toggles.len(), 1);
    }

    #[test]
    fn donors_total_kept_donations_largest_first() {
        let rows = vec![
            row(1, Kind::DonationAdded, Some(500), Some(0), None),
            row(2, Kind::DonationAdded, Some(300), Some(1), None),
            row(3, Kind::DonationAdded, Some(300), Some(1), None),
            row(4, Kind::DonationAdded, Some(100), None, None),
            row(5, Kind::SystemDonationAdded, Some(9_999), Some(2), None), // not a donation by a donor
            row(6, Kind::DonationAdded, Some(7_000), Some(0), None),
            row(7, Kind::DonationDeleted, None, None, Some(6)), // 6 deleted
        ];
        let ordered = OrderedRows::new(rows);
        let got = donors(&ordered.rows, 3);
        assert_eq!(
            got,
            [
                Donor { name: Some(1), cents: 600, donations: 2 },
                Donor { name: Some(0), cents: 500, donations: 1 },
                Donor { name: None, cents: 100, donations: 1 },
            ]
        );
    }

    #[test]
    fn thinning_keeps_ends_and_both_sides_of_level_changes() {
        let points: Vec<TimelinePoint> = (1..=100).map(|i| point(i, if i < 50 { 1 } else { 2 })).collect();
        let kept: Vec<u64> = thin(points, 10).iter().map(|p| p.seq).collect();
        // every 10th (seq 10, 20, ...), the first and last, and 49/50 around the level change.
        assert_eq!(kept, [1, 10, 20, 30, 40, 49, 50, 60, 70, 80, 90, 100]);
        let few: Vec<TimelinePoint> = (1..=5).map(|i| point(i, 1)).collect();
        assert_eq!(thin(few, 10).len(), 5);
    }

    /// A log of donations, a member count and a level-up, DDC style (what the server writes).
    #[test]
    fn extending_with_new_lines_equals_replaying_them() {
        let log = live_log();
        let whole = analysis_of(&log);
        for split in 0..log.len() {
            let first = analysis_of(&log[..split]);
            // The stream may repeat what the load already had: those lines count once.
            let Extension::Next(next, ups) =
                first.extend("main", &log[split.saturating_sub(1)..], &Rules::default(), None)
            else {
                panic!("split {split}: nothing applied")
            };
            assert_eq!(next.result.state, whole.result.state, "split {split}");
            assert_eq!(next.result.display, whole.result.display, "split {split}");
            assert_eq!(next.result.level_ups, whole.result.level_ups, "split {split}");
            assert_eq!(next.rows, whole.rows, "split {split}");
            assert_eq!(next.donors, whole.donors, "split {split}");
            assert_eq!(next.chart, whole.chart, "split {split}");
            assert_eq!((next.lines, next.bytes), (whole.lines, whole.bytes), "split {split}");
            assert_eq!(next.text(next.rows.last().and_then(|r| r.text)), Some("ann"));
            assert_eq!(ups.len(), usize::from(split <= 3), "split {split}");
        }
        // By hand: level 2 (goal 1500 + 100 = 1600), evo 250, total 600 + 100 + 500 + 250.
        assert_eq!(whole.result.state.level, 2);
        assert_eq!(whole.result.state.goal_requirement, 1600);
        assert_eq!(whole.result.state.evo_acc, 250);
        assert_eq!(whole.result.state.cumulative_donations_cents, 1450);
        assert!(matches!(whole.extend("main", &log, &Rules::default(), None), Extension::Same));
    }

    #[test]
    fn a_deletion_asks_for_a_replay() {
        let log = live_log();
        let first = analysis_of(&log);
        let deletion = "{\"seq\":8,\"ts\":\"2025-01-01T00:00:08+00:00\",\"type\":\"DonationDeleted\",\"mech_id\":\"main\",\"payload\":{\"deleted_seq\":7,\"reason\":\"typo\"}}";
        assert!(matches!(first.extend("main", &[deletion.to_owned()], &Rules::default(), None), Extension::Rewrite));
        let other = deletion.replace("\"main\"", "\"other\"");
        assert!(matches!(first.extend("main", &[other], &Rules::default(), None), Extension::Same));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push('|');
        csv_field(&mut out, "a,\"b\"");
        out.push('|');
        csv_field(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "plain|\"a,\"\"b\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
