//! A compact binary form of parsed lines, for a store that replays the same log again and again
//! (a deletion toggle replays a mech from its first event): decoding a line costs a few dozen
//! nanoseconds where parsing its JSON costs a few hundred, and a pack is about an eighth of the
//! text's size.
//!
//! A pack is `MFPK`, the [`FORMAT`] byte, the number of lines and the length of the plan (LEB128
//! varints), the plan, then each line. A line is a tag byte (blank, bad, another mech's, or one
//! of ours with its [`Kind`]) and what it holds: an event's seq and time are zigzag deltas from
//! the previous event's, its `ts` text shares a prefix with the previous one, and each payload
//! field replay uses costs two bits of a mask plus its value. Fields replay ignores are not in a
//! [`Record`], so they are not here either: a pack is no substitute for the log, only a faster
//! way to read it again.
//!
//! The plan repeats the events replay's first pass needs ([`Kind::shapes_history`]) with their
//! index in the pack, each encoded on its own, so that pass reads a few bytes per pack instead
//! of every line ([`plan`]).
//!
//! Decoding checks every byte it reads and never panics: damage is a [`PackError`], never a
//! wrong line. [`FORMAT`] names this encoding *and* what [`parse_line`](super::parse_line) makes
//! of a line, so it changes whenever either does and a store drops packs of another format.

use thiserror::Error;

use super::{JsonKind, Kind, Line, Payload, Record, TsText, Val};
use crate::time::Timestamp;

/// The version of the encoding and of the parse it stores.
pub const FORMAT: u8 = 1;

const MAGIC: &[u8; 4] = b"MFPK";

const BLANK: u8 = 0;
const BAD: u8 = 1;
const OTHER: u8 = 2;
/// `MINE + tag`: an event of the mech, of the kind [`Kind::tag`] gives (up to 7, so 8 to 15).
const MINE: u8 = 8;

const JSON_KINDS: [JsonKind; 8] = [
    JsonKind::Null,
    JsonKind::String,
    JsonKind::Fraction,
    JsonKind::TooLarge,
    JsonKind::Object,
    JsonKind::Array,
    JsonKind::Number,
    JsonKind::Boolean,
];

/// The payload mask's two bits per field (0: absent).
const INT: u64 = 1;
const BOOL: u64 = 2;
/// The payload mask's bit for a `campaign_id`, after the nine fields' two bits each.
const CAMPAIGN: u64 = 1 << 18;

/// A pack that cannot be read: damaged, cut short, or not a pack of this [`FORMAT`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("a pack is damaged at byte {at}: {what}")]
pub struct PackError {
    /// Where in the pack.
    pub at: usize,
    /// What is wrong there.
    pub what: &'static str,
}

/// What the previous event left for deltas.
#[derive(Clone, Copy, Debug, Default)]
struct Previous {
    seq: u64,
    ts: i64,
    ts_text: TsText,
}

/// Builds a pack line by line.
#[derive(Debug, Default)]
pub struct Packer {
    body: Vec<u8>,
    plan: Vec<u8>,
    lines: u64,
    planned: u64,
    previous: Previous,
}

impl Packer {
    /// An empty pack.
    #[must_use]
    pub fn new() -> Packer {
        Packer::default()
    }

    /// The lines pushed so far.
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Appends one line.
    pub fn push(&mut self, line: &Line) {
        if let Line::Mine(rec) = line
            && rec.kind.shapes_history()
        {
            self.planned += 1;
            put_varint(&mut self.plan, self.lines);
            put_line(&mut self.plan, line, &mut Previous::default());
        }
        self.lines += 1;
        put_line(&mut self.body, line, &mut self.previous);
    }

    /// The pack.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        let mut plan = Vec::with_capacity(self.plan.len() + 10);
        put_varint(&mut plan, self.planned);
        plan.extend_from_slice(&self.plan);
        let mut pack = Vec::with_capacity(self.body.len() + plan.len() + MAGIC.len() + 21);
        pack.extend_from_slice(MAGIC);
        pack.push(FORMAT);
        put_varint(&mut pack, self.lines);
        put_varint(&mut pack, plan.len() as u64);
        pack.extend_from_slice(&plan);
        pack.extend_from_slice(&self.body);
        pack
    }
}

