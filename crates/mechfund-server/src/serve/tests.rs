//! In-process tests of the router (`app()` driven with `oneshot`, a real SQLite file in a
//! temporary directory): the import endpoint, the streamed export and the SVG card. The real
//! binary on loopback is tested in `tests/serve.rs`.

use std::path::PathBuf;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use mechfund_core::{ReplayOptions, Rules, replay_bytes};
use serde_json::Value;
use tower::ServiceExt;

use super::state::AppState;
use super::{Opened, Store, app, open};

const TOKEN: &str = "test-token";

struct Server {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Server {
    fn new(import_limit: usize) -> Server {
        Server::with_keys(import_limit, 100_000)
    }

    fn with_keys(import_limit: usize, idempotency_keys: u64) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("mechfund.db");
        let Opened { shared, writer, readers, .. } =
            open(&Store::Sqlite(db), Rules::default(), idempotency_keys).expect("open the store");
        let state = AppState {
            shared,
            writer,
            readers,
            token: TOKEN.into(),
            dist: Some(dir.path().join("no-dist")),
            embed: Some(dir.path().join("no-embed")),
            cors_origins: Vec::new(),
            private: false,
            rate_limiter: None,
            import_limit,
            read_only: None,
            exports: std::sync::Arc::default(),
        };
        Server { state, _dir: dir }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let (status, _, body) = self.send_full(request).await;
        (status, body)
    }

    async fn send_full(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = app(self.state.clone()).oneshot(request).await.expect("infallible router");
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, parts.headers, body.to_vec())
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

#[tokio::test]
async fn a_read_only_server_refuses_every_write_with_403_and_still_reads() {
    let mut server = Server::new(1 << 20);
    server.state.read_only = Some("DDC owns this log".into());
    let writes = [
        ("/api/v1/mechs/main/donations", r#"{"amount":"5","donor":"a"}"#),
        ("/api/v1/mechs/main/system-donations", r#"{"amount":"5","event_name":"x"}"#),
        ("/api/v1/mechs/main/member-count", r#"{"member_count":5}"#),
        ("/api/v1/mechs/main/power-gifts", r#"{"campaign_id":"c"}"#),
        ("/api/v1/mechs/main/donations/1/toggle-deletion", r#"{"reason":"r"}"#),
        ("/api/v1/mechs/main/import", "{}"),
    ];
    for (path, body) in writes {
        // With the token and without: the refusal comes first.
        let (status, answer) = server.post(path, body, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "read_only", "{path}");
        assert_eq!(answer["error"]["message"], "DDC owns this log", "{path}");
        let request = Request::post(path).body(Body::from(body)).expect("request");
        assert_eq!(server.send(request).await.0, StatusCode::FORBIDDEN, "{path} without a token");
    }
    assert_eq!(server.get("/api/v1/mechs/main/state").await.0, StatusCode::OK);
    assert_eq!(server.get("/api/v1/mechs/main/events.jsonl").await.0, StatusCode::OK);
}

#[tokio::test]
async fn any_spelling_of_the_bearer_scheme_authenticates_and_shares_one_bucket() {
    let mut server = Server::new(1 << 20);
    // 1 write a second, a burst of 2: the third write within a second is refused.
    server.state.rate_limiter = super::ratelimit::RateLimiter::new(1).map(std::sync::Arc::new);
    let spellings = [
        format!("Bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("bearer   {TOKEN}  "),
        format!("Bearer\t{TOKEN}"),
    ];
    let mut statuses = Vec::new();
    for auth in &spellings {
        let request = Request::post("/api/v1/mechs/main/donations")
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"amount":"1"}"#))
            .expect("request");
        statuses.push(server.send(request).await.0);
    }
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS],
        "each spelling authenticates; all draw on the admin's one bucket"
    );
}

#[tokio::test]
async fn a_private_servers_401_on_reads_speaks_of_reads() {
    let mut server = Server::new(1 << 20);
    server.state.private = true;
    let (status, body) = server.get("/api/v1/mechs/main/state").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&body).expect("json");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.starts_with("reads of this server need"), "{message}");
    let request = Request::post("/api/v1/mechs/main/donations").body(Body::from("{}")).expect("request");
    let (status, body) = server.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("writes need"));
}

#[tokio::test]
async fn seqs_stay_within_what_javascript_holds_exactly() {
    let server = Server::new(1 << 20);
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
    let (status, _) = server.get("/api/v1/mechs/main/state").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_data_dir_that_held_a_store_does_not_start_over() {
    use crate::store::check_not_emptied;
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "a new directory is a new store");
    std::fs::write(dir.path().join("mechfund.db"), b"").expect("write");
    assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "an empty database alone is a new store");
    let error = check_not_emptied(dir.path(), true).expect_err("the lock file was there");
    assert!(error.contains("is empty (0 bytes)") && error.contains("lock"), "{error}");
    std::fs::write(dir.path().join("admin-token"), "t").expect("write");
    let error = check_not_emptied(dir.path(), false).expect_err("the token is there");
    assert!(error.contains("admin-token"), "{error}");
    std::fs::remove_file(dir.path().join("mechfund.db")).expect("remove");
    assert_eq!(check_not_emptied(dir.path(), false), Ok(()), "a token put there for a first start");
    assert!(check_not_emptied(dir.path(), true).expect_err("missing").contains("is missing"));
    std::fs::write(dir.path().join("mechfund.db"), b"SQLite format 3\0").expect("write");
    assert_eq!(check_not_emptied(dir.path(), true), Ok(()));
}

