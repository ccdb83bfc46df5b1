//! What the element's attributes ask for, and fetching it: an events.jsonl (`src`), a mechfund
//! server (`api`) or a DDC installation (`ddc`). Every failure is a [`Failure`]: the `code` of
//! spec §3.5's `mechfund-error` and a message saying what to fix.

use mechfund_core::ddc::{self, CONFIG_FILE, DECAY_FILE, EVENTS_FILE, EVOLUTION_MODE_FILE, RulesFiles, Snapshot};
use mechfund_core::replay::{Diagnostic, DiagnosticKind};
use mechfund_core::{Now, ReplayOptions, Rules, State, replay_bytes};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlElement;

use crate::{parse_json, rules_from, state_from, string_of, to_js};

/// `api` polls this often unless `refresh` says otherwise.
const DEFAULT_API_REFRESH_SECS: u32 = 30;

/// The longest `refresh` (a day), so the interval fits `setInterval`.
pub(super) const MAX_REFRESH_SECS: u32 = 86_400;

#[wasm_bindgen(module = "/js/element.js")]
extern "C" {
    /// GETs every `[url, what, need]` of `requests` at once (`need`: [`Need`]): resolves to their
    /// texts in order (`null` for a failure that does not count); rejects with `[code, message]`,
    /// telling an HTTP error, a request the page's CSP (`connect-src`) blocked, a CORS failure and
    /// a network error apart.
    #[wasm_bindgen(js_name = getTexts)]
    fn get_texts(requests: &js_sys::Array, hint: &str) -> js_sys::Promise;

    /// A URL as the browser resolves it against the page, for messages.
    #[wasm_bindgen(js_name = absoluteUrl)]
    fn absolute_url(url: &str) -> String;
}

/// `detail.code` of a `mechfund-error` (spec §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Code {
    /// The page's Content-Security-Policy blocked the WebAssembly or a request.
    Csp,
    /// The request failed (server down, wrong host, offline).
    Network,
    /// The server does not allow this page's origin to read its answer.
    Cors,
    /// An HTTP error status.
    Http,
    /// The answer is not what was expected: no events, not JSON, a malformed DDC file.
    Log,
    /// The element's attributes are wrong.
    Attribute,
}

impl Code {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Code::Csp => "csp",
            Code::Network => "network",
            Code::Cors => "cors",
            Code::Http => "http",
            Code::Log => "log",
            Code::Attribute => "attribute",
        }
    }

    fn from_js(code: &str) -> Code {
        match code {
            "csp" => Code::Csp,
            "cors" => Code::Cors,
            "http" => Code::Http,
            _ => Code::Network,
        }
    }
}

/// Why a load failed.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) code: Code,
    pub(super) message: String,
}

fn failure(code: Code, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

/// What the attributes ask for.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) source: Source,
    pub(super) mech: String,
    /// Seconds between reloads.
    pub(super) refresh: Option<u32>,
    /// A fixed time; `None` follows the browser clock.
    pub(super) now: Option<Now>,
}

#[derive(Clone, Debug)]
pub(super) enum Source {
    /// The URL of an events.jsonl.
    Log(String),
    /// The base URL of a mechfund server.
    Api(String),
    /// The base URL of a read-only copy of a DDC config dir.
    Ddc(String),
}

