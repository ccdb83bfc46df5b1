//! `POST …/import` and the streamed export `GET …/events.jsonl`: a log imported is exported
//! byte for byte, bad imports name their line and store nothing.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::common::app::App;
use crate::common::replay_export;

pub fn sample() -> Vec<u8> {
    // The manifest dir cargo sets when it runs the test: the compile-time one may name another
    // checkout that shares the target dir.
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let path = manifest.join("../../tests/samples/ddc-small.jsonl");
    std::fs::read(path).expect("the bundled sample")
}

/// The state the core's replay of `lines` gives `mech`.
pub fn replayed(lines: &[u8], mech: &str) -> Value {
    serde_json::to_value(&replay_export(mech, lines).state).expect("state json")
}

#[tokio::test]
async fn an_import_is_stored_byte_for_byte_and_writes_continue_after_it() {
    let server = App::start();
    let log = sample();
    let (status, body) = server.post("/api/v1/mechs/main/import", log.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["imported"], 120);
    assert_eq!((body["first_seq"].as_u64(), body["last_seq"].as_u64()), (Some(1), Some(120)));
    assert_eq!(body["state"], replayed(&log, "main"));

    let exported = server.get("/api/v1/mechs/main/events.jsonl").await;
    assert_eq!(exported.status, StatusCode::OK);
    assert_eq!(exported.body, log, "the export is the imported file, byte for byte");
    assert_eq!(server.state_of("main").await, replayed(&log, "main"));

    // The next write follows the import: seq 121, stamped no earlier than its last line.
    let (status, body) = server.post("/api/v1/mechs/main/donations", r#"{"amount":"2.50","donor":"zed"}"#, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events"][0]["seq"], 121);
    let last_ts = "2025-05-2"; // every line of the sample is from May 2025; the server's clock is later
    assert!(body["events"][0]["ts"].as_str().is_some_and(|ts| ts > last_ts), "{body}");
    let exported = server.get("/api/v1/mechs/main/events.jsonl").await.body;
    assert_eq!(server.state_of("main").await, replayed(&exported, "main"));
}

#[tokio::test]
async fn a_second_import_into_a_mech_with_events_is_a_conflict_and_changes_nothing() {
    let server = App::start();
    assert_eq!(server.post("/api/v1/mechs/main/import", sample(), None).await.0, StatusCode::CREATED);
    let before = server.get("/api/v1/mechs/main/events.jsonl").await.body;
    let (status, body) = server.post("/api/v1/mechs/main/import", sample(), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("already has events")), "{body}");
    assert_eq!(server.get("/api/v1/mechs/main/events.jsonl").await.body, before);
}

#[tokio::test]
async fn bad_imports_name_the_line_and_store_nothing() {
    let server = App::builder().import_limit(4096).start();
    let good = r#"{"seq":1,"ts":"2025-05-23T13:30:50+00:00","type":"MemberCountUpdated","mech_id":"alt","payload":{"member_count":20}}"#;
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (format!("{good}\n{{\"seq\":2,\n"), StatusCode::UNPROCESSABLE_ENTITY, "line 2"),
        (format!("{good}\n{good}\n"), StatusCode::UNPROCESSABLE_ENTITY, "line 2: seq 1 is not above"),
        (good.replace("\"alt\"", "\"main\""), StatusCode::UNPROCESSABLE_ENTITY, "belongs to mech \"main\""),
        (good.replace("2025-05-23T13:30:50+00:00", "yesterday"), StatusCode::UNPROCESSABLE_ENTITY, "line 1"),
        (good.replace("\"seq\":1", "\"seq\":0"), StatusCode::UNPROCESSABLE_ENTITY, "line 1"),
        ("\n\n".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "no events"),
        ("\u{fffe}garbage".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "line 1"),
        (format!("{good}\n").repeat(100), StatusCode::PAYLOAD_TOO_LARGE, "larger than 4096 bytes"),
    ];
    for (body, status, needle) in cases {
        let (got, answer) = server.post("/api/v1/mechs/alt/import", body.clone(), None).await;
        assert_eq!(got, status, "{body:?} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body:?}: {message:?} should mention {needle:?}");
        assert_eq!(server.get("/api/v1/mechs/alt/state").await.status, StatusCode::NOT_FOUND, "{body:?} left a mech");
    }
    // Invalid UTF-8 is a bad line too, not a crash.
    let (status, answer) = server.post("/api/v1/mechs/alt/import", vec![0xff, 0xfe, b'\n'], None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Without the token: 401, nothing stored.
    let request = Request::post("/api/v1/mechs/alt/import").body(Body::from(good)).expect("request");
    assert_eq!(server.send(request).await.status, StatusCode::UNAUTHORIZED);
    // After all that, the good line imports.
    let (status, answer) = server.post("/api/v1/mechs/alt/import", good, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(server.state_of("alt").await["last_user_count_sample"], 20);
}

#[tokio::test]
async fn a_retried_import_returns_the_first_response() {
    let server = App::start();
    let first = server.post("/api/v1/mechs/main/import", sample(), Some("import-1")).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let retry = server.post("/api/v1/mechs/main/import", sample(), Some("import-1")).await;
    assert_eq!(retry, first);
    let other = server.post("/api/v1/mechs/main/import", &b"\n"[..], Some("import-1")).await;
    assert_eq!(other.0, StatusCode::CONFLICT, "{}", other.1);
    assert_eq!(other.1["error"]["code"], "idempotency_conflict");
}

#[tokio::test]
async fn a_large_export_streams_every_line_in_order() {
    let server = App::builder().import_limit(8 << 20).start();
    // ~1.3 MB: several export chunks.
    let mut log = Vec::new();
    for seq in 1..=12_000u32 {
        let line = format!(
            r#"{{"seq":{seq},"ts":"2025-06-01T00:00:00+00:00","type":"DonationAdded","mech_id":"big","payload":{{"units":{},"donor":"Discord:donor-{seq}"}}}}"#,
            seq % 7 + 1
        );
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
    }
    let (status, body) = server.post("/api/v1/mechs/big/import", log.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let exported = server.get("/api/v1/mechs/big/events.jsonl").await;
    assert_eq!(exported.status, StatusCode::OK);
    assert_eq!(exported.body.len(), log.len());
    assert!(exported.body == log, "the streamed export differs from the imported lines");
    assert_eq!(server.state_of("big").await, replayed(&log, "big"));
}
