//! `mechfund verify --data DIR`: the store checked as start-up does, without changing it (also
//! while a server runs): every event row's hash in seq order, the recorded last row, and each
//! mech's snapshot against its digest.

use serde_json::{Value, json};

use super::chain::verify_chain;
use super::log::last_seqs;
use super::snapshot::check_snapshot;
use super::sql::{Sql, StoreError};

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// The JSON report: `chain` (`ok`, `last_seq`/`last_hash` or `first_bad_seq`/`why`) and one
    /// `snapshots` entry per mech.
    pub report: Value,
    /// The event rows do not add up: restore a backup.
    pub rows_damaged: bool,
    /// Snapshots that do not match the log (a server rebuilds them at start).
    pub bad_snapshots: usize,
}

/// Checks the store on `db`; run it in one read transaction, for a consistent view even while a
/// server appends. Changes nothing.
///
/// # Errors
/// A database error.
pub fn verify(db: &mut dyn Sql) -> Result<Verified, StoreError> {
    let (chain, rows_damaged) = match verify_chain(db, false)? {
        Ok(Some(chain)) => (json!({"ok": true, "last_seq": chain.seq, "last_hash": chain.hash}), false),
        Ok(None) => (
            json!({"ok": true, "unchained": "written before the hash chain; the server adds it at its next start"}),
            false,
        ),
        Err(damage) => (json!({"ok": false, "first_bad_seq": damage.seq, "why": damage.why}), true),
    };
    let mechs = last_seqs(db)?;
    let mut snapshots = Vec::new();
    let mut bad_snapshots = 0;
    for (mech, last_seq) in mechs {
        match check_snapshot(db, &mech, last_seq)? {
            Ok(_) => snapshots.push(json!({"mech": mech, "ok": true})),
            Err(why) => {
                bad_snapshots += 1;
                snapshots.push(json!({"mech": mech, "ok": false, "why": why}));
            }
        }
    }
    Ok(Verified { report: json!({"chain": chain, "snapshots": snapshots}), rows_damaged, bad_snapshots })
}
