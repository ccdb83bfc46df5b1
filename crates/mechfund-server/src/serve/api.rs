//! The HTTP API (spec §3.3, prefix `/api/v1`) and the dashboard files: [`app`] builds the
//! router from an [`AppState`], with no socket, so tests can call it directly.
//!
//! Handlers only decode (JSON body, path, query), hand a validated [`Op`] to the writer (which
//! runs the core's `decide`, appends and applies) and answer; reads use the published states
//! and the read-only connections. Every failure is an [`ApiError`] with the contract's shape.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mechfund_core::decide::{Channel, Member};
use mechfund_core::whatif::{goal_table, remaining_costs};
use mechfund_core::{Cents, DomainError, MemberSource, Now, display};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::require_token;
use super::card::{self, Theme};
use super::error::{ApiError, json_body};
use super::export::Exports;
use super::files::{Dashboard, Files, Package};
use super::openapi::{
    ApiDoc, Conflict, DisplaySchema, EventSchema, GoalPartsSchema, IdempotencyKey, Internal, Invalid, Malformed,
    MechPath, NewMechPath, NotFound, RateLimited, ReadOnly, RemainingSchema, RulesSchema, StateSchema, TooLarge,
    Unauthorized, Unavailable, donation_amount_schema, make_private, system_amount_schema,
};
use super::ratelimit::RateLimiter;
use super::store::{Readers, hex, lines_after};
use super::writer::{Idempotency, Op, Shared, WriteRequest, WriteResponse, state_json};

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Default and largest page of `GET …/events`.
const EVENTS_DEFAULT_LIMIT: u64 = 1000;
const EVENTS_MAX_LIMIT: u64 = 10_000;

/// Everything the handlers need.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Rules and published states.
    pub shared: Arc<Shared>,
    /// The writer's queue.
    pub writer: mpsc::Sender<WriteRequest>,
    /// Read-only connections.
    pub readers: Arc<Readers>,
    /// The admin token.
    pub token: Arc<str>,
    /// The dashboard's files; `None`: the ones built into the binary.
    pub dist: Option<PathBuf>,
    /// The JS package, served at `/embed/`; `None`: the one built into the binary.
    pub embed: Option<PathBuf>,
    /// Origins allowed by CORS (none: no CORS headers; `*` alone: any origin).
    pub cors_origins: Vec<HeaderValue>,
    /// Reads need the token too (not `/healthz`, the dashboard or `/embed/`).
    pub private: bool,
    /// Per-token and per-donor limits on writes; `None` when disabled.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Largest body of `POST …/import`, in bytes.
    pub import_limit: usize,
    /// Why writes are refused (403 `read_only`): the server follows a DDC installation.
    pub read_only: Option<Arc<str>>,
    /// The exports of `…/events.jsonl` streaming now, and their limits.
    pub exports: Arc<Exports>,
}

/// The one route table of `/api/v1`: each `routes!` entry registers the handler in the router
/// AND its `#[utoipa::path]` in the OpenAPI document. Add routes here only (never with a plain
/// `.route`), or the document and the router drift apart (tests/openapi.rs checks both ways).
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let auth = middleware::from_fn_with_state(state.token.clone(), require_token);
    let writes = OpenApiRouter::new()
        .routes(routes!(post_donation))
        .routes(routes!(post_system_donation))
        .routes(routes!(post_member_count))
        .routes(routes!(post_power_gift))
        .routes(routes!(post_toggle_deletion))
        .routes({
            // Imports are big: their own body limit (`--max-import-mib`).
            let (schemas, paths, route) = routes!(post_import);
            (schemas, paths, route.layer(DefaultBodyLimit::max(state.import_limit)))
        })
        // The last layer runs first: a read-only server refuses before the token is checked,
        // and the token is checked before it is counted.
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_writes))
        .route_layer(auth.clone())
        .route_layer(middleware::from_fn_with_state(state.read_only.clone(), refuse_read_only));
    let reads = OpenApiRouter::new()
        .routes(routes!(get_mechs))
        .routes(routes!(get_state))
        .routes(routes!(get_card))
        .routes(routes!(get_events))
        .routes(routes!(super::export::get_events_jsonl))
        .routes(routes!(super::stream::get_event_stream))
        .routes(routes!(get_whatif))
        .routes(routes!(get_rules));
    let reads = if state.private { reads.route_layer(auth) } else { reads };
    OpenApiRouter::new().routes(routes!(api_healthz)).routes(routes!(get_openapi)).merge(reads).merge(writes)
}

