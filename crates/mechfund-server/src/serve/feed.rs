//! The fan-out of commits to the event streams ([`super::stream`]).
//!
//! The writer hands every commit to one fan-out task ([`fan_out`]), which encodes the SSE text
//! once and broadcasts it as [`Batch`]es: a commit after a quiet spell goes out at once, commits
//! arriving faster are gathered for at most [`COALESCE`], so each subscriber costs one wake-up
//! and one socket write per batch however many donations it holds. The fan-out also sends every
//! stream a keep-alive comment every [`KEEP_ALIVE`] and, at shutdown, the end.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use mechfund_core::{Rules, State};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::responses::state_json;

/// After a batch, commits are gathered this long before the next one goes out.
pub const COALESCE: Duration = Duration::from_millis(20);
/// A comment this often keeps idle connections (and proxies) open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One commit that changed a mech, as the event streams see it.
#[derive(Debug)]
pub struct Committed {
    /// The mech.
    pub mech: String,
    /// Its new lines (seq, the exact stored line) in seq order; empty for an import, whose
    /// lines subscribers read from the store instead (`catch_up`).
    pub lines: Vec<(u64, String)>,
    /// The lines are in the store only: read everything after the last seq sent.
    pub catch_up: bool,
    /// [`state_json`] after the commit.
    pub state: Arc<str>,
}

impl Committed {
    /// New lines of a mech and its state after them.
    pub fn lines(rules: &Rules, state: &State, lines: Vec<(u64, String)>) -> Committed {
        Committed { mech: state.mech_id.clone(), lines, catch_up: false, state: state_json(state, rules, None).into() }
    }

    /// Lines that subscribers read from the store, and the state after them.
    pub fn catch_up(rules: &Rules, state: &State) -> Committed {
        Committed {
            mech: state.mech_id.clone(),
            lines: Vec::new(),
            catch_up: true,
            state: state_json(state, rules, None).into(),
        }
    }
}

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
    pub mech: String,
    /// The SSE text: one message per line, then the `state` message.
    pub text: Bytes,
    /// Each line's seq and where its message starts in `text`, in seq order.
    pub starts: Vec<(u64, usize)>,
    /// Where the `state` message starts.
    pub state_at: usize,
    /// The lines are in the store only (an import): subscribers read them from there.
    pub catch_up: bool,
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
pub fn push_line(text: &mut String, seq: u64, line: &str) {
    let _ = write!(text, "id: {seq}\ndata: ");
    if line.contains(['\r', '\n']) {
        text.push_str(&line.replace(['\r', '\n'], " "));
    } else {
        text.push_str(line);
    }
    text.push_str("\n\n");
}

/// `event: state` and `data: STATE`.
pub fn push_state(text: &mut String, state: &str) {
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

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::RecvError;

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
