//! The store's admin commands: `import`, `export`, `backup` and `restore` (spec §3.2).
//!
//! - `import` fills mechs that have no events yet from a DDC `events.jsonl`: every line parsed
//!   with the core, seqs kept as written (strictly increasing), lines stored byte for byte, the
//!   snapshots of the imported mechs written, all in one transaction. It takes the store's lock,
//!   so it refuses while `mechfund serve` runs (and a server refuses to start during an import).
//! - `export` prints the stored lines, byte for byte, over a read-only connection (a running
//!   server is no obstacle).
//! - `backup` is SQLite's online backup into a new file, also fine while a server runs.
//! - `restore` is the documented procedure made safe: with the lock held (so no server runs),
//!   copy the backup next to the database, check it is a mechfund store, move the old database
//!   (and its `-wal`) aside, drop the stale `-shm`, and rename the copy into place.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use super::error::CliError;
use super::output::{bytes_bar, print_json};
use super::rules::load_rules;
use crate::pipeline::for_each_block;
use crate::store::backup::{backup, restore};
use crate::store::postgres::{self, Pg};
use crate::store::verify::{Verified, verify};
use crate::store::{
    Chain, DB_FILE, ImportError, Importer, Journal, LOCK_FILE, LockError, Param, Sql, Sqlite, SqliteJournal,
    StoreError, Value, check_not_emptied, check_version, lock_store, open_writer,
};

/// Arguments of `mechfund import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The DDC events.jsonl to import; `-` for stdin; `.gz` files are decompressed.
    file: PathBuf,
    /// Directory of the database (`mechfund.db`); created if missing.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// A PostgreSQL store instead of `--data`: `postgres://USER@HOST/DB`.
    #[arg(long, value_name = "URL", conflicts_with = "data")]
    store: Option<String>,
    /// Rules JSON the snapshots are computed under (a server started with other rules rebuilds
    /// them by replay); defaults when omitted.
    #[arg(long, value_name = "R.json")]
    rules: Option<PathBuf>,
}

/// Arguments of `mechfund export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory of the database (`mechfund.db`).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// A PostgreSQL store instead of `--data`: `postgres://USER@HOST/DB`.
    #[arg(long, value_name = "URL", conflicts_with = "data")]
    store: Option<String>,
    /// Only this mech's lines (default: every mech, in seq order).
    #[arg(long)]
    mech: Option<String>,
}

/// Arguments of `mechfund backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to create (must not exist).
    path: PathBuf,
    /// Directory of the database (`mechfund.db`).
    #[arg(long, default_value = "data")]
    data: PathBuf,
}

/// Arguments of `mechfund restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `mechfund backup`.
    backup: PathBuf,
    /// Directory of the database (`mechfund.db`); created if missing.
    #[arg(long, default_value = "data")]
    data: PathBuf,
}

/// `--store URL`: a PostgreSQL store instead of the SQLite one in `--data`. (Only `serve` reads
/// `MECHFUND_STORE` too: a store command acts on the store its arguments name.)
///
/// # Errors
/// [`CliError::Usage`] for a URL that is not a PostgreSQL URL.
pub fn postgres_url(given: Option<&str>) -> Result<Option<String>, CliError> {
    if let Some(url) = given {
        postgres::check_url(url).map_err(|e| CliError::Usage(format!("--store: {e}")))?;
    }
    Ok(given.map(str::to_owned))
}

/// A read transaction on the PostgreSQL store at `url` that sees one moment of it (of a schema
/// this mechfund knows).
fn postgres_read(client: &mut ::postgres::Client) -> Result<::postgres::Transaction<'_>, StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(::postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    postgres::check_version(&mut tx)?;
    Ok(tx)
}

fn failed(message: impl Into<String>) -> CliError {
    CliError::Failed(message.into())
}

fn db_error<E: std::fmt::Display>(what: &str, path: &Path) -> impl Fn(E) -> CliError {
    let prefix = format!("{what} {}", path.display());
    move |e| failed(format!("{prefix}: {e}"))
}

fn lock(dir: &Path) -> Result<File, CliError> {
    lock_store(dir).map_err(|e| match e {
        LockError::Busy(_) => failed(e.to_string()),
        LockError::Io(..) => failed(e.to_string()),
    })
}

/// Opens an existing database read-only.
fn open_read_only(data: &Path) -> Result<(Connection, PathBuf), CliError> {
    let db = data.join(DB_FILE);
    if !db.is_file() {
        return Err(CliError::Usage(format!("no store at {}", db.display())));
    }
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(db_error("cannot open", &db))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_error("cannot open", &db))?;
    check_version(&conn).map_err(db_error("cannot read", &db))?;
    Ok((conn, db))
}

// ---------------------------------------------------------------------------------------------
// verify --data