/// The `/api/v1` and `/healthz` routes and the OpenAPI document that describes exactly them.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, api_doc) = api_routes(state).split_for_parts();
    let api = api.fallback(api_not_found).method_not_allowed_fallback(method_not_allowed);
    let (root, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(healthz)).split_for_parts();
    doc.merge(utoipa::openapi::OpenApi::default().nest("/api/v1", api_doc));
    if state.private {
        make_private(&mut doc);
    }
    (root.nest("/api/v1", api), doc)
}

/// The whole application: `/api/v1/…`, `/healthz`, the JS package at `/embed/` and the
/// dashboard at `/`.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api(&state);
    // Serialising the document (strings and maps) cannot fail.
    let doc: Arc<str> = doc.to_json().unwrap_or_default().into();
    let router = router.layer(Extension(OpenApiJson(doc)));
    let package = match &state.embed {
        Some(dir) => dir.is_dir().then(|| Files::new(dir)),
        None => Files::embedded::<Package>("mechfund-progress.js"),
    };
    let router = match package {
        Some(files) => router.nest_service("/embed", files),
        None => router
            .route("/embed", get(no_embed))
            .route("/embed/", get(no_embed))
            .route("/embed/{*rest}", get(api_not_found)),
    };
    let dashboard = match &state.dist {
        Some(dir) => dir.join("index.html").is_file().then(|| Files::new(dir)),
        None => Files::embedded::<Dashboard>("index.html"),
    };
    let router = match dashboard {
        Some(files) => router.fallback_service(files),
        None => router.route("/", get(no_dashboard)).fallback(api_not_found),
    };
    let router = router.layer(DefaultBodyLimit::max(BODY_LIMIT));
    let router = if state.cors_origins.is_empty() {
        router
    } else {
        router.layer(
            CorsLayer::new()
                .allow_origin(if state.cors_origins.iter().any(|o| o == "*") {
                    AllowOrigin::any()
                } else {
                    AllowOrigin::list(state.cors_origins.clone())
                })
                .allow_methods([Method::GET, Method::HEAD])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(std::time::Duration::from_secs(600)),
        )
    };
    router.layer(tower_http::trace::TraceLayer::new_for_http().on_failure(log_failure)).with_state(state)
}

/// A 5xx is the server's failure: an ERROR line; but a 503 is the server declining work (every
/// export slot busy, shutting down), logged where that is decided. A response body that ends in
/// an error is logged where it fails: a failed read as an ERROR there, an export given up on a
/// client that took nothing within the budget of client errors. Not again here: a client could
/// make those at will.
fn log_failure(failure: ServerErrorsFailureClass, latency: std::time::Duration, _span: &tracing::Span) {
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        ServerErrorsFailureClass::StatusCode(status) => {
            tracing::error!(%status, latency_ms = latency.as_millis(), "response failed");
        }
        ServerErrorsFailureClass::Error(error) => tracing::debug!(error, "response body ended in an error"),
    }
}

/// Middleware for the write routes of a server that follows a DDC installation: 403 `read_only`.
async fn refuse_read_only(
    State(read_only): State<Option<Arc<str>>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match read_only {
        Some(why) => ApiError::new(StatusCode::FORBIDDEN, "read_only", why.to_string()).into_response(),
        None => next.run(request).await,
    }
}

