//! The dashboard's components, one per file (and the props several of them share).

pub mod chart;
pub mod diagnostics;
pub mod events;
pub mod leaderboard;
pub mod loader;
pub mod manage;
pub mod props;
pub mod rules_editor;
pub mod summary;
pub mod toggle;
pub mod whatif;
pub mod write_form;
