//! `<mechfund-progress>` on a page like DockerDiscordControl's web UI, in headless Chromium: DDC's
//! exact Content-Security-Policy header, the element inside a centred `#donationSection`, and
//! `ddc=` pointing at a copy of a real DDC config dir (`tests/samples/ddc-dirs/`).
//!
//! Without `'wasm-unsafe-eval'` the element must say why it cannot run (never stay blank); with
//! it, it must show exactly what `mechfund replay --ddc` prints. Also: the page's centring does
//! not leak into the card, and a request the page's `connect-src` blocks is told apart from a
//! CORS failure.
//!
//! Prerequisites (missing ones fail the tests with the command to run): the JS package in
//! `examples/embed/pkg/` (`cargo xtask wasm`), `cargo build --release -p mechfund-server`,
//! chromium and chromedriver.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use mechfund_core::Cents;
use mechfund_e2e::{Page, READ_ELEMENT, workspace_root};
use serde_json::{Value, json};
use tower_http::services::ServeDir;

/// The header DDC (`app/web/security.py`) sends with every response, byte for byte.
const DDC_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                       font-src 'self'; img-src 'self' data: blob: https://cdn.buymeacoffee.com https://*.paypal.com; \
                       object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none';";

/// DDC's header with the one change docs/ddc.md asks for.
fn ddc_csp_fixed() -> String {
    DDC_CSP.replace("script-src 'self' 'unsafe-inline';", "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval';")
}

/// Times shortly after each sample's last event, so some power is left.
const WEBUI_NOW: &str = "2026-12-03T12:00:00Z";
const STATIC_NOW: &str = "2025-04-01T12:00:00Z";

/// A page shaped like DDC's `templates/config.html` mech block (Bootstrap's `.text-center` on
/// the section), recording the element's events; `ELEMENT` is replaced by the element's tag.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DDC-like page</title>
<style>
  .text-center { text-align: center !important; }
  #donationSection { max-width: 32rem; margin: 1rem auto; letter-spacing: 0.2em; text-transform: uppercase; }
</style>
<script>
  window.mechfundEvents = [];
  for (const type of ["mechfund-ready", "mechfund-error"]) {
    document.addEventListener(type, (e) => window.mechfundEvents.push({ type, id: e.target.id, detail: e.detail }));
  }
</script>
<script type="module" src="pkg/mechfund-progress.js"></script>
</head>
<body>
<div id="donationSection" class="text-center">
  <h5>Mech</h5>
  ELEMENT
</div>
</body>
</html>
"#;

/// `GET /ddc.html?csp=ddc|fixed|none&ATTRIBUTE=VALUE…`: [`PAGE`] with that CSP header and a
/// `<mechfund-progress id="mech">` with the other parameters as attributes.
async fn ddc_page(Query(query): Query<HashMap<String, String>>) -> impl IntoResponse {
    let csp = match query.get("csp").map(String::as_str) {
        Some("fixed") => Some(ddc_csp_fixed()),
        Some("none") => None,
        Some(other) if other.starts_with("fixed+") => Some(format!("{} {}", ddc_csp_fixed(), &other["fixed+".len()..])),
        _ => Some(DDC_CSP.to_owned()),
    };
    let escape = |text: &str| text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    let attributes: String = query
        .iter()
        .filter(|(name, _)| name.as_str() != "csp")
        .map(|(name, value)| format!(" {}=\"{}\"", escape(name), escape(value)))
        .collect();
    let html = PAGE.replace("ELEMENT", &format!("<mechfund-progress id=\"mech\"{attributes}></mechfund-progress>"));
    let mut response = Html(html).into_response();
    if let Some(csp) = csp {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp.parse().expect("a valid header value"));
    }
    response
}

/// The page route and `/ddc/…`, a read-only copy of `tests/samples/ddc-dirs/` (a missing file
/// is a 404, as DDC's Flask route answers).
fn routes() -> Router {
    Router::new()
        .route("/ddc.html", get(ddc_page))
        .nest_service("/ddc", ServeDir::new(workspace_root().join("tests/samples/ddc-dirs")))
}