/// Middleware for the write routes (after the token check): 429 once the token's bucket is empty.
async fn limit_writes(
    State(app): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if let Some(limiter) = &app.rate_limiter {
        // Only the admin reaches this (the token was checked first): the bucket is the
        // principal's, whatever spelling of the header it came with.
        if let Err(limited) = limiter.check("principal:admin") {
            return limited.into_response();
        }
    }
    next.run(request).await
}

async fn no_embed() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>mechfund</title>",
        "<p>The JS package is not built. Run <code>cargo xtask wasm</code>, then reload.</p>"
    ))
}

async fn no_dashboard() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>mechfund</title>",
        "<p>The dashboard is not built. Run <code>cargo xtask dashboard</code>, then reload.</p>",
        "<p>The API is at <a href=\"/api/v1/mechs\">/api/v1/mechs</a>.</p>"
    ))
}

async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The answer of the health checks.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The server is up.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "healthz", responses(
    (status = 200, description = "Up", body = Health),
))]
async fn healthz() -> Result<Response, ApiError> {
    ok_json(&Health { status: "ok" })
}

/// The server is up (the same as `/healthz`).
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "api_healthz", responses(
    (status = 200, description = "Up", body = Health),
))]
async fn api_healthz() -> Result<Response, ApiError> {
    healthz().await
}

/// The serialised OpenAPI document of this server.
#[derive(Clone, Debug)]
struct OpenApiJson(Arc<str>);

/// This document (OpenAPI 3), generated from the code; public even with `--private`.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi", responses(
    (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
))]
async fn get_openapi(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    json_response(StatusCode::OK, doc.to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, json_body(body)).into_response()
}

fn ok_json(value: &impl serde::Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_string(value).map_err(|_| ApiError::internal())?;
    Ok(json_response(StatusCode::OK, body))
}

pub(super) fn path_error(e: &PathRejection) -> ApiError {
    ApiError::not_found(format!("bad path: {e}"))
}

pub(super) fn query_error(e: &QueryRejection) -> ApiError {
    ApiError::invalid(format!("bad query string: {e}"))
}

/// An existing mech or 404.
pub(super) fn existing(app: &AppState, mech: &str) -> Result<Arc<mechfund_core::State>, ApiError> {
    app.shared.state(mech).ok_or_else(|| ApiError::not_found(format!("no mech \"{mech}\"")))
}

pub(super) async fn read<R: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, ApiError> {
    let readers = app.readers.clone();
    match tokio::task::spawn_blocking(move || readers.with(f)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "read failed");
            Err(ApiError::internal())
        }
        Err(_) => Err(ApiError::internal()),
    }
}

/// The ids of every mech with events, sorted; `main` always.
#[utoipa::path(get, path = "/mechs", tag = "reads", operation_id = "list_mechs",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Mech ids, sorted", body = Vec<String>), Unauthorized),
)]
async fn get_mechs(State(app): State<AppState>) -> Result<Response, ApiError> {
    ok_json(&app.shared.mechs())
}

/// The rules in force (`--rules`, else the defaults; spec §2.1).
#[utoipa::path(get, path = "/rules", tag = "reads", operation_id = "get_rules",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The rules", body = RulesSchema), Unauthorized),
)]
async fn get_rules(State(app): State<AppState>) -> Result<Response, ApiError> {
    ok_json(&app.shared.rules().to_value())
}

pub(super) fn query_int(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|text| text.parse::<i64>().map_err(|_| ApiError::invalid(format!("{name}: \"{text}\" is not an integer"))))
        .transpose()
}

