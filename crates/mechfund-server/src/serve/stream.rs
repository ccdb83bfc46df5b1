//! `GET /api/v1/mechs/{mech}/events/stream`: server-sent events of a mech's log.
//!
//! A subscriber gets the stored lines after `Last-Event-ID` (or `?after_seq=`), then every line
//! as it commits, each once and in seq order (`id:` the seq, `data:` the exact line), and after
//! the backlog and each batch a `state` message with `{"state","display"}`: the state after the
//! last line of the mech committed so far, so a client that applied the lines can check itself
//! against it (its `last_event_seq` below the client's means the store went back: a restore).
//!
//! The writer hands every commit to one fan-out task ([`fan_out`]), which encodes the SSE text
//! once and broadcasts it as [`Batch`]es: a commit after a quiet spell goes out at once, commits
//! arriving faster are gathered for at most [`COALESCE`], so each subscriber costs one wake-up
//! and one socket write per batch however many donations it holds (1,000 subscribers at 2,000
//! donations/s: see BENCHMARKS.md). A subscriber subscribes *before* reading the backlog, so
//! nothing committed meanwhile is missed, and skips lines at or below the last seq it sent, so
//! nothing is sent twice. One too slow for the broadcast (it lagged) reads what it missed from
//! the store instead. The fan-out also sends every stream a keep-alive comment every
//! [`KEEP_ALIVE`] and, at shutdown, the end: a subscriber waits on nothing but the broadcast
//! (no timer of its own). Streams end when the server shuts down; `EventSource` then reconnects
//! with `Last-Event-ID`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use tokio::time::Instant;

use super::api::{AppState, existing, path_error, query_error, query_int, read};
use super::error::ApiError;
use super::openapi::{Invalid, NotFound, Unauthorized};
use super::store::lines_after;
use super::writer::{Committed, state_json};

/// Lines read from the store per query while catching up.
const PAGE: u64 = 1000;
/// After a batch, commits are gathered this long before the next one goes out.
pub const COALESCE: Duration = Duration::from_millis(20);
/// A comment this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The first message: `EventSource` reconnects after a second.
const RETRY: &str = "retry: 1000\n\n";

/// What the fan-out sends to every event stream.
#[derive(Debug)]
pub enum Feed {
    /// Commits of one mech.
    Batch(Batch),
    /// A comment that keeps idle connections (and proxies) open.
    KeepAlive,
    /// The server is shutting down: every stream ends.
    End,
}

/// Commits of one mech, encoded once for every subscriber.
#[derive(Debug)]
pub struct Batch {
    mech: String,
    /// The SSE text: one message per line, then the `state` message.
    text: Bytes,
    /// Each line's seq and where its message starts in `text`, in seq order.
    starts: Vec<(u64, usize)>,
    /// Where the `state` message starts.
    state_at: usize,
    /// The lines are in the store only (an import): subscribers read them from there.
    catch_up: bool,
}

impl Batch {
    /// The commits of one window, one batch per mech (in the order the mechs first appear).
    fn group(window: Vec<Committed>) -> Vec<Batch> {
        let mut order: Vec<String> = Vec::new();
        let mut by_mech: HashMap<String, Vec<Committed>> = HashMap::new();
        for committed in window {
            if !by_mech.contains_key(&committed.mech) {
                order.push(committed.mech.clone());
            }
            by_mech.entry(committed.mech.clone()).or_default().push(committed);
        }
        order
            .into_iter()
            .filter_map(|mech| by_mech.remove(&mech).map(|commits| Batch::encode(mech, &commits)))
            .collect()
    }

    fn encode(mech: String, commits: &[Committed]) -> Batch {
        let catch_up = commits.iter().any(|c| c.catch_up);
        let mut text = String::new();
        let mut starts = Vec::new();
        if !catch_up {
            for (seq, line) in commits.iter().flat_map(|c| &c.lines) {
                starts.push((*seq, text.len()));
                push_line(&mut text, *seq, line);
            }
        }
        let state_at = text.len();
        if let Some(last) = commits.last() {
            push_state(&mut text, &last.state);
        }
        Batch { mech, text: Bytes::from(text), starts, state_at, catch_up }
    }
}

/// `id: SEQ` and `data: LINE`. SSE data cannot hold a carriage return; outside JSON strings
/// (where a raw one is invalid anyway) it is whitespace, so a space means the same.
fn push_line(text: &mut String, seq: u64, line: &str) {
    let _ = write!(text, "id: {seq}\ndata: ");
    if line.contains(['\r', '\n']) {
        text.push_str(&line.replace(['\r', '\n'], " "));
    } else {
        text.push_str(line);
    }
    text.push_str("\n\n");
}

fn push_state(text: &mut String, state: &str) {
    text.push_str("event: state\ndata: ");
    text.push_str(state);
    text.push_str("\n\n");
}

