//! `GET …/card.svg`: the SVG card of a mech's state, worked by hand; its ETag, headers and
//! refusals.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;

use crate::common::app::{App, Reply};

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

/// `GET /api/v1/mechs/card/card.svg{query}`, with `If-None-Match` if given.
async fn card(server: &App, query: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(format!("/api/v1/mechs/card/card.svg{query}"));
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let Reply { status, headers, body } = server.send(request.body(Body::empty()).expect("request")).await;
    (status, headers, String::from_utf8(body).expect("UTF-8"))
}

async fn card_server() -> App {
    let server = App::start();
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
        let Reply { status, body, .. } = server.get(&format!("/api/v1/mechs/card/state{now}")).await;
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
        let (status, headers, svg) = card(&server, now, None).await;
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
    let Reply { status, body, .. } = server.get("/api/v1/mechs/top/state").await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["state"]["level"], 11, "{answer}");
    assert_eq!(
        (answer["state"]["evo_acc"].as_i64(), answer["state"]["goal_requirement"].as_i64()),
        (Some(1009), Some(0))
    );
    let request = Request::get("/api/v1/mechs/top/card.svg").body(Body::empty()).expect("request");
    let Reply { status, body: svg, .. } = server.send(request).await;
    let svg = String::from_utf8(svg).expect("UTF-8");
    assert_eq!(status, StatusCode::OK);
    assert!(svg.contains(">Level 11</text>") && svg.contains(">Max level</text>"), "{svg}");
    assert!(svg.contains(">$10.09 / $1.00 · 100%</text>") && svg.contains(">$380.09</text>"), "{svg}");
    assert!(!svg.contains("$0.00"), "{svg}");
}

#[tokio::test]
async fn the_card_is_cached_by_its_etag_and_locked_down() {
    let server = card_server().await;
    let (status, headers, svg) = card(&server, "", None).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers[header::ETAG].to_str().expect("ASCII").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "a strong ETag: {etag}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "default-src 'none'; style-src 'unsafe-inline'");
    // The same card again: the same ETag and bytes.
    let (_, again, same) = card(&server, "", None).await;
    assert_eq!((again[header::ETAG].to_str().ok(), same.as_str()), (Some(etag.as_str()), svg.as_str()));

    for tag in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
        let (status, headers, body) = card(&server, "", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: {tag}");
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag.as_str());
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    }
    let (status, _, body) = card(&server, "", Some("\"other\"")).await;
    assert_eq!((status, body), (StatusCode::OK, svg.clone()));

    // Another moment, another theme, a new event: another card, another ETag.
    let mut tags = std::collections::BTreeSet::from([etag.clone()]);
    for query in ["?now=2025-01-03T12:00:00Z", "?theme=dark"] {
        let (status, headers, body) = card(&server, query, Some(&etag)).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_ne!(body, svg, "{query}");
        assert!(tags.insert(headers[header::ETAG].to_str().expect("ASCII").to_owned()), "{query}");
    }
    let (status, body) = server.post("/api/v1/mechs/card/donations", r#"{"amount":"1.00"}"#, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, headers, _) = card(&server, "", Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tags.insert(headers[header::ETAG].to_str().expect("ASCII").to_owned()));
}

#[tokio::test]
async fn the_card_refuses_what_the_state_refuses_and_unknown_themes() {
    let server = card_server().await;
    let (status, headers, body) = card(&server, "?theme=dark", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml; charset=utf-8");
    assert!(body.contains("fill=\"#0d1117\""), "the dark background: {body}");
    assert_eq!(card(&server, "?theme=light", None).await.2, card(&server, "", None).await.2, "light is the default");

    for (path, status, needle) in [
        ("/api/v1/mechs/card/card.svg?theme=blue", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?theme=", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?theme=DARK", StatusCode::UNPROCESSABLE_ENTITY, "theme"),
        ("/api/v1/mechs/card/card.svg?now=yesterday", StatusCode::UNPROCESSABLE_ENTITY, "now"),
        ("/api/v1/mechs/nobody/card.svg", StatusCode::NOT_FOUND, "nobody"),
    ] {
        let Reply { status: got, body, .. } = server.get(path).await;
        assert_eq!(got, status, "{path}");
        let error: Value = serde_json::from_slice(&body).expect("a JSON error");
        let code = if status == StatusCode::NOT_FOUND { "not_found" } else { "invalid_value" };
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message:?} names {needle:?}");
    }
    // /state agrees on what is wrong with `now` and which mechs exist.
    assert_eq!(server.get("/api/v1/mechs/card/state?now=yesterday").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/api/v1/mechs/nobody/state").await.status, StatusCode::NOT_FOUND);
}
