//! The single writer: one thread owns the store's write connection ([`Journal`]; DDC's lock,
//! made a queue).
//!
//! Handlers send a [`WriteRequest`] and await the reply. The writer takes what is queued (up to
//! [`MAX_GROUP`]) and, in ONE transaction, for each request: answers a known idempotency key from
//! the table, or runs the core's `decide` on the mech's latest state, appends the events, applies
//! them with `State::apply` (a deletion toggle rebuilds the mech by replay, as replay defines
//! it), and records the idempotency key. Then it writes each touched mech's snapshot, commits,
//! publishes the new states and only then replies: an acknowledged write is durable.
//!
//! With a store shared by several servers (PostgreSQL), each transaction holds the store's write
//! lock, and first catches up with what the other servers committed since this writer's last
//! transaction (the chain's end, the next seq, the states of the mechs they changed), so a
//! decision is always made on the mech's latest state. Its commits then reach the event streams
//! through the database's notifications, like everyone else's, in seq order
//! ([`super::listen`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use mechfund_core::decide::DeletionTarget;
use mechfund_core::parse::Kind;
use mechfund_core::state::Effects;
use mechfund_core::time::Timestamp;
use mechfund_core::{Cents, Command, EventBody, MemberSource, Rules, Stamp, State, decide};
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::feed::Committed;
use super::responses::{ImportResponse, WriteResponse};
use super::shared::Shared;
use crate::store::chain::{recorded_head, verify_chain};
use crate::store::snapshot::Snapshot;
use crate::store::{
    Chain, Engine, ImportError, Imported, Importer, Journal, MAX_SEQ, Param, Sql, StoreError, mech_lines,
    next_free_seq, replay_state, rules_hash, write_snapshot,
};
use crate::store::{checkpoint, packs};

/// Requests committed together at most.
pub const MAX_GROUP: usize = 128;

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
    /// `POST …/import`: a DDC `events.jsonl` for a mech without events, committed on its own.
    Import { lines: axum::body::Bytes },
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

struct Ctx {
    shared: Arc<Shared>,
    rules_hash: String,
    next_seq: u64,
    last_ts: Timestamp,
    /// Idempotency keys kept: the oldest beyond this many are forgotten.
    idempotency_keys: u64,
    /// The end of the hash chain over the event rows.
    chain: Chain,
    /// Why the store takes no writes: its event rows are damaged (found at start-up).
    damage: Option<String>,
    /// Other servers write to the store too: catch up in every transaction, and let the
    /// notifications feed the event streams.
    store_shared: bool,
    /// Events of each mech written since its last checkpoint, counted once it is first written to.
    since_checkpoint: HashMap<String, u64>,
}

/// Starts the writer thread; it stops once every sender is dropped and the queue is drained.
///
/// # Errors
/// If the thread cannot be spawned, or the chain's end cannot be read.
/// With `damage` (the store's event rows do not add up), every write is refused with 503
/// `store_damaged` and what to run: nothing is appended to a log that is known to be wrong.
pub fn spawn(
    mut journal: Box<dyn Journal>,
    shared: Arc<Shared>,
    next_seq: u64,
    last_ts: Timestamp,
    idempotency_keys: u64,
    damage: Option<String>,
) -> std::io::Result<(mpsc::Sender<WriteRequest>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
    let chain = journal.begin().and_then(|mut tx| Chain::head(&mut *tx)).map_err(std::io::Error::other)?;
    let ctx = Ctx {
        rules_hash: rules_hash(&shared.rules()),
        shared,
        next_seq,
        last_ts,
        idempotency_keys,
        chain,
        damage,
        store_shared: journal.shared(),
        since_checkpoint: HashMap::new(),
    };
    let handle = std::thread::Builder::new().name("mechfund-writer".into()).spawn(move || run(journal, ctx, rx))?;
    Ok((tx, handle))
}

