//! The PostgreSQL store: one database shared by any number of `mechfund serve` processes.
//!
//! The tables are those of SQLite ([`super::schema`]) with `BIGINT` integers, created and
//! migrated by [`connect`]: versioned migrations in `mechfund_migrations`, applied under an
//! advisory lock so two servers starting at once do not both migrate, and a database migrated by
//! a newer mechfund is refused.
//!
//! Writes of every server are serialised by one advisory lock held for the whole write
//! transaction ([`PgJournal::begin`]): seqs are handed out and committed in the same order, so a
//! reader never sees seq N+1 before seq N (event streams resume by seq and would skip it). The
//! commit notifies the channel [`CHANNEL`] with the chain's new end; every server listens and
//! brings its published states and event streams up to date from the rows.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Statement};
use r2d2::ManageConnection;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::journal::{Journal, WriteTx};
use super::sql::{Engine, Param, Sql, StoreError, Value};

pub mod tls;

pub use tls::SslMode;

/// The notification channel of commits; the payload is the seq of the last row committed.
pub const CHANNEL: &str = "mechfund_commits";

/// The advisory lock every write transaction holds ("mechfund" in ASCII).
const WRITE_LOCK: i64 = 0x6d65_6368_6675_6e64;
/// The advisory lock of migrations.
const MIGRATION_LOCK: i64 = WRITE_LOCK + 1;

/// The schema, one migration per version; never edit a shipped one, add the next.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE events (
    seq  BIGINT PRIMARY KEY,
    mech TEXT NOT NULL,
    line TEXT NOT NULL,
    hash TEXT
);
CREATE INDEX events_mech_seq ON events (mech, seq);
CREATE TABLE snapshots (
    mech       TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    rules_hash TEXT NOT NULL,
    state      TEXT NOT NULL,
    digest     TEXT
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE idempotency (
    id           BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL
);
",
    "
CREATE TABLE checkpoints (
    mech       TEXT NOT NULL,
    last_seq   BIGINT NOT NULL,
    rules_hash TEXT NOT NULL,
    state      TEXT NOT NULL,
    digest     TEXT NOT NULL,
    PRIMARY KEY (mech, last_seq)
);
",
    // Packs are read whole and already compact: stored out of line without compression.
    "
CREATE TABLE packs (
    mech      TEXT NOT NULL,
    last_seq  BIGINT NOT NULL,
    after_seq BIGINT NOT NULL,
    lines     BIGINT NOT NULL,
    format    BIGINT NOT NULL,
    data      BYTEA NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (mech, last_seq)
);
ALTER TABLE packs ALTER COLUMN data SET STORAGE EXTERNAL;
",
];

/// Whether `store` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
#[must_use]
pub fn is_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// Checks that `url` is a PostgreSQL URL this mechfund can use (before anything starts): the
/// client's settings, `sslmode` and `sslrootcert`, and the root certificates they name.
///
/// # Errors
/// What is wrong with it and what one looks like.
pub fn check_url(url: &str) -> Result<(), String> {
    if !is_url(url) {
        return Err(format!(
            "{} is not a PostgreSQL URL; give e.g. postgres://mechfund@127.0.0.1:5432/mechfund (or leave it out for \
             the SQLite store in --data)",
            redacted(url)
        ));
    }
    Target::parse(url).map(drop).map_err(|e| format!("{}: {e}", redacted(url)))
}

/// `url` without its password (in the user info or a `password` parameter), for messages and
/// logs.
#[must_use]
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", user.split_once(':').map_or(user, |(name, _)| name)),
        None => authority.to_owned(),
    };
    let path = path.map(|path| match path.split_once('?') {
        Some((name, query)) => {
            let query: Vec<&str> =
                query.split('&').map(|pair| if pair.starts_with("password=") { "password=…" } else { pair }).collect();
            format!("{name}?{}", query.join("&"))
        }
        None => path.to_owned(),
    });
    match path {
        Some(path) => format!("{scheme}://{authority}/{path}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// Where and how to connect: the client's settings and the TLS ones, read from a URL once.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    tls: tls::Settings,
    connector: MakeRustlsConnect,
    /// Every host is a Unix socket: no TLS, whatever the mode.
    unix_only: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("hosts", &self.hosts()).field("tls", &self.tls).finish_non_exhaustive()
    }
}

