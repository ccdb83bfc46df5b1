//! The page's side of the replay worker: started once with the page (`replay-worker.js`, a
//! same-origin module worker that loads the wasm-bindgen module the page loaded), then a log's
//! bytes are handed over by transferring their `ArrayBuffer` ([`Client::hold`]) and replayed
//! there as often as the page asks ([`Held::replay`]); the analysis comes back as one
//! transferred buffer, decoded here in slices. When the browser cannot start the worker, or it
//! fails, [`ready`] says `None` and the page replays on its own main thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{ArrayBuffer, Function, Promise, Uint8Array};
use mechfund_core::{Now, Rules};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::message::{field, object};
use super::wire::{Decoder, Malformed, rules_json};
use crate::analysis::Analysis;
use crate::browser;
use crate::replay_job::{PHASES, Progress, SLICE_MS};

/// The worker's script, beside `index.html` (a file, not a `blob:` URL a CSP may refuse).
const SCRIPT: &str = "replay-worker.js";

/// How long the worker may take to start before the page replays without it.
const START_MS: i32 = 15_000;

/// Rows decoded between clock reads.
const BATCH: usize = 4096;

const STOPPED: &str = "The replay worker stopped; load the log again.";

struct Job {
    id: u32,
    report: Rc<dyn Fn(Progress)>,
    resolve: Function,
}

/// The running worker.
pub struct Client {
    worker: Worker,
    /// Resolves to `true` once the worker is ready, `false` if it failed to start.
    ready: Promise,
    up: Cell<bool>,
    jobs: RefCell<Vec<Job>>,
    next: Cell<u32>,
}

thread_local! {
    static CLIENT: RefCell<Option<Rc<Client>>> = const { RefCell::new(None) };
}

/// Starts the worker, if the browser can (called once, before the app renders).
pub fn start() {
    CLIENT.set(Client::start());
}

/// The worker once it is ready, or `None` when there is none (no `Worker`, a failed start, or it
/// stopped): the caller replays on the page.
pub async fn ready() -> Option<Rc<Client>> {
    let client = CLIENT.with_borrow(Clone::clone)?;
    let started = JsFuture::from(client.ready.clone()).await.ok()?.as_bool() == Some(true);
    (started && client.up.get()).then_some(client)
}

/// A promise and its resolve function.
fn promise() -> Option<(Promise, Function)> {
    let mut resolve = None;
    let promise = Promise::new(&mut |yes, _| resolve = Some(yes));
    Some((promise, resolve?))
}