fn run(mut journal: Box<dyn Journal>, mut ctx: Ctx, mut rx: mpsc::Receiver<WriteRequest>) {
    // Every row's hash, before the first write (reads are served meanwhile): nothing is appended
    // to a chain that does not add up.
    if ctx.damage.is_none() {
        let started = std::time::Instant::now();
        match journal.begin_read().and_then(|mut tx| verify_chain(&mut *tx, false)) {
            Ok(Ok(_)) => tracing::info!(ms = started.elapsed().as_millis(), "event rows verified"),
            Ok(Err(damage)) => {
                tracing::error!(%damage, "the store takes no writes until it is restored; `mechfund verify` shows more");
                ctx.damage = Some(damage.to_string());
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot verify the event rows; the store takes no writes");
                ctx.damage = Some(format!("its event rows cannot be read ({e})"));
            }
        }
    }
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(request) = next.take() {
            if matches!(request.op, Op::Import { .. }) {
                // An import is a transaction of its own, after what was queued before it.
                if !group.is_empty() {
                    commit_group(journal.as_mut(), &mut ctx, &mut group);
                }
                ctx.import(journal.as_mut(), request);
            } else {
                group.push(request);
            }
            if group.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            commit_group(journal.as_mut(), &mut ctx, &mut group);
        }
    }
    tracing::info!("writer stopped: every write is committed");
}

/// The answer to every request of a transaction that failed: 503 when the store could not be
/// reached (the writer connects again for the next one), else 500.
fn failed(journal: &mut dyn Journal, e: &StoreError, requests: usize) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, requests, "the store is unreachable; the writes were not committed");
        if let Err(e) = journal.reconnect() {
            tracing::warn!(error = %e, "cannot reach the store yet");
        }
        ApiError::unavailable()
    } else {
        tracing::error!(error = %e, requests, "write group failed; rolled back");
        ApiError::internal()
    }
}

