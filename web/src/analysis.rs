//! What the dashboard shows of a replayed log, computed once per load: the replay result (from
//! the core), one compact row per event of the mech for the event table, deletion toggles, the
//! top donors and a chart series small enough to draw.
//!
//! Pure Rust with no browser types, so it is tested natively.

use std::collections::HashMap;

use mechfund_core::replay::{ReplayResult, TimelinePoint};
use mechfund_core::{Kind, Record, Timestamp};
use serde::Deserialize;

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

/// The free-text fields of a payload, read only for the table (replay ignores them).
#[derive(Deserialize, Default)]
struct Texts<'a> {
    #[serde(borrow, default)]
    payload: TextFields<'a>,
}

#[derive(Deserialize, Default)]
struct TextFields<'a> {
    #[serde(borrow, default)]
    donor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    event_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<std::borrow::Cow<'a, str>>,
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
            let texts: Texts<'_> = serde_json::from_slice(bytes).unwrap_or_default();
            let fields = texts.payload;
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
#[derive(Debug)]
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
}

impl PartialEq for Analysis {
    /// Loads are compared by identity in the UI; two analyses are equal if they describe the
    /// same replay.
    fn eq(&self, other: &Analysis) -> bool {
        self.result == other.result && self.lines == other.lines && self.bytes == other.bytes
    }
}

impl Analysis {
    /// Puts the parts together: sorts rows, applies toggles, totals donors, thins the timeline.
    #[must_use]
    pub fn new(
        mut result: ReplayResult,
        mut rows: Vec<EventRow>,
        texts: Vec<Box<str>>,
        mechs: Vec<String>,
        lines: u64,
        bytes: u64,
    ) -> Analysis {
        rows.sort_by_key(|r| r.seq);
        rows.dedup_by_key(|r| r.seq); // a duplicate seq: replay keeps the first
        let toggles = apply_toggles(&mut rows);
        let donors = donors(&rows);
        let chart = thin(result.timeline.take().unwrap_or_default(), CHART_POINTS);
        Analysis { result, rows, texts, toggles, donors, chart, mechs, lines, bytes }
    }

    /// The interned text `i`.
    #[must_use]
    pub fn text(&self, i: Option<u32>) -> Option<&str> {
        i.and_then(|i| self.texts.get(i as usize)).map(|t| &**t)
    }

    /// The row with `seq`.
    #[must_use]
    pub fn row(&self, seq: u64) -> Option<&EventRow> {
        self.rows.binary_search_by_key(&seq, |r| r.seq).ok().map(|i| &self.rows[i])
    }
}

/// Marks toggled rows deleted (odd toggle counts) and returns each target's toggles. A toggle
/// whose target is missing or not deletable is ignored, as replay ignores it.
fn apply_toggles(rows: &mut [EventRow]) -> HashMap<u64, Vec<u64>> {
    let mut toggles: HashMap<u64, Vec<u64>> = HashMap::new();
    let deletions: Vec<(u64, u64)> =
        rows.iter().filter(|r| r.kind == Kind::DonationDeleted).filter_map(|r| Some((r.seq, r.target?))).collect();
    for (seq, target) in deletions {
        if let Ok(i) = rows.binary_search_by_key(&target, |r| r.seq)
            && rows[i].kind.is_deletable()
        {
            rows[i].deleted = !rows[i].deleted;
            toggles.entry(target).or_default().push(seq);
        }
    }
    toggles
}

fn donors(rows: &[EventRow]) -> Vec<Donor> {
    let mut by_name: HashMap<Option<u32>, Donor> = HashMap::new();
    for r in rows.iter().filter(|r| r.kind == Kind::DonationAdded && !r.deleted) {
        let donor = by_name.entry(r.text).or_insert(Donor { name: r.text, cents: 0, donations: 0 });
        donor.cents = donor.cents.saturating_add(r.amount.unwrap_or(0));
        donor.donations += 1;
    }
    let mut donors: Vec<Donor> = by_name.into_values().collect();
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
