//! The worker's side: the dashboard's wasm, started by `replay-worker.js` in a dedicated
//! worker, holds the logs the page transferred to it and replays them on request with the same
//! job as the page's fallback (`replay_job`), without pausing: nothing else runs here.
//!
//! Messages in: `{log, buffer, length}` (a log's bytes, transferred), `{job, log, stream,
//! length, fail}` (a response body to read as a log, transferred), `{forget: log}`, `{job, log,
//! mech, rules}` (a replay; rules as JSON). Out: `{ready: true}` once, then per job
//! `{job, phase, fraction}` while it runs and `{job, read: true}`, `{job, analysis}` (an
//! `ArrayBuffer` of [`wire::encode`], transferred) or `{job, error}`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use mechfund_core::{ReplayOptions, Rules};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DedicatedWorkerGlobalScope, MessageEvent, ReadableStream, ReadableStreamDefaultReader, ReadableStreamReadResult,
};

use super::message::{field, object};
use super::wire;
use crate::browser::{PageHost, describe};
use crate::replay_job::{self, Progress, SLICE_MS};

thread_local! {
    /// The logs the page holds here, with its ids (one or two: the log on screen and a newer one).
    static LOGS: RefCell<Vec<(u32, Rc<Vec<u8>>)>> = RefCell::default();
}

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
    if let Ok(stream) = field(data, "stream").dyn_into::<ReadableStream>() {
        let length = id(&field(data, "length"));
        let fail = field(data, "fail").as_string().unwrap_or_default();
        wasm_bindgen_futures::spawn_local(async move {
            match read(job, &stream, length).await {
                Ok(bytes) => {
                    LOGS.with_borrow_mut(|logs| logs.push((log, Rc::new(bytes))));
                    post(&answer("read", &JsValue::TRUE), None);
                }
                Err(error) => post(&answer("error", &JsValue::from_str(&format!("{fail}{}", describe(&error)))), None),
            }
        });
        return;
    }
    let bytes = LOGS.with_borrow(|logs| logs.iter().find(|(id, _)| *id == log).map(|(_, bytes)| Rc::clone(bytes)));
    let rules = Rules::from_json(&field(data, "rules").as_string().unwrap_or_default());
    let (Some(bytes), Ok(rules)) = (bytes, rules) else {
        post(&answer("error", &JsValue::from_str("the replay worker lost the log: load it again")), None);
        return;
    };
    let mech = field(data, "mech").as_string().unwrap_or_default();
    wasm_bindgen_futures::spawn_local(async move {
        let options = ReplayOptions { mech, timeline: true, ..ReplayOptions::default() };
        let mut host = PageHost { report: Rc::new(move |progress| report(job, progress)), yields: false };
        match replay_job::replay(&bytes, &rules, options, &mut host).await {
            Ok(analysis) => {
                let encoded = Uint8Array::from(&wire::encode(&analysis)[..]).buffer();
                post(&answer("analysis", &encoded), Some(&encoded));
            }
            Err(strict) => post(&answer("error", &JsValue::from_str(&strict.to_string())), None),
        }
    });
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

/// Reads a transferred response body into memory, chunk by chunk as it arrives.
async fn read(job: u32, stream: &ReadableStream, length: Option<u32>) -> Result<Vec<u8>, JsValue> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut out = Vec::with_capacity(length.unwrap_or(0) as usize);
    let mut reported = js_sys::Date::now();
    loop {
        let result: ReadableStreamReadResult = JsFuture::from(reader.read()).await?.unchecked_into();
        if result.get_done().unwrap_or(true) {
            return Ok(out);
        }
        let chunk: Uint8Array = result.get_value().unchecked_into();
        let at = out.len();
        out.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut out[at..]);
        if let Some(total) = length
            && js_sys::Date::now() - reported >= SLICE_MS
        {
            report(job, Progress { phase: "Reading", fraction: (out.len() as f64 / f64::from(total)).min(1.0) });
            reported = js_sys::Date::now();
        }
    }
}