fn commit_group(journal: &mut dyn Journal, ctx: &mut Ctx, group: &mut Vec<WriteRequest>) {
    let (seq_before, ts_before, chain_before) = (ctx.next_seq, ctx.last_ts, ctx.chain.clone());
    let mut working: HashMap<String, State> = HashMap::new();
    // The mechs this group changed, with their new lines in seq order.
    let mut fresh: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let outcome = (|| -> Result<Vec<Result<Stored, ApiError>>, StoreError> {
        let mut tx = journal.begin()?;
        if ctx.store_shared {
            ctx.catch_up(&mut *tx, &mut working)?;
        }
        let chain_start = ctx.chain.seq;
        let mut answers = Vec::with_capacity(group.len());
        for request in group.iter() {
            answers.push(ctx.handle(&mut *tx, &mut working, &mut fresh, request)?);
        }
        for state in fresh.keys().filter_map(|mech| working.get(mech)) {
            write_snapshot(&mut *tx, state, &ctx.rules_hash)?;
        }
        if ctx.chain.seq != chain_start {
            ctx.chain.commit_head(&mut *tx)?;
        }
        forget_old_keys(&mut *tx, ctx.idempotency_keys)?;
        tx.commit(ctx.chain.seq)?;
        Ok(answers)
    })();
    let answers = match outcome {
        Ok(answers) => {
            let rules = ctx.shared.rules();
            let mut committed = Vec::with_capacity(fresh.len());
            for (mech, lines) in fresh {
                if let Some(state) = working.remove(&mech) {
                    let state = Arc::new(state);
                    if !ctx.store_shared {
                        committed.push(Committed::lines(&rules, &state, lines));
                    }
                    ctx.shared.offer(state);
                }
            }
            // Subscribers hear of the commit before the writers' answers go out.
            for message in committed {
                ctx.shared.publish(message);
            }
            tracing::debug!(requests = group.len(), next_seq = ctx.next_seq, "group committed");
            answers
        }
        Err(e) => {
            (ctx.next_seq, ctx.last_ts, ctx.chain) = (seq_before, ts_before, chain_before);
            let error = failed(journal, &e, group.len());
            group.iter().map(|_| Err(error.clone())).collect()
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

fn line_ts(line: &str) -> Option<Timestamp> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Timestamp::parse(value.get("ts")?.as_str()?).ok()
}

impl Ctx {
    /// Counts `written` new events of `state`'s mech, and writes `state` (the mech's state after
    /// them) as a checkpoint once [`checkpoint::EVERY`] have been written since the last one,
    /// packing its events at the same time.
    fn count_for_checkpoint(&mut self, tx: &mut dyn Sql, state: &State, written: u64) -> Result<(), StoreError> {
        let mech = state.mech_id.as_str();
        let since = match self.since_checkpoint.get_mut(mech) {
            Some(since) => {
                *since += written;
                *since
            }
            // The events just written are in the count.
            None => *self.since_checkpoint.entry(mech.to_owned()).or_insert(checkpoint::events_since_last(tx, mech)?),
        };
        if since >= checkpoint::EVERY {
            checkpoint::write(tx, mech, &self.rules_hash, std::slice::from_ref(state))?;
            packs::extend(tx, mech)?;
            self.since_checkpoint.insert(mech.to_owned(), 0);
        }
        Ok(())
    }

    /// What other servers committed since this writer's last transaction (a shared store; the
    /// store's write lock is held): the chain's end, the next seq, the latest timestamp, and the
    /// latest state of every mech they changed, which replaces any this writer holds.
    fn catch_up(&mut self, db: &mut dyn Sql, working: &mut HashMap<String, State>) -> Result<(), StoreError> {
        let head = recorded_head(db)?.unwrap_or(0);
        if head == self.chain.seq {
            return Ok(());
        }
        let seen = self.chain.seq;
        self.chain = Chain::head(db)?;
        self.next_seq = next_free_seq(db)?;
        if let Some(ts) = db
            .query_opt("SELECT line FROM events ORDER BY seq DESC LIMIT 1", &[])?
            .and_then(|row| row[0].text().and_then(line_ts))
        {
            self.last_ts = self.last_ts.max(ts);
        }
        let rules = self.shared.rules();
        let changed =
            db.query("SELECT mech, rules_hash, state FROM snapshots WHERE last_seq > $1", &[Param::int(seen)])?;
        for row in changed {
            let mech = row[0].text().unwrap_or_default().to_owned();
            let decoded = row[2].text().map(Snapshot::decode);
            let state = match decoded {
                Some(Ok(state)) if row[1].text() == Some(self.rules_hash.as_str()) => state,
                // Written under other rules (a server started with another `--rules`), or not
                // readable: the log says what the state is.
                _ => replay_state(&mech_lines(db, &mech)?, &mech, &rules),
            };
            self.shared.offer(Arc::new(state.clone()));
            working.insert(mech, state);
        }
        tracing::debug!(from = seen, to = self.chain.seq, "caught up with the other servers' commits");
        Ok(())
    }

    /// One request inside the group's transaction. The outer `Err` is a storage failure (the
    /// group is rolled back); the inner one is the client's error.
    fn handle(
        &mut self,
        tx: &mut dyn Sql,
        working: &mut HashMap<String, State>,
        fresh: &mut HashMap<String, Vec<(u64, String)>>,
        request: &WriteRequest,
    ) -> Result<Result<Stored, ApiError>, StoreError> {
        if let Some(damage) = &self.damage {
            return Ok(Err(damaged(damage, self.store_shared)));
        }
        if let Some(known) = known_response(tx, request.idempotency.as_ref())? {
            return Ok(known);
        }
        let rules = &*self.shared.rules();
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
            // `run` commits every import on its own (`Ctx::import`), never in a group.
            Op::Import { .. } => return Ok(Err(ApiError::internal())),
        };
        // A write makes a few events at most (a member count, the donation, level-ups and bonuses).
        if self.next_seq > MAX_SEQ - 64 {
            return Ok(Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "seqs_exhausted",
                format!("the store has handed out every seq up to {MAX_SEQ} (2^53 - 1); it takes no more events"),
            )));
        }
        let now = Timestamp(system_now().micros().max(self.last_ts.micros()));
        let events = match decide(state, &command, rules, Stamp { next_seq: self.next_seq, now }) {
            Ok(events) => events,
            Err(e) => return Ok(Err(e.into())),
        };
        if !events.is_empty() {
            let lines = fresh.entry(mech.to_owned()).or_default();
            for event in &events {
                let line = event.to_json_line();
                self.chain.append(tx, event.seq, &event.mech_id, &line)?;
                lines.push((event.seq, line));
            }
        }
        let toggled = events.iter().find_map(|e| match e.body {
            EventBody::DonationDeleted { deleted_seq, .. } => Some(deleted_seq),
            _ => None,
        });
        if let Some(target) = toggled {
            // Deletion rewrites history (an odd number of toggles skips the event entirely), so the
            // state is what replay of the mech's lines says, including the new one: from the
            // last checkpoint before the toggled event.
            *state = checkpoint::replay_toggled(tx, mech, target, rules, &self.rules_hash)?;
            self.since_checkpoint.remove(mech);
        } else {
            let mut effects = Effects::default();
            for event in &events {
                effects.clear();
                state.apply(&event.record(), rules, &mut effects);
            }
            if !events.is_empty() {
                self.count_for_checkpoint(tx, state, events.len() as u64)?;
            }
        }
        if let Some(last) = events.last() {
            self.next_seq = last.seq + 1;
            self.last_ts = now;
        }
        let status = if events.is_empty() { StatusCode::OK } else { StatusCode::CREATED };
        let body = serde_json::to_string(&WriteResponse { events: &events, state }).unwrap_or_default();
        Ok(Ok(remember(tx, request.idempotency.as_ref(), status, body)?))
    }

    /// `Op::Import` in a transaction of its own: every line checked and stored, the mech's
    /// snapshot written, then the state published and the seq and clock moved past the import.
    fn import(&mut self, journal: &mut dyn Journal, request: WriteRequest) {
        let Op::Import { lines } = &request.op else { return };
        if let Some(damage) = &self.damage {
            let _ = request.reply.send(Err(damaged(damage, self.store_shared)));
            return;
        }
        let mech = request.mech.as_str();
        let rules = self.shared.rules();
        let outcome = journal.begin().map_err(ImportError::Store).and_then(|mut tx| {
            if self.store_shared {
                self.catch_up(&mut *tx, &mut HashMap::new())?;
            }
            let outcome = import_in(&mut *tx, &request, lines, &rules)?;
            let chain = Chain::head(&mut *tx)?;
            if matches!(outcome, ImportOutcome::Imported { .. }) {
                tx.commit(chain.seq)?;
            }
            Ok((outcome, chain))
        });
        let answer = match outcome {
            Ok((ImportOutcome::Imported { stored, imported, latest_ts }, chain)) => {
                self.next_seq = self.next_seq.max(imported.last_seq + 1);
                self.chain = chain;
                self.last_ts = self.last_ts.max(latest_ts.unwrap_or(self.last_ts));
                tracing::info!(mech, events = imported.events, last_seq = imported.last_seq, "imported");
                let state = Arc::new(imported.state);
                self.shared.offer(state.clone());
                if !self.store_shared {
                    self.shared.publish(Committed::catch_up(&rules, &state));
                }
                Ok(stored)
            }
            Ok((ImportOutcome::Answered(answer), _)) => answer,
            Err(ImportError::Line { number, why }) => Err(ApiError::invalid(format!("line {number}: {why}"))),
            Err(e @ ImportError::Conflict(_)) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())),
            Err(ImportError::Store(e)) => Err(failed(journal, &e, 1)),
        };
        let _ = request.reply.send(answer);
    }
}

