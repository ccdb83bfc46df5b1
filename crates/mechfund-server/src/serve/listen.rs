//! With a shared store (PostgreSQL), what every server hears of the commits of all of them: a
//! thread that `LISTEN`s on [`CHANNEL`], reads the event rows above the last one it saw, in seq
//! order, publishes each changed mech's state and feeds the event streams' fan-out. Streams are
//! fed from here only (never from this server's writer), so every line reaches them once, in seq
//! order, whichever server wrote it, within a notification's delay (milliseconds).
//!
//! The rows are read again every second even without a notification, and after the connection
//! comes back (a database restart): nothing committed is missed, since the thread resumes at the
//! last seq it published.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mechfund_core::State;
use postgres::fallible_iterator::FallibleIterator;

use super::feed::Committed;
use super::shared::Shared;
use crate::store::postgres::{CHANNEL, Pg, client};
use crate::store::snapshot::Snapshot;
use crate::store::{Param, Sql, StoreError, mech_lines, replay_state};

/// Rows read per query.
const PAGE: u64 = 5000;
/// Rows are read this often even without a notification.
pub const POLL: Duration = Duration::from_secs(1);

/// The listening thread; dropping this stops it (within [`POLL`]).
#[derive(Debug)]
pub struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts listening to the database at `url`; every row above `from` is published.
///
/// # Errors
/// The thread cannot be started.
pub fn start(url: String, shared: Arc<Shared>, from: u64) -> std::io::Result<Listening> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("mechfund-listen".into())
        .spawn(move || run(&url, &shared, from, &stopping))?;
    Ok(Listening { stop, thread: Some(thread) })
}

fn run(url: &str, shared: &Shared, mut last: u64, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::SeqCst) {
        match listen(url, shared, &mut last, stop) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis(), "lost the store's notifications; reconnecting");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One connection's life: listen, catch up, then wait and catch up until stopped.
fn listen(url: &str, shared: &Shared, last: &mut u64, stop: &AtomicBool) -> Result<(), StoreError> {
    let mut client = client(url)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    loop {
        while publish(&mut client, shared, last)? {}
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut notifications = client.notifications();
        let mut waiting = notifications.timeout_iter(POLL);
        // Any notification (or none within POLL) means: read what is new.
        waiting.next()?;
    }
}

/// Publishes a page of the rows above `last`; says whether there may be more.
fn publish(client: &mut postgres::Client, shared: &Shared, last: &mut u64) -> Result<bool, StoreError> {
    // One snapshot for the rows and the states: each state is the one after its mech's rows.
    let mut tx =
        client.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
    let mut db = Pg::new(&mut tx);
    let rows = db.query(
        "SELECT seq, mech, line FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[Param::int(*last), Param::int(PAGE)],
    )?;
    if rows.is_empty() {
        return Ok(false);
    }
    let full = rows.len() as u64 == PAGE;
    let mut order: Vec<String> = Vec::new();
    let mut lines: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for row in rows {
        let (seq, mech, line) = (row[0].seq().unwrap_or(0), row[1].clone().into_text(), row[2].clone().into_text());
        *last = (*last).max(seq);
        if !lines.contains_key(&mech) {
            order.push(mech.clone());
        }
        lines.entry(mech).or_default().push((seq, line));
    }
    let rules = shared.rules();
    let mut committed = Vec::with_capacity(order.len());
    for mech in order {
        let Some(mech_lines_now) = lines.remove(&mech) else { continue };
        let state = state_of(&mut db, &mech, &rules)?;
        let last_line = mech_lines_now.last().map_or(0, |(seq, _)| *seq);
        let state = Arc::new(state);
        committed.push(if state.last_event_seq == last_line {
            Committed::lines(&rules, &state, mech_lines_now)
        } else {
            // The page ended inside this mech's rows: its streams read them from the store.
            Committed::catch_up(&rules, &state)
        });
        shared.offer(state);
    }
    tx.commit()?;
    for message in committed {
        shared.publish(message);
    }
    Ok(full)
}

/// The mech's latest state: its snapshot (written in the same transaction as its rows), or the
/// replay of its lines when the snapshot cannot be read.
fn state_of(db: &mut dyn Sql, mech: &str, rules: &mechfund_core::Rules) -> Result<State, StoreError> {
    let text = db.query_opt("SELECT state FROM snapshots WHERE mech = $1", &[Param::Text(mech)])?;
    match text.and_then(|row| row[0].text().map(Snapshot::decode)) {
        Some(Ok(state)) => Ok(state),
        _ => Ok(replay_state(&mech_lines(db, mech)?, mech, rules)),
    }
}
