//! The SQLite event store: schema, start-up recovery and the read-only connections.
//!
//! Tables: `events` (global `seq`, `mech`, `line` exactly as written, exported byte for byte),
//! `snapshots` (each mech's full state after its last event, with the hash of the rules it was
//! computed under), `idempotency` (a key, the hash of the request, the first response) and
//! `meta` (the lowest seq the next event may get, left by a restore). The writer
//! ([`super::writer`]) writes the first three in one transaction per group of requests.
//!
//! On start each snapshot is checked against the log (the mech's last seq) and the rules hash;
//! a row that disagrees or cannot be read is rebuilt by replaying the mech's lines with the core.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use mechfund_core::time::Timestamp;
use mechfund_core::{ReplayOptions, Rules, State, replay_bytes};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::snapshot::Snapshot;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    mech TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_mech_seq ON events (mech, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    mech       TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    rules_hash TEXT NOT NULL,
    state      TEXT NOT NULL
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
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The lines of a mech, in seq order, each followed by `\n` (the export format).
///
/// # Errors
/// On a database error.
pub fn mech_lines(conn: &Connection, mech: &str) -> rusqlite::Result<Vec<u8>> {
    let mut out = Vec::new();
    for_each_line(conn, mech, |line| {
        out.extend_from_slice(line);
        out.push(b'\n');
        true
    })?;
    Ok(out)
}

/// Calls `f` with each stored line of `mech` in seq order (one statement: one consistent read)
/// until it returns `false`; says whether every line was seen.
///
/// # Errors
/// On a database error.
pub fn for_each_line(conn: &Connection, mech: &str, mut f: impl FnMut(&[u8]) -> bool) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT line FROM events WHERE mech = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([mech])?;
    while let Some(row) = rows.next()? {
        if !f(row.get_ref(0)?.as_str()?.as_bytes()) {
            return Ok(false);
        }
    }
    Ok(true)
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
}

/// Loads each mech's snapshot, checks it against the log and the rules, rebuilds what disagrees
/// (writing the rebuilt snapshot back) and finds the next seq and the latest timestamp.
///
/// # Errors
/// On a database error.
pub fn recover(conn: &mut Connection, rules: &Rules) -> rusqlite::Result<Recovered> {
    let hash = rules_hash(rules);
    let tx = conn.transaction()?;
    let mut mechs: Vec<(String, u64)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT mech, MAX(seq) FROM events GROUP BY mech")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        for row in rows {
            let (mech, seq) = row?;
            mechs.push((mech, u64::try_from(seq).unwrap_or(0)));
        }
    }
    let mut states = HashMap::new();
    let mut rebuilt = Vec::new();
    for (mech, last_seq) in &mechs {
        let row: Option<(i64, String, String)> = tx
            .query_row("SELECT last_seq, rules_hash, state FROM snapshots WHERE mech = ?1", [mech], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .unwrap_or(None);
        let verdict = match row {
            None => Err("no snapshot".to_owned()),
            Some((seq, _, _)) if u64::try_from(seq).ok() != Some(*last_seq) => {
                Err(format!("snapshot at seq {seq}, log at {last_seq}"))
            }
            Some((_, row_hash, _)) if row_hash != hash => Err("the rules changed".to_owned()),
            Some((_, _, text)) => Snapshot::decode(&text).and_then(|state| {
                if state.mech_id != *mech || state.last_event_seq != *last_seq {
                    Err("the snapshot describes another mech or seq".to_owned())
                } else {
                    Ok(state)
                }
            }),
        };
        let state = match verdict {
            Ok(state) => state,
            Err(why) => {
                let state = replay_state(&mech_lines(&tx, mech)?, mech, rules);
                tx.execute(
                    "INSERT OR REPLACE INTO snapshots (mech, last_seq, rules_hash, state) VALUES (?1, ?2, ?3, ?4)",
                    params![mech, i64::try_from(*last_seq).unwrap_or(i64::MAX), hash, Snapshot::encode(&state)],
                )?;
                rebuilt.push((mech.clone(), why));
                state
            }
        };
        states.insert(mech.clone(), state);
    }
    tx.execute("DELETE FROM snapshots WHERE mech NOT IN (SELECT DISTINCT mech FROM events)", [])?;
    let last: Option<(i64, String)> = tx
        .query_row("SELECT seq, line FROM events ORDER BY seq DESC LIMIT 1", [], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let next_seq = next_seq(&tx)?;
    tx.commit()?;
    let mut last_ts = states.values().filter_map(|s| s.clock).max().unwrap_or(Timestamp(0));
    if let Some(ts) = last.as_ref().and_then(|(_, line)| line_ts(line)) {
        last_ts = last_ts.max(ts);
    }
    states.entry("main".to_owned()).or_insert_with(|| State::initial("main", rules, [None; 10]));
    Ok(Recovered { states, next_seq, last_ts, rebuilt })
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

fn line_ts(line: &str) -> Option<Timestamp> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Timestamp::parse(value.get("ts")?.as_str()?).ok()
}

/// A few read-only connections for the GET endpoints; they never touch the writer's connection
/// (WAL lets them read while it writes).
#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Readers of the database at `path` (opened lazily).
    pub fn new(path: PathBuf) -> Readers {
        Readers { path, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on an idle read-only connection (opening one if none is idle). Blocking.
    ///
    /// # Errors
    /// On a database error.
    pub fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> rusqlite::Result<R> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags)?;
                conn.busy_timeout(Duration::from_secs(5))?;
                conn
            }
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
        result
    }
}