/// The mech's state and what to display, at `now`.
#[utoipa::path(get, path = "/mechs/{mech}/state", tag = "reads", operation_id = "get_state",
    security((), ("bearer" = [])),
    params(
        ("mech" = String, Path, description = "The mech id", example = "main"),
        ("now" = Option<String>, Query, nullable = false, format = DateTime, description = "Display at this RFC 3339 time (default: the last event's)"),
    ),
    responses(
        (status = 200, description = "The state", body = StateResponse),
        Unauthorized, NotFound, Invalid,
    ),
)]
async fn get_state(
    State(app): State<AppState>,
    mech: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(mech) = mech.map_err(|e| path_error(&e))?;
    let Query(query) = query.map_err(|e| query_error(&e))?;
    let (state, now) = state_at(&app, &mech, &query)?;
    Ok(json_response(StatusCode::OK, state_json(&state, &app.shared.rules(), now.as_ref())))
}

/// The mech of the path (404) and the `now` of the query (422): `GET …/state` answers the
/// core's `display` at that `now` and `GET …/card.svg` draws it.
fn state_at(
    app: &AppState,
    mech: &str,
    query: &HashMap<String, String>,
) -> Result<(Arc<mechfund_core::State>, Option<Now>), ApiError> {
    let state = existing(app, mech)?;
    let now = query
        .get("now")
        .map(|text| Now::parse(text).map_err(|e| ApiError::invalid(format!("now: {e}"))))
        .transpose()?;
    Ok((state, now))
}

/// The mech's progress as an SVG image: the numbers of `GET …/state` at the same `now`.
///
/// Level and tier, the evolution and power bars and the total donated, for pages where no
/// script may run (an `<img>` under a strict CSP, a README, a stream overlay).
#[utoipa::path(get, path = "/mechs/{mech}/card.svg", tag = "reads", operation_id = "get_card",
    security((), ("bearer" = [])),
    params(
        ("mech" = String, Path, description = "The mech id", example = "main"),
        ("now" = Option<String>, Query, nullable = false, format = DateTime, description = "Display at this RFC 3339 time (default: the last event's)"),
        ("theme" = inline(Option<Theme>), Query, nullable = false, description = "`light` (default) or `dark`"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag of a card already held: 304 while it is still the card"),
    ),
    responses(
        (status = 200, description = "The card (SVG, fixed size, nothing external, nothing that runs)",
            body = String, content_type = "image/svg+xml",
            headers(
                ("ETag" = String, description = "Strong; changes whenever the card's bytes do"),
                ("Cache-Control" = String, description = "`no-cache`: revalidate with the ETag before each use"),
                ("Content-Security-Policy" = String, description = "`default-src 'none'; style-src 'unsafe-inline'`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"),
            )),
        (status = 304, description = "The card named by If-None-Match is still the card",
            headers(("ETag" = String, description = "The card's ETag"))),
        Unauthorized, NotFound, Invalid,
    ),
)]
async fn get_card(
    State(app): State<AppState>,
    mech: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(mech) = mech.map_err(|e| path_error(&e))?;
    let Query(query) = query.map_err(|e| query_error(&e))?;
    let (state, now) = state_at(&app, &mech, &query)?;
    let theme = match query.get("theme") {
        None => Theme::default(),
        Some(text) => Theme::parse(text)
            .ok_or_else(|| ApiError::invalid(format!("theme: \"{text}\" is neither \"light\" nor \"dark\"")))?,
    };
    let svg = card::render(&state, &display(&state, &app.shared.rules(), now.as_ref()), theme);
    Ok(svg_response(svg, headers.get(header::IF_NONE_MATCH)))
}

/// An SVG image with a strong ETag (a hash of its bytes), or 304 when `if_none_match` names it.
fn svg_response(svg: String, if_none_match: Option<&HeaderValue>) -> Response {
    let etag = format!("\"{}\"", &hex(&Sha256::digest(svg.as_bytes()))[..32]);
    let fresh = if_none_match.and_then(|v| v.to_str().ok()).is_some_and(|tags| {
        // If-None-Match compares weakly (RFC 9110 §13.1.2): a W/ prefix does not matter.
        tags.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
    });
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { svg.into_response() };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Not a max-age: an image proxy (GitHub's camo) or a browser would show a stale level for
    // that long after a donation. `no-cache` lets them keep the card but ask first, and the
    // question costs a 304 without a body while the ETag matches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // An SVG opened on its own is a document: nothing in it may run or load.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    if !fresh {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml; charset=utf-8"));
    }
    response
}