impl Target {
    /// The settings of `url`, its `sslmode` and `sslrootcert` read as libpq reads them
    /// (`PGSSLMODE` and `PGSSLROOTCERT` when it has none), the root certificates loaded.
    ///
    /// # Errors
    /// What cannot be used, never with the password.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, tls) = tls::split(url, |name| std::env::var(name).ok())?;
        // The parser's error says what is wrong only in its source ("unknown option …").
        let mut config = postgres::Config::from_str(&rest).map_err(|e| {
            std::iter::successors(std::error::Error::source(&e), |e| e.source())
                .fold(e.to_string(), |text, cause| format!("{text}: {cause}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("mechfund");
        // PostgreSQL offers no TLS on a Unix socket, and libpq ignores sslmode there.
        let hosts = config.get_hosts();
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, postgres::config::Host::Unix(_)));
        config.ssl_mode(match tls.mode {
            _ if unix_only => postgres::config::SslMode::Disable,
            SslMode::Disable | SslMode::Allow => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
        let connector = tls.connector()?;
        Ok(Target { config, tls, connector, unix_only })
    }

    /// The `sslmode` in force.
    #[must_use]
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode
    }

    /// A new connection. With `allow`, a plaintext one first and, if the server refuses it, one
    /// with TLS. Through a Unix socket, never TLS (as libpq).
    ///
    /// # Errors
    /// The database cannot be reached; a certificate that does not verify, or a server that
    /// wants TLS when `sslmode=disable`, say what to change.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let connected = match self.config.connect(self.connector.clone()) {
            Err(e) if self.tls.mode == SslMode::Allow && !self.unix_only && e.as_db_error().is_some() => {
                let mut config = self.config.clone();
                config.ssl_mode(postgres::config::SslMode::Require);
                config.connect(self.connector.clone())
            }
            other => other,
        };
        connected.map_err(|e| self.explain(e))
    }

    fn hosts(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        hosts.join(",")
    }

    /// A connection's error, with what to change when TLS is the reason.
    fn explain(&self, error: postgres::Error) -> StoreError {
        let mode = self.tls.mode.name();
        let mut cause = std::error::Error::source(&error);
        while let Some(e) = cause {
            // tokio-rustls hands rustls's error over inside an io::Error, whose source skips it.
            let inner = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref).map_or(e, |inner| inner);
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return StoreError::Settings(self.tls.explain(tls, &self.hosts()));
            }
            if e.to_string() == "server does not support TLS" {
                return StoreError::Settings(format!(
                    "the server does not offer TLS, which sslmode={mode} demands: turn ssl on in its \
                     postgresql.conf, or use sslmode=prefer to fall back to plaintext"
                ));
            }
            cause = e.source();
        }
        // The server's refusal of a connection without TLS (pg_hba.conf's `hostssl` lines).
        if let Some(db) = error.as_db_error()
            && db.code().code() == "28000"
            && db.message().contains("no encryption")
            && self.tls.mode == SslMode::Disable
        {
            return StoreError::Settings(format!(
                "{}: the server accepts only TLS connections; use sslmode=require, verify-ca or verify-full instead \
                 of sslmode={mode}",
                db.message()
            ));
        }
        StoreError::Postgres(error)
    }
}

/// A new connection to the database at `url`.
///
/// # Errors
/// The URL cannot be used, or the database cannot be reached.
pub fn client(url: &str) -> Result<Client, StoreError> {
    Target::parse(url).map_err(StoreError::Settings)?.connect()
}

/// Connects, brings the schema up to date, and returns the writer's journal.
///
/// # Errors
/// The database cannot be reached, or it was migrated by a newer mechfund.
pub fn connect(url: &str) -> Result<PgJournal, StoreError> {
    let target = Target::parse(url).map_err(StoreError::Settings)?;
    let mut client = target.connect()?;
    migrate(&mut client)?;
    Ok(PgJournal { client, target, statements: HashMap::new() })
}