/// The seqs and lines of `mech` above `after_seq`, at most `limit`, in seq order.
///
/// # Errors
/// On a database error.
pub fn lines_after(conn: &Connection, mech: &str, after_seq: u64, limit: u64) -> rusqlite::Result<Vec<(u64, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, line FROM events WHERE mech = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![mech, after, limit], |row| {
        Ok((u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0), row.get::<_, String>(1)?))
    })?;
    rows.collect()
}

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "mechfund.db";

/// The file name of the lock inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// Why [`lock_store`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (a running `mechfund serve`, or an import or restore) holds the lock.
    #[error("the store in {} is in use by a running `mechfund serve` (stop it first)", .0.display())]
    Busy(PathBuf),
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
}

/// Takes the exclusive lock on `dir/lock` (creating the file). The lock is held as long as the
/// returned file is open: `mechfund serve` keeps it for its lifetime, `import` and `restore`
/// while they change the database.
///
/// # Errors
/// [`LockError::Busy`] when another process holds it.
pub fn lock_store(dir: &Path) -> Result<std::fs::File, LockError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LockError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(path, e)),
    }
}

/// Refuses a data dir that held a store whose database is now missing or empty: SQLite would
/// take a 0-byte file as a new database and hand out seq 1 again. The dir was in use when the
/// admin token is there or the lock file (left by every server, import and restore) was there
/// before this process took the lock (`lock_existed`).
///
/// # Errors
/// What happened and what to run, when the store would silently start over.
pub fn check_not_emptied(dir: &Path, lock_existed: bool) -> Result<(), String> {
    let db = dir.join(DB_FILE);
    let what = match std::fs::metadata(&db) {
        Ok(meta) if meta.len() > 0 => return Ok(()),
        Ok(_) => "is empty (0 bytes)",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing",
        Err(e) => return Err(format!("cannot read {}: {e}", db.display())),
    };
    let mut marks: Vec<String> = Vec::new();
    let token = dir.join(super::auth::TOKEN_FILE);
    if token.exists() {
        marks.push(token.display().to_string());
    }
    if lock_existed {
        marks.push(dir.join(LOCK_FILE).display().to_string());
    }
    if marks.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} {what}, but {} held a store ({} is there): it will not silently start over with seq 1. \
         Restore the store with `mechfund restore BACKUP --data {}`, or start a new one in an empty directory",
        db.display(),
        dir.display(),
        marks.join(" and "),
        dir.display()
    ))
}

/// Writes (or replaces) the snapshot of `state`, computed under the rules hashed as `hash`.
///
/// # Errors
/// On a database error.
pub fn write_snapshot(conn: &Connection, state: &State, hash: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO snapshots (mech, last_seq, rules_hash, state) VALUES (?1, ?2, ?3, ?4)",
        params![state.mech_id, i64::try_from(state.last_event_seq).unwrap_or(i64::MAX), hash, Snapshot::encode(state)],
    )?;
    Ok(())
}
