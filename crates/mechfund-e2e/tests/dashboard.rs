//! The Yew dashboard (`dist/`, built by Trunk) in headless Chromium, checked against the
//! `mechfund` CLI on the same logs: every DOM test id of spec §3.6's contract, `?log=` loading, the
//! what-if goals, diagnostics with line numbers, user strings rendered as text, settings kept
//! across reloads, a 1M-event log loading without freezing the page, axe-core (light and dark),
//! 375 px, and the README's screenshot.
//!
//! Prerequisites (missing ones fail the tests with the command to run): `dist/`
//! (`cargo xtask dashboard`), `cargo build --release -p mechfund-server`, chromium and
//! chromedriver, `npm ci` (axe-core). The large generated logs are cached in
//! `<target dir>/bench-data/` (`cargo xtask test` makes them first with a release build).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::http::StatusCode;
use fantoccini::Locator;
use mechfund_core::Cents;
use mechfund_e2e::{Page, workspace_root};
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tower_http::services::ServeFile;

/// A 120-event log that ends at level 9 (the upload test).
const SMALL_LOG: &str = "tests/samples/ddc-small.jsonl";
/// Shortly after its last event: power partly decayed.
const SMALL_NOW: &str = "2025-05-30T12:00:00Z";
/// The bundled sample (Trunk copies it to `dist/samples/`).
const SAMPLE_LOG: &str = "tests/samples/ddc-mixed-1500.jsonl";
const SAMPLE_URL: &str = "samples/ddc-mixed-1500.jsonl";
/// A day after the sample's last event.
const SAMPLE_NOW: &str = "2029-03-14T03:00:00Z";

/// The performance tests take this for writing, every other test for reading: a second
/// Chromium replaying on the machine's two cores would distort the main-thread gaps measured.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Reads the text of every `[data-testid=ID]` of `arguments[0]`, or null while the level is
/// not shown (nothing loaded yet).
const READ_IDS: &str = r#"
if (!document.querySelector('[data-testid="level"]')) return null;
const out = {};
for (const id of arguments[0]) {
  const el = document.querySelector(`[data-testid="${id}"]`);
  out[id] = el ? el.textContent.trim() : null;
}
return out;"#;

/// Whether the level is shown (a log is loaded).
const LEVEL_SHOWN: &str = r#"return !!document.querySelector('[data-testid="level"]');"#;

/// Whether a replay is running (`replay-progress` present).
const LOADING: &str = r#"return !!document.querySelector('[data-testid="replay-progress"]');"#;
const LOADED: &str = r#"return !document.querySelector('[data-testid="replay-progress"]');"#;

/// "1,234": an integer with thousands separators, as the contract shows member counts.
fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn int(value: &Value) -> Result<i64> {
    value.as_i64().with_context(|| format!("not an integer: {value}"))
}

/// What each summary test id must show, from `mechfund replay --now` output. At level 11 (no
/// goal) the evolution is `evo-goal` "Max level" alone: there is no `evo-current`.
fn expected_summary(cli: &Value) -> Result<Vec<(&'static str, String)>> {
    let (state, display) = (&cli["state"], &cli["display"]);
    let level = int(&state["level"])?;
    let mut expected =
        vec![("level", level.to_string()), ("tier", display["tier"].as_str().context("display.tier")?.to_owned())];
    if level == 11 {
        expected.push(("evo-goal", "Max level".to_owned()));
    } else {
        expected.push(("evo-current", Cents(int(&state["evo_acc"])?).to_string()));
        expected.push(("evo-goal", Cents(int(&state["goal_requirement"])?).to_string()));
    }
    expected.extend([
        ("power-current", Cents(int(&display["power_now"])?).to_string()),
        ("total-donated", Cents(int(&state["cumulative_donations_cents"])?).to_string()),
        ("member-count", count(int(&state["last_user_count_sample"])?)),
        ("goal-member-count", count(int(&state["goal_member_count"])?)),
    ]);
    Ok(expected)
}

/// The `whatif-goal-1..10` texts `mechfund whatif --members N` implies.
fn expected_goals(members: i64) -> Result<Vec<(String, String)>> {
    let cli = mechfund_e2e::cli_json(&["whatif", "--members", &members.to_string()])?;
    let table = cli["table"].as_array().context("whatif table")?;
    ensure!(table.len() == 10, "whatif printed {} rows, expected 10", table.len());
    table
        .iter()
        .map(|row| Ok((format!("whatif-goal-{}", int(&row["level"])?), Cents(int(&row["goal"])?).to_string())))
        .collect()
}