/// The goal table and the remaining costs of each later level for a member count.
#[utoipa::path(get, path = "/mechs/{mech}/whatif", tag = "reads", operation_id = "get_whatif",
    security((), ("bearer" = [])),
    params(
        ("mech" = String, Path, description = "The mech id", example = "main"),
        ("members" = i64, Query, description = "The member count to price the goals with"),
    ),
    responses(
        (status = 200, description = "The what-if table", body = WhatIfResponse),
        Unauthorized, NotFound, Invalid,
    ),
)]
async fn get_whatif(
    State(app): State<AppState>,
    mech: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(mech) = mech.map_err(|e| path_error(&e))?;
    let Query(query) = query.map_err(|e| query_error(&e))?;
    let state = existing(&app, &mech)?;
    let members = query_int(&query, "members")?.ok_or_else(|| ApiError::invalid("members: required"))?;
    let rules = &app.shared.rules();
    ok_json(&WhatIfResponse {
        members,
        table: goal_table(members, rules),
        remaining: remaining_costs(&state, members, rules),
    })
}

/// A page of the mech's events in seq order, as stored.
#[utoipa::path(get, path = "/mechs/{mech}/events", tag = "reads", operation_id = "get_events",
    security((), ("bearer" = [])),
    params(
        ("mech" = String, Path, description = "The mech id", example = "main"),
        ("after_seq" = Option<u64>, Query, nullable = false, description = "Only events with a larger seq (default 0)"),
        ("limit" = Option<u64>, Query, nullable = false, description = "At most this many events (default 1000, at most 10000)"),
    ),
    responses(
        (status = 200, description = "The events", body = Vec<EventSchema>),
        Unauthorized, NotFound, Invalid, Internal,
    ),
)]
async fn get_events(
    State(app): State<AppState>,
    mech: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(mech) = mech.map_err(|e| path_error(&e))?;
    let Query(query) = query.map_err(|e| query_error(&e))?;
    existing(&app, &mech)?;
    let after_seq = match query_int(&query, "after_seq")? {
        Some(n) => u64::try_from(n).map_err(|_| ApiError::invalid("after_seq: must be 0 or more"))?,
        None => 0,
    };
    let limit = match query_int(&query, "limit")? {
        Some(n) => u64::try_from(n).map_err(|_| ApiError::invalid("limit: must be 0 or more"))?.min(EVENTS_MAX_LIMIT),
        None => EVENTS_DEFAULT_LIMIT,
    };
    let lines = read(&app, move |conn| lines_after(conn, &mech, after_seq, limit)).await?;
    // Stored lines are JSON objects already: the array is their concatenation.
    let mut body = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, (_, line)) in lines.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(line);
    }
    body.push(']');
    Ok(json_response(StatusCode::OK, body))
}

/// The answer of `GET …/state`.
#[derive(serde::Serialize, ToSchema)]
pub struct StateResponse<'a> {
    /// The state after the mech's last event.
    #[schema(value_type = StateSchema)]
    pub state: &'a mechfund_core::State,
    /// What to display at `now`.
    #[schema(value_type = DisplaySchema)]
    pub display: mechfund_core::Display,
}

/// The answer of `GET …/whatif`.
#[derive(serde::Serialize, ToSchema)]
pub struct WhatIfResponse {
    /// The member count asked for.
    members: i64,
    /// The goal of each level 1..=10 at that count.
    #[schema(value_type = Vec<GoalPartsSchema>)]
    table: Vec<mechfund_core::rules::GoalParts>,
    /// What reaching each later level costs from the current state.
    #[schema(value_type = Vec<RemainingSchema>)]
    remaining: Vec<mechfund_core::whatif::Remaining>,
}