/// The pack of `lines`.
#[must_use]
pub fn pack<'a>(lines: impl IntoIterator<Item = &'a Line>) -> Vec<u8> {
    let mut packer = Packer::new();
    lines.into_iter().for_each(|line| packer.push(line));
    packer.finish()
}

fn put_line(out: &mut Vec<u8>, line: &Line, previous: &mut Previous) {
    match line {
        Line::Blank => out.push(BLANK),
        Line::Other => out.push(OTHER),
        Line::Bad(message) => {
            out.push(BAD);
            put_bytes(out, message.as_bytes());
        }
        Line::Mine(rec) => {
            out.push(MINE + rec.kind.tag());
            put_signed(out, rec.seq.wrapping_sub(previous.seq).cast_signed());
            put_signed(out, rec.ts.0.wrapping_sub(previous.ts));
            let text = &rec.ts_text.bytes[..usize::from(rec.ts_text.len)];
            let before = &previous.ts_text.bytes[..usize::from(previous.ts_text.len)];
            let shared = text.iter().zip(before).take_while(|(a, b)| a == b).count();
            // A `ts` text is at most 32 bytes.
            out.extend_from_slice(&[shared as u8, (text.len() - shared) as u8]);
            out.extend_from_slice(&text[shared..]);
            *previous = Previous { seq: rec.seq, ts: rec.ts.0, ts_text: rec.ts_text };
            if let Kind::Unknown(name) = &rec.kind {
                put_bytes(out, name.as_bytes());
            }
            put_payload(out, &rec.payload);
        }
    }
}

fn fields(p: &Payload) -> [Val; 9] {
    [
        p.units,
        p.power_units,
        p.member_count,
        p.deleted_seq,
        p.from_level,
        p.to_level,
        p.old_goal_requirement,
        p.new_goal_requirement,
        p.exact_hit,
    ]
}

fn fields_mut(p: &mut Payload) -> [&mut Val; 9] {
    [
        &mut p.units,
        &mut p.power_units,
        &mut p.member_count,
        &mut p.deleted_seq,
        &mut p.from_level,
        &mut p.to_level,
        &mut p.old_goal_requirement,
        &mut p.new_goal_requirement,
        &mut p.exact_hit,
    ]
}

