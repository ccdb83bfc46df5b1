//! In-process tests of the router (`app()` driven with `oneshot`, a real SQLite file in a
//! temporary directory): the import endpoint and the streamed export. The real binary on
//! loopback is tested in `tests/serve.rs`.

use std::path::PathBuf;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use mechfund_core::{ReplayOptions, Rules, replay_bytes};
use serde_json::Value;
use tower::ServiceExt;

use super::api::{AppState, app};
use super::store::Readers;
use super::{Opened, open};

const TOKEN: &str = "test-token";

struct Server {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Server {
    fn new(import_limit: usize) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mechfund.db");
        let Opened { shared, writer, writer_thread: _ } = open(&db, Rules::default()).expect("open the store");
        let state = AppState {
            shared,
            writer,
            readers: std::sync::Arc::new(Readers::new(db)),
            token: TOKEN.into(),
            dist: dir.path().join("no-dist"),
            embed: dir.path().join("no-embed"),
            cors_origins: Vec::new(),
            private: false,
            rate_limiter: None,
            import_limit,
        };
        Server { state, _dir: dir }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = app(self.state.clone()).oneshot(request).await.expect("infallible router");
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, body.to_vec())
    }

    async fn get(&self, path: &str) -> (StatusCode, Vec<u8>) {
        self.send(Request::get(path).body(Body::empty()).expect("request")).await
    }

    async fn post(&self, path: &str, body: impl Into<Body>, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::post(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let (status, body) = self.send(request.body(body.into()).expect("request")).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn state_of(&self, mech: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/mechs/{mech}/state")).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<Value>(&body).expect("json")["state"].clone()
    }
}

fn sample() -> Vec<u8> {
    // The manifest dir cargo sets when it runs the test: the compile-time one may name another
    // checkout that shares the target dir.
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let path = manifest.join("../../tests/samples/ddc-small.jsonl");
    std::fs::read(path).expect("the bundled sample")
}

fn replayed(lines: &[u8], mech: &str) -> Value {
    let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
    let result = replay_bytes(lines, &Rules::default(), options).expect("lenient replay");
    serde_json::to_value(&result.state).expect("state json")
}

#[tokio::test]
async fn an_import_is_stored_byte_for_byte_and_writes_continue_after_it() {
    let server = Server::new(1 << 20);
    let log = sample();
    let (status, body) = server.post("/api/v1/mechs/main/import", log.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["imported"], 120);
    assert_eq!((body["first_seq"].as_u64(), body["last_seq"].as_u64()), (Some(1), Some(120)));
    assert_eq!(body["state"], replayed(&log, "main"));

    let (status, exported) = server.get("/api/v1/mechs/main/events.jsonl").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(exported, log, "the export is the imported file, byte for byte");
    assert_eq!(server.state_of("main").await, replayed(&log, "main"));

    // The next write follows the import: seq 121, stamped no earlier than its last line.
    let (status, body) = server.post("/api/v1/mechs/main/donations", r#"{"amount":"2.50","donor":"zed"}"#, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events"][0]["seq"], 121);
    let last_ts = "2025-05-2"; // every line of the sample is from May 2025; the server's clock is later
    assert!(body["events"][0]["ts"].as_str().is_some_and(|ts| ts > last_ts), "{body}");
    let (_, exported) = server.get("/api/v1/mechs/main/events.jsonl").await;
    assert_eq!(server.state_of("main").await, replayed(&exported, "main"));
}

#[tokio::test]
async fn a_second_import_into_a_mech_with_events_is_a_conflict_and_changes_nothing() {
    let server = Server::new(1 << 20);
    assert_eq!(server.post("/api/v1/mechs/main/import", sample(), None).await.0, StatusCode::CREATED);
    let before = server.get("/api/v1/mechs/main/events.jsonl").await.1;
    let (status, body) = server.post("/api/v1/mechs/main/import", sample(), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("already has events")), "{body}");
    assert_eq!(server.get("/api/v1/mechs/main/events.jsonl").await.1, before);
}

#[tokio::test]
async fn bad_imports_name_the_line_and_store_nothing() {
    let server = Server::new(4096);
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
        assert_eq!(server.get("/api/v1/mechs/alt/state").await.0, StatusCode::NOT_FOUND, "{body:?} left a mech");
    }
    // Invalid UTF-8 is a bad line too, not a crash.
    let (status, answer) = server.post("/api/v1/mechs/alt/import", vec![0xff, 0xfe, b'\n'], None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Without the token: 401, nothing stored.
    let request = Request::post("/api/v1/mechs/alt/import").body(Body::from(good)).expect("request");
    assert_eq!(server.send(request).await.0, StatusCode::UNAUTHORIZED);
    // After all that, the good line imports.
    let (status, answer) = server.post("/api/v1/mechs/alt/import", good, None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(server.state_of("alt").await["last_user_count_sample"], 20);
}

#[tokio::test]
async fn a_retried_import_returns_the_first_response() {
    let server = Server::new(1 << 20);
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
    let server = Server::new(8 << 20);
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
    let (status, exported) = server.get("/api/v1/mechs/big/events.jsonl").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(exported.len(), log.len());
    assert!(exported == log, "the streamed export differs from the imported lines");
    assert_eq!(server.state_of("big").await, replayed(&log, "big"));
}
