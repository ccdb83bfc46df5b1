//! `mechfund serve`: the durable, concurrent, idempotent donation server.
//!
//! The request path, in order:
//! - [`conn`]: the connections: the cap, the head, body and send timeouts;
//! - [`router`]: `app(state) -> Router`: the route table (which also makes the OpenAPI document),
//!   the write middleware, the files, CORS; [`files`]: the dashboard and the JS package;
//! - [`auth`]: the admin token and the bearer check; [`ratelimit`]: the write rate limits;
//! - [`extract`]: the extractors, whose rejections are [`error::ApiError`]s;
//! - [`read`] and [`write`](mod@write): the handlers; [`responses`]: their answers; [`card`]: the SVG card;
//!   [`export`]: the streamed export and [`slots`], its limits; [`stream`]: the event streams;
//! - [`state`]: what every handler gets ([`state::AppState`]);
//! - [`writer`]: the single writer thread: group commits of decide -> append -> apply;
//! - [`shared`]: the rules and published states; [`feed`]: the fan-out of commits to streams;
//! - [`follow`]: `--ddc DIR`, a DDC installation followed read-only;
//! - [`openapi`]: the document's fixed parts, error responses and core-shape schemas;
//!   [`clientlog`]: the budget of log lines about client errors.
//!
//! The store is [`crate::store`]. This module wires it all: logging, token, recovery, the socket,
//! signals and the graceful shutdown (stop accepting, finish the requests in flight, let the
//! writer drain). No module below imports this one.

pub mod auth;
pub mod card;
pub mod clientlog;
pub mod conn;
pub mod error;
pub mod export;
pub mod extract;
pub mod feed;
pub mod files;
pub mod follow;
pub mod listen;
pub mod openapi;
pub mod ratelimit;
pub mod read;
pub mod responses;
pub mod router;
pub mod shared;
pub mod slots;
pub mod state;
pub mod stream;
pub mod write;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use mechfund_core::Rules;

use self::auth::{TokenSource, load_token};
pub use self::router::app;
use self::shared::Shared;
use self::state::AppState;
use crate::store::{self, Journal, Readers, SqliteJournal};

/// Arguments of `mechfund serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory of the database (`mechfund.db`) and the generated admin token.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Rules JSON (spec §2.1); defaults when omitted.
    #[arg(long, value_name = "R.json")]
    rules: Option<PathBuf>,
    /// Store the events in PostgreSQL instead of `DIR/mechfund.db`: `postgres://USER@HOST/DB`
    /// (also `MECHFUND_STORE`). Any number of servers may share one database.
    #[arg(long, value_name = "URL", conflicts_with = "ddc")]
    store: Option<String>,
    /// Follow a DockerDiscordControl installation read-only instead of a store: DDC's config dir.
    /// Its log, rules files and snapshots are followed as DDC writes them; writes answer 403.
    #[arg(long, value_name = "DIR", conflicts_with = "rules")]
    ddc: Option<PathBuf>,
    /// A built dashboard to serve at `/` instead of the one built into the binary.
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// A JS package to serve at `/embed/` instead of the one built into the binary.
    #[arg(long, value_name = "DIR")]
    embed: Option<PathBuf>,
    /// An origin allowed to read the API from a browser (CORS); repeatable.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Reads need the bearer token too (except the health checks, `/api/v1/openapi.json`, the
    /// dashboard and `/embed/`).
    #[arg(long)]
    private: bool,
    /// Writes per second per token and per donor, with a burst of twice that; 0 disables.
    #[arg(long, value_name = "N", default_value_t = 50)]
    rate_limit: u32,
    /// Idempotency keys remembered: a retry with an older key than the newest N is a new write.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    idempotency_keys: u64,
    /// Largest body of `POST …/import`, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_import_mib: u32,
    /// Timeouts and the cap on connections.
    #[command(flatten)]
    connections: conn::ConnArgs,
    /// The exports' stall timeout and slots.
    #[command(flatten)]
    exports: slots::ExportArgs,
}

impl Store {
    /// What to call it in messages (a URL without its password).
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Store::Sqlite(db) => db.display().to_string(),
            Store::Postgres(url) => store::postgres::redacted(url),
        }
    }
}

impl ServeArgs {
    /// `--store URL` or `MECHFUND_STORE`, else `DIR/mechfund.db`.
    #[must_use]
    pub fn store(&self) -> Store {
        let url = self.store.clone().or_else(|| std::env::var("MECHFUND_STORE").ok().filter(|s| !s.trim().is_empty()));
        match url {
            Some(url) => Store::Postgres(url),
            None => Store::Sqlite(self.data.join(store::DB_FILE)),
        }
    }

    /// `--rules R.json`, read by the CLI (one reader of rules files for every command).
    #[must_use]
    pub fn rules_file(&self) -> Option<&std::path::Path> {
        self.rules.as_deref()
    }
}

