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

/// Whether the stored snapshot of `mech` is the state after its last event `last_seq`: at that
/// seq, matching its digest, and decodable. The rules it was computed under are not checked.
///
/// # Errors
/// On a database error; the inner `Err` says what is wrong with the snapshot.
pub fn check_snapshot(
    conn: &Connection,
    mech: &str,
    last_seq: u64,
) -> rusqlite::Result<Result<(State, String), String>> {
    let row: Option<(i64, String, String, Option<String>)> = conn
        .query_row("SELECT last_seq, rules_hash, state, digest FROM snapshots WHERE mech = ?1", [mech], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()
        .unwrap_or(None);
    let Some((seq, rules_hash, text, digest)) = row else { return Ok(Err("no snapshot".to_owned())) };
    if u64::try_from(seq).ok() != Some(last_seq) {
        return Ok(Err(format!("snapshot at seq {seq}, log at {last_seq}")));
    }
    if digest != Some(snapshot_digest(&hash_at(conn, last_seq)?, &text)) {
        return Ok(Err(
            "the snapshot does not match its digest: it was edited, or not computed from this log".to_owned()
        ));
    }
    Ok(Snapshot::decode(&text).and_then(|state| {
        if state.mech_id != mech || state.last_event_seq != last_seq {
            Err("the snapshot describes another mech or seq".to_owned())
        } else {
            Ok((state, rules_hash))
        }
    }))
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

/// The digest a snapshot row carries: sha256 over the hash of the event row it was computed up
/// to and the state's text, so an edited snapshot (or one of another log) is noticed.
#[must_use]
pub fn snapshot_digest(row_hash: &str, state_text: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mechfund-snapshot\n");
    h.update(row_hash.as_bytes());
    h.update(b"\n");
    h.update(state_text.as_bytes());
    hex(&h.finalize())
}

fn hash_at(conn: &Connection, seq: u64) -> rusqlite::Result<String> {
    let hash: Option<Option<String>> = conn
        .query_row("SELECT hash FROM events WHERE seq = ?1", [i64::try_from(seq).unwrap_or(i64::MAX)], |row| row.get(0))
        .optional()?;
    Ok(hash.flatten().unwrap_or_default())
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
    /// Where the event rows stop adding up, if they do: the store then takes no writes.
    pub damage: Option<Damage>,
}

/// Loads each mech's snapshot, checks it against the log and the rules, rebuilds what disagrees
/// (writing the rebuilt snapshot back) and finds the next seq and the latest timestamp.
///
/// # Errors
/// On a database error.
pub fn recover(conn: &mut Connection, rules: &Rules) -> rusqlite::Result<Recovered> {
    let hash = rules_hash(rules);
    let tx = conn.transaction()?;
    // The cheap half of the chain's check (the end; a store from before the chain is chained);
    // the writer checks every row before its first write, off the start-up path.
    let damage = check_chain_end(&tx)?.err();
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
        let verdict = match check_snapshot(&tx, mech, *last_seq)? {
            Ok((_, row_hash)) if row_hash != hash => Err("the rules changed".to_owned()),
            other => other.map(|(state, _)| state),
        };
        let state = match verdict {
            Ok(state) => state,
            Err(why) => {
                let state = replay_state(&mech_lines(&tx, mech)?, mech, rules);
                write_snapshot(&tx, &state, &hash)?;
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
    Ok(Recovered { states, next_seq, last_ts, rebuilt, damage })
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
/// admin token is there (beside an empty database) or the lock file (left by every server, import and restore) was there
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
    // A token beside no database at all may be one put there for a first start.
    if token.exists() && what != "is missing" {
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
    let text = Snapshot::encode(state);
    let digest = snapshot_digest(&hash_at(conn, state.last_event_seq)?, &text);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO snapshots (mech, last_seq, rules_hash, state, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        state.mech_id,
        i64::try_from(state.last_event_seq).unwrap_or(i64::MAX),
        hash,
        text,
        digest
    ])?;
    Ok(())
}
