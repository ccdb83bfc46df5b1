//! The replay worker: a dedicated Web Worker running the dashboard's own wasm, so a large log
//! replays off the page's main thread. `client` is the page's side (start, hand over a log's
//! bytes, ask for replays), `serve` the worker's, `wire` the compact bytes the analysis comes
//! back as, `message` the JS objects between them.

pub mod client;
pub mod message;
pub mod serve;
pub mod wire;
