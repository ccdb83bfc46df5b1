//! What changes the dashboard's state. Loads carry their generation, so the reducer can drop
//! what an older load reports after a newer one started.

use std::rc::Rc;

use mechfund_core::{Now, Rules};

use super::model::Log;
use crate::analysis::Analysis;
use crate::live::Commit;
use crate::replay_job::Progress;

/// What changes the state.
pub enum Action {
    Start {
        generation: u64,
        what: String,
        live: bool,
    },
    Progress {
        generation: u64,
        progress: Progress,
    },
    Loaded {
        generation: u64,
        log: Rc<Log>,
        analysis: Rc<Analysis>,
        mech: String,
    },
    Failed {
        generation: u64,
        message: String,
    },
    /// A quiet failure: back to the first-visit screen.
    Idle {
        generation: u64,
    },
    Rules(Rc<Rules>),
    Now(Option<Now>),
    /// The mechfund API answered.
    Server,
    /// Lines from the stream of the load `shown`, and the server's mark after them.
    Live {
        shown: u64,
        commit: Commit,
    },
}
