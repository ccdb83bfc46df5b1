//! Checkpoints: each mech's full state after every [`EVERY`] of its events, so that a deletion
//! toggle replays from the checkpoint before its target instead of from the mech's first event
//! (issue 16).
//!
//! A row holds the state (encoded as a snapshot's `state` column, which carries its own format
//! version), the hash of the rules it was computed under, and a digest over the state and the
//! hash chain at its seq. A row under other rules is not used; one that fails its digest or
//! cannot be read (edited, or of another log) is dropped, and the next replay that passes its
//! seq writes it again. A toggle of seq S drops every checkpoint at or after S in the toggle's
//! transaction: they folded S the other way. A checkpoint a level-up recorded later no longer
//! holds for is refused by the core (see [`mechfund_core::replay_bytes_after`]); the mech is then
//! replayed whole, which writes all its checkpoints again. Replays read the mech's events from
//! its [`packs`], or parse its lines on every core ([`crate::pipeline`]) when those cannot be read.

use mechfund_core::replay::Kept;
use mechfund_core::{ReplayOptions, Rules, State};

use super::chain::hash_at;
use super::log::lines_after_seq;
use super::packs::{self, ParsedError};
use super::snapshot::{Snapshot, snapshot_digest};
use super::sql::{Param, Sql, StoreError};
use crate::pipeline::{Keeping, replay_bytes_on_all_cores};

/// Events of a mech between two checkpoints: a toggle of a recent event replays fewer than
/// this many.
pub const EVERY: u64 = 4096;

fn options(mech: &str) -> ReplayOptions {
    ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() }
}

/// Writes `states` as checkpoints of `mech` (a checkpoint already at the same seq is kept).
///
/// # Errors
/// On a database error.
pub fn write(db: &mut dyn Sql, mech: &str, rules_hash: &str, states: &[State]) -> Result<(), StoreError> {
    for state in states {
        let text = Snapshot::encode(state);
        let digest = snapshot_digest(&hash_at(db, state.last_event_seq)?, &text);
        db.execute(
            "INSERT INTO checkpoints (mech, last_seq, rules_hash, state, digest) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (mech, last_seq) DO NOTHING",
            &[
                Param::Text(mech),
                Param::int(state.last_event_seq),
                Param::Text(rules_hash),
                Param::Text(&text),
                Param::Text(&digest),
            ],
        )?;
    }
    Ok(())
}

/// Drops the checkpoints of `mech` at or after `seq`.
///
/// # Errors
/// On a database error.
pub fn drop_from(db: &mut dyn Sql, mech: &str, seq: u64) -> Result<u64, StoreError> {
    db.execute("DELETE FROM checkpoints WHERE mech = $1 AND last_seq >= $2", &[Param::Text(mech), Param::int(seq)])
}

/// The latest checkpoint of `mech` before `seq` computed under the rules hashed as `rules_hash`
/// that passes its digest; rows that fail it are dropped on the way.
///
/// # Errors
/// On a database error.
pub fn latest_before(db: &mut dyn Sql, mech: &str, seq: u64, rules_hash: &str) -> Result<Option<State>, StoreError> {
    // One row at a time: the latest usually holds, and a state is a kilobyte of text.
    let mut below = seq;
    while let Some(row) = db.query_opt(
        "SELECT last_seq, rules_hash, state, digest FROM checkpoints WHERE mech = $1 AND last_seq < $2 \
         ORDER BY last_seq DESC LIMIT 1",
        &[Param::Text(mech), Param::int(below)],
    )? {
        let (Some(last_seq), Some(hash), Some(text), Some(digest)) =
            (row[0].seq(), row[1].text(), row[2].text(), row[3].text())
        else {
            return Err(StoreError::Unexpected(format!("a checkpoint of mech {mech} before seq {below} with NULLs")));
        };
        below = last_seq;
        if hash != rules_hash {
            continue;
        }
        let state =
            Snapshot::decode(text).ok().filter(|state| state.last_event_seq == last_seq && state.mech_id == mech);
        match state {
            Some(state) if digest == snapshot_digest(&hash_at(db, last_seq)?, text) => return Ok(Some(state)),
            _ => {
                tracing::warn!(mech, last_seq, "a checkpoint does not match its digest: dropped, it is made again");
                db.execute(
                    "DELETE FROM checkpoints WHERE mech = $1 AND last_seq = $2",
                    &[Param::Text(mech), Param::int(last_seq)],
                )?;
            }
        }
    }
    Ok(None)
}

