//! The embed example page and `<mechfund-progress>` in headless Chromium, checked against the
//! `mechfund` CLI on the same log.
//!
//! Prerequisites (missing ones fail the tests with the command to run): the JS package in
//! `examples/embed/pkg/` (`cargo xtask wasm`), `cargo build --release -p mechfund-server`,
//! chromium and chromedriver.

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use mechfund_core::Cents;
use mechfund_e2e::{Page, READ_ELEMENT};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The log the example page shows by default.
const LOG: &str = "examples/embed/ddc-small.jsonl";
/// A time shortly after the log's last event (power partly decayed) and one long after it.
const NOW_LIVE: &str = "2025-05-30T12:00:00Z";
const NOW_LATE: &str = "2025-07-01T00:00:00+02:00";

/// Blank line 1, then lines that are not events: the first bad line is 2.
const CORRUPT_LOG: &str =
    "\n{not json\n{\"seq\":-1,\"ts\":\"2025-01-01T00:00:00Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\"}\n";

/// Waits until the page's JS API section has run.
const API_DONE: &str = "return window.mechfundApi && window.mechfundApi.done ? window.mechfundApi : null;";

/// The widget's `mechfund-*` events so far.
const EVENTS: &str = "return window.mechfundEvents || [];";

fn replay_cli(now: &str) -> Result<Value> {
    mechfund_e2e::cli_json(&["replay", "--now", now, LOG])
}

fn cents(value: &Value) -> Result<i64> {
    value.as_i64().with_context(|| format!("not an integer: {value}"))
}

fn attr<'a>(part: &'a Value, name: &str) -> &'a str {
    part["attrs"][name].as_str().unwrap_or("<absent>")
}

#[track_caller]
fn check_eq(what: &str, actual: &str, expected: &str) -> Result<()> {
    ensure!(actual == expected, "{what}: the page shows {actual:?}, expected {expected:?}");
    Ok(())
}

/// Checks a bar's role, aria attributes, `data-value`/`data-max` and label against cents.
fn check_bar(bar: &Value, label: &str, now: i64, max: i64, percent: i64) -> Result<()> {
    let text = format!("{} / {}", Cents(now), Cents(max));
    check_eq(&format!("{label} role"), attr(bar, "role"), "progressbar")?;
    check_eq(&format!("{label} aria-label"), attr(bar, "aria-label"), label)?;
    check_eq(&format!("{label} aria-valuemin"), attr(bar, "aria-valuemin"), "0")?;
    check_eq(&format!("{label} aria-valuemax"), attr(bar, "aria-valuemax"), &max.to_string())?;
    check_eq(&format!("{label} aria-valuenow"), attr(bar, "aria-valuenow"), &now.min(max).to_string())?;
    check_eq(&format!("{label} aria-valuetext"), attr(bar, "aria-valuetext"), &text)?;
    check_eq(&format!("{label} data-value"), attr(bar, "data-value"), &now.to_string())?;
    check_eq(&format!("{label} data-max"), attr(bar, "data-max"), &max.to_string())?;
    check_eq(&format!("{label} data-percent"), attr(bar, "data-percent"), &percent.to_string())?;
    let shown = bar["text"].as_str().unwrap_or_default();
    ensure!(shown.contains(&text), "{label}: the visible label {shown:?} does not show {text:?}");
    ensure!(bar["visible"] == true, "{label} bar is not visible");
    Ok(())
}

