//! The router: [`app`] builds the whole application from an [`AppState`], with no socket, so
//! tests call it in-process. `/api/v1` (spec §3.3) comes from ONE route table that also feeds
//! the OpenAPI document; around it, the write middleware (read-only refusal, token, rate
//! limit), the JS package at `/embed/`, the dashboard at `/`, CORS and the request log.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, OriginalUri, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::require_token;
use super::error::ApiError;
use super::extract::BODY_LIMIT;
use super::files::{Dashboard, Files, Package};
use super::openapi::{ApiDoc, make_private};
use super::read::OpenApiJson;
use super::state::AppState;
use super::{export, read, stream, write};

/// The one route table of `/api/v1`: each `routes!` entry registers the handler in the router
/// AND its `#[utoipa::path]` in the OpenAPI document. Add routes here only (never with a plain
/// `.route`), or the document and the router drift apart (tests/http/openapi.rs checks both ways).
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let auth = middleware::from_fn_with_state(state.token.clone(), require_token);
    let writes = OpenApiRouter::new()
        .routes(routes!(write::post_donation))
        .routes(routes!(write::post_system_donation))
        .routes(routes!(write::post_member_count))
        .routes(routes!(write::post_power_gift))
        .routes(routes!(write::post_toggle_deletion))
        .routes({
            // Imports are big: their own body limit (`--max-import-mib`).
            let (schemas, paths, route) = routes!(write::post_import);
            (schemas, paths, route.layer(DefaultBodyLimit::max(state.import_limit)))
        })
        // The last layer runs first: a read-only server refuses before the token is checked,
        // and the token is checked before it is counted.
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_writes))
        .route_layer(auth.clone())
        .route_layer(middleware::from_fn_with_state(state.read_only.clone(), refuse_read_only));
    let reads = OpenApiRouter::new()
        .routes(routes!(read::get_mechs))
        .routes(routes!(read::get_state))
        .routes(routes!(read::get_card))
        .routes(routes!(read::get_events))
        .routes(routes!(export::get_events_jsonl))
        .routes(routes!(stream::get_event_stream))
        .routes(routes!(read::get_whatif))
        .routes(routes!(read::get_rules));
    let reads = if state.private { reads.route_layer(auth) } else { reads };
    OpenApiRouter::new()
        .routes(routes!(read::api_healthz))
        .routes(routes!(read::get_openapi))
        .merge(reads)
        .merge(writes)
}

/// The `/api/v1` and `/healthz` routes and the OpenAPI document that describes exactly them.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, api_doc) = api_routes(state).split_for_parts();
    let api = api.fallback(api_not_found).method_not_allowed_fallback(method_not_allowed);
    let (root, mut doc) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(read::healthz)).split_for_parts();
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
