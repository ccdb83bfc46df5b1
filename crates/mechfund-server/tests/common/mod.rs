//! What the server's test suites share. Most of it is for the suites that run `mechfund serve`
//! as a real process (tests/serve.rs, tests/admin.rs, tests/stream.rs, ...): a server on
//! 127.0.0.1:0 with a temp data dir, HTTP with the bearer token, SIGKILL and SIGTERM, a seeded
//! RNG, and a donation load whose every write is recorded with what came of it, so a test can
//! tell which writes were acknowledged. [`app`] is the in-process harness (tests/http/). Both use
//! the one check that a mech's live state is the replay of its export
//! ([`assert_state_is_replay`]) and the one reader of event streams ([`Stream`]).

pub mod app;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mechfund_core::replay::Severity;
use mechfund_core::{DiagnosticKind, ReplayOptions, Rules, Timestamp, replay_bytes};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789";

/// A `mechfund serve` process with its data dir (and the PostgreSQL database of the dir's
/// [`DataDir`], if it has one); killed when dropped.
pub struct Server {
    child: Child,
    /// Until the address is read.
    stdout: Option<BufReader<ChildStdout>>,
    /// `http://127.0.0.1:PORT`, once ready.
    pub base: String,
    stderr: PathBuf,
}

impl Server {
    /// Started with [`TOKEN`], ready.
    pub fn start(data: &Path) -> Server {
        Server::start_args(data, Some(TOKEN), &[])
    }

    /// With extra arguments, ready; writes are not rate limited unless they give `--rate-limit`.
    pub fn start_args(data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let mut server = Server::spawn(data, token, extra);
        server.wait_ready();
        server
    }