/// `mechfund verify --data DIR`: checks the store as start-up does, without changing it (also
/// while a server runs): every event row's hash in seq order, the recorded last row, and each
/// mech's snapshot against its digest. Prints a JSON report; exit 1 when anything is damaged.
///
/// # Errors
/// No store, or a database error.
pub fn verify_store(data: &Path) -> Result<std::process::ExitCode, CliError> {
    let (conn, db) = open_read_only(data)?;
    let read = db_error("cannot read", &db);
    // One read transaction: a consistent view even while a server appends.
    conn.execute_batch("BEGIN").map_err(&read)?;
    let verified = verify(&mut Sqlite(&conn)).map_err(db_error("cannot read", &db))?;
    let restore = format!("restore a backup: mechfund restore BACKUP --data {}", data.display());
    report_verified(verified, &db.display().to_string(), &restore)
}

/// `mechfund verify --store URL`: [`verify_store`] of a PostgreSQL store, in one snapshot of it.
///
/// # Errors
/// The store cannot be reached or read.
pub fn verify_postgres(url: &str) -> Result<std::process::ExitCode, CliError> {
    let name = postgres::redacted(url);
    let mut client = postgres::client(url).map_err(|e| failed(format!("cannot connect to {name}: {e}")))?;
    let mut tx = postgres_read(&mut client).map_err(|e| failed(format!("cannot read {name}: {e}")))?;
    let verified = verify(&mut Pg::new(&mut tx)).map_err(|e| failed(format!("cannot read {name}: {e}")))?;
    let restore = "restore a backup with PostgreSQL's tools (pg_restore, or point-in-time recovery)";
    report_verified(verified, &name, restore)
}

/// Prints the report; exit 1 with what to do when anything is damaged.
fn report_verified(mut verified: Verified, name: &str, restore: &str) -> Result<std::process::ExitCode, CliError> {
    verified.report["store"] = json!(name);
    print_json(&verified.report)?;
    if verified.rows_damaged {
        eprintln!("mechfund: the event rows of {name} are damaged; {restore}");
        return Ok(std::process::ExitCode::from(1));
    }
    if verified.bad_snapshots > 0 {
        eprintln!(
            "mechfund: {} snapshot(s) do not match the log; the server rebuilds them from it at start",
            verified.bad_snapshots
        );
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// import

/// The input of `import`, and its size when known (for the progress bar).
fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, u64), CliError> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin()), 0));
    }
    let file = File::open(path).map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        return Ok((Box::new(flate2::read::MultiGzDecoder::new(file)), 0));
    }
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((Box::new(file), size))
}

/// `mechfund import FILE [--data DIR] [--rules R.json]`.
///
/// # Errors
/// A bad line (`line N: why`), a seq out of order or already stored, a mech that already has
/// events, a store in use, or an I/O or database failure: nothing is imported.
pub fn import_command(args: &ImportArgs) -> Result<std::process::ExitCode, CliError> {
    let rules = load_rules(args.rules.as_deref())?;
    let url = postgres_url(args.store.as_deref())?;
    let (input, size) = open_input(&args.file)?;
    // SQLite: the store's lock (no server may run meanwhile). PostgreSQL: the store's write
    // lock, held by the import's transaction (servers wait for it, then catch up).
    let mut lock = None;
    let (mut journal, name): (Box<dyn Journal>, String) = match &url {
        Some(url) => {
            let name = postgres::redacted(url);
            let journal = postgres::connect(url).map_err(|e| failed(format!("cannot open {name}: {e}")))?;
            (Box::new(journal), name)
        }
        None => {
            std::fs::create_dir_all(&args.data)
                .map_err(|e| failed(format!("cannot create {}: {e}", args.data.display())))?;
            let lock_existed = args.data.join(LOCK_FILE).exists();
            lock = Some(self::lock(&args.data)?);
            check_not_emptied(&args.data, lock_existed).map_err(failed)?;
            let db = args.data.join(DB_FILE);
            let conn = open_writer(&db).map_err(db_error("cannot open", &db))?;
            (Box::new(SqliteJournal(conn)), db.display().to_string())
        }
    };
    let mut tx = journal.begin().map_err(|e| failed(format!("cannot write to {name}: {e}")))?;
    let bar = bytes_bar(size, size, "importing".to_owned());
    let mut importer = Importer::new(&mut *tx, None).map_err(|e| failed(format!("cannot read {name}: {e}")))?;
    let read = for_each_block(input, |block| {
        importer.block(block).map_err(|e| import_failed(e, &name))?;
        bar.inc(block.len() as u64);
        Ok::<_, CliError>(())
    });
    bar.finish_and_clear();
    read?;
    let mechs = importer.finish(&rules).map_err(|e| import_failed(e, &name))?;
    let head = Chain::head(&mut *tx).map_err(|e| failed(format!("cannot read {name}: {e}")))?;
    tx.commit(head.seq).map_err(|e| failed(format!("cannot commit to {name}: {e}")))?;
    drop(lock);
    let total: u64 = mechs.values().map(|m| m.events).sum();
    let detail: Vec<String> =
        mechs.iter().map(|(mech, m)| format!("{mech}: {} (seq {}..={})", m.events, m.first_seq, m.last_seq)).collect();
    let detail = if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) };
    println!("imported {total} events into {name}{detail}");
    Ok(std::process::ExitCode::SUCCESS)
}

