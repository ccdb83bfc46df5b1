//! The data directory: its files (the database, the lock, the admin token), the exclusive lock
//! a server, an import and a restore hold, and the refusal of a store that was emptied.

use std::path::{Path, PathBuf};

/// The file name of the admin token inside the data directory.
pub const TOKEN_FILE: &str = "admin-token";

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
    let token = dir.join(TOKEN_FILE);
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

#[cfg(test)]
mod tests {
    use super::check_not_emptied;

    #[test]
    fn a_data_dir_that_held_a_store_does_not_start_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "a new directory is a new store");
        std::fs::write(dir.path().join("mechfund.db"), b"").expect("write");
        assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "an empty database alone is a new store");
        let error = check_not_emptied(dir.path(), true).expect_err("the lock file was there");
        assert!(error.contains("is empty (0 bytes)") && error.contains("lock"), "{error}");
        std::fs::write(dir.path().join("admin-token"), "t").expect("write");
        let error = check_not_emptied(dir.path(), false).expect_err("the token is there");
        assert!(error.contains("admin-token"), "{error}");
        std::fs::remove_file(dir.path().join("mechfund.db")).expect("remove");
        assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "a token put there for a first start");
        assert!(check_not_emptied(dir.path(), true).expect_err("missing").contains("is missing"));
        std::fs::write(dir.path().join("mechfund.db"), b"SQLite format 3\0").expect("write");
        assert_eq!(check_not_emptied(dir.path(), true), Ok(()));
    }
}
