//! `mechfund serve --ddc DIR`: following a DockerDiscordControl installation, read-only.
//!
//! DDC appends to `progress/events.jsonl` and rewrites its snapshots and rules files. The
//! follower mirrors the log into a throwaway store (so every read endpoint, the export and the
//! event streams work exactly as on a server's own store) and keeps each mech's state:
//!
//! - new complete lines are stored and applied with `State::apply`; a half-written last line is
//!   left for the next read. A `DonationDeleted` (history rewritten) or a `LevelUpCommitted`
//!   (it records goals replay takes for the whole log) rebuilds the mech by replay from the
//!   mirror instead, so the state is always the replay of the mirrored lines;
//! - a log that shrank, was replaced (another file) or whose first bytes changed is read again
//!   from the start, and every event stream is restarted so open dashboards reload;
//! - a changed snapshot whose goal differs, and changed rules files, rebuild by replay;
//!   a malformed rules file keeps the rules in force (with a warning), as DDC keeps running.
//!
//! It wakes on file-system events (`notify`) and polls as well, so a missed or unsupported
//! event costs at most [`POLL`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use mechfund_core::ddc::{CONFIG_FILE, DECAY_FILE, EVENTS_FILE, EVOLUTION_MODE_FILE, MEMBER_COUNT_FILE, Snapshot};
use mechfund_core::parse::Kind;
use mechfund_core::state::Effects;
use mechfund_core::{Line, Record, ReplayOptions, Replayer, Rules, SecondPass, State, parse_line};
use notify::{RecursiveMode, Watcher};
use rusqlite::{Connection, params};

use super::feed::Committed;
use super::shared::Shared;
use crate::ddc::Installation;
use crate::store::import::line_mech;
use crate::store::{Sqlite, StoreError, for_each_line};

/// The longest wait between two looks at the files, whatever the watcher says.
pub const POLL: Duration = Duration::from_millis(250);
/// Bytes of the log read (and committed to the mirror) at a time.
const CHUNK: usize = 4 << 20;
/// Lines of one mech in one read above which streams read them from the store rather than
/// from the broadcast (which keeps up to a thousand batches for slow subscribers).
const BATCH_LINES: usize = 256;
/// How many first bytes of the log identify it (a rewrite in place changes them).
const HEAD: usize = 256;

/// A file as last seen: length, modification time and inode; `None` when missing.
type Seen = Option<(u64, SystemTime, u64)>;

fn seen(path: &Path) -> Seen {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.ino()))
}

/// Where the mirror is in DDC's log.
#[derive(Debug, Default)]
struct Cursor {
    /// Device and inode of the file read.
    file: Option<(u64, u64)>,
    /// Bytes consumed (up to the end of the last complete line).
    offset: u64,
    /// Its first bytes, to notice a rewrite in place.
    head: Vec<u8>,
    /// Physical lines consumed, for messages.
    line: u64,
    /// The highest seq mirrored (seqs are global and strictly increasing).
    last_seq: u64,
}

/// A running follower: stop it with [`Following::stop`].
#[derive(Debug)]
pub struct Following {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Following {
    /// Stops the follower and waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        if self.thread.join().is_err() {
            tracing::error!("the DDC follower panicked");
        }
    }
}

/// The follower's state; runs on its own thread.
struct Follower {
    ddc: Installation,
    conn: Connection,
    shared: Arc<Shared>,
    cursor: Cursor,
    rules_files: [Seen; 3],
    member_file: Seen,
    snapshots: HashMap<String, (Seen, Option<Snapshot>)>,
    /// Seqs a `DonationDeleted` named before they existed: their arrival needs a replay.
    future_targets: HashSet<u64>,
    /// The log is being read from its start: streams read the lines from the store.
    bulk: bool,
    /// Mechs to rebuild by replay once the read has caught up with the log: one replay for
    /// however many deletions a read brings.
    dirty: BTreeSet<String>,
}