impl Client {
    fn start() -> Option<Rc<Client>> {
        // The wasm-bindgen module and the wasm this page loaded (Trunk preloads both, with
        // their hashed names), for the worker to load again.
        let document = web_sys::window()?.document()?;
        let href = |selector: &str| document.query_selector(selector).ok()?.map(|link| field(&link, "href"));
        let glue = href("link[rel=modulepreload]")?;
        let wasm = href("link[rel=preload][type='application/wasm']")?;
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(SCRIPT, &options).ok()?;
        let (ready, resolve_ready) = promise()?;
        let client =
            Rc::new(Client { worker, ready, up: Cell::new(true), jobs: RefCell::default(), next: Cell::new(0) });
        let on_message = {
            let (client, ready) = (Rc::clone(&client), resolve_ready.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| client.receive(&event.data(), &ready))
        };
        client.worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_error = {
            let client = Rc::clone(&client);
            let ready = resolve_ready.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| client.stop(&ready))
        };
        client.worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        client.worker.post_message(&object(&[("glue", glue), ("wasm", wasm)])).ok()?;
        // A worker that neither starts nor fails (a module load that never settles) must not
        // hold loads forever: after START_MS it counts as failed to start.
        let _ = web_sys::window()?.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve_ready, START_MS);
        Some(client)
    }

    fn receive(&self, data: &JsValue, ready: &Function) {
        if field(data, "ready").is_truthy() {
            let _ = ready.call1(&JsValue::NULL, &JsValue::TRUE);
            return;
        }
        if !field(data, "failed").is_undefined() {
            self.stop(ready);
            return;
        }
        let Some(job) = field(data, "job").as_f64().map(|n| n as u32) else { return };
        if let Some(phase) = field(data, "phase").as_string() {
            let report = self.jobs.borrow().iter().find(|j| j.id == job).map(|j| Rc::clone(&j.report));
            if let (Some(report), Some(phase)) = (report, PHASES.iter().find(|p| **p == phase)) {
                report(Progress { phase, fraction: field(data, "fraction").as_f64().unwrap_or(0.0) });
            }
            return;
        }
        let done = self.take(job);
        if let Some(done) = done {
            let _ = done.resolve.call1(&JsValue::NULL, data);
        }
    }

    /// The worker failed to start or died: every waiting job fails, later loads replay on the page.
    fn stop(&self, ready: &Function) {
        self.up.set(false);
        let _ = ready.call1(&JsValue::NULL, &JsValue::FALSE);
        let jobs: Vec<Job> = self.jobs.take();
        for job in jobs {
            let _ = job.resolve.call1(&JsValue::NULL, &object(&[("error", JsValue::from_str(STOPPED))]));
        }
    }

    fn take(&self, job: u32) -> Option<Job> {
        let mut jobs = self.jobs.borrow_mut();
        let at = jobs.iter().position(|j| j.id == job)?;
        Some(jobs.swap_remove(at))
    }

    fn next_id(&self) -> u32 {
        self.next.set(self.next.get() + 1);
        self.next.get()
    }

    /// Hands `bytes` (a view from the start of its buffer) to the worker by transferring the
    /// buffer: no copy, and the page no longer has them.
    #[must_use]
    pub fn hold(self: &Rc<Client>, bytes: &Uint8Array) -> Held {
        let log = self.next_id();
        let buffer = bytes.buffer();
        let message = object(&[
            ("log", JsValue::from(log)),
            ("buffer", buffer.clone().into()),
            ("length", bytes.length().into()),
        ]);
        let _ = self.worker.post_message_with_transfer(&message, &js_sys::Array::of1(&buffer));
        Held { log, client: Rc::clone(self) }
    }

    /// Posts a job (`fields` and the job's id, `transfer` moved rather than copied) and waits
    /// for its answer; `None` when it could not be posted.
    async fn ask(
        &self,
        mut fields: Vec<(&str, JsValue)>,
        transfer: Option<&JsValue>,
        report: &Rc<dyn Fn(Progress)>,
    ) -> Option<JsValue> {
        let job = self.next_id();
        let (answer, resolve) = promise()?;
        if !self.up.get() {
            return None;
        }
        self.jobs.borrow_mut().push(Job { id: job, report: Rc::clone(report), resolve });
        fields.push(("job", JsValue::from(job)));
        let message = object(&fields);
        let posted = match transfer {
            Some(value) => self.worker.post_message_with_transfer(&message, &js_sys::Array::of1(value)),
            None => self.worker.post_message(&message),
        };
        if posted.is_err() {
            self.take(job);
            return None;
        }
        JsFuture::from(answer).await.ok()
    }

    /// Has the worker fetch `url` (the page's address resolves it) and hold its body as a log,
    /// parsing its lines for `mech` as they arrive (the replay likely to follow). The worker reads
    /// the body itself: its chunks never pass through the page, and they keep arriving while the
    /// worker parses. `None` when the worker cannot be asked (the caller fetches here).
    ///
    /// # Errors
    /// The fetch or the body failed (`what` and `url` name it in the message).
    pub async fn fetch(
        self: &Rc<Client>,
        url: &str,
        what: &str,
        mech: &str,
        report: &Rc<dyn Fn(Progress)>,
    ) -> Option<Result<Held, String>> {
        let absolute = browser::absolute(url)?;
        let log = self.next_id();
        let fields = vec![
            ("log", JsValue::from(log)),
            ("fetch", JsValue::from_str(&absolute)),
            ("url", JsValue::from_str(url)),
            ("what", JsValue::from_str(what)),
            ("mech", JsValue::from_str(mech)),
        ];
        let answer = self.ask(fields, None, report).await?;
        // The page's resource timeline does not show the worker's requests: a mark does.
        browser::mark(&format!("mechfund worker fetched {absolute}"));
        Some(match field(&answer, "error").as_string() {
            Some(message) => Err(message),
            None => Ok(Held { log, client: Rc::clone(self) }),
        })
    }

    async fn replay(
        &self,
        fields: Vec<(&str, JsValue)>,
        rules: &Rules,
        now: Option<&Now>,
        report: Rc<dyn Fn(Progress)>,
    ) -> Result<Analysis, String> {
        let answer = self.ask(fields, None, &report).await.ok_or(STOPPED)?;
        let Ok(buffer) = field(&answer, "analysis").dyn_into::<ArrayBuffer>() else {
            return Err(field(&answer, "error").as_string().unwrap_or_else(|| STOPPED.to_owned()));
        };
        browser::mark("mechfund analysis received");
        let bytes = Uint8Array::new(&buffer).to_vec();
        decode(&bytes, rules, now, &*report).await.map_err(|Malformed| STOPPED.to_owned())
    }
}

/// Decodes the worker's answer, yielding to the page every [`SLICE_MS`].
async fn decode(
    bytes: &[u8],
    rules: &Rules,
    now: Option<&Now>,
    report: &dyn Fn(Progress),
) -> Result<Analysis, Malformed> {
    let mut decoder = Decoder::new(bytes)?;
    let mut started = browser::now_ms();
    while !decoder.rows(BATCH)? {
        if browser::now_ms() - started >= SLICE_MS {
            report(Progress { phase: "Summarising", fraction: 0.99 });
            browser::next_task().await;
            started = browser::now_ms();
        }
    }
    decoder.finish(rules, now)
}

/// A log the worker holds for the page; dropping it lets the worker free it.
pub struct Held {
    log: u32,
    client: Rc<Client>,
}

impl Held {
    /// Replays the log for `mech` in the worker and builds its analysis (display at `now`).
    /// `later`: the analysis may be the summary alone ([`Analysis::summary_only`]; ask for the
    /// rest with [`Held::whole`]), which the page can show sooner.
    ///
    /// # Errors
    /// The worker's message (strict replay's first bad line), or that it stopped.
    pub async fn replay(
        &self,
        mech: &str,
        rules: &Rules,
        now: Option<&Now>,
        later: bool,
        report: Rc<dyn Fn(Progress)>,
    ) -> Result<Analysis, String> {
        let fields = vec![
            ("log", JsValue::from(self.log)),
            ("mech", JsValue::from_str(mech)),
            ("rules", JsValue::from_str(&rules_json(rules))),
            ("later", JsValue::from_bool(later)),
        ];
        self.client.replay(fields, rules, now, report).await
    }

    /// The whole analysis of the summary [`Held::replay`] just gave ([`Analysis::summary_only`]),
    /// with the same `rules` and `now`.
    ///
    /// # Errors
    /// That the worker stopped or no longer has the summary's log.
    pub async fn whole(
        &self,
        rules: &Rules,
        now: Option<&Now>,
        report: Rc<dyn Fn(Progress)>,
    ) -> Result<Analysis, String> {
        let fields = vec![("log", JsValue::from(self.log)), ("whole", JsValue::TRUE)];
        self.client.replay(fields, rules, now, report).await
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.client.worker.post_message(&object(&[("forget", JsValue::from(self.log))]));
    }
}
