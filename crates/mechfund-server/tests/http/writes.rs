//! Writes and what they leave: live state is the replay of the export, concurrent writes,
//! idempotency keys, mech ids and seqs at their bounds, and every bad input a 4xx.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::app::{App, TOKEN};
use crate::common::{Rng, assert_error, dollars, events};

#[tokio::test(flavor = "multi_thread")]
async fn live_state_equals_the_replay_of_the_export() {
    let app = App::start();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut deletable: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..200 {
        let mech = if rng.below(4) == 0 { "alt" } else { "main" };
        let base = format!("/api/v1/mechs/{mech}");
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
        let (status, response) = app.post_json(&path, &body).await;
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
        let jsonl = app.assert_live_equals_replay(mech).await;
        let lines = events(&jsonl);
        assert!(lines.iter().any(|e| e["type"] == "DonationDeleted"), "{mech}: deletions were exercised");
        // The JSON array endpoint pages through the same events.
        let first = app.get_json(&format!("/api/v1/mechs/{mech}/events?limit=5")).await;
        assert_eq!(first.as_array().unwrap().as_slice(), &lines[..5.min(lines.len())]);
        let after = lines[4]["seq"].as_u64().unwrap();
        let rest = app.get_json(&format!("/api/v1/mechs/{mech}/events?after_seq={after}&limit=10000")).await;
        assert_eq!(rest.as_array().unwrap().as_slice(), &lines[5..]);
        all_seqs.extend(lines.iter().map(|e| e["seq"].as_u64().unwrap()));
    }
    all_seqs.sort_unstable();
    let n = all_seqs.len() as u64;
    assert_eq!(all_seqs, (1..=n).collect::<Vec<_>>(), "seqs are global, gapless and unique");
    let mechs = app.get_json("/api/v1/mechs").await;
    assert_eq!(mechs, json!(["alt", "main"]));
    // After a restart the snapshots give the same states.
    let before = app.get_json("/api/v1/mechs/main/state").await;
    let app = app.restart().await;
    assert_eq!(app.get_json("/api/v1/mechs/main/state").await, before);
    assert!(!app.opening_log().contains("snapshot rebuilt"), "{}", app.opening_log());
}

