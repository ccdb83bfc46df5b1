//! Several `mechfund serve` processes on one PostgreSQL database (spec §3.3 holds for each of
//! them), against a real PostgreSQL 15 cluster the test starts and removes
//! (`mechfund-pgtest`): every acknowledged write stored exactly once, every server's state the
//! replay of the one log, idempotency keys and event streams across servers, a server killed
//! with SIGKILL under load, and the database restarted under load.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::{Load, Log, Server, Stream, TOKEN, Write, client, get_json, seed, send_post};
use mechfund_pgtest::{Cluster, StopMode};
use serde_json::{Value, json};

/// One test at a time: each starts a cluster and several servers, which on a small machine is
/// load enough; parallel ones would measure the machine more than mechfund.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs blocking code that uses the sync `postgres` client (it runs a runtime of its own) from
/// a test's async body, on the test's own thread (which owns the cluster: see `mechfund-pgtest`).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// A cluster with a fresh database.
fn database(name: &str) -> (Cluster, String) {
    blocking(|| {
        let cluster = Cluster::start().unwrap_or_else(|e| panic!("start PostgreSQL: {e}"));
        let url = cluster.create_database(name).unwrap_or_else(|e| panic!("create database {name}: {e}"));
        (cluster, url)
    })
}

/// `n` servers on the database at `url`, each with its own data dir (for its admin token).
fn servers(url: &str, n: usize) -> (Vec<tempfile::TempDir>, Vec<Server>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers = dirs.iter().map(|dir| Server::start_args(dir.path(), Some(TOKEN), &["--store", url])).collect();
    (dirs, servers)
}

/// Every server serves the same log, each mech's state being its replay (checked by
/// [`Log::fetch`]: global gapless seqs, timestamps never going back).
async fn same_log_everywhere(c: &reqwest::Client, servers: &[&Server]) -> Log {
    let first = Log::fetch(c, servers[0]).await;
    for (i, server) in servers.iter().enumerate().skip(1) {
        let log = Log::fetch(c, server).await;
        assert_eq!(log.events, first.events, "server {i} serves another log than server 0");
    }
    first
}