/// The answer to every write while the store's event rows are damaged: what to run, for the
/// SQLite store or the shared PostgreSQL one.
fn damaged(damage: &str, shared_store: bool) -> ApiError {
    let what_to_run = if shared_store {
        "Run `mechfund verify --store URL` to see the first bad row, then restore the database from a backup \
         (pg_dump or point-in-time recovery)"
    } else {
        "Run `mechfund verify --data DIR` to see the first bad row, then restore a backup with \
         `mechfund restore BACKUP --data DIR`"
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_damaged",
        format!("the store takes no writes: {damage}. {what_to_run}"),
    )
}

/// How an import request ended, when the store did not refuse it.
enum ImportOutcome {
    /// Stored; commit.
    Imported { stored: Stored, imported: Box<Imported>, latest_ts: Option<Timestamp> },
    /// Nothing to commit: an idempotent retry's first answer, or the client's error.
    Answered(Result<Stored, ApiError>),
}

/// The import inside its transaction; an `Err` rolls everything back.
fn import_in(
    tx: &mut dyn Sql,
    request: &WriteRequest,
    lines: &[u8],
    rules: &Rules,
) -> Result<ImportOutcome, ImportError> {
    if let Some(known) = known_response(tx, request.idempotency.as_ref())? {
        return Ok(ImportOutcome::Answered(known));
    }
    let mut importer = Importer::new(tx, Some(&request.mech))?;
    importer.block(lines)?;
    let latest_ts = importer.latest_ts();
    let Some(imported) = importer.finish(rules)?.remove(&request.mech) else {
        return Ok(ImportOutcome::Answered(Err(ApiError::invalid(
            "the body holds no events (one JSON event per line)",
        ))));
    };
    let body = serde_json::to_string(&ImportResponse {
        imported: imported.events,
        first_seq: imported.first_seq,
        last_seq: imported.last_seq,
        state: &imported.state,
    })
    .unwrap_or_default();
    let stored = remember(tx, request.idempotency.as_ref(), StatusCode::CREATED, body)?;
    Ok(ImportOutcome::Imported { stored, imported: Box::new(imported), latest_ts })
}