fn attribute(host: &HtmlElement, name: &str) -> Option<String> {
    host.get_attribute(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

const SOURCES: &str = "set src to the URL of an events.jsonl log, api to the base URL of a mechfund server, or ddc \
                       to the base URL of a copy of DDC's config dir";

impl Config {
    pub(super) fn read(host: &HtmlElement) -> Result<Config, Failure> {
        let sources =
            [("src", attribute(host, "src")), ("api", attribute(host, "api")), ("ddc", attribute(host, "ddc"))];
        let mut set = sources.into_iter().filter_map(|(name, value)| Some((name, value?)));
        let source = match (set.next(), set.next()) {
            (Some((name, value)), None) => match name {
                "src" => Source::Log(value),
                "api" => Source::Api(value),
                _ => Source::Ddc(value),
            },
            (Some((first, _)), Some((second, _))) => {
                return Err(failure(
                    Code::Attribute,
                    format!("Both {first} and {second} are set: {SOURCES}, only one of them."),
                ));
            }
            (None, _) => return Err(failure(Code::Attribute, format!("Nothing to show: {SOURCES}."))),
        };
        let refresh = match attribute(host, "refresh") {
            None => None,
            // Whole seconds (parsing floats would cost the package ~10 KB).
            Some(text) => match text.parse::<u32>() {
                Ok(secs) if (1..=MAX_REFRESH_SECS).contains(&secs) => Some(secs),
                _ => {
                    return Err(failure(
                        Code::Attribute,
                        format!(
                            "refresh=\"{text}\" is not a whole number of seconds from 1 to {MAX_REFRESH_SECS}: \
                             write e.g. refresh=\"30\", or remove it."
                        ),
                    ));
                }
            },
        };
        let refresh = refresh.or(match source {
            Source::Api(_) => Some(DEFAULT_API_REFRESH_SECS),
            Source::Log(_) | Source::Ddc(_) => None,
        });
        let now = match attribute(host, "now") {
            None => None,
            Some(text) => Some(Now::parse(&text).map_err(|e| {
                failure(
                    Code::Attribute,
                    format!("now=\"{text}\": {e}. Remove the now attribute to follow the browser clock."),
                )
            })?),
        };
        let mech = attribute(host, "mech").unwrap_or_else(|| "main".to_owned());
        Ok(Config { source, mech, refresh, now })
    }
}

/// What a successful load produced, kept for the live clock and for reloads.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) state: State,
    pub(super) rules: Rules,
    /// Whether the power can be recomputed locally (the decay clock and the rules are known).
    pub(super) live: bool,
    /// The `mechfund-ready` detail: the replay result, or the server's `{state, display}`.
    pub(super) detail: JsValue,
}

/// How a request's failure counts.
#[derive(Clone, Copy)]
enum Need {
    /// Any failure fails the load.
    Required = 0,
    /// A 404 is a missing file (`None`); other failures fail the load.
    Optional = 1,
    /// Any failure is `None`.
    BestEffort = 2,
}

/// A GET the load needs: the URL, what it is (for messages) and how its failure counts.
struct Request {
    url: String,
    what: String,
    need: Need,
}

fn request(url: String, what: &str, need: Need) -> Request {
    Request { url, what: what.to_owned(), need }
}

/// Loads what `config` asks for; `now` is the time replays are shown at.
///
/// Every request is sent at once and awaited once; what they return is then read in plain
/// functions (one await keeps the element's future small: the package's size budget).
pub(super) async fn load(config: &Config, now: Now) -> Result<Loaded, Failure> {
    let (requests, hint) = requests(config);
    let texts = get(&requests, hint).await?;
    let url = |i: usize| absolute_url(&requests[i].url);
    match &config.source {
        Source::Log(_) => finish_log(texts, &url(0), config, now),
        Source::Api(_) => finish_api(texts, &url(0)),
        Source::Ddc(base) => finish_ddc(texts, &requests, base, config, now),
    }
}

/// The requests of a load, and the hint ending an HTTP error's message.
fn requests(config: &Config) -> (Vec<Request>, &'static str) {
    match &config.source {
        Source::Log(url) => (
            vec![request(url.clone(), "the event log", Need::Required)],
            "Check the src attribute: it should be the URL of an events.jsonl log.",
        ),
        Source::Api(base) => {
            let base = api_base(base);
            let mut url = format!("{base}/mechs/{}/state", encode(&config.mech));
            if let Some(now) = &config.now {
                url.push_str(&format!("?now={}", encode(&now.text)));
            }
            let mut requests = vec![request(url, "the mech's state", Need::Required)];
            // Without a fixed `now`, the rules in force let the power decay live between polls;
            // if they cannot be had, the server's power is shown as it is until the next poll.
            if config.now.is_none() {
                requests.push(request(format!("{base}/rules"), "the rules", Need::BestEffort));
            }
            let hint = "Check the api attribute (the mechfund server's base URL) and the mech attribute (an \
                        unknown mech is a 404).";
            (requests, hint)
        }
        Source::Ddc(base) => {
            let base = ddc_base(base);
            let requests = ddc_files(&config.mech)
                .iter()
                .map(|file| request(format!("{base}{file}"), &format!("DDC's {file}"), Need::Optional))
                .collect();
            (requests, "Check the route that serves DDC's files to this page.")
        }
    }
}

/// Replays an events.jsonl.
fn finish_log(mut texts: Vec<Option<String>>, url: &str, config: &Config, now: Now) -> Result<Loaded, Failure> {
    let text = texts.swap_remove(0).unwrap_or_default();
    let rules = Rules::default();
    let options = ReplayOptions { mech: config.mech.clone(), now: Some(now), ..ReplayOptions::default() };
    let (state, detail) = replay(&text, &rules, options, url, &config.source)?;
    Ok(Loaded { state, rules, live: true, detail })
}

/// Replays a log (leniently: bad lines become diagnostics); no events of the mech is an error,
/// except an empty (or missing) DDC log: a fresh installation, shown at level 1 as DDC shows it.
fn replay(
    text: &str,
    rules: &Rules,
    options: ReplayOptions,
    url: &str,
    source: &Source,
) -> Result<(State, JsValue), Failure> {
    let mech = options.mech.clone();
    let result = replay_bytes(text.as_bytes(), rules, options).map_err(|e| failure(Code::Log, e.to_string()))?;
    let no_events = result.diagnostics.iter().any(|d| d.kind == DiagnosticKind::NoEvents);
    let fresh_ddc = matches!(source, Source::Ddc(_)) && text.trim().is_empty();
    if no_events && !fresh_ddc {
        return Err(failure(Code::Log, no_events_message(&result.diagnostics, &mech, url, text, source)));
    }
    let detail = to_js(&result).map_err(|e| failure(Code::Log, describe(&e)))?;
    Ok((result.state, detail))
}

/// Why a log gave nothing to show, and what to do about it.
fn no_events_message(diagnostics: &[Diagnostic], mech: &str, url: &str, text: &str, source: &Source) -> String {
    let bad: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.kind == DiagnosticKind::BadLine).collect();
    match bad.first() {
        Some(first) => {
            let line = first.line.map_or_else(String::new, |n| format!(" {n}"));
            let count = match bad.len() {
                1 => String::new(),
                n => format!(" ({n} bad lines in all)"),
            };
            let check = match source {
                Source::Ddc(_) => "Check that ddc points to a copy of DDC's config dir.",
                _ => "Check that src points to an events.jsonl log (one JSON event per line).",
            };
            format!(
                "Cannot replay {url}: no events for mech \"{mech}\"; line{line} is not a valid event: {}{count}. {check}",
                first.message
            )
        }
        None if text.trim().is_empty() => format!("No events for mech \"{mech}\": the log {url} is empty."),
        None => {
            format!("No events for mech \"{mech}\" in {url}: the log holds other mechs only. Check the mech attribute.")
        }
    }
}