/// The schema version this mechfund writes.
#[must_use]
pub fn schema_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mechfund_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let current = check_version(&mut tx)?;
    for (version, sql) in (1_i64..).zip(MIGRATIONS).skip(usize::try_from(current).unwrap_or(0)) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO mechfund_migrations (version) VALUES ($1)", &[&version])?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// The database's schema version (0 before the first migration), if this mechfund knows it (not
/// newer than [`schema_version`]).
///
/// # Errors
/// The version cannot be read, or a newer mechfund migrated the database.
pub fn check_version(client: &mut impl GenericClient) -> Result<i64, StoreError> {
    let current: i64 = client
        .query_one(
            "SELECT CASE WHEN to_regclass('mechfund_migrations') IS NULL THEN 0 \
             ELSE (SELECT coalesce(max(version), 0) FROM mechfund_migrations) END",
            &[],
        )?
        .get(0);
    if current > schema_version() {
        return Err(StoreError::Unexpected(format!(
            "the database's schema is version {current}, newer than this mechfund's {}: run a newer mechfund",
            schema_version()
        )));
    }
    Ok(current)
}

/// A pool of read connections (broken ones, after a database restart, are replaced).
#[derive(Debug)]
pub struct PgPool(Option<r2d2::Pool<Connections>>);

/// How the pool opens and checks connections: [`Target::connect`], so with the URL's TLS.
#[derive(Debug)]
pub struct Connections(Target);

impl ManageConnection for Connections {
    type Connection = Client;
    type Error = StoreError;

    fn connect(&self) -> Result<Client, StoreError> {
        self.0.connect()
    }

    fn is_valid(&self, client: &mut Client) -> Result<(), StoreError> {
        Ok(client.simple_query("").map(drop)?)
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}

impl PgPool {
    /// Up to `size` connections to `url`, opened as needed.
    ///
    /// # Errors
    /// The URL cannot be used.
    pub fn new(url: &str, size: u32) -> Result<PgPool, StoreError> {
        let target = Target::parse(url).map_err(StoreError::Settings)?;
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .test_on_check_out(true)
            .build_unchecked(Connections(target));
        Ok(PgPool(Some(pool)))
    }

    /// A connection, waiting up to 5 s for one.
    ///
    /// # Errors
    /// No connection could be had (the database is down or every connection is busy).
    pub fn get(&self) -> Result<r2d2::PooledConnection<Connections>, StoreError> {
        let pool = self.0.as_ref().ok_or_else(|| StoreError::Unavailable("the read pool is closed".to_owned()))?;
        pool.get().map_err(|e| StoreError::Unavailable(format!("no connection to PostgreSQL: {e}")))
    }
}

impl Drop for PgPool {
    /// The sync client closes its connection by blocking on a runtime of its own, which panics
    /// on a thread that drives async tasks (where the last handler may drop the pool): the
    /// connections are closed on a thread of their own instead.
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::Builder::new().name("mechfund-pool-close".into()).spawn(move || drop(pool));
        }
    }
}

/// A PostgreSQL connection or transaction as [`Sql`], with the statements it prepared.
pub struct Pg<'c, C: GenericClient> {
    client: &'c mut C,
    statements: Option<&'c mut HashMap<String, Statement>>,
}

impl<C: GenericClient> std::fmt::Debug for Pg<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pg")
    }
}

