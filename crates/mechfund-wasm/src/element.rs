//! `<mechfund-progress>`: a progress widget for existing web pages (DESIGN §3 "Custom element").
//!
//! A tiny JS class shell (custom elements must be JS classes extending `HTMLElement`) forwards
//! `connectedCallback`, `disconnectedCallback` and `attributeChangedCallback` to Rust; everything
//! else — fetching, replay, DOM — is here, with web-sys. Text is only ever set with
//! `textContent`, so nothing from a log, a server or an attribute is interpreted as HTML.
//!
//! Sources: `src` (an events.jsonl, replayed here with the core's `replay_bytes`) or `api` (a
//! mechfund server: its state, then each commit's `state` message of `…/events/stream`, which
//! `EventSource` resumes after a restart, and a poll every `refresh` seconds, 30 by default). Without a `now` attribute the
//! power bar follows the browser clock, recomputed every second with the core's `display`.
//!
//! Host attribute `data-status` is `loading`, `ready` or `error`. `mechfund-ready` (detail: the
//! replay result, or the server's `{state, display}`) fires after every successful load, reloads
//! included; `mechfund-error` (detail: `{message}`) after every failed one. Parts carry
//! `data-value` (and bars `data-max`, `data-percent`) with exact numbers: cents, or the level.

use std::cell::RefCell;
use std::rc::Rc;

use mechfund_core::replay::{Diagnostic, DiagnosticKind};
use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::{Cents, Display, Now, ReplayOptions, Rules, State, display, replay_bytes};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    CustomEvent, CustomEventInit, Document, Element, HtmlElement, RequestCache, RequestInit, Response, ShadowRoot,
    ShadowRootInit, ShadowRootMode,
};

use crate::{rules_from, state_from, to_js};

/// The element's tag name.
pub const TAG: &str = "mechfund-progress";

/// The attributes whose changes reload the element.
const OBSERVED: [&str; 5] = ["src", "api", "mech", "refresh", "now"];

/// `api` polls this often unless `refresh` says otherwise.
const DEFAULT_API_REFRESH_SECS: u32 = 30;

/// The longest `refresh` (a day), so the interval fits `setInterval`.
const MAX_REFRESH_SECS: u32 = 86_400;

/// How often the live power bar is recomputed.
const TICK_MS: i32 = 1000;

#[wasm_bindgen(inline_js = r#"
export function defineElement(tag, observed, connected, disconnected, changed) {
  if (customElements.get(tag)) return;
  class MechfundProgress extends HTMLElement {
    static get observedAttributes() { return observed; }
    connectedCallback() { connected(this); }
    disconnectedCallback() { disconnected(this); }
    attributeChangedCallback(name, oldValue, newValue) { if (oldValue !== newValue) changed(this); }
  }
  customElements.define(tag, MechfundProgress);
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = defineElement, catch)]
    fn define_element(
        tag: &str,
        observed: &js_sys::Array,
        connected: &JsValue,
        disconnected: &JsValue,
        changed: &JsValue,
    ) -> Result<(), JsValue>;
}

/// Registers `<mechfund-progress>` unless it is already registered (or there is no window).
pub fn define() {
    if let Err(error) = try_define() {
        web_sys::console::error_2(&JsValue::from_str("<mechfund-progress> could not be defined:"), &error);
    }
}

fn try_define() -> Result<(), JsValue> {
    let Some(window) = web_sys::window() else {
        return Ok(()); // a worker: no DOM, nothing to define
    };
    if !window.custom_elements().get(TAG).is_undefined() {
        return Ok(());
    }
    let observed: js_sys::Array = OBSERVED.iter().map(|name| JsValue::from_str(name)).collect();
    // Defined once per page and never dropped: the class keeps calling them.
    let connected = Closure::<dyn FnMut(HtmlElement)>::new(on_connected).into_js_value();
    let disconnected = Closure::<dyn FnMut(HtmlElement)>::new(on_disconnected).into_js_value();
    let changed = Closure::<dyn FnMut(HtmlElement)>::new(on_changed).into_js_value();
    define_element(TAG, &observed, &connected, &disconnected, &changed)
}