/// The recorded `mechfund-*` events.
const EVENTS: &str = "return window.mechfundEvents;";

fn text(part: &Value) -> &str {
    part["text"].as_str().unwrap_or_default()
}

fn attr<'a>(part: &'a Value, name: &str) -> &'a str {
    part["attrs"][name].as_str().unwrap_or("<absent>")
}

fn cents(value: &Value) -> Result<i64> {
    value.as_i64().with_context(|| format!("not an integer: {value}"))
}

/// Runs `body` on a fresh page and always closes the session, whatever the outcome.
async fn with_page<F>(routes: Router, body: F) -> Result<()>
where
    F: AsyncFnOnce(&Page) -> Result<()>,
{
    let page = Page::open(routes).await?;
    let outcome = body(&page).await;
    page.close().await;
    outcome
}

/// Waits for the element `id` to settle and returns what [`READ_ELEMENT`] reads.
async fn read(page: &Page, id: &str) -> Result<Value> {
    page.wait_for(&format!("#{id} to be ready or failed"), 15, READ_ELEMENT, vec![json!(format!("#{id}"))]).await
}

/// Checks that the element shows an error (and only the error) and returns its text.
fn error_text(widget: &Value) -> Result<String> {
    ensure!(widget["status"] == "error", "data-status is {}, expected error: {widget}", widget["status"]);
    let error = &widget["error"];
    ensure!(error["visible"] == true, "the error part is not visible: {widget}");
    ensure!(attr(error, "role") == "alert", "the error part has no role=alert: {error}");
    Ok(text(error).to_owned())
}

#[tokio::test]
async fn ddc_csp_without_wasm_unsafe_eval_shows_why() -> Result<()> {
    with_page(routes(), async |page| {
        page.goto(&format!("ddc.html?csp=ddc&ddc=/ddc/webui-no-member-file/config/&now={WEBUI_NOW}")).await?;
        let widget = read(page, "mech").await?;
        let message = error_text(&widget)?;
        for needle in ["Content-Security-Policy", "'wasm-unsafe-eval'", "script-src"] {
            ensure!(message.contains(needle), "the CSP error should name {needle:?}: {message}");
        }
        ensure!(
            message.contains("script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'"),
            "the CSP error should show DDC's script-src with the fix: {message}"
        );
        let events = page.js(EVENTS, vec![]).await?;
        ensure!(
            events
                == json!([{ "type": "mechfund-error", "id": "mech", "detail": { "code": "csp", "message": message } }]),
            "expected one mechfund-error with code csp and the shown message, got {events}"
        );

        // An element connected later shows the same error (and says so with its own event).
        let add = r#"const el = document.createElement("mechfund-progress");
            el.id = "later";
            el.setAttribute("ddc", "/ddc/webui-no-member-file/config/");
            document.getElementById("donationSection").append(el);
            return true;"#;
        page.js(add, vec![]).await?;
        let later = read(page, "later").await?;
        ensure!(error_text(&later)? == message, "the later element's error differs: {later}");
        let codes = page.js("return window.mechfundEvents.map((e) => `${e.id}:${e.detail.code}`);", vec![]).await?;
        ensure!(codes == json!(["mech:csp", "later:csp"]), "events: {codes}");

        // The entry module's init() rejects with the same code, for pages that await it.
        let init = r#"const done = arguments[arguments.length - 1];
            import("./pkg/mechfund-progress.js").then((m) => m.default())
              .then(() => done("resolved"), (e) => done(`${e.code}: ${e.message}`));"#;
        let rejected = page.client.execute_async(init, vec![]).await?;
        ensure!(rejected == json!(format!("csp: {message}")), "init() should reject with the CSP error: {rejected}");
        Ok(())
    })
    .await
}