/// Runs the server under `rules` until SIGINT or SIGTERM. Exit 2 for unusable arguments, 1 for
/// failures.
#[must_use]
pub fn run(args: ServeArgs, rules: Rules) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MECHFUND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    // Every option is checked before anything starts: a bad one is exit 2 with what to fix.
    if let Err(message) = check_options(&args) {
        eprintln!("mechfund: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mechfund: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(args, rules)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("mechfund: {message}");
            ExitCode::from(1)
        }
    }
}

/// The checks of the options clap cannot make.
fn check_options(args: &ServeArgs) -> Result<(), String> {
    cors_origins(&args.cors_origins)?;
    if let Ok(token) = std::env::var("MECHFUND_ADMIN_TOKEN")
        && !token.trim().is_empty()
        && token.trim().chars().count() < auth::MIN_TOKEN_LEN
    {
        return Err(format!(
            "MECHFUND_ADMIN_TOKEN is {} characters long; an admin token needs at least {}",
            token.trim().chars().count(),
            auth::MIN_TOKEN_LEN
        ));
    }
    if let Some(dir) = &args.ddc {
        let ddc = crate::ddc::Installation::open(dir)?;
        ddc.rules().map_err(|e| format!("{}: {e}", ddc.dir().display()))?;
    }
    if let Store::Postgres(url) = args.store() {
        store::postgres::check_url(&url).map_err(|e| format!("--store / MECHFUND_STORE: {e}"))?;
    }
    Ok(())
}

/// `--cors-origin` values as the CORS layer takes them: each an origin exactly as browsers send
/// it (`http[s]://host[:port]`, lowercase, no path), or `*` alone for any origin.
///
/// # Errors
/// A message naming the value and saying what an origin looks like.
pub fn cors_origins(values: &[String]) -> Result<Vec<axum::http::HeaderValue>, String> {
    if values.iter().any(|v| v == "*") {
        if values.len() > 1 {
            return Err("--cors-origin: `*` (any origin) cannot be combined with other origins".to_owned());
        }
        return Ok(vec![axum::http::HeaderValue::from_static("*")]);
    }
    values.iter().map(|value| cors_origin(value)).collect()
}

