//! The worker's side: the dashboard's wasm, started by `replay-worker.js` in a dedicated
//! worker, holds the logs the page transferred to it and replays them on request with the same
//! job as the page's fallback (`replay_job`), without pausing: nothing else runs here.
//!
//! Messages in: `{log, buffer, length}` (a log's bytes, transferred); `{job, log, fetch, url,
//! what, mech}` (a log to GET from the absolute URL `fetch`, named `url` and `what` in
//! messages; its lines are parsed for `mech` as the body arrives, so a replay of that mech that
//! follows need not parse them again); `{forget: log}`; `{job,
//! log, mech, rules, later}` (a replay; rules as JSON; `later`: of a log parsed as it arrived,
//! the answer may be the summary alone, marked `summary_only`); `{job, log, whole: true}` (the
//! whole analysis of that summary). Out: `{ready: true}` once, then per job
//! `{job, phase, fraction}` while it runs and `{job, read: true}`, `{job, analysis}` (an
//! `ArrayBuffer` of [`wire::encode`], transferred) or `{job, error}`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use mechfund_core::{ReplayOptions, Rules};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, ReadableStreamDefaultReader, ReadableStreamReadResult};

use super::message::{field, object};
use super::wire;
use crate::analysis::Analysis;
use crate::browser::{self, PageHost};
use crate::replay_job::{self, Parsed, Parts, Progress, SLICE_MS};

thread_local! {
    /// The logs the page holds here, with its ids (one or two: the log on screen and a newer one).
    static LOGS: RefCell<Vec<(u32, Rc<Vec<u8>>)>> = RefCell::default();
    /// The lines of the log read last, parsed as they arrived, until its first replay.
    static PARSED: RefCell<Option<(u32, Parsed)>> = const { RefCell::new(None) };
    /// The log whose summary went to the page, until the page asks for the whole analysis.
    static REST: RefCell<Option<Rest>> = const { RefCell::new(None) };
}

const LOST: &str = "the replay worker lost the log: load it again";

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &JsValue, transfer: Option<&JsValue>) {
    let _ = match transfer {
        Some(value) => scope().post_message_with_transfer(message, &js_sys::Array::of1(value)),
        None => scope().post_message(message),
    };
}

/// Answers the page's messages from now on.
pub fn serve() {
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| handle(&event.data()));
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    handler.forget();
    post(&object(&[("ready", JsValue::TRUE)]), None);
}

fn id(value: &JsValue) -> Option<u32> {
    value.as_f64().map(|n| n as u32)
}

fn handle(data: &JsValue) {
    if let Some(log) = id(&field(data, "forget")) {
        LOGS.with_borrow_mut(|logs| logs.retain(|(id, _)| *id != log));
        PARSED.with_borrow_mut(|parsed| parsed.take_if(|(id, _)| *id == log));
        REST.with_borrow_mut(|rest| rest.take_if(|rest| rest.log == log));
        return;
    }
    let Some(log) = id(&field(data, "log")) else { return };
    if let Some(buffer) = field(data, "buffer").dyn_ref::<ArrayBuffer>() {
        let length = id(&field(data, "length")).unwrap_or(0);
        let bytes = Uint8Array::new_with_byte_offset_and_length(buffer, 0, length).to_vec();
        LOGS.with_borrow_mut(|logs| logs.push((log, Rc::new(bytes))));
        return;
    }
    let Some(job) = id(&field(data, "job")) else { return };
    let answer = move |key: &str, value: &JsValue| object(&[("job", JsValue::from(job)), (key, value.clone())]);
    if let Some(url) = field(data, "fetch").as_string() {
        let text = |key| field(data, key).as_string().unwrap_or_default();
        let (shown, what, mech) = (text("url"), text("what"), text("mech"));
        wasm_bindgen_futures::spawn_local(async move {
            match fetch(job, &url, &shown, &what, &mech).await {
                Ok((bytes, parsed)) => {
                    LOGS.with_borrow_mut(|logs| logs.push((log, Rc::new(bytes))));
                    PARSED.set(Some((log, parsed)));
                    post(&answer("read", &JsValue::TRUE), None);
                }
                Err(message) => post(&answer("error", &JsValue::from_str(&message)), None),
            }
        });
        return;
    }
    let bytes = LOGS.with_borrow(|logs| logs.iter().find(|(id, _)| *id == log).map(|(_, bytes)| Rc::clone(bytes)));
    let Some(bytes) = bytes else {
        post(&answer("error", &JsValue::from_str(LOST)), None);
        return;
    };
    let whole = field(data, "whole").is_truthy();
    let rest = if whole { REST.with_borrow_mut(|rest| rest.take_if(|rest| rest.log == log)) } else { None };
    let (mech, rules, later) = match &rest {
        Some(rest) => (rest.options.mech.clone(), rest.rules.clone(), false),
        None => {
            let rules = match Rules::from_json(&field(data, "rules").as_string().unwrap_or_default()) {
                Ok(rules) => rules,
                Err(e) => {
                    let message = format!("the replay worker could not read the rules it was sent: {e}");
                    post(&answer("error", &JsValue::from_str(&message)), None);
                    return;
                }
            };
            (field(data, "mech").as_string().unwrap_or_default(), rules, field(data, "later").is_truthy())
        }
    };
    if whole && rest.is_none() {
        post(&answer("error", &JsValue::from_str(LOST)), None);
        return;
    }
    // The lines parsed while the log arrived serve its first replay, if it is of their mech
    // (and the whole analysis after a summary).
    let parsed = match rest {
        Some(rest) => Some(rest.parsed),
        None => PARSED
            .with_borrow_mut(|parsed| parsed.take_if(|(id, _)| *id == log))
            .map(|(_, parsed)| parsed)
            .filter(|parsed| parsed.mech() == mech),
    };
    REST.set(None);
    wasm_bindgen_futures::spawn_local(async move {
        let options = ReplayOptions { mech, timeline: true, ..ReplayOptions::default() };
        let mut host = PageHost { report: Rc::new(move |progress| report(job, progress)), yields: false };
        let replayed = match parsed {
            Some(parsed) => {
                // The summary first when the page can take the rest later: the level shows sooner.
                let parts = if later { Parts::Summary } else { Parts::Whole };
                let replayed =
                    replay_job::replay_parsed(&parsed, &bytes, &rules, options.clone(), parts, &mut host).await;
                if matches!(&replayed, Ok(summary) if summary.summary_only) {
                    REST.set(Some(Rest { log, parsed, rules, options }));
                }
                replayed
            }
            None => replay_job::replay(&bytes, &rules, options, &mut host).await,
        };
        match replayed {
            Ok(analysis) => post_analysis(job, &analysis),
            Err(strict) => post(&answer("error", &JsValue::from_str(&strict.to_string())), None),
        }
    });
}

