//! The event store, in SQLite (one file, the default) or PostgreSQL (shared by any number of
//! servers): the seam between the server and its storage.
//!
//! - [`schema`]: the tables, opening the writer's connection, seq and mech id bounds;
//! - [`log`]: reading a mech's lines, its state by replay, the next seq;
//! - [`chain`]: the hash chain over the event rows, and where it breaks;
//! - [`snapshot`]: each mech's full state stored with every commit, with its digest;
//! - [`checkpoint`]: each mech's state every few thousand events, for deletion toggles;
//! - [`packs`]: each mech's events in binary, for replays that neither read nor parse JSON;
//! - [`recovery`]: start-up: snapshots checked against the log and the rules, rebuilt if stale;
//! - [`sql`]: the statements of both engines, SQLite and PostgreSQL, through one small trait;
//! - [`journal`]: the writer's transactions; [`postgres`]: the shared PostgreSQL store;
//! - [`readers`]: the read connections;
//! - [`dir`]: the data directory's files, its lock, and the refusal of an emptied store;
//! - [`import`]: a DDC `events.jsonl` into mechs without events (the CLI and `POST …/import`);
//! - [`backup`]: online backup and the safe restore;
//! - [`verify`]: the read-only check of `mechfund verify --data`.
//!
//! The writer ([`crate::serve::writer`]) appends, in one transaction per group of requests, the
//! event rows (through [`chain::Chain`]), the snapshots and the idempotency keys.

pub mod backup;
pub mod chain;
pub mod checkpoint;
pub mod dir;
pub mod import;
pub mod journal;
pub mod log;
pub mod packs;
pub mod postgres;
pub mod readers;
pub mod recovery;
pub mod schema;
pub mod snapshot;
pub mod sql;
pub mod verify;

pub use self::chain::{Chain, Damage};
pub use self::dir::{DB_FILE, LOCK_FILE, LockError, TOKEN_FILE, check_not_emptied, lock_store};
pub use self::import::{ImportError, Imported, Importer};
pub use self::journal::{Journal, SqliteJournal, WriteTx};
pub use self::log::{for_each_line, lines_after, mech_lines, next_free_seq, next_seq, replay_state};
pub use self::readers::Readers;
pub use self::recovery::{Recovered, recover};
pub use self::schema::{MAX_SEQ, check_mech_id, check_version, hex, open_writer, rules_hash, schema_version};
pub use self::snapshot::write_snapshot;
pub use self::sql::{Engine, Param, Sql, Sqlite, StoreError, Value};