/// The first response to an `Idempotency-Key` already used: the same response for the same
/// request, 409 for a different one; `None` for a new key.
fn known_response(
    tx: &mut dyn Sql,
    idempotency: Option<&Idempotency>,
) -> Result<Option<Result<Stored, ApiError>>, StoreError> {
    let Some(idem) = idempotency else { return Ok(None) };
    let known =
        tx.query_opt("SELECT request_hash, status, body FROM idempotency WHERE key = $1", &[Param::Text(&idem.key)])?;
    Ok(known.map(|row| {
        if row[0].text() == Some(idem.request_hash.as_str()) {
            let status = row[1].int().and_then(|s| u16::try_from(s).ok()).unwrap_or(201);
            Ok(Stored { status, body: row[2].text().unwrap_or_default().to_owned() })
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!("Idempotency-Key \"{}\" was used for a different request", idem.key),
            ))
        }
    }))
}

/// Keeps the newest `kept` idempotency keys and forgets the older ones (keys are kept in the
/// order they were stored: SQLite's rowids and PostgreSQL's ids only grow, and writes are
/// serialised), so the table stays bounded.
fn forget_old_keys(tx: &mut dyn Sql, kept: u64) -> Result<(), StoreError> {
    let sql = match tx.engine() {
        Engine::Sqlite => "DELETE FROM idempotency WHERE rowid <= (SELECT max(rowid) FROM idempotency) - $1",
        Engine::Postgres => "DELETE FROM idempotency WHERE id <= (SELECT max(id) FROM idempotency) - $1",
    };
    tx.execute(sql, &[Param::int(kept)])?;
    Ok(())
}

/// Stores the response under the request's `Idempotency-Key`, if it has one.
fn remember(
    tx: &mut dyn Sql,
    idempotency: Option<&Idempotency>,
    status: StatusCode,
    body: String,
) -> Result<Stored, StoreError> {
    if let Some(idem) = idempotency {
        tx.execute(
            "INSERT INTO idempotency (key, request_hash, status, body) VALUES ($1, $2, $3, $4)",
            &[
                Param::Text(&idem.key),
                Param::Text(&idem.request_hash),
                Param::Int(status.as_u16().into()),
                Param::Text(&body),
            ],
        )?;
    }
    Ok(Stored { status: status.as_u16(), body })
}

/// What the log holds at `seq` in `mech`, for a deletion toggle.
fn target(tx: &mut dyn Sql, mech: &str, seq: u64) -> Result<Option<DeletionTarget>, StoreError> {
    if seq > MAX_SEQ {
        return Ok(None);
    }
    let line =
        tx.query_opt("SELECT line FROM events WHERE seq = $1 AND mech = $2", &[Param::int(seq), Param::Text(mech)])?;
    let Some(value) =
        line.and_then(|row| row[0].text().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()))
    else {
        return Ok(None);
    };
    let kind = Kind::from_name(value["type"].as_str().unwrap_or_default());
    let payload = &value["payload"];
    let units = payload["units"].as_i64().or_else(|| payload["power_units"].as_i64());
    Ok(Some(DeletionTarget { kind, donor: payload["donor"].as_str().map(str::to_owned), units }))
}