/// Loads the DDC page for `dir` with the fixed CSP and checks it against `mechfund replay --ddc`.
async fn check_against_cli(page: &Page, dir: &str, now: &str) -> Result<Value> {
    let config = format!("tests/samples/ddc-dirs/{dir}/config");
    let cli = mechfund_e2e::cli_json(&["replay", "--ddc", &config, "--now", now])?;
    page.goto(&format!("ddc.html?csp=fixed&ddc=/ddc/{dir}/config/&now={now}")).await?;
    let widget = read(page, "mech").await?;
    ensure!(widget["status"] == "ready", "{dir}: not ready: {}", widget["error"]["text"]);
    let (state, display) = (&cli["state"], &cli["display"]);

    let level = cents(&state["level"])?;
    let tier = display["tier"].as_str().unwrap_or_default();
    ensure!(text(&widget["level"]) == format!("Level {level} · {tier}"), "{dir}: level {}", widget["level"]);
    ensure!(attr(&widget["level"], "data-value") == level.to_string(), "{dir}: level data-value");

    let (evo, goal) = (cents(&state["evo_acc"])?, cents(&state["goal_requirement"])?);
    let evo_label = format!("{} / {}", Cents(evo), Cents(goal));
    ensure!(text(&widget["evo"]).contains(&evo_label), "{dir}: evolution {} vs {evo_label}", widget["evo"]);
    ensure!(attr(&widget["evo"], "data-value") == evo.to_string(), "{dir}: evo data-value");
    ensure!(attr(&widget["evo"], "data-max") == goal.to_string(), "{dir}: evo data-max");
    ensure!(attr(&widget["evo"], "aria-valuetext") == evo_label, "{dir}: evo aria-valuetext");

    let (power, power_max) = (cents(&display["power_now"])?, cents(&display["power_max"])?);
    let power_label = format!("{} / {}", Cents(power), Cents(power_max));
    ensure!(text(&widget["power"]).contains(&power_label), "{dir}: power {} vs {power_label}", widget["power"]);
    ensure!(attr(&widget["power"], "data-value") == power.to_string(), "{dir}: power data-value");

    let total = cents(&state["cumulative_donations_cents"])?;
    ensure!(text(&widget["total"]) == format!("Total donated: {}", Cents(total)), "{dir}: total {}", widget["total"]);
    ensure!(widget["error"]["visible"] == false, "{dir}: the error part is visible");

    // The mechfund-ready detail is the whole replay result: the CLI's, diagnostics included.
    let events = page.js(EVENTS, vec![]).await?;
    let ready = &events[0];
    ensure!(ready["type"] == "mechfund-ready", "{dir}: expected mechfund-ready first, got {events}");
    for key in ["state", "display", "diagnostics", "level_ups"] {
        ensure!(
            ready["detail"][key] == cli[key],
            "{dir}: mechfund-ready {key} differs from `mechfund replay --ddc`:\n page: {}\n cli:  {}",
            ready["detail"][key],
            cli[key]
        );
    }
    Ok(widget)
}

