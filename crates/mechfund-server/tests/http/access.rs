//! Who may do what: writes need the token (any spelling of the scheme), `--private` reads need
//! it too, a read-only server refuses every write, CORS answers only the listed origins, and
//! writes are rate limited.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use mechfund_server::serve::auth::TokenSource;
use serde_json::{Value, json};

use crate::common::app::{App, Req, TOKEN};
use crate::common::{assert_error, events};

#[tokio::test(flavor = "multi_thread")]
async fn writes_need_the_token() {
    // No MECHFUND_ADMIN_TOKEN: the one made in the data dir. (That the file is 0600 and its path
    // printed once is the binary's: tests/serve.rs.)
    let app = App::builder().generated_token().start();
    assert_eq!(app.token_source(), Some(&TokenSource::Created), "MECHFUND_ADMIN_TOKEN must not be set");
    let token = app.token().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let url = "/api/v1/mechs/main/donations";
    let body = br#"{"amount":"1"}"#.to_vec();
    for (what, auth) in [
        ("missing", None),
        ("wrong", Some(format!("Bearer {}", "0".repeat(64)))),
        ("prefix", Some(format!("Bearer {}", &token[..63]))),
        ("basic", Some(format!("Basic {token}"))),
        ("empty", Some("Bearer ".to_owned())),
    ] {
        let mut request = Req::post(url);
        if let Some(auth) = auth {
            request = request.header("authorization", &auth);
        }
        let reply = app.send(request.body(body.clone())).await;
        assert_error(reply.status.as_u16(), &reply.text(), 401, what);
    }
    let (status, text) = app.post_raw(url, body, Some(&token), None).await;
    assert_eq!(status, 201, "{text}");
    // Reads are public.
    assert_eq!(app.get("/api/v1/mechs/main/state").await.status, StatusCode::OK);
    // A restart reuses the file.
    let app = app.restart().await;
    assert_eq!((app.token(), app.token_source()), (token.as_str(), Some(&TokenSource::File)));
    let (status, _) = app.post_raw(url, br#"{"amount":"1"}"#.to_vec(), Some(&token), None).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn private_reads_need_the_token() {
    let app = App::builder().private().start();
    for path in ["/mechs", "/mechs/main/state", "/mechs/main/events", "/mechs/main/events.jsonl", "/rules"] {
        let path = format!("/api/v1{path}");
        let reply = app.get(&path).await;
        assert_error(reply.status.as_u16(), &reply.text(), 401, &path);
        let reply = app.send(Req::get(&path).header("authorization", "Bearer wrong").empty()).await;
        assert_error(reply.status.as_u16(), &reply.text(), 401, &path);
        let reply = app.send(Req::get(&path).bearer(TOKEN).empty()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/healthz").await.status, StatusCode::OK);
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("cargo xtask dashboard"));
    // Writes still need it as before.
    let (status, _) = app.post_json("/api/v1/mechs/main/donations", &json!({"amount": "1"})).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_headers_only_for_listed_origins() {
    let app = App::builder().cors_origin("https://a.example").cors_origin("https://b.example").start();
    let url = "/api/v1/mechs/main/state";
    for origin in ["https://a.example", "https://b.example"] {
        let reply = app.send(Req::get(url).header("origin", origin).empty()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["access-control-allow-origin"], origin);
    }
    let reply = app.send(Req::get(url).header("origin", "https://evil.example").empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    // Preflight.
    let reply = app
        .send(
            Req::new(Method::OPTIONS, url)
                .header("origin", "https://a.example")
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .empty(),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(reply.headers["access-control-allow-origin"], "https://a.example");
    let methods = reply.headers["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("GET"), "{methods}");
    let reply = app
        .send(
            Req::new(Method::OPTIONS, url)
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "GET")
                .empty(),
        )
        .await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    // Without --cors-origin: no CORS headers at all.
    drop(app);
    let app = App::start();
    let reply = app.send(Req::get(url).header("origin", "https://a.example").empty()).await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn any_origin_with_a_star() {
    let app = App::builder().cors_origin("*").start();
    let reply = app.send(Req::get("/api/v1/mechs/main/state").header("origin", "https://x.example").empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_rate_limited_with_retry_after() {
    let app = App::builder().rate_limit(2).start();
    let url = "/api/v1/mechs/main/donations";
    let mut accepted = 0;
    let mut limited = 0;
    for i in 0..20 {
        let reply =
            app.send(Req::post(url).bearer(TOKEN).json(&json!({"amount": "1.00", "donor": format!("d{i}")}))).await;
        match reply.status.as_u16() {
            201 => accepted += 1,
            429 => {
                limited += 1;
                let retry: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                let text = reply.text();
                assert_error(429, &text, 429, "rate limited");
                assert!(text.contains("\"rate_limited\""), "{text}");
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert!(accepted >= 1 && limited >= 10, "accepted {accepted}, limited {limited}");
    // Nothing is recorded for the refused writes.
    let state = app.get_json("/api/v1/mechs/main/state").await;
    assert_eq!(state["state"]["cumulative_donations_cents"], json!(accepted * 100), "{state}");
    let events = events(&app.get("/api/v1/mechs/main/events.jsonl").await.text());
    assert_eq!(events.len(), accepted as usize);
    // Once the bucket has refilled (2 per second), writes are accepted again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = app.post_json(url, &json!({"amount": "1"})).await;
    assert_eq!(status, 201, "{body}");
    drop(app);
    // 0 disables the limit.
    let app = App::builder().rate_limit(0).start();
    for _ in 0..30 {
        let (status, body) = app.post_json(url, &json!({"amount": "1", "donor": "same"})).await;
        assert_eq!(status, 201, "{body}");
    }
}

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
