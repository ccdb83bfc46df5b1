//! The confirmation step of deleting (or restoring) an event from the event table: a reason,
//! then "Delete #12" or "Restore #12", or cancel. Only shown when signed in.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::props::Admin;
use crate::api;
use crate::browser::focus;
use crate::format::join;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub admin: Admin,
    /// The event to toggle.
    pub seq: u64,
    /// Whether it is deleted now (the toggle restores it).
    pub deleted: bool,
    /// What it is, e.g. "DonationAdded $5.00 by ann".
    pub label: String,
    /// Closes the step (after success or cancel).
    pub on_close: Callback<()>,
}

#[function_component(ToggleForm)]
pub fn toggle_form(props: &Props) -> Html {
    let reason = use_state(String::new);
    let error = use_state(|| None::<String>);
    let pending = use_state(|| false);
    let busy = use_mut_ref(|| false);
    let attempt: Rc<RefCell<Option<(String, String)>>> = use_mut_ref(|| None);
    let verb = if props.deleted { "Restore" } else { "Delete" };
    let seq = props.seq;
    let title = join(&[verb, " #", &seq.to_string()]);
    {
        use_effect_with(seq, |_| focus("toggle-reason"));
    }
    let on_input = {
        let reason = reason.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                reason.set(input.value());
            }
        })
    };
    let on_cancel = {
        let on_close = props.on_close.clone();
        Callback::from(move |_: MouseEvent| on_close.emit(()))
    };
    let on_keydown = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_close.emit(());
            }
        })
    };
    let on_submit = {
        let reason = reason.clone();
        let error = error.clone();
        let pending = pending.clone();
        let admin = props.admin.clone();
        let on_close = props.on_close.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy.borrow() {
                return;
            }
            let text = reason.trim().to_owned();
            if text.is_empty() {
                error.set(Some("Give a reason: it is kept in the log with the toggle.".to_owned()));
                focus("toggle-reason");
                return;
            }
            let body = json!({ "reason": text });
            let sent_body = body.to_string();
            let key = match &*attempt.borrow() {
                Some((sent, key)) if *sent == sent_body => key.clone(),
                _ => api::new_key(),
            };
            *attempt.borrow_mut() = Some((sent_body, key.clone()));
            *busy.borrow_mut() = true;
            pending.set(true);
            let path = format!("mechs/{}/donations/{seq}/toggle-deletion", api::encode(&admin.mech));
            let (busy, error, pending, admin, on_close) =
                (busy.clone(), error.clone(), pending.clone(), admin.clone(), on_close.clone());
            spawn_local(async move {
                let answer = api::post(&path, &body, &admin.token, Some(&key)).await;
                *busy.borrow_mut() = false;
                pending.set(false);
                match answer {
                    Ok(_) => {
                        admin.on_written.emit(());
                        on_close.emit(());
                    }
                    Err(failure) => {
                        error.set(Some(failure.message()));
                        focus("toggle-reason");
                    }
                }
            });
        })
    };
    let invalid = error.is_some();
    html! {
        <form class="toggle-form" data-testid="toggle-form" onsubmit={on_submit} onkeydown={on_keydown}
              aria-labelledby="toggle-title" novalidate=true>
            <h3 id="toggle-title">{ join(&[&title, "?"]) }</h3>
            <p>{ join(&[verb, " ", &props.label, ". "]) }
               { if props.deleted { "Its amount counts again." } else { "Replay will skip it; restoring it later puts it back." } }</p>
            <div class="field">
                <label for="toggle-reason">{ "Reason" }</label>
                <input id="toggle-reason" type="text" data-testid="toggle-reason" value={(*reason).clone()}
                       oninput={on_input} required=true autocomplete="off" aria-invalid={invalid.to_string()}
                       aria-describedby={invalid.then_some("toggle-error")} />
                if let Some(message) = &*error {
                    <p class="error field-error" id="toggle-error" role="alert" data-testid="toggle-error">{ message }</p>
                }
            </div>
            <div class="actions">
                <button type="submit" class={if props.deleted { "primary" } else { "danger" }} data-testid="toggle-confirm"
                        disabled={*pending}>{ title }</button>
                <button type="button" data-testid="toggle-cancel" onclick={on_cancel}>{ "Cancel" }</button>
            </div>
        </form>
    }
}
