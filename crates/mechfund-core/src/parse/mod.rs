//! Reading one log line (spec §2.3, §2.4.1) into what replay needs, without allocating.
//!
//! Lines are parsed with borrowed serde deserializers; payload fields replay does not use are
//! skipped ([`serde::de::IgnoredAny`]), so a line costs one pass of the JSON tokenizer.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::time::Timestamp;

mod fast;
pub mod pack;

/// The event types replay knows, plus anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A normal donation: evolution and power.
    DonationAdded,
    /// A system donation: power only.
    SystemDonationAdded,
    /// A member-count sample.
    MemberCountUpdated,
    /// A power gift: power only, not a donation.
    PowerGiftGranted,
    /// A deletion toggle of an earlier (or later) event.
    DonationDeleted,
    /// A recorded level-up (derived).
    LevelUpCommitted,
    /// A recorded exact-hit bonus (derived).
    ExactHitBonusGranted,
    /// Any other type; tolerated, reported, and it moves the clock.
    Unknown(Box<str>),
}

impl Kind {
    /// Maps a type name to its kind.
    #[must_use]
    pub fn from_name(name: &str) -> Kind {
        match name {
            "DonationAdded" => Kind::DonationAdded,
            "SystemDonationAdded" => Kind::SystemDonationAdded,
            "MemberCountUpdated" => Kind::MemberCountUpdated,
            "PowerGiftGranted" => Kind::PowerGiftGranted,
            "DonationDeleted" => Kind::DonationDeleted,
            "LevelUpCommitted" => Kind::LevelUpCommitted,
            "ExactHitBonusGranted" => Kind::ExactHitBonusGranted,
            other => Kind::Unknown(other.into()),
        }
    }

    /// The type name as written in the log.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Kind::DonationAdded => "DonationAdded",
            Kind::SystemDonationAdded => "SystemDonationAdded",
            Kind::MemberCountUpdated => "MemberCountUpdated",
            Kind::PowerGiftGranted => "PowerGiftGranted",
            Kind::DonationDeleted => "DonationDeleted",
            Kind::LevelUpCommitted => "LevelUpCommitted",
            Kind::ExactHitBonusGranted => "ExactHitBonusGranted",
            Kind::Unknown(name) => name,
        }
    }

    /// The tag of an event's type in the binary forms of the log (packs, the dashboard's
    /// worker): the known kinds 0 to 6 in the order declared, [`Kind::UNKNOWN_TAG`] for any
    /// other type (whose name then follows the tag).
    #[must_use]
    pub fn tag(&self) -> u8 {
        match self {
            Kind::DonationAdded => 0,
            Kind::SystemDonationAdded => 1,
            Kind::MemberCountUpdated => 2,
            Kind::PowerGiftGranted => 3,
            Kind::DonationDeleted => 4,
            Kind::LevelUpCommitted => 5,
            Kind::ExactHitBonusGranted => 6,
            Kind::Unknown(_) => Kind::UNKNOWN_TAG,
        }
    }

    /// The tag of any type that is not a known kind ([`Kind::tag`]).
    pub const UNKNOWN_TAG: u8 = 7;

    /// The known kind tagged `tag` ([`Kind::tag`]); `None` for [`Kind::UNKNOWN_TAG`] and above.
    #[must_use]
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Some(match tag {
            0 => Kind::DonationAdded,
            1 => Kind::SystemDonationAdded,
            2 => Kind::MemberCountUpdated,
            3 => Kind::PowerGiftGranted,
            4 => Kind::DonationDeleted,
            5 => Kind::LevelUpCommitted,
            6 => Kind::ExactHitBonusGranted,
            _ => return None,
        })
    }

    /// Whether a `DonationDeleted` may target this type.
    #[must_use]
    pub fn is_deletable(&self) -> bool {
        matches!(self, Kind::DonationAdded | Kind::SystemDonationAdded | Kind::PowerGiftGranted)
    }

    /// Whether replay's first pass must see events of this kind: what they say holds for lines
    /// before them too (a deletion toggles an earlier event, a level-up records the goals its
    /// levels had).
    #[must_use]
    pub fn shapes_history(&self) -> bool {
        matches!(self, Kind::DonationDeleted | Kind::LevelUpCommitted)
    }

    /// Whether this is a derived event (cross-checked, never moves the clock).
    #[must_use]
    pub fn is_derived(&self) -> bool {
        matches!(self, Kind::LevelUpCommitted | Kind::ExactHitBonusGranted)
    }
}

