//! An [`Analysis`] as bytes, so the replay worker can hand a million-row result to the page as
//! one transferable `ArrayBuffer` instead of a million structured-cloned objects.
//!
//! Integers are LEB128 varints (signed ones zigzagged); rows are delta-coded against the row
//! before (seq, line, time), with one flag byte saying which optional fields follow, so a row
//! of a typical log takes 10 to 16 bytes. The display state is not sent: it is a pure function of
//! the state, the rules and the clock, which the page has ([`Decoder::finish`] recomputes it).
//! Pure Rust, tested natively.

use std::collections::{BTreeSet, HashMap};

use mechfund_core::parse::TsText;
use mechfund_core::replay::{Diagnostic, DiagnosticKind, ReplayResult, TimelinePoint};
use mechfund_core::state::{KnownGoal, LevelUp, RecordedGoal};
use mechfund_core::{Kind, Now, Rules, State, Timestamp, display};

use crate::analysis::{Analysis, Donor, EventRow};

/// Bytes that are not an analysis this module wrote (cut short, or from another version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The diagnostic kinds by tag (see [`diagnostic_tag`]).
const DIAGNOSTIC_KINDS: [DiagnosticKind; 14] = [
    DiagnosticKind::BadLine,
    DiagnosticKind::DuplicateSeq,
    DiagnosticKind::TsBackwards,
    DiagnosticKind::InvalidPayload,
    DiagnosticKind::UnknownType,
    DiagnosticKind::BadDeleteTarget,
    DiagnosticKind::RecordedGoalDiffers,
    DiagnosticKind::LevelupMissing,
    DiagnosticKind::LevelupExtra,
    DiagnosticKind::LevelupMismatch,
    DiagnosticKind::Superseded,
    DiagnosticKind::NoEvents,
    DiagnosticKind::BonusDeletion,
    DiagnosticKind::DdcSnapshotDiffers,
];

/// The index of `kind` in [`DIAGNOSTIC_KINDS`] (a match, so a new kind fails to compile here).
fn diagnostic_tag(kind: DiagnosticKind) -> u8 {
    match kind {
        DiagnosticKind::BadLine => 0,
        DiagnosticKind::DuplicateSeq => 1,
        DiagnosticKind::TsBackwards => 2,
        DiagnosticKind::InvalidPayload => 3,
        DiagnosticKind::UnknownType => 4,
        DiagnosticKind::BadDeleteTarget => 5,
        DiagnosticKind::RecordedGoalDiffers => 6,
        DiagnosticKind::LevelupMissing => 7,
        DiagnosticKind::LevelupExtra => 8,
        DiagnosticKind::LevelupMismatch => 9,
        DiagnosticKind::Superseded => 10,
        DiagnosticKind::NoEvents => 11,
        DiagnosticKind::BonusDeletion => 12,
        DiagnosticKind::DdcSnapshotDiffers => 13,
    }
}

// Which optional fields of a row follow its flag byte.
const AMOUNT: u8 = 1;
const MEMBERS: u8 = 2;
const TEXT: u8 = 4;
const TARGET: u8 = 8;
const DELETED: u8 = 16;

/// Appends values to a byte buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u64(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.buf.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
    }

    pub fn i64(&mut self, n: i64) {
        self.u64(((n << 1) ^ (n >> 63)) as u64);
    }

    fn usize(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub fn str(&mut self, text: &str) {
        self.usize(text.len());
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// `None` as 0; `Some(n)` as 1 and `n`.
    fn opt_u64(&mut self, value: Option<u64>) {
        self.u64(u64::from(value.is_some()));
        if let Some(n) = value {
            self.u64(n);
        }
    }

    fn opt_i64(&mut self, value: Option<i64>) {
        self.u64(u64::from(value.is_some()));
        if let Some(n) = value {
            self.i64(n);
        }
    }
}

/// Reads what a [`Writer`] wrote; every read fails on bytes cut short.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.at).ok_or(Malformed)?;
        self.at += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(Malformed)
    }

    pub fn i64(&mut self) -> Result<i64, Malformed> {
        let n = self.u64()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn usize(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.u64()?).map_err(|_| Malformed)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        u8::try_from(self.u64()?).map_err(|_| Malformed)
    }

    fn bool(&mut self) -> Result<bool, Malformed> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = self.usize()?;
        let end = self.at.checked_add(len).ok_or(Malformed)?;
        let bytes = self.buf.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        std::str::from_utf8(bytes).map_err(|_| Malformed)
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, Malformed> {
        Ok(if self.bool()? { Some(self.u64()?) } else { None })
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, Malformed> {
        Ok(if self.bool()? { Some(self.i64()?) } else { None })
    }

    fn ts_text(&mut self) -> Result<TsText, Malformed> {
        TsText::new(self.str()?).ok_or(Malformed)
    }

    /// A count of items that take at least one byte each: never more than the bytes left, so
    /// a damaged count cannot ask for a huge allocation.
    fn count(&mut self) -> Result<usize, Malformed> {
        let n = self.usize()?;
        if n > self.buf.len() - self.at {
            return Err(Malformed);
        }
        Ok(n)
    }
}

