//! The HTTP API in process: `serve::app(state)` driven with `oneshot` through the harness of
//! tests/common/app.rs, over a real SQLite store in a temp dir. Everything that is HTTP
//! behaviour is asserted here; what needs the binary (kill -9, signals, restarts of the process,
//! the lock, the CLI, connections and their timeouts) is in the other suites.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod access;
mod card;
mod checkpoints;
mod files;
mod hostile_requests;
mod imports;
mod openapi;
mod stream;
mod writes;