thread_local! {
    /// The connected elements. Disconnecting removes (and drops) an element's instance, which
    /// clears its timers and makes its pending fetches land nowhere.
    static INSTANCES: RefCell<Vec<Rc<Instance>>> = const { RefCell::new(Vec::new()) };
}

fn find(host: &HtmlElement) -> Option<Rc<Instance>> {
    INSTANCES.with(|list| list.borrow().iter().find(|i| i.host == *host).cloned())
}

fn is_registered(instance: &Rc<Instance>) -> bool {
    INSTANCES.with(|list| list.borrow().iter().any(|i| Rc::ptr_eq(i, instance)))
}

fn on_connected(host: HtmlElement) {
    if let Some(instance) = find(&host) {
        instance.schedule_restart();
        return;
    }
    match Instance::new(&host) {
        Ok(instance) => {
            INSTANCES.with(|list| list.borrow_mut().push(Rc::clone(&instance)));
            instance.schedule_restart();
        }
        Err(error) => {
            web_sys::console::error_2(&JsValue::from_str("<mechfund-progress> could not be built:"), &error);
        }
    }
}

fn on_disconnected(host: HtmlElement) {
    let removed: Vec<Rc<Instance>> = INSTANCES.with(|list| {
        let mut list = list.borrow_mut();
        let (gone, kept) = std::mem::take(&mut *list).into_iter().partition(|i| i.host == host);
        *list = kept;
        gone
    });
    drop(removed); // outside the borrow: dropping clears the timers
}

fn on_changed(host: HtmlElement) {
    // Before the element is connected (the initial attributes of an upgrade) there is nothing
    // to reload: connecting reads every attribute.
    if let Some(instance) = find(&host) {
        instance.schedule_restart();
    }
}

/// What the attributes ask for.
#[derive(Clone, Debug)]
struct Config {
    source: Source,
    mech: String,
    /// Seconds between reloads.
    refresh: Option<u32>,
    /// A fixed time; `None` follows the browser clock.
    now: Option<Now>,
}

#[derive(Clone, Debug)]
enum Source {
    /// The URL of an events.jsonl.
    Log(String),
    /// The base URL of a mechfund server.
    Api(String),
}

