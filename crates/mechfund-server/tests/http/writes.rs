//! Writes and what they leave: idempotency keys, mech ids and seqs at their bounds.

use axum::http::StatusCode;

use crate::common::app::App;

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