/// Polls until every `[data-testid]` in `expected` shows its text (for up to `secs`); on a
/// timeout, lists the differences.
async fn wait_for_texts(page: &Page, what: &str, secs: u64, expected: &[(impl AsRef<str>, String)]) -> Result<()> {
    let ids: Vec<&str> = expected.iter().map(|(id, _)| id.as_ref()).collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let shown = page.js(READ_IDS, vec![json!(ids)]).await?;
        let loading = page.js(LOADING, vec![]).await? == true;
        let diffs: Vec<String> = expected
            .iter()
            .filter(|(id, want)| shown[id.as_ref()].as_str() != Some(want.as_str()))
            .map(|(id, want)| format!("  {}: the page shows {}, expected {want:?}", id.as_ref(), shown[id.as_ref()]))
            .collect();
        if !shown.is_null() && !loading && diffs.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let error = page
                .js("const e = document.querySelector('[role=alert]'); return e ? e.textContent : null;", vec![])
                .await?;
            if shown.is_null() {
                bail!("{what}: the level never appeared within {secs} s (error shown: {error})");
            }
            bail!("{what}: after {secs} s the page differs from the CLI:\n{}", diffs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the first-visit screen has settled: the quiet attempt at the server's log
/// (spec §3.6: a static server answers 404 and the page stays on the first-visit screen) is over.
/// A load started before it ended could be overtaken by it. The replay worker fetches the log,
/// so the page marks the request (`mechfund worker fetched URL`) instead of timing it.
const SETTLED: &str = r#"
const tried = [...performance.getEntriesByType('resource'), ...performance.getEntriesByType('mark')]
  .some((e) => e.name.endsWith('/api/v1/mechs/main/events.jsonl'));
return tried && !!document.querySelector('[data-testid="log-input"]')
  && !document.querySelector('[data-testid="replay-progress"]');"#;

/// Opens the page at `path` (no `?log=`) and waits until the first-visit screen has settled.
async fn open_idle(page: &Page, path: &str) -> Result<()> {
    page.goto(path).await?;
    page.wait_for("the first-visit screen", 20, SETTLED, vec![]).await?;
    Ok(())
}

/// Opens the page at `path` (which loads a log) and waits until the load is over.
async fn open_loaded(page: &Page, path: &str) -> Result<()> {
    page.goto(path).await?;
    page.wait_for("the level", 20, LEVEL_SHOWN, vec![]).await?;
    page.wait_for("the end of the load", 20, LOADED, vec![]).await?;
    Ok(())
}

/// Picks `file` in the `log-input` file picker.
async fn upload(page: &Page, file: &std::path::Path) -> Result<()> {
    let input = page.client.find(Locator::Css(r#"[data-testid="log-input"]"#)).await.context("the log-input")?;
    input.send_keys(&file.display().to_string()).await.context("picking the file")?;
    Ok(())
}

/// Sets the what-if member count as a user would: clear, type, then leave the field.
async fn set_members(page: &Page, members: i64) -> Result<()> {
    let input = page
        .client
        .find(Locator::Css(r#"[data-testid="whatif-members"]"#))
        .await
        .context("the whatif-members input")?;
    input.clear().await?;
    input.send_keys(&members.to_string()).await?;
    let fire = r#"const el = document.querySelector('[data-testid="whatif-members"]');
        el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true}));
        return el.value;"#;
    let value = page.js(fire, vec![]).await?;
    ensure!(
        value.as_str() == Some(members.to_string().as_str()),
        "whatif-members holds {value} after typing {members}"
    );
    Ok(())
}

/// A file in the system's temporary directory, unique to this process.
fn temp_file(name: &str, text: &str) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("mechfund-dashboard-{}-{name}", std::process::id()));
    std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    Ok(path)
}

/// Runs `body` on a fresh dashboard page (after `routes`) and always closes the session.
async fn with_page<F>(routes: Router, body: F) -> Result<()>
where
    F: AsyncFnOnce(&Page) -> Result<()>,
{
    let _shared = MACHINE.read().await;
    let page = Page::open_dashboard(routes).await?;
    let outcome = body(&page).await;
    page.close().await;
    outcome
}

#[tokio::test]
async fn uploaded_log_shows_what_the_cli_prints() -> Result<()> {
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SMALL_NOW, SMALL_LOG])?;
    let expected = expected_summary(&cli)?;
    ensure!(int(&cli["display"]["power_now"])? > 0, "the time should leave some power");
    with_page(Router::new(), async |page| {
        open_idle(page, &format!("index.html?now={SMALL_NOW}")).await?;
        upload(page, &workspace_root().join(SMALL_LOG)).await?;
        wait_for_texts(page, "uploaded log", 20, &expected).await
    })
    .await
}

