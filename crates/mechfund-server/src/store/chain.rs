//! The hash chain over the event rows: each row's hash covers the previous row's hash and its own
//! seq, mech and line, and `meta` records the last row, so an edited, inserted or removed row is
//! found (at start-up: the end only; before the writer's first write and by
//! `mechfund verify --data`: every row).

use sha2::{Digest, Sha256};

use super::schema::hex;
use super::sql::{Param, Sql, StoreError, Value};

/// The hash of an event row: sha256 over the previous row's hash and this row's seq, mech and
/// line (hex). The rows form a chain in seq order, so an edited, inserted or removed row breaks
/// every hash after it.
#[must_use]
pub fn row_hash(prev: &str, seq: u64, mech: &str, line: &str) -> String {
    // The seq's decimal digits, without a string per row (start-up hashes every row).
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = seq;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(&digits[at..]);
    h.update(b"\n");
    h.update(mech.as_bytes());
    h.update(b"\n");
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

fn chain_of(row: Option<Vec<Value>>) -> Chain {
    row.map_or_else(Chain::default, |row| Chain {
        seq: row[0].seq().unwrap_or(0),
        hash: row[1].text().unwrap_or_default().to_owned(),
    })
}

impl Chain {
    /// The chain's end as stored.
    ///
    /// # Errors
    /// On a database error.
    pub fn head(db: &mut dyn Sql) -> Result<Chain, StoreError> {
        Ok(chain_of(db.query_opt("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", &[])?))
    }

    /// Stores an event above the chain's end, with its hash, and moves the end to it.
    ///
    /// # Errors
    /// On a database error.
    pub fn append(&mut self, db: &mut dyn Sql, seq: u64, mech: &str, line: &str) -> Result<(), StoreError> {
        let hash = self.extend(seq, mech, line);
        db.execute(
            "INSERT INTO events (seq, mech, line, hash) VALUES ($1, $2, $3, $4)",
            &[Param::int(seq), Param::Text(mech), Param::Text(line), Param::Text(&hash)],
        )?;
        Ok(())
    }

    /// Moves the end to a row above it, which the caller stores, and returns the row's hash.
    pub fn extend(&mut self, seq: u64, mech: &str, line: &str) -> String {
        let hash = row_hash(&self.hash, seq, mech, line);
        *self = Chain { seq, hash: hash.clone() };
        hash
    }

    /// Records the end in `meta` (a row removed from the end is then noticed too).
    ///
    /// # Errors
    /// On a database error.
    pub fn commit_head(&self, db: &mut dyn Sql) -> Result<(), StoreError> {
        db.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[Param::Text(HEAD_SEQ), Param::int(self.seq)],
        )?;
        Ok(())
    }
}

/// The end recorded in `meta`, if any.
///
/// # Errors
/// On a database error.
pub fn recorded_head(db: &mut dyn Sql) -> Result<Option<u64>, StoreError> {
    Ok(db.query_opt("SELECT value FROM meta WHERE key = $1", &[Param::Text(HEAD_SEQ)])?.and_then(|row| row[0].seq()))
}

