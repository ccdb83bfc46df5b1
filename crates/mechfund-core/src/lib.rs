//! mechfund-core: the domain of the mech donation system, shared by the server, the wasm
//! package and the dashboard.
//!
//! It holds the money type ([`Cents`]), the [`Rules`] and cost formula, the event log format
//! ([`parse_line`], [`Event`]), replay ([`replay_bytes`], [`Replayer`]), the display state,
//! commands ([`decide()`]) and the what-if calculator.
//!
//! It is **not** a place for I/O: no files, no network, no clock, no randomness. Time, ids and
//! keys arrive as arguments. Its dependencies are serde, serde_json, thiserror and sha2.

pub mod ddc;
pub mod decide;
pub mod display;
pub mod event;
pub mod money;
pub mod parse;
pub mod replay;
pub mod rules;
pub mod state;
pub mod time;
pub mod whatif;

pub use decide::{Command, DomainError, MemberSource, Stamp, decide};
pub use display::{Display, Now, display};
pub use event::{Event, EventBody};
pub use money::{AmountError, Cents};
pub use parse::{Kind, Line, Record, parse_line};
pub use replay::{
    Diagnostic, DiagnosticKind, ReplayOptions, ReplayResult, Replayer, SecondPass, StrictError, replay_bytes,
    replay_bytes_after, replay_bytes_with_checkpoints,
};
pub use rules::{Rules, RulesError};
pub use state::State;
pub use time::Timestamp;
