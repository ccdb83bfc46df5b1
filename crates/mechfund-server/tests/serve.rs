//! `mechfund serve` as a real process on loopback: what only a process has. Idempotency keys
//! across restarts, `kill -9` and SIGTERM under load, a snapshot rebuilt at start, the admin
//! token file, and options refused before listening. The HTTP behaviour (live state equals the
//! replay of the export, concurrency, bad input, auth, CORS, rate limits, files) is asserted in
//! process: tests/http/.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::store::DataDir;
use common::{
    Load, Log, Rng, Server, TOKEN, Write, assert_error, assert_live_equals_replay, client, events, get_json, get_text,
    post, post_raw,
};

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_survive_restarts() {
    let dir = DataDir::new();
    let mut server = Server::start(dir.path());
    let c = client();
    let url = server.url("/mechs/main/donations");
    let body = br#"{"amount":"7.50","donor":"retry"}"#.to_vec();
    let first = post_raw(&c, &url, body.clone(), Some(TOKEN), Some("key-1")).await;
    assert_eq!(first.0, 201, "{}", first.1);
    let again = post_raw(&c, &url, body.clone(), Some(TOKEN), Some("key-1")).await;
    assert_eq!(again, first, "a retry answers the first response");
    let other = post_raw(&c, &url, br#"{"amount":"7.51","donor":"retry"}"#.to_vec(), Some(TOKEN), Some("key-1")).await;
    assert_error(other.0, &other.1, 409, "same key, different body");
    let elsewhere = post_raw(&c, &server.url("/mechs/alt/donations"), body.clone(), Some(TOKEN), Some("key-1")).await;
    assert_error(elsewhere.0, &elsewhere.1, 409, "same key, same body, other mech");
    let jsonl = assert_live_equals_replay(&c, &server, "main").await;
    assert_eq!(events(&jsonl).len(), 1);
    let first_event: Value = serde_json::from_str(&first.1).unwrap();
    assert_eq!(first_event["events"][0]["payload"]["idempotency_key"], "key-1");
    server.kill9();
    let server = Server::start(dir.path());
    let url = server.url("/mechs/main/donations");
    let after_restart = post_raw(&c, &url, body.clone(), Some(TOKEN), Some("key-1")).await;
    assert_eq!(after_restart, first, "keys survive restarts");
    let (_, jsonl) = get_text(&c, &server.url("/mechs/main/events.jsonl")).await;
    assert_eq!(events(&jsonl).len(), 1);
    let bad_key = post_raw(&c, &url, body, Some(TOKEN), Some(&"k".repeat(101))).await;
    assert_error(bad_key.0, &bad_key.1, 422, "a key longer than 100");
}

/// Rounds of the crash test: each one kills the server with SIGKILL under load.
const CRASH_ROUNDS: u64 = 24;

/// `kill -9` at random moments under a load of concurrent writers (and sometimes again while
/// the server is starting up, over a snapshot row to rebuild). After every restart: each
/// acknowledged donation is in the log exactly once at the seq its answer gave, the others at
/// most once; state == replay; seqs global, strictly increasing and gapless; timestamps never go
/// backwards; an acknowledged write retried with its key gets its first answer again, and an
/// unacknowledged one retried with its key takes effect exactly once. The seed is printed
/// (`MECHFUND_CRASH_SEED` replays the same schedule of kills and writes).
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let seed = common::seed("MECHFUND_CRASH_SEED");
    let mut rng = Rng::seeded(seed);
    let dir = DataDir::new();
    let c = client();
    let mut all: Vec<Write> = Vec::new();
    let (mut acked_before_kill, mut startup_kills, mut before_ready, mut garbled) = (0, 0, 0, 0);
    let mut slowest = Duration::ZERO;
    let mut server = Server::start(dir.path());
    for round in 0..CRASH_ROUNDS {
        // Mostly in the thick of it, sometimes right after start-up.
        let delay = if rng.below(6) == 0 { rng.below(20) } else { 20 + rng.below(480) };
        let context = format!("seed {seed}, round {round}, kill after {delay} ms");
        let load = Load::start(&c, &server, 16, &format!("r{round}"), rng.next());
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        let mut writes = load.join().await;
        acked_before_kill += writes.iter().filter(|w| w.answer.is_some()).count();
        slowest = writes.iter().filter_map(|w| Some(w.answer.as_ref()?.at - w.sent)).fold(slowest, Duration::max);
        if rng.below(3) == 0 {
            // Killed again while opening the store and recovering, sometimes while it rebuilds
            // a garbled snapshot.
            if rng.below(2) == 0 {
                dir.execute("UPDATE snapshots SET state = 'garbled' WHERE mech = 'main'");
                garbled += 1;
            }
            let mut starting = Server::spawn(dir.path(), Some(TOKEN), &[]);
            // Ready after some 10-40 ms in a debug build (more while other tests run).
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            starting.kill9();
            startup_kills += 1;
            if !starting.stderr_text().contains("store ready") {
                before_ready += 1;
            }
        }
        server = Server::start(dir.path());
        let log = Log::fetch(&c, &server).await;
        log.assert_exactly_once(&all, &context);
        log.assert_exactly_once(&writes, &context);
        // Acknowledged: a retry with the key is answered as the first time, and records nothing.
        for write in writes.iter().filter(|w| w.answer.is_some()) {
            let first = write.answer.as_ref().unwrap();
            let again = write.retry(&c, &server).await.unwrap();
            assert_eq!(again, (first.status, first.body.clone()), "{context}: retry of {}", write.key);
        }
        // Keys survive many restarts.
        for _ in 0..all.len().min(10) {
            let write = &all[usize::try_from(rng.below(all.len() as u64)).unwrap()];
            let first = write.answer.as_ref().unwrap();
            let again = write.retry(&c, &server).await.unwrap();
            assert_eq!(again, (first.status, first.body.clone()), "{context}: retry of {}", write.key);
        }
        // Not acknowledged: the client retries with the key; the donation takes effect once, at
        // the seq of the first attempt if that one was committed.
        for write in writes.iter_mut().filter(|w| w.answer.is_none()) {
            let (status, body) = write.retry(&c, &server).await.unwrap();
            assert!([200, 201].contains(&status), "{context}: retry of {}: {status} {body}", write.key);
            let answer = common::Answer { status, body, at: std::time::Instant::now() };
            if let Some(seqs) = write.donor.as_ref().and_then(|donor| log.donors.get(donor)) {
                assert_eq!(seqs, &vec![answer.donation_seq().unwrap()], "{context}: retry of {}", write.key);
            }
            write.answer = Some(answer);
        }
        all.extend(writes);
    }
    let log = Log::fetch(&c, &server).await;
    log.assert_exactly_once(&all, &format!("seed {seed}, at the end"));
    let donations = all.iter().filter(|w| w.donor.is_some()).count();
    assert_eq!(log.donors.len(), donations, "seed {seed}: every donation, retried until answered, is recorded once");
    eprintln!(
        "{CRASH_ROUNDS} kills under load, {startup_kills} more at start-up ({before_ready} before the store was \
         ready, {garbled} over a garbled snapshot); \
         {} writes, {acked_before_kill} acknowledged before their kill (the slowest in {slowest:?}); {} events",
        all.len(),
        log.events.len()
    );
    assert!(acked_before_kill >= 50, "seed {seed}: too little load to mean anything: {acked_before_kill}");
    assert!(slowest < Duration::from_secs(10), "seed {seed}: a write took {slowest:?}");
    server.stop();
}

