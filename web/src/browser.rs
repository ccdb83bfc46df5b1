//! The browser at the edge: the clock, yielding to the event loop, reading files and URLs into
//! memory in slices, downloads, focus and the page URL. Everything else in the app is plain Rust.

use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File, ReadableStreamDefaultReader, ReadableStreamReadResult, Response};

use crate::replay_job::{Host, Progress, SLICE_MS};

/// Bytes copied per slice when reading a file into wasm memory.
const READ_CHUNK: usize = 8 << 20;

/// Milliseconds since the page started (`performance.now()`), or the wall clock.
#[must_use]
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or_else(js_sys::Date::now, |p| p.now())
}

/// A User Timing mark (`performance.mark`), so a profile shows where a load spends its time.
pub fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// Resolves on the next macrotask, so the browser can render and handle input.
pub async fn next_task() {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The replay job's host, in the page or in the replay worker (one type, so the job is compiled
/// once): reports progress, then yields to the page if `yields` (a worker has no page to yield to).
pub struct PageHost {
    pub report: Rc<dyn Fn(Progress)>,
    pub yields: bool,
}

impl Host for PageHost {
    fn now_ms(&self) -> f64 {
        now_ms()
    }

    async fn pause(&mut self, progress: Progress) {
        (self.report)(progress);
        if self.yields {
            mark(&format!("mechfund {} {:.2}", progress.phase, progress.fraction));
            next_task().await;
        }
    }
}

/// The message of a JS error value.
#[must_use]
pub fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_else(|| "unknown error".to_owned())
}

/// Reads a picked or dropped file in slices into one JS array (outside wasm memory, so the
/// replay worker can take its buffer without a copy).
///
/// # Errors
/// The browser's reason the file cannot be read.
pub async fn read_file(file: &File, report: &mut impl FnMut(f64)) -> Result<Uint8Array, String> {
    let size = file.size();
    let out = Uint8Array::new_with_length(size as u32);
    let mut at = 0.0;
    while at < size {
        let end = (at + READ_CHUNK as f64).min(size);
        let blob: Blob = file.slice_with_f64_and_f64(at, end).map_err(|e| describe(&e))?;
        let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| describe(&e))?;
        out.set(&Uint8Array::new(&buffer), at as u32);
        at = end;
        report(at / size);
    }
    Ok(out)
}

/// Copies `bytes` into wasm memory in slices, yielding between them (the page's own replay).
pub async fn copy_in(bytes: &Uint8Array) -> Vec<u8> {
    let length = bytes.length() as usize;
    let mut out = vec![0; length];
    for start in (0..length).step_by(READ_CHUNK) {
        let end = (start + READ_CHUNK).min(length);
        bytes.subarray(start as u32, end as u32).copy_to(&mut out[start..end]);
        next_task().await;
    }
    out
}

/// GETs `url` as bytes.
///
/// # Errors
/// A message saying what failed and how to fix it.
pub async fn fetch_bytes(url: &str, what: &str, report: &mut impl FnMut(f64)) -> Result<Uint8Array, String> {
    let response = fetch(url, what).await?;
    read_body(&response, what, url, report).await
}

/// GETs `url`: the response, once its status says the body is the thing asked for.
///
/// # Errors
/// A message saying what failed and how to fix it.
pub async fn fetch(url: &str, what: &str) -> Result<Response, String> {
    fetch_as(url, url, what).await
}

