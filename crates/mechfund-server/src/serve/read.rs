//! The read handlers of `/api/v1` (spec §3.3) and the health checks: answers from the published
//! states ([`super::shared`]) and, for pages of events, the read-only connections.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mechfund_core::whatif::{goal_table, remaining_costs};
use mechfund_core::{Now, display};
use sha2::{Digest, Sha256};

use super::card::{self, Theme};
use super::error::ApiError;
use super::extract::{Mech, Params};
use super::openapi::{EventSchema, Internal, Invalid, NotFound, RulesSchema, Unauthorized};
use super::responses::{Health, StateResponse, WhatIfResponse, json_response, ok_json, state_json};
use super::state::AppState;
use crate::store::{hex, lines_after};

/// Default and largest page of `GET …/events`.
const EVENTS_DEFAULT_LIMIT: u64 = 1000;
const EVENTS_MAX_LIMIT: u64 = 10_000;

/// The server is up.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "healthz", responses(
    (status = 200, description = "Up", body = Health),
))]
pub(super) async fn healthz() -> Result<Response, ApiError> {
    ok_json(&Health { status: "ok" })
}

/// The server is up (the same as `/healthz`).
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "api_healthz", responses(
    (status = 200, description = "Up", body = Health),
))]
pub(super) async fn api_healthz() -> Result<Response, ApiError> {
    healthz().await
}

/// The serialised OpenAPI document of this server.
#[derive(Clone, Debug)]
pub(super) struct OpenApiJson(pub(super) Arc<str>);

/// This document (OpenAPI 3), generated from the code; public even with `--private`.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi", responses(
    (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
))]
pub(super) async fn get_openapi(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    json_response(StatusCode::OK, doc.to_string())
}

/// The ids of every mech with events, sorted; `main` always.
#[utoipa::path(get, path = "/mechs", tag = "reads", operation_id = "list_mechs",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Mech ids, sorted", body = Vec<String>), Unauthorized),
)]
pub(super) async fn get_mechs(State(app): State<AppState>) -> Result<Response, ApiError> {
    ok_json(&app.shared.mechs())
}

/// The rules in force (`--rules`, else the defaults; spec §2.1).
#[utoipa::path(get, path = "/rules", tag = "reads", operation_id = "get_rules",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The rules", body = RulesSchema), Unauthorized),
)]
pub(super) async fn get_rules(State(app): State<AppState>) -> Result<Response, ApiError> {
    ok_json(&app.shared.rules().to_value())
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
pub(super) async fn get_state(
    State(app): State<AppState>,
    Mech(mech): Mech,
    query: Params,
) -> Result<Response, ApiError> {
    let (state, now) = state_at(&app, &mech, &query).await?;
    Ok(json_response(StatusCode::OK, state_json(&state, &app.shared.rules(), now.as_ref())))
}

/// The mech of the path (404) and the `now` of the query (422): `GET …/state` answers the
/// core's `display` at that `now` and `GET …/card.svg` draws it.
async fn state_at(
    app: &AppState,
    mech: &str,
    query: &Params,
) -> Result<(Arc<mechfund_core::State>, Option<Now>), ApiError> {
    let state = app.mech(mech).await?;
    Ok((state, query.now()?))
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
pub(super) async fn get_card(
    State(app): State<AppState>,
    Mech(mech): Mech,
    query: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (state, now) = state_at(&app, &mech, &query).await?;
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
pub(super) async fn get_whatif(
    State(app): State<AppState>,
    Mech(mech): Mech,
    query: Params,
) -> Result<Response, ApiError> {
    let state = app.mech(&mech).await?;
    let members = query.int("members")?.ok_or_else(|| ApiError::invalid("members: required"))?;
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
pub(super) async fn get_events(
    State(app): State<AppState>,
    Mech(mech): Mech,
    query: Params,
) -> Result<Response, ApiError> {
    app.mech(&mech).await?;
    let after_seq = query.count("after_seq", 0)?;
    let limit = query.count("limit", EVENTS_DEFAULT_LIMIT)?.min(EVENTS_MAX_LIMIT);
    let lines = app.read(move |conn| lines_after(conn, &mech, after_seq, limit)).await?;
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
