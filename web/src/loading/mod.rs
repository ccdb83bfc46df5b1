//! Loading: where logs come from, starting a load (read, sliced replay, actions for the state)
//! and what the page reads before its first load. The browser edge (`browser`), the replay job
//! (`replay_job`) and the stream (`live`) are the modules it drives.

pub mod loads;
pub mod source;
pub mod startup;