fn put_state(w: &mut Writer, state: &State) {
    // Destructured without `..`: a new field of `State` does not compile until it is sent.
    let State {
        mech_id,
        level,
        evo_acc,
        power_acc,
        goal_requirement,
        goal_member_count,
        last_user_count_sample,
        cumulative_donations_cents,
        last_event_seq,
        last_event_ts,
        clock,
        decay_remainder,
        donation_applied,
        recorded_goals,
        known_goal,
        used_campaigns,
    } = state;
    w.str(mech_id);
    w.u64(u64::from(*level));
    for n in [*evo_acc, *power_acc, *goal_requirement, *goal_member_count, *last_user_count_sample] {
        w.i64(n);
    }
    w.i64(*cumulative_donations_cents);
    w.u64(*last_event_seq);
    w.u64(u64::from(last_event_ts.is_some()));
    if let Some(ts) = last_event_ts {
        w.str(ts.as_str());
    }
    w.opt_i64(clock.map(|c| c.0));
    w.i64(*decay_remainder);
    w.u64(u64::from(*donation_applied));
    for goal in recorded_goals {
        w.u64(u64::from(goal.is_some()));
        if let Some(RecordedGoal { seq, goal }) = goal {
            w.u64(*seq);
            w.i64(*goal);
        }
    }
    w.u64(u64::from(known_goal.is_some()));
    if let Some(KnownGoal { level, goal, seq }) = known_goal {
        w.u64(u64::from(*level));
        w.i64(*goal);
        w.u64(*seq);
    }
    w.usize(used_campaigns.len());
    for campaign in used_campaigns {
        w.str(campaign);
    }
}

fn get_state(r: &mut Reader<'_>) -> Result<State, Malformed> {
    let mech_id = r.str()?.to_owned();
    let level = r.u8()?;
    let [evo_acc, power_acc, goal_requirement, goal_member_count, last_user_count_sample] =
        [r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?];
    let cumulative_donations_cents = r.i64()?;
    let last_event_seq = r.u64()?;
    let last_event_ts = if r.bool()? { Some(r.ts_text()?) } else { None };
    let clock = r.opt_i64()?.map(Timestamp);
    let decay_remainder = r.i64()?;
    let donation_applied = r.bool()?;
    let mut recorded_goals = [None; 10];
    for goal in &mut recorded_goals {
        if r.bool()? {
            *goal = Some(RecordedGoal { seq: r.u64()?, goal: r.i64()? });
        }
    }
    let known_goal = if r.bool()? { Some(KnownGoal { level: r.u8()?, goal: r.i64()?, seq: r.u64()? }) } else { None };
    let mut used_campaigns = BTreeSet::new();
    for _ in 0..r.count()? {
        used_campaigns.insert(r.str()?.to_owned());
    }
    Ok(State {
        mech_id,
        level,
        evo_acc,
        power_acc,
        goal_requirement,
        goal_member_count,
        last_user_count_sample,
        cumulative_donations_cents,
        last_event_seq,
        last_event_ts,
        clock,
        decay_remainder,
        donation_applied,
        recorded_goals,
        known_goal,
        used_campaigns,
    })
}

