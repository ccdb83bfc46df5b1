//! The single writer: one thread owns the SQLite connection (DDC's lock, made a queue).
//!
//! Handlers send a [`WriteRequest`] and await the reply. The writer takes what is queued (up to
//! [`MAX_GROUP`]) and, in ONE transaction, for each request: answers a known idempotency key from
//! the table, or runs the core's `decide` on the mech's latest state, appends the events, applies
//! them with `State::apply` (a deletion toggle rebuilds the mech by replay, as replay defines
//! it), and records the idempotency key. Then it writes each touched mech's snapshot, commits,
//! publishes the new states and only then replies: an acknowledged write is durable.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use mechfund_core::decide::DeletionTarget;
use mechfund_core::parse::Kind;
use mechfund_core::state::Effects;
use mechfund_core::time::Timestamp;
use mechfund_core::{Cents, Command, EventBody, MemberSource, Rules, Stamp, State, decide};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::snapshot::Snapshot;
use super::store::{mech_lines, replay_state, rules_hash};

/// Requests committed together at most.
pub const MAX_GROUP: usize = 128;

/// What the readers see: the rules and each mech's latest committed state.
#[derive(Debug)]
pub struct Shared {
    /// The rules in force.
    pub rules: Rules,
    /// Each mech's state after its last committed event.
    pub states: RwLock<HashMap<String, Arc<State>>>,
}

impl Shared {
    /// The latest state of `mech`, if it exists.
    pub fn state(&self, mech: &str) -> Option<Arc<State>> {
        self.states.read().ok().and_then(|states| states.get(mech).cloned())
    }

    /// The ids of every mech, sorted.
    pub fn mechs(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.states.read().map(|s| s.keys().cloned().collect()).unwrap_or_default();
        ids.sort();
        ids
    }
}

/// A write, already decoded and validated as far as the request alone allows.
#[derive(Debug)]
pub enum Op {
    /// `POST …/donations`.
    Donation {
        amount: Cents,
        donor: Option<String>,
        channel_id: Option<String>,
        donation_id: Option<String>,
        member_count: Option<i64>,
    },
    /// `POST …/system-donations`.
    SystemDonation { amount: Cents, event_name: String, description: Option<String> },
    /// `POST …/member-count`.
    MemberCount(MemberSource),
    /// `POST …/power-gifts`.
    PowerGift { campaign_id: String },
    /// `POST …/donations/{seq}/toggle-deletion`.
    ToggleDeletion { seq: u64, reason: String },
}

/// An `Idempotency-Key` and the hash of the request it came with.
#[derive(Debug)]
pub struct Idempotency {
    /// The key.
    pub key: String,
    /// Hex sha256 of method, path and body.
    pub request_hash: String,
}

/// A response as stored for idempotent retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// One write for the writer, with where to send the answer.
#[derive(Debug)]
pub struct WriteRequest {
    /// The mech.
    pub mech: String,
    /// What to do.
    pub op: Op,
    /// The idempotency key, if any.
    pub idempotency: Option<Idempotency>,
    /// The answer: the response to send, or an error.
    pub reply: oneshot::Sender<Result<Stored, ApiError>>,
}

/// The body of a successful write: the new events (full objects, in the log's key order) and the
/// mech's state after them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WriteResponse<'a> {
    /// The events written, in seq order: the request's own, then any level-up it caused.
    #[schema(value_type = Vec<super::openapi::NewEventSchema>)]
    events: &'a [mechfund_core::Event],
    /// The mech's state after them.
    #[schema(value_type = super::openapi::StateSchema)]
    state: &'a State,
}

struct Ctx {
    shared: Arc<Shared>,
    rules_hash: String,
    next_seq: u64,
    last_ts: Timestamp,
}

/// Starts the writer thread; it stops once every sender is dropped and the queue is drained.
///
/// # Errors
/// If the thread cannot be spawned.
pub fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    next_seq: u64,
    last_ts: Timestamp,
) -> std::io::Result<(mpsc::Sender<WriteRequest>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
    let ctx = Ctx { rules_hash: rules_hash(&shared.rules), shared, next_seq, last_ts };
    let handle = std::thread::Builder::new().name("mechfund-writer".into()).spawn(move || run(conn, ctx, rx))?;
    Ok((tx, handle))
}

fn run(mut conn: Connection, mut ctx: Ctx, mut rx: mpsc::Receiver<WriteRequest>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut ctx, &mut group);
    }
    tracing::info!("writer stopped: every write is committed");
}

fn commit_group(conn: &mut Connection, ctx: &mut Ctx, group: &mut Vec<WriteRequest>) {
    let (seq_before, ts_before) = (ctx.next_seq, ctx.last_ts);
    let mut working: HashMap<String, State> = HashMap::new();
    let mut dirty: HashSet<String> = HashSet::new();
    let outcome = (|| -> rusqlite::Result<Vec<Result<Stored, ApiError>>> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut answers = Vec::with_capacity(group.len());
        for request in group.iter() {
            answers.push(ctx.handle(&tx, &mut working, &mut dirty, request)?);
        }
        for state in dirty.iter().filter_map(|mech| working.get(mech)) {
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (mech, last_seq, rules_hash, state) VALUES (?1, ?2, ?3, ?4)",
                params![
                    state.mech_id,
                    i64::try_from(state.last_event_seq).unwrap_or(i64::MAX),
                    ctx.rules_hash,
                    Snapshot::encode(state)
                ],
            )?;
        }
        tx.commit()?;
        Ok(answers)
    })();
    let answers = match outcome {
        Ok(answers) => {
            if let Ok(mut states) = ctx.shared.states.write() {
                for (mech, state) in working.drain().filter(|(mech, _)| dirty.contains(mech)) {
                    states.insert(mech, Arc::new(state));
                }
            }
            tracing::debug!(requests = group.len(), next_seq = ctx.next_seq, "group committed");
            answers
        }
        Err(e) => {
            tracing::error!(error = %e, requests = group.len(), "write group failed; rolled back");
            (ctx.next_seq, ctx.last_ts) = (seq_before, ts_before);
            group.iter().map(|_| Err(ApiError::internal())).collect()
        }
    };
    for (request, answer) in group.drain(..).zip(answers) {
        // The client may have gone away; the write stands either way.
        let _ = request.reply.send(answer);
    }
}