/// A payload field as replay sees it: absent, an integer, a boolean, or something else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Val {
    /// The key is not there.
    #[default]
    Absent,
    /// An integer that fits in `i64`.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// Anything else.
    Other(JsonKind),
}

/// What a JSON value that is not what replay wanted was, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`.
    Null,
    /// A string.
    String,
    /// A number with a fraction or exponent.
    Fraction,
    /// An integer beyond `i64`.
    TooLarge,
    /// An object.
    Object,
    /// An array.
    Array,
    /// A number (where an object was wanted).
    Number,
    /// `true` or `false` (where an object was wanted).
    Boolean,
}

impl JsonKind {
    /// A phrase for messages: "a string", "null", …
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::String => "a string",
            JsonKind::Fraction => "a non-integer number",
            JsonKind::TooLarge => "an integer too large",
            JsonKind::Object => "an object",
            JsonKind::Array => "an array",
            JsonKind::Number => "a number",
            JsonKind::Boolean => "a boolean",
        }
    }
}

impl Val {
    /// Describes the value for a diagnostic.
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Val::Absent => "nothing (the field is missing)".to_owned(),
            Val::Int(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Other(what) => what.describe().to_owned(),
        }
    }
}

/// The payload fields replay uses; every other field is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Payload {
    pub units: Val,
    pub power_units: Val,
    pub member_count: Val,
    pub deleted_seq: Val,
    pub from_level: Val,
    pub to_level: Val,
    pub old_goal_requirement: Val,
    pub new_goal_requirement: Val,
    pub exact_hit: Val,
    /// `campaign_id` when it is a string (gifts are once per campaign).
    pub campaign_id: Option<Box<str>>,
}

/// The `ts` of an event as written, kept inline (at most 32 bytes once validated).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct TsText {
    len: u8,
    bytes: [u8; 32],
}

impl TsText {
    /// Keeps `text` if it fits in 32 bytes (every valid `ts` does).
    #[must_use]
    pub fn new(text: &str) -> Option<TsText> {
        let src = text.as_bytes();
        let mut bytes = [0u8; 32];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(TsText { len: u8::try_from(src.len()).ok()?, bytes })
    }

    /// The original text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl serde::Serialize for TsText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for TsText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TsText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A well-formed event line of the selected mech.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Commit order, positive.
    pub seq: u64,
    /// When it happened.
    pub ts: Timestamp,
    /// `ts` exactly as written.
    pub ts_text: TsText,
    /// Its type.
    pub kind: Kind,
    /// The fields replay uses.
    pub payload: Payload,
}

/// One physical line, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "one per line in flight; boxing would allocate per event")]
pub enum Line {
    /// Empty or whitespace only; ignored.
    Blank,
    /// Not a valid event line; the message says why.
    Bad(String),
    /// A well-formed event of another mech.
    Other,
    /// A well-formed event of the selected mech.
    Mine(Record),
}

/// A JSON value seen only at the surface.
pub(crate) enum Shallow<'a> {
    Int(i64),
    Str(Cow<'a, str>),
    Bool(bool),
    Other(JsonKind),
}