fn attribute(host: &HtmlElement, name: &str) -> Option<String> {
    host.get_attribute(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl Config {
    fn read(host: &HtmlElement) -> Result<Config, String> {
        let source = match (attribute(host, "src"), attribute(host, "api")) {
            (Some(_), Some(_)) => {
                return Err("Both src and api are set: set src to the URL of an events.jsonl log, or api to the \
                            base URL of a mechfund server, not both."
                    .to_owned());
            }
            (Some(src), None) => Source::Log(src),
            (None, Some(api)) => Source::Api(api),
            (None, None) => {
                return Err("Nothing to show: set the src attribute to the URL of an events.jsonl log, or api to \
                            the base URL of a mechfund server."
                    .to_owned());
            }
        };
        let refresh = match attribute(host, "refresh") {
            None => None,
            // Whole seconds (parsing floats would cost the package ~10 KB).
            Some(text) => match text.parse::<u32>() {
                Ok(secs) if (1..=MAX_REFRESH_SECS).contains(&secs) => Some(secs),
                _ => {
                    return Err(format!(
                        "refresh=\"{text}\" is not a whole number of seconds from 1 to {MAX_REFRESH_SECS}: write \
                         e.g. refresh=\"30\", or remove it."
                    ));
                }
            },
        };
        let refresh = refresh.or(match source {
            Source::Api(_) => Some(DEFAULT_API_REFRESH_SECS),
            Source::Log(_) => None,
        });
        let now =
            match attribute(host, "now") {
                None => None,
                Some(text) => Some(Now::parse(&text).map_err(|e| {
                    format!("now=\"{text}\": {e}. Remove the now attribute to follow the browser clock.")
                })?),
            };
        let mech = attribute(host, "mech").unwrap_or_else(|| "main".to_owned());
        Ok(Config { source, mech, refresh, now })
    }
}

/// What a successful load produced, kept for the live clock and for reloads.
#[derive(Debug)]
struct Loaded {
    state: State,
    rules: Rules,
    /// Whether the power can be recomputed locally (the decay clock and the rules are known).
    live: bool,
    /// What is on screen, to skip renders that would change nothing.
    shown: Option<Display>,
}

/// A `setInterval` that is cleared when dropped.
struct Interval {
    id: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Interval {
    fn every(ms: i32, callback: Closure<dyn FnMut()>) -> Option<Interval> {
        let window = web_sys::window()?;
        let id = window
            .set_interval_with_callback_and_timeout_and_arguments_0(callback.as_ref().unchecked_ref(), ms)
            .ok()?;
        Some(Interval { id, _callback: callback })
    }
}

/// The server's event stream of the mech, for its `state` messages; closed when dropped.
/// `after_seq` past any seq: no log lines, only each commit's state. `EventSource` reconnects
/// by itself after a server restart.
struct Stream {
    source: web_sys::EventSource,
    _callback: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.source.close();
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            window.clear_interval_with_handle(self.id);
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Bumped by every restart; results of older loads are dropped.
    generation: u64,
    config: Option<Rc<Config>>,
    timers: Vec<Interval>,
    stream: Option<Stream>,
    loaded: Option<Loaded>,
    restart_pending: bool,
    in_flight: bool,
}

/// One connected element.
struct Instance {
    host: HtmlElement,
    view: View,
    inner: RefCell<Inner>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Loading,
    Ready,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Loading => "loading",
            Status::Ready => "ready",
            Status::Error => "error",
        }
    }
}

impl Instance {
    fn new(host: &HtmlElement) -> Result<Rc<Instance>, JsValue> {
        // The shadow root survives a disconnect; a reconnected element rebuilds its contents.
        let root = match host.shadow_root() {
            Some(root) => root,
            None => host.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?,
        };
        let document = host
            .owner_document()
            .or_else(|| web_sys::window().and_then(|w| w.document()))
            .ok_or_else(|| JsValue::from_str("no document"))?;
        let view = View::build(&document, &root)?;
        Ok(Rc::new(Instance { host: host.clone(), view, inner: RefCell::new(Inner::default()) }))
    }

    /// Restarts once, at the next microtask, however many attributes change in between.
    fn schedule_restart(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.restart_pending {
                return;
            }
            inner.restart_pending = true;
        }
        let weak = Rc::downgrade(self);
        spawn_local(async move {
            if let Some(instance) = weak.upgrade() {
                instance.inner.borrow_mut().restart_pending = false;
                if is_registered(&instance) {
                    instance.restart();
                }
            }
        });
    }

    /// Reads the attributes and starts loading from scratch.
    fn restart(self: &Rc<Self>) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            inner.timers.clear();
            inner.stream = None;
            inner.loaded = None;
            inner.config = None;
            inner.in_flight = false;
        }
        self.view.show_loading();
        self.set_status(Status::Loading);
        let config = match Config::read(&self.host) {
            Ok(config) => Rc::new(config),
            Err(message) => {
                self.fail(&message);
                return;
            }
        };
        let mut timers = Vec::new();
        if let Some(secs) = config.refresh {
            let weak = Rc::downgrade(self);
            let reload = Closure::<dyn FnMut()>::new(move || {
                if let Some(instance) = weak.upgrade() {
                    instance.load();
                }
            });
            timers.extend(Interval::every(interval_ms(secs), reload));
        }
        if config.now.is_none() {
            let weak = Rc::downgrade(self);
            let tick = Closure::<dyn FnMut()>::new(move || {
                if let Some(instance) = weak.upgrade() {
                    instance.tick();
                }
            });
            timers.extend(Interval::every(TICK_MS, tick));
        }
        let stream = match &config.source {
            Source::Api(base) => {
                let url = format!(
                    "{}/mechs/{}/events/stream?after_seq=9007199254740991",
                    api_base(base),
                    encode(&config.mech)
                );
                let weak = Rc::downgrade(self);
                let callback = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                    if let (Some(instance), Some(data)) = (weak.upgrade(), e.data().as_string()) {
                        instance.update(&data);
                    }
                });
                web_sys::EventSource::new(&url).ok().map(|source| {
                    let _ = source.add_event_listener_with_callback("state", callback.as_ref().unchecked_ref());
                    Stream { source, _callback: callback }
                })
            }
            Source::Log(_) => None,
        };
        {
            let mut inner = self.inner.borrow_mut();
            inner.config = Some(config);
            inner.timers = timers;
            inner.stream = stream;
        }
        self.load();
    }

    /// Starts a load unless one is already running.
    fn load(self: &Rc<Self>) {
        let (generation, config) = {
            let mut inner = self.inner.borrow_mut();
            let Some(config) = inner.config.clone() else { return };
            if inner.in_flight {
                return;
            }
            inner.in_flight = true;
            (inner.generation, config)
        };
        let weak = Rc::downgrade(self);
        spawn_local(async move {
            let outcome = match &config.source {
                Source::Log(url) => load_log(url, &config).await,
                Source::Api(base) => load_api(base, &config).await,
            };
            let Some(instance) = weak.upgrade() else { return };
            {
                let mut inner = instance.inner.borrow_mut();
                if inner.generation != generation || !is_registered(&instance) {
                    return;
                }
                inner.in_flight = false;
            }
            match outcome {
                Ok((loaded, detail)) => instance.ready(loaded, &detail, config.now.as_ref()),
                Err(message) => instance.fail(&message),
            }
        });
    }

    /// A `state` message of the stream (`{"state","display"}` after a commit): shown at once.
    /// With a fixed `now` the state is fetched for that time instead.
    fn update(self: &Rc<Self>, data: &str) {
        let fixed = self.inner.borrow().config.as_ref().is_some_and(|c| c.now.is_some());
        if fixed {
            self.load();
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let Some(loaded) = inner.loaded.as_mut() else { return };
        let Ok(response) = serde_json::from_str::<Value>(data) else { return };
        let Some(Ok(mut state)) = response.get("state").map(|s| state_from(s, &loaded.rules)) else { return };
        if !loaded.live {
            if let Some(power) = response.pointer("/display/power_now").and_then(Value::as_i64) {
                state.power_acc = power;
            }
            state.clock = None;
        }
        loaded.state = state;
        let shown = display_at(loaded, None);
        self.view.render(&loaded.state, &shown);
        loaded.shown = Some(shown);
    }

    fn ready(&self, mut loaded: Loaded, detail: &JsValue, now: Option<&Now>) {
        let shown = display_at(&loaded, now);
        self.view.render(&loaded.state, &shown);
        loaded.shown = Some(shown);
        self.inner.borrow_mut().loaded = Some(loaded);
        self.set_status(Status::Ready);
        self.dispatch("mechfund-ready", detail);
    }

    /// The live clock: recomputes the power at the browser's time.
    fn tick(&self) {
        let mut inner = self.inner.borrow_mut();
        let Some(loaded) = inner.loaded.as_mut() else { return };
        if !loaded.live {
            return;
        }
        let shown = display_at(loaded, None);
        if loaded.shown.as_ref().is_some_and(|old| old.power_now == shown.power_now && old.tier == shown.tier) {
            return;
        }
        self.view.render(&loaded.state, &shown);
        loaded.shown = Some(shown);
    }

    fn fail(&self, message: &str) {
        let stale = self.inner.borrow().loaded.is_some();
        self.view.show_error(message, stale);
        self.set_status(Status::Error);
        web_sys::console::warn_1(&JsValue::from_str(&format!("<mechfund-progress>: {message}")));
        let detail = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&detail, &JsValue::from_str("message"), &JsValue::from_str(message));
        self.dispatch("mechfund-error", &detail);
    }

    fn set_status(&self, status: Status) {
        set(&self.host, "data-status", status.as_str());
        set(&self.host, "aria-busy", if status == Status::Loading { "true" } else { "false" });
    }

    /// Dispatches a bubbling, composed `CustomEvent` (no borrow is held: listeners may change
    /// attributes or remove the element).
    fn dispatch(&self, name: &str, detail: &JsValue) {
        let init = CustomEventInit::new();
        init.set_bubbles(true);
        init.set_composed(true);
        init.set_detail(detail);
        if let Ok(event) = CustomEvent::new_with_event_init_dict(name, &init) {
            let _ = self.host.dispatch_event(&event);
        }
    }
}