#[tokio::test]
async fn log_parameter_loads_by_itself() -> Result<()> {
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SAMPLE_NOW, SAMPLE_LOG])?;
    let expected = expected_summary(&cli)?;
    with_page(Router::new(), async |page| {
        page.goto(&format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        wait_for_texts(page, "?log= sample", 20, &expected).await
    })
    .await
}

/// Where the page replayed its loads: the app's User Timing marks ("in the worker" or "on the
/// page"), in order.
const REPLAYED_WHERE: &str = r#"
return performance.getEntriesByType('mark').map((m) => m.name)
  .filter((n) => n.startsWith('mechfund replay ')).map((n) => n.slice('mechfund replay '.length));"#;

/// The sample replays in the worker, and the worker's result shows the same numbers as the CLI,
/// including after switching what-if and back (the analysis decoded from the worker is whole).
#[tokio::test]
async fn the_log_replays_in_a_worker() -> Result<()> {
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SAMPLE_NOW, SAMPLE_LOG])?;
    let expected = expected_summary(&cli)?;
    with_page(Router::new(), async |page| {
        open_loaded(page, &format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        wait_for_texts(page, "?log= sample in the worker", 20, &expected).await?;
        let replayed = page.js(REPLAYED_WHERE, vec![]).await?;
        ensure!(replayed == json!(["in the worker"]), "the sample should replay in the worker: {replayed}");
        Ok(())
    })
    .await
}

/// Without its worker (the script missing: a server that does not serve it, a CSP that forbids
/// it), the page replays the log itself, in slices, and shows the same numbers.
#[tokio::test]
async fn without_a_worker_the_page_replays_itself() -> Result<()> {
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SAMPLE_NOW, SAMPLE_LOG])?;
    let expected = expected_summary(&cli)?;
    let missing = Router::new().route("/replay-worker.js", axum::routing::get(|| async { StatusCode::NOT_FOUND }));
    with_page(missing, async |page| {
        open_loaded(page, &format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        wait_for_texts(page, "?log= sample without a worker", 20, &expected).await?;
        let replayed = page.js(REPLAYED_WHERE, vec![]).await?;
        ensure!(replayed == json!(["on the page"]), "the sample should replay on the page: {replayed}");
        Ok(())
    })
    .await
}

/// One donation past every goal at 0 members (37,000 in all): level 11 with $10.09 carried.
/// Shown a day later (decay 100 a day: $9.09 of power left).
const MAX_LEVEL_NOW: &str = "2025-02-02T00:00:00Z";
const MAX_LEVEL_LOG: &str = r#"{"seq":1,"ts":"2025-02-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":38009}}
"#;

