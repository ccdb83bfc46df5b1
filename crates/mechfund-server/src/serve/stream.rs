//! `GET /api/v1/mechs/{mech}/events/stream`: server-sent events of a mech's log.
//!
//! A subscriber gets the stored lines after `Last-Event-ID` (or `?after_seq=`), then every line
//! as it commits, each once and in seq order (`id:` the seq, `data:` the exact line), and after
//! the backlog and each commit a `state` message with `{"state","display"}`. It subscribes to
//! the writer's feed *before* reading the backlog, so nothing committed meanwhile is missed;
//! lines at or below the last seq sent are skipped, so nothing is sent twice. A subscriber too
//! slow for the feed (it lagged) reads what it missed from the store instead. Streams end when
//! the server shuts down; `EventSource` then reconnects with `Last-Event-ID`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::api::{AppState, existing, path_error, query_error, query_int, read};
use super::error::ApiError;
use super::store::lines_after;
use super::writer::{Committed, state_json};

/// Lines read from the store per query while catching up.
const PAGE: u64 = 1000;
/// Events buffered per subscriber before its task waits for the client.
const BUFFER: usize = 256;
/// How long `EventSource` waits before reconnecting.
const RETRY: Duration = Duration::from_secs(1);
/// A comment this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The handler: checks the mech and where to start, then hands the connection to [`follow`].
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
    // Subscribed before the backlog is read: a commit in between is in the feed.
    let feed = app.shared.subscribe();
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(follow(app, mech, after, feed, tx));
    let events = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

/// Why a subscriber's task stops: the client went away, or the store failed.
struct Gone;

/// Feeds one subscriber until it disconnects or the server shuts down.
async fn follow(
    app: AppState,
    mech: String,
    mut last: u64,
    mut feed: broadcast::Receiver<Arc<Committed>>,
    tx: mpsc::Sender<Event>,
) {
    let mut shutdown = app.shutdown.clone();
    let start = async {
        send(&tx, Event::default().retry(RETRY)).await?;
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
            received = feed.recv() => received,
        };
        let sent = match received {
            Ok(committed) if committed.mech == mech => forward(&app, &committed, &mut last, &tx).await,
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

/// One commit of the subscriber's mech: its new lines, then its state.
async fn forward(app: &AppState, committed: &Committed, last: &mut u64, tx: &mpsc::Sender<Event>) -> Result<(), Gone> {
    if committed.catch_up {
        catch_up(app, &committed.mech, last, tx).await?;
    } else {
        for (seq, line) in &committed.lines {
            if *seq > *last {
                send(tx, line_event(*seq, line)).await?;
                *last = *seq;
            }
        }
    }
    send(tx, Event::default().event("state").data(&*committed.state)).await
}

/// Sends every stored line of `mech` above `last`, page by page.
async fn catch_up(app: &AppState, mech: &str, last: &mut u64, tx: &mpsc::Sender<Event>) -> Result<(), Gone> {
    loop {
        let (owned, after) = (mech.to_owned(), *last);
        let page = read(app, move |conn| lines_after(conn, &owned, after, PAGE)).await.map_err(|_| Gone)?;
        let full = page.len() as u64 == PAGE;
        for (seq, line) in page {
            send(tx, line_event(seq, &line)).await?;
            *last = seq;
        }
        if !full {
            return Ok(());
        }
    }
}

async fn send_current_state(app: &AppState, mech: &str, tx: &mpsc::Sender<Event>) -> Result<(), Gone> {
    match app.shared.state(mech) {
        Some(state) => {
            send(tx, Event::default().event("state").data(state_json(&state, &app.shared.rules, None))).await
        }
        None => Ok(()),
    }
}

/// A stored line as a message. SSE data cannot hold a carriage return; outside JSON strings
/// (where a raw one is invalid anyway) it is whitespace, so a space means the same.
fn line_event(seq: u64, line: &str) -> Event {
    let data = if line.contains('\r') { Cow::Owned(line.replace('\r', " ")) } else { Cow::Borrowed(line) };
    Event::default().id(seq.to_string()).data(data)
}

async fn send(tx: &mpsc::Sender<Event>, event: Event) -> Result<(), Gone> {
    tx.send(event).await.map_err(|_| Gone)
}