/// Checks the widget `w` against a CLI result `{state, display}`.
fn check_widget(w: &Value, cli: &Value) -> Result<()> {
    let (state, display) = (&cli["state"], &cli["display"]);
    check_eq("data-status", w["status"].as_str().unwrap_or_default(), "ready")?;
    let level = cents(&state["level"])?;
    let tier = display["tier"].as_str().unwrap_or_default();
    check_eq("level text", w["level"]["text"].as_str().unwrap_or_default(), &format!("Level {level} · {tier}"))?;
    check_eq("level data-value", attr(&w["level"], "data-value"), &level.to_string())?;
    check_bar(
        &w["evo"],
        "Evolution",
        cents(&state["evo_acc"])?,
        cents(&state["goal_requirement"])?,
        cents(&display["evo_percent"])?,
    )?;
    check_bar(
        &w["power"],
        "Power",
        cents(&display["power_now"])?,
        cents(&display["power_max"])?,
        cents(&display["power_percent"])?,
    )?;
    let total = cents(&state["cumulative_donations_cents"])?;
    check_eq(
        "total text",
        w["total"]["text"].as_str().unwrap_or_default(),
        &format!("Total donated: {}", Cents(total)),
    )?;
    check_eq("total data-value", attr(&w["total"], "data-value"), &total.to_string())?;
    ensure!(w["error"]["visible"] == false, "the error part is visible: {}", w["error"]["text"]);
    Ok(())
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

#[tokio::test]
async fn widget_shows_what_the_cli_prints() -> Result<()> {
    let expected = [(NOW_LIVE, replay_cli(NOW_LIVE)?), (NOW_LATE, replay_cli(NOW_LATE)?)];
    ensure!(cents(&expected[0].1["display"]["power_now"])? > 0, "the first time should show some power");
    with_page(Router::new(), async |page| {
        for (now, cli) in &expected {
            page.goto(&format!("index.html?now={}", now.replace('+', "%2B"))).await?;
            let widget = page.wait_for("the widget", 10, READ_ELEMENT, vec![json!("mechfund-progress")]).await?;
            check_widget(&widget, cli).with_context(|| format!("at now={now}"))?;
            let events = page.js(EVENTS, vec![]).await?;
            let ready = &events[0];
            ensure!(ready["type"] == "mechfund-ready", "expected one mechfund-ready event, got {events}");
            ensure!(
                ready["detail"]["state"] == cli["state"],
                "mechfund-ready state differs from the CLI: {}",
                ready["detail"]["state"]
            );
            ensure!(
                ready["detail"]["display"] == cli["display"],
                "mechfund-ready display differs: {}",
                ready["detail"]["display"]
            );
        }
        Ok(())
    })
    .await
}

/// Loads the page on `src`, expects the error state, and returns the error text.
async fn expect_error(page: &Page, src: &str) -> Result<String> {
    page.goto(&format!("index.html?now={NOW_LIVE}&src={src}")).await?;
    let widget = page.wait_for("the widget", 10, READ_ELEMENT, vec![json!("mechfund-progress")]).await?;
    check_eq("data-status", widget["status"].as_str().unwrap_or_default(), "error")?;
    let error = &widget["error"];
    ensure!(error["visible"] == true, "the error part is not visible");
    check_eq("error role", attr(error, "role"), "alert")?;
    ensure!(widget["level"]["visible"] == false, "the level is still visible in the error state");
    let message = error["text"].as_str().unwrap_or_default().to_owned();
    let events = page.js(EVENTS, vec![]).await?;
    let fired = events.as_array().map(Vec::as_slice).unwrap_or_default();
    ensure!(
        fired.len() == 1 && fired[0]["type"] == "mechfund-error" && fired[0]["detail"]["message"] == message.as_str(),
        "expected one mechfund-error event with the shown message, got {events}"
    );
    Ok(message)
}

#[tokio::test]
async fn missing_log_is_an_error() -> Result<()> {
    with_page(Router::new(), async |page| {
        let message = expect_error(page, "missing.jsonl").await?;
        let url = format!("{}/missing.jsonl", page.origin);
        ensure!(
            message.contains("HTTP 404") && message.contains(&url),
            "the message should give the status and URL: {message}"
        );
        ensure!(message.contains("src"), "the message should say what to fix: {message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn corrupt_log_is_an_error() -> Result<()> {
    let routes = Router::new().route("/corrupt.jsonl", get(|| async { CORRUPT_LOG }));
    with_page(routes, async |page| {
        let message = expect_error(page, "corrupt.jsonl").await?;
        ensure!(message.contains("line 2"), "the message should name the first bad line (2): {message}");
        ensure!(message.contains("no events for mech \"main\""), "the message should say no events: {message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn js_api_agrees_with_the_cli() -> Result<()> {
    let cli = replay_cli(NOW_LIVE)?;
    let members = cents(&cli["state"]["last_user_count_sample"])?;
    let whatif = mechfund_e2e::cli_json(&["whatif", "--members", &members.to_string()])?;
    with_page(Router::new(), async |page| {
        page.goto(&format!("index.html?now={NOW_LIVE}")).await?;
        let api = page.wait_for("the JS API section", 10, API_DONE, vec![]).await?;
        ensure!(api["error"].is_null(), "the page's JS API failed: {}", api["error"]);
        ensure!(
            api["replay"] == cli,
            "replayLog differs from `mechfund replay`:\n page: {:#}\n cli:  {cli:#}",
            api["replay"]
        );
        ensure!(
            api["table"] == whatif["table"],
            "goalTable differs from `mechfund whatif`: {} vs {}",
            api["table"],
            whatif["table"]
        );
        let preview = &api["preview"];
        let level = cents(&cli["state"]["level"])?;
        ensure!(cents(&preview["state"]["level"])? == level + 1, "the preview should reach the next level: {preview}");
        ensure!(preview["events"][0]["type"] == "DonationAdded", "the preview's first event: {preview}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn api_attribute_polls_a_server_and_survives_reconnecting() -> Result<()> {
    let cli = replay_cli(NOW_LIVE)?;
    let response = json!({ "state": cli["state"], "display": cli["display"] });
    let served = response.clone();
    let state = get(move |Path(mech): Path<String>, Query(query): Query<HashMap<String, String>>| {
        let served = served.clone();
        async move {
            if mech != "main" {
                let body = json!({"error": {"code": "not_found", "message": format!("no mech {mech}")}});
                return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
            }
            if query.get("now").map(String::as_str) != Some(NOW_LIVE) {
                return (StatusCode::BAD_REQUEST, "now was not passed").into_response();
            }
            axum::Json(served).into_response()
        }
    });
    let routes = Router::new().route("/api/v1/mechs/{mech}/state", state);
    with_page(routes, async |page| {
        page.goto(&format!("index.html?now={NOW_LIVE}")).await?;
        page.wait_for("the page's widget", 10, READ_ELEMENT, vec![json!("mechfund-progress")]).await?;
        // An `api` that already ends in /api/v1 (with a slash) must not get it twice.
        let add = r#"
            for (const [id, mech] of [["from-api", "main"], ["ghost", "ghost"]]) {
              const el = document.createElement("mechfund-progress");
              el.id = id;
              el.setAttribute("api", location.origin + "/api/v1/");
              el.setAttribute("mech", mech);
              el.setAttribute("now", arguments[0]);
              document.body.append(el);
            }
            return true;"#;
        page.js(add, vec![json!(NOW_LIVE)]).await?;
        let widget = page.wait_for("the api widget", 10, READ_ELEMENT, vec![json!("#from-api")]).await?;
        check_widget(&widget, &cli).context("api widget")?;
        let ghost = page.wait_for("the unknown-mech widget", 10, READ_ELEMENT, vec![json!("#ghost")]).await?;
        check_eq("unknown mech data-status", ghost["status"].as_str().unwrap_or_default(), "error")?;
        let message = ghost["error"]["text"].as_str().unwrap_or_default();
        let url = format!("{}/api/v1/mechs/ghost/state", page.origin);
        ensure!(message.contains("HTTP 404") && message.contains(&url), "unknown mech message: {message}");

        let ready_from_api = r#"return window.mechfundEvents.filter((e) => e.type === "mechfund-ready"
            && e.detail && e.detail.state && !("diagnostics" in e.detail)).map((e) => e.detail);"#;
        let details = page.js(ready_from_api, vec![]).await?;
        ensure!(
            details == json!([response]),
            "the api widget's mechfund-ready detail should be the response: {details}"
        );

        // Disconnect and reconnect: it loads again and is ready again.
        page.js(
            "const el = document.getElementById('from-api'); el.remove(); document.body.append(el); return true;",
            vec![],
        )
        .await?;
        let second_ready = r#"return window.mechfundEvents.filter((e) => e.type === "mechfund-ready"
            && !("diagnostics" in e.detail)).length >= 2 || null;"#;
        page.wait_for("a second mechfund-ready", 10, second_ready, vec![]).await?;
        let widget = page.wait_for("the reconnected widget", 10, READ_ELEMENT, vec![json!("#from-api")]).await?;
        check_widget(&widget, &cli).context("reconnected api widget")?;
        Ok(())
    })
    .await
}

/// A log whose only event puts the next cent of decay 3 s after it is served (default decay:
/// one cent every 864 s): the widget, on the browser clock, must show the power drop by itself.
fn live_log() -> String {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(0));
    let cent_us = 864_000_000;
    let ts = mechfund_core::Timestamp(now_us - 10 * cent_us + 3_000_000);
    format!(
        "{{\"seq\":1,\"ts\":\"{ts}\",\"type\":\"SystemDonationAdded\",\"mech_id\":\"main\",\"payload\":{{\"power_units\":5000}}}}\n"
    )
}

#[tokio::test]
async fn power_decays_live_without_now() -> Result<()> {
    let routes = Router::new().route("/live.jsonl", get(|| async { live_log() }));
    with_page(routes, async |page| {
        page.goto("index.html?src=live.jsonl").await?;
        let widget = page.wait_for("the widget", 10, READ_ELEMENT, vec![json!("mechfund-progress")]).await?;
        check_eq("data-status", widget["status"].as_str().unwrap_or_default(), "ready")?;
        check_eq("power before the next cent", attr(&widget["power"], "data-value"), "4991")?;
        let dropped = r#"const el = document.querySelector("mechfund-progress");
            const bar = el.shadowRoot.querySelector('[part~="power-bar"]');
            return bar.getAttribute("data-value") === "4990" ? bar.getAttribute("aria-valuetext") : null;"#;
        let text = page.wait_for("the power to decay to 4990 on the browser clock", 10, dropped, vec![]).await?;
        ensure!(text == "$49.90 / $11.00", "power label after decay: {text}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn src_with_refresh_reloads_the_log() -> Result<()> {
    // Each request of the log holds one more $1.00 donation than the one before.
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log = get(move || {
        let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move {
            (1..=n)
                .map(|seq| {
                    format!(
                        "{{\"seq\":{seq},\"ts\":\"2025-01-01T00:00:0{}Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{{\"units\":100}}}}\n",
                        seq.min(9)
                    )
                })
                .collect::<String>()
        }
    });
    with_page(Router::new().route("/growing.jsonl", log), async |page| {
        page.goto(&format!("index.html?now={NOW_LIVE}")).await?;
        let add = r#"const el = document.createElement("mechfund-progress");
            el.id = "growing";
            el.setAttribute("src", "growing.jsonl");
            el.setAttribute("refresh", "1");
            el.setAttribute("now", "2025-01-02T00:00:00Z");
            document.body.append(el);
            return true;"#;
        page.js(add, vec![]).await?;
        let total = r#"const el = document.getElementById("growing");
            const total = el.shadowRoot && el.shadowRoot.querySelector('[part~="total"]');
            const value = total && Number(total.getAttribute("data-value"));
            return value >= 200 && el.getAttribute("data-status") === "ready" ? value : null;"#;
        page.wait_for("a reload to show the second donation", 6, total, vec![]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn level_eleven_reads_max_level() -> Result<()> {
    // $400.00 at level 1 passes every goal (default rules, no members: $370.00 in all).
    let log = "{\"seq\":1,\"ts\":\"2025-01-01T00:00:00Z\",\"type\":\"DonationAdded\",\"mech_id\":\"main\",\"payload\":{\"units\":40000}}\n";
    let routes = Router::new().route("/max.jsonl", get(move || async move { log }));
    with_page(routes, async |page| {
        page.goto("index.html?src=max.jsonl&now=2025-01-01T01:00:00Z").await?;
        let widget = page.wait_for("the widget", 10, READ_ELEMENT, vec![json!("mechfund-progress")]).await?;
        check_eq("data-status", widget["status"].as_str().unwrap_or_default(), "ready")?;
        check_eq("level data-value", attr(&widget["level"], "data-value"), "11")?;
        let evo = &widget["evo"];
        check_eq("evolution role", attr(evo, "role"), "progressbar")?;
        check_eq("evolution aria-valuetext", attr(evo, "aria-valuetext"), "Max level")?;
        check_eq("evolution aria-valuenow", attr(evo, "aria-valuenow"), "100")?;
        check_eq("evolution aria-valuemax", attr(evo, "aria-valuemax"), "100")?;
        let shown = evo["text"].as_str().unwrap_or_default();
        ensure!(shown.contains("Max level") && !shown.contains('$'), "the evolution bar at level 11 reads {shown:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn init_of_mechfund_wasm_js_alone_still_defines_the_element() -> Result<()> {
    // Pages written before the entry module import the wasm-bindgen module and call init().
    let html = format!(
        r#"<!doctype html><meta charset="utf-8">
<mechfund-progress id="plain" src="ddc-small.jsonl" now="{NOW_LIVE}"></mechfund-progress>
<script type="module">import init from "./pkg/mechfund_wasm.js"; await init();</script>"#
    );
    let cli = replay_cli(NOW_LIVE)?;
    let routes = Router::new().route("/plain.html", get(move || async move { axum::response::Html(html) }));
    with_page(routes, async |page| {
        page.goto("plain.html").await?;
        let widget = page.wait_for("the widget", 10, READ_ELEMENT, vec![json!("#plain")]).await?;
        check_widget(&widget, &cli)
    })
    .await
}
