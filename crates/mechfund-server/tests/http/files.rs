//! The dashboard at `/` and the JS package at `/embed/`: served from their directories, a page
//! saying how to build them when they are missing, and no request path gets a 5xx.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::common::app::{App, Reply};
use crate::common::assert_error;

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
    let root = tempfile::tempdir().unwrap();
    let dist = dist_dir(root.path());
    let server = App::builder().dist(&dist).embed(&dist).start();
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
        let Reply { status, headers, body } =
            server.send(Request::get(path.as_str()).body(Body::empty()).expect("request")).await;
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
        let Reply { status, headers, .. } = server.send(request).await;
        assert!(!status.is_server_error(), "{target} -> {status}");
        if status.is_redirection() {
            assert!(headers[header::LOCATION].to_str().is_ok_and(|l| l.starts_with('/')), "{target}: {headers:?}");
        }
    }
    // The files themselves are still served.
    for (path, want) in [("/", "dashboard"), ("/app.js", "export"), ("/sub/", "sub"), ("/embed/app.js", "export")] {
        let Reply { status, body, .. } = server.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(String::from_utf8_lossy(&body).contains(want), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn embed_serves_the_js_package() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("mechfund_wasm.js"), "export default 42;\n").unwrap();
    let app = App::builder().embed(&pkg).start();
    let reply = app.get("/embed/mechfund_wasm.js").await;
    assert_eq!(reply.status, StatusCode::OK);
    let kind = reply.headers["content-type"].to_str().unwrap().to_owned();
    assert!(kind.contains("javascript"), "{kind}");
    assert_eq!(reply.text(), "export default 42;\n");
    assert_eq!(app.get("/embed/missing.js").await.status, StatusCode::NOT_FOUND);
    drop(app);
    // Missing package: a page saying how to build it, and JSON 404s below it.
    let app = App::builder().embed(&dir.path().join("nope")).start();
    let page = app.get("/embed/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("cargo xtask wasm"), "{}", page.text());
    let reply = app.get("/embed/mechfund_wasm.js").await;
    assert_error(reply.status.as_u16(), &reply.text(), 404, "missing embed file");
}
