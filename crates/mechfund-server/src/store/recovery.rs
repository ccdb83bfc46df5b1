//! Start-up recovery: each snapshot is checked against the log (the mech's last seq, its digest)
//! and the rules hash; a row that disagrees or cannot be read is rebuilt by replaying the mech's
//! lines with the core. Also finds the next seq and the latest timestamp written.

use std::collections::HashMap;

use mechfund_core::time::Timestamp;
use mechfund_core::{Rules, State};

use super::chain::{Damage, check_chain_end};
use super::log::{last_seqs, next_free_seq};
use super::schema::rules_hash;
use super::snapshot::{check_snapshot, write_snapshot};
use super::sql::{Sql, StoreError};

/// What start-up recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Every mech's state (`main` always).
    pub states: HashMap<String, State>,
    /// The seq the next event gets.
    pub next_seq: u64,
    /// The latest `ts` written; new events are never stamped earlier.
    pub last_ts: Timestamp,
    /// Mechs whose snapshot was rebuilt by replay, with why.
    pub rebuilt: Vec<(String, String)>,
    /// Where the event rows stop adding up, if they do: the store then takes no writes.
    pub damage: Option<Damage>,
}

/// Loads each mech's snapshot, checks it against the log and the rules, rebuilds what disagrees
/// (writing the rebuilt snapshot back) and finds the next seq and the latest timestamp. Run it
/// inside a transaction.
///
/// # Errors
/// On a database error.
pub fn recover(db: &mut dyn Sql, rules: &Rules) -> Result<Recovered, StoreError> {
    let hash = rules_hash(rules);
    // The cheap half of the chain's check (the end; a store from before the chain is chained);
    // the writer checks every row before its first write, off the start-up path.
    let damage = check_chain_end(db)?.err();
    let mechs = last_seqs(db)?;
    let mut states = HashMap::new();
    let mut rebuilt = Vec::new();
    for (mech, last_seq) in &mechs {
        let verdict = match check_snapshot(db, mech, *last_seq)? {
            Ok((_, row_hash)) if row_hash != hash => Err("the rules changed".to_owned()),
            other => other.map(|(state, _)| state),
        };
        let state = match verdict {
            Ok(state) => state,
            Err(why) => {
                let state = super::checkpoint::replay_whole(db, mech, rules, &hash)?;
                write_snapshot(db, &state, &hash)?;
                rebuilt.push((mech.clone(), why));
                state
            }
        };
        states.insert(mech.clone(), state);
    }
    db.execute("DELETE FROM snapshots WHERE mech NOT IN (SELECT DISTINCT mech FROM events)", &[])?;
    let last = db.query_opt("SELECT seq, line FROM events ORDER BY seq DESC LIMIT 1", &[])?;
    let next_seq = next_free_seq(db)?;
    let mut last_ts = states.values().filter_map(|s| s.clock).max().unwrap_or(Timestamp(0));
    if let Some(ts) = last.as_ref().and_then(|row| row[1].text()).and_then(line_ts) {
        last_ts = last_ts.max(ts);
    }
    states.entry("main".to_owned()).or_insert_with(|| State::initial("main", rules, [None; 10]));
    Ok(Recovered { states, next_seq, last_ts, rebuilt, damage })
}

fn line_ts(line: &str) -> Option<Timestamp> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Timestamp::parse(value.get("ts")?.as_str()?).ok()
}