impl Shallow<'_> {
    fn val(&self) -> Val {
        match self {
            Shallow::Int(n) => Val::Int(*n),
            Shallow::Bool(b) => Val::Bool(*b),
            Shallow::Str(_) => Val::Other(JsonKind::String),
            Shallow::Other(what) => Val::Other(*what),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Shallow::Int(_) => "a number",
            Shallow::Str(_) => "a string",
            Shallow::Bool(_) => "a boolean",
            Shallow::Other(what) => what.describe(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Shallow<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Shallow<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Shallow::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Shallow::Other(JsonKind::TooLarge), Shallow::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Shallow::Other(JsonKind::Fraction))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Shallow::Bool(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Shallow::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Shallow::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Shallow::Other(JsonKind::Null))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Shallow::Other(JsonKind::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Shallow::Other(JsonKind::Object))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shallow::Other(JsonKind::Array))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The payload keys replay reads; everything else is skipped.
#[derive(Clone, Copy)]
enum PayloadKey {
    Units,
    PowerUnits,
    MemberCount,
    DeletedSeq,
    FromLevel,
    ToLevel,
    OldGoalRequirement,
    NewGoalRequirement,
    ExactHit,
    CampaignId,
    Other,
}

impl PayloadKey {
    fn of(name: &[u8]) -> PayloadKey {
        match name {
            b"units" => PayloadKey::Units,
            b"power_units" => PayloadKey::PowerUnits,
            b"member_count" => PayloadKey::MemberCount,
            b"deleted_seq" => PayloadKey::DeletedSeq,
            b"from_level" => PayloadKey::FromLevel,
            b"to_level" => PayloadKey::ToLevel,
            b"old_goal_requirement" => PayloadKey::OldGoalRequirement,
            b"new_goal_requirement" => PayloadKey::NewGoalRequirement,
            b"exact_hit" => PayloadKey::ExactHit,
            b"campaign_id" => PayloadKey::CampaignId,
            _ => PayloadKey::Other,
        }
    }
}

impl<'de> Deserialize<'de> for PayloadKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PayloadKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<PayloadKey, E> {
                Ok(PayloadKey::of(v.as_bytes()))
            }
        }
        d.deserialize_identifier(V)
    }
}

impl Payload {
    /// Stores one payload member (a later duplicate key wins, as in Python's `json`).
    fn set(&mut self, key: PayloadKey, value: &Shallow<'_>) {
        let slot = match key {
            PayloadKey::Units => &mut self.units,
            PayloadKey::PowerUnits => &mut self.power_units,
            PayloadKey::MemberCount => &mut self.member_count,
            PayloadKey::DeletedSeq => &mut self.deleted_seq,
            PayloadKey::FromLevel => &mut self.from_level,
            PayloadKey::ToLevel => &mut self.to_level,
            PayloadKey::OldGoalRequirement => &mut self.old_goal_requirement,
            PayloadKey::NewGoalRequirement => &mut self.new_goal_requirement,
            PayloadKey::ExactHit => &mut self.exact_hit,
            PayloadKey::CampaignId => {
                self.campaign_id = match value {
                    Shallow::Str(s) => Some(s.as_ref().into()),
                    _ => None,
                };
                return;
            }
            PayloadKey::Other => return,
        };
        *slot = value.val();
    }
}

