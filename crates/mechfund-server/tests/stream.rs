//! `GET /api/v1/mechs/{mech}/events/stream` against the real binary on loopback: resuming with
//! `Last-Event-ID` after a `kill -9` and a restart without missing or repeating a line, and open
//! streams not holding up a graceful stop. (The backlog, every commit once and in order, the
//! `state` messages and bad resume points are asserted in process: tests/http/stream.rs.)

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::store::DataDir;
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

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_after_kill_9_and_a_restart_without_gaps_or_repeats() {
    let dir = DataDir::new();
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
    let dir = DataDir::new();
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