#[tokio::test]
async fn level_11_reads_max_level() -> Result<()> {
    let file = temp_file("max-level.jsonl", MAX_LEVEL_LOG)?;
    let cli = mechfund_e2e::cli_json(&["replay", "--now", MAX_LEVEL_NOW, &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    let cli = cli?;
    ensure!(cli["state"]["level"] == 11 && cli["state"]["evo_acc"] == 1009, "the log should end at level 11: {cli}");
    let expected = expected_summary(&cli)?;
    let routes = Router::new().route("/max-level.jsonl", axum::routing::get(|| async { MAX_LEVEL_LOG }));
    with_page(routes, async |page| {
        page.goto(&format!("index.html?log=max-level.jsonl&now={MAX_LEVEL_NOW}")).await?;
        wait_for_texts(page, "a log at level 11", 20, &expected).await?;
        let meter = page
            .js(
                r#"const goal = document.querySelector('[data-testid="evo-goal"]');
                   return { current: !!document.querySelector('[data-testid="evo-current"]'),
                            meter: goal.closest('.meter').textContent };"#,
                vec![],
            )
            .await?;
        ensure!(meter["current"] == false, "no evo-current at level 11");
        let text = meter["meter"].as_str().unwrap_or_default();
        ensure!(!text.contains("$0.00") && !text.contains('%'), "the evolution meter reads {text:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn whatif_goals_follow_the_member_count() -> Result<()> {
    let cases = [(1234, expected_goals(1234)?), (87, expected_goals(87)?)];
    let preset = expected_goals(5000)?;
    ensure!(cases[0].1 != cases[1].1, "the two member counts should give different goals");
    with_page(Router::new(), async |page| {
        page.goto(&format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        page.wait_for("the level", 20, LEVEL_SHOWN, vec![]).await?;
        for (members, goals) in &cases {
            set_members(page, *members).await?;
            wait_for_texts(page, &format!("what-if for {members} members"), 10, goals).await?;
        }
        page.goto(&format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}&members=5000")).await?;
        wait_for_texts(page, "what-if preset by &members=5000", 20, &preset).await?;
        let value =
            page.js(r#"return document.querySelector('[data-testid="whatif-members"]').value;"#, vec![]).await?;
        ensure!(value == "5000", "&members=5000 should preset whatif-members, it holds {value}");
        Ok(())
    })
    .await
}

/// A log with one line of each problem after good lines: invalid JSON (line 2), a negative seq
/// (3), an unknown type (5), a deletion of a missing event (6).
const MALFORMED_LOG: &str = r#"{"seq":1,"ts":"2025-05-23T13:30:50Z","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":181}}
{not json
{"seq":-1,"ts":"2025-05-23T13:31:00Z","type":"DonationAdded","mech_id":"main","payload":{"donation_id":"a","idempotency_key":"b","units":56,"donor":"Discord:alice","channel_id":"1"}}
{"seq":2,"ts":"2025-05-23T13:32:00Z","type":"DonationAdded","mech_id":"main","payload":{"donation_id":"c","idempotency_key":"d","units":500,"donor":"Discord:bob","channel_id":"1"}}
{"seq":3,"ts":"2025-05-23T13:33:00Z","type":"MechRenamed","mech_id":"main","payload":{"name":"x"}}
{"seq":4,"ts":"2025-05-23T13:34:00Z","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":99,"donor":"Discord:x","units":1,"reason":"admin_deletion","original_type":"DonationAdded"}}
{"seq":5,"ts":"2025-05-23T13:35:00Z","type":"DonationAdded","mech_id":"main","payload":{"donation_id":"e","idempotency_key":"f","units":100,"donor":"Discord:carol","channel_id":"1"}}
"#;

#[tokio::test]
async fn malformed_log_lists_its_diagnostics() -> Result<()> {
    let file = temp_file("malformed.jsonl", MALFORMED_LOG)?;
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SMALL_NOW, &file.display().to_string()])?;
    let expected: Vec<Value> = cli["diagnostics"]
        .as_array()
        .context("diagnostics")?
        .iter()
        .map(|d| json!([d["line"].as_i64().map(|l| l.to_string()), d["kind"]]))
        .collect();
    let kinds: Vec<&Value> = expected.iter().map(|d| &d[1]).collect();
    ensure!(
        kinds == [&json!("bad_line"), &json!("bad_line"), &json!("unknown_type"), &json!("bad_delete_target")],
        "the CLI should report the four planted problems: {expected:?}"
    );
    // The panel renders a task after the progress (the dashboard renders a fresh load in steps).
    let read = r#"if (!document.querySelector('[data-testid="diagnostics"]')) return null;
        return [...document.querySelectorAll('[data-testid="diagnostic"]')]
          .map((d) => [d.getAttribute('data-line'), d.getAttribute('data-kind')]);"#;
    let outcome = with_page(Router::new(), async |page| {
        open_idle(page, &format!("index.html?now={SMALL_NOW}")).await?;
        upload(page, &file).await?;
        let shown = page.wait_for("the diagnostics", 20, read, vec![]).await?;
        ensure!(
            shown == json!(expected),
            "the diagnostics (line, kind) differ from the CLI's:\n page: {shown}\n cli:  {}",
            json!(expected)
        );
        let visible = r#"return [...document.querySelectorAll('[data-testid="diagnostic"]')]
            .every((d) => d.checkVisibility() && d.textContent.trim().length > 0);"#;
        ensure!(page.js(visible, vec![]).await? == true, "every diagnostic should be visible and say something");
        Ok(())
    })
    .await;
    let _ = std::fs::remove_file(&file);
    outcome
}

const XSS_DONOR: &str = "<img src=x onerror=alert(1)>";
const XSS_EVENT: &str = "<script>alert(2)</script>";

/// A log whose user strings are HTML: a donor, a system donation's name and description, and an
/// unknown event type (quoted in its diagnostic). Its numbers are large enough for thousands
/// separators ("12,345" members, "$2,..." donated).
fn xss_log() -> String {
    let donor = serde_json::to_string(XSS_DONOR).unwrap_or_default();
    let event = serde_json::to_string(XSS_EVENT).unwrap_or_default();
    format!(
        r#"{{"seq":1,"ts":"2025-05-23T13:30:50Z","type":"MemberCountUpdated","mech_id":"main","payload":{{"member_count":12345}}}}
{{"seq":2,"ts":"2025-05-23T13:35:00Z","type":"DonationAdded","mech_id":"main","payload":{{"donation_id":"e","idempotency_key":"f","units":250000,"donor":{donor},"channel_id":"1"}}}}
{{"seq":3,"ts":"2025-05-23T13:36:00Z","type":"SystemDonationAdded","mech_id":"main","payload":{{"idempotency_key":"g","power_units":50,"event_name":{event},"description":"<b onmouseover=alert(3)>bold</b>"}}}}
{{"seq":4,"ts":"2025-05-23T13:37:00Z","type":"<img src=y onerror=alert(4)>","mech_id":"main","payload":{{}}}}
{{"seq":5,"ts":"2025-05-23T13:38:00Z","type":"DonationAdded","mech_id":"main","payload":{{"donation_id":"h","idempotency_key":"i","units":100,"donor":"Discord:alice","channel_id":"1"}}}}
"#
    )
}

#[tokio::test]
async fn user_strings_render_as_text() -> Result<()> {
    let file = temp_file("xss.jsonl", &xss_log())?;
    let cli = mechfund_e2e::cli_json(&["replay", "--now", SMALL_NOW, &file.display().to_string()])?;
    let expected = expected_summary(&cli)?;
    let outcome = with_page(Router::new(), async |page| {
        open_idle(page, &format!("index.html?now={SMALL_NOW}")).await?;
        page.js(
            "window.__alerts = []; window.alert = (m) => { window.__alerts.push(String(m)); }; return true;",
            vec![],
        )
        .await?;
        upload(page, &file).await?;
        wait_for_texts(page, "the HTML-named log", 20, &expected).await?;
        // Give an injected handler (an <img onerror>) time to fire.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let check = r#"
            const injected = [...document.querySelectorAll('img, script, b')].filter((e) =>
              e.getAttribute('src') === 'x' || e.getAttribute('src') === 'y' || e.hasAttribute('onerror')
              || e.hasAttribute('onmouseover') || (e.tagName === 'SCRIPT' && e.textContent.includes('alert(')));
            const body = document.body;
            return { injected: injected.map((e) => e.outerHTML), alerts: window.__alerts,
                     donorShown: body.innerText.includes(arguments[0]),
                     eventInPage: body.textContent.includes(arguments[1]),
                     typeInPage: body.textContent.includes('<img src=y onerror=alert(4)>') };"#;
        let result = page.js(check, vec![json!(XSS_DONOR), json!(XSS_EVENT)]).await?;
        ensure!(result["injected"] == json!([]), "user strings became elements: {}", result["injected"]);
        ensure!(result["alerts"] == json!([]), "alert() ran: {}", result["alerts"]);
        if let Ok(text) = page.client.get_alert_text().await {
            bail!("a native alert is open: {text:?}");
        }
        ensure!(
            result["donorShown"] == true,
            "the donor {XSS_DONOR:?} should be shown literally (events or leaderboard)"
        );
        ensure!(result["eventInPage"] == true, "the event name {XSS_EVENT:?} should be in the page as text");
        ensure!(result["typeInPage"] == true, "the unknown type's diagnostic should quote it as text");
        Ok(())
    })
    .await;
    let _ = std::fs::remove_file(&file);
    outcome
}

#[tokio::test]
async fn settings_survive_a_reload() -> Result<()> {
    let goals = expected_goals(777)?;
    let rules = temp_file("rules.json", r#"{"freebie_members": 25}"#)?;
    let custom = mechfund_e2e::cli_json(&["whatif", "--members", "777", "--rules", &rules.display().to_string()]);
    let _ = std::fs::remove_file(&rules);
    let custom: Vec<(String, String)> = custom?["table"]
        .as_array()
        .context("whatif table")?
        .iter()
        .map(|row| Ok((format!("whatif-goal-{}", int(&row["level"])?), Cents(int(&row["goal"])?).to_string())))
        .collect::<Result<_>>()?;
    ensure!(custom != goals, "25 free members should change the goals");
    with_page(Router::new(), async |page| {
        let url = format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}");
        page.goto(&url).await?;
        page.wait_for("the level", 20, LEVEL_SHOWN, vec![]).await?;
        set_members(page, 777).await?;
        wait_for_texts(page, "what-if for 777 members", 10, &goals).await?;
        // The rules editor: 25 free members instead of 10.
        let freebie =
            page.client.find(Locator::Css("#rules-freebie")).await.context("the rules editor's free members")?;
        freebie.clear().await?;
        freebie.send_keys("25").await?;
        wait_for_texts(page, "what-if with 25 free members", 10, &custom).await?;
        page.goto(&url).await?; // a reload, without &members
        wait_for_texts(page, "what-if after a reload", 20, &custom).await?;
        let values = page
            .js(
                r#"return [document.querySelector('[data-testid="whatif-members"]').value,
                           document.getElementById('rules-freebie').value];"#,
                vec![],
            )
            .await?;
        ensure!(values == json!(["777", "25"]), "the member count and the rule should survive a reload: {values}");
        Ok(())
    })
    .await
}

/// Installs the recorder of the performance tests: every `requestAnimationFrame` timestamp,
/// whether `replay-progress` was ever visible, and when the level appeared (a
/// MutationObserver, so the time is exact however busy the page is).
const RECORDER: &str = r#"
const rec = window.__rec = { frames: [], progressSeen: false, submitAt: null, levelAt: null, longTasks: [],
                             phases: [] };
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) rec.longTasks.push([e.startTime, e.duration]);
  }).observe({ type: 'longtask', buffered: false });
} catch (e) { /* no Long Tasks API: the frames still tell */ }
const look = () => {
  const p = document.querySelector('[data-testid="replay-progress"]');
  if (rec.submitAt !== null && p && p.checkVisibility()) rec.progressSeen = true;
  // The phase of the load ("Reading", "Scanning", ...), when it changes: where time goes.
  const label = p && p.labels && p.labels[0] ? p.labels[0].textContent.split(' ')[0] : (p ? '?' : 'done');
  if (rec.submitAt !== null && (rec.phases.length === 0 || rec.phases[rec.phases.length - 1][1] !== label)) {
    rec.phases.push([performance.now(), label]);
  }
  if (rec.levelAt === null && rec.submitAt !== null && document.querySelector('[data-testid="level"]')) {
    rec.levelAt = performance.now();
  }
};
new MutationObserver(look).observe(document.body, { childList: true, subtree: true, attributes: true });
const frame = (t) => {
  rec.frames.push(t);
  look();
  if (rec.levelAt === null || rec.frames[rec.frames.length - 1] < rec.levelAt + 500) requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
return true;"#;

/// Loads `arguments[0]` through the URL form, noting the time.
const SUBMIT_URL: &str = r#"
const input = document.getElementById('log-url');
input.value = arguments[0];
window.__rec.submitAt = performance.now();
input.form.requestSubmit();
return true;"#;

/// The load time and the longest gap between frames from submit until the first frame after
/// the level appeared (that frame includes the final render), or null until then.
const MEASURE: &str = r#"
const rec = window.__rec;
if (rec.levelAt === null) return null;
const frames = rec.frames.filter((t) => t >= rec.submitAt);
const after = frames.findIndex((t) => t > rec.levelAt);
if (after < 0) return null;
const during = [rec.submitAt, ...frames.slice(0, after + 1)];
let maxGap = 0, at = 0;
for (let i = 1; i < during.length; i++) {
  const gap = during[i] - during[i - 1];
  if (gap > maxGap) { maxGap = gap; at = during[i - 1] - rec.submitAt; }
}
const longest = rec.longTasks.filter(([t]) => t >= rec.submitAt).sort((a, b) => b[1] - a[1]).slice(0, 5)
  .map(([t, d]) => `${Math.round(d)} ms at ${((t - rec.submitAt) / 1000).toFixed(2)} s`);
const phases = rec.phases.map(([t, l]) => `${l} ${((t - rec.submitAt) / 1000).toFixed(2)} s`);
// The app's own User Timing marks of the last second: what ran around a long task.
const marks = performance.getEntriesByType('mark').filter((m) => m.startTime >= rec.levelAt - 1000)
  .map((m) => `${m.name} ${((m.startTime - rec.submitAt) / 1000).toFixed(3)} s`);
return { marks, loadMs: rec.levelAt - rec.submitAt, maxGapMs: maxGap, gapAtMs: at, frames: during.length - 1,
         progressSeen: rec.progressSeen, longTasks: longest, phases };"#;

/// Serves `log` at `/big.jsonl`, loads it through the URL form with the recorder running, and
/// returns the measurement.
async fn timed_load(log: PathBuf, secs: u64) -> Result<Value> {
    let _exclusive = MACHINE.write().await;
    let routes = Router::new().route_service("/big.jsonl", ServeFile::new(log));
    let page = Page::open_dashboard(routes).await?;
    let outcome = async {
        open_idle(&page, &format!("index.html?now={SMALL_NOW}")).await?;
        page.js(RECORDER, vec![]).await?;
        page.js(SUBMIT_URL, vec![json!(format!("{}/big.jsonl", page.origin))]).await?;
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let measured = page.js(MEASURE, vec![]).await?;
            if !measured.is_null() {
                return Ok(measured);
            }
            if Instant::now() >= deadline {
                let error = page
                    .js("const e = document.querySelector('[role=alert]'); return e ? e.textContent : null;", vec![])
                    .await?;
                bail!("the level did not appear within {secs} s (error shown: {error})");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    .await;
    page.close().await;
    outcome
}

fn millis(measured: &Value, key: &str) -> f64 {
    measured[key].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test]
async fn million_event_log_keeps_the_page_responsive() -> Result<()> {
    let log = mechfund_e2e::generated_log(1_000_000, 1)?;
    let size = std::fs::metadata(&log)?.len();
    let mut misses = Vec::new();
    // A shared 2-core VM can stall any page for a moment: a second load (a fresh page) decides.
    for attempt in 1..=ATTEMPTS {
        let measured = timed_load(log.clone(), 180).await?;
        let (load, gap) = (millis(&measured, "loadMs"), millis(&measured, "maxGapMs"));
        println!(
            "dashboard 1M events ({:.0} MB), load {attempt}: level shown after {:.2} s; longest main-thread gap \
             {gap:.0} ms (at {:.2} s, {} frames); longest tasks: {}; phases: {}; last marks: {}",
            size as f64 / 1e6,
            load / 1000.0,
            millis(&measured, "gapAtMs") / 1000.0,
            measured["frames"],
            measured["longTasks"],
            measured["phases"],
            measured["marks"]
        );
        ensure!(measured["progressSeen"] == true, "replay-progress was never visible during the load");
        if load <= MILLION_LOAD_MS && gap <= MILLION_GAP_MS {
            return Ok(());
        }
        misses.push(format!("level after {:.2} s, gap {gap:.0} ms", load / 1000.0));
    }
    bail!(
        "no load showed the level within {:.1} s with no main-thread gap over {MILLION_GAP_MS:.0} ms: {misses:?}",
        MILLION_LOAD_MS / 1000.0
    )
}

/// Issue 16: the main thread never blocked (no gap between animation frames) for more than
/// 100 ms while a 1M-event log loads: the replay runs in a Web Worker.
const MILLION_GAP_MS: f64 = 100.0;
/// Issue 16: the same load shows the level (is interactive) within 2.5 s of submitting the URL.
/// The worker fetches the 225 MB body and parses it as it arrives (the body's arrival sets the
/// pace, ~1.5-2 s here), then folds the parsed lines and sends the summary; the rows and the
/// chart follow it (BENCHMARKS.md, "The dashboard in a Web Worker").
const MILLION_LOAD_MS: f64 = 2500.0;

/// Loads per timing test: the first that meets the budget passes it.
const ATTEMPTS: usize = 2;

#[tokio::test]
async fn ten_megabyte_log_appears_within_a_second() -> Result<()> {
    let log = mechfund_e2e::generated_log(44_000, 1)?;
    let size = std::fs::metadata(&log)?.len();
    let mut loads = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let measured = timed_load(log.clone(), 60).await?;
        let load = millis(&measured, "loadMs");
        println!(
            "dashboard 44k events ({:.1} MB), load {attempt}: level shown after {:.0} ms; longest main-thread gap \
             {:.0} ms; longest tasks: {}; last marks: {}",
            size as f64 / 1e6,
            load,
            millis(&measured, "maxGapMs"),
            measured["longTasks"],
            measured["marks"]
        );
        if load < 1000.0 {
            return Ok(());
        }
        loads.push(load);
    }
    bail!("a {:.1} MB log took {loads:.0?} ms to show in every load (issue: under a second)", size as f64 / 1e6)
}

/// Injects axe-core into the loaded page and fails on serious or critical violations
/// (printing all of them readably).
async fn check_axe(page: &Page, scheme: &str) -> Result<()> {
    let axe_path = workspace_root().join("node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&axe_path)
        .with_context(|| format!("{} is missing: run `npm ci` (or `cargo xtask setup`)", axe_path.display()))?;
    let dark = page.js("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]).await?;
    ensure!(dark == (scheme == "dark"), "the page should be in {scheme} mode (prefers dark: {dark})");
    page.js(&format!("{axe}\nreturn typeof axe;"), vec![]).await?;
    let run = r#"const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ['violations'] })
          .then((r) => done(r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary) }))))
          .catch((e) => done({ error: String(e) }));"#;
    let violations = page.client.execute_async(run, vec![]).await.context("running axe")?;
    ensure!(violations["error"].is_null(), "axe failed: {}", violations["error"]);
    let all = violations.as_array().context("axe violations")?;
    for v in all {
        println!("axe ({scheme}) {} ({}): {}", v["id"], v["impact"], v["help"]);
    }
    let bad: Vec<String> = all
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("    {}", n.as_str().unwrap_or("")))
                .collect();
            format!("  {} ({}): {}\n{}", v["id"].as_str().unwrap_or(""), v["impact"], v["help"], nodes.join("\n"))
        })
        .collect();
    ensure!(bad.is_empty(), "axe-core found serious or critical violations ({scheme} mode):\n{}", bad.join("\n"));
    Ok(())
}

