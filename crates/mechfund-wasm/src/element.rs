//! `<mechfund-progress>`: a progress widget for existing web pages (spec §3.5).
//!
//! Custom elements must be JS classes extending `HTMLElement`. The package's entry module
//! `mechfund-progress.js` defines that class at import, before the WebAssembly is instantiated,
//! and shows an error in every element when instantiation fails (a page CSP without
//! `'wasm-unsafe-eval'`, a missing `.wasm`); once the module runs, [`define`] hands it the Rust
//! callbacks. Without the entry module (`init()` of `mechfund_wasm.js` alone), [`define`]
//! defines a class of its own (`js/element.js`). Either way the class forwards
//! `connectedCallback`, `disconnectedCallback` and `attributeChangedCallback` here: this file
//! is the lifecycle, `load` the fetching, `view` the shadow DOM and `style.css` its styles.
//! Text is only ever set with `textContent`, so nothing from a log, a server or an attribute is
//! interpreted as HTML.
//!
//! Sources (exactly one): `src` (an events.jsonl, replayed here with the core's
//! `replay_bytes`), `api` (a mechfund server: its state, then each commit's `state` message of
//! `…/events/stream`, which `EventSource` resumes after a restart, and a poll every `refresh`
//! seconds, 30 by default) or `ddc` (the base URL of a read-only copy of a DDC config dir: its
//! `progress/events.jsonl`, `progress/snapshots/{mech}.json`, `progress/config.json`,
//! `mech/decay.json` and `evolution_mode.json`, a 404 meaning a missing file, replayed with
//! DDC's rules and snapshot as `mechfund replay --ddc` does). Without a `now` attribute the
//! power bar follows the browser clock, recomputed every second with the core's `display`.
//!
//! Host attribute `data-status` is `loading`, `ready` or `error`. `mechfund-ready` (detail: the
//! replay result, or the server's `{state, display}`) fires after every successful load, reloads
//! included; `mechfund-error` (detail: `{code, message}`, `code` one of `csp`, `network`,
//! `cors`, `http`, `log`, or `attribute` for attributes that cannot work) after every failed
//! one. Parts carry `data-value` (and bars `data-max`, `data-percent`) with exact numbers:
//! cents, or the level. At level 11 the evolution bar reads "Max level".
//!
//! Styling: the CSS custom properties `--mechfund-accent`, `--mechfund-bg`, `--mechfund-fg`,
//! `--mechfund-error`, `--mechfund-font`, `--mechfund-bar-height`, and the `part`s. The host
//! resets the text properties a page lets inherit (alignment, spacing, transform, white-space,
//! style, weight, direction), so a centred parent does not centre the card; the font size
//! still inherits.

mod load;
mod view;

use std::cell::RefCell;
use std::rc::Rc;

use mechfund_core::{Display, Now, display};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{CustomEvent, CustomEventInit, HtmlElement, ShadowRootInit, ShadowRootMode};

use crate::{parse_json, state_from};
use load::{Config, Failure, Loaded, MAX_REFRESH_SECS, Source, api_base, encode, shown_as_served};
use view::{View, set};

/// The element's tag name.
pub const TAG: &str = "mechfund-progress";

/// The attributes whose changes reload the element (`js/mechfund-progress.js` has the same list).
const OBSERVED: [&str; 6] = ["src", "api", "ddc", "mech", "refresh", "now"];

/// How often the live power bar is recomputed.
const TICK_MS: i32 = 1000;

#[wasm_bindgen(module = "/js/element.js")]
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

/// Gives `<mechfund-progress>` its implementation: hands it to the class the entry module
/// defined, or registers a class of its own unless another element has the name (or there is
/// no window).
pub fn define() {
    if let Err(error) = try_define() {
        web_sys::console::error_2(&JsValue::from_str("<mechfund-progress> could not be defined:"), &error);
    }
}

fn try_define() -> Result<(), JsValue> {
    if web_sys::window().is_none() {
        return Ok(()); // a worker: no DOM, nothing to define
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
    /// What is on screen, to skip renders that would change nothing.
    shown: Option<Display>,
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
            inner.shown = None;
            inner.config = None;
            inner.in_flight = false;
        }
        self.view.show_loading();
        self.set_status(Status::Loading);
        let config = match Config::read(&self.host) {
            Ok(config) => Rc::new(config),
            Err(failure) => {
                self.fail(&failure);
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
            Source::Log(_) | Source::Ddc(_) => None,
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
            let now = config.now.clone().unwrap_or_else(browser_now);
            let outcome = load::load(&config, now).await;
            let Some(instance) = weak.upgrade() else { return };
            {
                let mut inner = instance.inner.borrow_mut();
                if inner.generation != generation || !is_registered(&instance) {
                    return;
                }
                inner.in_flight = false;
            }
            match outcome {
                Ok(loaded) => instance.ready(loaded, config.now.as_ref()),
                Err(failure) => instance.fail(&failure),
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
        let inner = &mut *inner;
        let Some(loaded) = inner.loaded.as_mut() else { return };
        let Ok(response) = parse_json::<Value>(data) else { return };
        let Some(Ok(mut state)) = response.get("state").map(|s| state_from(s, &loaded.rules)) else { return };
        if !loaded.live {
            shown_as_served(&mut state, &response);
        }
        loaded.state = state;
        let shown = display_at(loaded, None);
        self.view.render(&loaded.state, &shown);
        inner.shown = Some(shown);
    }

    fn ready(&self, loaded: Loaded, now: Option<&Now>) {
        let shown = display_at(&loaded, now);
        self.view.render(&loaded.state, &shown);
        let detail = loaded.detail.clone();
        {
            let mut inner = self.inner.borrow_mut();
            inner.loaded = Some(loaded);
            inner.shown = Some(shown);
        }
        self.set_status(Status::Ready);
        self.dispatch("mechfund-ready", &detail);
    }

    /// The live clock: recomputes the power at the browser's time.
    fn tick(&self) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(loaded) = inner.loaded.as_ref().filter(|loaded| loaded.live) else { return };
        let shown = display_at(loaded, None);
        if inner.shown.as_ref().is_some_and(|old| old.power_now == shown.power_now && old.tier == shown.tier) {
            return;
        }
        self.view.render(&loaded.state, &shown);
        inner.shown = Some(shown);
    }

    fn fail(&self, failure: &Failure) {
        let message = failure.message.as_str();
        let stale = self.inner.borrow().loaded.is_some();
        self.view.show_error(message, stale);
        self.set_status(Status::Error);
        web_sys::console::warn_1(&JsValue::from_str(&format!("<mechfund-progress>: {message}")));
        let detail = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&detail, &JsValue::from_str("code"), &JsValue::from_str(failure.code.as_str()));
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