/// Hashes every row from `from` on again, in seq order (after an import stored rows below the
/// end, or to chain a store from before the chain), records the end and returns it.
///
/// # Errors
/// On a database error.
pub fn rechain_from(db: &mut dyn Sql, from: u64) -> Result<Chain, StoreError> {
    let mut chain = chain_of(
        db.query_opt("SELECT seq, hash FROM events WHERE seq < $1 ORDER BY seq DESC LIMIT 1", &[Param::int(from)])?,
    );
    let rows = db.query("SELECT seq, mech, line FROM events WHERE seq >= $1 ORDER BY seq", &[Param::int(from)])?;
    for row in rows {
        let seq = row[0].seq().unwrap_or(0);
        chain.hash = row_hash(&chain.hash, seq, row[1].text().unwrap_or_default(), row[2].text().unwrap_or_default());
        chain.seq = seq;
        db.execute("UPDATE events SET hash = $1 WHERE seq = $2", &[Param::Text(&chain.hash), Param::int(seq)])?;
    }
    chain.commit_head(db)?;
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
pub fn verify_chain(db: &mut dyn Sql, upgrade: bool) -> Result<Result<Option<Chain>, Damage>, StoreError> {
    let head = recorded_head(db)?;
    let mut chain = Chain::default();
    let mut unhashed = 0u64;
    let mut damage = None;
    db.for_each("SELECT seq, mech, line, hash FROM events ORDER BY seq", &[], &mut |row| {
        let seq = row[0].seq().unwrap_or(0);
        let (mech, line) = (row[1].text().unwrap_or_default(), row[2].text().unwrap_or_default());
        let want = row_hash(&chain.hash, seq, mech, line);
        match row[3].text() {
            None if head.is_none() => unhashed += 1,
            None => {
                damage = Some(Damage { seq, why: "the row has no hash: it was written outside mechfund".into() });
                return false;
            }
            Some(hash) if hash != want => {
                damage = Some(Damage {
                    seq,
                    why: "its hash does not match its content and the rows before it: it or a row before \
                          it was edited, or a row before it was removed"
                        .into(),
                });
                return false;
            }
            Some(_) => {}
        }
        chain = Chain { seq, hash: want };
        true
    })?;
    if let Some(damage) = damage {
        return Ok(Err(damage));
    }
    match head {
        None if unhashed > 0 || chain.seq == 0 => {
            // A store from before the chain (or an empty one): chained from here on.
            if upgrade { Ok(Ok(Some(rechain_from(db, 0)?))) } else { Ok(Ok(None)) }
        }
        None => Ok(Err(Damage { seq: chain.seq, why: "the record of the last row is missing from meta".into() })),
        Some(head) if head > chain.seq => {
            Ok(Err(Damage { seq: chain.seq, why: format!("the rows after it, up to seq {head}, are missing") }))
        }
        Some(head) if head < chain.seq => Ok(Err(added_above(db, head, chain.seq)?)),
        Some(_) => Ok(Ok(Some(chain))),
    }
}

/// Rows above the recorded last row `head`, up to `end`: the first of them is the damage.
fn added_above(db: &mut dyn Sql, head: u64, end: u64) -> Result<Damage, StoreError> {
    let first = db.query_opt("SELECT min(seq) FROM events WHERE seq > $1", &[Param::int(head)])?;
    let seq = first.and_then(|row| row[0].seq()).unwrap_or(end);
    let why =
        format!("the rows from it up to seq {end} were added outside mechfund (the last row written is seq {head})");
    Ok(Damage { seq, why })
}

/// The end of the chain against the recorded last row, without reading every row: rows removed
/// from or added at the end are found at once. A store from before the chain is chained now.
///
/// # Errors
/// On a database error.
pub fn check_chain_end(db: &mut dyn Sql) -> Result<Result<Chain, Damage>, StoreError> {
    let head = recorded_head(db)?;
    let end = Chain::head(db)?;
    match head {
        None if end.hash.is_empty() => Ok(Ok(rechain_from(db, 0)?)),
        None => Ok(Err(Damage { seq: end.seq, why: "the record of the last row is missing from meta".into() })),
        Some(head) if head > end.seq => {
            Ok(Err(Damage { seq: end.seq, why: format!("the rows after it, up to seq {head}, are missing") }))
        }
        Some(head) if head < end.seq => Ok(Err(added_above(db, head, end.seq)?)),
        Some(_) if end.seq > 0 && end.hash.is_empty() => {
            Ok(Err(Damage { seq: end.seq, why: "the row has no hash: it was written outside mechfund".into() }))
        }
        Some(_) => Ok(Ok(end)),
    }
}

/// The hash of the event row `seq` ("" when there is none, or it has none yet).
///
/// # Errors
/// On a database error.
pub fn hash_at(db: &mut dyn Sql, seq: u64) -> Result<String, StoreError> {
    let row = db.query_opt("SELECT hash FROM events WHERE seq = $1", &[Param::int(seq)])?;
    Ok(row.and_then(|row| row[0].text().map(str::to_owned)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::row_hash;

    /// The chain's hashes are stored: their formula never changes. Expected values from
    /// Python's `hashlib.sha256(prev + "\n" + seq + "\n" + mech + "\n" + line).hexdigest()`.
    #[test]
    fn a_row_hash_is_sha256_of_the_previous_hash_seq_mech_and_line() {
        let first = row_hash("", 1, "main", r#"{"seq":1}"#);
        assert_eq!(first, "51ddbf62f0b8dbd9ba14ca887770ad31387303f2c824177cc9c13d8e2986a81c");
        assert_eq!(
            row_hash(&first, u64::MAX, "x", ""),
            "e6d5ea8221893436241e271ed34e6458d22ae4df78597a80e6f80924d2b4f560"
        );
        assert_eq!(row_hash(&first, 0, "x", ""), "2fd4fad5b1fd8257eab2c2abb542f8459b4c33836bb40a3ff97481f9357483fb");
    }
}