fn put_payload(out: &mut Vec<u8>, payload: &Payload) {
    let values = fields(payload);
    let mut mask = if payload.campaign_id.is_some() { CAMPAIGN } else { 0 };
    for (i, value) in values.iter().enumerate() {
        let code = match value {
            Val::Absent => 0,
            Val::Int(_) => INT,
            Val::Bool(_) => BOOL,
            Val::Other(_) => 3,
        };
        mask |= code << (2 * i);
    }
    put_varint(out, mask);
    for value in values {
        match value {
            Val::Absent => {}
            Val::Int(n) => put_signed(out, n),
            Val::Bool(b) => out.push(u8::from(b)),
            Val::Other(what) => out.push(JSON_KINDS.iter().position(|k| *k == what).map_or(0, |i| i as u8)),
        }
    }
    if let Some(campaign) = &payload.campaign_id {
        put_bytes(out, campaign.as_bytes());
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_signed(out: &mut Vec<u8>, n: i64) {
    put_varint(out, ((n << 1) ^ (n >> 63)).cast_unsigned());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A pack's header read: the number of lines, and where its plan and lines start.
fn header(pack: &[u8]) -> Result<(u64, Reader<'_>, Reader<'_>), PackError> {
    let mut reader = Reader { data: pack, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(reader.error("not a pack"));
    }
    if reader.byte()? != FORMAT {
        return Err(reader.error("a pack of another format"));
    }
    let lines = reader.varint()?;
    let plan_len = usize::try_from(reader.varint()?).map_err(|_| reader.error("cut short"))?;
    let plan_end = reader.at.checked_add(plan_len).filter(|&end| end <= pack.len()).ok_or(reader.error("cut short"))?;
    let plan = Reader { data: &pack[..plan_end], at: reader.at };
    reader.at = plan_end;
    Ok((lines, plan, reader))
}

/// The lines of a pack, decoded in place one at a time ([`Unpack::next_line`]), or as an
/// iterator of owned lines that ends after the first error.
///
/// # Errors
/// The pack does not start as one of this [`FORMAT`].
pub fn unpack(pack: &[u8]) -> Result<Unpack<'_>, PackError> {
    let (left, _, reader) = header(pack)?;
    Ok(Unpack { reader, left, previous: Previous::default(), current: Line::Blank, failed: false })
}

/// The events of a pack replay's first pass needs ([`Kind::shapes_history`]), each with its
/// index among the pack's lines, in order.
///
/// # Errors
/// The pack is damaged.
pub fn plan(pack: &[u8]) -> Result<Vec<(u64, Line)>, PackError> {
    let (lines, mut reader, _) = header(pack)?;
    let count = reader.varint()?;
    let mut plan = Vec::new();
    let mut next = 0;
    for _ in 0..count {
        let index = reader.varint()?;
        if index < next || index >= lines {
            return Err(reader.error("a plan out of order"));
        }
        next = index + 1;
        let mut line = Line::Blank;
        reader.line(&mut line, &mut Previous::default())?;
        plan.push((index, line));
    }
    if reader.at != reader.data.len() {
        return Err(reader.error("bytes after the plan"));
    }
    Ok(plan)
}

/// The lines of a pack ([`unpack`]).
#[derive(Debug)]
pub struct Unpack<'a> {
    reader: Reader<'a>,
    left: u64,
    previous: Previous,
    current: Line,
    failed: bool,
}

impl Unpack<'_> {
    /// The lines not yet read.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.left
    }

    /// The next line (`None` after the last), decoded into the one this returned before.
    ///
    /// # Errors
    /// The pack is damaged; every later call returns `None`.
    pub fn next_line(&mut self) -> Result<Option<&Line>, PackError> {
        if self.failed {
            return Ok(None);
        }
        let read = if self.left == 0 {
            if self.reader.at == self.reader.data.len() {
                return Ok(None);
            }
            Err(self.reader.error("bytes after the last line"))
        } else {
            self.left -= 1;
            self.reader.line(&mut self.current, &mut self.previous)
        };
        self.failed = read.is_err();
        read.map(|()| Some(&self.current))
    }
}

impl Iterator for Unpack<'_> {
    type Item = Result<Line, PackError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().map(|line| line.cloned()).transpose()
    }
}

