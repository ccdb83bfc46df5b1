//! The live stream of a mech's log (`GET …/events/stream`, server-sent events) through the
//! browser's `EventSource`, which reconnects by itself and resumes with `Last-Event-ID`, so a
//! server restart loses and repeats nothing.
//!
//! Each default message is one log line; the lines of a commit are handed over together when
//! the `state` message that follows the commit arrives (and after the backlog).

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{EventSource, MessageEvent};
use yew::Callback;

/// How the stream is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Live,
    Reconnecting,
    /// The browser gave up (the server answered with an error); the app retries later.
    Closed,
}

impl Status {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Live => "live",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        }
    }
}

/// An open subscription; dropping it closes the connection.
pub struct Stream {
    source: EventSource,
    _handlers: [Closure<dyn FnMut(web_sys::Event)>; 4],
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Subscribes to `url`: `on_lines` gets each commit's lines, `on_status` the connection's ups
/// and downs.
///
/// # Errors
/// If the browser refuses the URL.
pub fn subscribe(url: &str, on_lines: Callback<Vec<String>>, on_status: Callback<Status>) -> Result<Stream, JsValue> {
    let source = EventSource::new(url)?;
    let pending: Rc<RefCell<Vec<String>>> = Rc::default();
    let on_message = {
        let pending = Rc::clone(&pending);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            if let Some(line) = e.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string()) {
                pending.borrow_mut().push(line);
            }
        })
    };
    let on_state = {
        let pending = Rc::clone(&pending);
        let on_status = on_status.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            on_status.emit(Status::Live);
            let lines = std::mem::take(&mut *pending.borrow_mut());
            if !lines.is_empty() {
                on_lines.emit(lines);
            }
        })
    };
    let on_open = {
        let on_status = on_status.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| on_status.emit(Status::Live))
    };
    let on_error = {
        let source = source.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            on_status.emit(if source.ready_state() == EventSource::CLOSED {
                Status::Closed
            } else {
                Status::Reconnecting
            });
        })
    };
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.add_event_listener_with_callback("state", on_state.as_ref().unchecked_ref())?;
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Stream { source, _handlers: [on_message, on_state, on_open, on_error] })
}
