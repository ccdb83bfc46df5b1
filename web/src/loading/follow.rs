//! Following the server's log on screen: its live stream, from just after the last event
//! shown, and the reloads the state asks for when streamed lines cannot be applied.

use wasm_bindgen::JsCast;
use yew::{Callback, UseReducerHandle, hook, use_effect_with, use_state_eq};

use super::loads::Loads;
use super::source::stream_url;
use crate::live::{self, Status};
use crate::state::action::Action;
use crate::state::model::Model;

/// Subscribes to the stream while the model follows it (a new load, or a stream the browser
/// gave up on and retried after a pause, subscribes again) and reloads the server's log when
/// the state asks (streamed lines that rewrite history, a replay the server's log disagrees
/// with, a first event in an empty store). Returns how the stream is doing, if one is open.
#[hook]
pub fn use_follow(model: &UseReducerHandle<Model>, loads: &Loads) -> Option<Status> {
    let status = use_state_eq(|| None::<Status>);
    let retries = use_state_eq(|| 0u32);
    {
        let dispatch = model.dispatcher();
        let status = status.clone();
        let retries = retries.clone();
        let after = model.last_event_seq();
        let follow = model.follows_stream();
        use_effect_with((follow, model.shown, model.mech.clone(), *retries), move |(follow, shown, mech, tries)| {
            let mut stream = None;
            if *follow {
                let shown = *shown;
                let tries = *tries;
                let url = stream_url(mech, after);
                let on_commit = Callback::from(move |commit| dispatch.dispatch(Action::Live { shown, commit }));
                let on_status = {
                    let status = status.clone();
                    Callback::from(move |next: Status| {
                        status.set(Some(next));
                        if next == Status::Closed {
                            let retries = retries.clone();
                            let again = wasm_bindgen::closure::Closure::once_into_js(move || retries.set(tries + 1));
                            if let Some(window) = web_sys::window() {
                                let _ = window
                                    .set_timeout_with_callback_and_timeout_and_arguments_0(again.unchecked_ref(), 3000);
                            }
                        }
                    })
                };
                status.set(Some(Status::Connecting));
                stream = live::subscribe(&url, on_commit, on_status).ok();
            } else {
                status.set(None);
            }
            move || drop(stream)
        });
    }
    {
        let loads = loads.clone();
        let mech = model.mech.clone();
        use_effect_with(model.reloads, move |&reloads| {
            if reloads > 0 {
                loads.load_server(mech);
            }
        });
    }
    *status
}
