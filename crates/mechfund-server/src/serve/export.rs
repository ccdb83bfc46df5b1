//! `GET /api/v1/mechs/{mech}/events.jsonl`: the mech's whole log, streamed from one read
//! transaction, with bounds on what a client that reads nothing can hold.
//!
//! An export runs on a blocking thread that holds a read connection and its SQLite read
//! transaction, which pins the WAL (no checkpoint gets past it, so the WAL grows while writes go
//! on). A client that never reads would hold all of that for ever, and enough of them would
//! take every blocking thread. So:
//!
//! - at most `--max-exports` exports ([`super::slots`]) stream at once; one more answers 503 `busy` with
//!   `Retry-After` (the server is at capacity, not the client at fault: the standard overload
//!   answer, which a client may retry);
//! - at most [`BUFFERED`] chunks of [`CHUNK`] bytes wait for the client;
//! - a chunk the client has not taken after `--export-stall-secs` ends the export:
//!   the transaction, the connection and the thread are given up, and the response ends in an
//!   error (no last chunk), so the client sees a broken transfer, never a short log that looks
//!   complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::clientlog::client_error;
use super::error::ApiError;
use super::extract::Mech;
use super::openapi::{Busy, Internal, NotFound, Unauthorized};
use super::state::AppState;
use crate::store::{Readers, for_each_line};

/// Bytes per chunk of an export.
pub const CHUNK: usize = 256 << 10;
/// Chunks read ahead of the client.
pub const BUFFERED: usize = 2;
/// The `Retry-After` of a 503 `busy`, in seconds.
const RETRY_AFTER: &str = "5";

/// The mech's whole log as `events.jsonl` (format 2.3), imported lines byte for byte.
///
/// Streamed in chunks from one read transaction: a consistent export of any size, in bounded
/// memory, while writes go on. A client that takes nothing for `--export-stall-secs` loses the
/// export (the transfer breaks); at most `--max-exports` stream at once.
#[utoipa::path(get, path = "/mechs/{mech}/events.jsonl", tag = "reads", operation_id = "export_events",
    security((), ("bearer" = [])),
    params(("mech" = String, Path, description = "The mech id", example = "main")),
    responses(
        (status = 200, description = "One JSON event per line", body = String, content_type = "application/x-ndjson"),
        Unauthorized, NotFound, Internal, Busy,
    ),
)]
pub async fn get_events_jsonl(State(app): State<AppState>, Mech(mech): Mech) -> Result<Response, ApiError> {
    app.mech(&mech).await?;
    let Ok(slot) = app.exports.slots.clone().try_acquire_owned() else {
        client_error!(max_exports = app.exports.max, "an export was refused: every export slot is streaming");
        let message = format!("{} exports are streaming; retry in a few seconds", app.exports.max);
        let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
        return Ok(response);
    };
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFERED);
    let complete = Arc::new(AtomicBool::new(false));
    let (readers, stall, done) = (app.readers.clone(), app.exports.stall, complete.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || export(&readers, &mech, &tx, &runtime, stall, slot, &done));
    // The body ends cleanly only after the last chunk of a complete export; otherwise in an
    // error, which breaks the transfer (hyper sends no last chunk).
    let body = futures_util::stream::unfold(Some(rx), move |rx| {
        let complete = complete.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(chunk) => Some((Ok(chunk), Some(rx))),
                None if complete.load(Ordering::Acquire) => None,
                None => Some((Err(std::io::Error::other("the export stopped before the end of the log")), None)),
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// How an export ended.
enum Ended {
    /// Every line was sent.
    Complete,
    /// The client went away.
    Gone,
    /// The client took nothing for the stall time.
    Stalled,
}

/// Streams the lines of `mech` to `tx` in chunks from one read transaction; blocking. Sets
/// `complete` once the last chunk is queued, and frees `slot` when it returns.
fn export(
    readers: &Readers,
    mech: &str,
    tx: &mpsc::Sender<Bytes>,
    runtime: &tokio::runtime::Handle,
    stall: Duration,
    slot: OwnedSemaphorePermit,
    complete: &AtomicBool,
) {
    let send = |chunk: Vec<u8>| match runtime.block_on(tx.send_timeout(chunk.into(), stall)) {
        Ok(()) => Ok(()),
        Err(SendTimeoutError::Closed(_)) => Err(Ended::Gone),
        Err(SendTimeoutError::Timeout(_)) => Err(Ended::Stalled),
    };
    let read = readers.with(|conn| {
        let mut ended = Ok(());
        let mut chunk = Vec::with_capacity(CHUNK + 4096);
        for_each_line(conn, mech, |line| {
            chunk.extend_from_slice(line);
            chunk.push(b'\n');
            if chunk.len() >= CHUNK {
                ended = send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK + 4096)));
            }
            ended.is_ok()
        })?;
        if ended.is_ok() && !chunk.is_empty() {
            ended = send(chunk);
        }
        Ok(ended.err().unwrap_or(Ended::Complete))
    });
    // The statement, and with it the read transaction, is over: the WAL can be checkpointed.
    drop(slot);
    match read {
        Ok(Ended::Complete) => complete.store(true, Ordering::Release),
        Ok(Ended::Gone) => tracing::debug!(mech, "an export's client went away"),
        Ok(Ended::Stalled) => client_error!(
            mech,
            stall_s = stall.as_secs(),
            "an export's client took nothing within the stall time: the export gave up its read transaction"
        ),
        Err(e) => tracing::error!(error = %e, mech, "export failed"),
    }
}
