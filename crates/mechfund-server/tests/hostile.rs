//! `mechfund serve` as a real process on loopback against hostile clients: connections that
//! idle or trickle are closed within the timeouts while others get answers, the connection cap
//! holds the descriptors, and odd paths answer 4xx with a bounded number of log lines.
//!
//! The counts are small for CI; `MECHFUND_HOSTILE_SCALE=N` multiplies them (docs/reliability.md
//! gives the figures measured that way).

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::store::DataDir;
use common::{Server, TOKEN, client, get_text, post};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `MECHFUND_HOSTILE_SCALE` (default 1): how many times the default number of hostile clients.
fn scale() -> usize {
    std::env::var("MECHFUND_HOSTILE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Open descriptors of a process (Linux; `None` elsewhere).
fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(Iterator::count)
}

/// Resident memory of a process in MiB (Linux; `None` elsewhere).
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// How a hostile client's connection ended.
#[derive(Debug)]
struct Ended {
    /// After how long, from its connect.
    after: Duration,
    /// What the server sent before closing.
    answer: Vec<u8>,
}

/// Hostile clients of one server (see [`Hostile::spawn`]).
struct Hostile {
    addr: String,
    clients: Vec<(&'static str, tokio::task::JoinHandle<Option<Ended>>)>,
    connected: tokio::sync::mpsc::UnboundedSender<()>,
    connects: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Hostile {
    fn new(server: &Server) -> Hostile {
        let (connected, connects) = tokio::sync::mpsc::unbounded_channel();
        let addr = server.base.trim_start_matches("http://").to_owned();
        Hostile { addr, clients: Vec::new(), connected, connects }
    }

    /// A client (`kind` names it in failures) that connects, sends `head`, then one byte of
    /// `trickle` (cycled) every `every`, never finishing, and reads whatever comes; it ends when
    /// the server closes the connection (`None` if it has not after `give_up`).
    fn spawn(&mut self, kind: &'static str, head: &[u8], trickle: &'static [u8], every: Duration, give_up: Duration) {
        let (addr, head, connected) = (self.addr.clone(), head.to_vec(), self.connected.clone());
        let client = async move {
            let started = Instant::now();
            let mut tcp = TcpStream::connect(&addr).await.unwrap();
            tcp.write_all(&head).await.unwrap();
            connected.send(()).unwrap();
            let mut answer = Vec::new();
            let mut buffer = [0u8; 4096];
            let mut next = trickle.iter().cycle();
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let deadline = tokio::time::sleep(give_up);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    read = tcp.read(&mut buffer) => match read {
                        Ok(0) | Err(_) => return Some(Ended { after: started.elapsed(), answer }),
                        Ok(n) => answer.extend_from_slice(&buffer[..n]),
                    },
                    _ = tick.tick(), if !trickle.is_empty() => {
                        let byte = [*next.next().unwrap()];
                        if tcp.write_all(&byte).await.is_err() {
                            return Some(Ended { after: started.elapsed(), answer });
                        }
                    }
                    () = &mut deadline => return None,
                }
            }
        };
        self.clients.push((kind, tokio::spawn(client)));
    }

    /// Waits until every client has connected and sent its head.
    async fn connected(&mut self) {
        for _ in 0..self.clients.len() {
            self.connects.recv().await.unwrap();
        }
    }
}

/// The slowest of `rounds` rounds of a health check, a read and a write, while hostile clients
/// hold their connections.
async fn slowest_answers(server: &Server, rounds: usize) -> Duration {
    let c = client();
    let mut slowest = Duration::ZERO;
    for i in 0..rounds {
        let started = Instant::now();
        assert_eq!(get_text(&c, &format!("{}/healthz", server.base)).await.0, 200);
        assert_eq!(get_text(&c, &server.url("/mechs/main/state")).await.0, 200);
        let (status, body) =
            post(&c, &server.url("/mechs/main/donations"), &json!({"amount": "1.00", "donor": format!("d{i}")})).await;
        assert_eq!(status, 201, "{body}");
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

/// A built dashboard where the harness points `--dist` (`DATA/no-dist`).
fn with_dashboard(data: &Path) {
    let dist = data.join("no-dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>dashboard</title>").unwrap();
}

/// The `suppressed=N` of a log line.
fn suppressed(line: &str) -> u64 {
    let rest = line.split("suppressed=").nth(1).unwrap_or_else(|| panic!("no count in {line}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_paths_get_404_and_a_bounded_number_of_log_lines() {
    let dir = DataDir::new();
    with_dashboard(dir.path());
    let server = Server::start(dir.path());
    let c = client();
    let long = "a".repeat(300);
    let started = Instant::now();
    let requests = 300;
    for i in 0..requests {
        // ENAMETOOLONG from the file system: 500 and two ERROR lines each, before.
        let (status, body) = get_text(&c, &format!("{}/{long}{i}", server.base)).await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("\"not_found\""), "{body}");
    }
    let seconds = started.elapsed().as_secs() + 1;
    // A second later the budget is back: the next line says how many were dropped.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_text(&c, &format!("{}/{long}", server.base)).await.0, 404);
    let log = server.stderr_text();
    assert!(!log.contains("ERROR"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("a request path names no file")).collect();
    assert!(!lines.is_empty() && lines.len() as u64 <= 10 * (seconds + 1), "{} lines in {seconds} s", lines.len());
    let counted = lines.len() as u64 - 1 + lines.iter().map(|l| suppressed(l)).sum::<u64>();
    assert_eq!(counted, requests, "every bad request is logged or counted: {lines:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_trickling_connections_are_closed_while_others_get_answers() {
    // The test's own sockets: one per hostile client.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = DataDir::new();
    let server = Server::start_args(
        dir.path(),
        Some(TOKEN),
        &["--header-timeout-secs", "2", "--body-timeout-secs", "2", "--send-timeout-secs", "2"],
    );
    let (idle, heads, bodies) = (400 * scale(), 100 * scale(), 100 * scale());
    let give_up = Duration::from_secs(30);
    let every = Duration::from_millis(500);
    let mut hostile = Hostile::new(&server);
    for _ in 0..idle {
        hostile.spawn("idle", b"", b"", every, give_up);
    }
    for _ in 0..heads {
        // A head that never ends: a header trickled a byte every half second.
        hostile.spawn("head", b"GET /api/v1/mechs HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", every, give_up);
    }
    for i in 0..bodies {
        // A whole head, then a body trickled a byte every half second.
        let head = format!(
            "POST /api/v1/mechs/main/donations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: slow-{i}\r\nContent-Length: 1000\r\n\r\n"
        );
        hostile.spawn("body", head.as_bytes(), b" ", every, give_up);
    }
    hostile.connected().await;
    let slowest = slowest_answers(&server, 5).await;
    let (fds, rss) = (open_fds(server.pid()), rss_mib(server.pid()));
    eprintln!(
        "holding {idle} idle connections, {heads} trickled heads and {bodies} trickled bodies ({fds:?} descriptors \
         open in the server, {rss:?} MiB resident): the slowest health check + read + write took {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "answers took {slowest:?} while hostile clients held connections");
    let mut latest = std::collections::BTreeMap::<&str, Duration>::new();
    for (kind, client) in hostile.clients {
        let ended = client.await.unwrap().unwrap_or_else(|| panic!("a {kind} connection was never closed"));
        // The timeout (2 s), and slack for a loaded machine accepting hundreds of connections.
        assert!(ended.after < Duration::from_secs(4), "a {kind} connection was closed after {:?}", ended.after);
        if kind == "body" {
            let answer = String::from_utf8_lossy(&ended.answer);
            assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
            assert!(answer.contains("\"request_timeout\""), "{answer}");
        } else {
            assert!(ended.answer.is_empty(), "{kind}: {:?}", String::from_utf8_lossy(&ended.answer));
        }
        let latest = latest.entry(kind).or_default();
        *latest = (*latest).max(ended.after);
    }
    eprintln!("closed by the server after at most: {latest:?}");
    // Every trickled body was refused: no donation but the five of the probes.
    let (_, log) = get_text(&client(), &server.url("/mechs/main/events.jsonl")).await;
    assert_eq!(log.lines().count(), 5, "{log}");
    assert!(!server.stderr_text().contains("ERROR"), "{}", server.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_connections_wait_and_descriptors_stay_bounded() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = DataDir::new();
    let cap = 50;
    let server = Server::start_args(
        dir.path(),
        Some(TOKEN),
        &["--header-timeout-secs", "2", "--max-connections", &cap.to_string()],
    );
    if dir.database().is_some() {
        // The read pool's first connection (a socket and its client's runtime), opened by the
        // listener's first poll, after a second.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let before = open_fds(server.pid());
    let mut hostile = Hostile::new(&server);
    for _ in 0..3 * cap {
        hostile.spawn("idle", b"", b"", Duration::from_secs(1), Duration::from_secs(30));
    }
    // Connected as far as the clients know: the kernel completes the handshakes into the backlog.
    hostile.connected().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let (Some(before), Some(during)) = (before, open_fds(server.pid())) {
        assert!(during <= before + cap + 2, "{during} descriptors open, {before} before {} connections", 3 * cap);
    }
    // Behind 100 idle connections in the backlog, a health check waits its turn: two rounds of the
    // head timeout, not for ever.
    let started = Instant::now();
    assert_eq!(get_text(&client(), &format!("{}/healthz", server.base)).await.0, 200);
    let waited = started.elapsed();
    eprintln!("with {cap} connections held, a health check behind {} more waited {waited:?}", 2 * cap);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    for (_, client) in hostile.clients {
        assert!(client.await.unwrap().is_some(), "an idle connection was never closed");
    }
    assert!(server.stderr_text().contains("connection limit reached"), "{}", server.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn event_streams_outlive_the_connection_timeouts() {
    let dir = DataDir::new();
    let server = Server::start_args(
        dir.path(),
        Some(TOKEN),
        &["--header-timeout-secs", "1", "--body-timeout-secs", "1", "--send-timeout-secs", "1"],
    );
    let mut stream = common::Stream::open(&server, "main", "", None).await;
    // The backlog (none) and its state message.
    stream.until_state(Duration::from_secs(5)).await;
    // Quiet for three times every timeout: the stream waits on the server, not on the client.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = post(&client(), &server.url("/mechs/main/donations"), &json!({"amount": "2.00"})).await;
    assert_eq!(status, 201, "{body}");
    let (seq, line) = stream.next_line(Duration::from_secs(5)).await.expect("the stream is still open");
    assert_eq!(seq, 1, "{line}");
}

/// A log of `lines` donations to `mech` from seq `first` on, about 200 bytes a line.
fn big_log(mech: &str, first: u32, lines: u32) -> Vec<u8> {
    let mut log = Vec::new();
    for seq in first..first + lines {
        let line = format!(
            r#"{{"seq":{seq},"ts":"2025-06-01T00:00:00+00:00","type":"DonationAdded","mech_id":"{mech}","payload":{{"units":{},"donor":"Discord:donor-{seq}-with-a-longer-name-for-bulk","channel_id":"123456789012345678"}}}}"#,
            seq % 7 + 1
        );
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
    log
}

/// A download that reads nothing: a GET sent, a receive buffer of 4 KiB, never read from.
async fn stalled_download(server: &Server, path: &str) -> TcpStream {
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(format!("GET /api/v1{path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    tcp
}

/// `PRAGMA wal_checkpoint(MODE)` from another connection: (busy, WAL frames, frames checkpointed).
fn checkpoint(data: &Path, mode: &str) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(data.join("mechfund.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
}

/// How many other connections to `database` hold a snapshot (are in a transaction or a
/// statement).
fn snapshots_held(database: &common::store::Database) -> i64 {
    database.query::<i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()",
    )
}

fn wal_bytes(data: &Path) -> u64 {
    std::fs::metadata(data.join("mechfund.db-wal")).map_or(0, |m| m.len())
}

async fn donations(c: &reqwest::Client, server: &Server, tag: &str, count: usize) {
    for i in 0..count {
        let (status, body) =
            post(c, &server.url("/mechs/main/donations"), &json!({"amount": "1.00", "donor": format!("{tag}-{i}")}))
                .await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_exports_give_up_their_transaction_and_later_exports_start() {
    let dir = DataDir::new();
    let stall = Duration::from_secs(4);
    let server = Server::start_args(
        dir.path(),
        Some(TOKEN),
        &["--export-stall-secs", &stall.as_secs().to_string(), "--max-exports", "2"],
    );
    let c = client();
    // ~20 MB: far more than the socket buffers and the export's two chunks hold.
    let log = big_log("big", 1, 100_000);
    // PostgreSQL takes a round trip per imported line: some 25 s for these on this machine.
    let patient = reqwest::Client::builder().timeout(Duration::from_secs(180)).build().unwrap();
    let (status, body) =
        common::post_raw(&patient, &server.url("/mechs/big/import"), log.clone(), Some(TOKEN), None).await;
    assert_eq!(status, 201, "{body}");

    // Two downloads that read nothing take both export slots; a third is refused, not queued.
    let opened = Instant::now();
    let mut stalled = vec![
        stalled_download(&server, "/mechs/big/events.jsonl").await,
        stalled_download(&server, "/mechs/big/events.jsonl").await,
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = c.get(server.url("/mechs/big/events.jsonl")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.text().await.unwrap().contains("\"busy\""));
    // More downloads that read nothing are refused at once too, and cost nothing but their
    // connections; the server answers everything else as before.
    let refused = 20 * scale();
    let mut more = Vec::new();
    for _ in 0..refused {
        more.push(stalled_download(&server, "/mechs/big/events.jsonl").await);
    }
    let slowest = slowest_answers(&server, 5).await;
    eprintln!(
        "with 2 stalled exports and {refused} more refused: the slowest health check + read + write took {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    for mut tcp in more {
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 503");
    }

    // Writes go on while the stalled exports pin the WAL: no checkpoint gets past them, so the
    // WAL grows past the 1,000 pages at which the writer checkpoints and starts it over (the
    // import that grows it is SQLite's only: PostgreSQL has no WAL file to pin).
    if dir.database().is_none() {
        let (status, body) =
            common::post_raw(&c, &server.url("/mechs/mid/import"), big_log("mid", 200_001, 10_000), Some(TOKEN), None)
                .await;
        assert_eq!(status, 201, "{body}");
    }
    donations(&c, &server, "during", 100).await;
    let pinned = match dir.database() {
        None => {
            let (_, pinned, checkpointed) = checkpoint(dir.path(), "PASSIVE");
            assert!(
                checkpointed < pinned,
                "the stalled exports pin the WAL: {checkpointed} of {pinned} frames checkpointed"
            );
            assert!(pinned > 1000, "{pinned} frames");
            pinned
        }
        Some(database) => {
            // PostgreSQL's equivalent: their snapshots hold back every vacuum.
            let holding = snapshots_held(database);
            assert!(holding >= 2, "the stalled exports hold {holding} snapshots");
            0
        }
    };
    assert!(opened.elapsed() < stall, "the writes took longer than the stall time: make it longer");

    // After the stall time the exports give up: the slots are free while the stalled clients
    // still hold their connections (the send timeout is 30 s), and checkpoints complete.
    tokio::time::sleep((opened + stall + Duration::from_millis(1500)).saturating_duration_since(Instant::now())).await;
    let (status, exported) = get_text(&c, &server.url("/mechs/big/events.jsonl")).await;
    assert_eq!(status, 200);
    assert!(exported.as_bytes() == log, "a later export is the whole log");
    match dir.database() {
        None => {
            let (busy, frames, checkpointed) = checkpoint(dir.path(), "PASSIVE");
            assert_eq!(
                (busy, checkpointed),
                (0, frames),
                "every WAL frame is checkpointed once the stalled exports gave up"
            );
            // The writer starts the WAL over again (it would hold the frames before too otherwise).
            donations(&c, &server, "after", 100).await;
            let (_, after, _) = checkpoint(dir.path(), "PASSIVE");
            assert!(after < pinned, "{after} frames in the WAL after 100 writes, {pinned} before");
            // And nothing holds it: it can be truncated to nothing.
            let wal_before = wal_bytes(dir.path());
            assert_eq!(checkpoint(dir.path(), "TRUNCATE").0, 0);
            let wal_truncated = wal_bytes(dir.path());
            eprintln!(
                "WAL frames: {pinned} while pinned, {after} after the stalled exports gave up and 100 writes; \
                     the file: {wal_before} bytes, {wal_truncated} once truncated"
            );
            assert_eq!(wal_truncated, 0);
        }
        Some(database) => {
            // None, once no short statement is running either (the writer's, the listener's).
            let released = Instant::now() + Duration::from_secs(2);
            while snapshots_held(database) > 0 {
                assert!(
                    Instant::now() < released,
                    "snapshots held after the stalled exports gave up: {}",
                    database.query::<String>(
                        "SELECT string_agg(pid || ' ' || state || ': ' || query, '; ') FROM pg_stat_activity \
                         WHERE datname = current_database() AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
                    )
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // What the stalled clients got is a broken transfer, never a short log that looks complete.
    for tcp in &mut stalled {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server closed the connection");
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&got[..head_end]));
        assert!(String::from_utf8_lossy(&got[..head_end]).contains("transfer-encoding: chunked"));
        assert!(!got.ends_with(b"\r\n0\r\n\r\n"), "a stalled export ended like a complete one");
        assert!(got.len() < log.len(), "{} bytes of {}", got.len(), log.len());
    }
    let stderr = server.stderr_text();
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert_eq!(stderr.matches("the export gave up its read transaction").count(), 2, "{stderr}");
}