/// `mech`'s state by replay of all its events, its checkpoints written again on the way.
///
/// # Errors
/// On a database error.
pub fn replay_whole(db: &mut dyn Sql, mech: &str, rules: &Rules, rules_hash: &str) -> Result<State, StoreError> {
    let Kept { result, checkpoints, .. } = replay_after(db, mech, rules, Keeping { checkpoint: None, every: EVERY })?;
    db.execute("DELETE FROM checkpoints WHERE mech = $1", &[Param::Text(mech)])?;
    write(db, mech, rules_hash, &checkpoints)?;
    Ok(result.state)
}

/// `mech`'s state once seq `target` was deleted or restored (the toggle already appended): the
/// checkpoints from `target` on dropped, a replay from the last one before it, or of every event
/// when none holds.
///
/// # Errors
/// On a database error.
pub fn replay_toggled(
    db: &mut dyn Sql,
    mech: &str,
    target: u64,
    rules: &Rules,
    rules_hash: &str,
) -> Result<State, StoreError> {
    drop_from(db, mech, target)?;
    if let Some(checkpoint) = latest_before(db, mech, target, rules_hash)? {
        let from = checkpoint.last_event_seq;
        let resumed = replay_after(db, mech, rules, Keeping { checkpoint: Some(checkpoint), every: EVERY })?;
        if resumed.holds {
            write(db, mech, rules_hash, &resumed.checkpoints)?;
            return Ok(resumed.result.state);
        }
        tracing::debug!(mech, from, "a level-up recorded since: replaying the mech whole");
    }
    replay_whole(db, mech, rules, rules_hash)
}

/// The replay of `mech`'s events after `keeping`'s checkpoint (all of them without one): from
/// its packs, or from its lines parsed on every core when packs cannot be read.
fn replay_after(db: &mut dyn Sql, mech: &str, rules: &Rules, keeping: Keeping) -> Result<Kept, StoreError> {
    let started = std::time::Instant::now();
    let after = keeping.checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.last_event_seq);
    if let Some(parsed) = packs::lines_after(db, mech, after)? {
        let read = started.elapsed();
        match parsed.replay(rules, options(mech), keeping.clone()) {
            Ok(kept) => {
                tracing::debug!(
                    mech,
                    after,
                    read_ms = read.as_millis(),
                    replay_ms = (started.elapsed() - read).as_millis(),
                    "replayed from packs"
                );
                return Ok(kept);
            }
            Err(ParsedError::Pack(e)) => {
                tracing::error!(
                    mech,
                    "a pack that matches its digest cannot be read ({e}): its lines are read instead"
                );
                db.execute("DELETE FROM packs WHERE mech = $1", &[Param::Text(mech)])?;
            }
            Err(ParsedError::Strict(e)) => return Err(StoreError::Unexpected(e.to_string())),
        }
    }
    let lines = lines_after_seq(db, mech, after)?;
    // Lenient replay never stops at a line.
    replay_bytes_on_all_cores(&lines, rules, options(mech), keeping).map_err(|e| StoreError::Unexpected(e.to_string()))
}

/// The events of `mech` after its last checkpoint (all of them without one).
///
/// # Errors
/// On a database error.
pub fn events_since_last(db: &mut dyn Sql, mech: &str) -> Result<u64, StoreError> {
    let row = db.query_opt(
        "SELECT count(*) FROM events WHERE mech = $1 AND seq > \
         (SELECT coalesce(max(last_seq), 0) FROM checkpoints WHERE mech = $1)",
        &[Param::Text(mech)],
    )?;
    Ok(row.and_then(|row| row[0].seq()).unwrap_or(0))
}
