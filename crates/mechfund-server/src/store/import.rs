//! Importing a DDC `events.jsonl` into the store: shared by `mechfund import` (the CLI, with the
//! store's lock held) and `POST /api/v1/mechs/{mech}/import` (the writer, inside its own
//! transaction).
//!
//! Every line is parsed with the core; seqs are kept as written and must be strictly increasing
//! and not yet stored; lines are stored byte for byte; a mech that already has events is never
//! touched. The caller owns the transaction: any error means nothing is committed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use mechfund_core::time::Timestamp;
use mechfund_core::{Line, Rules, State, parse_line};
use serde::Deserialize;

use super::chain::{Chain, rechain_from};
use super::schema::{MAX_SEQ, check_mech_id, rules_hash};
use super::snapshot::write_snapshot;
use super::sql::{Param, Sql, StoreError};

/// Rows per `INSERT` of an import: 4 parameters each, well within SQLite's 32,766 and
/// PostgreSQL's 65,535.
const ROWS_PER_INSERT: usize = 500;

/// Why an import was refused; nothing of it may be committed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line that is not a valid event (or breaks the seq order).
    #[error("line {number}: {why}")]
    Line {
        /// 1-based physical line number in the input.
        number: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The input disagrees with what the store holds (a mech with events, a seq in use).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// What was imported into one mech.
#[derive(Debug)]
pub struct Imported {
    /// Events stored.
    pub events: u64,
    /// Seq of the first and the last of them.
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// The mech's state after them (by replay, the definition), written as its snapshot.
    pub state: State,
}

/// Just enough of a line to know its mech (the core's `parse_line` validates the rest).
#[derive(Debug, Deserialize)]
struct Ident<'a> {
    #[serde(borrow)]
    mech_id: Cow<'a, str>,
}

/// A non-blank line's text and mech id, or why it is no event (the core's reason when it has one).
///
/// # Errors
/// Why the line is no event: not UTF-8, not JSON, no string `mech_id`.
pub fn line_mech(bytes: &[u8]) -> Result<(&str, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not valid UTF-8: {e}"))?;
    match serde_json::from_str::<Ident<'_>>(text) {
        Ok(ident) => Ok((text, ident.mech_id.into_owned())),
        Err(e) => Err(match parse_line(bytes, "") {
            Line::Bad(why) => why,
            _ => e.to_string(),
        }),
    }
}

/// Stores the lines of an import inside the caller's transaction, one block of whole lines at a
/// time, then [`Importer::finish`] writes the snapshots.
#[derive(Debug)]
pub struct Importer<'t> {
    db: &'t mut dyn Sql,
    /// The chain's end while lines arrive above it.
    chain: Chain,
    /// The lowest seq stored below the chain's end: the chain is hashed again from there.
    rechain: Option<u64>,
    only: Option<String>,
    /// Rows above the chain's end not stored yet: `(seq, mech, line, hash)`.
    pending: Vec<(u64, String, String, String)>,
    mechs: BTreeMap<String, (u64, u64, u64)>,
    last_seq: u64,
    latest_ts: Option<Timestamp>,
    number: u64,
}