fn put_level_up(w: &mut Writer, up: &LevelUp) {
    let LevelUp { seq, ts, from_level, to_level, exact_hit, old_goal, new_goal, member_count, bonus } = up;
    w.u64(*seq);
    w.str(ts);
    w.u64(u64::from(*from_level));
    w.u64(u64::from(*to_level));
    w.u64(u64::from(*exact_hit));
    for n in [*old_goal, *new_goal, *member_count, *bonus] {
        w.i64(n);
    }
}

fn get_level_up(r: &mut Reader<'_>) -> Result<LevelUp, Malformed> {
    Ok(LevelUp {
        seq: r.u64()?,
        ts: r.str()?.to_owned(),
        from_level: r.u8()?,
        to_level: r.u8()?,
        exact_hit: r.bool()?,
        old_goal: r.i64()?,
        new_goal: r.i64()?,
        member_count: r.i64()?,
        bonus: r.i64()?,
    })
}

fn put_point(w: &mut Writer, point: &TimelinePoint) {
    let TimelinePoint {
        seq,
        ts,
        level,
        evo_acc,
        power_acc,
        goal_requirement,
        cumulative_donations_cents,
        member_count,
    } = point;
    w.u64(*seq);
    w.str(ts.as_str());
    w.u64(u64::from(*level));
    for n in [*evo_acc, *power_acc, *goal_requirement, *cumulative_donations_cents, *member_count] {
        w.i64(n);
    }
}

fn get_point(r: &mut Reader<'_>) -> Result<TimelinePoint, Malformed> {
    Ok(TimelinePoint {
        seq: r.u64()?,
        ts: r.ts_text()?,
        level: r.u8()?,
        evo_acc: r.i64()?,
        power_acc: r.i64()?,
        goal_requirement: r.i64()?,
        cumulative_donations_cents: r.i64()?,
        member_count: r.i64()?,
    })
}

/// The row before, which the next row is coded against.
#[derive(Clone, Copy, Default)]
struct Previous {
    seq: u64,
    line: u64,
    ts: i64,
}

fn put_row(w: &mut Writer, row: &EventRow, prev: &mut Previous) {
    let EventRow { seq, line, ts, kind, amount, members, text, target, deleted } = row;
    // Rows are in seq order, but a log out of order has lines (and times) going back.
    w.i64(seq.wrapping_sub(prev.seq) as i64);
    w.i64(line.wrapping_sub(prev.line) as i64);
    w.i64(ts.0.wrapping_sub(prev.ts));
    *prev = Previous { seq: *seq, line: *line, ts: ts.0 };
    w.buf.push(kind.tag());
    if let Kind::Unknown(name) = kind {
        w.str(name);
    }
    let flags = [(amount.is_some(), AMOUNT), (members.is_some(), MEMBERS), (text.is_some(), TEXT)]
        .into_iter()
        .chain([(target.is_some(), TARGET), (*deleted, DELETED)])
        .fold(0, |flags, (set, bit)| if set { flags | bit } else { flags });
    w.buf.push(flags);
    if let Some(n) = amount {
        w.i64(*n);
    }
    if let Some(n) = members {
        w.i64(*n);
    }
    if let Some(t) = text {
        w.u64(u64::from(*t));
    }
    if let Some(t) = target {
        w.u64(*t);
    }
}

fn get_row(r: &mut Reader<'_>, prev: &mut Previous) -> Result<EventRow, Malformed> {
    let seq = prev.seq.wrapping_add(r.i64()? as u64);
    let line = prev.line.wrapping_add(r.i64()? as u64);
    let ts = prev.ts.wrapping_add(r.i64()?);
    *prev = Previous { seq, line, ts };
    let tag = r.byte()?;
    let kind = match Kind::from_tag(tag) {
        Some(kind) => kind,
        None if tag == Kind::UNKNOWN_TAG => Kind::Unknown(r.str()?.into()),
        None => return Err(Malformed),
    };
    let flags = r.byte()?;
    let has = |bit: u8| flags & bit != 0;
    Ok(EventRow {
        seq,
        line,
        ts: Timestamp(ts),
        kind,
        amount: if has(AMOUNT) { Some(r.i64()?) } else { None },
        members: if has(MEMBERS) { Some(r.i64()?) } else { None },
        text: if has(TEXT) { Some(u32::try_from(r.u64()?).map_err(|_| Malformed)?) } else { None },
        target: if has(TARGET) { Some(r.u64()?) } else { None },
        deleted: has(DELETED),
    })
}