/// The `payload` member: absent, an object, or the kind of whatever else it was.
#[derive(Default)]
#[allow(clippy::large_enum_variant, reason = "parsed once per line on the stack; boxing would allocate")]
pub(crate) enum PayloadField {
    #[default]
    Absent,
    Object(Payload),
    Wrong(&'static str),
}

impl<'de> Deserialize<'de> for PayloadField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PayloadField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payload object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut p = Payload::default();
                while let Some(key) = map.next_key::<PayloadKey>()? {
                    if let PayloadKey::Other = key {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        p.set(key, &map.next_value::<Shallow<'de>>()?);
                    }
                }
                Ok(PayloadField::Object(p))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("a number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("a boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("a string"))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(PayloadField::Wrong("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PayloadField::Wrong("an array"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
pub(crate) struct RawLine<'a> {
    #[serde(borrow)]
    pub(crate) seq: Option<Shallow<'a>>,
    #[serde(borrow)]
    pub(crate) ts: Option<Shallow<'a>>,
    #[serde(borrow, rename = "type")]
    pub(crate) kind: Option<Shallow<'a>>,
    #[serde(borrow)]
    pub(crate) mech_id: Option<Shallow<'a>>,
    #[serde(default)]
    pub(crate) payload: PayloadField,
}

fn required_str<'s, 'a>(field: &'s Option<Shallow<'a>>, name: &str) -> Result<&'s str, String> {
    match field {
        Some(Shallow::Str(s)) => Ok(s),
        None => Err(format!("missing \"{name}\"")),
        Some(other) => Err(format!("\"{name}\" must be a string, found {}", other.describe())),
    }
}

/// Strips serde_json's "at line 1 column N" (every line is parsed on its own) into a column.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
    format!("not a valid JSON object: {message} (column {})", e.column())
}

/// Classifies one physical line (without its newline) for the mech named `mech`.
///
/// Never panics, whatever the bytes.
#[must_use]
pub fn parse_line(bytes: &[u8], mech: &str) -> Line {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    let raw = match fast::raw_line(trimmed) {
        Some(raw) => raw,
        None => match serde_line(trimmed) {
            Ok(raw) => raw,
            Err(message) => return Line::Bad(message),
        },
    };
    match classify(raw, mech) {
        Ok(line) => line,
        Err(message) => Line::Bad(message),
    }
}

fn serde_line(trimmed: &[u8]) -> Result<RawLine<'_>, String> {
    if trimmed.first() != Some(&b'{') {
        return Err("not a JSON object: an event line starts with '{'".to_owned());
    }
    serde_json::from_slice(trimmed).map_err(|e| json_error(&e))
}

/// [`parse_line`] without the fast path for canonical lines: the reference the fast path must
/// agree with (for tests and fuzzing).
#[doc(hidden)]
#[must_use]
pub fn parse_line_reference(bytes: &[u8], mech: &str) -> Line {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    match serde_line(trimmed) {
        Ok(raw) => classify(raw, mech).unwrap_or_else(Line::Bad),
        Err(message) => Line::Bad(message),
    }
}