impl<'t> Importer<'t> {
    /// An importer writing into `tx`; with `only`, every line must belong to that mech.
    ///
    /// # Errors
    /// A database failure reading the chain's end.
    pub fn new(db: &'t mut dyn Sql, only: Option<&str>) -> Result<Importer<'t>, StoreError> {
        Ok(Importer {
            chain: Chain::head(db)?,
            db,
            rechain: None,
            only: only.map(str::to_owned),
            pending: Vec::new(),
            mechs: BTreeMap::new(),
            last_seq: 0,
            latest_ts: None,
            number: 0,
        })
    }

    /// Checks and stores every line of `block` (whole lines; the last may lack its `\n`).
    ///
    /// # Errors
    /// The first bad line, conflict or database failure.
    pub fn block(&mut self, block: &[u8]) -> Result<(), ImportError> {
        for line in block.strip_suffix(b"\n").unwrap_or(block).split(|&b| b == b'\n') {
            self.number += 1;
            self.line(line)?;
        }
        self.store_pending()?;
        Ok(())
    }

    /// Stores the pending rows, [`ROWS_PER_INSERT`] per statement: one round trip each instead of
    /// one per row, which is what an import into PostgreSQL waited on.
    fn store_pending(&mut self) -> Result<(), StoreError> {
        for rows in self.pending.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from("INSERT INTO events (seq, mech, line, hash) VALUES ");
            let mut params = Vec::with_capacity(rows.len() * 4);
            for (i, (seq, mech, line, hash)) in rows.iter().enumerate() {
                let n = i * 4;
                let comma = if i == 0 { "" } else { ", " };
                sql.push_str(&format!("{comma}(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
                params.extend([Param::int(*seq), Param::Text(mech), Param::Text(line), Param::Text(hash)]);
            }
            self.db.execute(&sql, &params)?;
        }
        self.pending.clear();
        Ok(())
    }

    fn line(&mut self, bytes: &[u8]) -> Result<(), ImportError> {
        let number = self.number;
        let bad = |why: String| ImportError::Line { number, why };
        if bytes.trim_ascii().is_empty() {
            // Blank lines are no events (spec §2.4); there is nothing to store.
            return Ok(());
        }
        let (text, mech) = line_mech(bytes).map_err(bad)?;
        check_mech_id(&mech).map_err(bad)?;
        if let Some(only) = self.only.as_deref().filter(|only| *only != mech) {
            return Err(bad(format!("the event belongs to mech {mech:?}, not {only:?}")));
        }
        let record = match parse_line(bytes, &mech) {
            Line::Mine(record) => record,
            Line::Bad(why) => return Err(bad(why)),
            Line::Blank | Line::Other => return Err(bad(format!("cannot tell which mech it belongs to ({mech:?})"))),
        };
        let seq = record.seq;
        if seq > MAX_SEQ {
            return Err(bad(format!(
                "seq {seq} is above {MAX_SEQ} (2^53 - 1), the largest seq a JavaScript number holds exactly"
            )));
        }
        if seq <= self.last_seq {
            return Err(bad(format!(
                "seq {seq} is not above the previous line's seq {} (seqs must be strictly increasing)",
                self.last_seq
            )));
        }
        self.last_seq = seq;
        self.latest_ts = self.latest_ts.max(Some(record.ts));
        if !self.mechs.contains_key(&mech) {
            let existing =
                self.db.query_opt("SELECT seq FROM events WHERE mech = $1 LIMIT 1", &[Param::Text(&mech)])?;
            if existing.is_some() {
                return Err(ImportError::Conflict(format!(
                    "mech {mech:?} already has events in the store (line {number}); import only fills mechs \
                     that have none, nothing was imported"
                )));
            }
            self.mechs.insert(mech.clone(), (0, seq, seq));
        }
        // Every stored seq is at or below the chain's end: only a seq there can be taken.
        let owner = if seq <= self.chain.seq {
            self.db.query_opt("SELECT mech FROM events WHERE seq = $1", &[Param::int(seq)])?
        } else {
            None
        };
        if let Some(owner) = owner.map(|row| row[0].clone().into_text()) {
            return Err(ImportError::Conflict(format!(
                "line {number}: seq {seq} is already in the store (an event of mech {owner:?}); nothing was imported"
            )));
        }
        if seq > self.chain.seq {
            let hash = self.chain.extend(seq, &mech, text);
            self.pending.push((seq, mech.clone(), text.to_owned(), hash));
        } else {
            self.db.execute(
                "INSERT INTO events (seq, mech, line) VALUES ($1, $2, $3)",
                &[Param::int(seq), Param::Text(&mech), Param::Text(text)],
            )?;
            self.rechain = Some(self.rechain.map_or(seq, |from| from.min(seq)));
        }
        if let Some((events, _, last)) = self.mechs.get_mut(&mech) {
            *events += 1;
            *last = seq;
        }
        Ok(())
    }

    /// The latest `ts` of the lines stored so far (new events are never stamped earlier).
    pub fn latest_ts(&self) -> Option<Timestamp> {
        self.latest_ts
    }

    /// Replays each imported mech, writes its snapshot (computed under `rules`) and says what was
    /// imported, by mech.
    ///
    /// # Errors
    /// A database failure.
    pub fn finish(mut self, rules: &Rules) -> Result<BTreeMap<String, Imported>, ImportError> {
        self.store_pending()?;
        match self.rechain {
            Some(from) => {
                rechain_from(self.db, from)?;
            }
            None => self.chain.commit_head(self.db)?,
        }
        let hash = rules_hash(rules);
        let mut imported = BTreeMap::new();
        for (mech, (events, first_seq, last_seq)) in self.mechs {
            let state = super::checkpoint::replay_whole(self.db, &mech, rules, &hash)?;
            write_snapshot(self.db, &state, &hash)?;
            imported.insert(mech, Imported { events, first_seq, last_seq, state });
        }
        Ok(imported)
    }
}
