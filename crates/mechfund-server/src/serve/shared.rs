//! What the handlers and the writer share: the rules in force, each mech's latest committed
//! state, and the feed of commits the event streams follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use mechfund_core::{Rules, State};
use tokio::sync::{broadcast, mpsc};

use super::feed::{Committed, Feed};

/// What the readers see: the rules, each mech's latest committed state, and the feed of
/// commits the event streams follow.
#[derive(Debug)]
pub struct Shared {
    /// The rules in force (replaced only when a followed DDC installation changes its files).
    rules: RwLock<Arc<Rules>>,
    /// Each mech's state after its last committed event.
    pub states: RwLock<HashMap<String, Arc<State>>>,
    /// Every commit, to the fan-out ([`super::feed::fan_out`]); never blocks the writer.
    feed: mpsc::UnboundedSender<Committed>,
    /// The fan-out's batches (and keep-alives, and the end), to every event stream.
    streams: broadcast::Sender<Arc<Feed>>,
    /// Set at shutdown, before [`Feed::End`] goes out: a stream that lagged past it still ends.
    ending: AtomicBool,
}

/// Batches kept for a slow subscriber before it lags (and catches up from the store).
const BATCH_CAPACITY: usize = 1024;

impl Shared {
    /// The rules and the recovered states; the receiver is the fan-out's end of the feed.
    pub fn new(rules: Rules, states: HashMap<String, Arc<State>>) -> (Shared, mpsc::UnboundedReceiver<Committed>) {
        let (feed, commits) = mpsc::unbounded_channel();
        let streams = broadcast::channel(BATCH_CAPACITY).0;
        let rules = RwLock::new(Arc::new(rules));
        (Shared { rules, states: RwLock::new(states), feed, streams, ending: AtomicBool::new(false) }, commits)
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |rules| rules.clone())
    }

    /// Puts other rules in force (a followed DDC installation changed its rules files).
    pub fn set_rules(&self, rules: Rules) {
        let mut slot = self.rules.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(rules);
    }

    /// The latest state of `mech`, if it exists.
    pub fn state(&self, mech: &str) -> Option<Arc<State>> {
        self.states.read().ok().and_then(|states| states.get(mech).cloned())
    }

    /// Publishes `state` as its mech's latest, unless a later one is published already (the
    /// writer and, with a shared store, the listener both publish; neither may go back).
    pub fn offer(&self, state: Arc<State>) {
        let mut states = self.states.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match states.get(&state.mech_id) {
            Some(current) if current.last_event_seq > state.last_event_seq => {}
            _ => {
                states.insert(state.mech_id.clone(), state);
            }
        }
    }

    /// The ids of every mech, sorted.
    pub fn mechs(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.states.read().map(|s| s.keys().cloned().collect()).unwrap_or_default();
        ids.sort();
        ids
    }

    /// Everything the fan-out sends from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Feed>> {
        self.streams.subscribe()
    }

    /// Where the fan-out sends.
    pub fn streams(&self) -> broadcast::Sender<Arc<Feed>> {
        self.streams.clone()
    }

    /// Ends every event stream (the server is shutting down: a graceful shutdown waits for
    /// every response, and streams never end on their own).
    pub fn end_streams(&self) {
        self.ending.store(true, Ordering::SeqCst);
        self.restart_streams();
    }

    /// Ends every event stream now, so that clients reconnect (`EventSource` does, with
    /// `Last-Event-ID`) and check themselves against the log again: a followed DDC log was
    /// replaced or shrank.
    pub fn restart_streams(&self) {
        // No subscriber is no error.
        let _ = self.streams.send(Arc::new(Feed::End));
    }

    /// Whether [`Shared::end_streams`] was called.
    pub fn streams_ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// Hands a commit to the event streams' fan-out.
    pub fn publish(&self, committed: Committed) {
        // Only fails once the fan-out has stopped (the runtime is shutting down).
        let _ = self.feed.send(committed);
    }
}
