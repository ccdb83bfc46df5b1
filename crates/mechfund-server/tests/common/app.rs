//! The in-process harness of tests/http/: the application of `mechfund serve` built with
//! `serve::open` over a SQLite store in a temp dir and `serve::app(state)` (once, as the server
//! does), each request sent with `tower::ServiceExt::oneshot`: no socket, no process. The options of `mechfund serve`
//! that reach [`AppState`] are the [`Builder`]'s knobs; what only a process has (signals, the
//! lock, the connections' timeouts, the CLI) is left to the suites that run the binary.
//!
//! With `MECHFUND_TEST_STORE=postgres` every [`App`] keeps its events in a PostgreSQL database of
//! a cluster of its own ([`Database`]) instead, so the same suite checks both stores
//! (`cargo xtask test` runs it both ways).
//!
//! ```ignore
//! let app = App::builder().private().rate_limit(2).start();
//! let reply = app.send(Req::post("/api/v1/mechs/main/donations").bearer(TOKEN).key("k1").json(&body)).await;
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::Response;
use mechfund_core::Rules;
use mechfund_server::serve::auth::{TokenSource, load_token};
use mechfund_server::serve::listen::Listening;
use mechfund_server::serve::ratelimit::RateLimiter;
use mechfund_server::serve::state::AppState;
use mechfund_server::serve::{Opened, Store, app, cors_origins, open};
use mechfund_server::store::DB_FILE;
use serde_json::Value;
use tower::ServiceExt;

pub use super::TOKEN;
use super::store::Database;
pub use super::store::on_postgres;
use super::{Stream, assert_state_is_replay};

/// The admin token of an [`App`].
#[derive(Clone, Debug)]
enum Token {
    /// As `MECHFUND_ADMIN_TOKEN`.
    Given(String),
    /// As `mechfund serve` without it: `admin-token` in the data dir, made at the first start.
    Generated,
}

/// How an [`App`] is set up: the options of `mechfund serve` that reach [`AppState`], with the
/// defaults of the suites that run the binary (the token [`TOKEN`], no rate limit, no dashboard
/// and no JS package).
#[derive(Clone, Debug)]
pub struct Builder {
    token: Token,
    private: bool,
    cors_origins: Vec<String>,
    rate_limit: u32,
    import_limit: usize,
    read_only: Option<String>,
    dist: Option<PathBuf>,
    embed: Option<PathBuf>,
    idempotency_keys: u64,
    /// With `MECHFUND_TEST_STORE=postgres`: the database, kept across restarts.
    database: Option<Arc<Database>>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            token: Token::Given(TOKEN.to_owned()),
            private: false,
            cors_origins: Vec::new(),
            rate_limit: 0,
            import_limit: 1 << 20,
            read_only: None,
            dist: None,
            embed: None,
            idempotency_keys: 100_000,
            database: None,
        }
    }
}

impl Builder {
    /// `MECHFUND_ADMIN_TOKEN=token`.
    #[must_use]
    pub fn token(mut self, token: &str) -> Builder {
        self.token = Token::Given(token.to_owned());
        self
    }

    /// No `MECHFUND_ADMIN_TOKEN`: the token of the data dir's `admin-token`, made at the first
    /// start ([`App::token`] tells it).
    #[must_use]
    pub fn generated_token(mut self) -> Builder {
        self.token = Token::Generated;
        self
    }

    /// `--private`.
    #[must_use]
    pub fn private(mut self) -> Builder {
        self.private = true;
        self
    }

    /// `--cors-origin origin`, repeatable.
    #[must_use]
    pub fn cors_origin(mut self, origin: &str) -> Builder {
        self.cors_origins.push(origin.to_owned());
        self
    }

    /// `--rate-limit n` (0, the default here, disables it).
    #[must_use]
    pub fn rate_limit(mut self, per_second: u32) -> Builder {
        self.rate_limit = per_second;
        self
    }

    /// The largest body of `POST …/import`, in bytes (1 MiB unless set).
    #[must_use]
    pub fn import_limit(mut self, bytes: usize) -> Builder {
        self.import_limit = bytes;
        self
    }

    /// Writes refused with 403 `read_only` and this message, as `serve --ddc` does.
    #[must_use]
    pub fn read_only(mut self, why: &str) -> Builder {
        self.read_only = Some(why.to_owned());
        self
    }

    /// `--dist dir` (unless set: a directory that does not exist, so no dashboard).
    #[must_use]
    pub fn dist(mut self, dir: &Path) -> Builder {
        self.dist = Some(dir.to_owned());
        self
    }

    /// `--embed dir` (unless set: a directory that does not exist, so no JS package).
    #[must_use]
    pub fn embed(mut self, dir: &Path) -> Builder {
        self.embed = Some(dir.to_owned());
        self
    }