/// What the test above relies on to see a snapshot rebuilt at a restart: the harness's log of
/// the opening says so when one was.
#[tokio::test]
async fn a_restart_over_a_garbled_snapshot_logs_its_rebuild() {
    let app = App::start();
    assert_eq!(app.post_json("/api/v1/mechs/main/donations", &json!({"amount": "12.00"})).await.0, 201);
    let before = app.get_json("/api/v1/mechs/main/state").await;
    let app = app.restart().await;
    assert!(!app.opening_log().contains("snapshot rebuilt"), "{}", app.opening_log());
    let app = app
        .restart_after(|data, database| {
            let garble = "UPDATE snapshots SET state = 'garbled' WHERE mech = 'main'";
            let changed = match database {
                Some(database) => database.execute(garble),
                None => {
                    rusqlite::Connection::open(data.join("mechfund.db")).unwrap().execute(garble, []).unwrap() as u64
                }
            };
            assert_eq!(changed, 1);
        })
        .await;
    assert!(app.opening_log().contains("snapshot rebuilt"), "{}", app.opening_log());
    assert_eq!(app.get_json("/api/v1/mechs/main/state").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_donations_level_up_exactly_once() {
    let app = Arc::new(App::start());
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let body = json!({"amount": "1.00", "donor": format!("t{t}-{i}")});
                    let (status, body) = app.post_json("/api/v1/mechs/main/donations", &body).await;
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let jsonl = app.assert_live_equals_replay("main").await;
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
    let state = app.get_json("/api/v1/mechs/main/state").await;
    assert_eq!(state["state"]["cumulative_donations_cents"], 32_000);
    assert_eq!(state["state"]["level"], 10);
    assert_eq!(state["state"]["evo_acc"], 32_000 - 27_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_right_4xx_and_never_5xx() {
    let app = App::start();
    let api = |path: &str| format!("/api/v1{path}");
    // A donation so that toggling seq 1 is a valid target.
    assert_eq!(app.post_json(&api("/mechs/main/donations"), &json!({"amount": "1"})).await.0, 201);
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
        let (status, text) = app.post_raw(&api(path), body.clone(), Some(TOKEN), None).await;
        assert_error(status, &text, *want, &format!("POST {path} {}", body.chars().take(80).collect::<String>()));
    }
    // Invalid UTF-8 is malformed, not a crash.
    let (status, text) =
        app.post_raw(&api("/mechs/main/donations"), b"{\"amount\":\"\xff\"}".to_vec(), Some(TOKEN), None).await;
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
        let reply = app.get(&api(path)).await;
        assert_error(reply.status.as_u16(), &reply.text(), want, &format!("GET {path}"));
    }
    // Nothing but the first donation was recorded, and "alt" never came into existence.
    let jsonl = app.get(&api("/mechs/main/events.jsonl")).await.text();
    assert_eq!(events(&jsonl).len(), 1, "{jsonl}");
    assert_eq!(app.get_json(&api("/mechs")).await, json!(["main"]));
    // And the good reads answer.
    let whatif = app.get_json(&api("/mechs/main/whatif?members=50")).await;
    assert_eq!(whatif["table"][0]["goal"], 1400);
    let rules = app.get_json(&api("/rules")).await;
    assert_eq!(rules["level_base_costs"][0], 1000);
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("cargo xtask dashboard"));
}

#[tokio::test]
async fn seqs_stay_within_what_javascript_holds_exactly() {
    let server = App::start();
    let line = |seq: u64| {
        format!(
            r#"{{"seq":{seq},"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{{"units":100}}}}"#
        )
    };
    let limit = (1u64 << 53) - 1;
    for seq in [limit + 1, i64::MAX.unsigned_abs()] {
        let body = format!("{}\n{}\n", line(1), line(seq));
        let (status, answer) = server.post("/api/v1/mechs/main/import", body, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let message = answer["error"]["message"].as_str().expect("a message");
        assert!(message.starts_with(&format!("line 2: seq {seq} is above {limit}")), "{message}");
    }
    assert_eq!(server.state_of("main").await["last_event_seq"], 0, "nothing of a refused import is stored");
    // The last seq there is: stored; after it the store takes no more events, and says so.
    let (status, answer) = server.post("/api/v1/mechs/main/import", format!("{}\n", line(limit)), None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = server.post("/api/v1/mechs/main/donations", r#"{"amount":"1"}"#, None).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{answer}");
    assert_eq!(answer["error"]["code"], "seqs_exhausted");
    let status = server.get("/api/v1/mechs/main/state").await.status;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn only_the_newest_idempotency_keys_are_kept() {
    let server = App::builder().idempotency_keys(3).start();
    let donate = |key: &'static str| server.post("/api/v1/mechs/main/donations", r#"{"amount":"1"}"#, Some(key));
    let mut seqs = Vec::new();
    for key in ["k1", "k2", "k3", "k4"] {
        let (status, body) = donate(key).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        seqs.push(body["events"][0]["seq"].clone());
    }
    // k2..k4 are the newest three: a retry answers the first response (same seq, nothing new).
    for (key, seq) in [("k2", &seqs[1]), ("k4", &seqs[3])] {
        let (status, body) = donate(key).await;
        assert_eq!((status, &body["events"][0]["seq"]), (StatusCode::CREATED, seq), "{key}");
    }
    // k1 was forgotten: the same request is a new donation.
    let (status, body) = donate("k1").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["events"][0]["seq"], 5);
    assert_eq!(server.state_of("main").await["cumulative_donations_cents"], 500);
}

#[tokio::test]
async fn mech_ids_are_plain_names() {
    let server = App::start();
    for mech in ["main", "guild-42", "a.b_c", &"m".repeat(64)] {
        let (status, body) = server.post(&format!("/api/v1/mechs/{mech}/donations"), r#"{"amount":"1"}"#, None).await;
        assert_eq!(status, StatusCode::CREATED, "{mech}: {body}");
    }
    for mech in ["..", ".", "a%2Fb", "a%00b", "%E2%80%AEevil", "a%20b", &"m".repeat(65), "caf%C3%A9"] {
        let (status, body) = server.post(&format!("/api/v1/mechs/{mech}/donations"), r#"{"amount":"1"}"#, None).await;
        assert!(status.is_client_error(), "{mech}: {status} {body}");
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert!(body["error"]["message"].as_str().unwrap_or("").contains("is not a mech id"), "{mech}: {body}");
        }
    }
    // An import names the line whose mech id is not one.
    let line = r#"{"seq":900,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"x/../y","payload":{"units":1}}"#;
    let (status, body) = server.post("/api/v1/mechs/main/import", format!("{line}\n"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap_or("").starts_with("line 1: mech \"x/../y\" is not a mech id"),
        "{body}"
    );
}
