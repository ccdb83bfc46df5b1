//! The full state of a mech as stored in the `snapshots` table: the contract's ten fields plus
//! the fold's internal ones (decay clock and remainder, recorded goals, used campaigns), so a
//! restart resumes exactly where the live path stopped without replaying the log.
//!
//! Each row also carries a digest over the hash of the event row it was computed up to and its
//! text, so an edited snapshot, or one of another log, is rebuilt by replay instead of served.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use super::chain::hash_at;
use super::schema::hex;
use super::sql::{Param, Sql, StoreError};

use mechfund_core::State;
use mechfund_core::parse::TsText;
use mechfund_core::state::RecordedGoal;
use mechfund_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Bumped when the shape changes; a row of another version is rebuilt by replay.
const VERSION: u32 = 1;

/// The serde form of a [`State`], every field included.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    version: u32,
    mech_id: String,
    level: u8,
    evo_acc: i64,
    power_acc: i64,
    goal_requirement: i64,
    goal_member_count: i64,
    last_user_count_sample: i64,
    cumulative_donations_cents: i64,
    last_event_seq: u64,
    last_event_ts: Option<String>,
    /// The decay clock in microseconds since the epoch.
    clock: Option<i64>,
    decay_remainder: i64,
    donation_applied: bool,
    /// Levels 1..=10: `[seq, goal]` of the recording `LevelUpCommitted`, or `null`.
    recorded_goals: Vec<Option<(u64, i64)>>,
    used_campaigns: Vec<String>,
}

impl Snapshot {
    /// The snapshot of `state`.
    pub fn of(state: &State) -> Snapshot {
        Snapshot {
            version: VERSION,
            mech_id: state.mech_id.clone(),
            level: state.level,
            evo_acc: state.evo_acc,
            power_acc: state.power_acc,
            goal_requirement: state.goal_requirement,
            goal_member_count: state.goal_member_count,
            last_user_count_sample: state.last_user_count_sample,
            cumulative_donations_cents: state.cumulative_donations_cents,
            last_event_seq: state.last_event_seq,
            last_event_ts: state.last_event_ts.map(|ts| ts.as_str().to_owned()),
            clock: state.clock.map(Timestamp::micros),
            decay_remainder: state.decay_remainder,
            donation_applied: state.donation_applied,
            recorded_goals: state.recorded_goals.iter().map(|r| r.map(|r| (r.seq, r.goal))).collect(),
            used_campaigns: state.used_campaigns.iter().cloned().collect(),
        }
    }

    /// Encodes a state as the JSON stored in the `state` column.
    pub fn encode(state: &State) -> String {
        serde_json::to_string(&Snapshot::of(state)).unwrap_or_default()
    }

    /// Decodes the `state` column; `Err` says why the row cannot be used.
    pub fn decode(text: &str) -> Result<State, String> {
        let snap: Snapshot = serde_json::from_str(text).map_err(|e| e.to_string())?;
        snap.into_state()
    }

    fn into_state(self) -> Result<State, String> {
        if self.version != VERSION {
            return Err(format!("snapshot version {} is not {VERSION}", self.version));
        }
        if !(1..=11).contains(&self.level) {
            return Err(format!("level {} is outside 1..=11", self.level));
        }
        let last_event_ts = match self.last_event_ts {
            Some(text) => {
                Timestamp::parse(&text).map_err(|e| e.to_string())?;
                Some(TsText::new(&text).ok_or("last_event_ts is too long")?)
            }
            None => None,
        };
        let goals: Vec<Option<RecordedGoal>> =
            self.recorded_goals.into_iter().map(|r| r.map(|(seq, goal)| RecordedGoal { seq, goal })).collect();
        let recorded_goals: [Option<RecordedGoal>; 10] =
            goals.try_into().map_err(|_| "recorded_goals must have 10 entries".to_owned())?;
        Ok(State {
            mech_id: self.mech_id,
            level: self.level,
            evo_acc: self.evo_acc,
            power_acc: self.power_acc,
            goal_requirement: self.goal_requirement,
            goal_member_count: self.goal_member_count,
            last_user_count_sample: self.last_user_count_sample,
            cumulative_donations_cents: self.cumulative_donations_cents,
            last_event_seq: self.last_event_seq,
            last_event_ts,
            clock: self.clock.map(Timestamp),
            decay_remainder: self.decay_remainder,
            donation_applied: self.donation_applied,
            recorded_goals,
            // The server's own store has no DDC snapshot (a followed DDC installation is not stored).
            known_goal: None,
            used_campaigns: self.used_campaigns.into_iter().collect::<BTreeSet<_>>(),
        })
    }
}