#[tokio::test]
async fn ddc_with_wasm_unsafe_eval_shows_what_the_cli_prints() -> Result<()> {
    with_page(routes(), async |page| {
        let webui = check_against_cli(page, "webui-no-member-file", WEBUI_NOW).await?;
        // What DDC's own page says for this installation: $4.00 of $24.00.
        ensure!(text(&webui["evo"]).contains("$4.00 / $24.00"), "webui-no-member-file: {}", webui["evo"]);
        check_against_cli(page, "static-x1.5-decay", STATIC_NOW).await?;
        check_against_cli(page, "small-guild", "2025-03-21T12:00:00Z").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_centred_page_does_not_centre_the_card() -> Result<()> {
    with_page(routes(), async |page| {
        page.goto(&format!("ddc.html?csp=fixed&ddc=/ddc/webui-no-member-file/config/&now={WEBUI_NOW}")).await?;
        let widget = read(page, "mech").await?;
        ensure!(widget["status"] == "ready", "not ready: {}", widget["error"]["text"]);
        let host = page
            .js("const s = getComputedStyle(document.getElementById('mech')); return [s.textAlign, s.display];", vec![])
            .await?;
        ensure!(host == json!(["start", "block"]), "the host's text-align and display: {host}");
        for name in ["level", "evo", "total"] {
            let part = &widget[name];
            ensure!(part["textAlign"] == "start", "{name} is aligned {} inside a centred section", part["textAlign"]);
            ensure!(part["textTransform"] == "none", "{name} inherits text-transform {}", part["textTransform"]);
        }
        // (.level sets a letter-spacing of its own.)
        for name in ["evo", "total"] {
            let spacing = &widget[name]["letterSpacing"];
            ensure!(spacing == "normal", "{name} inherits letter-spacing {spacing}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_blocked_connect_src_and_a_cors_failure_say_which() -> Result<()> {
    // Another origin (another port) that answers the state but sends no CORS headers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let other = format!("http://{}", listener.local_addr()?);
    let state = json!({ "state": { "level": 1, "evo_acc": 0, "power_acc": 0, "goal_requirement": 1000 },
                        "display": { "power_now": 0 } });
    let app = Router::new().route("/api/v1/mechs/{mech}/state", get(move || async move { axum::Json(state) }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let outcome = with_page(routes(), async |page| {
        // DDC's CSP (fixed for WebAssembly): default-src 'self' also stands for connect-src.
        page.goto(&format!("ddc.html?csp=fixed&api={other}&now={WEBUI_NOW}")).await?;
        let csp = error_text(&read(page, "mech").await?)?;
        for needle in ["Content-Security-Policy", "connect-src", other.as_str()] {
            ensure!(csp.contains(needle), "the connect-src error should name {needle:?}: {csp}");
        }
        ensure!(!csp.contains("CORS"), "the connect-src error is not a CORS one: {csp}");
        let code = page.js("return window.mechfundEvents[0].detail.code;", vec![]).await?;
        ensure!(code == "csp", "connect-src blocked: code {code}");

        // connect-src allows the other origin: now only CORS stands in the way.
        let allowed = format!("fixed%2Bconnect-src 'self' {other};");
        page.goto(&format!("ddc.html?csp={allowed}&api={other}&now={WEBUI_NOW}")).await?;
        let cors = error_text(&read(page, "mech").await?)?;
        for needle in ["CORS", "Access-Control-Allow-Origin", "mechfund serve --cors-origin", page.origin.as_str()] {
            ensure!(cors.contains(needle), "the CORS error should name {needle:?}: {cors}");
        }
        ensure!(!cors.contains("connect-src"), "the CORS error is not a CSP one: {cors}");
        let code = page.js("return window.mechfundEvents[0].detail.code;", vec![]).await?;
        ensure!(code == "cors", "CORS failure: code {code}");
        Ok(())
    })
    .await;
    server.abort();
    outcome
}

#[tokio::test]
async fn missing_ddc_files_take_ddc_defaults_and_a_wrong_ddc_url_says_so() -> Result<()> {
    with_page(routes(), async |page| {
        // webui-no-member-file has no mech/decay.json or evolution_mode.json: DDC's defaults.
        check_against_cli(page, "webui-no-member-file", WEBUI_NOW).await?;
        page.goto(&format!("ddc.html?csp=fixed&ddc=/ddc/no-such-dir/config/&now={WEBUI_NOW}")).await?;
        let message = error_text(&read(page, "mech").await?)?;
        ensure!(
            message.contains("No DDC files at") && message.contains("/ddc/no-such-dir/config/"),
            "a ddc URL with no files should say so: {message}"
        );
        let code = page.js("return window.mechfundEvents[0].detail.code;", vec![]).await?;
        ensure!(code == "http", "no DDC files: code {code}");
        Ok(())
    })
    .await
}
