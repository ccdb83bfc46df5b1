//! The store's SQL, written once for both engines: [`Sql`] is a connection or transaction of
//! SQLite or PostgreSQL that runs a statement with `$1, $2, …` placeholders (both engines take
//! them; SQLite numbers them in order of first appearance, so each statement names `$1` first)
//! over the only types the store uses: 64-bit integers, text and bytes.
//!
//! The chain, the snapshots, recovery, import and the writer's idempotency keys run on it; what
//! only one engine has (SQLite's file, pragmas and online backup; PostgreSQL's locks and
//! notifications) stays in that engine's module.

use rusqlite::types::ValueRef;

/// A parameter of a statement.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    /// An integer (`INTEGER` in SQLite, `BIGINT` in PostgreSQL).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes (`BLOB` in SQLite, `BYTEA` in PostgreSQL).
    Bytes(&'a [u8]),
}

impl Param<'_> {
    /// A seq or count as a parameter (saturating: seqs stay below 2^53).
    #[must_use]
    pub fn int(n: u64) -> Param<'static> {
        Param::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// A value read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Value {
    /// The integer, if this is one.
    #[must_use]
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A seq or count: the integer if it is one and not negative.
    #[must_use]
    pub fn seq(&self) -> Option<u64> {
        self.int().and_then(|n| u64::try_from(n).ok())
    }

    /// The text, if this is text.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, or none for anything else.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Bytes(bytes) => bytes,
            _ => Vec::new(),
        }
    }

    /// The text, or "" for anything else.
    #[must_use]
    pub fn into_text(self) -> String {
        match self {
            Value::Text(text) => text,
            _ => String::new(),
        }
    }
}

/// Which engine a connection talks to, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite (one file, one process).
    Sqlite,
    /// PostgreSQL (shared by any number of servers).
    Postgres,
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or the connection to it).
    #[error("{0}")]
    Postgres(#[from] postgres::Error),
    /// The store cannot be reached now (a retry later may succeed).
    #[error("{0}")]
    Unavailable(String),
    /// A value of a type the store never writes: the database was changed outside mechfund.
    #[error("{0}")]
    Unexpected(String),
    /// The store's URL cannot be used (its TLS settings, a root certificate file that cannot be
    /// read): the message says what to change.
    #[error("{0}")]
    Settings(String),
}

impl StoreError {
    /// Whether the store could not be reached (a database restarting, a connection lost), as
    /// opposed to a statement that failed: the request may succeed when retried.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            // No SQLSTATE: the connection itself failed. Class 08: connection exception; 57:
            // operator intervention (the database shutting down, restarting, starting up); 53:
            // insufficient resources (too many connections).
            StoreError::Postgres(e) => {
                e.is_closed() || e.code().is_none_or(|code| matches!(&code.code()[..2], "08" | "57" | "53"))
            }
            StoreError::Sqlite(_) | StoreError::Unexpected(_) | StoreError::Settings(_) => false,
        }
    }
}

/// A connection or transaction of either engine.
pub trait Sql: std::fmt::Debug {
    /// The engine.
    fn engine(&self) -> Engine;

    /// Runs a statement; returns the number of rows it changed.
    ///
    /// # Errors
    /// The engine's error.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;

    /// Calls `f` with each row of a query, in order, until it returns `false`; says whether every
    /// row was seen. Rows are streamed, never all held.
    ///
    /// # Errors
    /// The engine's error.
    fn for_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<bool, StoreError>;

    /// Calls `f` with the first column's text of each row of a query, in order, until it returns
    /// `false`; says whether every row was seen. For the log's lines: an engine may lend the text
    /// instead of copying it for every row.
    ///
    /// # Errors
    /// The engine's error.
    fn for_each_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, StoreError> {
        self.for_each(sql, params, &mut |row| f(row[0].text().unwrap_or_default()))
    }

    /// Every row of a query.
    ///
    /// # Errors
    /// The engine's error.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut rows = Vec::new();
        self.for_each(sql, params, &mut |row| {
            rows.push(row.to_vec());
            true
        })?;
        Ok(rows)
    }

    /// The first row of a query, if any.
    ///
    /// # Errors
    /// The engine's error.
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Vec<Value>>, StoreError> {
        let mut first = None;
        self.for_each(sql, params, &mut |row| {
            first = Some(row.to_vec());
            false
        })?;
        Ok(first)
    }
}

/// A SQLite connection (or transaction: it derefs to its connection) as [`Sql`].
#[derive(Debug)]
pub struct Sqlite<'c>(pub &'c rusqlite::Connection);

fn sqlite_params<'a>(params: &'a [Param<'a>]) -> impl Iterator<Item = rusqlite::types::ToSqlOutput<'a>> + 'a {
    params.iter().map(|p| match p {
        Param::Int(n) => rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Integer(*n)),
        Param::Text(t) => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        Param::Bytes(b) => rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Blob(b)),
    })
}

impl Sql for Sqlite<'_> {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let changed = self.0.prepare_cached(sql)?.execute(rusqlite::params_from_iter(sqlite_params(params)))?;
        Ok(changed as u64)
    }

    fn for_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(sqlite_params(params)))?;
        let mut values = Vec::with_capacity(columns);
        while let Some(row) = rows.next()? {
            values.clear();
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(bytes) => Value::Text(
                        std::str::from_utf8(bytes)
                            .map_err(|e| StoreError::Unexpected(format!("text that is not UTF-8: {e}")))?
                            .to_owned(),
                    ),
                    ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
                    ValueRef::Real(_) => return Err(StoreError::Unexpected("a value of type REAL".to_owned())),
                });
            }
            if !f(&values) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn for_each_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sqlite_params(params)))?;
        while let Some(row) = rows.next()? {
            let text = match row.get_ref(0)? {
                ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                    .map_err(|e| StoreError::Unexpected(format!("text that is not UTF-8: {e}")))?,
                ValueRef::Null => "",
                other => return Err(StoreError::Unexpected(format!("a value of type {}", other.data_type()))),
            };
            if !f(text) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
