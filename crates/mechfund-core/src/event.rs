//! Events mechfund writes, serialised exactly as DDC writes them (spec §2.3).
//!
//! Compact separators, keys in the contract's order, non-ASCII as `\u` escapes (Python's
//! `json.dumps` defaults) and `ts` as Python's `isoformat()` in UTC, so DDC can read our lines.

use std::io;

use serde::Serialize;
use serde::Serializer;
use serde::ser::SerializeMap;

use crate::parse::{JsonKind, Kind, Payload, Record, TsText, Val};
use crate::time::Timestamp;

/// One event with its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Commit order (global across mechs).
    pub seq: u64,
    /// When it was recorded.
    pub ts: Timestamp,
    /// Which mech.
    pub mech_id: String,
    /// What happened.
    pub body: EventBody,
}

/// The payload of an event, by type. Optional fields are written as `null` when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EventBody {
    DonationAdded {
        units: i64,
        donor: Option<String>,
        channel_id: Option<String>,
        donation_id: Option<String>,
        idempotency_key: Option<String>,
    },
    SystemDonationAdded {
        power_units: i64,
        event_name: String,
        description: Option<String>,
        idempotency_key: Option<String>,
    },
    MemberCountUpdated {
        member_count: i64,
    },
    PowerGiftGranted {
        power_units: i64,
        campaign_id: String,
    },
    DonationDeleted {
        deleted_seq: u64,
        reason: Option<String>,
        donor: Option<String>,
        units: Option<i64>,
        original_type: Option<String>,
    },
    LevelUpCommitted {
        from_level: u8,
        to_level: u8,
        old_goal_requirement: i64,
        exact_hit: bool,
        new_goal_requirement: i64,
        member_count: i64,
    },
    ExactHitBonusGranted {
        power_units: i64,
        from_level: u8,
        to_level: u8,
        reason: String,
    },
}

impl EventBody {
    /// The event's type.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            EventBody::DonationAdded { .. } => Kind::DonationAdded,
            EventBody::SystemDonationAdded { .. } => Kind::SystemDonationAdded,
            EventBody::MemberCountUpdated { .. } => Kind::MemberCountUpdated,
            EventBody::PowerGiftGranted { .. } => Kind::PowerGiftGranted,
            EventBody::DonationDeleted { .. } => Kind::DonationDeleted,
            EventBody::LevelUpCommitted { .. } => Kind::LevelUpCommitted,
            EventBody::ExactHitBonusGranted { .. } => Kind::ExactHitBonusGranted,
        }
    }
}

struct PayloadOf<'a>(&'a EventBody);

impl Serialize for PayloadOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            EventBody::DonationAdded { units, donor, channel_id, donation_id, idempotency_key } => {
                m.serialize_entry("units", units)?;
                m.serialize_entry("donor", donor)?;
                m.serialize_entry("channel_id", channel_id)?;
                m.serialize_entry("donation_id", donation_id)?;
                m.serialize_entry("idempotency_key", idempotency_key)?;
            }
            EventBody::SystemDonationAdded { power_units, event_name, description, idempotency_key } => {
                m.serialize_entry("power_units", power_units)?;
                m.serialize_entry("event_name", event_name)?;
                m.serialize_entry("description", description)?;
                m.serialize_entry("idempotency_key", idempotency_key)?;
            }
            EventBody::MemberCountUpdated { member_count } => m.serialize_entry("member_count", member_count)?,
            EventBody::PowerGiftGranted { power_units, campaign_id } => {
                m.serialize_entry("power_units", power_units)?;
                m.serialize_entry("campaign_id", campaign_id)?;
            }
            EventBody::DonationDeleted { deleted_seq, reason, donor, units, original_type } => {
                m.serialize_entry("deleted_seq", deleted_seq)?;
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("donor", donor)?;
                m.serialize_entry("units", units)?;
                m.serialize_entry("original_type", original_type)?;
            }
            EventBody::LevelUpCommitted {
                from_level,
                to_level,
                old_goal_requirement,
                exact_hit,
                new_goal_requirement,
                member_count,
            } => {
                m.serialize_entry("from_level", from_level)?;
                m.serialize_entry("to_level", to_level)?;
                m.serialize_entry("old_goal_requirement", old_goal_requirement)?;
                m.serialize_entry("exact_hit", exact_hit)?;
                m.serialize_entry("new_goal_requirement", new_goal_requirement)?;
                m.serialize_entry("member_count", member_count)?;
            }
            EventBody::ExactHitBonusGranted { power_units, from_level, to_level, reason } => {
                m.serialize_entry("power_units", power_units)?;
                m.serialize_entry("from_level", from_level)?;
                m.serialize_entry("to_level", to_level)?;
                m.serialize_entry("reason", reason)?;
            }
        }
        m.end()
    }
}

impl Serialize for Event {
    /// The full event object: `{"seq","ts","type","mech_id","payload"}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("ts", &self.ts.to_string())?;
        m.serialize_entry("type", self.body.kind().name())?;
        m.serialize_entry("mech_id", &self.mech_id)?;
        m.serialize_entry("payload", &PayloadOf(&self.body))?;
        m.end()
    }
}

/// serde_json's compact output with Python's `ensure_ascii` escaping.
struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() && ch != '\u{7f}' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

impl Event {
    /// The event as one log line in DDC's exact style (no trailing newline).
    #[must_use]
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::with_capacity(192);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
        // Serialising strings, integers and booleans into a Vec cannot fail, and the formatter
        // writes ASCII only.
        let _ = self.serialize(&mut ser);
        String::from_utf8(out).unwrap_or_default()
    }

    /// What replay sees of this event (the same as parsing [`Event::to_json_line`]).
    #[must_use]
    pub fn record(&self) -> Record {
        let int = Val::Int;
        let level = |l: &u8| Val::Int(i64::from(*l));
        let mut p = Payload::default();
        match &self.body {
            EventBody::DonationAdded { units, .. } => p.units = int(*units),
            EventBody::SystemDonationAdded { power_units, .. } => p.power_units = int(*power_units),
            EventBody::MemberCountUpdated { member_count } => p.member_count = int(*member_count),
            EventBody::PowerGiftGranted { power_units, campaign_id } => {
                p.power_units = int(*power_units);
                p.campaign_id = Some(campaign_id.as_str().into());
            }
            EventBody::DonationDeleted { deleted_seq, units, .. } => {
                p.deleted_seq = i64::try_from(*deleted_seq).map_or(Val::Other(JsonKind::TooLarge), int);
                p.units = units.map_or(Val::Other(JsonKind::Null), int);
            }
            EventBody::LevelUpCommitted {
                from_level,
                to_level,
                old_goal_requirement,
                exact_hit,
                new_goal_requirement,
                member_count,
            } => {
                p.from_level = level(from_level);
                p.to_level = level(to_level);
                p.old_goal_requirement = int(*old_goal_requirement);
                p.exact_hit = Val::Bool(*exact_hit);
                p.new_goal_requirement = int(*new_goal_requirement);
                p.member_count = int(*member_count);
            }
            EventBody::ExactHitBonusGranted { power_units, from_level, to_level, .. } => {
                p.power_units = int(*power_units);
                p.from_level = level(from_level);
                p.to_level = level(to_level);
            }
        }
        let ts_text = self.ts.to_string();
        Record {
            seq: self.seq,
            ts: self.ts,
            ts_text: TsText::new(&ts_text).unwrap_or_default(),
            kind: self.body.kind(),
            payload: p,
        }
    }
}