fn interval_ms(secs: u32) -> i32 {
    i32::try_from(secs.min(MAX_REFRESH_SECS) * 1000).unwrap_or(i32::MAX)
}

#[allow(clippy::cast_possible_truncation, reason = "Date.now() is a whole number of milliseconds")]
fn browser_now() -> Now {
    Now::from_millis(js_sys::Date::now() as i64)
}

/// The display at the fixed `now`, or at the browser's time.
fn display_at(loaded: &Loaded, now: Option<&Now>) -> Display {
    match now {
        Some(now) => display(&loaded.state, &loaded.rules, Some(now)),
        None => display(&loaded.state, &loaded.rules, Some(&browser_now())),
    }
}

/// Fetches and replays an events.jsonl.
async fn load_log(url: &str, config: &Config) -> Result<(Loaded, JsValue), String> {
    let hint = "Check the src attribute: it should be the URL of an events.jsonl log.";
    let (text, absolute) = fetch_text(url, "the event log", hint).await?;
    let rules = Rules::default();
    let now = config.now.clone().unwrap_or_else(browser_now);
    let options = ReplayOptions { mech: config.mech.clone(), now: Some(now), ..ReplayOptions::default() };
    // Lenient replay never stops; bad lines become diagnostics.
    let result = replay_bytes(text.as_bytes(), &rules, options).map_err(|e| e.to_string())?;
    if result.diagnostics.iter().any(|d| d.kind == DiagnosticKind::NoEvents) {
        return Err(no_events_message(&result.diagnostics, &config.mech, &absolute, &text));
    }
    let detail = to_js(&result).map_err(|e| describe(&e))?;
    Ok((Loaded { state: result.state, rules, live: true, shown: None }, detail))
}