/// Mirrors the log once (before the server listens), then follows it on a thread.
///
/// # Errors
/// A store failure while mirroring, or a watcher thread that cannot start.
pub fn start(ddc: Installation, conn: Connection, shared: Arc<Shared>) -> Result<Following, String> {
    let mut follower = Follower::new(ddc, conn, shared);
    follower.sync_log().map_err(|e| format!("cannot mirror {EVENTS_FILE}: {e}"))?;
    let mechs = follower.shared.mechs();
    tracing::info!(
        dir = %follower.ddc.dir().display(),
        lines = follower.cursor.line,
        last_seq = follower.cursor.last_seq,
        mechs = mechs.len(),
        "following the DDC installation read-only"
    );
    let (wake, woken) = mpsc::channel();
    let watcher = watch(follower.ddc.dir(), wake.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("mechfund-ddc-follower".into())
        .spawn(move || {
            // Dropped with the thread: the watcher lives exactly as long as the loop.
            let _watcher = watcher;
            while !stopping.load(Ordering::SeqCst) {
                if let Err(e) = follower.sync() {
                    tracing::error!(error = %e, "following the DDC installation failed; retrying");
                }
                // Any number of wake-ups is one look at the files.
                if woken.recv_timeout(POLL).is_ok() {
                    while woken.try_recv().is_ok() {}
                }
            }
        })
        .map_err(|e| format!("cannot start the DDC follower: {e}"))?;
    Ok(Following { stop, wake, thread })
}

/// A watcher of the config dir that wakes the follower; `None` (polling only) when the
/// platform's watcher cannot start, e.g. out of inotify watches.
fn watch(dir: &Path, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |_event: notify::Result<notify::Event>| {
        let _ = wake.send(());
    };
    let started = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    match started {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, poll_ms = POLL.as_millis(), "no file watcher; polling the DDC files");
            None
        }
    }
}

fn rules_files(ddc: &Installation) -> [PathBuf; 3] {
    [ddc.path(CONFIG_FILE), ddc.path(DECAY_FILE), ddc.path(EVOLUTION_MODE_FILE)]
}

/// What one read of the log brought for one mech.
#[derive(Default)]
struct Fresh {
    lines: Vec<(u64, String)>,
    records: Vec<Record>,
    replay: bool,
}

impl Follower {
    fn new(ddc: Installation, conn: Connection, shared: Arc<Shared>) -> Follower {
        Follower {
            rules_files: rules_files(&ddc).map(|p| seen(&p)),
            member_file: seen(&ddc.path(MEMBER_COUNT_FILE)),
            ddc,
            conn,
            shared,
            cursor: Cursor::default(),
            snapshots: HashMap::new(),
            future_targets: HashSet::new(),
            bulk: true,
            dirty: BTreeSet::new(),
        }
    }

    fn sync(&mut self) -> Result<(), String> {
        self.sync_rules();
        self.sync_log().map_err(|e| format!("{EVENTS_FILE}: {e}"))?;
        self.sync_snapshots().map_err(|e| format!("snapshots: {e}"))?;
        let member_file = seen(&self.ddc.path(MEMBER_COUNT_FILE));
        if member_file != self.member_file {
            self.member_file = member_file;
            let (count, note) = self.ddc.member_count();
            tracing::info!(count, note = note.as_deref().unwrap_or(""), "DDC's member count changed");
        }
        Ok(())
    }

