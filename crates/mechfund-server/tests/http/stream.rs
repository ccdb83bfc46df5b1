//! `GET /api/v1/mechs/{mech}/events/stream`: the backlog then every commit once and in order,
//! each `state` message the state after the last line sent, and bad resume points refused.
//! (Resuming after a `kill -9` and open streams at a graceful stop: tests/stream.rs.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{App, Req};

const WAIT: Duration = Duration::from_secs(10);

async fn donate(app: &App, donor: &str, amount: &str) -> Value {
    let (status, body) =
        app.post_json("/api/v1/mechs/main/donations", &json!({"amount": amount, "donor": donor})).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The stored lines of `main` as (seq, line).
async fn stored(app: &App) -> Vec<(u64, String)> {
    let reply = app.get("/api/v1/mechs/main/events.jsonl").await;
    assert_eq!(reply.status, 200);
    reply
        .text()
        .lines()
        .map(|line| (serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap(), line.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_then_every_commit_once_in_order_with_the_state() {
    let app = App::start();
    for (donor, amount) in [("ann", "4.00"), ("bob", "3.00"), ("cy", "2.50")] {
        donate(&app, donor, amount).await;
    }
    let mut stream = app.stream("main", "?after_seq=1", None).await;
    let first = stream.next(WAIT).await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("1000"), "{first:?}");
    let (backlog, state) = stream.until_state(WAIT).await;
    assert_eq!(backlog, stored(&app).await[1..].to_vec(), "the backlog is every line after seq 1");
    assert_eq!(state, app.get_json("/api/v1/mechs/main/state").await);

    // $10.00 is the level-1 goal (base 10.00, 0 members): 4.00 + 3.00 + 2.50 + 0.50 levels up,
    // so that commit carries the donation and its derived LevelUpCommitted (and exact-hit bonus).
    let mut latencies = Vec::new();
    for (i, amount) in ["0.50", "1.00", "2.00"].into_iter().enumerate() {
        let body = donate(&app, &format!("live-{i}"), amount).await;
        let acked = Instant::now();
        let answered: Vec<u64> =
            body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let (lines, state) = stream.lines_then_state(answered.len(), WAIT).await;
        latencies.push(acked.elapsed());
        let seqs: Vec<u64> = lines.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, answered, "the stream carries exactly the write's events");
        assert_eq!(state["state"], body["state"], "the state message is the state after the write");
    }
    let state = app.get_json("/api/v1/mechs/main/state").await;
    assert_eq!(state["state"]["level"], 2, "the 0.50 donation levelled the mech up");
    println!("stream latency after the acknowledgement: {latencies:?}");

    // Another mech's writes are not in this stream: the next message is main's.
    let (status, _) = app.post_json("/api/v1/mechs/alt/donations", &json!({"amount": "1.00"})).await;
    assert_eq!(status, 201);
    donate(&app, "last", "1.00").await;
    let (lines, _) = stream.lines_then_state(1, WAIT).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].1.contains("\"mech_id\":\"main\"") && lines[0].1.contains("\"last\""), "{lines:?}");
    let all = stored(&app).await;
    assert_eq!(lines[0], *all.last().unwrap());
}

/// Streams opened while 8 clients donate: their backlogs race the batches of the same commits.
/// Whatever the race, each `state` message is the state after the last line the stream sent
/// (what lets a client check itself against the server), and every line comes once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn every_state_message_is_the_state_after_the_last_line_sent() {
    let app = Arc::new(App::start());
    // Resuming beyond the end (what `<mechfund-progress>` does): `state` messages only.
    let mut states_only = app.stream("main", "?after_seq=9007199254740991", None).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    donate(&app, &format!("w{w}-{i}"), "0.25").await;
                }
            })
        })
        .collect();
    let mut followers = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let app = app.clone();
        followers.push(tokio::spawn(async move {
            let mut stream = app.stream("main", "", None).await;
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
    let all: Vec<u64> = stored(&app).await.iter().map(|(seq, _)| *seq).collect();
    let mut live = 0;
    for follower in followers {
        let (seqs, states) = tokio::time::timeout(WAIT, follower).await.expect("the follower finished").unwrap();
        assert_eq!(seqs, all, "every line once, in order");
        // More than the backlog's state: it followed commits too (one opened after the last
        // commit has the backlog's only).
        live += usize::from(states >= 2);
    }
    assert!(live >= 1, "no stream was open while the writes went on: the race was not exercised");
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_resume_points_and_unknown_mechs_are_refused() {
    let app = App::start();
    let cases: [(&str, Option<&str>, u16, &str); 5] = [
        ("/mechs/main/events/stream", Some("abc"), 422, "Last-Event-ID"),
        ("/mechs/main/events/stream", Some("-1"), 422, "Last-Event-ID"),
        ("/mechs/main/events/stream?after_seq=-1", None, 422, "after_seq"),
        ("/mechs/main/events/stream?after_seq=1.5", None, 422, "after_seq"),
        ("/mechs/nobody/events/stream", None, 404, "nobody"),
    ];
    for (path, id, want, needle) in cases {
        let mut request = Req::get(&format!("/api/v1{path}"));
        if let Some(id) = id {
            request = request.header("Last-Event-ID", id);
        }
        let reply = app.send(request.empty()).await;
        let body = reply.json();
        assert_eq!(reply.status, want, "{path} {id:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{path} {id:?}: {body}");
    }
    assert!(app.store_exists());
}
