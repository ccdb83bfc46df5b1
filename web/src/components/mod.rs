//! The dashboard's components, one per file.

use std::rc::Rc;

use yew::Properties;

use crate::analysis::Analysis;

pub mod chart;
pub mod diagnostics;
pub mod events;
pub mod leaderboard;
pub mod loader;
pub mod manage;
pub mod rules_editor;
pub mod summary;
pub mod toggle;
pub mod whatif;

/// Props of the panels that show one load.
#[derive(Properties, Debug)]
pub struct AnalysisProps {
    pub analysis: Rc<Analysis>,
    #[prop_or_default]
    pub mech: String,
    /// Signed in to the server: the event table offers delete/restore.
    #[prop_or_default]
    pub admin: Option<manage::Admin>,
}

impl PartialEq for AnalysisProps {
    /// Loads are compared by identity: comparing two analyses field by field is slow.
    fn eq(&self, other: &AnalysisProps) -> bool {
        Rc::ptr_eq(&self.analysis, &other.analysis) && self.mech == other.mech && self.admin == other.admin
    }
}