/// SIGTERM under the same load: every acknowledged write is kept, and the stop is clean.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_nothing() {
    let dir = DataDir::new();
    let c = client();
    let server = Server::start(dir.path());
    let load = Load::start(&c, &server, 8, "t", 7);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    let writes = load.join().await;
    let server = Server::start(dir.path());
    assert!(!server.stderr_text().contains("snapshot rebuilt"), "{}", server.stderr_text());
    let log = Log::fetch(&c, &server).await;
    log.assert_exactly_once(&writes, "after SIGTERM");
    assert!(writes.iter().filter(|w| w.answer.is_some()).count() >= 20, "too little load");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_snapshot_is_rebuilt_on_start() {
    let dir = DataDir::new();
    let server = Server::start(dir.path());
    let c = client();
    for (path, body) in [
        ("/mechs/main/member-count", json!({"member_count": 40})),
        ("/mechs/main/donations", json!({"amount": "12.00"})),
        ("/mechs/main/system-donations", json!({"amount": "3", "event_name": "Birthday"})),
        ("/mechs/alt/donations", json!({"amount": 2.5})),
    ] {
        assert_eq!(post(&c, &server.url(path), &body).await.0, 201);
    }
    let before = get_json(&c, &server.url("/mechs/main/state")).await;
    let alt_before = get_json(&c, &server.url("/mechs/alt/state")).await;
    server.stop();
    let changed = dir.execute("UPDATE snapshots SET state = '{\"level\": \"garbled' WHERE mech = 'main'");
    assert_eq!(changed, 1);
    assert_eq!(dir.execute("UPDATE snapshots SET last_seq = 1 WHERE mech = 'alt'"), 1);
    let server = Server::start(dir.path());
    let log = server.stderr_text();
    assert!(log.contains("snapshot rebuilt") && log.contains("main") && log.contains("alt"), "{log}");
    assert_eq!(get_json(&c, &server.url("/mechs/main/state")).await, before);
    assert_eq!(get_json(&c, &server.url("/mechs/alt/state")).await, alt_before);
    assert_live_equals_replay(&c, &server, "main").await;
    assert_eq!(post(&c, &server.url("/mechs/main/donations"), &json!({"amount": "1"})).await.0, 201);
    assert_live_equals_replay(&c, &server, "main").await;
    server.stop();
    // The rebuilt rows were written back: the next start needs no rebuild.
    let server = Server::start(dir.path());
    assert!(!server.stderr_text().contains("snapshot rebuilt"), "{}", server.stderr_text());
}