    /// Spawned, not waited for: it may still be opening the store and recovering.
    pub fn spawn(data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        std::fs::create_dir_all(data).unwrap();
        let n = std::fs::read_dir(data).unwrap().count();
        let stderr = data.join(format!("stderr-{n}-{}.log", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_mechfund"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--dist")
            .arg(data.join("no-dist"))
            .args(extra)
            .env_remove("MECHFUND_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(database) = store::database_of(data) {
            command.args(["--store", database.url()]);
        }
        if !extra.contains(&"--rate-limit") {
            command.args(["--rate-limit", "0"]);
        }
        if let Some(token) = token {
            command.env("MECHFUND_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().expect("mechfund serve starts");
        let stdout = Some(BufReader::new(child.stdout.take().unwrap()));
        Server { child, stdout, base: String::new(), stderr }
    }

    /// Waits for `listening on http://ADDR`.
    fn wait_ready(&mut self) {
        let mut out = self.stdout.take().unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(base) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = self.child.kill();
            panic!("no address printed: {line:?}; stderr: {}", self.stderr_text());
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        self.base = base;
    }

    /// For a start that must fail: waits for the process to exit by itself (killing it and
    /// failing the test if it is still running after `within`); its exit code and its stdout.
    pub fn exited(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}; stderr: {}", self.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        (status.code(), stdout)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// SIGKILL: no chance to finish anything. (The stderr stays readable.)
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM: a graceful stop, which must succeed.
    pub fn stop(mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful stop failed: {status}; stderr: {}", self.stderr_text());
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A POST; `Err` when no complete answer came (the server died, say).
pub async fn send_post(
    c: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    token: Option<&str>,
    key: Option<&str>,
) -> reqwest::Result<(u16, String)> {
    let mut request = c.post(url).header("content-type", "application/json").body(body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

pub async fn post_raw(
    c: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    token: Option<&str>,
    key: Option<&str>,
) -> (u16, String) {
    send_post(c, url, body, token, key).await.unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

pub async fn post(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let (status, text) = post_raw(c, url, body.to_string().into_bytes(), Some(TOKEN), None).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")))
}

pub async fn get_text(c: &reqwest::Client, url: &str) -> (u16, String) {
    let response = c.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    let (status, text) = get_text(c, url).await;
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Live state (GET …/state) equals the core's replay of GET …/events.jsonl; returns the export.
pub async fn assert_live_equals_replay(c: &reqwest::Client, server: &Server, mech: &str) -> String {
    let (status, jsonl) = get_text(c, &server.url(&format!("/mechs/{mech}/events.jsonl"))).await;
    assert_eq!(status, 200);
    let live = get_json(c, &server.url(&format!("/mechs/{mech}/state"))).await;
    assert_state_is_replay(mech, &live, jsonl.as_bytes());
    jsonl
}

/// The core's replay of one mech's export (the lines of `GET …/events.jsonl`) under the default
/// rules, lenient as `mechfund replay`.
pub fn replay_export(mech: &str, jsonl: &[u8]) -> mechfund_core::ReplayResult {
    let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
    replay_bytes(jsonl, &Rules::default(), options).unwrap()
}

/// `live` (the body of `GET …/state`) is the core's replay of `jsonl` (`GET …/events.jsonl`):
/// the same state and display, from a log of whole lines that replays without warnings.
#[track_caller]
pub fn assert_state_is_replay(mech: &str, live: &Value, jsonl: &[u8]) {
    assert!(jsonl.is_empty() || jsonl.ends_with(b"\n"));
    let replayed = replay_export(mech, jsonl);
    // As `mechfund verify`: re-entering a level after a deletion uses its recorded goal
    // (recorded_goal_differs), and deletions supersede earlier cross-checks; nothing else.
    let warnings: Vec<_> = replayed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning && d.kind != DiagnosticKind::RecordedGoalDiffers)
        .collect();
    assert!(warnings.is_empty(), "{mech}: the server wrote a log with diagnostics: {warnings:?}");
    assert_eq!(live["state"], serde_json::to_value(&replayed.state).unwrap(), "{mech}: state differs from replay");
    assert_eq!(live["display"], serde_json::to_value(&replayed.display).unwrap(), "{mech}: display differs");
}

/// Asserts the error shape and a 4xx status.
#[track_caller]
pub fn assert_error(status: u16, text: &str, want: u16, what: &str) {
    assert_eq!(status, want, "{what}: {text}");
    let body: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: error is not JSON ({e}): {text}"));
    assert!(body["error"]["code"].is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

pub fn events(jsonl: &str) -> Vec<Value> {
    jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// xorshift64*: a tiny seeded RNG.
pub struct Rng(pub u64);

impl Rng {
    /// From any seed (0 included: splitmix64 first).
    pub fn seeded(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed in the environment variable `var`, or a fresh one; printed either way so that a
/// failure can be reproduced.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        u64::try_from(nanos % u128::from(u64::MAX)).unwrap()
    });
    eprintln!("seed {seed} (reproduce with {var}={seed})");
    seed
}

pub fn dollars(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An answer with a 2xx status: the write was acknowledged.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Answer {
    /// The seq of the `DonationAdded` the answer reports.
    pub fn donation_seq(&self) -> Option<u64> {
        let body: Value = serde_json::from_str(&self.body).ok()?;
        body["events"].as_array()?.iter().find(|e| e["type"] == "DonationAdded")?["seq"].as_u64()
    }
}

/// One write a [`Load`] sent, with its `Idempotency-Key` and what came of it.
#[derive(Clone, Debug)]
pub struct Write {
    /// The path below `/api/v1`.
    pub path: String,
    pub body: String,
    pub key: String,
    /// Unique per donation: how the log identifies it.
    pub donor: Option<String>,
    /// When it was sent.
    pub sent: Instant,
    /// `None`: no complete answer (the server died), or 503 (it was shutting down).
    pub answer: Option<Answer>,
}

impl Write {
    /// Sends it again with its key; `Err` when no complete answer came.
    pub async fn retry(&self, c: &reqwest::Client, server: &Server) -> reqwest::Result<(u16, String)> {
        send_post(c, &server.url(&self.path), self.body.clone().into_bytes(), Some(TOKEN), Some(&self.key)).await
    }
}

/// Concurrent clients writing until stopped or the server goes away: mostly donations (each
/// with a unique donor and key, some to a second mech, some with a member count), some member
/// counts and some deletion toggles of the client's own acknowledged donations.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Write>>>,
}

impl Load {
    /// `clients` clients; `tag` makes donors and keys unique across loads; `seed` picks the writes.
    pub fn start(c: &reqwest::Client, server: &Server, clients: usize, tag: &str, seed: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (c, api, stop) = (c.clone(), server.url(""), stop.clone());
                let tag = format!("{tag}-c{client}");
                let mut rng = Rng::seeded(seed ^ (client as u64).wrapping_mul(0x1000_0000_01B3));
                tokio::spawn(async move { run_client(c, api, tag, &mut rng, stop).await })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the clients (each finishes the write it is in) and returns every write they sent.
    pub async fn join(self) -> Vec<Write> {
        self.stop.store(true, Ordering::SeqCst);
        let mut writes = Vec::new();
        for task in self.tasks {
            writes.extend(task.await.unwrap());
        }
        writes
    }
}

async fn run_client(c: reqwest::Client, api: String, tag: String, rng: &mut Rng, stop: Arc<AtomicBool>) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut mine: Vec<(&str, u64)> = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("{tag}-{i}");
        let mut donor = None;
        let roll = rng.below(100);
        let (path, body) = if roll < 5 {
            ("/mechs/main/member-count".to_owned(), json!({"member_count": rng.below(300)}))
        } else if roll < 9 && !mine.is_empty() {
            let (mech, seq) = mine[usize::try_from(rng.below(mine.len() as u64)).unwrap()];
            (format!("/mechs/{mech}/donations/{seq}/toggle-deletion"), json!({"reason": format!("toggle {key}")}))
        } else {
            let mech = if rng.below(10) == 0 { "alt" } else { "main" };
            let mut body = json!({"amount": dollars(1 + rng.below(2500)), "donor": key});
            if rng.below(5) == 0 {
                body["member_count"] = json!(rng.below(300));
            }
            donor = Some(key.clone());
            (format!("/mechs/{mech}/donations"), body)
        };
        let body = body.to_string();
        let sent = Instant::now();
        let result = send_post(&c, &format!("{api}{path}"), body.clone().into_bytes(), Some(TOKEN), Some(&key)).await;
        let answer = match result {
            Ok((status @ (200 | 201), text)) => Some(Answer { status, body: text, at: Instant::now() }),
            // The server died, or is shutting down and refused before the writer.
            Err(_) | Ok((503, _)) => None,
            Ok((status, text)) => panic!("POST {path} {body}: unexpected {status}: {text}"),
        };
        let done = answer.is_none();
        if let Some(seq) = answer.as_ref().and_then(Answer::donation_seq) {
            mine.push((if path.starts_with("/mechs/alt/") { "alt" } else { "main" }, seq));
        }
        writes.push(Write { path, body, key, donor, sent, answer });
        if done {
            break;
        }
    }
    writes
}

/// Every mech's log as served, checked: each mech's state equals its replay, seqs are unique,
/// strictly increasing and gapless across mechs (see [`Log::fetch_with_gap`] after a restore),
/// and timestamps never go backwards.
pub struct Log {
    /// Every event of every mech, by seq.
    pub events: Vec<Value>,
    /// The seqs of the `DonationAdded` events of each donor.
    pub donors: HashMap<String, Vec<u64>>,
}

impl Log {
    pub async fn fetch(c: &reqwest::Client, server: &Server) -> Log {
        Log::fetch_with_gap(c, server, None).await
    }

    /// As [`Log::fetch`], for a store restored from a backup and written to since: the seqs in
    /// `lost` (handed out after the backup, before the restore) are never given again, so they
    /// are missing and the rest is gapless.
    pub async fn fetch_with_gap(c: &reqwest::Client, server: &Server, lost: Option<RangeInclusive<u64>>) -> Log {
        let mechs = get_json(c, &server.url("/mechs")).await;
        let mut by_seq = BTreeMap::new();
        for mech in mechs.as_array().unwrap() {
            let mech = mech.as_str().unwrap();
            let jsonl = assert_live_equals_replay(c, server, mech).await;
            let mut last = 0;
            for event in events(&jsonl) {
                let seq = event["seq"].as_u64().unwrap();
                assert!(seq > last, "{mech}: seq {seq} after {last}");
                last = seq;
                assert_eq!(event["mech_id"], mech);
                assert!(by_seq.insert(seq, event).is_none(), "seq {seq} in two mechs");
            }
        }
        let seqs: Vec<u64> = by_seq.keys().copied().collect();
        let expected: Vec<u64> =
            (1..).filter(|seq| !lost.as_ref().is_some_and(|lost| lost.contains(seq))).take(seqs.len()).collect();
        assert_eq!(seqs, expected, "seqs are global and gapless (but for the lost {lost:?})");
        let mut donors: HashMap<String, Vec<u64>> = HashMap::new();
        let mut last_ts = Timestamp(i64::MIN);
        for (seq, event) in &by_seq {
            let ts = Timestamp::parse(event["ts"].as_str().unwrap()).unwrap();
            assert!(ts >= last_ts, "seq {seq}: ts {ts} before the previous {last_ts}");
            last_ts = ts;
            if event["type"] == "DonationAdded"
                && let Some(donor) = event["payload"]["donor"].as_str()
            {
                donors.entry(donor.to_owned()).or_default().push(*seq);
            }
        }
        Log { events: by_seq.into_values().collect(), donors }
    }

    /// No donation is recorded twice; every acknowledged one is recorded once, at the seq its
    /// answer gave; `context` says where the failure happened.
    #[track_caller]
    pub fn assert_exactly_once(&self, writes: &[Write], context: &str) {
        let twice: Vec<_> = self.donors.iter().filter(|(_, seqs)| seqs.len() > 1).collect();
        assert!(twice.is_empty(), "{context}: donations recorded more than once: {twice:?}");
        for write in writes {
            let (Some(donor), Some(answer)) = (&write.donor, &write.answer) else { continue };
            let seq = answer.donation_seq().unwrap_or_else(|| panic!("{context}: {donor}: answer {}", answer.body));
            assert_eq!(
                self.donors.get(donor),
                Some(&vec![seq]),
                "{context}: acknowledged donation {donor} (seq {seq})"
            );
        }
    }
}

/// One server-sent message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<String>,
}

/// Reads server-sent messages off `GET …/events/stream`: of a real server ([`Stream::open`]) or
/// of an in-process answer ([`Stream::from_body`]).
pub struct Stream {
    chunks: Chunks,
    buffer: String,
}

/// Where a [`Stream`]'s bytes come from.
enum Chunks {
    /// A response from a server on loopback.
    Http(reqwest::Response),
    /// The body of an in-process answer, drained as it comes (see [`Stream::from_body`]).
    InProcess(tokio::sync::mpsc::UnboundedReceiver<axum::body::Bytes>),
}

impl Stream {
    pub async fn open(server: &Server, mech: &str, query: &str, last_event_id: Option<&str>) -> Stream {
        let url = server.url(&format!("/mechs/{mech}/events/stream{query}"));
        let mut request = reqwest::Client::new().get(&url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Stream { chunks: Chunks::Http(response), buffer: String::new() }
    }

    /// The stream of an in-process answer's body (status and type already checked). A task
    /// polls the body as soon as it has bytes, as the server's connection does, so the stream
    /// keeps up with the commits whether or not the test is reading; it ends when the body ends
    /// or this [`Stream`] is dropped.
    pub fn from_body(body: axum::body::Body) -> Stream {
        use futures_util::StreamExt;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut body = body.into_data_stream();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => break,
                    chunk = body.next() => {
                        let Some(Ok(bytes)) = chunk else { break };
                        if sender.send(bytes).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Stream { chunks: Chunks::InProcess(receiver), buffer: String::new() }
    }

    /// The next message, `None` when the stream ended; panics after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                let mut data = Vec::new();
                for line in frame.lines() {
                    match line.split_once(':').map(|(k, v)| (k, v.strip_prefix(' ').unwrap_or(v))) {
                        Some(("id", v)) => message.id = Some(v.to_owned()),
                        Some(("event", v)) => message.event = Some(v.to_owned()),
                        Some(("data", v)) => data.push(v.to_owned()),
                        Some(("retry", v)) => message.retry = Some(v.to_owned()),
                        // A comment (keep-alive) or an empty line.
                        _ => {}
                    }
                }
                message.data = data.join("\n");
                if message == Message::default() {
                    continue;
                }
                return Some(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = match &mut self.chunks {
                Chunks::Http(response) => tokio::time::timeout(left, response.chunk()).await.map(|r| r.ok().flatten()),
                Chunks::InProcess(receiver) => tokio::time::timeout(left, receiver.recv()).await,
            };
            match chunk {
                Ok(Some(bytes)) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                Ok(None) => return None,
                Err(_) => panic!("no message within {wait:?}; buffered: {:?}", self.buffer),
            }
        }
    }

    /// The next event line (skipping `state` and `retry` messages): (seq, line).
    pub async fn next_line(&mut self, wait: Duration) -> Option<(u64, String)> {
        loop {
            let message = self.next(wait).await?;
            if message.event.is_none()
                && let Some(id) = message.id
            {
                return Some((id.parse().expect("the id is a seq"), message.data));
            }
        }
    }

    /// The next `count` lines and the `state` message after them (a `state` message before
    /// them, from a batch whose lines this stream already had, is skipped).
    pub async fn lines_then_state(&mut self, count: usize, wait: Duration) -> (Vec<(u64, String)>, Value) {
        let mut lines = Vec::new();
        while lines.len() < count {
            lines.push(self.next_line(wait).await.expect("the stream is open"));
        }
        let (more, state) = self.until_state(wait).await;
        lines.extend(more);
        (lines, state)
    }

    /// Messages up to and including the next `state` one.
    pub async fn until_state(&mut self, wait: Duration) -> (Vec<(u64, String)>, Value) {
        let mut lines = Vec::new();
        loop {
            let message = self.next(wait).await.expect("the stream is open");
            match (message.event.as_deref(), message.id) {
                (Some("state"), _) => return (lines, serde_json::from_str(&message.data).expect("state JSON")),
                (None, Some(id)) => lines.push((id.parse().unwrap(), message.data)),
                _ => {}
            }
        }
    }
}