/// `rules` as the JSON text the worker reads back with `Rules::from_json`.
#[must_use]
pub fn rules_json(rules: &Rules) -> String {
    rules.to_value().to_string()
}

/// Writes `analysis`: everything but the display state, the rows last.
#[must_use]
pub fn encode(analysis: &Analysis) -> Vec<u8> {
    let Analysis { result, rows, texts, toggles, donors, chart, mechs, lines, bytes, summary_only } = analysis;
    let mut w = Writer { buf: Vec::with_capacity(64 * 1024 + rows.len() * 16) };
    w.u64(*lines);
    w.u64(*bytes);
    w.buf.push(u8::from(*summary_only));
    w.usize(mechs.len());
    for mech in mechs {
        w.str(mech);
    }
    put_state(&mut w, &result.state);
    w.usize(result.diagnostics.len());
    for d in &result.diagnostics {
        w.buf.push(diagnostic_tag(d.kind));
        w.opt_u64(d.line);
        w.opt_u64(d.seq);
        w.str(&d.message);
    }
    w.usize(result.level_ups.len());
    for up in &result.level_ups {
        put_level_up(&mut w, up);
    }
    w.usize(chart.len());
    for point in chart {
        put_point(&mut w, point);
    }
    w.usize(texts.len());
    for text in texts {
        w.str(text);
    }
    w.usize(toggles.len());
    for (target, seqs) in toggles {
        w.u64(*target);
        w.usize(seqs.len());
        for seq in seqs {
            w.u64(*seq);
        }
    }
    w.usize(donors.len());
    for donor in donors {
        w.opt_u64(donor.name.map(u64::from));
        w.i64(donor.cents);
        w.u64(donor.donations);
    }
    w.usize(rows.len());
    let mut prev = Previous::default();
    for row in rows {
        put_row(&mut w, row, &mut prev);
    }
    w.buf
}

/// Reads an encoded [`Analysis`]: the head at once, the rows in batches (so the page can
/// yield between them), then [`Decoder::finish`].
pub struct Decoder<'a> {
    reader: Reader<'a>,
    analysis: Analysis,
    left: usize,
    prev: Previous,
}