    /// `--idempotency-keys n`.
    #[must_use]
    pub fn idempotency_keys(mut self, keys: u64) -> Builder {
        self.idempotency_keys = keys;
        self
    }

    /// Opens a new store in a temp dir. Needs a Tokio runtime (the event streams' fan-out is a
    /// task).
    pub fn start(mut self) -> App {
        if on_postgres() && self.database.is_none() {
            self.database = Some(Arc::new(Database::start()));
        }
        App::open(self, tempfile::tempdir().unwrap())
    }
}

/// The application over its store, answering requests in process.
pub struct App {
    /// What `app(state)` made of the state: the whole application.
    router: axum::Router,
    state: AppState,
    /// Joined by [`App::stop`]; otherwise it stops on its own once the state is dropped.
    writer: Option<std::thread::JoinHandle<()>>,
    /// With a shared store: the thread that hears the commits (stops when dropped).
    _listening: Option<Listening>,
    builder: Builder,
    token: String,
    token_source: Option<TokenSource>,
    log: String,
    /// The data dir: `mechfund.db`, `admin-token`; removed when the last [`App`] on it is gone.
    dir: tempfile::TempDir,
}

/// Where the lines logged while a store opens go.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An answer, read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A request: `Req::post(path).bearer(TOKEN).key("k").json(&body)`.
pub struct Req(axum::http::request::Builder);

impl Req {
    pub fn new(method: Method, path: &str) -> Req {
        Req(Request::builder().method(method).uri(path))
    }

    pub fn get(path: &str) -> Req {
        Req::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Req {
        Req::new(Method::POST, path)
    }

    /// `Authorization: Bearer token`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Req {
        self.header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    /// `Idempotency-Key: key`.
    #[must_use]
    pub fn key(self, key: &str) -> Req {
        self.header("idempotency-key", key)
    }

    #[must_use]
    pub fn header(self, name: &str, value: &str) -> Req {
        Req(self.0.header(name, value))
    }

    /// `body`, typed as JSON (whether or not it is).
    pub fn json_bytes(self, body: impl Into<Body>) -> Request<Body> {
        self.header(header::CONTENT_TYPE.as_str(), "application/json").body(body)
    }

    /// `body` serialised, typed as JSON.
    pub fn json(self, body: &Value) -> Request<Body> {
        self.json_bytes(body.to_string())
    }

    pub fn body(self, body: impl Into<Body>) -> Request<Body> {
        self.0.body(body.into()).unwrap()
    }

    pub fn empty(self) -> Request<Body> {
        self.body(Body::empty())
    }
}

impl App {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// With the defaults of [`Builder`].
    pub fn start() -> App {
        Builder::default().start()
    }

