//! The SQLite schema and the rules every stored row keeps: seqs within what a JavaScript number
//! holds exactly, and mech ids safe in a URL, a file name and a log line.
//!
//! Tables: `events` (global `seq`, `mech`, `line` exactly as written, exported byte for byte,
//! and the row's `hash` in the chain), `snapshots` (each mech's full state after its last event,
//! with the hash of the rules it was computed under and a digest), `idempotency` (a key, the hash
//! of the request, the first response) and `meta` (the recorded end of the chain, and the lowest
//! seq the next event may get, left by a restore).

use std::path::Path;
use std::time::Duration;

use mechfund_core::Rules;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    mech TEXT NOT NULL,
    line TEXT NOT NULL,
    hash TEXT
);
CREATE INDEX IF NOT EXISTS events_mech_seq ON events (mech, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    mech       TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    rules_hash TEXT NOT NULL,
    state      TEXT NOT NULL,
    digest     TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL
);
";

/// Columns added after a table was first shipped: `ALTER TABLE` brings older stores up to date.
const ADDED_COLUMNS: [(&str, &str); 2] = [("events", "hash"), ("snapshots", "digest")];

/// The highest seq the store holds or hands out: 2^53 - 1, the largest integer a JavaScript
/// number (the dashboard, the JS API, `EventSource` ids read as numbers) holds exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The longest mech id.
pub const MAX_MECH_ID: usize = 64;

/// A mech id the store takes: 1 to 64 of `A-Z a-z 0-9 . _ -`, not `.` or `..` (so an id is
/// safe in a URL path, a file name and a log line, and reads the same everywhere: no control or
/// bidi characters).
///
/// # Errors
/// What is wrong with the id and what one looks like.
pub fn check_mech_id(mech: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if mech.is_empty() || mech.len() > MAX_MECH_ID || mech == "." || mech == ".." || !mech.chars().all(allowed) {
        return Err(format!(
            "mech {mech:?} is not a mech id: use 1 to {MAX_MECH_ID} of A-Z a-z 0-9 . _ - (not \".\" or \"..\"), e.g. \"main\""
        ));
    }
    Ok(())
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of the rules' canonical JSON (so formatting of the rules file does not matter).
pub fn rules_hash(rules: &Rules) -> String {
    hex(&Sha256::digest(rules.to_value().to_string().as_bytes()))
}

/// Opens (creating if needed) the database for the writer: WAL, `synchronous=FULL`, schema.
///
/// # Errors
/// If the file cannot be opened or the schema cannot be created.
pub fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A reader that held the WAL back (a stalled export) lets it grow; once checkpointed, the
    // file is cut back to this size instead of keeping its peak on disk.
    conn.pragma_update(None, "journal_size_limit", 64_i64 << 20)?;
    conn.execute_batch(SCHEMA)?;
    for (table, column) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}')"),
            [],
            |row| row.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(conn)
}