impl<'a> Decoder<'a> {
    /// Reads everything before the rows.
    ///
    /// # Errors
    /// Bytes cut short or not written by [`encode`].
    pub fn new(bytes: &'a [u8]) -> Result<Decoder<'a>, Malformed> {
        let mut r = Reader::new(bytes);
        let lines = r.u64()?;
        let bytes = r.u64()?;
        let summary_only = r.byte()? == 1;
        let mut mechs = Vec::new();
        for _ in 0..r.count()? {
            mechs.push(r.str()?.to_owned());
        }
        let state = get_state(&mut r)?;
        let mut diagnostics = Vec::new();
        for _ in 0..r.count()? {
            let kind = *DIAGNOSTIC_KINDS.get(usize::from(r.byte()?)).ok_or(Malformed)?;
            let (line, seq) = (r.opt_u64()?, r.opt_u64()?);
            let message = r.str()?.to_owned();
            diagnostics.push(Diagnostic { kind, severity: kind.severity(), line, seq, message });
        }
        let mut level_ups = Vec::new();
        for _ in 0..r.count()? {
            level_ups.push(get_level_up(&mut r)?);
        }
        let mut chart = Vec::new();
        for _ in 0..r.count()? {
            chart.push(get_point(&mut r)?);
        }
        let mut texts = Vec::new();
        for _ in 0..r.count()? {
            texts.push(Box::from(r.str()?));
        }
        let mut toggles = HashMap::new();
        for _ in 0..r.count()? {
            let target = r.u64()?;
            let mut seqs = Vec::new();
            for _ in 0..r.count()? {
                seqs.push(r.u64()?);
            }
            toggles.insert(target, seqs);
        }
        let mut donors = Vec::new();
        for _ in 0..r.count()? {
            let name = r.opt_u64()?.map(|n| u32::try_from(n).map_err(|_| Malformed)).transpose()?;
            donors.push(Donor { name, cents: r.i64()?, donations: r.u64()? });
        }
        let left = r.count()?;
        // The display is the page's to compute (`finish`): a placeholder until then.
        let display = display(&state, &Rules::default(), None);
        let result = ReplayResult { state, display, diagnostics, level_ups, timeline: None };
        let rows = Vec::with_capacity(left);
        let analysis = Analysis { result, rows, texts, toggles, donors, chart, mechs, lines, bytes, summary_only };
        Ok(Decoder { reader: r, analysis, left, prev: Previous::default() })
    }

    /// Reads up to `max` more rows; true when every row is read.
    ///
    /// # Errors
    /// Bytes cut short or not written by [`encode`].
    pub fn rows(&mut self, max: usize) -> Result<bool, Malformed> {
        let n = max.min(self.left);
        for _ in 0..n {
            let row = get_row(&mut self.reader, &mut self.prev)?;
            self.analysis.rows.push(row);
        }
        self.left -= n;
        Ok(self.left == 0)
    }

    /// The analysis, with its display state computed for `rules` at `now` (as replay computes
    /// it).
    ///
    /// # Errors
    /// Rows still unread, or bytes left over after them.
    pub fn finish(self, rules: &Rules, now: Option<&Now>) -> Result<Analysis, Malformed> {
        let Decoder { reader, mut analysis, left, .. } = self;
        if left > 0 || reader.at != reader.buf.len() {
            return Err(Malformed);
        }
        analysis.result.display = display(&analysis.result.state, rules, now);
        Ok(analysis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        write(&mut w);
        w.buf
    }

    #[test]
    fn varints_are_leb128_and_signed_ones_zigzag() {
        // 300 = 0b1_0010_1100: low seven bits 0x2c with the continuation bit, then 0b10.
        assert_eq!(bytes_of(|w| w.u64(300)), [0xac, 0x02]);
        assert_eq!(bytes_of(|w| w.u64(127)), [0x7f]);
        assert_eq!(bytes_of(|w| w.u64(128)), [0x80, 0x01]);
        // Zigzag: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3, 64 -> 128.
        assert_eq!(bytes_of(|w| w.i64(-1)), [0x01]);
        assert_eq!(bytes_of(|w| w.i64(1)), [0x02]);
        assert_eq!(bytes_of(|w| w.i64(-2)), [0x03]);
        assert_eq!(bytes_of(|w| w.i64(64)), [0x80, 0x01]);
        assert_eq!(bytes_of(|w| w.str("hé")), [3, b'h', 0xc3, 0xa9]);
        for n in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(Reader::new(&bytes_of(|w| w.u64(n))).u64(), Ok(n));
        }
        for n in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(Reader::new(&bytes_of(|w| w.i64(n))).i64(), Ok(n));
        }
    }

    #[test]
    fn a_read_past_the_end_or_an_endless_varint_is_malformed() {
        assert_eq!(Reader::new(&[0x80]).u64(), Err(Malformed));
        assert_eq!(Reader::new(&[0xff; 11]).u64(), Err(Malformed));
        assert_eq!(Reader::new(&[5, b'a']).str(), Err(Malformed));
        assert_eq!(Reader::new(&[2, 0xff, 0xfe]).str(), Err(Malformed));
    }

    #[test]
    fn a_row_is_coded_against_the_one_before() {
        let prev = EventRow {
            seq: 41,
            line: 40,
            ts: Timestamp(1_000_000),
            kind: Kind::MemberCountUpdated,
            amount: None,
            members: Some(50),
            text: None,
            target: None,
            deleted: false,
        };
        let row = EventRow {
            seq: 42,
            line: 43,
            ts: Timestamp(999_999),
            kind: Kind::DonationAdded,
            amount: Some(500),
            members: None,
            text: Some(3),
            target: None,
            deleted: true,
        };
        let mut at = Previous { seq: 41, line: 40, ts: 1_000_000 };
        // seq +1 -> zigzag 2; line +3 -> 6; ts -1 -> 1; kind 0; flags AMOUNT|TEXT|DELETED = 21;
        // amount 500 -> zigzag 1000 = 0xe8 0x07; text 3.
        assert_eq!(bytes_of(|w| put_row(w, &row, &mut at)), [2, 6, 1, 0, 21, 0xe8, 0x07, 3]);
        let mut back = Previous { seq: prev.seq, line: prev.line, ts: prev.ts.0 };
        let bytes = bytes_of(|w| put_row(w, &row, &mut Previous { seq: 41, line: 40, ts: 1_000_000 }));
        assert_eq!(get_row(&mut Reader::new(&bytes), &mut back), Ok(row.clone()));
        let unknown =
            EventRow { kind: Kind::Unknown("Custom".into()), amount: None, text: None, deleted: false, ..row };
        let bytes = bytes_of(|w| put_row(w, &unknown, &mut Previous { seq: 41, line: 40, ts: 1_000_000 }));
        // Tag 7, then the name (length 6), then no flags.
        assert_eq!(bytes, [2, 6, 1, 7, 6, b'C', b'u', b's', b't', b'o', b'm', 0]);
        let mut back = Previous { seq: 41, line: 40, ts: 1_000_000 };
        assert_eq!(get_row(&mut Reader::new(&bytes), &mut back), Ok(unknown));
    }

