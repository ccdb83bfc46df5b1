//! What the dashboard holds: the load on screen, what the page is doing, and the bookkeeping of
//! the live stream.

use std::rc::Rc;

use mechfund_core::{Now, Rules};

use crate::analysis::Analysis;
use crate::replay_job::Progress;

/// Reloads in a row for a replay that disagrees with the server's `state` messages.
pub const MAX_MISMATCH_RELOADS: u32 = 3;

/// A log held in memory, so a different mech can be replayed without reading it again.
pub struct Log {
    pub name: String,
    pub bytes: Vec<u8>,
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
