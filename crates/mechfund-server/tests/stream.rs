//! `GET /api/v1/mechs/{mech}/events/stream` against the real binary on loopback: the backlog
//! then every commit once and in order, resuming with `Last-Event-ID` after a `kill -9` and a
//! restart without missing or repeating a line, open streams not holding up a graceful stop,
//! and bad resume points refused.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, Stream, client, get_text, post};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn donate(c: &reqwest::Client, server: &Server, donor: &str, amount: &str) -> Value {
    let (status, body) =
        post(c, &server.url("/mechs/main/donations"), &json!({"amount": amount, "donor": donor})).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The stored lines of `main` as (seq, line).
async fn stored(c: &reqwest::Client, server: &Server) -> Vec<(u64, String)> {
    let (status, text) = get_text(c, &server.url("/mechs/main/events.jsonl")).await;
    assert_eq!(status, 200);
    text.lines()
        .map(|line| (serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap(), line.to_owned()))
        .collect()
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_then_every_commit_once_in_order_with_the_state() {
    let dir = temp();
    let server = Server::start(dir.path());
    let c = client();
    for (donor, amount) in [("ann", "4.00"), ("bob", "3.00"), ("cy", "2.50")] {
        donate(&c, &server, donor, amount).await;
    }
    let mut stream = Stream::open(&server, "main", "?after_seq=1", None).await;
    let first = stream.next(WAIT).await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("1000"), "{first:?}");
    let (backlog, state) = stream.until_state(WAIT).await;
    assert_eq!(backlog, stored(&c, &server).await[1..].to_vec(), "the backlog is every line after seq 1");
    assert_eq!(state, common::get_json(&c, &server.url("/mechs/main/state")).await);

    // $10.00 is the level-1 goal (base 10.00, 0 members): 4.00 + 3.00 + 2.50 + 0.50 levels up,
    // so that commit carries the donation and its derived LevelUpCommitted (and exact-hit bonus).
    let mut latencies = Vec::new();
    for (i, amount) in ["0.50", "1.00", "2.00"].into_iter().enumerate() {
        let body = donate(&c, &server, &format!("live-{i}"), amount).await;
        let acked = Instant::now();
        let answered: Vec<u64> =
            body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let (lines, state) = stream.lines_then_state(answered.len(), WAIT).await;
        latencies.push(acked.elapsed());
        let seqs: Vec<u64> = lines.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, answered, "the stream carries exactly the write's events");
        assert_eq!(state["state"], body["state"], "the state message is the state after the write");
    }
    let state = common::get_json(&c, &server.url("/mechs/main/state")).await;
    assert_eq!(state["state"]["level"], 2, "the 0.50 donation levelled the mech up");
    println!("stream latency after the acknowledgement: {latencies:?}");

    // Another mech's writes are not in this stream: the next message is main's.
    let (status, _) = post(&c, &server.url("/mechs/alt/donations"), &json!({"amount": "1.00"})).await;
    assert_eq!(status, 201);
    donate(&c, &server, "last", "1.00").await;
    let (lines, _) = stream.lines_then_state(1, WAIT).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].1.contains("\"mech_id\":\"main\"") && lines[0].1.contains("\"last\""), "{lines:?}");
    let all = stored(&c, &server).await;
    assert_eq!(lines[0], *all.last().unwrap());
}