impl<'c, C: GenericClient> Pg<'c, C> {
    /// Statements are prepared for each use.
    pub fn new(client: &'c mut C) -> Pg<'c, C> {
        Pg { client, statements: None }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let Some(cache) = self.statements.as_deref_mut() else { return Ok(self.client.prepare(sql)?) };
        if let Some(statement) = cache.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        cache.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `f` with `params` as the client takes them.
fn with_params<T>(params: &[Param<'_>], f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> T) -> T {
    let ints: Vec<i64> = params.iter().map(|p| if let Param::Int(n) = p { *n } else { 0 }).collect();
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .zip(&ints)
        .map(|(p, int)| match p {
            Param::Int(_) => int as &(dyn ToSql + Sync),
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Bytes(bytes) => bytes as &(dyn ToSql + Sync),
        })
        .collect();
    f(&params)
}

fn value(row: &postgres::Row, i: usize) -> Result<Value, StoreError> {
    let column = &row.columns()[i];
    let value = match *column.type_() {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|n| Value::Int(n.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(|b| Value::Int(b.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
        ref other => return Err(StoreError::Unexpected(format!("a column {} of type {other}", column.name()))),
    };
    Ok(value.unwrap_or(Value::Null))
}

impl<C: GenericClient> Sql for Pg<'_, C> {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(with_params(params, |params| self.client.execute(&statement, params))?)
    }

    /// Through a portal in a transaction of its own (a savepoint inside one), `BATCH` rows at
    /// a time: a caller that stops early (an export whose client went away or stalled) ends the
    /// statement there by rolling back. A plain query would leave the server sending rows that
    /// nobody reads, holding its snapshot, until the connection is next used.
    fn for_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<bool, StoreError> {
        let statement = self.statement(sql)?;
        let mut tx = self.client.transaction()?;
        let portal = with_params(params, |params| tx.bind(&statement, params))?;
        let mut values = Vec::new();
        loop {
            let rows = tx.query_portal(&portal, BATCH)?;
            for row in &rows {
                values.clear();
                for i in 0..row.len() {
                    values.push(value(row, i)?);
                }
                if !f(&values) {
                    return Ok(false);
                }
            }
            if rows.len() < BATCH.unsigned_abs() as usize {
                break;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Value>>, StoreError> {
        let statement = self.statement(sql)?;
        let rows = with_params(params, |params| self.client.query(&statement, params))?;
        rows.iter().map(|row| (0..row.len()).map(|i| value(row, i)).collect()).collect()
    }

    /// The store's single-row queries select one row (by key, or with `LIMIT 1`).
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Vec<Value>>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// Rows fetched at a time by [`Sql::for_each`].
const BATCH: i32 = 512;

/// The writer's connection to a shared PostgreSQL store.
pub struct PgJournal {
    client: Client,
    target: Target,
    statements: HashMap<String, Statement>,
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJournal").field("statements", &self.statements.len()).finish_non_exhaustive()
    }
}

impl PgJournal {
    /// The connection, for start-up recovery.
    pub fn db(&mut self) -> Pg<'_, Client> {
        Pg { client: &mut self.client, statements: Some(&mut self.statements) }
    }
}

/// A write transaction holding the store's write lock.
struct PgTx<'c> {
    tx: postgres::Transaction<'c>,
    statements: &'c mut HashMap<String, Statement>,
}

impl std::fmt::Debug for PgTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgTx")
    }
}

impl<'c> PgTx<'c> {
    fn db(&mut self) -> Pg<'_, postgres::Transaction<'c>> {
        Pg { client: &mut self.tx, statements: Some(&mut *self.statements) }
    }
}

impl Sql for PgTx<'_> {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.db().execute(sql, params)
    }

    fn for_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<bool, StoreError> {
        self.db().for_each(sql, params, f)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Vec<Value>>, StoreError> {
        self.db().query(sql, params)
    }

    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Vec<Value>>, StoreError> {
        self.db().query_opt(sql, params)
    }
}

impl WriteTx for PgTx<'_> {
    fn commit(mut self: Box<Self>, head: u64) -> Result<(), StoreError> {
        let head = head.to_string();
        self.db().execute("SELECT pg_notify($1, $2)", &[Param::Text(CHANNEL), Param::Text(&head)])?;
        Ok(self.tx.commit()?)
    }
}

impl Journal for PgJournal {
    fn begin(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError> {
        let mut tx = self.client.transaction()?;
        let mut db = Pg { client: &mut tx, statements: Some(&mut self.statements) };
        db.execute("SELECT pg_advisory_xact_lock($1)", &[Param::Int(WRITE_LOCK)])?;
        Ok(Box::new(PgTx { tx, statements: &mut self.statements }))
    }

    fn begin_read(&mut self) -> Result<Box<dyn WriteTx + '_>, StoreError> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        Ok(Box::new(PgTx { tx, statements: &mut self.statements }))
    }

    fn shared(&self) -> bool {
        true
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() || self.client.is_valid(Duration::from_secs(2)).is_err() {
            self.statements.clear();
            self.client = self.target.connect()?;
        }
        Ok(())
    }
}
