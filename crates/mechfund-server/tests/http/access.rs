//! Who may do what: writes need the token (any spelling of the scheme, one rate-limit bucket),
//! `--private` reads need it too, and a read-only server refuses every write.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::common::app::{App, TOKEN};

#[tokio::test]
async fn a_read_only_server_refuses_every_write_with_403_and_still_reads() {
    let server = App::builder().read_only("DDC owns this log").start();
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
        assert_eq!(server.send(request).await.status, StatusCode::FORBIDDEN, "{path} without a token");
    }
    assert_eq!(server.get("/api/v1/mechs/main/state").await.status, StatusCode::OK);
    assert_eq!(server.get("/api/v1/mechs/main/events.jsonl").await.status, StatusCode::OK);
}

#[tokio::test]
async fn any_spelling_of_the_bearer_scheme_authenticates_and_shares_one_bucket() {
    // 1 write a second, a burst of 2: the third write within a second is refused.
    let server = App::builder().rate_limit(1).start();
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
        statuses.push(server.send(request).await.status);
    }
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS],
        "each spelling authenticates; all draw on the admin's one bucket"
    );
}

#[tokio::test]
async fn a_private_servers_401_on_reads_speaks_of_reads() {
    let server = App::builder().private().start();
    let reply = server.get("/api/v1/mechs/main/state").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&reply.body).expect("json");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.starts_with("reads of this server need"), "{message}");
    let request = Request::post("/api/v1/mechs/main/donations").body(Body::from("{}")).expect("request");
    let reply = server.send(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&reply.body).contains("writes need"));
}