fn system_now() -> Timestamp {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    Timestamp(i64::try_from(micros).unwrap_or(i64::MAX))
}

impl Ctx {
    /// One request inside the group's transaction. The outer `Err` is a storage failure (the
    /// group is rolled back); the inner one is the client's error.
    fn handle(
        &mut self,
        tx: &Transaction<'_>,
        working: &mut HashMap<String, State>,
        dirty: &mut HashSet<String>,
        request: &WriteRequest,
    ) -> rusqlite::Result<Result<Stored, ApiError>> {
        if let Some(idem) = &request.idempotency {
            let known: Option<(String, i64, String)> = tx
                .prepare_cached("SELECT request_hash, status, body FROM idempotency WHERE key = ?1")?
                .query_row([&idem.key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            if let Some((hash, status, body)) = known {
                return Ok(if hash == idem.request_hash {
                    Ok(Stored { status: u16::try_from(status).unwrap_or(201), body })
                } else {
                    Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "idempotency_conflict",
                        format!("Idempotency-Key \"{}\" was used for a different request", idem.key),
                    ))
                });
            }
        }
        let rules = &self.shared.rules;
        let mech = request.mech.as_str();
        let state = working.entry(mech.to_owned()).or_insert_with(|| {
            self.shared.state(mech).map_or_else(|| State::initial(mech, rules, [None; 10]), |s| (*s).clone())
        });
        let key = request.idempotency.as_ref().map(|i| i.key.clone());
        let command = match &request.op {
            Op::Donation { amount, donor, channel_id, donation_id, member_count } => Command::AddDonation {
                amount: *amount,
                donor: donor.clone(),
                channel_id: channel_id.clone(),
                donation_id: donation_id.clone(),
                idempotency_key: key,
                member_count: *member_count,
            },
            Op::SystemDonation { amount, event_name, description } => Command::AddSystemDonation {
                amount: *amount,
                event_name: event_name.clone(),
                description: description.clone(),
                idempotency_key: key,
            },
            Op::MemberCount(source) => Command::UpdateMemberCount(source.clone()),
            Op::PowerGift { campaign_id } => Command::GrantPowerGift { campaign_id: campaign_id.clone() },
            Op::ToggleDeletion { seq, reason } => {
                Command::ToggleDonationDeletion { seq: *seq, reason: reason.clone(), target: target(tx, mech, *seq)? }
            }
        };
        let now = Timestamp(system_now().micros().max(self.last_ts.micros()));
        let events = match decide(state, &command, rules, Stamp { next_seq: self.next_seq, now }) {
            Ok(events) => events,
            Err(e) => return Ok(Err(e.into())),
        };
        {
            let mut insert = tx.prepare_cached("INSERT INTO events (seq, mech, line) VALUES (?1, ?2, ?3)")?;
            for event in &events {
                let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
                insert.execute(params![seq, event.mech_id, event.to_json_line()])?;
            }
        }
        if events.iter().any(|e| matches!(e.body, EventBody::DonationDeleted { .. })) {
            // Deletion rewrites history (an odd number of toggles skips the event entirely), so the
            // state is what replay of the mech's lines says, including the new one.
            *state = replay_state(&mech_lines(tx, mech)?, mech, rules);
        } else {
            let mut effects = Effects::default();
            for event in &events {
                effects.clear();
                state.apply(&event.record(), rules, &mut effects);
            }
        }
        if let Some(last) = events.last() {
            self.next_seq = last.seq + 1;
            self.last_ts = now;
            dirty.insert(mech.to_owned());
        }
        let status = if events.is_empty() { StatusCode::OK } else { StatusCode::CREATED };
        let body = serde_json::to_string(&WriteResponse { events: &events, state }).unwrap_or_default();
        if let Some(idem) = &request.idempotency {
            tx.prepare_cached("INSERT INTO idempotency (key, request_hash, status, body) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![idem.key, idem.request_hash, status.as_u16(), body])?;
        }
        Ok(Ok(Stored { status: status.as_u16(), body }))
    }
}

/// What the log holds at `seq` in `mech`, for a deletion toggle.
fn target(tx: &Transaction<'_>, mech: &str, seq: u64) -> rusqlite::Result<Option<DeletionTarget>> {
    let Ok(seq) = i64::try_from(seq) else { return Ok(None) };
    let line: Option<String> = tx
        .prepare_cached("SELECT line FROM events WHERE seq = ?1 AND mech = ?2")?
        .query_row(params![seq, mech], |row| row.get(0))
        .optional()?;
    let Some(value) = line.and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok()) else {
        return Ok(None);
    };
    let kind = Kind::from_name(value["type"].as_str().unwrap_or_default());
    let payload = &value["payload"];
    let units = payload["units"].as_i64().or_else(|| payload["power_units"].as_i64());
    Ok(Some(DeletionTarget { kind, donor: payload["donor"].as_str().map(str::to_owned), units }))
}
