//! What the dashboard holds: the load on screen, what the page is doing, and the bookkeeping of
//! the live stream.

use std::rc::Rc;

use mechfund_core::{Now, Rules, State};

use crate::analysis::Analysis;
use crate::replay_job::Progress;
use crate::worker::client::Held;

/// Reloads in a row for a replay that disagrees with the server's `state` messages.
pub const MAX_MISMATCH_RELOADS: u32 = 3;

/// A log held in memory, so a different mech can be replayed without reading it again.
pub struct Log {
    pub name: String,
    pub bytes: Bytes,
}

/// Where a log's bytes are.
pub enum Bytes {
    /// In the replay worker, which replays it there.
    Worker(Held),
    /// In the page (no worker): replayed here, in slices.
    Here(Vec<u8>),
}

/// What the page is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Nothing loaded (the first-visit screen) or showing a load.
    Idle,
    Loading {
        what: String,
        progress: Progress,
    },
    Failed(String),
}

/// App state.
#[derive(Clone)]
pub struct Model {
    pub phase: Phase,
    pub log: Option<Rc<Log>>,
    pub analysis: Option<Rc<Analysis>>,
    pub mech: String,
    /// The rules replay uses (`&rules=URL`, the server's, or the defaults).
    pub rules: Rc<Rules>,
    /// A frozen clock (`&now=`), else the browser's.
    pub now: Option<Now>,
    /// Bumped by every load; results of older ones are dropped.
    pub generation: u64,
    /// The mechfund API answered: the page is served by `mechfund serve`.
    pub server: bool,
    /// The load on screen (or running) is the server's log of `mech`, so it follows the stream.
    pub live: bool,
    /// The generation of the load on screen; streamed lines of older loads are dropped.
    pub shown: u64,
    /// Bumped when streamed lines need a full reload (a deletion rewrote history, or the
    /// server's log is not where the replay is: a restore took it back).
    pub reloads: u64,
    /// Reloads for a replay that disagreed with the server since one last agreed (at most
    /// [`MAX_MISMATCH_RELOADS`] in a row, so a lasting disagreement cannot reload forever).
    pub mismatch_reloads: u32,
    /// The latest level-up announcement, numbered so a repeat is announced again.
    pub announcement: Option<(u64, String)>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            phase: Phase::Idle,
            log: None,
            analysis: None,
            mech: "main".to_owned(),
            rules: Rc::new(Rules::default()),
            now: None,
            generation: 0,
            server: false,
            live: false,
            shown: 0,
            reloads: 0,
            mismatch_reloads: 0,
            announcement: None,
        }
    }
}

/// What the page shows and does, derived from the model rather than kept beside it.
impl Model {
    /// What is being loaded and how far it got, while a load runs.
    #[must_use]
    pub fn loading(&self) -> Option<(String, Progress)> {
        match &self.phase {
            Phase::Loading { what, progress } => Some((what.clone(), *progress)),
            _ => None,
        }
    }

    /// Why the last load failed, if it did.
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        match &self.phase {
            Phase::Failed(message) => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether lines streamed for the load `shown` apply: it is the load on screen, no newer
    /// one has started, and it is the server's log.
    #[must_use]
    pub fn takes_stream_of(&self, shown: u64) -> bool {
        shown == self.shown && self.live && shown == self.generation
    }

    /// Whether the page should be subscribed to the server's stream: the load on screen is the
    /// server's log and the latest load, and no load is running.
    #[must_use]
    pub fn follows_stream(&self) -> bool {
        self.live && self.shown == self.generation && !matches!(self.phase, Phase::Loading { .. })
    }

    /// The seq of the last event on screen (0 before any): the stream resumes after it.
    #[must_use]
    pub fn last_event_seq(&self) -> u64 {
        self.analysis.as_ref().map_or(0, |a| a.result.state.last_event_seq)
    }

    /// Whether the management forms are offered: the page is served by `mechfund serve` and
    /// shows its log.
    #[must_use]
    pub fn manages(&self) -> bool {
        self.server && self.live
    }

    /// The core state on screen, or the mech's initial state before any load.
    #[must_use]
    pub fn state(&self) -> State {
        self.analysis
            .as_ref()
            .map_or_else(|| State::initial(&self.mech, &self.rules, [None; 10]), |a| a.result.state.clone())
    }
}
