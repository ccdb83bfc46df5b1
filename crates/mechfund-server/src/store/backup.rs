//! Backup and restore of the SQLite store.
//!
//! - [`backup`] is SQLite's online backup into a new file, fine while a server runs.
//! - [`restore`] is the documented procedure made safe (the caller holds the store's lock, so no
//!   server runs): copy the backup next to the database, check it is a mechfund store, keep the
//!   seqs rising above what the replaced database handed out, move the old database (and its
//!   `-wal`) aside, drop the stale `-shm`, and rename the copy into place.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::dir::DB_FILE;
use super::log::{next_seq, raise_seq_floor};

/// Copies the store open on `src` into the new file `path` (journal mode DELETE, so the backup
/// is one self-contained file) and checks the copy; returns its number of events.
///
/// # Errors
/// A database failure or a copy that is not a sound store (the caller removes `path`).
pub fn backup(src: &Connection, path: &Path) -> Result<i64, String> {
    copy_pages(src, path).map_err(|e| e.to_string())?;
    let dst = Connection::open(path).map_err(|e| e.to_string())?;
    let events = check_store(&dst)?;
    dst.close().map_err(|(_, e)| e.to_string())?;
    Ok(events)
}

fn copy_pages(src: &Connection, path: &Path) -> rusqlite::Result<()> {
    let mut dst = Connection::open(path)?;
    {
        let backup = Backup::new(src, &mut dst)?;
        // All pages in one step: one read transaction on the source, so a writer committing
        // meanwhile cannot make the copy restart.
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => sleep(Duration::from_millis(20)),
                // The enum is non-exhaustive.
                _ => sleep(Duration::from_millis(20)),
            }
        }
    }
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    dst.close().map_err(|(_, e)| e)
}

/// Checks that `conn` is a sound mechfund store; returns its number of events.
fn check_store(conn: &Connection) -> Result<i64, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let check: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(sql)?;
    if check != "ok" {
        return Err(format!("integrity check failed: {check}"));
    }
    super::check_version(conn).map_err(|e| e.to_string())?;
    conn.prepare("SELECT seq, mech, line FROM events LIMIT 1").map_err(sql)?;
    conn.prepare("SELECT mech, last_seq, rules_hash, state FROM snapshots LIMIT 1").map_err(sql)?;
    conn.prepare("SELECT key, request_hash, status, body FROM idempotency LIMIT 1").map_err(sql)?;
    conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0)).map_err(sql)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The database replaced.
    pub db: PathBuf,
    /// Events in the restored store.
    pub events: i64,
    /// The seq the next event gets.
    pub next_seq: u64,
    /// Where the previous database is kept, if there was one.
    pub kept: Option<PathBuf>,
    /// Said on stderr: the previous database's last seq could not be read.
    pub warning: Option<String>,
}

/// Replaces `data/mechfund.db` by a checked copy of `backup`; the caller holds the store's lock.
///
/// The previous database, if any, is kept as `mechfund.db.before-restore-<unix seconds>` (with
/// its `-wal`). Seqs keep rising: the events written after the backup are gone, but their seqs
/// are not given to new events (a client may still hold one, say to toggle a deletion), so the
/// next event continues above the previous database's.
///
/// # Errors
/// `backup` is not a mechfund store, or an I/O failure; the message says which file.
pub fn restore(backup: &Path, data: &Path) -> Result<Restored, String> {
    let db = data.join(DB_FILE);
    let mut warning = None;
    // The seqs the database being replaced handed out (read before it is moved aside).
    let handed_out = if db.exists() {
        match Connection::open(&db).and_then(|conn| next_seq(&conn)) {
            Ok(next) => Some(next),
            Err(e) => {
                warning = Some(format!(
                    "cannot read the last seq of {} ({e}); new events continue after the backup's last seq, so \
                     seqs of events written after the backup may be given out again",
                    db.display()
                ));
                None
            }
        }
    } else {
        None
    };
    let staged = sidecar(&db, ".restoring");
    for path in [staged.clone(), sidecar(&staged, "-wal"), sidecar(&staged, "-shm")] {
        remove_if_exists(&path)?;
    }
    std::fs::copy(backup, &staged)
        .map_err(|e| format!("cannot copy {} to {}: {e}", backup.display(), staged.display()))?;
    let checked = Connection::open_with_flags(&staged, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| e.to_string())
        .and_then(|conn| {
            let events = check_store(&conn)?;
            if let Some(next) = handed_out {
                raise_seq_floor(&conn, next).map_err(|e| e.to_string())?;
            }
            let next = next_seq(&conn).map_err(|e| e.to_string())?;
            conn.pragma_update(None, "journal_mode", "DELETE").map_err(|e| e.to_string())?;
            conn.close().map_err(|(_, e)| e.to_string())?;
            File::open(&staged).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
            Ok((events, next))
        });
    let (events, next_seq) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            for path in [staged.clone(), sidecar(&staged, "-wal"), sidecar(&staged, "-shm")] {
                let _ = std::fs::remove_file(path);
            }
            return Err(format!("{} is not a usable mechfund store: {e}", backup.display()));
        }
    };
    let mut kept = None;
    if db.exists() {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let aside = sidecar(&db, &format!(".before-restore-{secs}"));
        rename(&db, &aside)?;
        if sidecar(&db, "-wal").exists() {
            rename(&sidecar(&db, "-wal"), &sidecar(&aside, "-wal"))?;
        }
        kept = Some(aside);
    }
    // A stale -wal or -shm must never be applied to the restored file.
    remove_if_exists(&sidecar(&db, "-wal"))?;
    remove_if_exists(&sidecar(&db, "-shm"))?;
    rename(&staged, &db)?;
    if let Ok(dir) = File::open(data) {
        let _ = dir.sync_all();
    }
    Ok(Restored { db, events, next_seq, kept, warning })
}

fn remove_if_exists(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to).map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
}
