//! The live stream of a mech's log (`GET …/events/stream`, server-sent events) through the
//! browser's `EventSource`, which reconnects by itself and resumes with `Last-Event-ID`, so a
//! server restart loses and repeats nothing.
//!
//! Each default message is one log line; the lines of a commit are handed over together when
//! the `state` message that follows the commit arrives (and after the backlog), with what that
//! message says of the server's log ([`Mark`]): the state after the last line sent, which the
//! dashboard checks its own replay against.

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

/// Where the server's log stands after the lines sent so far, from a `state` message: two
/// facts that do not depend on the rules, so a replay under other rules still compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub last_event_seq: u64,
    pub cumulative_donations_cents: i64,
}

impl Mark {
    /// From a `state` message's data (`{"state":{…},"display":{…}}`).
    #[must_use]
    pub fn parse(data: &str) -> Option<Mark> {
        let value: serde_json::Value = serde_json::from_str(data).ok()?;
        Some(Mark {
            last_event_seq: value["state"]["last_event_seq"].as_u64()?,
            cumulative_donations_cents: value["state"]["cumulative_donations_cents"].as_i64()?,
        })
    }

    /// Whether `state` (a replay of the lines received) is where the server's log is.
    #[must_use]
    pub fn matches(self, state: &mechfund_core::State) -> bool {
        self.last_event_seq == state.last_event_seq
            && self.cumulative_donations_cents == state.cumulative_donations_cents
    }
}

/// The lines of one commit (or of the backlog) and the `state` message after them.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    pub lines: Vec<String>,
    pub mark: Option<Mark>,
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

/// Subscribes to `url`: `on_commit` gets each commit's lines (at every `state` message, so
/// also none), `on_status` the connection's ups and downs.
///
/// # Errors
/// If the browser refuses the URL.
pub fn subscribe(url: &str, on_commit: Callback<Commit>, on_status: Callback<Status>) -> Result<Stream, JsValue> {
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
        Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            on_status.emit(Status::Live);
            let lines = std::mem::take(&mut *pending.borrow_mut());
            let data = e.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string());
            on_commit.emit(Commit { lines, mark: data.as_deref().and_then(Mark::parse) });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_message_gives_its_mark() {
        let data = r#"{"state":{"mech_id":"main","level":1,"cumulative_donations_cents":100,"last_event_seq":1},"display":{"power_now":0}}"#;
        let mark = Mark::parse(data);
        assert_eq!(mark, Some(Mark { last_event_seq: 1, cumulative_donations_cents: 100 }));
        assert_eq!(Mark::parse(r#"{"state":{"last_event_seq":1}}"#), None);
        assert_eq!(Mark::parse("not JSON"), None);
    }
}