    /// Rules files changed: the new rules in force and every mech rebuilt under them.
    fn sync_rules(&mut self) {
        let now = rules_files(&self.ddc).map(|p| seen(&p));
        if now == self.rules_files {
            return;
        }
        self.rules_files = now;
        match self.ddc.rules() {
            Ok((rules, _)) if rules == *self.shared.rules() => {}
            Ok((rules, notes)) => {
                tracing::info!(notes = notes.join("; "), "DDC's rules changed; every mech is replayed under them");
                self.shared.set_rules(rules);
                if let Err(e) = self.rebuild(&self.shared.mechs()) {
                    tracing::error!(error = %e, "cannot replay after the rules changed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the rules in force stay until the file is fixed"),
        }
    }

    /// Snapshots that changed their goal rebuild their mech.
    fn sync_snapshots(&mut self) -> Result<(), StoreError> {
        let mut changed = Vec::new();
        for mech in self.shared.mechs() {
            let file = self.ddc.snapshot_path(&mech);
            let now = file.as_deref().and_then(seen);
            if self.snapshots.get(&mech).is_some_and(|(was, _)| *was == now) {
                continue;
            }
            let (snapshot, _) = self.ddc.snapshot(&mech);
            let goal = |s: Option<&Snapshot>| s.and_then(Snapshot::known_goal).map(|k| (k.level, k.goal));
            let before = self.snapshots.get(&mech).and_then(|(_, s)| goal(s.as_ref()));
            if goal(snapshot.as_ref()) != before {
                changed.push(mech.clone());
            }
            self.snapshots.insert(mech, (now, snapshot));
        }
        if changed.is_empty() { Ok(()) } else { self.rebuild(&changed) }
    }

    /// Reads what DDC appended (or everything again, after a rewrite) into the mirror.
    fn sync_log(&mut self) -> io::Result<()> {
        let path = self.ddc.events();
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let file_id = meta.as_ref().map(|m| (m.dev(), m.ino()));
        let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
        let replaced = self.cursor.offset > 0
            && (file_id != self.cursor.file || len < self.cursor.offset || !self.same_head(&path)?);
        if replaced {
            tracing::warn!(
                file = %path.display(),
                "the log shrank or was replaced: it is read again from the start and open streams restart"
            );
            self.reset().map_err(io::Error::other)?;
        }
        self.cursor.file = file_id;
        if meta.is_none() || len <= self.cursor.offset {
            self.bulk = false;
            return Ok(());
        }
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(self.cursor.offset))?;
        let mut buf = Vec::with_capacity(CHUNK.min(usize::try_from(len - self.cursor.offset).unwrap_or(CHUNK)));
        loop {
            buf.clear();
            (&mut file).take(CHUNK as u64).read_to_end(&mut buf)?;
            let Some(end) = memchr::memrchr(b'\n', &buf) else {
                if buf.len() == CHUNK {
                    let before = self.cursor.offset;
                    self.skip_long_line(&mut file, buf.len())?;
                    if self.cursor.offset > before {
                        file.seek(SeekFrom::Start(self.cursor.offset))?;
                        continue;
                    }
                }
                // Half a line: DDC is still writing it.
                break;
            };
            let complete = &buf[..=end];
            if self.cursor.offset == 0 {
                self.cursor.head = complete[..complete.len().min(HEAD)].to_vec();
            }
            self.mirror(complete).map_err(io::Error::other)?;
            self.cursor.offset += (end + 1) as u64;
            file.seek(SeekFrom::Start(self.cursor.offset))?;
            if buf.len() < CHUNK {
                break;
            }
        }
        let dirty: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        self.rebuild(&dirty).map_err(io::Error::other)?;
        self.bulk = false;
        Ok(())
    }

    /// Whether the log still starts with the bytes it started with.
    fn same_head(&self, path: &Path) -> io::Result<bool> {
        let mut head = Vec::with_capacity(self.cursor.head.len());
        File::open(path)?.take(self.cursor.head.len() as u64).read_to_end(&mut head)?;
        Ok(head == self.cursor.head)
    }

    /// A line of a whole chunk or more, already `read` bytes into it: no DDC event. Skipped up
    /// to its end with a warning, or left for later while it has no end yet.
    fn skip_long_line(&mut self, file: &mut File, read: usize) -> io::Result<()> {
        let mut skipped = read as u64;
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                skipped += (i + 1) as u64;
                break;
            }
            skipped += n as u64;
        }
        self.cursor.line += 1;
        tracing::warn!(line = self.cursor.line, bytes = skipped, "a line of 4 MiB or more is no event; skipped");
        self.cursor.offset += skipped;
        Ok(())
    }

    /// Stores complete lines and advances the mechs they belong to.
    fn mirror(&mut self, complete: &[u8]) -> Result<(), StoreError> {
        let mut fresh: BTreeMap<String, Fresh> = BTreeMap::new();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO events (seq, mech, line) VALUES (?1, ?2, ?3)")?;
            for bytes in complete[..complete.len() - 1].split(|&b| b == b'\n') {
                self.cursor.line += 1;
                let number = self.cursor.line;
                if bytes.trim_ascii().is_empty() {
                    continue;
                }
                let (text, mech) = match line_mech(bytes) {
                    Ok(found) => found,
                    Err(why) => {
                        tracing::warn!("{EVENTS_FILE} line {number}: {why}; skipped, as replay skips it");
                        continue;
                    }
                };
                let record = match parse_line(bytes, &mech) {
                    Line::Mine(record) => record,
                    Line::Bad(why) => {
                        tracing::warn!("{EVENTS_FILE} line {number}: {why}; skipped, as replay skips it");
                        continue;
                    }
                    Line::Blank | Line::Other => continue,
                };
                if record.seq <= self.cursor.last_seq {
                    tracing::warn!(
                        "{EVENTS_FILE} line {number}: seq {} is not above the previous seq {}; skipped",
                        record.seq,
                        self.cursor.last_seq
                    );
                    continue;
                }
                let Ok(sql_seq) = i64::try_from(record.seq) else {
                    tracing::warn!("{EVENTS_FILE} line {number}: seq {} is too large; skipped", record.seq);
                    continue;
                };
                insert.execute(params![sql_seq, mech, text])?;
                self.cursor.last_seq = record.seq;
                let entry = fresh.entry(mech).or_default();
                entry.lines.push((record.seq, text.to_owned()));
                if let (Kind::DonationDeleted, mechfund_core::parse::Val::Int(target)) =
                    (&record.kind, record.payload.deleted_seq)
                    && target.unsigned_abs() > record.seq
                {
                    self.future_targets.insert(target.unsigned_abs());
                }
                let rewrites = matches!(record.kind, Kind::DonationDeleted | Kind::LevelUpCommitted)
                    || self.future_targets.contains(&record.seq);
                entry.replay |= rewrites;
                if !entry.replay {
                    entry.records.push(record);
                }
            }
        }
        tx.commit()?;
        let rules = self.shared.rules();
        for (mech, fresh) in fresh {
            if fresh.replay || self.dirty.contains(&mech) {
                self.dirty.insert(mech);
                continue;
            }
            let mut state = self.shared.state(&mech).map_or_else(|| self.initial(&mech, &rules), |s| (*s).clone());
            let mut effects = Effects::default();
            for record in &fresh.records {
                effects.clear();
                state.apply(record, &rules, &mut effects);
            }
            let committed = if self.bulk || fresh.lines.len() > BATCH_LINES {
                Committed::catch_up(&rules, &state)
            } else {
                Committed::lines(&rules, &state, fresh.lines)
            };
            self.publish(committed, state);
        }
        Ok(())
    }

    /// The state of a mech without events: its snapshot's goal applies from the start.
    fn initial(&mut self, mech: &str, rules: &Rules) -> State {
        let known = self.snapshot(mech).and_then(|s| s.known_goal());
        State::initial_known(mech, rules, [None; 10], known)
    }

    /// DDC's snapshot of `mech` (read the first time it is asked for).
    fn snapshot(&mut self, mech: &str) -> Option<Snapshot> {
        if !self.snapshots.contains_key(mech) {
            let seen_now = self.ddc.snapshot_path(mech).as_deref().and_then(seen);
            let (snapshot, _) = self.ddc.snapshot(mech);
            self.snapshots.insert(mech.to_owned(), (seen_now, snapshot));
        }
        self.snapshots.get(mech).and_then(|(_, s)| s.clone())
    }

    /// The replay of `mech`'s mirrored lines with DDC's snapshot, streamed from the store.
    fn replay(&mut self, mech: &str, rules: &Rules) -> Result<State, StoreError> {
        let options =
            ReplayOptions { mech: mech.to_owned(), ddc_snapshot: self.snapshot(mech), ..ReplayOptions::default() };
        let mut replayer = Replayer::new(rules, options);
        let mut number = 0;
        for_each_line(&mut Sqlite(&self.conn), mech, |line| {
            number += 1;
            // Lenient replay never stops.
            let _ = replayer.scan_line(number, &parse_line(line, mech));
            true
        })?;
        let second = replayer.second_pass();
        number = 0;
        for_each_line(&mut Sqlite(&self.conn), mech, |line| {
            number += 1;
            match second {
                SecondPass::Stream => {
                    let _ = replayer.fold_line(number, &parse_line(line, mech));
                }
                SecondPass::Buffer => replayer.buffer_line(number, parse_line(line, mech)),
            }
            true
        })?;
        Ok(replayer.finish().state)
    }

    /// Rebuilds `mechs` by replay and tells their streams (the lines did not change).
    fn rebuild(&mut self, mechs: &[String]) -> Result<(), StoreError> {
        let rules = self.shared.rules();
        for mech in mechs {
            let state = self.replay(mech, &rules)?;
            self.publish(Committed::catch_up(&rules, &state), state);
        }
        Ok(())
    }

    fn publish(&self, committed: Committed, state: State) {
        if let Ok(mut states) = self.shared.states.write() {
            states.insert(state.mech_id.clone(), Arc::new(state));
        }
        self.shared.publish(committed);
    }

    /// Forgets everything mirrored: the log is read again from its start.
    fn reset(&mut self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM events", [])?;
        self.cursor = Cursor::default();
        self.future_targets.clear();
        self.bulk = true;
        let rules = self.shared.rules();
        let main = self.initial("main", &rules);
        if let Ok(mut states) = self.shared.states.write() {
            states.clear();
            states.insert("main".to_owned(), Arc::new(main));
        }
        self.shared.restart_streams();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use mechfund_core::ddc::snapshot_file;
    use mechfund_core::{replay_bytes, rules::Rules as CoreRules};
    use proptest::prelude::*;

    use super::*;

    /// A follower of a fresh installation in a temp dir (no thread, no watcher: the test calls
    /// `sync_log` itself).
    fn follower(dir: &Path, snapshot: Option<&str>) -> Follower {
        std::fs::create_dir_all(dir.join("progress/snapshots")).unwrap();
        std::fs::write(dir.join(EVENTS_FILE), "").unwrap();
        if let Some(text) = snapshot {
            std::fs::write(dir.join(snapshot_file("main")), text).unwrap();
        }
        let ddc = Installation::open(dir).unwrap();
        let conn = crate::store::open_writer(&dir.join("mirror.db")).unwrap();
        let (shared, _commits) = Shared::new(CoreRules::default(), HashMap::new());
        Follower::new(ddc, conn, Arc::new(shared))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// However DDC's appends are cut (mid-line included), the followed state after each
        /// read equals the replay of the complete lines written so far, with DDC's snapshot.
        #[test]
        fn following_in_any_pieces_equals_replay(
            seed in 0u64..1000,
            events in 20u64..300,
            cuts in proptest::collection::vec(1usize..4000, 1..40),
            snapshot_goal in proptest::option::of(1i64..6000),
        ) {
            let log = mechfund_loggen::log_text(events, seed);
            let tmp = tempfile::tempdir().unwrap();
            // A snapshot of level 2 (at seq 10): its goal prices level 2 when it applies.
            let snapshot = snapshot_goal.map(|goal| format!(
                r#"{{"level":2,"evo_acc":0,"power_acc":0,"goal_requirement":{goal},"last_event_seq":10}}"#
            ));
            let mut f = follower(tmp.path(), snapshot.as_deref());
            let options = ReplayOptions {
                ddc_snapshot: snapshot.as_deref().map(|t| Snapshot::from_json("s", t).unwrap()),
                ..ReplayOptions::default()
            };
            let mut file = std::fs::OpenOptions::new().append(true).open(tmp.path().join(EVENTS_FILE)).unwrap();
            let mut written = 0;
            let mut cuts = cuts.into_iter().cycle();
            while written < log.len() {
                let end = (written + cuts.next().unwrap_or(1000)).min(log.len());
                file.write_all(&log.as_bytes()[written..end]).unwrap();
                written = end;
                f.sync_log().unwrap();
                let complete = &log[..log[..written].rfind('\n').map_or(0, |i| i + 1)];
                let want = replay_bytes(complete.as_bytes(), &CoreRules::default(), options.clone()).unwrap().state;
                let got = f.shared.state("main");
                if complete.is_empty() {
                    prop_assert!(got.is_none());
                } else {
                    let got = got.unwrap();
                    prop_assert_eq!(&*got, &want, "after {} of {} bytes", written, log.len());
                }
            }
        }
    }
}