/// A log whose summary went to the page: what its whole analysis needs, until the page asks.
struct Rest {
    log: u32,
    parsed: Parsed,
    rules: Rules,
    options: ReplayOptions,
}

/// Answers job `job` with `analysis` ([`wire::encode`], its buffer transferred).
fn post_analysis(job: u32, analysis: &Analysis) {
    let encoded = Uint8Array::from(&wire::encode(analysis)[..]).buffer();
    post(&object(&[("job", JsValue::from(job)), ("analysis", encoded.clone().into())]), Some(&encoded));
}

/// Tells the page how far job `job` got.
fn report(job: u32, progress: Progress) {
    let fields = [
        ("job", JsValue::from(job)),
        ("phase", JsValue::from_str(progress.phase)),
        ("fraction", JsValue::from(progress.fraction)),
    ];
    post(&object(&fields), None);
}

/// GETs `url` and reads its body chunk by chunk as it arrives, parsing its lines for `mech`
/// meanwhile; `shown` and `what` name it in messages.
async fn fetch(job: u32, url: &str, shown: &str, what: &str, mech: &str) -> Result<(Vec<u8>, Parsed), String> {
    let response = browser::fetch_as(url, shown, what).await?;
    let length = browser::content_length(&response);
    let bytes = Vec::with_capacity(length.unwrap_or(0) as usize);
    let mut reading = Reading { job, length, bytes, parsed: Parsed::new(mech), reported: js_sys::Date::now() };
    if let Some(body) = response.body() {
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        loop {
            let read = JsFuture::from(reader.read()).await.map_err(|e| browser::unreadable(what, shown, &e))?;
            let result: ReadableStreamReadResult = read.unchecked_into();
            if result.get_done().unwrap_or(true) {
                break;
            }
            reading.take(&result.get_value().unchecked_into());
        }
    }
    let Reading { bytes, mut parsed, .. } = reading;
    parsed.finish(&bytes);
    Ok((bytes, parsed))
}

/// A response body arriving, its lines parsed as they come.
struct Reading {
    job: u32,
    length: Option<u32>,
    bytes: Vec<u8>,
    parsed: Parsed,
    /// When progress was last reported.
    reported: f64,
}

impl Reading {
    fn take(&mut self, chunk: &Uint8Array) {
        let at = self.bytes.len();
        self.bytes.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut self.bytes[at..]);
        self.parsed.take(&self.bytes);
        if let Some(total) = self.length
            && js_sys::Date::now() - self.reported >= SLICE_MS
        {
            let fraction = (self.bytes.len() as f64 / f64::from(total)).min(1.0);
            report(self.job, Progress { phase: "Reading", fraction });
            self.reported = js_sys::Date::now();
        }
    }
}
