//! The read connections of the GET endpoints, the exports and the event streams: a few
//! read-only SQLite connections (WAL lets them read while the writer writes), or a pool of
//! PostgreSQL connections.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::postgres::{Pg, PgPool};
use super::sql::{Sql, Sqlite, StoreError};

/// Where reads go.
#[derive(Debug)]
pub enum Readers {
    /// Read-only connections to a SQLite file, opened lazily, at most 8 kept idle.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Connections not in use.
        idle: Mutex<Vec<Connection>>,
    },
    /// A pool of PostgreSQL connections.
    Postgres(PgPool),
}

impl Readers {
    /// Readers of the SQLite database at `path`.
    #[must_use]
    pub fn new(path: PathBuf) -> Readers {
        Readers::Sqlite { path, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on a read connection. Blocking. Each statement is one consistent read.
    ///
    /// # Errors
    /// On a database error, or no connection to be had.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>) -> Result<R, StoreError> {
        match self {
            Readers::Sqlite { path, idle } => {
                let reused = idle.lock().ok().and_then(|mut idle| idle.pop());
                let conn = match reused {
                    Some(conn) => conn,
                    None => {
                        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                        let conn = Connection::open_with_flags(path, flags)?;
                        conn.busy_timeout(Duration::from_secs(5))?;
                        conn
                    }
                };
                let result = f(&mut Sqlite(&conn));
                if let Ok(mut idle) = idle.lock()
                    && idle.len() < 8
                {
                    idle.push(conn);
                }
                result
            }
            Readers::Postgres(pool) => {
                let mut client = pool.get()?;
                f(&mut Pg::new(&mut *client))
            }
        }
    }
}
