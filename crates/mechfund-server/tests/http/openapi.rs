//! The OpenAPI document the server serves cannot drift from its router: it parses as OpenAPI 3,
//! every documented operation is routed (not the 404/405 fallbacks), every other method on a
//! documented path is 405, and the set of operations is the HTTP contract's. (schemathesis, run
//! by `cargo xtask schemathesis`, checks the answers against the schemas.)

use std::collections::BTreeSet;

use axum::body::to_bytes;
use serde_json::Value;

use crate::common::app::{App, Req, TOKEN};

/// Every operation of spec §3.3, as (method, path).
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/api/v1/healthz"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/mechs"),
    ("get", "/api/v1/rules"),
    ("get", "/api/v1/mechs/{mech}/state"),
    ("get", "/api/v1/mechs/{mech}/card.svg"),
    ("get", "/api/v1/mechs/{mech}/events"),
    ("get", "/api/v1/mechs/{mech}/events.jsonl"),
    ("get", "/api/v1/mechs/{mech}/events/stream"),
    ("get", "/api/v1/mechs/{mech}/whatif"),
    ("post", "/api/v1/mechs/{mech}/donations"),
    ("post", "/api/v1/mechs/{mech}/system-donations"),
    ("post", "/api/v1/mechs/{mech}/member-count"),
    ("post", "/api/v1/mechs/{mech}/power-gifts"),
    ("post", "/api/v1/mechs/{mech}/donations/{seq}/toggle-deletion"),
    ("post", "/api/v1/mechs/{mech}/import"),
];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

async fn document(server: &App) -> Value {
    let reply = server.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    serde_json::from_slice(&reply.body).unwrap()
}

/// (method, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                out.insert(((*method).to_owned(), path.clone()));
            }
        }
    }
    out
}

/// Every `$ref` in `value` names a component that exists.
fn check_refs(doc: &Value, value: &Value, dangling: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target.trim_start_matches('#');
                if doc.pointer(pointer).is_none() {
                    dangling.push(target.clone());
                }
            }
            map.values().for_each(|v| check_refs(doc, v, dangling));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, dangling)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_and_lists_the_contract() {
    let server = App::start();
    let doc = document(&server).await;
    // It parses as an OpenAPI 3 document (utoipa's own model), with nothing dangling.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(parsed.paths.paths.len(), doc["paths"].as_object().unwrap().len());
    let mut dangling = Vec::new();
    check_refs(&doc, &doc, &mut dangling);
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    let expected: BTreeSet<(String, String)> =
        CONTRACT.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(operations(&doc), expected, "the document's operations are not the contract's");
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let operation = &doc["paths"][&path][&method];
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
        assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
        // Writes need the token; reads are public (the empty requirement) unless --private.
        let security = operation["security"].as_array().cloned().unwrap_or_default();
        if method == "post" {
            assert_eq!(security, [serde_json::json!({"bearer": []})], "{method} {path}");
            assert!(operation["responses"]["401"].is_object() && operation["responses"]["429"].is_object());
            assert!(operation["responses"]["429"]["headers"]["Retry-After"].is_object());
        } else if path.contains("/mechs") || path.ends_with("/rules") {
            assert!(security.contains(&serde_json::json!({})), "{method} {path}: reads are public");
        }
    }
    let events_jsonl = &doc["paths"]["/api/v1/mechs/{mech}/events.jsonl"]["get"]["responses"]["200"]["content"];
    assert!(events_jsonl["application/x-ndjson"].is_object(), "{events_jsonl}");
    let card = &doc["paths"]["/api/v1/mechs/{mech}/card.svg"]["get"]["responses"];
    assert!(card["200"]["content"]["image/svg+xml"].is_object(), "{card}");
    assert!(card["304"].is_object() && card["404"].is_object() && card["422"].is_object(), "{card}");
    let amount = &doc["components"]["schemas"]["DonationBody"]["properties"]["amount"]["oneOf"];
    let amount_types: Vec<&str> = amount.as_array().unwrap().iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(amount_types, ["string", "number"]);
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_on_its_path() {
    let server = App::start();
    let doc = document(&server).await;
    let documented = operations(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let url = path.replace("{mech}", "main").replace("{seq}", "1");
        for method in METHODS {
            let request = Req::new(method.to_uppercase().parse().unwrap(), &url).bearer(TOKEN).json_bytes("{}");
            let response = server.respond(request).await;
            let status = response.status().as_u16();
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/event-stream"));
            // An event stream never ends: its status and type are the answer.
            let body = if streaming {
                String::new()
            } else {
                String::from_utf8_lossy(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).into_owned()
            };
            if documented.contains(&((*method).to_owned(), path.clone())) {
                // Routed: whatever the handler says about `{}`, it is not the router's fallback.
                assert_ne!(status, 405, "{method} {path} is documented but not routed: {body}");
                assert!(!body.contains("no route for"), "{method} {path} is documented but not routed: {body}");
            } else {
                assert_eq!(status, 405, "{method} {path} answers {status} but is not documented: {body}");
            }
        }
    }
}

#[tokio::test]
async fn private_reads_need_the_token_in_the_document_too() {
    let server = App::builder().private().start();
    let doc = document(&server).await;
    for (method, path) in operations(&doc) {
        let security = doc["paths"][&path][&method]["security"].as_array().cloned().unwrap_or_default();
        let public = path.ends_with("healthz") || path.ends_with("openapi.json");
        if public {
            assert!(security.is_empty(), "{method} {path}: {security:?}");
        } else {
            assert_eq!(security, [serde_json::json!({"bearer": []})], "{method} {path}");
        }
    }
    // And the server agrees: a read without the token is 401, the document is public.
    assert_eq!(server.get("/api/v1/mechs").await.status, 401);
    assert_eq!(server.get("/api/v1/openapi.json").await.status, 200);
}
