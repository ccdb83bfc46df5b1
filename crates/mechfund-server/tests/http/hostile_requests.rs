//! Random and mutated requests against `app()`, in process (issue 13): whatever arrives, no
//! answer is a 5xx and nothing panics, and afterwards every mech's state is the replay of its
//! export.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;

use crate::common::app::{App, Reply, TOKEN, on_postgres};
use crate::imports::replayed;

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
        Just(
            br#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":100}}"#
                .to_vec()
        ),
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
    let key =
        prop_oneof![Just(None), Just(Some("k1".to_owned())), Just(Some(String::new())), "[ -~]{0,300}".prop_map(Some)];
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
    // Each case is a new store: on PostgreSQL a cluster of its own, so fewer cases there.
    #![proptest_config(ProptestConfig { cases: if on_postgres() { 8 } else { 48 }, ..ProptestConfig::default() })]

    #[test]
    fn no_5xx_no_panic_and_state_is_the_replay_of_the_export(requests in proptest::collection::vec(hostile(), 1..24)) {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(async {
            let server = App::start();
            for h in &requests {
                let Some(request) = request(h) else { continue };
                let Reply { status, body, .. } = server.send(request).await;
                prop_assert!(status.as_u16() < 500, "{h:?} -> {status}: {}", String::from_utf8_lossy(&body));
            }
            let mechs = server.get("/api/v1/mechs").await.body;
            let mechs: Vec<String> = serde_json::from_slice(&mechs).expect("mech ids");
            for mech in mechs {
                let Reply { status, body: lines, .. } = server.get(&format!("/api/v1/mechs/{mech}/events.jsonl")).await;
                prop_assert_eq!(status, StatusCode::OK);
                prop_assert_eq!(server.state_of(&mech).await, replayed(&lines, &mech), "mech {}", mech);
            }
            Ok(())
        })?;
    }
}