#[tokio::test(flavor = "multi_thread")]
async fn three_servers_share_writes_keys_and_streams() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_cluster, url) = database("three");
    let (_dirs, servers) = servers(&url, 3);
    let c = client();
    // A donation first, so that `main` exists everywhere before the stream opens.
    let (status, _) = send_post(
        &c,
        &servers[0].url("/mechs/main/donations"),
        json!({"amount": "1", "donor": "first"}).to_string().into_bytes(),
        Some(TOKEN),
        Some("first"),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let mut stream = Stream::open(&servers[2], "main", "", None).await;

    let base = seed("MECHFUND_PG_SEED");
    let loads: Vec<(usize, Load)> = servers
        .iter()
        .enumerate()
        .map(|(i, server)| (i, Load::start(&c, server, 4, &format!("s{i}"), base ^ i as u64)))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut writes: Vec<(usize, Write)> = Vec::new();
    for (i, load) in loads {
        writes.extend(load.join().await.into_iter().map(|w| (i, w)));
    }
    let acked = writes.iter().filter(|(_, w)| w.answer.is_some()).count();
    assert!(acked > 100, "only {acked} writes were acknowledged in 3 s");
    for i in 0..servers.len() {
        let served = writes.iter().filter(|(at, w)| *at == i && w.answer.is_some()).count();
        assert!(served > 10, "server {i} acknowledged only {served} writes");
    }

    let log = same_log_everywhere(&c, &servers.iter().collect::<Vec<_>>()).await;
    let all: Vec<Write> = writes.iter().map(|(_, w)| w.clone()).collect();
    log.assert_exactly_once(&all, "three servers");

    // A retry on another server gets the first answer, byte for byte.
    for (i, write) in writes.iter().filter(|(_, w)| w.answer.is_some()).take(40) {
        let other = &servers[(i + 1) % servers.len()];
        let answer = write.answer.as_ref().unwrap();
        let retried = write.retry(&c, other).await.unwrap();
        assert_eq!(retried, (answer.status, answer.body.clone()), "{} retried on server {}", write.key, (i + 1) % 3);
    }

    // The stream on server 2 saw every line of `main`, whichever server wrote it, once and in
    // seq order, and ends on the state the log replays to.
    let main: Vec<u64> =
        log.events.iter().filter(|e| e["mech_id"] == "main").map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < main.len() && Instant::now() < deadline {
        match stream.next_line(Duration::from_secs(2)).await {
            Some((seq, _)) => seen.push(seq),
            None => break,
        }
    }
    assert_eq!(seen, main, "the stream on server 2 (every line of main, once, in seq order)");
    let state = get_json(&c, &servers[2].url("/mechs/main/state")).await;
    assert_eq!(state["state"]["last_event_seq"], json!(main.last().copied().unwrap()));
    // SIGTERM stops each cleanly, read connections, listener and stream included.
    drop(stream);
    for server in servers {
        blocking(|| server.stop());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_with_sigkill_under_load_loses_nothing_acknowledged() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_cluster, url) = database("kill9");
    let (_dirs, mut servers) = servers(&url, 3);
    let c = client();
    let base = seed("MECHFUND_PG_SEED");
    let loads: Vec<Load> = servers
        .iter()
        .enumerate()
        .map(|(i, server)| Load::start(&c, server, 4, &format!("k{i}"), base ^ i as u64))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    servers[1].kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut writes = Vec::new();
    for load in loads {
        writes.extend(load.join().await);
    }
    let log = same_log_everywhere(&c, &[&servers[0], &servers[2]]).await;
    log.assert_exactly_once(&writes, "after a SIGKILL of one of three servers");
    // The survivors go on writing, with seqs after the last one stored.
    let (status, body) = send_post(
        &c,
        &servers[2].url("/mechs/main/donations"),
        json!({"amount": "2", "donor": "after"}).to_string().into_bytes(),
        Some(TOKEN),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let last = log.events.last().map_or(0, |e| e["seq"].as_u64().unwrap());
    assert_eq!(answer["events"][0]["seq"], json!(last + 1));
    same_log_everywhere(&c, &[&servers[0], &servers[2]]).await;
}

/// A client that retries each donation with its key until it is answered (503 and broken
/// connections while the database is down), for `run_for`; returns its writes and how many
/// 503s it saw.
async fn patient_client(c: reqwest::Client, server: String, tag: String, run_for: Duration) -> (Vec<Write>, usize) {
    let started = Instant::now();
    let mut writes = Vec::new();
    let mut unavailable = 0;
    for i in 0.. {
        if started.elapsed() > run_for {
            break;
        }
        let key = format!("{tag}-{i}");
        let body = json!({"amount": "1.25", "donor": key}).to_string();
        let sent = Instant::now();
        let answer = loop {
            match send_post(
                &c,
                &format!("{server}/mechs/main/donations"),
                body.clone().into_bytes(),
                Some(TOKEN),
                Some(&key),
            )
            .await
            {
                Ok((201, text)) => break common::Answer { status: 201, body: text, at: Instant::now() },
                Ok((503, text)) => {
                    let error: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(error["error"]["code"], "unavailable", "{text}");
                    unavailable += 1;
                }
                Ok((status, text)) => panic!("{key}: unexpected {status}: {text}"),
                Err(e) => panic!("{key}: the server did not answer: {e}"),
            }
            assert!(sent.elapsed() < Duration::from_secs(60), "{key}: no answer within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        writes.push(Write {
            path: "/mechs/main/donations".to_owned(),
            body,
            key: key.clone(),
            donor: Some(key),
            sent,
            answer: Some(answer),
        });
    }
    (writes, unavailable)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_restarted_under_load_answers_503_and_loses_nothing_acknowledged() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (mut cluster, url) = database("restart");
    let (_dirs, servers) = servers(&url, 2);
    let c = client();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let server = servers[i % 2].url("");
            tokio::spawn(patient_client(c.clone(), server, format!("r{i}"), Duration::from_secs(5)))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    blocking(|| cluster.stop(StopMode::Fast)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    blocking(|| cluster.start_again()).unwrap();
    let mut writes = Vec::new();
    let mut unavailable = 0;
    for client in clients {
        let (mine, refused) = client.await.unwrap();
        writes.extend(mine);
        unavailable += refused;
    }
    assert!(unavailable > 0, "no client saw 503 while the database was down");
    let log = same_log_everywhere(&c, &servers.iter().collect::<Vec<_>>()).await;
    log.assert_exactly_once(&writes, "after the database restarted");
    let donations = log.events.iter().filter(|e| e["type"] == "DonationAdded").count();
    assert_eq!(donations, writes.len(), "every donation the clients sent is stored once");
}
