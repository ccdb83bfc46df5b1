//! Which store the suites' servers keep their events in. SQLite (a `mechfund.db` in the data
//! dir) unless `MECHFUND_TEST_STORE=postgres`: then each [`DataDir`] (and each in-process app)
//! comes with a PostgreSQL [`Database`] of its own, and every server started on that dir, every
//! restart and every store command (`import`, `export`, `verify`) uses it. `cargo xtask test`
//! runs the store's suites both ways.
//!
//! A test that is about the SQLite file itself (its lock, `backup`/`restore`, an emptied file,
//! a WAL checkpoint, a pre-chain schema) takes a plain `tempfile::tempdir()`, which always means
//! SQLite, and lives in a `sqlite_file` module, which the PostgreSQL run skips.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Whether the suite runs against PostgreSQL (`MECHFUND_TEST_STORE=postgres`), else SQLite.
#[must_use]
pub fn on_postgres() -> bool {
    match std::env::var("MECHFUND_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("MECHFUND_TEST_STORE={other:?}: give sqlite or postgres"),
    }
}

/// A PostgreSQL cluster with one database, owned by a thread of its own: the cluster's
/// postmaster dies with the thread that started it (`mechfund-pgtest`), and a test's thread or
/// runtime may not live as long as the servers on it and their restarts. Dropped, it stops the
/// cluster and removes its files.
#[derive(Debug)]
pub struct Database {
    url: String,
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    owner: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Database {
    /// A new cluster (in `TMPDIR`, on a free port) with a database `mechfund`.
    pub fn start() -> Database {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let owner = std::thread::spawn(move || {
            let started = mechfund_pgtest::Cluster::start().and_then(|cluster| {
                let url = cluster.create_database("mechfund")?;
                Ok((cluster, url))
            });
            match started {
                Ok((cluster, url)) => {
                    ready_tx.send(Ok(url)).unwrap();
                    // Until the Database is dropped (or the test process ends).
                    let _ = stopped.recv();
                    drop(cluster);
                }
                Err(e) => ready_tx.send(Err(e)).unwrap(),
            }
        });
        let url = ready.recv().unwrap().unwrap_or_else(|e| panic!("start PostgreSQL: {e}"));
        Database { url, stop: Mutex::new(Some(stop)), owner: Mutex::new(Some(owner)) }
    }

    /// `postgres://…`, as `--store` takes it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` on the database; the rows it changed or returned.
    pub fn execute(&self, sql: &str) -> u64 {
        let sql = sql.to_owned();
        self.with_client(move |client| client.execute(sql.as_str(), &[]).unwrap())
    }

    /// The first column of the one row `sql` returns.
    pub fn query<T>(&self, sql: &str) -> T
    where
        T: for<'a> mechfund_pgtest::postgres::types::FromSql<'a> + Send + 'static,
    {
        let sql = sql.to_owned();
        self.with_client(move |client| client.query_one(sql.as_str(), &[]).unwrap().get(0))
    }

    /// `f` with a connection, on a thread with no runtime: the sync client runs its own.
    fn with_client<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut mechfund_pgtest::postgres::Client) -> T + Send + 'static,
    ) -> T {
        let url = self.url.clone();
        std::thread::spawn(move || {
            f(&mut mechfund_pgtest::postgres::Client::connect(&url, mechfund_pgtest::postgres::NoTls).unwrap())
        })
        .join()
        .unwrap()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        if let Some(owner) = self.owner.lock().unwrap().take() {
            let _ = owner.join();
        }
    }
}

/// The databases of the live [`DataDir`]s, by data dir.
static DATABASES: Mutex<Option<HashMap<PathBuf, Arc<Database>>>> = Mutex::new(None);

/// A test's data dir (a temp dir, removed when dropped), and on PostgreSQL its database (stopped
/// when dropped). [`crate::common::Server`] and [`DataDir::store_args`] find the database from the
/// data dir's path, so a test passes paths around as it would with SQLite alone.
pub struct DataDir {
    dir: tempfile::TempDir,
    database: Option<Arc<Database>>,
}

impl DataDir {
    /// On the store the suite runs against.
    #[allow(clippy::new_without_default, reason = "starting a database is no default")]
    pub fn new() -> DataDir {
        let dir = tempfile::tempdir().unwrap();
        let database = on_postgres().then(|| Arc::new(Database::start()));
        if let Some(database) = &database {
            DATABASES.lock().unwrap().get_or_insert_default().insert(dir.path().to_owned(), Arc::clone(database));
        }
        DataDir { dir, database }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL database, on PostgreSQL.
    pub fn database(&self) -> Option<&Database> {
        self.database.as_deref()
    }

    /// Runs one SQL statement on the store (the SQLite file, or the database) and returns the
    /// rows it changed: damage done behind the server's back.
    pub fn execute(&self, sql: &str) -> u64 {
        match &self.database {
            Some(database) => database.execute(sql),
            None => {
                let conn = rusqlite::Connection::open(self.path().join(mechfund_server::store::DB_FILE)).unwrap();
                conn.execute(sql, []).unwrap() as u64
            }
        }
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Some(databases) = DATABASES.lock().unwrap().as_mut() {
            databases.remove(self.dir.path());
        }
        // The servers and commands on the dir were given its database, not the file.
        let file = self.dir.path().join(mechfund_server::store::DB_FILE);
        if self.database.is_some() && !std::thread::panicking() {
            assert!(!file.exists(), "{} was made on PostgreSQL", file.display());
        }
    }
}

/// The PostgreSQL database of the [`DataDir`] that holds `data` (or is it), if any.
pub fn database_of(data: &Path) -> Option<Arc<Database>> {
    let databases = DATABASES.lock().unwrap();
    let databases = databases.as_ref()?;
    data.ancestors().find_map(|dir| databases.get(dir).cloned())
}

/// The arguments naming the store of `data` to `mechfund import`, `export` and `verify`:
/// `--store URL` on PostgreSQL, else `--data DIR`.
pub fn store_args(data: &Path) -> Vec<OsString> {
    match database_of(data) {
        Some(database) => vec!["--store".into(), database.url().into()],
        None => vec!["--data".into(), data.into()],
    }
}