fn cors_origin(value: &str) -> Result<axum::http::HeaderValue, String> {
    let bad = |why: &str| {
        format!(
            "--cors-origin: {value:?} is not an origin ({why}); give e.g. https://bot.example.org or http://localhost:9374"
        )
    };
    let origin = value.strip_suffix('/').unwrap_or(value).to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("an origin has no path, query or user"));
    }
    let (host, port) = match rest.rsplit_once(':').filter(|(h, p)| !p.contains(']') && !h.is_empty()) {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let ipv6 = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.is_empty() || !(ipv6 || host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
        return Err(bad("the host is missing or has characters a host name cannot have"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(bad("the port must be 1..65535"));
    }
    axum::http::HeaderValue::from_str(&origin).map_err(|_| bad("not a valid header value"))
}

async fn serve(args: ServeArgs, rules: Rules) -> Result<(), String> {
    if let Some(dir) = args.ddc.clone() {
        return serve_ddc(args, &dir).await;
    }
    std::fs::create_dir_all(&args.data).map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
    let store = args.store();
    // A SQLite store's lock is held until the server has stopped: `import` and `restore` refuse
    // while it is held. A PostgreSQL store is shared: no lock.
    let _lock = match &store {
        Store::Sqlite(_) => {
            let lock_existed = args.data.join(store::LOCK_FILE).exists();
            let lock = store::lock_store(&args.data).map_err(|e| match e {
                store::LockError::Busy(dir) => {
                    format!(
                        "the store in {} is in use by another mechfund process (a server, import or restore)",
                        dir.display()
                    )
                }
                other @ store::LockError::Io(..) => other.to_string(),
            })?;
            store::check_not_emptied(&args.data, lock_existed)?;
            Some(lock)
        }
        Store::Postgres(_) => None,
    };
    let (token, source) = load_token(&args.data).map_err(|e| format!("cannot load the admin token: {e}"))?;
    if source == TokenSource::Created {
        eprintln!("mechfund: admin token created in {}", args.data.join("admin-token").display());
    }
    let started = std::time::Instant::now();
    let idempotency_keys = args.idempotency_keys;
    let opening = store.clone();
    let Opened { shared, writer, writer_thread, readers, listening } =
        tokio::task::spawn_blocking(move || open(&opening, rules, idempotency_keys))
            .await
            .map_err(|e| format!("start-up failed: {e}"))?
            .map_err(|e| format!("cannot open {}: {e}", store.name()))?;
    tracing::info!(ms = started.elapsed().as_millis(), store = %store.name(), "store ready");
    let state = app_state(&args, shared, writer, readers, token.into(), None)?;
    listen(&args, state).await?;
    // Every handler (and with it every sender of the writer's queue) is gone: the writer
    // commits what is queued and stops.
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .map_err(|e| format!("writer: {e}"))?
        .map_err(|_| "the writer panicked".to_owned())?;
    drop(listening);
    tracing::info!("stopped");
    Ok(())
}

/// `serve --ddc DIR`: the log DDC writes, mirrored into a throwaway store and followed; no
/// writes, so no writer and no admin token unless `--private` reads need one.
async fn serve_ddc(args: ServeArgs, dir: &std::path::Path) -> Result<(), String> {
    let ddc = crate::ddc::Installation::open(dir)?;
    let (rules, notes) = ddc.rules().map_err(|e| format!("{}: {e}", ddc.dir().display()))?;
    for note in &notes {
        tracing::info!("{note}");
    }
    let token: Arc<str> = if args.private {
        std::fs::create_dir_all(&args.data).map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
        load_token(&args.data).map_err(|e| format!("cannot load the admin token: {e}"))?.0.into()
    } else {
        // Nothing is written, so nothing needs the token: one nobody knows.
        auth::random_token().map_err(|e| format!("cannot make a token: {e}"))?.into()
    };
    let mirror = tempfile::Builder::new()
        .prefix("mechfund-ddc-")
        .tempdir()
        .map_err(|e| format!("cannot create the mirror of the DDC log: {e}"))?;
    let db = mirror.path().join(store::DB_FILE);
    let conn = store::open_writer(&db).map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    // The mirror is rebuilt from DDC's log at every start: no fsync per commit.
    conn.pragma_update(None, "synchronous", "OFF").map_err(|e| e.to_string())?;
    let main = mechfund_core::State::initial("main", &rules, [None; 10]);
    let (shared, commits) = Shared::new(rules, HashMap::from([("main".to_owned(), Arc::new(main))]));
    let shared = Arc::new(shared);
    tokio::spawn(feed::fan_out(commits, shared.streams()));
    let started = std::time::Instant::now();
    let follow_shared = shared.clone();
    let following = tokio::task::spawn_blocking(move || follow::start(ddc, conn, follow_shared))
        .await
        .map_err(|e| format!("start-up failed: {e}"))??;
    tracing::info!(ms = started.elapsed().as_millis(), "DDC log mirrored");
    // No writer: every write is refused before it would be queued.
    let (writer, _) = tokio::sync::mpsc::channel(1);
    let read_only = format!(
        "this server follows the DDC installation in {} read-only: DDC owns this log, so record donations \
         in DDC (its bot or web UI)",
        dir.display()
    );
    let readers = Arc::new(Readers::new(db));
    let state = app_state(&args, shared, writer, readers, token, Some(read_only.into()))?;
    listen(&args, state).await?;
    tokio::task::spawn_blocking(move || following.stop()).await.map_err(|e| format!("follower: {e}"))?;
    drop(mirror);
    tracing::info!("stopped");
    Ok(())
}

fn app_state(
    args: &ServeArgs,
    shared: Arc<Shared>,
    writer: tokio::sync::mpsc::Sender<writer::WriteRequest>,
    readers: Arc<Readers>,
    token: Arc<str>,
    read_only: Option<Arc<str>>,
) -> Result<AppState, String> {
    let cors_origins = cors_origins(&args.cors_origins)?;
    Ok(AppState {
        shared,
        writer,
        readers,
        token,
        dist: args.dist.clone(),
        embed: args.embed.clone(),
        cors_origins,
        private: args.private,
        rate_limiter: ratelimit::RateLimiter::new(args.rate_limit).map(Arc::new),
        import_limit: usize::try_from(args.max_import_mib).unwrap_or(usize::MAX).saturating_mul(1 << 20),
        read_only,
        exports: Arc::new(slots::Exports::from(&args.exports)),
    })
}

/// Listens on `--addr` and serves until SIGINT or SIGTERM, then ends the event streams and
/// finishes the requests in flight.
async fn listen(args: &ServeArgs, state: AppState) -> Result<(), String> {
    // Raises the limit of open files before the first connection counts against it.
    let limits = args.connections.limits();
    let listener = conn::bind(args.addr).map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let bound = listener.local_addr().map_err(|e| format!("no local address: {e}"))?;
    let signal = shutdown_signal();
    println!("listening on http://{bound}");
    tracing::info!(addr = %bound, "listening");
    let shared = state.shared.clone();
    conn::serve(listener, app(state), limits, async move {
        signal.await;
        // Event streams never end on their own; the graceful shutdown waits for them.
        shared.end_streams();
    })
    .await;
    Ok(())
}

/// Where the events are stored.
#[derive(Clone, Debug)]
pub enum Store {
    /// A SQLite file (`DIR/mechfund.db`), this server's alone.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://…`), shared by any number of servers.
    Postgres(String),
}

/// An open store: the published states, the running writer and the read connections.
#[derive(Debug)]
pub struct Opened {
    /// Rules and published states.
    pub shared: Arc<Shared>,
    /// The writer's queue.
    pub writer: tokio::sync::mpsc::Sender<writer::WriteRequest>,
    /// The writer; it stops once every sender is dropped and the queue is committed.
    pub writer_thread: std::thread::JoinHandle<()>,
    /// The read connections.
    pub readers: Arc<Readers>,
    /// With PostgreSQL: the thread that hears every server's commits (stops when dropped).
    pub listening: Option<listen::Listening>,
}

/// Opens `store` (creating or migrating its schema), recovers every mech's state (rebuilding
/// stale or corrupt snapshots) and starts the writer and the event streams' fan-out (and, with
/// PostgreSQL, the listener). Blocking; needs a Tokio runtime (the fan-out is a task).
///
/// # Errors
/// A database failure, or a thread that cannot start.
pub fn open(store: &Store, rules: Rules, idempotency_keys: u64) -> Result<Opened, String> {
    let (mut journal, readers): (Box<dyn Journal>, Readers) = match store {
        Store::Sqlite(db) => {
            let conn = store::open_writer(db).map_err(|e| e.to_string())?;
            (Box::new(SqliteJournal(conn)), Readers::new(db.clone()))
        }
        Store::Postgres(url) => {
            let journal = store::postgres::connect(url).map_err(|e| format!("PostgreSQL: {e}"))?;
            let pool = store::postgres::PgPool::new(url, 16).map_err(|e| format!("PostgreSQL: {e}"))?;
            (Box::new(journal), Readers::Postgres(pool))
        }
    };
    let (recovered, head) = journal
        .begin()
        .and_then(|mut tx| {
            let recovered = store::recover(&mut *tx, &rules)?;
            let head = store::Chain::head(&mut *tx)?.seq;
            tx.commit(head)?;
            Ok((recovered, head))
        })
        .map_err(|e| e.to_string())?;
    for (mech, why) in &recovered.rebuilt {
        tracing::warn!(mech = %mech, reason = %why, "snapshot rebuilt by replay");
    }
    if let Some(damage) = &recovered.damage {
        tracing::error!(%damage, "the store takes no writes until it is restored; `mechfund verify` shows more");
    }
    let states = recovered.states.into_iter().map(|(mech, state)| (mech, Arc::new(state))).collect::<HashMap<_, _>>();
    tracing::info!(mechs = states.len(), next_seq = recovered.next_seq, "recovered");
    let (shared, commits) = Shared::new(rules, states);
    let shared = Arc::new(shared);
    tokio::spawn(feed::fan_out(commits, shared.streams()));
    let listening = match store {
        Store::Sqlite(_) => None,
        Store::Postgres(url) => Some(
            listen::start(url.clone(), shared.clone(), head).map_err(|e| format!("cannot start the listener: {e}"))?,
        ),
    };
    let (writer, writer_thread) = writer::spawn(
        journal,
        shared.clone(),
        recovered.next_seq,
        recovered.last_ts,
        idempotency_keys,
        recovered.damage.map(|d| d.to_string()),
    )
    .map_err(|e| format!("cannot start the writer: {e}"))?;
    Ok(Opened { shared, writer, writer_thread, readers: Arc::new(readers), listening })
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not when the future is
/// first polled: once `listening` is printed, a SIGTERM is a graceful stop, never the default
/// kill (building the app and starting to accept take milliseconds after that line).
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            () = received(signals.0) => {}
            () = received(signals.1) => {}
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing the requests in flight");
    }
}

/// The first delivery of a signal (never, when its handler could not be installed).
#[cfg(unix)]
async fn received(signal: std::io::Result<tokio::signal::unix::Signal>) {
    match signal {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cors_origins_are_what_browsers_send() {
        let ok = |values: &[&str]| {
            let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            super::cors_origins(&values)
                .map(|list| list.iter().map(|v| v.to_str().unwrap_or("").to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(ok(&["https://Bot.Example.org/"]), Ok(vec!["https://bot.example.org".to_owned()]));
        assert_eq!(ok(&["http://localhost:9374", "http://[::1]:8080"]).map(|l| l.len()), Ok(2));
        assert_eq!(ok(&["*"]), Ok(vec!["*".to_owned()]));
        for bad in [
            "localhost:9374",
            "https://",
            "https://a.example/x",
            "https://a.example?x",
            "https://u@a.example",
            "https://a.example:0",
        ] {
            assert!(ok(&[bad]).is_err(), "{bad}");
        }
    }
}
