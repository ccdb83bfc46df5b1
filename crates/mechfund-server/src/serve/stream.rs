//! `GET /api/v1/mechs/{mech}/events/stream`: server-sent events of a mech's log.
//!
//! A subscriber gets the stored lines after `Last-Event-ID` (or `?after_seq=`), then every line
//! as it commits, each once and in seq order (`id:` the seq, `data:` the exact line), and after
//! the backlog and each batch a `state` message with `{"state","display"}`: the state after the
//! last line of the mech committed so far, so a client that applied the lines can check itself
//! against it (its `last_event_seq` below the client's means the store went back: a restore).
//!
//! Commits reach the streams through the fan-out ([`super::feed`]): one batch per mech and
//! window, encoded once (1,000 subscribers at 2,000 donations/s: see BENCHMARKS.md). A
//! subscriber subscribes *before* reading the backlog, so
//! nothing committed meanwhile is missed, and skips lines at or below the last seq it sent, so
//! nothing is sent twice. One too slow for the broadcast (it lagged) reads what it missed from
//! the store instead. A subscriber waits on nothing but the broadcast
//! (no timer of its own). Streams end when the server shuts down; `EventSource` then reconnects
//! with `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::extract::{Mech, Params};
use super::feed::{Feed, push_line, push_state};
use super::openapi::{Invalid, NotFound, Unauthorized};
use super::responses::state_json;
use super::state::AppState;
use crate::store::lines_after;

/// Lines read from the store per query while catching up.
const PAGE: u64 = 1000;
/// The first message: `EventSource` reconnects after a second.
const RETRY: &str = "retry: 1000\n\n";

/// The handler: checks the mech and where to start; the body is a `Follower`.
#[utoipa::path(get, path = "/mechs/{mech}/events/stream", tag = "reads", operation_id = "stream_events",
    security((), ("bearer" = [])),
    params(
        ("mech" = String, Path, description = "The mech id", example = "main"),
        ("after_seq" = Option<u64>, Query, description = "Send the stored lines above this seq first (default 0: all)"),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = r"^[0-9]+$",
            description = "The last seq received (what EventSource sends on reconnect); overrides after_seq"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String, description = "Server-sent events: \
            `id: <seq>` + `data: <the stored line>` per event, in seq order, each once; after the backlog and \
            each commit, `event: state` with `{\"state\",\"display\"}`; `: keep-alive` comments"),
        Unauthorized, NotFound, Invalid,
    ),
)]
pub async fn get_event_stream(
    State(app): State<AppState>,
    Mech(mech): Mech,
    query: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.mech(&mech).await?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID: must be the seq of an event (0 or more)"))?,
        None => query.count("after_seq", 0)?,
    };
    // Subscribed before the backlog is read: a commit in between is in a batch.
    let follower =
        Follower { feed: app.shared.subscribe(), app, mech, last: after, stated: 0, sent: 0, phase: Phase::Retry };
    // The body pulls the next piece when hyper has written the last one: one task per
    // subscriber (the connection's), woken once per batch.
    let body = futures_util::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|bytes| (Ok::<_, Infallible>(bytes), follower))
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold the messages back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Where a subscriber is.
enum Phase {
    /// Nothing sent yet: the `retry:` line comes first.
    Retry,
    /// Sending stored lines above `last`, a page at a time (the backlog, or after lagging or an
    /// import), then the current state.
    Backlog,
    /// Following the batches.
    Live,
}

/// One subscriber's stream.
struct Follower {
    app: AppState,
    mech: String,
    /// Lines at or below this seq are not sent: where the client resumes (`?after_seq=` beyond
    /// the end asks for `state` messages only), then the last line sent.
    last: u64,
    /// The `last_event_seq` of the last `state` message sent (0 before the first).
    stated: u64,
    /// The seq of the last line sent (0 before the first).
    sent: u64,
    feed: broadcast::Receiver<Arc<Feed>>,
    phase: Phase,
}

impl Follower {
    /// The next piece of the stream; `None` ends it (shutdown, or the store failed).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Retry => {
                    self.phase = Phase::Backlog;
                    return Some(Bytes::from_static(RETRY.as_bytes()));
                }
                Phase::Backlog => {
                    let (mech, after) = (self.mech.clone(), self.last);
                    let page = match self.app.read(move |conn| lines_after(conn, &mech, after, PAGE)).await {
                        Ok(page) => page,
                        Err(_) => return None,
                    };
                    let mut text = String::new();
                    for (seq, line) in &page {
                        push_line(&mut text, *seq, line);
                        self.last = *seq;
                        self.sent = *seq;
                    }
                    if (page.len() as u64) < PAGE {
                        // The last page: the state after it goes in the same write, and must be
                        // the state after the last line sent. A state published since the page
                        // was read is of lines already in the store (commit, then publish): read
                        // on first.
                        match self.app.shared.state(&self.mech) {
                            // Lines were committed after the page was read.
                            Some(state) if state.last_event_seq > self.last => {
                                if page.is_empty() {
                                    // Subscribed before the page was read: their batch brings
                                    // them and the state after them. (Stating now would send a
                                    // state ahead of its lines.)
                                    self.phase = Phase::Live;
                                }
                            }
                            // Lines sent were committed before their state was published
                            // (commit, then publish): their batch, which this subscriber gets,
                            // brings that state. (Stating now would send a state behind its
                            // lines.)
                            Some(state) if state.last_event_seq < self.sent => self.phase = Phase::Live,
                            Some(state) => {
                                push_state(&mut text, &state_json(&state, &self.app.shared.rules(), None));
                                self.stated = state.last_event_seq;
                                self.phase = Phase::Live;
                            }
                            None => self.phase = Phase::Live,
                        }
                    }
                    if !text.is_empty() {
                        return Some(Bytes::from(text));
                    }
                }
                Phase::Live => {
                    // Set before `Feed::End` is sent: a stream that lagged past the end ends too.
                    if self.app.shared.streams_ending() {
                        return None;
                    }
                    match self.feed.recv().await.as_deref() {
                        Ok(Feed::Batch(batch)) if batch.mech == self.mech => {
                            if batch.catch_up {
                                self.phase = Phase::Backlog;
                                continue;
                            }
                            // A batch the backlog already covered: its state is older than the
                            // one sent.
                            let Some(&(last, _)) = batch.starts.last().filter(|(seq, _)| *seq > self.stated) else {
                                continue;
                            };
                            let from = batch
                                .starts
                                .iter()
                                .find(|(seq, _)| *seq > self.last)
                                .map_or(batch.state_at, |(_, at)| *at);
                            self.last = self.last.max(last);
                            self.sent = self.sent.max(last);
                            self.stated = last;
                            return Some(batch.text.slice(from..));
                        }
                        Ok(Feed::Batch(_)) => {}
                        Ok(Feed::KeepAlive) => return Some(Bytes::from_static(b": keep-alive\n\n")),
                        Ok(Feed::End) | Err(RecvError::Closed) => return None,
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(mech = self.mech, missed, "a slow event stream catches up from the store");
                            self.phase = Phase::Backlog;
                        }
                    }
                }
            }
        }
    }
}