// ---- writes ----

/// The body, or 413 above `limit` (the route's body limit).
fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(e.status(), "payload_too_large", format!("the body is larger than {limit} bytes"))
        } else {
            ApiError::malformed(format!("cannot read the body: {e}"))
        }
    })
}

/// Parses a JSON body: syntax errors are 400, wrong types, missing or unknown fields 422.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<(T, Bytes), ApiError> {
    let bytes = read_body(body, BODY_LIMIT)?;
    match serde_json::from_slice::<T>(&bytes) {
        Ok(value) => Ok((value, bytes)),
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(ApiError::invalid(e.to_string())),
        Err(e) => Err(ApiError::malformed(format!("the body is not valid JSON: {e}"))),
    }
}

/// An amount of dollars, from a decimal string or the literal text of a JSON number (never f64).
fn parse_amount(raw: &RawValue) -> Result<Cents, ApiError> {
    let text = raw.get().trim();
    let literal: Cow<'_, str> = if text.starts_with('"') {
        Cow::Owned(serde_json::from_str::<String>(text).map_err(|e| ApiError::invalid(format!("amount: {e}")))?)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Cow::Borrowed(text)
    } else {
        return Err(ApiError::invalid("amount: must be a decimal string like \"5.00\" or a number of dollars"));
    };
    Cents::parse_dollars(&literal).map_err(|source| DomainError::Amount { field: "amount", source }.into())
}

fn check_mech(mech: &str) -> Result<(), ApiError> {
    super::store::check_mech_id(mech).map_err(ApiError::invalid)
}

/// Decodes a write, hands it to the writer and answers with what it returns.
async fn submit(app: &AppState, uri: &Uri, headers: &HeaderMap, bytes: &Bytes, mech: String, op: Op) -> Response {
    if let (Some(limiter), Op::Donation { donor: Some(donor), .. }) = (&app.rate_limiter, &op)
        && let Err(limited) = limiter.check(&format!("donor:{mech}\n{donor}"))
    {
        return limited.into_response();
    }
    let idempotency = match idempotency(uri, headers, bytes) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let (reply, answer) = oneshot::channel();
    let request = WriteRequest { mech, op, idempotency, reply };
    if app.writer.send(request).await.is_err() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is shutting down")
            .into_response();
    }
    match answer.await {
        Ok(Ok(stored)) => {
            json_response(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED), stored.body)
        }
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the writer stopped").into_response(),
    }
}

fn idempotency(uri: &Uri, headers: &HeaderMap, bytes: &Bytes) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 100 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::invalid("Idempotency-Key: 1 to 100 visible ASCII characters"))?;
    let mut hash = Sha256::new();
    hash.update(b"POST\n");
    hash.update(uri.path().as_bytes());
    hash.update(b"\n");
    hash.update(bytes);
    Ok(Some(Idempotency { key: key.to_owned(), request_hash: hex(&hash.finalize()) }))
}

