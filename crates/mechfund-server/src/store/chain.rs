//! The hash chain over the event rows: each row's hash covers the previous row's hash and its own
//! seq, mech and line, and `meta` records the last row, so an edited, inserted or removed row is
//! found (at start-up: the end only; before the writer's first write and by
//! `mechfund verify --data`: every row).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::schema::hex;

/// The hash of an event row: sha256 over the previous row's hash and this row's seq, mech and
/// line (hex). The rows form a chain in seq order, so an edited, inserted or removed row breaks
/// every hash after it.
#[must_use]
pub fn row_hash(prev: &str, seq: u64, mech: &str, line: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(format!("\n{seq}\n{mech}\n").as_bytes());
    h.update(line.as_bytes());
    hex(&h.finalize())
}

/// The end of the chain of event rows: the last row's seq and hash (0 and "" for none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// The highest seq stored.
    pub seq: u64,
    /// Its row's hash.
    pub hash: String,
}

const HEAD_SEQ: &str = "head_seq";

impl Chain {
    /// The chain's end as stored.
    ///
    /// # Errors
    /// On a database error.
    pub fn head(conn: &Connection) -> rusqlite::Result<Chain> {
        let last: Option<(i64, Option<String>)> = conn
            .query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        Ok(last.map_or_else(Chain::default, |(seq, hash)| Chain {
            seq: u64::try_from(seq).unwrap_or(0),
            hash: hash.unwrap_or_default(),
        }))
    }

    /// Stores an event above the chain's end, with its hash, and moves the end to it.
    ///
    /// # Errors
    /// On a database error.
    pub fn append(&mut self, conn: &Connection, seq: u64, mech: &str, line: &str) -> rusqlite::Result<()> {
        let hash = row_hash(&self.hash, seq, mech, line);
        conn.prepare_cached("INSERT INTO events (seq, mech, line, hash) VALUES (?1, ?2, ?3, ?4)")?.execute(params![
            i64::try_from(seq).unwrap_or(i64::MAX),
            mech,
            line,
            hash
        ])?;
        *self = Chain { seq, hash };
        Ok(())
    }

    /// Records the end in `meta` (a row removed from the end is then noticed too).
    ///
    /// # Errors
    /// On a database error.
    pub fn commit_head(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![HEAD_SEQ, i64::try_from(self.seq).unwrap_or(i64::MAX)])?;
        Ok(())
    }
}

/// Hashes every row from `from` on again, in seq order (after an import stored rows below the
/// end, or to chain a store from before the chain), records the end and returns it.
///
/// # Errors
/// On a database error.
pub fn rechain_from(conn: &Connection, from: u64) -> rusqlite::Result<Chain> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let prev: Option<(i64, Option<String>)> = conn
        .query_row("SELECT seq, hash FROM events WHERE seq < ?1 ORDER BY seq DESC LIMIT 1", [from], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let mut chain = prev.map_or_else(Chain::default, |(seq, hash)| Chain {
        seq: u64::try_from(seq).unwrap_or(0),
        hash: hash.unwrap_or_default(),
    });
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, mech, line FROM events WHERE seq >= ?1 ORDER BY seq")?
        .query_map([from], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare_cached("UPDATE events SET hash = ?1 WHERE seq = ?2")?;
    for (seq, mech, line) in rows {
        let seq_u = u64::try_from(seq).unwrap_or(0);
        chain.hash = row_hash(&chain.hash, seq_u, &mech, &line);
        chain.seq = seq_u;
        update.execute(params![chain.hash, seq])?;
    }
    chain.commit_head(conn)?;
    Ok(chain)
}

/// Where the stored event rows stop adding up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The first row that is wrong (or the end, when rows are missing there).
    pub seq: u64,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the event rows are damaged at seq {}: {}", self.seq, self.why)
    }
}