/// Why a log gave nothing to show, and what to do about it.
fn no_events_message(diagnostics: &[Diagnostic], mech: &str, url: &str, text: &str) -> String {
    let bad: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.kind == DiagnosticKind::BadLine).collect();
    match bad.first() {
        Some(first) => {
            let line = first.line.map_or_else(String::new, |n| format!(" {n}"));
            let count = match bad.len() {
                1 => String::new(),
                n => format!(" ({n} bad lines in all)"),
            };
            format!(
                "Cannot replay {url}: no events for mech \"{mech}\"; line{line} is not a valid event: {}{count}. \
                 Check that src points to an events.jsonl log (one JSON event per line).",
                first.message
            )
        }
        None if text.trim().is_empty() => format!("No events for mech \"{mech}\": the log {url} is empty."),
        None => {
            format!("No events for mech \"{mech}\" in {url}: the log holds other mechs only. Check the mech attribute.")
        }
    }
}

/// The API base with `/api/v1`, appended unless it is already there.
fn api_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v1") { base.to_owned() } else { format!("{base}/api/v1") }
}

fn encode(text: &str) -> String {
    String::from(js_sys::encode_uri_component(text))
}

/// Polls `{api}/api/v1/mechs/{mech}/state` (and the rules, for the live power bar).
async fn load_api(base: &str, config: &Config) -> Result<(Loaded, JsValue), String> {
    let base = api_base(base);
    let mut url = format!("{base}/mechs/{}/state", encode(&config.mech));
    if let Some(now) = &config.now {
        url.push_str(&format!("?now={}", encode(&now.text)));
    }
    let hint = "Check the api attribute (the mechfund server's base URL) and the mech attribute (an unknown mech \
                is a 404).";
    let (text, absolute) = fetch_text(&url, "the mech's state", hint).await?;
    let response: Value = serde_json::from_str(&text).map_err(|e| {
        format!("{absolute} did not return JSON ({e}). Check that the api attribute points to a mechfund server.")
    })?;
    let state_json = response.get("state").ok_or_else(|| {
        format!(
            "{absolute} returned JSON without a \"state\". Check that the api attribute points to a mechfund server."
        )
    })?;
    // Without a fixed `now`, the rules in force let the power decay live between polls; if they
    // cannot be had, the server's power is shown as it is until the next poll.
    let rules = match config.now {
        Some(_) => None,
        None => fetch_rules(&base).await,
    };
    let live = rules.is_some();
    let rules = rules.unwrap_or_default();
    let mut state = state_from(state_json, &rules)
        .map_err(|e| format!("{absolute} returned a state this widget cannot read: {}", describe(&e)))?;
    if !live {
        // Shown as the server computed it: no clock, so `display` keeps this power.
        if let Some(power) = response.pointer("/display/power_now").and_then(Value::as_i64) {
            state.power_acc = power;
        }
        state.clock = None;
    }
    let detail = to_js(&response).map_err(|e| describe(&e))?;
    Ok((Loaded { state, rules, live, shown: None }, detail))
}