fn import_failed(e: ImportError, name: &str) -> CliError {
    match e {
        ImportError::Store(e) => failed(format!("cannot import into {name}: {e}")),
        other => failed(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// export

/// `mechfund export [--data DIR] [--mech M]`: the stored lines, byte for byte, each followed by
/// a newline, in seq order.
///
/// # Errors
/// No store, a database failure, or stdout failing.
pub fn export_command(args: &ExportArgs) -> Result<std::process::ExitCode, CliError> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match postgres_url(args.store.as_deref())? {
        Some(url) => {
            let name = postgres::redacted(&url);
            let read = |e: StoreError| failed(format!("cannot read {name}: {e}"));
            let mut client = postgres::client(&url).map_err(read)?;
            // One snapshot: a consistent export even while servers append.
            let mut tx = postgres_read(&mut client).map_err(read)?;
            export_lines(&mut Pg::new(&mut tx), args.mech.as_deref(), &mut out).map_err(|e| e.or_else(read))?;
        }
        None => {
            let (conn, db) = open_read_only(&args.data)?;
            let read = db_error("cannot read", &db);
            // One read transaction: a consistent export even while a server appends.
            conn.execute_batch("BEGIN").map_err(&read)?;
            export_lines(&mut Sqlite(&conn), args.mech.as_deref(), &mut out)
                .map_err(|e| e.or_else(db_error("cannot read", &db)))?;
        }
    }
    out.flush()?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Why an export stopped: writing the output failed, or reading the store did.
enum ExportFailed {
    Output(io::Error),
    Store(StoreError),
}

impl ExportFailed {
    fn or_else(self, store: impl Fn(StoreError) -> CliError) -> CliError {
        match self {
            ExportFailed::Output(e) => CliError::Io(e),
            ExportFailed::Store(e) => store(e),
        }
    }
}

/// Writes every line (of `mech`, or of all mechs) in seq order, each followed by a newline.
fn export_lines(db: &mut dyn Sql, mech: Option<&str>, out: &mut impl Write) -> Result<(), ExportFailed> {
    let mut written = Ok(());
    let mut write = |row: &[Value]| {
        let line = row[0].text().unwrap_or_default();
        written = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
        written.is_ok()
    };
    let read = match mech {
        Some(mech) => {
            db.for_each("SELECT line FROM events WHERE mech = $1 ORDER BY seq", &[Param::Text(mech)], &mut write)
        }
        None => db.for_each("SELECT line FROM events ORDER BY seq", &[], &mut write),
    };
    written.map_err(ExportFailed::Output)?;
    read.map_err(ExportFailed::Store)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// backup and restore

/// `mechfund backup PATH [--data DIR]`: SQLite's online backup into a new file (journal mode
/// DELETE, so the backup is one self-contained file).
///
/// # Errors
/// PATH exists, no store, or a database failure (PATH is then removed).
pub fn backup_command(args: &BackupArgs) -> Result<std::process::ExitCode, CliError> {
    let (src, db) = open_read_only(&args.data)?;
    // Created here, atomically, so an existing file is never overwritten.
    std::fs::OpenOptions::new().write(true).create_new(true).open(&args.path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            failed(format!("{} already exists; a backup never overwrites a file", args.path.display()))
        } else {
            failed(format!("cannot create {}: {e}", args.path.display()))
        }
    })?;
    match backup(&src, &args.path) {
        Ok(events) => {
            println!("backed up {events} events from {} to {}", db.display(), args.path.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&args.path);
            Err(failed(format!("backup of {} into {} failed: {e}", db.display(), args.path.display())))
        }
    }
}

/// `mechfund restore BACKUP [--data DIR]`: with the store's lock held (no server running),
/// replaces `DIR/mechfund.db` by a checked copy of BACKUP. The previous database, if any, is
/// kept as `mechfund.db.before-restore-<unix seconds>` (with its `-wal`). Seqs keep rising: the
/// events written after the backup are gone, but their seqs are not given to new events (a
/// client may still hold one, say to toggle a deletion), so the next event continues above the
/// previous database's.
///
/// # Errors
/// The store in use, BACKUP unreadable or not a mechfund store, or an I/O failure.
pub fn restore_command(args: &RestoreArgs) -> Result<std::process::ExitCode, CliError> {
    if !args.backup.is_file() {
        return Err(CliError::Usage(format!("no backup file at {}", args.backup.display())));
    }
    std::fs::create_dir_all(&args.data).map_err(|e| failed(format!("cannot create {}: {e}", args.data.display())))?;
    let _lock = lock(&args.data)?;
    let restored = restore(&args.backup, &args.data).map_err(failed)?;
    if let Some(warning) = &restored.warning {
        eprintln!("mechfund: warning: {warning}");
    }
    println!(
        "restored {} events from {} into {}; the next event gets seq {}",
        restored.events,
        args.backup.display(),
        restored.db.display(),
        restored.next_seq
    );
    if let Some(aside) = restored.kept {
        println!("the previous database is kept as {}", aside.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}