/// `ddc`'s base URL, ending in a slash.
fn ddc_base(base: &str) -> String {
    format!("{}/", base.trim_end_matches('/'))
}

/// The files read from a DDC installation, in this order: the log, the three rules files, and
/// the mech's snapshot when the mech id is a plain file name (as the CLI).
fn ddc_files(mech: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::with_capacity(5);
    for file in [EVENTS_FILE, CONFIG_FILE, DECAY_FILE, EVOLUTION_MODE_FILE] {
        files.push(file.to_owned());
    }
    if !mech.contains(['/', '\\', '\0']) && mech != "." && mech != ".." {
        files.push(ddc::snapshot_file(&encode(mech)));
    }
    files
}

/// Replays a DDC installation read over HTTP (spec §2.8) as `mechfund replay --ddc` does from
/// disk: a missing file (404) is DDC's default, the rules come from its files, and DDC's
/// snapshot gives the current goal (an unusable snapshot is ignored, as DDC and the CLI do).
fn finish_ddc(
    texts: Vec<Option<String>>,
    requests: &[Request],
    base: &str,
    config: &Config,
    now: Now,
) -> Result<Loaded, Failure> {
    let base = absolute_url(&ddc_base(base));
    if texts.iter().all(Option::is_none) {
        return Err(failure(
            Code::Http,
            format!(
                "No DDC files at {base}: every file answered HTTP 404. Check the ddc attribute: it should be the \
                 base URL of a read-only copy of DDC's config dir (the folder holding {EVENTS_FILE})."
            ),
        ));
    }
    let text = |i: usize| texts.get(i).and_then(Option::as_deref);
    let files = RulesFiles { config: text(1), decay: text(2), evolution_mode: text(3) };
    let (rules, _) = ddc::rules(files)
        .map_err(|e| failure(Code::Log, format!("Cannot use DDC's {base}{}: {}.", e.file, e.message)))?;
    let snapshot = text(4).and_then(|json| {
        let file = requests.get(4).map_or("", |r| r.url.as_str());
        Snapshot::from_json(file, json)
            .map_err(|e| web_sys::console::warn_1(&format!("<mechfund-progress>: {e}; it is ignored").into()))
            .ok()
    });
    let options =
        ReplayOptions { mech: config.mech.clone(), now: Some(now), ddc_snapshot: snapshot, ..ReplayOptions::default() };
    let url = format!("{base}{EVENTS_FILE}");
    let (state, detail) = replay(text(0).unwrap_or_default(), &rules, options, &url, &config.source)?;
    Ok(Loaded { state, rules, live: true, detail })
}