/// Generates a write handler: decode the mech and the JSON body `$body`, turn it into an [`Op`]
/// and submit it. The `#[utoipa::path]` given first is put on the generated fn.
macro_rules! write_handler {
    ($(#[$attr:meta])* $name:ident, $body:ty, |$mech:ident, $parsed:ident| $to_op:expr) => {
        $(#[$attr])*
        async fn $name(
            State(app): State<AppState>,
            path: Result<Path<String>, PathRejection>,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let decoded = (|| {
                let Path($mech) = path.map_err(|e| path_error(&e))?;
                check_mech(&$mech)?;
                let ($parsed, bytes) = parse_body::<$body>(body)?;
                let op: Op = $to_op?;
                Ok::<_, ApiError>(($mech, op, bytes))
            })();
            match decoded {
                Ok((mech, op, bytes)) => submit(&app, &uri, &headers, &bytes, mech, op).await,
                Err(e) => e.into_response(),
            }
        }
    };
}

/// A donation by a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DonationBody {
    #[schema(schema_with = donation_amount_schema)]
    amount: Box<RawValue>,
    /// Who donated (also keys the per-donor rate limit).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    donor: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    channel_id: Option<String>,
    /// The payment's id, for the record.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    donation_id: Option<String>,
    /// The member count now, recorded first if it changes the goal.
    #[serde(default)]
    #[schema(minimum = 0)]
    member_count: Option<i64>,
}

write_handler!(
    /// Records a donation (dollars); the answer holds any level-up it caused.
    #[utoipa::path(post, path = "/mechs/{mech}/donations", tag = "writes", operation_id = "add_donation",
    request_body(content = DonationBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
    post_donation, DonationBody, |mech, body| parse_amount(&body.amount).map(|amount| Op::Donation {
    amount,
    donor: body.donor,
    channel_id: body.channel_id,
    donation_id: body.donation_id,
    member_count: body.member_count,
}));

/// A donation by the system (power only, no evolution).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SystemDonationBody {
    #[schema(schema_with = system_amount_schema)]
    amount: Box<RawValue>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    event_name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    description: Option<String>,
}

write_handler!(
    /// Records a system donation (power only).
    #[utoipa::path(post, path = "/mechs/{mech}/system-donations", tag = "writes", operation_id = "add_system_donation",
    request_body(content = SystemDonationBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
    post_system_donation, SystemDonationBody, |mech, body| parse_amount(&body.amount)
    .map(|amount| { Op::SystemDonation { amount, event_name: body.event_name, description: body.description } }));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberDto {
    id: String,
    #[serde(default)]
    bot: bool,
    #[serde(default)]
    system: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChannelDto {
    id: String,
    #[serde(default = "yes")]
    accessible: bool,
    #[serde(default)]
    members: Vec<MemberDto>,
}

fn yes() -> bool {
    true
}

/// `POST …/member-count` as the handler decodes it: both forms' fields, so that a body mixing
/// them, or giving neither, gets a message that says so ([`member_source`]) rather than serde's
/// "did not match any variant". Documented as [`MemberCountForms`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberCountBody {
    #[serde(default)]
    member_count: Option<i64>,
    #[serde(default)]
    channels: Option<Vec<ChannelDto>>,
    #[serde(default)]
    guild_member_count: Option<i64>,
}

pub(super) fn member_source(body: MemberCountBody) -> Result<Op, ApiError> {
    let source = match (body.member_count, body.channels) {
        (Some(count), None) if body.guild_member_count.is_none() => MemberSource::Count(count),
        (None, Some(channels)) => MemberSource::Channels {
            channels: channels
                .into_iter()
                .map(|c| Channel {
                    id: c.id,
                    accessible: c.accessible,
                    members: c.members.into_iter().map(|m| Member { id: m.id, bot: m.bot, system: m.system }).collect(),
                })
                .collect(),
            guild_member_count: body.guild_member_count,
        },
        _ => {
            return Err(ApiError::invalid(
                "give either \"member_count\" or \"channels\" (with an optional \"guild_member_count\")",
            ));
        }
    };
    Ok(Op::MemberCount(source))
}

// `POST …/member-count` as documented; `openapi.rs` tests that the handler accepts the same bodies.
/// A member-count sample: either `member_count`, or `channels` (with an optional
/// `guild_member_count`).
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = MemberCountBody)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) enum MemberCountForms {
    Count(MemberCountGiven),
    Channels(MemberCountChannels),
}

/// A member count taken elsewhere.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) struct MemberCountGiven {
    /// The count.
    #[schema(minimum = 0)]
    member_count: i64,
}

/// Channels whose human members are counted, each member once.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) struct MemberCountChannels {
    /// The channels with their members (ids unique across channels count once).
    channels: Vec<ChannelDto>,
    /// The guild's count, used when no channel is accessible.
    #[schema(minimum = 0)]
    guild_member_count: Option<i64>,
}