#[tokio::test]
async fn no_serious_axe_violations() -> Result<()> {
    with_page(Router::new(), async |page| {
        open_loaded(page, &format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        check_axe(page, "light").await
    })
    .await
}

#[tokio::test]
async fn no_serious_axe_violations_in_dark_mode() -> Result<()> {
    let _shared = MACHINE.read().await;
    let page = Page::open_dashboard_with(Router::new(), &["--force-dark-mode"]).await?;
    let outcome = async {
        open_loaded(&page, &format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        check_axe(&page, "dark").await
    }
    .await;
    page.close().await;
    outcome
}

#[tokio::test]
async fn no_horizontal_scrolling_at_375_px() -> Result<()> {
    with_page(Router::new(), async |page| {
        page.client.set_window_size(375, 812).await?;
        open_loaded(page, &format!("index.html?log={SAMPLE_URL}&now={SAMPLE_NOW}")).await?;
        let widths = page
            .js(
                r#"const wide = [...document.querySelectorAll('body *')]
                     .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                     .slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
                   return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth, wide };"#,
                vec![],
            )
            .await?;
        let inner = widths["inner"].as_i64().unwrap_or(0);
        ensure!((360..=400).contains(&inner), "the viewport should be about 375 px wide, it is {inner}");
        ensure!(
            widths["scroll"].as_i64().unwrap_or(i64::MAX) <= inner,
            "the page scrolls sideways at {inner} px: scrollWidth {} (too wide: {})",
            widths["scroll"],
            widths["wide"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn screenshot_for_the_readme() -> Result<()> {
    // A log part-way through a level, so both bars and the what-if have something to show.
    let routes = Router::new().route_service("/ddc-small.jsonl", ServeFile::new(workspace_root().join(SMALL_LOG)));
    with_page(routes, async |page| {
        page.client.set_window_size(1280, 900).await?;
        open_loaded(page, &format!("index.html?log=ddc-small.jsonl&now={SMALL_NOW}")).await?;
        // Tall enough for the progress viewer, the chart and the start of the tables.
        let height = page.js("return document.documentElement.scrollHeight;", vec![]).await?;
        let height = u32::try_from(height.as_u64().unwrap_or(900).clamp(900, 1800)).unwrap_or(900);
        page.client.set_window_size(1280, height).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = page.client.screenshot().await?;
        ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let out = workspace_root().join("docs/dashboard-screenshot.png");
        std::fs::write(&out, &png).with_context(|| out.display().to_string())?;
        println!("wrote {} ({} KB)", out.display(), png.len() / 1024);
        Ok(())
    })
    .await
}