/// The fan-out: turns the writer's commits into [`Batch`]es for the subscribers and sends a
/// keep-alive every [`KEEP_ALIVE`]. Runs until the writer's side of the feed is gone.
pub async fn fan_out(mut commits: mpsc::UnboundedReceiver<Committed>, streams: broadcast::Sender<Arc<Feed>>) {
    let mut last_sent: Option<Instant> = None;
    let mut keep_alive = tokio::time::interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    // Late ticks (a busy fan-out) are not made up in a burst.
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = keep_alive.tick() => {
                let _ = streams.send(Arc::new(Feed::KeepAlive));
                continue;
            }
            first = commits.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        let mut window = vec![first];
        // Right after a batch, gather what else commits within the window.
        if let Some(until) = last_sent.map(|at| at + COALESCE).filter(|until| *until > Instant::now()) {
            let deadline = tokio::time::sleep_until(until);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    next = commits.recv() => match next {
                        Some(committed) => window.push(committed),
                        None => break,
                    },
                }
            }
        }
        while let Ok(committed) = commits.try_recv() {
            window.push(committed);
        }
        for batch in Batch::group(window) {
            // No subscriber is no error.
            let _ = streams.send(Arc::new(Feed::Batch(batch)));
        }
        last_sent = Some(Instant::now());
    }
}

/// The handler: checks the mech and where to start; the body is a [`Follower`].
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
    mech: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(mech) = mech.map_err(|e| path_error(&e))?;
    let Query(query) = query.map_err(|e| query_error(&e))?;
    existing(&app, &mech)?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID: must be the seq of an event (0 or more)"))?,
        None => match query_int(&query, "after_seq")? {
            Some(n) => u64::try_from(n).map_err(|_| ApiError::invalid("after_seq: must be 0 or more"))?,
            None => 0,
        },
    };
    // Subscribed before the backlog is read: a commit in between is in a batch.
    let follower = Follower { feed: app.shared.subscribe(), app, mech, last: after, stated: 0, phase: Phase::Retry };
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
                    let page = match read(&self.app, move |conn| lines_after(conn, &mech, after, PAGE)).await {
                        Ok(page) => page,
                        Err(_) => return None,
                    };
                    let mut text = String::new();
                    for (seq, line) in &page {
                        push_line(&mut text, *seq, line);
                        self.last = *seq;
                    }
                    if (page.len() as u64) < PAGE {
                        // The last page: the state after it goes in the same write, and must be
                        // the state after the last line sent. A state published since the page
                        // was read is of lines already in the store (commit, then publish): read
                        // on first.
                        match self.app.shared.state(&self.mech) {
                            Some(state) if state.last_event_seq > self.last && !page.is_empty() => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(mech: &str, seq: u64) -> Committed {
        Committed {
            mech: mech.to_owned(),
            lines: vec![(seq, format!("{{\"seq\":{seq}}}"))],
            catch_up: false,
            state: format!("{{\"after\":{seq}}}").into(),
        }
    }

    /// A broadcast batch as (mech, SSE text).
    fn batch(feed: &Feed) -> (&str, &str) {
        match feed {
            Feed::Batch(batch) => (&batch.mech, std::str::from_utf8(&batch.text).expect("UTF-8")),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    // The clock is paused: it moves only when every task waits on a timer, so `elapsed()` is
    // exactly when the fan-out sent.
    #[tokio::test(start_paused = true)]
    async fn a_commit_after_a_quiet_spell_goes_out_at_once_and_faster_ones_are_gathered() {
        let (feed, commits) = mpsc::unbounded_channel();
        let (streams, mut received) = broadcast::channel(16);
        tokio::spawn(fan_out(commits, streams));
        let start = Instant::now();

        feed.send(commit("main", 1)).unwrap();
        let first = received.recv().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(batch(&first), ("main", "id: 1\ndata: {\"seq\":1}\n\nevent: state\ndata: {\"after\":1}\n\n"));

        // Within the window after a batch: gathered, one batch per mech, in order of appearance,
        // each with the state after its last commit.
        for c in [commit("main", 2), commit("other", 3), commit("main", 4)] {
            feed.send(c).unwrap();
        }
        let main = received.recv().await.unwrap();
        assert_eq!(start.elapsed(), COALESCE);
        assert_eq!(
            batch(&main),
            ("main", "id: 2\ndata: {\"seq\":2}\n\nid: 4\ndata: {\"seq\":4}\n\nevent: state\ndata: {\"after\":4}\n\n")
        );
        let other = received.recv().await.unwrap();
        assert_eq!(batch(&other), ("other", "id: 3\ndata: {\"seq\":3}\n\nevent: state\ndata: {\"after\":3}\n\n"));
        assert_eq!(start.elapsed(), COALESCE);
    }

    #[tokio::test(start_paused = true)]
    async fn every_stream_gets_a_keep_alive_every_fifteen_seconds() {
        let (feed, commits) = mpsc::unbounded_channel::<Committed>();
        let (streams, mut received) = broadcast::channel(16);
        tokio::spawn(fan_out(commits, streams));
        let start = Instant::now();
        for n in 1..=2 {
            assert!(matches!(*received.recv().await.unwrap(), Feed::KeepAlive));
            assert_eq!(start.elapsed(), KEEP_ALIVE * n);
        }
        // The writer gone, the fan-out ends (and with it the broadcast).
        drop(feed);
        assert!(matches!(received.recv().await, Err(RecvError::Closed)));
    }

    #[test]
    fn line_breaks_inside_a_line_become_spaces() {
        let mut text = String::new();
        push_line(&mut text, 7, "{\"a\":\r\n1}");
        assert_eq!(text, "id: 7\ndata: {\"a\":  1}\n\n");
    }
}
