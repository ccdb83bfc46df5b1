//! Props that several components share: the load a panel shows, and what a signed-in user can
//! do. Here rather than in one of those components, so none of them imports another for them.

use std::rc::Rc;

use yew::{Callback, Properties};

use crate::analysis::Analysis;

/// What a signed-in user can do, handed to the forms and the event table.
#[derive(Clone, Debug, PartialEq)]
pub struct Admin {
    pub token: Rc<str>,
    pub mech: String,
    /// After a successful write.
    pub on_written: Callback<()>,
}

/// Props of the panels that show one load.
#[derive(Properties, Debug)]
pub struct AnalysisProps {
    pub analysis: Rc<Analysis>,
    #[prop_or_default]
    pub mech: String,
    /// Signed in to the server: the event table offers delete/restore.
    #[prop_or_default]
    pub admin: Option<Admin>,
}

impl PartialEq for AnalysisProps {
    /// Loads are compared by identity: comparing two analyses field by field is slow.
    fn eq(&self, other: &AnalysisProps) -> bool {
        Rc::ptr_eq(&self.analysis, &other.analysis) && self.mech == other.mech && self.admin == other.admin
    }
}
