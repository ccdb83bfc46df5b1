//! The browser at the edge: the clock, yielding to the event loop, reading files and URLs into
//! memory in slices, downloads, focus and the page URL. Everything else in the app is plain Rust.

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

/// The replay job's host in the page: reports progress, then yields.
pub struct PageHost<F: FnMut(Progress)> {
    pub report: F,
}

impl<F: FnMut(Progress)> Host for PageHost<F> {
    fn now_ms(&self) -> f64 {
        now_ms()
    }

    async fn pause(&mut self, progress: Progress) {
        mark(&format!("mechfund {} {:.2}", progress.phase, progress.fraction));
        (self.report)(progress);
        next_task().await;
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

/// Reads a picked or dropped file in slices.
///
/// # Errors
/// The browser's reason the file cannot be read.
pub async fn read_file(file: &File, report: &mut impl FnMut(f64)) -> Result<Vec<u8>, String> {
    let size = file.size();
    let mut out = Vec::with_capacity(size as usize);
    let mut at = 0.0;
    while at < size {
        let end = (at + READ_CHUNK as f64).min(size);
        let blob: Blob = file.slice_with_f64_and_f64(at, end).map_err(|e| describe(&e))?;
        let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| describe(&e))?;
        out.extend_from_slice(&Uint8Array::new(&buffer).to_vec());
        at = end;
        report(at / size);
    }
    Ok(out)
}

/// GETs `url` as bytes.
///
/// # Errors
/// A message saying what failed and how to fix it.
pub async fn fetch_bytes(url: &str, what: &str, report: &mut impl FnMut(f64)) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no browser window")?;
    let response = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| {
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
    read_body(&response, what, url, report).await
}

/// Reads a response body chunk by chunk as it arrives, straight into one `Vec` (pre-sized from
/// `Content-Length`), yielding to the page every [`SLICE_MS`] of work: a 225 MB log never
/// becomes one huge `ArrayBuffer` copied in a single task.
async fn read_body(
    response: &Response,
    what: &str,
    url: &str,
    report: &mut impl FnMut(f64),
) -> Result<Vec<u8>, String> {
    let fail = |e: &JsValue| format!("Could not read {what} from {url}: {}", describe(e));
    let expected = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let mut out = Vec::with_capacity(expected.unwrap_or(0));
    let Some(body) = response.body() else { return Ok(out) };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut started = now_ms();
    loop {
        let result: ReadableStreamReadResult =
            JsFuture::from(reader.read()).await.map_err(|e| fail(&e))?.unchecked_into();
        if result.get_done().unwrap_or(true) {
            break;
        }
        let chunk: Uint8Array = result.get_value().unchecked_into();
        let at = out.len();
        out.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut out[at..]);
        if let Some(total) = expected {
            report((out.len() as f64 / total as f64).min(1.0));
        }
        if now_ms() - started >= SLICE_MS {
            next_task().await;
            started = now_ms();
        }
    }
    report(1.0);
    Ok(out)
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