/// Checks every row's hash in seq order and the recorded end. A store from before the chain
/// (no row hashed, no end recorded) is chained now when `upgrade`, else reported as `None`.
/// Returns the end, or the first damage.
///
/// # Errors
/// On a database error.
pub fn verify_chain(conn: &Connection, upgrade: bool) -> rusqlite::Result<Result<Option<Chain>, Damage>> {
    let head: Option<i64> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [HEAD_SEQ], |row| row.get(0)).optional()?;
    let mut chain = Chain::default();
    let mut unhashed = 0u64;
    let mut damage = None;
    {
        let mut stmt = conn.prepare("SELECT seq, mech, line, hash FROM events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
            let (mech, line) = (row.get_ref(1)?.as_str()?, row.get_ref(2)?.as_str()?);
            let stored: Option<&str> = row.get_ref(3)?.as_str_or_null()?;
            let want = row_hash(&chain.hash, seq, mech, line);
            match stored {
                None if head.is_none() => unhashed += 1,
                None => {
                    damage = Some(Damage { seq, why: "the row has no hash: it was written outside mechfund".into() });
                    break;
                }
                Some(hash) if hash != want => {
                    damage = Some(Damage {
                        seq,
                        why: "its hash does not match its content and the rows before it: it or a row before \
                              it was edited, or a row before it was removed"
                            .into(),
                    });
                    break;
                }
                Some(_) => {}
            }
            chain = Chain { seq, hash: want };
        }
    }
    if let Some(damage) = damage {
        return Ok(Err(damage));
    }
    match head.map(|h| u64::try_from(h).unwrap_or(0)) {
        None if unhashed > 0 || chain.seq == 0 => {
            // A store from before the chain (or an empty one): chained from here on.
            if upgrade { Ok(Ok(Some(rechain_from(conn, 0)?))) } else { Ok(Ok(None)) }
        }
        None => Ok(Err(Damage { seq: chain.seq, why: "the record of the last row is missing from meta".into() })),
        Some(head) if head > chain.seq => {
            Ok(Err(Damage { seq: chain.seq, why: format!("the rows after it, up to seq {head}, are missing") }))
        }
        Some(head) if head < chain.seq => Ok(Err(added_above(conn, head, chain.seq)?)),
        Some(_) => Ok(Ok(Some(chain))),
    }
}

/// Rows above the recorded last row `head`, up to `end`: the first of them is the damage.
fn added_above(conn: &Connection, head: u64, end: u64) -> rusqlite::Result<Damage> {
    let first: Option<i64> = conn.query_row(
        "SELECT min(seq) FROM events WHERE seq > ?1",
        [i64::try_from(head).unwrap_or(i64::MAX)],
        |row| row.get(0),
    )?;
    let seq = first.and_then(|s| u64::try_from(s).ok()).unwrap_or(end);
    let why =
        format!("the rows from it up to seq {end} were added outside mechfund (the last row written is seq {head})");
    Ok(Damage { seq, why })
}

/// The end of the chain against the recorded last row, without reading every row: rows removed
/// from or added at the end are found at once. A store from before the chain is chained now.
///
/// # Errors
/// On a database error.
pub fn check_chain_end(conn: &Connection) -> rusqlite::Result<Result<Chain, Damage>> {
    let head: Option<i64> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [HEAD_SEQ], |row| row.get(0)).optional()?;
    let end = Chain::head(conn)?;
    match head.map(|h| u64::try_from(h).unwrap_or(0)) {
        None if end.hash.is_empty() => Ok(Ok(rechain_from(conn, 0)?)),
        None => Ok(Err(Damage { seq: end.seq, why: "the record of the last row is missing from meta".into() })),
        Some(head) if head > end.seq => {
            Ok(Err(Damage { seq: end.seq, why: format!("the rows after it, up to seq {head}, are missing") }))
        }
        Some(head) if head < end.seq => Ok(Err(added_above(conn, head, end.seq)?)),
        Some(_) if end.seq > 0 && end.hash.is_empty() => {
            Ok(Err(Damage { seq: end.seq, why: "the row has no hash: it was written outside mechfund".into() }))
        }
        Some(_) => Ok(Ok(end)),
    }
}

/// The hash of the event row `seq` ("" when there is none, or it has none yet).
pub fn hash_at(conn: &Connection, seq: u64) -> rusqlite::Result<String> {
    let hash: Option<Option<String>> = conn
        .query_row("SELECT hash FROM events WHERE seq = ?1", [i64::try_from(seq).unwrap_or(i64::MAX)], |row| row.get(0))
        .optional()?;
    Ok(hash.flatten().unwrap_or_default())
}