/// Whether the stored snapshot of `mech` is the state after its last event `last_seq`: at that
/// seq, matching its digest, and decodable. The rules it was computed under are not checked.
///
/// # Errors
/// On a database error; the inner `Err` says what is wrong with the snapshot.
pub fn check_snapshot(
    db: &mut dyn Sql,
    mech: &str,
    last_seq: u64,
) -> Result<Result<(State, String), String>, StoreError> {
    let row = db
        .query_opt("SELECT last_seq, rules_hash, state, digest FROM snapshots WHERE mech = $1", &[Param::Text(mech)])?;
    let Some(row) = row else { return Ok(Err("no snapshot".to_owned())) };
    let (seq, rules_hash, text, digest) = (row[0].int().unwrap_or(-1), row[1].text(), row[2].text(), row[3].text());
    let (Some(rules_hash), Some(text)) = (rules_hash, text) else {
        return Ok(Err("the snapshot row is incomplete".to_owned()));
    };
    if u64::try_from(seq).ok() != Some(last_seq) {
        return Ok(Err(format!("snapshot at seq {seq}, log at {last_seq}")));
    }
    if digest != Some(snapshot_digest(&hash_at(db, last_seq)?, text).as_str()) {
        return Ok(Err(
            "the snapshot does not match its digest: it was edited, or not computed from this log".to_owned()
        ));
    }
    Ok(Snapshot::decode(text).and_then(|state| {
        if state.mech_id != mech || state.last_event_seq != last_seq {
            Err("the snapshot describes another mech or seq".to_owned())
        } else {
            Ok((state, rules_hash.to_owned()))
        }
    }))
}

/// The digest a snapshot row carries: sha256 over the hash of the event row it was computed up
/// to and the state's text, so an edited snapshot (or one of another log) is noticed.
#[must_use]
pub fn snapshot_digest(row_hash: &str, state_text: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mechfund-snapshot\n");
    h.update(row_hash.as_bytes());
    h.update(b"\n");
    h.update(state_text.as_bytes());
    hex(&h.finalize())
}

/// The stored state of `mech` when it is later than `known` (the last seq of the state held),
/// or when none is held; `None` when it is not later, or cannot be read (then the server that
/// wrote it is asked again by the next read, and its listener rebuilds it from the log).
///
/// # Errors
/// On a database error.
pub fn newer_snapshot(db: &mut dyn Sql, mech: &str, known: Option<u64>) -> Result<Option<State>, StoreError> {
    let row = db.query_opt(
        "SELECT state FROM snapshots WHERE mech = $1 AND last_seq > $2",
        &[Param::Text(mech), Param::Int(known.map_or(-1, |seq| i64::try_from(seq).unwrap_or(i64::MAX)))],
    )?;
    Ok(row.and_then(|row| row[0].text().and_then(|text| Snapshot::decode(text).ok())))
}

/// Writes (or replaces) the snapshot of `state`, computed under the rules hashed as `hash`.
///
/// # Errors
/// On a database error.
pub fn write_snapshot(db: &mut dyn Sql, state: &State, hash: &str) -> Result<(), StoreError> {
    let text = Snapshot::encode(state);
    let digest = snapshot_digest(&hash_at(db, state.last_event_seq)?, &text);
    db.execute(
        "INSERT INTO snapshots (mech, last_seq, rules_hash, state, digest) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (mech) DO UPDATE SET last_seq = excluded.last_seq, rules_hash = excluded.rules_hash, \
         state = excluded.state, digest = excluded.digest",
        &[
            Param::Text(&state.mech_id),
            Param::int(state.last_event_seq),
            Param::Text(hash),
            Param::Text(&text),
            Param::Text(&digest),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mechfund_core::{ReplayOptions, Rules, replay_bytes};

    use super::*;

    #[test]
    fn a_replayed_state_round_trips() {
        let log = concat!(
            r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":20}}"#,
            "\n",
            r#"{"seq":2,"ts":"2025-01-01T00:00:00.5+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":2000}}"#,
            "\n",
            r#"{"seq":3,"ts":"2025-01-01T10:00:00+00:00","type":"PowerGiftGranted","mech_id":"main","payload":{"power_units":100,"campaign_id":"x"}}"#,
            "\n",
        );
        let rules = Rules::default();
        let state = replay_bytes(log.as_bytes(), &rules, ReplayOptions::default()).unwrap().state;
        assert_eq!(Snapshot::decode(&Snapshot::encode(&state)), Ok(state));
        assert!(Snapshot::decode("{\"garbage\":1}").is_err());
        assert!(Snapshot::decode("not json").is_err());
    }
}
