//! `GET /api/v1/mechs/{mech}/events/stream`: server-sent events of a mech's log.
//!
//! A subscriber gets the stored lines after `Last-Event-ID` (or `?after_seq=`), then every line
//! as it commits, each once and in seq order (`id:` the seq, `data:` the exact line), and after
//! the backlog and each batch a `state` message with `{"state","display"}`.
//!
//! The writer hands every commit to one fan-out task ([`fan_out`]), which encodes the SSE text
//! once and broadcasts it as [`Batch`]es: a commit after a quiet spell goes out at once, commits
//! arriving faster are gathered for at most [`COALESCE`], so each subscriber costs one wake-up
//! and one socket write per batch however many donations it holds (1,000 subscribers at 2,000
//! donations/s: see BENCHMARKS.md). A subscriber subscribes *before* reading the backlog, so
//! nothing committed meanwhile is missed, and skips lines at or below the last seq it sent, so
//! nothing is sent twice. One too slow for the broadcast (it lagged) reads what it missed from
//! the store instead. Streams end when the server shuts down; `EventSource` then reconnects
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
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::api::{AppState, existing, path_error, query_error, query_int, read};
use super::error::ApiError;
use super::openapi::{Invalid, NotFound, Unauthorized};
use super::store::lines_after;
use super::writer::{Committed, state_json};

/// Lines read from the store per query while catching up.
const PAGE: u64 = 1000;
/// Writes buffered per subscriber before its task waits for the client.
const BUFFER: usize = 64;
/// After a batch, commits are gathered this long before the next one goes out.
pub const COALESCE: Duration = Duration::from_millis(20);
/// A comment this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The first message: `EventSource` reconnects after a second.
const RETRY: &str = "retry: 1000\n\n";

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

/// The fan-out: turns the writer's commits into [`Batch`]es for the subscribers. Runs until the
/// writer's side of the feed is gone.
pub async fn fan_out(mut commits: mpsc::UnboundedReceiver<Committed>, batches: broadcast::Sender<Arc<Batch>>) {
    let mut last_sent: Option<Instant> = None;
    while let Some(first) = commits.recv().await {
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
            let _ = batches.send(Arc::new(batch));
        }
        last_sent = Some(Instant::now());
    }
}

/// The handler: checks the mech and where to start, then hands the connection to [`follow`].
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
    let batches = app.shared.subscribe();
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(follow(app, mech, after, batches, tx));
    let mut response = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold the messages back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Why a subscriber's task stops: the client went away, or the store failed.
struct Gone;

/// Feeds one subscriber until it disconnects or the server shuts down.
async fn follow(
    app: AppState,
    mech: String,
    mut last: u64,
    mut batches: broadcast::Receiver<Arc<Batch>>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut shutdown = app.shutdown.clone();
    let start = async {
        send(&tx, Bytes::from_static(RETRY.as_bytes())).await?;
        catch_up(&app, &mech, &mut last, &tx).await?;
        send_current_state(&app, &mech, &tx).await
    };
    if start.await.is_err() {
        return;
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let received = tokio::select! {
            _ = shutdown.changed() => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(KEEP_ALIVE) => {
                if send(&tx, Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
                continue;
            }
            received = batches.recv() => received,
        };
        let sent = match received {
            Ok(batch) if batch.mech == mech => forward(&app, &batch, &mut last, &tx).await,
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(mech, missed, "a slow event stream catches up from the store");
                match catch_up(&app, &mech, &mut last, &tx).await {
                    Ok(()) => send_current_state(&app, &mech, &tx).await,
                    Err(gone) => Err(gone),
                }
            }
            Err(RecvError::Closed) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// One batch of the subscriber's mech: the lines it has not had, then the state, in one write.
async fn forward(app: &AppState, batch: &Batch, last: &mut u64, tx: &mpsc::Sender<Bytes>) -> Result<(), Gone> {
    if batch.catch_up {
        catch_up(app, &batch.mech, last, tx).await?;
        return send(tx, batch.text.slice(batch.state_at..)).await;
    }
    let from = batch.starts.iter().find(|(seq, _)| *seq > *last).map_or(batch.state_at, |(_, at)| *at);
    if let Some((seq, _)) = batch.starts.last() {
        *last = (*last).max(*seq);
    }
    send(tx, batch.text.slice(from..)).await
}

/// Sends every stored line of `mech` above `last`, a page per write.
async fn catch_up(app: &AppState, mech: &str, last: &mut u64, tx: &mpsc::Sender<Bytes>) -> Result<(), Gone> {
    loop {
        let (owned, after) = (mech.to_owned(), *last);
        let page = read(app, move |conn| lines_after(conn, &owned, after, PAGE)).await.map_err(|_| Gone)?;
        let full = page.len() as u64 == PAGE;
        let mut text = String::new();
        for (seq, line) in &page {
            push_line(&mut text, *seq, line);
            *last = *seq;
        }
        if !text.is_empty() {
            send(tx, Bytes::from(text)).await?;
        }
        if !full {
            return Ok(());
        }
    }
}

async fn send_current_state(app: &AppState, mech: &str, tx: &mpsc::Sender<Bytes>) -> Result<(), Gone> {
    let Some(state) = app.shared.state(mech) else { return Ok(()) };
    let mut text = String::new();
    push_state(&mut text, &state_json(&state, &app.shared.rules, None));
    send(tx, Bytes::from(text)).await
}

async fn send(tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> Result<(), Gone> {
    tx.send(bytes).await.map_err(|_| Gone)
}
