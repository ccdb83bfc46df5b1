//! The dashboard's components, one per file.

pub mod chart;
pub mod diagnostics;
pub mod events;
pub mod leaderboard;
pub mod loader;
pub mod rules_editor;
pub mod summary;
pub mod whatif;