    #[test]
    fn rules_reach_the_worker_unchanged() {
        let text = r#"{"level_base_costs":[1,2,3,4,5,6,7,8,9,10],"freebie_members":3,"difficulty":{"mode":"static","multiplier_percent":150},"decay_per_day":{"default":7,"levels":{"2":250}}}"#;
        let rules = Rules::from_json(text).expect("valid rules");
        assert_ne!(rules, Rules::default());
        assert_eq!(Rules::from_json(&rules_json(&rules)), Ok(rules));
    }

    #[test]
    fn every_diagnostic_kind_has_its_own_tag() {
        for (i, kind) in DIAGNOSTIC_KINDS.into_iter().enumerate() {
            assert_eq!(usize::from(diagnostic_tag(kind)), i, "{kind:?}");
        }
    }

    /// The analysis of a log, as the sliced replay builds it.
    fn analysis_of(log: &[u8]) -> Analysis {
        use crate::replay_job::{Host, Progress, replay};
        struct Instant;
        impl Host for Instant {
            fn now_ms(&self) -> f64 {
                0.0
            }
            async fn pause(&mut self, _: Progress) {}
        }
        let (rules, mut host) = (Rules::default(), Instant);
        let future = replay(log, &rules, mechfund_core::ReplayOptions::default(), &mut host);
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out.expect("lenient replay");
            }
        }
    }

    fn decode(bytes: &[u8], batch: usize) -> Result<Analysis, Malformed> {
        let mut decoder = Decoder::new(bytes)?;
        while !decoder.rows(batch)? {}
        decoder.finish(&Rules::default(), None)
    }

    #[test]
    fn an_analysis_comes_back_whole() {
        let log = include_bytes!("../../../tests/samples/ddc-mixed-1500.jsonl");
        let mut want = analysis_of(log);
        // A gift campaign and a known goal, which the sample has none of.
        want.result.state.used_campaigns.insert("spring".to_owned());
        want.result.state.known_goal = Some(KnownGoal { level: 3, goal: 2100, seq: 9 });
        assert!(want.result.diagnostics.len() > 10 && want.rows.len() > 1000 && !want.toggles.is_empty());
        let bytes = encode(&want);
        let got = decode(&bytes, 7).expect("decodes");
        assert_eq!(got.result, want.result);
        assert_eq!(got.rows, want.rows);
        assert_eq!(got.texts, want.texts);
        assert_eq!(got.toggles, want.toggles);
        assert_eq!(got.donors, want.donors);
        assert_eq!(got.chart, want.chart);
        assert_eq!((&got.mechs, got.lines, got.bytes), (&want.mechs, want.lines, want.bytes));
        assert!(!got.summary_only);
        let summary = Analysis { rows: Vec::new(), summary_only: true, ..want.clone() };
        assert!(decode(&encode(&summary), 7).expect("decodes").summary_only);
        // Compact: a row is a few bytes, not the ~100 of its struct.
        let rows = want.rows.len();
        want.rows.clear();
        let per_row = (bytes.len() - encode(&want).len()) / rows;
        assert!(per_row <= 16, "{per_row} bytes per row");
    }

    #[test]
    fn cut_or_padded_bytes_are_malformed() {
        let log = include_bytes!("../../../tests/samples/ddc-small.jsonl");
        let bytes = encode(&analysis_of(log));
        assert!(decode(&bytes, 1000).is_ok());
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], 1000).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode(&padded, 1000).err(), Some(Malformed));
    }
}