/// GETs `url` from the page or from a worker (the replay worker reads a log itself), naming it
/// `shown` (the URL as the user gave it) in messages.
///
/// # Errors
/// A message saying what failed and how to fix it.
pub async fn fetch_as(url: &str, shown: &str, what: &str) -> Result<Response, String> {
    let fetching = match web_sys::window() {
        Some(window) => window.fetch_with_str(url),
        None => js_sys::global().unchecked_into::<web_sys::WorkerGlobalScope>().fetch_with_str(url),
    };
    let url = shown;
    let response = JsFuture::from(fetching).await.map_err(|e| {
        format!(
            "Could not fetch {what} from {url}: {}. Check the URL, that the server is up, and that it allows \
             requests from this page (CORS).",
            describe(&e)
        )
    })?;
    let response: Response = response.dyn_into().map_err(|_| format!("Could not fetch {what} from {url}."))?;
    if !response.ok() {
        return Err(format!(
            "Could not load {what}: HTTP {} {} for {url}. Check the URL.",
            response.status(),
            response.status_text()
        ));
    }
    Ok(response)
}

/// `url` resolved against the page's address, for a worker to fetch.
#[must_use]
pub fn absolute(url: &str) -> Option<String> {
    let base = web_sys::window()?.location().href().ok()?;
    Some(web_sys::Url::new_with_base(url, &base).ok()?.href())
}

/// The message for a body that failed to arrive.
#[must_use]
pub fn unreadable(what: &str, url: &str, error: &JsValue) -> String {
    format!("Could not read {what} from {url}: {}", describe(error))
}

/// The body's length from `Content-Length`, when given.
#[must_use]
pub fn content_length(response: &Response) -> Option<u32> {
    response.headers().get("content-length").ok().flatten().and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0)
}

/// Reads a response body chunk by chunk as it arrives into one JS array (pre-sized from
/// `Content-Length`, else doubled as needed), yielding to the page every [`SLICE_MS`] of work:
/// a 225 MB log never becomes one huge `ArrayBuffer` copied in a single task, and never enters
/// wasm memory here (the replay worker takes the buffer). The result is a view from the start of
/// its buffer.
pub async fn read_body(
    response: &Response,
    what: &str,
    url: &str,
    report: &mut impl FnMut(f64),
) -> Result<Uint8Array, String> {
    let fail = |e: &JsValue| format!("Could not read {what} from {url}: {}", describe(e));
    let expected =
        response.headers().get("content-length").ok().flatten().and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0);
    let mut out = Uint8Array::new_with_length(expected.unwrap_or(1 << 20));
    let mut at = 0u32;
    let Some(body) = response.body() else { return Ok(out.subarray(0, 0)) };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut started = now_ms();
    loop {
        let result: ReadableStreamReadResult =
            JsFuture::from(reader.read()).await.map_err(|e| fail(&e))?.unchecked_into();
        if result.get_done().unwrap_or(true) {
            break;
        }
        let chunk: Uint8Array = result.get_value().unchecked_into();
        let end = at.checked_add(chunk.length()).ok_or_else(|| format!("{what} at {url} is over 4 GB"))?;
        if end > out.length() {
            let bigger = Uint8Array::new_with_length(end.max(out.length().saturating_mul(2)));
            bigger.set(&out.subarray(0, at), 0);
            out = bigger;
        }
        out.set(&chunk, at);
        at = end;
        if let Some(total) = expected {
            report((f64::from(at) / f64::from(total)).min(1.0));
        }
        if now_ms() - started >= SLICE_MS {
            next_task().await;
            started = now_ms();
        }
    }
    report(1.0);
    Ok(out.subarray(0, at))
}

/// Offers `text` as a download named `name`.
pub fn download(name: &str, mime: &str, text: &str) -> Result<(), JsValue> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let anchor: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    web_sys::Url::revoke_object_url(&url)
}

/// Focuses the element with `id`, if any.
pub fn focus(id: &str) {
    if let Some(element) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id))
        && let Ok(element) = wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(element)
    {
        let _ = element.focus();
    }
}

/// A query parameter of the page URL, when present and not blank.
#[must_use]
pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let value = web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The page's origin and path, without the query.
#[must_use]
pub fn page_base() -> String {
    let Some(window) = web_sys::window() else { return String::new() };
    let location = window.location();
    format!("{}{}", location.origin().unwrap_or_default(), location.pathname().unwrap_or_default())
}
