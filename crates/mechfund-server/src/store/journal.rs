//! The writer's side of a store: one transaction per group of requests ([`Journal::begin`]),
//! committed with the chain's new end. SQLite's journal is the only writer of its file; a
//! PostgreSQL journal is one of any number of servers sharing the database, so it begins by
//! taking the store's write lock and the writer then catches up with what the others committed
//! ([`Journal::shared`]).

use super::sql::{Engine, Param, Sql, Sqlite, StoreError};

/// A write transaction: [`Sql`] plus commit. Dropped without [`WriteTx::commit`], it rolls back.
pub trait WriteTx: Sql {
    /// Commits; `head` is the seq of the last event row after the commit (other servers of a
    /// shared store are told it).
    ///
    /// # Errors
    /// The engine's error: the transaction may or may not have committed when the connection
    /// failed during the commit, so the caller answers 503 and a retry with the same
    /// `Idempotency-Key` gets the first answer if it did.
    fn commit(self: Box<Self>, head: u64) -> Result<(), StoreError>;
}

/// The writer's connection to a store.
pub trait Journal: Send {
    /// Begins a write transaction (with a shared store: after taking its write lock, held until
    /// the transaction ends, so writes of every server are serialised and seqs commit in order).
    ///
    /// # Errors
    /// The engine's error.
    fn begin(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError>;

    /// Begins a transaction that only reads, in one consistent view of the store and without its
    /// write lock (checking the whole chain must not hold up the other servers' writes).
    ///
    /// # Errors
    /// The engine's error.
    fn begin_read(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError>;

    /// Whether other servers write to this store too: the writer then checks, in each
    /// transaction, what they committed since its last one.
    fn shared(&self) -> bool;

    /// Connects again after the connection failed (PostgreSQL restarted); SQLite never needs to.
    ///
    /// # Errors
    /// The engine's error: the store is still unreachable.
    fn reconnect(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The writer's SQLite connection (the store's lock file makes it the only writer).
#[derive(Debug)]
pub struct SqliteJournal(pub rusqlite::Connection);

/// A SQLite write transaction (`BEGIN IMMEDIATE`).
#[derive(Debug)]
struct SqliteTx<'c>(rusqlite::Transaction<'c>);

impl Sql for SqliteTx<'_> {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        Sqlite(&self.0).execute(sql, params)
    }

    fn for_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&[super::sql::Value]) -> bool,
    ) -> Result<bool, StoreError> {
        Sqlite(&self.0).for_each(sql, params, f)
    }

    fn for_each_text(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, StoreError> {
        Sqlite(&self.0).for_each_text(sql, params, f)
    }
}

impl WriteTx for SqliteTx<'_> {
    fn commit(self: Box<Self>, _head: u64) -> Result<(), StoreError> {
        Ok(self.0.commit()?)
    }
}

impl Journal for SqliteJournal {
    fn begin(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError> {
        Ok(Box::new(SqliteTx(self.0.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)))
    }

    fn begin_read(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError> {
        Ok(Box::new(SqliteTx(self.0.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?)))
    }

    fn shared(&self) -> bool {
        false
    }
}