/// The API base with `/api/v1`, appended unless it is already there.
pub(super) fn api_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v1") { base.to_owned() } else { format!("{base}/api/v1") }
}

pub(super) fn encode(text: &str) -> String {
    String::from(js_sys::encode_uri_component(text))
}

/// Reads a mechfund server's `{state, display}` (and its rules, for the live power bar).
fn finish_api(texts: Vec<Option<String>>, url: &str) -> Result<Loaded, Failure> {
    let not_mechfund = |what: String| {
        failure(Code::Log, format!("{url} {what}. Check that the api attribute points to a mechfund server."))
    };
    let text = |i: usize| texts.get(i).and_then(Option::as_deref);
    let response: Value =
        parse_json(text(0).unwrap_or_default()).map_err(|e| not_mechfund(format!("did not return JSON ({e})")))?;
    let state_json =
        response.get("state").ok_or_else(|| not_mechfund("returned JSON without a \"state\"".to_owned()))?;
    let rules = text(1).and_then(|text| rules_from(Some(&parse_json(text).ok()?)).ok());
    let live = rules.is_some();
    let rules = rules.unwrap_or_default();
    let mut state = state_from(state_json, &rules)
        .map_err(|e| failure(Code::Log, format!("{url} returned a state this widget cannot read: {}", describe(&e))))?;
    if !live {
        shown_as_served(&mut state, &response);
    }
    let detail = to_js(&response).map_err(|e| failure(Code::Log, describe(&e)))?;
    Ok(Loaded { state, rules, live, detail })
}

/// Keeps the server's power as it computed it: no clock, so `display` keeps this power.
pub(super) fn shown_as_served(state: &mut State, response: &Value) {
    // `get`, not `pointer`: its path parsing costs the package ~1 KB.
    if let Some(power) = response.get("display").and_then(|d| d.get("power_now")).and_then(Value::as_i64) {
        state.power_acc = power;
    }
    state.clock = None;
}

/// The message of a JS error value.
fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_default()
}

/// Sends every request at once: their texts in order (`None` where a failure does not count).
async fn get(requests: &[Request], hint: &str) -> Result<Vec<Option<String>>, Failure> {
    let list: js_sys::Array = requests
        .iter()
        .map(|r| {
            JsValue::from(js_sys::Array::of3(&(&r.url).into(), &(&r.what).into(), &f64::from(r.need as u8).into()))
        })
        .collect();
    match JsFuture::from(get_texts(&list, hint)).await {
        Ok(texts) => Ok(js_sys::Array::from(&texts).iter().map(|text| string_of(&text)).collect()),
        Err(error) => {
            let part = |i: u32| js_sys::Reflect::get_u32(&error, i).ok().and_then(|v| v.as_string());
            Err(match (part(0), part(1)) {
                (Some(code), Some(message)) => failure(Code::from_js(&code), message),
                _ => failure(Code::Network, describe(&error)),
            })
        }
    }
}