async fn fetch_rules(base: &str) -> Option<Rules> {
    let (text, _) = fetch_text(&format!("{base}/rules"), "the rules", "").await.ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    rules_from(Some(&value)).ok()
}

/// A URL as the browser resolves it against the page, for messages.
fn absolute_url(url: &str) -> String {
    let base = web_sys::window().and_then(|w| w.document()).and_then(|d| d.base_uri().ok().flatten());
    base.and_then(|base| web_sys::Url::new_with_base(url, &base).ok()).map_or_else(|| url.to_owned(), |u| u.href())
}

/// The message of a JS error value.
fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

/// GETs `url` as text (revalidating any cached copy); returns the text and the absolute URL.
async fn fetch_text(url: &str, what: &str, hint: &str) -> Result<(String, String), String> {
    let absolute = absolute_url(url);
    let window = web_sys::window().ok_or_else(|| format!("Cannot load {what}: no browser window."))?;
    let init = RequestInit::new();
    init.set_cache(RequestCache::NoCache);
    let response = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await.map_err(|e| {
        format!(
            "Could not fetch {what} from {absolute}: {}. Check the URL, that the server is up, and that it allows \
             requests from this page (CORS).",
            describe(&e)
        )
    })?;
    let response: Response =
        response.dyn_into().map_err(|_| format!("Could not fetch {what} from {absolute}: no response."))?;
    if !response.ok() {
        let status = response.status();
        let reason = response.status_text();
        let reason = if reason.is_empty() { String::new() } else { format!(" {reason}") };
        return Err(format!("Could not load {what}: HTTP {status}{reason} for {absolute}. {hint}")
            .trim_end()
            .to_owned());
    }
    let body = response.text().map_err(|e| format!("Could not read {what} from {absolute}: {}", describe(&e)))?;
    let body =
        JsFuture::from(body).await.map_err(|e| format!("Could not read {what} from {absolute}: {}", describe(&e)))?;
    let text = body.as_string().ok_or_else(|| format!("Could not read {what} from {absolute}: not text."))?;
    Ok((text, absolute))
}

/// Sets an attribute; the names are constants, so this cannot fail.
fn set(element: &Element, name: &str, value: &str) {
    let _ = element.set_attribute(name, value);
}

fn create(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        set(&element, "class", class);
    }
    Ok(element)
}

fn text(element: &Element, text: &str) {
    element.set_text_content(Some(text));
}

fn set_hidden(element: &Element, hidden: bool) {
    if hidden {
        set(element, "hidden", "");
    } else {
        let _ = element.remove_attribute("hidden");
    }
}

/// A labelled `role=progressbar` with a fill.
struct Bar {
    root: Element,
    value: Element,
    fill: HtmlElement,
}

