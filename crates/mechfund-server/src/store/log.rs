//! Reading the stored log: a mech's lines in seq order (whole, one by one, or a page after a
//! seq), its state by replay (the definition of the state), and the next seq to hand out.

use mechfund_core::{ReplayOptions, Rules, State, replay_bytes};
use rusqlite::{Connection, OptionalExtension, params};

use super::sql::{Param, Sql, StoreError, Value};

/// The lines of a mech, in seq order, each followed by `\n` (the export format).
///
/// # Errors
/// On a database error.
pub fn mech_lines(db: &mut dyn Sql, mech: &str) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for_each_line(db, mech, |line| {
        out.extend_from_slice(line);
        out.push(b'\n');
        true
    })?;
    Ok(out)
}

/// The lines of `mech` after seq `after`, in seq order, each followed by `\n`.
///
/// # Errors
/// On a database error.
pub fn lines_after_seq(db: &mut dyn Sql, mech: &str, after: u64) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    db.for_each_text(
        "SELECT line FROM events WHERE mech = $1 AND seq > $2 ORDER BY seq",
        &[Param::Text(mech), Param::int(after)],
        &mut |line| {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            true
        },
    )?;
    Ok(out)
}

/// Calls `f` with each stored line of `mech` in seq order (one statement: one consistent read)
/// until it returns `false`; says whether every line was seen.
///
/// # Errors
/// On a database error.
pub fn for_each_line(db: &mut dyn Sql, mech: &str, mut f: impl FnMut(&[u8]) -> bool) -> Result<bool, StoreError> {
    db.for_each_text("SELECT line FROM events WHERE mech = $1 ORDER BY seq", &[Param::Text(mech)], &mut |line| {
        f(line.as_bytes())
    })
}

/// The seqs and lines of `mech` above `after_seq`, at most `limit`, in seq order.
///
/// # Errors
/// On a database error.
pub fn lines_after(db: &mut dyn Sql, mech: &str, after_seq: u64, limit: u64) -> Result<Vec<(u64, String)>, StoreError> {
    let rows = db.query(
        "SELECT seq, line FROM events WHERE mech = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[Param::Text(mech), Param::int(after_seq), Param::int(limit)],
    )?;
    Ok(rows
        .into_iter()
        .map(|mut row| (row[0].seq().unwrap_or(0), std::mem::replace(&mut row[1], Value::Null).into_text()))
        .collect())
}

/// Every mech that has events, with its last seq, by mech id.
///
/// # Errors
/// On a database error.
pub fn last_seqs(db: &mut dyn Sql) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(db
        .query("SELECT mech, MAX(seq) FROM events GROUP BY mech ORDER BY mech", &[])?
        .into_iter()
        .map(|row| (row[0].text().unwrap_or_default().to_owned(), row[1].seq().unwrap_or(0)))
        .collect())
}

/// The state of `mech` by replaying its lines with the core (the definition of the state).
pub fn replay_state(lines: &[u8], mech: &str, rules: &Rules) -> State {
    let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
    match replay_bytes(lines, rules, options) {
        Ok(result) => result.state,
        // Lenient replay never stops; this branch only satisfies the type.
        Err(_) => State::initial(mech, rules, [None; 10]),
    }
}

/// The `meta` key of the lowest seq the next event may get.
const NEXT_SEQ_FLOOR: &str = "next_seq_floor";

/// The seq the next event stored in this database gets: above every stored event, and at least
/// the floor a restore left.
///
/// # Errors
/// On a database error (or a file that is no database).
pub fn next_seq(conn: &Connection) -> rusqlite::Result<u64> {
    let max: Option<i64> = conn.query_row("SELECT max(seq) FROM events", [], |row| row.get(0))?;
    Ok(max.map_or(1, |seq| u64::try_from(seq).unwrap_or(0) + 1).max(seq_floor(conn)?))
}

/// [`next_seq`] of a store mechfund opened (its `meta` exists), in either engine.
///
/// # Errors
/// On a database error.
pub fn next_free_seq(db: &mut dyn Sql) -> Result<u64, StoreError> {
    let max = db.query_opt("SELECT max(seq) FROM events", &[])?.and_then(|row| row[0].seq());
    let floor = db
        .query_opt("SELECT value FROM meta WHERE key = $1", &[Param::Text(NEXT_SEQ_FLOOR)])?
        .and_then(|row| row[0].seq())
        .unwrap_or(1);
    Ok(max.map_or(1, |seq| seq + 1).max(floor).max(1))
}

/// The floor a restore left (1 if none; a database from before `meta` has none).
fn seq_floor(conn: &Connection) -> rusqlite::Result<u64> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(1);
    }
    let floor: Option<i64> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [NEXT_SEQ_FLOOR], |row| row.get(0)).optional()?;
    Ok(floor.and_then(|f| u64::try_from(f).ok()).unwrap_or(1).max(1))
}

/// Makes the next event of this database get `floor` or more (a restore: the seqs the replaced
/// database handed out are never given to other events). Never lowers a floor.
///
/// # Errors
/// On a database error.
pub fn raise_seq_floor(conn: &Connection, floor: u64) -> rusqlite::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);")?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        params![NEXT_SEQ_FLOOR, i64::try_from(floor).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}