#[tokio::test]
async fn only_the_newest_idempotency_keys_are_kept() {
    let server = Server::with_keys(1 << 20, 3);
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
    let server = Server::new(1 << 20);
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

#[test]
fn cors_origins_are_what_browsers_send() {
    let ok = |values: &[&str]| {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        super::cors_origins(&values)
            .map(|list| list.iter().map(|v| v.to_str().unwrap_or("").to_owned()).collect::<Vec<_>>())
    };
    assert_eq!(ok(&["https://Bot.Example.org/"]), Ok(vec!["https://bot.example.org".to_owned()]));
    assert_eq!(ok(&["http://localhost:9374", "http://[::1]:8080"]).map(|l| l.len()), Ok(2));
    assert_eq!(ok(&["*"]), Ok(vec!["*".to_owned()]));
    for bad in [
        "localhost:9374",
        "https://",
        "https://a.example/x",
        "https://a.example?x",
        "https://u@a.example",
        "https://a.example:0",
    ] {
        assert!(ok(&[bad]).is_err(), "{bad}");
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

/// A small log, worked by hand with the default rules (spec §2.4-2.5):
/// - seq 1: 20 members at level 1 before any donation re-price the level-1 goal:
///   1000 + (20 - 10) * 10 = 1100;
/// - seq 2: $15.00 reaches it: level 2, carry 400 (evolution and power), goal 1500 + 100 = 1600;
/// - seq 3, a day later: decay takes 100 (power 300), then $2.34: evolution 634, power 534,
///   total 1734.
///
/// At the last event: power 534 of 1700 (31 %), evolution 634 of 1600 (39 %), 20 members: bin 1,
/// "Tiny Community". At 2025-01-03T12:00:00Z, 1.5 days later: power 534 - 150 = 384 (22 %).
const CARD_LOG: &str = concat!(
    r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"MemberCountUpdated","mech_id":"card","payload":{"member_count":20}}"#,
    "\n",
    r#"{"seq":2,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"card","payload":{"units":1500,"donor":"ann"}}"#,
    "\n",
    r#"{"seq":3,"ts":"2025-01-02T00:00:00+00:00","type":"DonationAdded","mech_id":"card","payload":{"units":234,"donor":"bob"}}"#,
    "\n",
);

/// One donation of $380.09 from level 1 at 0 members: the ten goals are the base costs, 37,000 in
/// all, so the mech reaches level 11 with $10.09 carried (evolution and power). (Seqs are global:
/// it follows [`CARD_LOG`].)
const MAX_LOG: &str = concat!(
    r#"{"seq":4,"ts":"2025-02-01T00:00:00+00:00","type":"DonationAdded","mech_id":"top","payload":{"units":38009}}"#,
    "\n",
);

impl Server {
    async fn card(&self, query: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::get(format!("/api/v1/mechs/card/card.svg{query}"));
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let (status, headers, body) = self.send_full(request.body(Body::empty()).expect("request")).await;
        (status, headers, String::from_utf8(body).expect("UTF-8"))
    }
}

async fn card_server() -> Server {
    let server = Server::new(1 << 20);
    for (mech, log) in [("card", CARD_LOG), ("top", MAX_LOG)] {
        let (status, body) = server.post(&format!("/api/v1/mechs/{mech}/import"), log, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server
}

#[tokio::test]
async fn the_card_draws_the_numbers_of_the_state() {
    let server = card_server().await;
    for (now, power, power_text) in
        [("", 534, "$5.34 / $17.00 · 31%"), ("?now=2025-01-03T12:00:00Z", 384, "$3.84 / $17.00 · 22%")]
    {
        // The state answers the hand-worked numbers...
        let (status, body) = server.get(&format!("/api/v1/mechs/card/state{now}")).await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_slice(&body).expect("json");
        let (state, display) = (&answer["state"], &answer["display"]);
        assert_eq!((state["level"].as_u64(), state["evo_acc"].as_i64()), (Some(2), Some(634)), "{answer}");
        assert_eq!(
            (state["goal_requirement"].as_i64(), state["cumulative_donations_cents"].as_i64()),
            (Some(1600), Some(1734))
        );
        assert_eq!(
            (display["power_now"].as_i64(), display["power_max"].as_i64()),
            (Some(power), Some(1700)),
            "{answer}"
        );
        assert_eq!(display["evo_percent"], 39);
        assert_eq!(display["tier"], "Tiny Community");

        // ...and the card draws them.
        let (status, headers, svg) = server.card(now, None).await;
        assert_eq!(status, StatusCode::OK, "{svg}");
        assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml; charset=utf-8");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        for text in [">mech card</text>", ">Level 2</text>", ">Tiny Community</text>", ">$17.34</text>"] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        assert!(svg.contains(">$6.34 / $16.00 · 39%</text>"), "{svg}");
        assert!(svg.contains(&format!(">{power_text}</text>")), "{power_text} in {svg}");
        assert!(svg.contains(r#"<title id="mechfund-card-title">mech card: level 2</title>"#), "{svg}");
    }
}

#[tokio::test]
async fn the_card_of_a_mech_at_level_11_says_max_level() {
    let server = card_server().await;
    let (status, body) = server.get("/api/v1/mechs/top/state").await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["state"]["level"], 11, "{answer}");
    assert_eq!(
        (answer["state"]["evo_acc"].as_i64(), answer["state"]["goal_requirement"].as_i64()),
        (Some(1009), Some(0))
    );
    let request = Request::get("/api/v1/mechs/top/card.svg").body(Body::empty()).expect("request");
    let (status, _, svg) = server.send_full(request).await;
    let svg = String::from_utf8(svg).expect("UTF-8");
    assert_eq!(status, StatusCode::OK);
    assert!(svg.contains(">Level 11</text>") && svg.contains(">Max level</text>"), "{svg}");
    assert!(svg.contains(">$10.09 / $1.00 · 100%</text>") && svg.contains(">$380.09</text>"), "{svg}");
    assert!(!svg.contains("$0.00"), "{svg}");
}

#[tokio::test]
async fn the_card_is_cached_by_its_etag_and_locked_down() {
    let server = card_server().await;
    let (status, headers, svg) = server.card("", None).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers[header::ETAG].to_str().expect("ASCII").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "a strong ETag: {etag}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "default-src 'none'; style-src 'unsafe-inline'");
    // The same card again: the same ETag and bytes.
    let (_, again, same) = server.card("", None).await;
    assert_eq!((again[header::ETAG].to_str().ok(), same.as_str()), (Some(etag.as_str()), svg.as_str()));

    for tag in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let (status, headers, body) = server.card("", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: {tag}");
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag.as_str());
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    }
    let (status, _, body) = server.card("", Some("\"other\"")).await;
    assert_eq!((status, body), (StatusCode::OK, svg.clone()));

    // Another moment, another theme, a new event: another card, another ETag.
    let mut tags = std::collections::BTreeSet::from([etag.clone()]);
    for query in ["?now=2025-01-03T12:00:00Z", "?theme=dark"] {
        let (status, headers, body) = server.card(query, Some(&etag)).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_ne!(body, svg, "{query}");
        assert!(tags.insert(headers[header::ETAG].to_str().expect("ASCII").to_owned()), "{query}");
    }
    let (status, body) = server.post("/api/v1/mechs/card/donations", r#"{"amount":"1.00"}"#, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, headers, _) = server.card("", Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tags.insert(headers[header::ETAG].to_str().expect("ASCII").to_owned()));
}

#[tokio::test]
async fn the_card_refuses_what_the_state_refuses_and_unknown_themes() {
    let server = card_server().await;
    let (status, headers, body) = server.card("?theme=dark", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml; charset=utf-8");
    assert!(body.contains("fill=\"#0d1117\""), "the dark background: {body}");
    assert_eq!(server.card("?theme=light", None).await.2, server.card("", None).await.2, "light is the default");

    for (path, status, needle) in [
        ("/api/v1/mechs/card/card.svg?theme=blue", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?theme=", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?theme=DARK", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?now=yesterday", StatusCode::UNPROCESSABLE_ENTITY, "now"),
        ("/api/v1/mechs/nobody/card.svg", StatusCode::NOT_FOUND, "nobody"),
    ] {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}");
        let error: Value = serde_json::from_slice(&body).expect("a JSON error");
        let code = if status == StatusCode::NOT_FOUND { "not_found" } else { "invalid_value" };
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message:?} names {needle:?}");
    }
    // /state agrees on what is wrong with `now` and which mechs exist.
    assert_eq!(server.get("/api/v1/mechs/card/state?now=yesterday").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/api/v1/mechs/nobody/state").await.0, StatusCode::NOT_FOUND);
}

/// A dist dir as `mechfund serve --dist` gets one: an index, a file, a directory with an index
/// and one without.
fn dist_dir(root: &std::path::Path) -> PathBuf {
    let dist = root.join("dist");
    for dir in ["sub", "empty"] {
        std::fs::create_dir_all(dist.join(dir)).expect("mkdir");
    }
    std::fs::write(dist.join("index.html"), "<!doctype html><title>dashboard</title>").expect("write");
    std::fs::write(dist.join("app.js"), "export {};").expect("write");
    std::fs::write(dist.join("sub/index.html"), "<!doctype html><title>sub</title>").expect("write");
    dist
}

#[tokio::test]
async fn no_request_path_gets_a_5xx_from_the_dashboard_or_the_js_package() {
    let mut server = Server::new(1 << 20);
    let dist = dist_dir(server._dir.path());
    server.state.dist = Some(dist.clone());
    server.state.embed = Some(dist);
    let long = "a".repeat(300);
    let deep = "/a".repeat(3000);
    let mut odd: Vec<(String, &str)> = Vec::new();
    for prefix in ["", "/embed"] {
        for (path, class) in [
            (format!("/{long}"), "a segment over 255 bytes (ENAMETOOLONG)"),
            (format!("/{long}/x"), "a long directory name"),
            (deep.clone(), "a path over 4096 bytes (ENAMETOOLONG)"),
            ("/x%00y".to_owned(), "a NUL"),
            ("/%00".to_owned(), "only a NUL"),
            ("/app.js%00.html".to_owned(), "a NUL after a real name"),
            ("/%ff%fe".to_owned(), "invalid UTF-8"),
            ("/%c0%af".to_owned(), "an overlong UTF-8 slash"),
            ("/../etc/passwd".to_owned(), "dot-dot"),
            ("/%2e%2e/%2e%2e/etc/passwd".to_owned(), "encoded dot-dot"),
            ("/..%2fetc%2fpasswd".to_owned(), "dot-dot with an encoded slash"),
            ("/%5c..%5c".to_owned(), "backslashes"),
            ("/app.js/".to_owned(), "a file with a trailing slash"),
            ("/app.js/x".to_owned(), "a file as a directory (ENOTDIR)"),
            ("/empty/".to_owned(), "a directory without an index"),
            ("/empty".to_owned(), "a directory without its slash"),
            ("/%e2%80%ae".to_owned(), "a bidi override"),
            ("//x".to_owned(), "an empty segment"),
        ] {
            odd.push((format!("{prefix}{path}"), class));
        }
    }
    for (path, class) in &odd {
        let (status, headers, body) =
            server.send_full(Request::get(path.as_str()).body(Body::empty()).expect("request")).await;
        assert!(!status.is_server_error(), "{class}: {} -> {status}", &path[..path.len().min(80)]);
        if status == StatusCode::NOT_FOUND && !body.is_empty() {
            let body: Value = serde_json::from_slice(&body).expect("a JSON error");
            assert_eq!(body["error"]["code"], "not_found", "{class}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        }
    }
    // A directory asked for in authority form (`GET host:80`) or absolute form: no 5xx either,
    // and a redirect goes to the path alone.
    for target in ["127.0.0.1:80", "http://h.example/sub", "http://h.example/empty"] {
        let request = Request::get(target).body(Body::empty()).expect("request");
        let (status, headers, _) = server.send_full(request).await;
        assert!(!status.is_server_error(), "{target} -> {status}");
        if status.is_redirection() {
            assert!(headers[header::LOCATION].to_str().is_ok_and(|l| l.starts_with('/')), "{target}: {headers:?}");
        }
    }
    // The files themselves are still served.
    for (path, want) in [("/", "dashboard"), ("/app.js", "export"), ("/sub/", "sub"), ("/embed/app.js", "export")] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(String::from_utf8_lossy(&body).contains(want), "{path}");
    }
}

/// Random and mutated requests against `app()`, in process (issue 13): whatever arrives, no
/// answer is a 5xx and nothing panics, and afterwards every mech's state is the replay of its
/// export.
mod hostile_requests {
    use proptest::prelude::*;

    use super::*;

    /// One request: method, path, headers, body.
    #[derive(Debug, Clone)]
    struct Hostile {
        method: &'static str,
        path: String,
        auth: Option<String>,
        key: Option<String>,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    }

    fn mech() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("main".to_owned()),
            Just("guild-2".to_owned()),
            Just("..".to_owned()),
            Just("%2e%2e".to_owned()),
            Just("a%2Fb".to_owned()),
            Just("%00".to_owned()),
            Just("%E2%80%AE".to_owned()),
            Just("%ff%fe".to_owned()),
            "[a-z]{1,3}",
            "[ -~]{0,80}".prop_map(|s| s.replace(['/', '?', '#', ' ', '%'], "_")),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        let seq = prop_oneof![
            Just("1".to_owned()),
            Just("0".to_owned()),
            Just("-1".to_owned()),
            Just("9007199254740993".to_owned()),
            Just("99999999999999999999999".to_owned()),
            "[0-9]{1,4}"
        ];
        let query = prop_oneof![
            Just(String::new()),
            Just("?now=2030-01-01T00:00:00Z".to_owned()),
            Just("?now=yesterday".to_owned()),
            Just("?after_seq=-5&limit=99999999".to_owned()),
            Just("?members=-3".to_owned()),
            Just("?members=1e9".to_owned()),
            Just("?theme=%00".to_owned()),
            "\\?[a-z_]{1,8}=[ -~]{0,12}".prop_map(|q| q.replace([' ', '#'], "+"))
        ];
        (mech(), seq, query, 0usize..12).prop_map(|(mech, seq, query, which)| {
            let tail = match which {
                0 => "donations".to_owned(),
                1 => "system-donations".to_owned(),
                2 => "member-count".to_owned(),
                3 => "power-gifts".to_owned(),
                4 => format!("donations/{seq}/toggle-deletion"),
                5 => "import".to_owned(),
                6 => "state".to_owned(),
                7 => "events".to_owned(),
                8 => "events.jsonl".to_owned(),
                9 => "whatif".to_owned(),
                10 => "card.svg".to_owned(),
                _ => format!("{seq}/../../{seq}"),
            };
            format!("/api/v1/mechs/{mech}/{tail}{query}")
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let amount = prop_oneof![
            Just("\"5.00\"".to_owned()),
            Just("5".to_owned()),
            Just("\"1e3\"".to_owned()),
            Just("\"-1\"".to_owned()),
            Just("0.001".to_owned()),
            Just("1e308".to_owned()),
            Just("\"10000.01\"".to_owned()),
            Just("null".to_owned()),
            Just("[]".to_owned()),
            "-?[0-9]{1,12}(\\.[0-9]{1,3})?"
        ];
        let text = prop_oneof![
            Just("null".to_owned()),
            Just("\"alice\"".to_owned()),
            Just("\"\\u202e\"".to_owned()),
            Just("\"\\u0000\"".to_owned()),
            Just("7".to_owned()),
            "\"[a-z]{0,120}\""
        ];
        prop_oneof![
            (amount, text.clone()).prop_map(|(a, d)| format!(r#"{{"amount":{a},"donor":{d}}}"#).into_bytes()),
            (amount_free(), text.clone()).prop_map(|(a, n)| format!(r#"{{"amount":{a},"event_name":{n}}}"#).into_bytes()),
            "-?[0-9]{1,19}".prop_map(|n| format!(r#"{{"member_count":{n}}}"#).into_bytes()),
            text.clone().prop_map(|c| format!(r#"{{"campaign_id":{c}}}"#).into_bytes()),
            text.prop_map(|r| format!(r#"{{"reason":{r}}}"#).into_bytes()),
            Just(br#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":100}}"#.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..200),
            Just(b"{\"amount\":".to_vec()),
            Just(Vec::new()),
        ]
    }

    fn amount_free() -> impl Strategy<Value = String> {
        prop_oneof![Just("\"2.50\"".to_owned()), "-?[0-9]{1,8}"]
    }

    fn hostile() -> impl Strategy<Value = Hostile> {
        let method = prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("HEAD"),
            Just("OPTIONS")
        ];
        let auth = prop_oneof![
            Just(None),
            Just(Some(format!("Bearer {TOKEN}"))),
            Just(Some(format!("bEaReR   {TOKEN} "))),
            Just(Some("Bearer wrong".to_owned())),
            Just(Some("Basic Zm9vOmJhcg==".to_owned())),
            "[ -~]{0,40}".prop_map(Some),
        ];
        let key = prop_oneof![
            Just(None),
            Just(Some("k1".to_owned())),
            Just(Some(String::new())),
            "[ -~]{0,300}".prop_map(Some)
        ];
        let content_type = prop_oneof![
            Just(None),
            Just(Some("application/json")),
            Just(Some("text/plain")),
            Just(Some("application/json; charset=latin1"))
        ];
        (method, path(), auth, key, content_type, body()).prop_map(|(method, path, auth, key, content_type, body)| {
            Hostile { method, path, auth, key, content_type, body }
        })
    }

    fn request(h: &Hostile) -> Option<Request<Body>> {
        let mut builder = Request::builder().method(h.method).uri(&h.path);
        if let Some(auth) = &h.auth {
            builder = builder.header(header::AUTHORIZATION, auth.as_str());
        }
        if let Some(key) = &h.key {
            builder = builder.header("idempotency-key", key.as_str());
        }
        if let Some(kind) = h.content_type {
            builder = builder.header(header::CONTENT_TYPE, kind);
        }
        // A request the HTTP layer itself cannot carry (an invalid header value) never reaches us.
        builder.body(Body::from(h.body.clone())).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn no_5xx_no_panic_and_state_is_the_replay_of_the_export(requests in proptest::collection::vec(hostile(), 1..24)) {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async {
                let server = Server::new(1 << 20);
                for h in &requests {
                    let Some(request) = request(h) else { continue };
                    let (status, _, body) = server.send_full(request).await;
                    prop_assert!(status.as_u16() < 500, "{h:?} -> {status}: {}", String::from_utf8_lossy(&body));
                }
                let (_, mechs) = server.get("/api/v1/mechs").await;
                let mechs: Vec<String> = serde_json::from_slice(&mechs).expect("mech ids");
                for mech in mechs {
                    let (status, lines) = server.get(&format!("/api/v1/mechs/{mech}/events.jsonl")).await;
                    prop_assert_eq!(status, StatusCode::OK);
                    prop_assert_eq!(server.state_of(&mech).await, replayed(&lines, &mech), "mech {}", mech);
                }
                Ok(())
            })?;
        }
    }
}