impl Bar {
    fn build(document: &Document, part: &str, class: &str, label: &str) -> Result<Bar, JsValue> {
        let root = create(document, "div", &format!("bar {class}"))?;
        set(&root, "part", part);
        set(&root, "role", "progressbar");
        set(&root, "aria-label", label);
        set(&root, "aria-valuemin", "0");
        let caption = create(document, "div", "caption")?;
        let name = create(document, "span", "name")?;
        text(&name, label);
        let value = create(document, "span", "value")?;
        caption.append_child(&name)?;
        caption.append_child(&value)?;
        let track = create(document, "div", "track")?;
        let fill: HtmlElement = create(document, "div", "fill")?.dyn_into()?;
        set(&fill, "part", &format!("{part}-fill"));
        track.append_child(&fill)?;
        root.append_child(&caption)?;
        root.append_child(&track)?;
        Ok(Bar { root, value, fill })
    }

    /// `now`/`max` (aria and `data-` attributes, cents), `label` (visible and `aria-valuetext`).
    fn show(&self, now: i64, max: i64, label: &str, percent: i64) {
        set(&self.root, "aria-valuemax", &max.to_string());
        set(&self.root, "aria-valuenow", &now.clamp(0, max).to_string());
        set(&self.root, "aria-valuetext", label);
        set(&self.root, "data-percent", &percent.to_string());
        text(&self.value, label);
        let _ = self.fill.style().set_property("width", &format!("{}%", percent.clamp(0, 100)));
    }

    fn clear(&self) {
        for name in ["aria-valuemax", "aria-valuenow", "aria-valuetext", "data-value", "data-max", "data-percent"] {
            let _ = self.root.remove_attribute(name);
        }
        text(&self.value, "");
        let _ = self.fill.style().set_property("width", "0%");
    }
}

/// The shadow DOM.
struct View {
    content: Element,
    /// `part=level`: "Level 3 · Medium Community", as two spans.
    level: Element,
    level_number: Element,
    tier: Element,
    evo: Bar,
    power: Bar,
    total: Element,
    error: Element,
}

impl View {
    fn build(document: &Document, root: &ShadowRoot) -> Result<View, JsValue> {
        root.set_text_content(None);
        let style = create(document, "style", "")?;
        text(&style, STYLE);
        let card = create(document, "div", "card")?;
        set(&card, "part", "card");
        let content = create(document, "div", "content")?;
        let level = create(document, "div", "level")?;
        set(&level, "part", "level");
        let level_number = create(document, "span", "number")?;
        let tier = create(document, "span", "tier")?;
        level.append_child(&level_number)?;
        level.append_child(&tier)?;
        let evo = Bar::build(document, "evo-bar", "evo", "Evolution")?;
        let power = Bar::build(document, "power-bar", "power", "Power")?;
        let total = create(document, "div", "total")?;
        set(&total, "part", "total");
        let error = create(document, "div", "error")?;
        set(&error, "part", "error");
        set(&error, "role", "alert");
        set_hidden(&error, true);
        for child in [&level, &evo.root, &power.root, &total] {
            content.append_child(child)?;
        }
        card.append_child(&content)?;
        card.append_child(&error)?;
        root.append_child(&style)?;
        root.append_child(&card)?;
        Ok(View { content, level, level_number, tier, evo, power, total, error })
    }

    fn show_loading(&self) {
        set_hidden(&self.content, false);
        set_hidden(&self.error, true);
        text(&self.error, "");
        text(&self.level_number, "Loading…");
        text(&self.tier, "");
        let _ = self.level.remove_attribute("data-value");
        self.evo.clear();
        self.power.clear();
        text(&self.total, "");
        let _ = self.total.remove_attribute("data-value");
    }

    /// Shows `message`; keeps the last data visible (`stale`) when a reload failed.
    fn show_error(&self, message: &str, stale: bool) {
        text(&self.error, message);
        set_hidden(&self.error, false);
        set_hidden(&self.content, !stale);
    }