/// Streams opened while 8 clients donate: their backlogs race the batches of the same commits.
/// Whatever the race, each `state` message is the state after the last line the stream sent
/// (what lets a client check itself against the server), and every line comes once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn every_state_message_is_the_state_after_the_last_line_sent() {
    let dir = temp();
    let server = std::sync::Arc::new(Server::start(dir.path()));
    let c = client();
    // Resuming beyond the end (what `<mechfund-progress>` does): `state` messages only.
    let mut states_only = Stream::open(&server, "main", "?after_seq=9007199254740991", None).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (c, server) = (c.clone(), server.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    donate(&c, &server, &format!("w{w}-{i}"), "0.25").await;
                }
            })
        })
        .collect();
    let mut followers = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let server = server.clone();
        followers.push(tokio::spawn(async move {
            let mut stream = Stream::open(&server, "main", "", None).await;
            let (mut seqs, mut states) = (Vec::new(), 0);
            // Until the state holds all 320 donations of $0.25 (with their level-ups).
            loop {
                let message = stream.next(WAIT).await.expect("the stream is open");
                match (message.event.as_deref(), message.id) {
                    (Some("state"), _) => {
                        let state: Value = serde_json::from_str(&message.data).unwrap();
                        let last = state["state"]["last_event_seq"].as_u64().unwrap();
                        assert_eq!(
                            Some(&last),
                            seqs.last().or(Some(&0)),
                            "a state message after line {:?}",
                            seqs.last()
                        );
                        states += 1;
                        if state["state"]["cumulative_donations_cents"] == 320 * 25 {
                            return (seqs, states);
                        }
                    }
                    (None, Some(id)) => seqs.push(id.parse::<u64>().unwrap()),
                    _ => {}
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let message = states_only.next(WAIT).await.expect("the stream is open");
        if message.retry.is_some() {
            continue;
        }
        assert_eq!(message.event.as_deref(), Some("state"), "{message:?}");
        let state: Value = serde_json::from_str(&message.data).unwrap();
        seen.push(state["state"]["last_event_seq"].as_u64().unwrap());
        if state["state"]["cumulative_donations_cents"] == 320 * 25 {
            break;
        }
    }
    assert!(seen.len() >= 2 && seen.windows(2).all(|w| w[0] < w[1]), "state-only stream: {seen:?}");
    let all: Vec<u64> = stored(&c, &server).await.iter().map(|(seq, _)| *seq).collect();
    let mut live = 0;
    for follower in followers {
        let (seqs, states) = tokio::time::timeout(WAIT, follower).await.expect("the follower finished").unwrap();
        assert_eq!(seqs, all, "every line once, in order");
        // More than the backlog's state: it followed commits too (one opened after the last
        // commit has the backlog's only).
        live += usize::from(states >= 2);
    }
    assert!(live >= 1, "no stream was open while the writes went on: the race was not exercised");
    std::sync::Arc::into_inner(server).unwrap().stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_after_kill_9_and_a_restart_without_gaps_or_repeats() {
    let dir = temp();
    let data = dir.path();
    let mut server = Server::start(data);
    let c = client();
    for i in 0..5 {
        donate(&c, &server, &format!("before-{i}"), "1.00").await;
    }
    let mut received = Vec::new();
    let mut stream = Stream::open(&server, "main", "", None).await;
    while received.len() < 5 {
        received.push(stream.next_line(WAIT).await.expect("backlog"));
    }
    server.kill9();
    assert_eq!(stream.next_line(WAIT).await, None, "the stream ends with the server");

    let server = Server::start(data);
    // Written while no subscriber is connected.
    for i in 0..3 {
        donate(&c, &server, &format!("downtime-{i}"), "1.00").await;
    }
    let last = received.last().unwrap().0.to_string();
    // `after_seq=0` is overridden by the Last-Event-ID a reconnecting EventSource sends.
    let mut stream = Stream::open(&server, "main", "?after_seq=0", Some(&last)).await;
    for _ in 0..3 {
        received.push(stream.next_line(WAIT).await.unwrap());
    }
    donate(&c, &server, "after", "1.00").await;
    received.push(stream.next_line(WAIT).await.unwrap());
    assert_eq!(received, stored(&c, &server).await, "every stored line exactly once, in order");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn open_streams_do_not_hold_up_a_graceful_stop() {
    let dir = temp();
    let server = Server::start(dir.path());
    let c = client();
    donate(&c, &server, "ann", "1.00").await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut stream = Stream::open(&server, "main", "", None).await;
        stream.next_line(WAIT).await.unwrap();
        streams.push(stream);
    }
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5), "stopping took {:?}", started.elapsed());
    for stream in &mut streams {
        assert_eq!(stream.next_line(WAIT).await, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_resume_points_and_unknown_mechs_are_refused() {
    let dir = temp();
    let server = Server::start(dir.path());
    let c = reqwest::Client::new();
    let cases: [(&str, Option<&str>, u16, &str); 5] = [
        ("/mechs/main/events/stream", Some("abc"), 422, "Last-Event-ID"),
        ("/mechs/main/events/stream", Some("-1"), 422, "Last-Event-ID"),
        ("/mechs/main/events/stream?after_seq=-1", None, 422, "after_seq"),
        ("/mechs/main/events/stream?after_seq=1.5", None, 422, "after_seq"),
        ("/mechs/nobody/events/stream", None, 404, "nobody"),
    ];
    for (path, id, want, needle) in cases {
        let mut request = c.get(server.url(path));
        if let Some(id) = id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(status, want, "{path} {id:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{path} {id:?}: {body}");
    }
    assert!(Path::new(&dir.path().join("mechfund.db")).exists());
}