    /// Opens (creating) the store in `dir` as `mechfund serve` does, with the lines it logs
    /// while recovering kept for [`App::opening_log`].
    fn open(builder: Builder, dir: tempfile::TempDir) -> App {
        let db = dir.path().join(DB_FILE);
        let (token, token_source) = match &builder.token {
            Token::Given(token) => (token.clone(), None),
            Token::Generated => {
                let (token, source) = load_token(dir.path()).unwrap();
                (token, Some(source))
            }
        };
        let log = Capture::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        let store = match &builder.database {
            Some(database) => Store::Postgres(database.url().to_owned()),
            None => Store::Sqlite(db),
        };
        // On a thread of its own in the runtime's context, as `serve` opens it on a blocking
        // thread: PostgreSQL's sync client may not block a thread that drives async tasks.
        let runtime = tokio::runtime::Handle::current();
        let keys = builder.idempotency_keys;
        let Opened { shared, writer, writer_thread, readers, listening } = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _context = runtime.enter();
                    tracing::subscriber::with_default(subscriber, || open(&store, Rules::default(), keys).unwrap())
                })
                .join()
                .unwrap()
        });
        let log = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        let state = AppState {
            shared,
            writer,
            readers,
            token: token.as_str().into(),
            dist: Some(builder.dist.clone().unwrap_or_else(|| dir.path().join("no-dist"))),
            embed: Some(builder.embed.clone().unwrap_or_else(|| dir.path().join("no-embed"))),
            cors_origins: cors_origins(&builder.cors_origins).unwrap(),
            private: builder.private,
            rate_limiter: RateLimiter::new(builder.rate_limit).map(Arc::new),
            import_limit: builder.import_limit,
            read_only: builder.read_only.as_deref().map(Into::into),
            exports: Arc::default(),
        };
        let router = app(state.clone());
        App {
            router,
            state,
            writer: Some(writer_thread),
            _listening: listening,
            builder,
            token,
            token_source,
            log,
            dir,
        }
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL database, when the suite runs on PostgreSQL.
    pub fn database(&self) -> Option<&Database> {
        self.builder.database.as_deref()
    }

    /// Runs one SQL statement on the store behind the app's back: the rows it changed.
    pub fn execute(&self, sql: &str) -> u64 {
        match self.database() {
            Some(database) => database.execute(sql),
            None => rusqlite::Connection::open(self.dir().join(DB_FILE)).unwrap().execute(sql, []).unwrap() as u64,
        }
    }

    /// The one integer a query of the store returns.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match self.database() {
            Some(database) => database.query::<i64>(sql),
            None => {
                let conn = rusqlite::Connection::open(self.dir().join(DB_FILE)).unwrap();
                conn.query_row(sql, [], |row| row.get(0)).unwrap()
            }
        }
    }

    /// Whether the store holds anything: its SQLite file, or its PostgreSQL tables.
    pub fn store_exists(&self) -> bool {
        match self.database() {
            Some(database) => database.execute("SELECT 1 FROM mechfund_migrations LIMIT 1") == 1,
            None => self.dir().join(DB_FILE).exists(),
        }
    }

    /// The admin token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where a [`Builder::generated_token`] came from (`None` for a given one).
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.token_source.as_ref()
    }

    /// What was logged while the store was opened (recovery, rebuilt snapshots).
    pub fn opening_log(&self) -> &str {
        &self.log
    }

    /// Stops as `mechfund serve` does on SIGTERM: the event streams end, and once nothing holds
    /// the state any more the writer commits what is queued and stops.
    pub async fn stop(self) {
        self.close().await;
    }

    /// [`App::stop`], then opens the same store with the same options again.
    pub async fn restart(self) -> App {
        self.restart_after(|_, _| {}).await
    }

    /// [`App::restart`], with `meanwhile` done to the data dir (or the PostgreSQL database)
    /// while the app is stopped.
    pub async fn restart_after(self, meanwhile: impl FnOnce(&Path, Option<&Database>)) -> App {
        let (builder, dir) = self.close().await;
        meanwhile(dir.path(), builder.database.as_deref());
        App::open(builder, dir)
    }

    async fn close(mut self) -> (Builder, tempfile::TempDir) {
        self.state.shared.end_streams();
        let writer = self.writer.take().unwrap();
        let App { router, state, builder, dir, .. } = self;
        drop((router, state));
        let joined = tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || writer.join()))
            .await
            .expect("the writer did not stop within 30 s: a request or an event stream still holds the state");
        assert!(joined.unwrap().is_ok(), "the writer panicked");
        (builder, dir)
    }

    /// The answer to `request`, its body not read (an event stream's never ends).
    pub async fn respond(&self, request: Request<Body>) -> Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    /// The answer to `request`, read to its end.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let (parts, body) = self.respond(request).await.into_parts();
        let body = to_bytes(body, usize::MAX).await.unwrap().to_vec();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Req::get(path).empty()).await
    }

    /// `GET path` answered 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        reply.json()
    }

    /// A POST with the admin token and, if given, an idempotency key, untyped; the answer as JSON
    /// (`Null` when it is not).
    pub async fn post(&self, path: &str, body: impl Into<Body>, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = Req::post(path).bearer(&self.token);
        if let Some(key) = key {
            request = request.key(key);
        }
        let reply = self.send(request.body(body)).await;
        (reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
    }

    /// A POST of `body` as JSON with the admin token; the answer must be JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let reply = self.send(Req::post(path).bearer(&self.token).json(body)).await;
        (reply.status.as_u16(), reply.json())
    }

    /// A POST typed as JSON, with `token` and `key` if given: (status, body as text).
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<Body>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> (u16, String) {
        let mut request = Req::post(path);
        if let Some(token) = token {
            request = request.bearer(token);
        }
        if let Some(key) = key {
            request = request.key(key);
        }
        let reply = self.send(request.json_bytes(body)).await;
        (reply.status.as_u16(), reply.text())
    }

    /// `…/state`'s `state`.
    pub async fn state_of(&self, mech: &str) -> Value {
        self.get_json(&format!("/api/v1/mechs/{mech}/state")).await["state"].clone()
    }

    /// Live state (`GET …/state`) equals the core's replay of `GET …/events.jsonl`; returns the
    /// export.
    pub async fn assert_live_equals_replay(&self, mech: &str) -> String {
        let export = self.get(&format!("/api/v1/mechs/{mech}/events.jsonl")).await;
        assert_eq!(export.status, StatusCode::OK);
        let live = self.get_json(&format!("/api/v1/mechs/{mech}/state")).await;
        assert_state_is_replay(mech, &live, &export.body);
        String::from_utf8(export.body).unwrap()
    }

    /// `GET …/events/stream{query}` of `mech`, answered 200 as `text/event-stream`.
    pub async fn stream(&self, mech: &str, query: &str, last_event_id: Option<&str>) -> Stream {
        let path = format!("/api/v1/mechs/{mech}/events/stream{query}");
        let mut request = Req::get(&path);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.respond(request.empty()).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Stream::from_body(response.into_body())
    }
}