#[derive(Debug)]
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &'static str) -> PackError {
        PackError { at: self.at, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PackError> {
        let bytes = self.data.get(self.at..).and_then(|rest| rest.get(..n)).ok_or(self.error("cut short"))?;
        self.at += n;
        Ok(bytes)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, PackError> {
        let byte = *self.data.get(self.at).ok_or(self.error("cut short"))?;
        self.at += 1;
        Ok(byte)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, PackError> {
        if let Some(&byte) = self.data.get(self.at)
            && byte < 0x80
        {
            self.at += 1;
            return Ok(u64::from(byte));
        }
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error("a number beyond 64 bits"));
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.error("a number beyond 64 bits"))
    }

    #[inline]
    fn signed(&mut self) -> Result<i64, PackError> {
        let n = self.varint()?;
        Ok((n >> 1).cast_signed() ^ -((n & 1).cast_signed()))
    }

    fn text(&mut self) -> Result<&'a str, PackError> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.error("cut short"))?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.error("text that is not UTF-8"))
    }

    /// Decodes a line into `line`, reusing its record when it holds one.
    fn line(&mut self, line: &mut Line, previous: &mut Previous) -> Result<(), PackError> {
        let tag = self.byte()?;
        match tag {
            BLANK => *line = Line::Blank,
            OTHER => *line = Line::Other,
            BAD => *line = Line::Bad(self.text()?.to_owned()),
            MINE..=15 => {
                let seq = previous.seq.wrapping_add(self.signed()?.cast_unsigned());
                let ts = previous.ts.wrapping_add(self.signed()?);
                let ts_text = self.ts_text(&previous.ts_text)?;
                *previous = Previous { seq, ts, ts_text };
                let kind = match Kind::from_tag(tag - MINE) {
                    Some(kind) => kind,
                    None => Kind::Unknown(self.text()?.into()),
                };
                if !matches!(line, Line::Mine(_)) {
                    *line = Line::Mine(Record {
                        seq,
                        ts: Timestamp(ts),
                        ts_text,
                        kind: Kind::DonationAdded,
                        payload: Payload::default(),
                    });
                }
                let Line::Mine(rec) = line else { unreachable!("made a record just above") };
                rec.seq = seq;
                rec.ts = Timestamp(ts);
                rec.ts_text = ts_text;
                rec.kind = kind;
                self.payload(&mut rec.payload)?;
            }
            _ => return Err(self.error("an unknown line tag")),
        }
        Ok(())
    }

    fn ts_text(&mut self, previous: &TsText) -> Result<TsText, PackError> {
        let shared = usize::from(self.byte()?);
        let own = usize::from(self.byte()?);
        if shared > usize::from(previous.len) || shared + own > previous.bytes.len() {
            return Err(self.error("a ts text longer than 32 bytes"));
        }
        let mut text = TsText { len: (shared + own) as u8, bytes: previous.bytes };
        text.bytes[shared..shared + own].copy_from_slice(self.take(own)?);
        text.bytes[shared + own..].fill(0);
        if !text.bytes[..shared + own].is_ascii() {
            std::str::from_utf8(&text.bytes[..shared + own]).map_err(|_| self.error("a ts text that is not UTF-8"))?;
        }
        Ok(text)
    }

    fn payload(&mut self, payload: &mut Payload) -> Result<(), PackError> {
        let mask = self.varint()?;
        if mask >= CAMPAIGN << 1 {
            return Err(self.error("an unknown payload field"));
        }
        *payload = Payload::default();
        // Most events have one or two fields: only those present are visited.
        let mut present = mask & (CAMPAIGN - 1);
        let fields = fields_mut(payload);
        while present != 0 {
            let shift = present.trailing_zeros() & !1;
            let code = (present >> shift) & 3;
            present &= !(3 << shift);
            *fields[(shift / 2) as usize] = match code {
                INT => Val::Int(self.signed()?),
                BOOL => match self.byte()? {
                    0 => Val::Bool(false),
                    1 => Val::Bool(true),
                    _ => return Err(self.error("a boolean that is neither 0 nor 1")),
                },
                _ => {
                    let kind = JSON_KINDS.get(usize::from(self.byte()?)).ok_or(self.error("an unknown JSON kind"))?;
                    Val::Other(*kind)
                }
            };
        }
        if mask & CAMPAIGN != 0 {
            payload.campaign_id = Some(self.text()?.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::parse::parse_line;

    fn val() -> impl Strategy<Value = Val> {
        prop_oneof![
            Just(Val::Absent),
            any::<i64>().prop_map(Val::Int),
            any::<bool>().prop_map(Val::Bool),
            (0..JSON_KINDS.len()).prop_map(|i| Val::Other(JSON_KINDS[i])),
        ]
    }

    fn ts_text() -> impl Strategy<Value = TsText> {
        // Any text of at most 32 bytes, so also multi-byte characters cut by a shared prefix.
        prop_oneof!["2025-0[1-3]-1[0-9]T1[0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|\\+00:00)", "\\PC{0,10}",]
            .prop_filter_map("at most 32 bytes", |text| TsText::new(&text))
    }

    fn record() -> impl Strategy<Value = Record> {
        let kind = prop_oneof![
            (0..Kind::UNKNOWN_TAG).prop_map(|tag| Kind::from_tag(tag).expect("a known kind")),
            "\\PC{0,12}".prop_map(|name| Kind::Unknown(name.into())),
        ];
        let payload =
            (proptest::collection::vec(val(), 9), proptest::option::of("\\PC{0,20}")).prop_map(|(values, campaign)| {
                let mut payload = Payload { campaign_id: campaign.map(Into::into), ..Payload::default() };
                for (slot, value) in fields_mut(&mut payload).into_iter().zip(values) {
                    *slot = value;
                }
                payload
            });
        (prop_oneof![1u64..1_000, any::<u64>()], any::<i64>(), ts_text(), kind, payload)
            .prop_map(|(seq, ts, ts_text, kind, payload)| Record { seq, ts: Timestamp(ts), ts_text, kind, payload })
    }

    fn line() -> impl Strategy<Value = Line> {
        prop_oneof![
            Just(Line::Blank),
            Just(Line::Other),
            "\\PC{0,40}".prop_map(Line::Bad),
            record().prop_map(Line::Mine),
            record().prop_map(Line::Mine),
        ]
    }

    fn unpacked(pack: &[u8]) -> Result<Vec<Line>, PackError> {
        unpack(pack)?.collect()
    }

    fn planned(lines: &[Line]) -> Vec<(u64, Line)> {
        (0..)
            .zip(lines)
            .filter(|(_, line)| matches!(line, Line::Mine(rec) if rec.kind.shapes_history()))
            .map(|(i, line)| (i, line.clone()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Every line comes back exactly as it went in.
        #[test]
        fn any_lines_come_back_unchanged(lines in proptest::collection::vec(line(), 0..40)) {
            let packed = pack(&lines);
            prop_assert_eq!(plan(&packed), Ok(planned(&lines)));
            prop_assert_eq!(unpacked(&packed), Ok(lines));
        }

        /// The lines of a generated DDC log, parsed, come back as parsed.
        #[test]
        fn a_parsed_log_comes_back_as_parsed(events in 1u64..300, seed in any::<u64>()) {
            let text = mechfund_loggen::log_text(events, seed);
            let lines: Vec<Line> = text.lines().map(|line| parse_line(line.as_bytes(), "main")).collect();
            let packed = pack(&lines);
            prop_assert_eq!(plan(&packed), Ok(planned(&lines)));
            prop_assert_eq!(unpacked(&packed), Ok(lines));
        }

        /// Damage anywhere (a byte changed, the pack cut) gives an error or some lines, never a
        /// panic; a cut pack is always an error.
        #[test]
        fn damage_never_panics(
            lines in proptest::collection::vec(line(), 1..20),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut damaged = pack(&lines);
            let at = at.index(damaged.len());
            let _ = unpacked(&damaged[..at]).expect_err("a cut pack");
            damaged[at] = byte;
            let _ = unpacked(&damaged);
            let _ = plan(&damaged);
        }
    }

    #[test]
    fn a_log_packs_to_about_a_tenth_of_its_text() {
        let text = mechfund_loggen::log_text(10_000, 7);
        let lines: Vec<Line> = text.lines().map(|line| parse_line(line.as_bytes(), "main")).collect();
        let packed = pack(&lines);
        assert!(packed.len() * 6 < text.len(), "{} bytes packed from {}", packed.len(), text.len());
    }

    #[test]
    fn what_is_not_a_pack_is_refused_by_name() {
        assert_eq!(unpack(b"MFPK").map(|_| ()), Err(PackError { at: 4, what: "cut short" }));
        assert_eq!(unpack(b"{\"seq\":1}").map(|_| ()), Err(PackError { at: 4, what: "not a pack" }));
        let mut other = pack(&[Line::Blank]);
        other[4] = FORMAT + 1;
        assert_eq!(unpack(&other).map(|_| ()), Err(PackError { at: 5, what: "a pack of another format" }));
        let mut longer = pack(&[Line::Blank]);
        longer.push(BLANK);
        assert_eq!(unpacked(&longer), Err(PackError { at: 9, what: "bytes after the last line" }));
        let mut unordered = pack(&[Line::Blank]);
        unordered[6] = 3;
        unordered.splice(7..8, [1, 1, BLANK]);
        assert_eq!(plan(&unordered), Err(PackError { at: 9, what: "a plan out of order" }));
    }
}