    fn render(&self, state: &State, shown: &Display) {
        set_hidden(&self.content, false);
        set_hidden(&self.error, true);
        text(&self.error, "");
        let max_level = state.level >= MAX_LEVEL;
        let level = if max_level { format!("Level {} (max)", state.level) } else { format!("Level {}", state.level) };
        text(&self.level_number, &level);
        text(&self.tier, &format!(" · {}", shown.tier));
        set(&self.level, "data-value", &state.level.to_string());
        set(&self.level, "data-tier", shown.tier);

        if max_level {
            // No goal at the top: the bar is full (aria in percent, as there are no cents to reach).
            self.evo.show(100, 100, "Max level reached", 100);
        } else {
            let label = format!("{} / {}", Cents(state.evo_acc), Cents(state.goal_requirement));
            self.evo.show(state.evo_acc, state.goal_requirement, &label, shown.evo_percent);
        }
        set(&self.evo.root, "data-value", &state.evo_acc.to_string());
        set(&self.evo.root, "data-max", &state.goal_requirement.to_string());
        set(&self.evo.root, "data-max-level", if max_level { "true" } else { "false" });

        let label = format!("{} / {}", Cents(shown.power_now), Cents(shown.power_max));
        self.power.show(shown.power_now, shown.power_max, &label, shown.power_percent);
        set(&self.power.root, "data-value", &shown.power_now.to_string());
        set(&self.power.root, "data-max", &shown.power_max.to_string());
        set(&self.power.root, "data-offline", if shown.is_offline { "true" } else { "false" });

        text(&self.total, &format!("Total donated: {}", Cents(state.cumulative_donations_cents)));
        set(&self.total, "data-value", &state.cumulative_donations_cents.to_string());
    }
}

/// The element's styles: every colour, the font and the bar height come from the page's CSS
/// custom properties when it sets them.
const STYLE: &str = r#"
:host {
  display: block;
  --_accent: var(--mechfund-accent, #5865f2);
  --_bg: var(--mechfund-bg, #ffffff);
  --_fg: var(--mechfund-fg, #1f2328);
  --_font: var(--mechfund-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  --_bar: var(--mechfund-bar-height, 0.75rem);
  --_error: #b42318;
  font-family: var(--_font);
  color: var(--_fg);
}
@media (prefers-color-scheme: dark) {
  :host {
    --_accent: var(--mechfund-accent, #8b93ff);
    --_bg: var(--mechfund-bg, #1e1f22);
    --_fg: var(--mechfund-fg, #e3e5e8);
    --_error: #ff8a80;
  }
}
:host([hidden]) { display: none; }
[hidden] { display: none !important; }
.card {
  box-sizing: border-box;
  background: var(--_bg);
  color: var(--_fg);
  border: 1px solid color-mix(in srgb, var(--_fg) 14%, transparent);
  border-radius: 0.75rem;
  padding: 1rem 1.25rem;
  line-height: 1.4;
}
.content { display: grid; gap: 0.8rem; transition: opacity 0.3s ease; }
:host([data-status="loading"]) .content { opacity: 0.6; }
.level { font-size: 1.15em; font-weight: 650; letter-spacing: 0.01em; }
.tier { font-weight: 500; opacity: 0.7; }
.caption { display: flex; justify-content: space-between; gap: 1rem; margin-bottom: 0.3rem; font-size: 0.9em; }
.name { font-weight: 600; }
.value { font-variant-numeric: tabular-nums; opacity: 0.85; }
.track {
  height: var(--_bar);
  border-radius: calc(var(--_bar) / 2);
  background: color-mix(in srgb, var(--_fg) 12%, transparent);
  overflow: hidden;
}
.fill {
  height: 100%;
  width: 0;
  border-radius: inherit;
  background: var(--_accent);
  transition: width 0.6s ease;
}
.power .fill { background: color-mix(in srgb, var(--_accent) 55%, #f5a524); }
.power[data-offline="true"] .value { color: var(--_error); }
.total { font-size: 0.9em; opacity: 0.8; font-variant-numeric: tabular-nums; }
.error {
  color: var(--_error);
  border: 1px solid color-mix(in srgb, var(--_error) 45%, transparent);
  background: color-mix(in srgb, var(--_error) 8%, transparent);
  border-radius: 0.5rem;
  padding: 0.6rem 0.8rem;
  font-size: 0.9em;
  overflow-wrap: anywhere;
}
.content:not([hidden]) + .error:not([hidden]) { margin-top: 0.8rem; }
@media (prefers-reduced-motion: reduce) {
  .fill, .content { transition: none; }
}
"#;