write_handler!(
    /// Records a member-count sample: a count, or the channels' members counted uniquely.
    #[utoipa::path(post, path = "/mechs/{mech}/member-count", tag = "writes", operation_id = "update_member_count",
    request_body(content = MemberCountForms, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        (status = 200, description = "No count could be taken (no channel readable, no guild count): nothing recorded", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
    post_member_count, MemberCountBody, |mech, body| member_source(body));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PowerGiftBody {
    /// Each campaign grants once per mech.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    campaign_id: String,
}

write_handler!(
    /// Grants a campaign's power gift (once per campaign, only when the mech is offline).
    #[utoipa::path(post, path = "/mechs/{mech}/power-gifts", tag = "writes", operation_id = "grant_power_gift",
    request_body(content = PowerGiftBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
    post_power_gift, PowerGiftBody, |mech, body| Ok::<_, ApiError>(Op::PowerGift {
    campaign_id: body.campaign_id
}));

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ToggleBody {
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    reason: String,
}

/// Deletes a donation, or restores a deleted one (toggles).
#[utoipa::path(post, path = "/mechs/{mech}/donations/{seq}/toggle-deletion", tag = "writes",
    operation_id = "toggle_donation_deletion",
    request_body(content = ToggleBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(MechPath, ("seq" = u64, Path, description = "The seq of the donation"), IdempotencyKey),
    responses(
        (status = 201, description = "The deletion event and the state after it", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
async fn post_toggle_deletion(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded = (|| {
        let Path((mech, seq)) = path.map_err(|e| path_error(&e))?;
        check_mech(&mech)?;
        let seq: u64 = seq.parse().map_err(|_| ApiError::not_found(format!("no event with seq \"{seq}\"")))?;
        let (body, bytes) = parse_body::<ToggleBody>(body)?;
        Ok::<_, ApiError>((mech, Op::ToggleDeletion { seq, reason: body.reason }, bytes))
    })();
    match decoded {
        Ok((mech, op, bytes)) => submit(&app, &uri, &headers, &bytes, mech, op).await,
        Err(e) => e.into_response(),
    }
}

/// The answer of `POST …/import`.
#[derive(serde::Serialize, ToSchema)]
pub struct ImportResponse<'a> {
    /// Events stored.
    pub imported: u64,
    /// Seq of the first imported event.
    pub first_seq: u64,
    /// Seq of the last imported event.
    pub last_seq: u64,
    /// The mech's state after them.
    #[schema(value_type = StateSchema)]
    pub state: &'a mechfund_core::State,
}

/// `POST …/import`: the body is a DDC `events.jsonl` (every line of mech `{mech}`), imported into
/// a mech that has no events yet, all or nothing (spec §3.3; `mechfund import` over HTTP).
#[utoipa::path(post, path = "/mechs/{mech}/import", tag = "writes", operation_id = "import_events",
    request_body(content = String, content_type = "text/plain",
        description = "A DDC events.jsonl: one JSON event of this mech per line, seqs strictly increasing \
            (any Content-Type is accepted, e.g. application/x-ndjson)"),
    security(("bearer" = [])),
    params(MechPath, IdempotencyKey),
    responses(
        (status = 201, description = "Every line stored; the mech's state after them", body = ImportResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
async fn post_import(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded = (|| {
        let Path(mech) = path.map_err(|e| path_error(&e))?;
        check_mech(&mech)?;
        let bytes = read_body(body, app.import_limit)?;
        Ok::<_, ApiError>((mech, bytes))
    })();
    match decoded {
        Ok((mech, bytes)) => {
            let op = Op::Import { lines: bytes.clone() };
            submit(&app, &uri, &headers, &bytes, mech, op).await
        }
        Err(e) => e.into_response(),
    }
}
