//! `mechfund serve` as a real process on loopback: live state equals the replay of the export,
//! concurrency, idempotency, bad input, auth, crash recovery and snapshot rebuild.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use common::{
    Load, Log, Rng, Server, TOKEN, Write, assert_error, assert_live_equals_replay, client, dollars, events, get_json,
    get_text, post, post_raw,
};

#[tokio::test(flavor = "multi_thread")]
async fn live_state_equals_the_replay_of_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut deletable: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..200 {
        let mech = if rng.below(4) == 0 { "alt" } else { "main" };
        let base = format!("/mechs/{mech}");
        let (path, body) = match rng.below(10) {
            0..=3 => {
                let cents = 1 + rng.below(2500);
                let amount = if rng.below(2) == 0 {
                    json!(dollars(cents))
                } else {
                    serde_json::from_str(&dollars(cents)).unwrap()
                };
                let mut body = json!({"amount": amount, "donor": format!("donor {} ü", rng.below(7))});
                if rng.below(3) == 0 {
                    body["member_count"] = json!(rng.below(300));
                }
                if rng.below(4) == 0 {
                    body["channel_id"] = json!("123456");
                }
                (format!("{base}/donations"), body)
            }
            4 => (
                format!("{base}/system-donations"),
                json!({"amount": dollars(1 + rng.below(900)), "event_name": "Anniversary", "description": "thanks"}),
            ),
            5 => (format!("{base}/member-count"), json!({"member_count": rng.below(500)})),
            6 => {
                let members: Vec<Value> = (0..rng.below(30))
                    .map(|m| json!({"id": format!("u{}", m % 20), "bot": m % 7 == 0, "system": false}))
                    .collect();
                (
                    format!("{base}/member-count"),
                    json!({"channels": [{"id": "c1", "accessible": true, "members": members},
                                        {"id": "c2", "accessible": rng.below(2) == 0, "members": []}],
                           "guild_member_count": 42}),
                )
            }
            7 => (format!("{base}/power-gifts"), json!({"campaign_id": format!("camp-{}", rng.below(5))})),
            _ => {
                let seqs = deletable.get(mech).cloned().unwrap_or_default();
                let seq = if seqs.is_empty() || rng.below(8) == 0 {
                    1 + rng.below(400)
                } else {
                    seqs[usize::try_from(rng.below(seqs.len() as u64)).unwrap()]
                };
                (format!("{base}/donations/{seq}/toggle-deletion"), json!({"reason": format!("toggle {i}")}))
            }
        };
        let (status, response) = post(&c, &server.url(&path), &body).await;
        *statuses.entry(status).or_default() += 1;
        assert!([200, 201, 404, 409, 422].contains(&status), "{path} {body}: {status} {response}");
        if status == 201 {
            for event in response["events"].as_array().unwrap() {
                let kind = event["type"].as_str().unwrap();
                if ["DonationAdded", "SystemDonationAdded", "PowerGiftGranted"].contains(&kind) {
                    deletable.entry(mech).or_default().push(event["seq"].as_u64().unwrap());
                }
            }
            assert_eq!(response["state"]["mech_id"], mech);
        } else if status >= 400 {
            assert!(response["error"]["code"].is_string(), "{response}");
        }
    }
    assert!(statuses.get(&201).copied().unwrap_or(0) > 120, "mostly successful writes: {statuses:?}");
    let mut all_seqs = Vec::new();
    for mech in ["main", "alt"] {
        let jsonl = assert_live_equals_replay(&c, &server, mech).await;
        let lines = events(&jsonl);
        assert!(lines.iter().any(|e| e["type"] == "DonationDeleted"), "{mech}: deletions were exercised");
        // The JSON array endpoint pages through the same events.
        let first = get_json(&c, &server.url(&format!("/mechs/{mech}/events?limit=5"))).await;
        assert_eq!(first.as_array().unwrap().as_slice(), &lines[..5.min(lines.len())]);
        let after = lines[4]["seq"].as_u64().unwrap();
        let rest = get_json(&c, &server.url(&format!("/mechs/{mech}/events?after_seq={after}&limit=10000"))).await;
        assert_eq!(rest.as_array().unwrap().as_slice(), &lines[5..]);
        all_seqs.extend(lines.iter().map(|e| e["seq"].as_u64().unwrap()));
    }
    all_seqs.sort_unstable();
    let n = all_seqs.len() as u64;
    assert_eq!(all_seqs, (1..=n).collect::<Vec<_>>(), "seqs are global, gapless and unique");
    let mechs = get_json(&c, &server.url("/mechs")).await;
    assert_eq!(mechs, json!(["alt", "main"]));
    // After a restart the snapshots give the same states.
    let before = get_json(&c, &server.url("/mechs/main/state")).await;
    server.stop();
    let server = Server::start(dir.path());
    assert_eq!(get_json(&c, &server.url("/mechs/main/state")).await, before);
    assert!(!server.stderr_text().contains("snapshot rebuilt"), "{}", server.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_donations_level_up_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let url = server.url("/mechs/main/donations");
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    let (status, body) = post(&c, &url, &json!({"amount": "1.00", "donor": format!("t{t}-{i}")})).await;
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let jsonl = assert_live_equals_replay(&c, &server, "main").await;
    let lines = events(&jsonl);
    let donations = lines.iter().filter(|e| e["type"] == "DonationAdded").count();
    assert_eq!(donations, 320);
    let mut reached: Vec<u64> = lines
        .iter()
        .filter(|e| e["type"] == "LevelUpCommitted")
        .map(|e| e["payload"]["to_level"].as_u64().unwrap())
        .collect();
    reached.sort_unstable();
    // $320 in $1 steps with the default goals ($10, $15, … $50): levels 2..=10, each once.
    assert_eq!(reached, (2..=10).collect::<Vec<_>>());
    let state = get_json(&c, &server.url("/mechs/main/state")).await;
    assert_eq!(state["state"]["cumulative_donations_cents"], 32_000);
    assert_eq!(state["state"]["level"], 10);
    assert_eq!(state["state"]["evo_acc"], 32_000 - 27_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retries_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_right_4xx_and_never_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    // A donation so that toggling seq 1 is a valid target.
    assert_eq!(post(&c, &server.url("/mechs/main/donations"), &json!({"amount": "1"})).await.0, 201);
    let huge = format!(r#"{{"amount":"1","donor":"{}"}}"#, "x".repeat(70_000));
    let cases: Vec<(&str, String, u16)> = vec![
        // donations
        ("/mechs/main/donations", r#"{"amount":"5.00""#.into(), 400),
        ("/mechs/main/donations", "".into(), 400),
        ("/mechs/main/donations", "not json".into(), 400),
        ("/mechs/main/donations", "[1,2]".into(), 422),
        ("/mechs/main/donations", r#"{"amount":"-5"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":-5}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"5.555"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":5.555}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1e3"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":1e3}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"0"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"10000.01"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":99999999999999999999999}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"abc"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"５"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":true}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":null}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":{"v":1}}"#.into(), 422),
        ("/mechs/main/donations", r#"{"donor":"x"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","donor":"a\u0007b"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","donor":""}"#.into(), 422),
        ("/mechs/main/donations", format!(r#"{{"amount":"1","donor":"{}"}}"#, "é".repeat(101)), 422),
        ("/mechs/main/donations", r#"{"amount":"1","donor":5}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","member_count":-1}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","member_count":"5"}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","member_count":1.5}"#.into(), 422),
        ("/mechs/main/donations", r#"{"amount":"1","colour":"red"}"#.into(), 422),
        ("/mechs/main/donations", huge.clone(), 413),
        // system donations
        ("/mechs/main/system-donations", r#"{"amount":"1"}"#.into(), 422),
        ("/mechs/main/system-donations", r#"{"amount":"1000.01","event_name":"x"}"#.into(), 422),
        ("/mechs/main/system-donations", r#"{"amount":"1","event_name":"line\nbreak"}"#.into(), 422),
        ("/mechs/main/system-donations", r#"{"amount":"1","event_name":"x","extra":1}"#.into(), 422),
        ("/mechs/main/system-donations", "{".into(), 400),
        ("/mechs/main/system-donations", huge.clone(), 413),
        // member counts
        ("/mechs/main/member-count", r#"{"member_count":-3}"#.into(), 422),
        ("/mechs/main/member-count", r#"{"member_count":"3"}"#.into(), 422),
        ("/mechs/main/member-count", r#"{}"#.into(), 422),
        ("/mechs/main/member-count", r#"{"member_count":3,"channels":[]}"#.into(), 422),
        ("/mechs/main/member-count", r#"{"channels":[{"id":"c","members":[{"id":"u","robot":true}]}]}"#.into(), 422),
        ("/mechs/main/member-count", r#"{"channels":[],"guild_member_count":-1}"#.into(), 422),
        ("/mechs/main/member-count", r#"{"member_count":1e2}"#.into(), 422),
        ("/mechs/main/member-count", "nul".into(), 400),
        ("/mechs/main/member-count", huge.clone(), 413),
        // power gifts
        ("/mechs/main/power-gifts", r#"{"campaign_id":"spring"}"#.into(), 409),
        ("/mechs/main/power-gifts", r#"{"campaign_id":""}"#.into(), 422),
        ("/mechs/main/power-gifts", r#"{"campaign_id":7}"#.into(), 422),
        ("/mechs/main/power-gifts", r#"{"campaign":"x"}"#.into(), 422),
        ("/mechs/main/power-gifts", "{]".into(), 400),
        ("/mechs/main/power-gifts", huge.clone(), 413),
        // deletion toggles
        ("/mechs/main/donations/999/toggle-deletion", r#"{"reason":"x"}"#.into(), 404),
        ("/mechs/main/donations/abc/toggle-deletion", r#"{"reason":"x"}"#.into(), 404),
        ("/mechs/main/donations/-1/toggle-deletion", r#"{"reason":"x"}"#.into(), 404),
        ("/mechs/main/donations/1/toggle-deletion", r#"{"reason":""}"#.into(), 422),
        ("/mechs/main/donations/1/toggle-deletion", r#"{"reason":"\u0000"}"#.into(), 422),
        ("/mechs/main/donations/1/toggle-deletion", r#"{}"#.into(), 422),
        ("/mechs/main/donations/1/toggle-deletion", r#"{"reason":"x","why":"y"}"#.into(), 422),
        ("/mechs/main/donations/1/toggle-deletion", "reason=x".into(), 400),
        ("/mechs/main/donations/1/toggle-deletion", huge, 413),
    ];
    for (path, body, want) in &cases {
        let (status, text) = post_raw(&c, &server.url(path), body.clone().into_bytes(), Some(TOKEN), None).await;
        assert_error(status, &text, *want, &format!("POST {path} {}", body.chars().take(80).collect::<String>()));
    }
    // Invalid UTF-8 is malformed, not a crash.
    let (status, text) =
        post_raw(&c, &server.url("/mechs/main/donations"), b"{\"amount\":\"\xff\"}".to_vec(), Some(TOKEN), None).await;
    assert_error(status, &text, 400, "invalid UTF-8");
    // Reads: unknown mech, bad query values, unknown route.
    for (path, want) in [
        ("/mechs/nope/state", 404),
        ("/mechs/nope/events", 404),
        ("/mechs/nope/events.jsonl", 404),
        ("/mechs/main/state?now=yesterday", 422),
        ("/mechs/main/events?limit=-1", 422),
        ("/mechs/main/events?after_seq=x", 422),
        ("/mechs/main/whatif", 422),
        ("/mechs/main/whatif?members=lots", 422),
        ("/nothing/here", 404),
    ] {
        let (status, text) = get_text(&c, &server.url(path)).await;
        assert_error(status, &text, want, &format!("GET {path}"));
    }
    // Nothing but the first donation was recorded, and "alt" never came into existence.
    let (_, jsonl) = get_text(&c, &server.url("/mechs/main/events.jsonl")).await;
    assert_eq!(events(&jsonl).len(), 1, "{jsonl}");
    assert_eq!(get_json(&c, &server.url("/mechs")).await, json!(["main"]));
    // And the good reads answer.
    let whatif = get_json(&c, &server.url("/mechs/main/whatif?members=50")).await;
    assert_eq!(whatif["table"][0]["goal"], 1400);
    let rules = get_json(&c, &server.url("/rules")).await;
    assert_eq!(rules["level_base_costs"][0], 1000);
    assert_eq!(get_json(&c, &format!("{}/healthz", server.base)).await["status"], "ok");
    let (status, page) = get_text(&c, &format!("{}/", server.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("cargo xtask dashboard"));
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
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
    let url = server.url("/mechs/main/donations");
    let body = br#"{"amount":"1"}"#.to_vec();
    for (what, auth) in [
        ("missing", None),
        ("wrong", Some(format!("Bearer {}", "0".repeat(64)))),
        ("prefix", Some(format!("Bearer {}", &token[..63]))),
        ("basic", Some(format!("Basic {token}"))),
        ("empty", Some("Bearer ".to_owned())),
    ] {
        let mut request = c.post(&url).body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_error(status, &response.text().await.unwrap(), 401, what);
    }
    let (status, text) = post_raw(&c, &url, body, Some(&token), None).await;
    assert_eq!(status, 201, "{text}");
    // Reads are public.
    assert_eq!(get_text(&c, &server.url("/mechs/main/state")).await.0, 200);
    // A restart reuses the file and prints nothing about it.
    server.stop();
    let server = Server::start_args(dir.path(), None, &[]);
    assert!(!server.stderr_text().contains("admin-token"));
    let (status, _) =
        post_raw(&c, &server.url("/mechs/main/donations"), br#"{"amount":"1"}"#.to_vec(), Some(&token), None).await;
    assert_eq!(status, 201);
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
    let dir = tempfile::tempdir().unwrap();
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
                let db = rusqlite::Connection::open(dir.path().join("mechfund.db")).unwrap();
                db.execute("UPDATE snapshots SET state = 'garbled' WHERE mech = 'main'", []).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
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
    let db = rusqlite::Connection::open(dir.path().join("mechfund.db")).unwrap();
    let changed = db.execute("UPDATE snapshots SET state = '{\"level\": \"garbled' WHERE mech = 'main'", []).unwrap();
    assert_eq!(changed, 1);
    db.execute("UPDATE snapshots SET last_seq = 1 WHERE mech = 'alt'", []).unwrap();
    drop(db);
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
    drop(server);
    assert!(dir.path().join("mechfund.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_headers_only_for_listed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_args(
        dir.path(),
        Some(TOKEN),
        &["--cors-origin", "https://a.example", "--cors-origin", "https://b.example"],
    );
    let c = client();
    let url = server.url("/mechs/main/state");
    for origin in ["https://a.example", "https://b.example"] {
        let response = c.get(&url).header("origin", origin).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["access-control-allow-origin"], origin);
    }
    let response = c.get(&url).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("access-control-allow-origin").is_none());
    // Preflight.
    let response = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://a.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "https://a.example");
    let methods = response.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("GET"), "{methods}");
    let response = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
    // Without --cors-origin: no CORS headers at all.
    drop(server);
    let server = Server::start(&dir.path().join("plain"));
    let response = c.get(server.url("/mechs/main/state")).header("origin", "https://a.example").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn any_origin_with_a_star() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_args(dir.path(), Some(TOKEN), &["--cors-origin", "*"]);
    let response =
        client().get(server.url("/mechs/main/state")).header("origin", "https://x.example").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

/// Bad options are refused before anything starts: exit 2 with what to fix, never a panic or a
/// "listening" line.
#[test]
fn unusable_options_exit_2_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let cases: [(&[&str], Option<&str>, &str); 8] = [
        (&["--cors-origin", "*", "--cors-origin", "https://a.example"], None, "cannot be combined"),
        (&["--cors-origin", "a.example"], None, "no scheme"),
        (&["--cors-origin", "https://a.example/path"], None, "no path"),
        (&["--cors-origin", "ftp://a.example"], None, "http or https"),
        (&["--cors-origin", "https://a.example:99999"], None, "port"),
        (&["--cors-origin", "https://a b.example"], None, "host"),
        (&[], Some("x"), "at least 16"),
        (&["--ddc", "/nonexistent/ddc"], None, "not a directory"),
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

#[tokio::test(flavor = "multi_thread")]
async fn private_reads_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_args(dir.path(), Some(TOKEN), &["--private"]);
    let c = client();
    for path in ["/mechs", "/mechs/main/state", "/mechs/main/events", "/mechs/main/events.jsonl", "/rules"] {
        let (status, text) = get_text(&c, &server.url(path)).await;
        assert_error(status, &text, 401, path);
        let response = c.get(server.url(path)).header("authorization", "Bearer wrong").send().await.unwrap();
        let status = response.status().as_u16();
        assert_error(status, &response.text().await.unwrap(), 401, path);
        let response = c.get(server.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let (status, _) = get_text(&c, &format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
    assert_eq!(get_text(&c, &server.url("/healthz")).await.0, 200);
    let (status, page) = get_text(&c, &format!("{}/", server.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("cargo xtask dashboard"));
    // Writes still need it as before.
    let (status, _) = post(&c, &server.url("/mechs/main/donations"), &json!({"amount": "1"})).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn embed_serves_the_js_package() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("mechfund_wasm.js"), "export default 42;\n").unwrap();
    let server = Server::start_args(&dir.path().join("data"), Some(TOKEN), &["--embed", pkg.to_str().unwrap()]);
    let c = client();
    let response = c.get(format!("{}/embed/mechfund_wasm.js", server.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.contains("javascript"), "{kind}");
    assert_eq!(response.text().await.unwrap(), "export default 42;\n");
    assert_eq!(get_text(&c, &format!("{}/embed/missing.js", server.base)).await.0, 404);
    drop(server);
    // Missing package: a page saying how to build it, and JSON 404s below it.
    let server = Server::start_args(
        &dir.path().join("data2"),
        Some(TOKEN),
        &["--embed", dir.path().join("nope").to_str().unwrap()],
    );
    let (status, page) = get_text(&c, &format!("{}/embed/", server.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("cargo xtask wasm"), "{page}");
    let (status, text) = get_text(&c, &format!("{}/embed/mechfund_wasm.js", server.base)).await;
    assert_error(status, &text, 404, "missing embed file");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_args(dir.path(), Some(TOKEN), &["--rate-limit", "2"]);
    let c = client();
    let url = server.url("/mechs/main/donations");
    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..20 {
        let response = c
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json!({"amount": "1.00", "donor": format!("d{i}")}).to_string())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => accepted += 1,
            429 => {
                limited += 1;
                let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                let text = response.text().await.unwrap();
                assert_error(429, &text, 429, "rate limited");
                assert!(text.contains("\"rate_limited\""), "{text}");
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(accepted >= 1 && limited >= 10, "accepted {accepted}, limited {limited}");
    // Nothing is recorded for the refused writes.
    let state = get_json(&c, &server.url("/mechs/main/state")).await;
    assert_eq!(state["state"]["cumulative_donations_cents"], json!(accepted * 100), "{state}");
    let events = events(&get_text(&c, &server.url("/mechs/main/events.jsonl")).await.1);
    assert_eq!(events.len(), accepted as usize);
    // Once the bucket has refilled (2 per second), writes are accepted again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = post(&c, &url, &json!({"amount": "1"})).await;
    assert_eq!(status, 201, "{body}");
    drop(server);
    // 0 disables the limit.
    let server = Server::start_args(&dir.path().join("off"), Some(TOKEN), &["--rate-limit", "0"]);
    for _ in 0..30 {
        let (status, body) =
            post(&c, &server.url("/mechs/main/donations"), &json!({"amount": "1", "donor": "same"})).await;
        assert_eq!(status, 201, "{body}");
    }
}
