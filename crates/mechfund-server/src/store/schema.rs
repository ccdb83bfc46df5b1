//! The SQLite schema and the rules every stored row keeps: seqs within what a JavaScript number
//! holds exactly, and mech ids safe in a URL, a file name and a log line.
//!
//! Tables: `events` (global `seq`, `mech`, `line` exactly as written, exported byte for byte,
//! and the row's `hash` in the chain), `snapshots` (each mech's full state after its last event,
//! with the hash of the rules it was computed under and a digest), `idempotency` (a key, the hash
//! of the request, the first response) and `meta` (the recorded end of the chain, and the lowest
//! seq the next event may get, left by a restore), `checkpoints` (each mech's full state after
//! every few thousand of its events, for deletions: [`super::checkpoint`]) and `packs` (each
//! mech's events in binary, a few thousand to a row, for replays: [`super::packs`]).
//!
//! The schema is versioned: `PRAGMA user_version` is the number of `MIGRATIONS` applied, and
//! [`open_writer`] applies the missing ones in one transaction. A store a newer mechfund migrated
//! is refused rather than written with an older idea of its tables ([`check_version`]).

use std::path::Path;
use std::time::Duration;

use mechfund_core::Rules;
use rusqlite::{Connection, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::sql::StoreError;

/// The schema, one migration per version; never edit a shipped one, add the next.
const MIGRATIONS: &[fn(&Connection) -> rusqlite::Result<()>] = &[version_1, version_2, version_3];

/// The schema version this mechfund writes.
#[must_use]
pub fn schema_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Version 1: the tables as first versioned. `IF NOT EXISTS` and `ADDED_COLUMNS` also bring a
/// store from before versioning (version 0 with tables) up to it.
fn version_1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(VERSION_1)?;
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
    Ok(())
}

/// Version 2: checkpoints of each mech's state every few thousand events (issue 16).
fn version_2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE checkpoints (
            mech       TEXT NOT NULL,
            last_seq   INTEGER NOT NULL,
            rules_hash TEXT NOT NULL,
            state      TEXT NOT NULL,
            digest     TEXT NOT NULL,
            PRIMARY KEY (mech, last_seq)
        ) WITHOUT ROWID;",
    )
}

/// Version 3: packs, each mech's events in the core's binary form a few thousand to a row, so a
/// replay of a whole mech neither reads nor parses its JSON lines (issue 16).
fn version_3(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE packs (
            mech      TEXT NOT NULL,
            last_seq  INTEGER NOT NULL,
            after_seq INTEGER NOT NULL,
            lines     INTEGER NOT NULL,
            format    INTEGER NOT NULL,
            data      BLOB NOT NULL,
            digest    TEXT NOT NULL,
            PRIMARY KEY (mech, last_seq)
        );",
    )
}

const VERSION_1: &str = "
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

/// Columns added before the schema was versioned: `ALTER TABLE` brings such stores up to date.
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// The sha256 of the rules' canonical JSON (so formatting of the rules file does not matter).
pub fn rules_hash(rules: &Rules) -> String {
    hex(&Sha256::digest(rules.to_value().to_string().as_bytes()))
}

/// Opens (creating if needed) the database for the writer: WAL, `synchronous=FULL`, the schema
/// migrated to [`schema_version`].
///
/// # Errors
/// If the file cannot be opened, the schema cannot be migrated, or a newer mechfund migrated it.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A reader that held the WAL back (a stalled export) lets it grow; once checkpointed, the
    // file is cut back to this size instead of keeping its peak on disk.
    conn.pragma_update(None, "journal_size_limit", 64_i64 << 20)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Applies the migrations the store lacks, all or none.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = check_version(&tx)?;
    for (version, migration) in (1_i64..).zip(MIGRATIONS).skip(usize::try_from(current).unwrap_or(0)) {
        migration(&tx)?;
        tx.pragma_update(None, "user_version", version)?;
        tracing::info!(version, "SQLite schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// The store's schema version, if this mechfund knows it (not newer than [`schema_version`]).
///
/// # Errors
/// The version cannot be read, or a newer mechfund migrated the store.
pub fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > schema_version() {
        return Err(StoreError::Unexpected(format!(
            "the store's schema is version {version}, newer than this mechfund's {}: run a newer mechfund",
            schema_version()
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::{check_version, open_writer, schema_version};
    use rusqlite::Connection;

    fn version(db: &std::path::Path) -> i64 {
        Connection::open(db).and_then(|c| c.query_row("PRAGMA user_version", [], |row| row.get(0))).expect("version")
    }

    #[test]
    fn a_new_store_is_at_the_current_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mechfund.db");
        drop(open_writer(&db).expect("open"));
        assert_eq!(version(&db), schema_version());
        // Opening again migrates nothing and keeps the version.
        drop(open_writer(&db).expect("open again"));
        assert_eq!(version(&db), schema_version());
    }

    /// A store written before the schema was versioned (and before the hash chain): version 0,
    /// tables without `hash` and `digest`. Opened, it is brought up to date, rows kept.
    #[test]
    fn a_store_from_before_versions_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mechfund.db");
        let old = Connection::open(&db).expect("create");
        old.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, mech TEXT NOT NULL, line TEXT NOT NULL);
             CREATE TABLE snapshots (mech TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, rules_hash TEXT NOT NULL,
                                     state TEXT NOT NULL);
             INSERT INTO events VALUES (1, 'main', '{\"seq\":1}');",
        )
        .expect("old schema");
        drop(old);
        assert_eq!(version(&db), 0);
        let conn = open_writer(&db).expect("migrated");
        assert_eq!(check_version(&conn).expect("version"), schema_version());
        let row: (String, Option<String>) = conn
            .query_row("SELECT line, hash FROM events WHERE seq = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("row");
        assert_eq!(row, ("{\"seq\":1}".to_owned(), None));
        conn.prepare("SELECT digest FROM snapshots").expect("the digest column was added");
        conn.prepare("SELECT key, value FROM meta").expect("meta was created");
        conn.prepare("SELECT key, request_hash, status, body FROM idempotency").expect("idempotency was created");
    }

    #[test]
    fn a_store_a_newer_mechfund_migrated_is_refused_unchanged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mechfund.db");
        drop(open_writer(&db).expect("open"));
        let newer = schema_version() + 1;
        Connection::open(&db).and_then(|c| c.pragma_update(None, "user_version", newer)).expect("bump");
        let error = open_writer(&db).expect_err("refused").to_string();
        let expected =
            format!("the store's schema is version {newer}, newer than this mechfund's {}", schema_version());
        assert!(error.starts_with(&expected) && error.ends_with("run a newer mechfund"), "{error}");
        assert_eq!(version(&db), newer);
    }
}