/// Without `MECHFUND_ADMIN_TOKEN` the server makes a token in the data dir, readable by its owner
/// only, says where once, and uses the same file after a restart. (What the token lets through:
/// tests/http/access.rs.)
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_file_is_made_once_and_announced_once() {
    let dir = DataDir::new();
    let server = Server::start_args(dir.path(), None, &[]);
    let token_path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(server.stderr_text().contains("admin-token"), "the token's path is printed once");
    let c = client();
    let (status, text) =
        post_raw(&c, &server.url("/mechs/main/donations"), br#"{"amount":"1"}"#.to_vec(), Some(&token), None).await;
    assert_eq!(status, 201, "{text}");
    // A restart reuses the file and prints nothing about it.
    server.stop();
    let server = Server::start_args(dir.path(), None, &[]);
    assert!(!server.stderr_text().contains("admin-token"));
    let (status, _) =
        post_raw(&c, &server.url("/mechs/main/donations"), br#"{"amount":"1"}"#.to_vec(), Some(&token), None).await;
    assert_eq!(status, 201);
}

/// Bad options are refused before anything starts: exit 2 with what to fix, never a panic or a
/// "listening" line.
#[test]
fn unusable_options_exit_2_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let cases: [(&[&str], Option<&str>, &str); 10] = [
        (&["--cors-origin", "*", "--cors-origin", "https://a.example"], None, "cannot be combined"),
        (&["--cors-origin", "a.example"], None, "no scheme"),
        (&["--cors-origin", "https://a.example/path"], None, "no path"),
        (&["--cors-origin", "ftp://a.example"], None, "http or https"),
        (&["--cors-origin", "https://a.example:99999"], None, "port"),
        (&["--cors-origin", "https://a b.example"], None, "host"),
        (&[], Some("x"), "at least 16"),
        (&["--ddc", "/nonexistent/ddc"], None, "not a directory"),
        (&["--store", "mysql://u:secret@db/x"], None, "mysql://u@db/x is not a PostgreSQL URL"),
        (&["--store", "postgres://u@db:port/x"], None, "--store / MECHFUND_STORE: postgres://u@db:port/x"),
    ];
    for (args, token, needle) in cases {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mechfund"));
        command.args(["serve", "--addr", "127.0.0.1:0", "--data", data]).args(args).env_remove("MECHFUND_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("MECHFUND_ADMIN_TOKEN", token);
        }
        let out = command.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("secret"), "{args:?}: a password is printed: {stderr}");
        assert!(!stdout.contains("listening") && !stderr.contains("panicked"), "{args:?}: {stdout}{stderr}");
    }
    // A short token in the token file is refused too (by the running store's start-up).
    std::fs::write(dir.path().join("admin-token"), "short\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mechfund"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data", data])
        .env_remove("MECHFUND_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("at least 16"), "{stderr}");
}