fn classify(raw: RawLine<'_>, mech: &str) -> Result<Line, String> {
    let seq = match &raw.seq {
        Some(Shallow::Int(n)) if *n > 0 => u64::try_from(*n).map_err(|_| "\"seq\" is out of range".to_owned())?,
        Some(Shallow::Int(n)) => {
            return Err(format!("\"seq\" must be a positive integer, found {n}"));
        }
        Some(other) => {
            return Err(format!("\"seq\" must be a positive integer, found {}", other.describe()));
        }
        None => return Err("missing \"seq\"".to_owned()),
    };
    let ts_str = required_str(&raw.ts, "ts")?;
    let ts = Timestamp::parse(ts_str).map_err(|e| format!("\"ts\": {e}"))?;
    let ts_text = TsText::new(ts_str).ok_or_else(|| "\"ts\" is too long".to_owned())?;
    let kind = required_str(&raw.kind, "type")?;
    let mech_id = required_str(&raw.mech_id, "mech_id")?;
    let payload = match raw.payload {
        PayloadField::Absent => Payload::default(),
        PayloadField::Object(p) => p,
        PayloadField::Wrong(what) => {
            return Err(format!("\"payload\" must be an object, found {what}"));
        }
    };
    if mech_id != mech {
        return Ok(Line::Other);
    }
    Ok(Line::Mine(Record { seq, ts, ts_text, kind: Kind::from_name(kind), payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(line: &str) -> String {
        match parse_line(line.as_bytes(), "main") {
            Line::Bad(message) => message,
            other => panic!("{line} should be bad, got {other:?}"),
        }
    }

    /// Tags are the binary forms' (packs, the dashboard's worker): never renumber one.
    #[test]
    fn each_kind_has_its_own_tag_for_good() {
        let names = [
            "DonationAdded",
            "SystemDonationAdded",
            "MemberCountUpdated",
            "PowerGiftGranted",
            "DonationDeleted",
            "LevelUpCommitted",
            "ExactHitBonusGranted",
        ];
        for (tag, name) in (0..).zip(names) {
            let kind = Kind::from_name(name);
            assert_eq!(kind.tag(), tag, "{name}");
            assert_eq!(Kind::from_tag(tag), Some(kind));
        }
        assert_eq!(Kind::from_name("Custom").tag(), Kind::UNKNOWN_TAG);
        assert_eq!(Kind::from_tag(Kind::UNKNOWN_TAG), None);
        assert_eq!(Kind::from_tag(u8::MAX), None);
    }

    #[test]
    fn reads_a_ddc_line_with_nulls() {
        let line = r#"{"seq":7,"ts":"2025-05-23T19:21:01.551454+00:00","type":"DonationAdded","mech_id":"main","payload":{"donation_id":"db3a850564796727","idempotency_key":"37f865f159f4bea8","units":100,"donor":null,"channel_id":null}}"#;
        let Line::Mine(rec) = parse_line(line.as_bytes(), "main") else { panic!("not mine") };
        assert_eq!(rec.seq, 7);
        assert_eq!(rec.kind, Kind::DonationAdded);
        assert_eq!(rec.payload.units, Val::Int(100));
        assert_eq!(rec.ts_text.as_str(), "2025-05-23T19:21:01.551454+00:00");
        assert_eq!(parse_line(line.as_bytes(), "other"), Line::Other);
    }

    #[test]
    fn payload_types_are_kept_for_diagnostics() {
        let line = r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":"500","power_units":5.0,"member_count":true,"deleted_seq":null,"from_level":{"a":[1]},"campaign_id":"x\u00e9"}}"#;
        let Line::Mine(rec) = parse_line(line.as_bytes(), "main") else { panic!("not mine") };
        assert_eq!(rec.payload.units, Val::Other(JsonKind::String));
        assert_eq!(rec.payload.power_units, Val::Other(JsonKind::Fraction));
        assert_eq!(rec.payload.member_count, Val::Bool(true));
        assert_eq!(rec.payload.deleted_seq, Val::Other(JsonKind::Null));
        assert_eq!(rec.payload.from_level, Val::Other(JsonKind::Object));
        assert_eq!(rec.payload.campaign_id.as_deref(), Some("xé"));
    }

    #[test]
    fn absent_payload_is_empty_and_blank_lines_are_blank() {
        let line = br#"{"seq":3,"ts":"2025-01-01T00:00:00Z","type":"Ping","mech_id":"main"}"#;
        let Line::Mine(rec) = parse_line(line, "main") else { panic!("not mine") };
        assert_eq!(rec.kind, Kind::Unknown("Ping".into()));
        assert_eq!(rec.payload, Payload::default());
        assert_eq!(parse_line(b"   \t", "main"), Line::Blank);
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(bad(r#"{"seq":0,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main"}"#).contains("positive"));
        assert!(bad(r#"{"seq":1.0,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main"}"#).contains("seq"));
        assert!(bad(r#"{"seq":"1","ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main"}"#).contains("seq"));
        assert!(bad(r#"{"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main"}"#).contains("missing \"seq\""));
        assert!(bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00","type":"X","mech_id":"main"}"#).contains("offset"));
        assert!(bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":5,"mech_id":"main"}"#).contains("type"));
        assert!(bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":null}"#).contains("mech_id"));
        assert!(
            bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main","payload":[]}"#)
                .contains("payload")
        );
        assert!(
            bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"X","mech_id":"main","payload":null}"#)
                .contains("payload")
        );
        assert!(bad(r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","#).contains("column"));
        assert!(bad("[1,2]").contains("object"));
        assert!(bad(r#"{"seq":1} trailing"#).contains("column"));
        assert!(matches!(parse_line(&[0xff, 0xfe, b'{'], "main"), Line::Bad(_)));
    }
}
