//! Loading: where logs come from, starting a load (read, sliced replay, actions for the state),
//! the first load and following the server's stream. The browser edge (`browser`), the replay
//! job (`replay_job`) and the stream's connection (`live`) are the modules it drives.

pub mod follow;
pub mod loads;
pub mod source;
pub mod startup;
