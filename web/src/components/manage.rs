//! Donation management, shown when the dashboard is served by `mechfund serve`: sign in with
//! the admin token, then record a donation, a system donation, a member count or a power gift
//! (one [`WriteForm`] each).

use std::rc::Rc;

use mechfund_core::{Now, Rules, State};
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::props::Admin;
use super::write_form::{Kind, WriteForm};
use crate::api::{self, Failure};
use crate::browser::focus;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub token: Option<Rc<str>>,
    pub on_token: Callback<Option<Rc<str>>>,
    pub admin: Option<Admin>,
    pub state: State,
    pub rules: Rc<Rules>,
    pub now: Option<Now>,
}

#[function_component(Manage)]
pub fn manage(props: &Props) -> Html {
    // The sign-in form lives here rather than in a component of its own: one component less
    // is ~1 KB less of the gzipped dashboard (each links its own copy of Yew's lifecycle code).
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let on_submit = {
        let input = input.clone();
        let error = error.clone();
        let busy = busy.clone();
        let on_token = props.on_token.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let Some(field) = input.cast::<HtmlInputElement>() else { return };
            let token = field.value().trim().to_owned();
            if token.is_empty() {
                error.set(Some("Enter the admin token.".to_owned()));
                focus("admin-token");
                return;
            }
            busy.set(true);
            let (error, busy, on_token) = (error.clone(), busy.clone(), on_token.clone());
            spawn_local(async move {
                let checked = api::check_token("main", &token).await;
                busy.set(false);
                match checked {
                    Ok(()) => {
                        error.set(None);
                        on_token.emit(Some(Rc::from(token)));
                    }
                    Err(Failure::Unauthorized) => {
                        error.set(Some(
                            "The server refused this token. Use the admin token that `mechfund serve` \
                                        printed (it is in data/admin-token)."
                                .to_owned(),
                        ));
                        focus("admin-token");
                    }
                    Err(failure) => error.set(Some(failure.message())),
                }
            });
        })
    };
    let body = match &props.admin {
        None => {
            let invalid = error.is_some();
            html! {
                <form class="sign-in" data-testid="sign-in-form" onsubmit={on_submit} novalidate=true>
                    <p class="hint" id="admin-token-hint">
                        { "Sign in with the admin token to record donations. It stays in this tab only (session storage)." }
                    </p>
                    <div class="field">
                        <label for="admin-token">{ "Admin token" }</label>
                        <input id="admin-token" ref={input} type="password" autocomplete="off" data-testid="admin-token"
                               aria-invalid={invalid.to_string()}
                               aria-describedby={if invalid { "admin-token-error admin-token-hint" } else { "admin-token-hint" }} />
                        if let Some(message) = &*error {
                            <p class="error field-error" id="admin-token-error" role="alert" data-testid="sign-in-error">{ message }</p>
                        }
                    </div>
                    <button type="submit" class="primary" data-testid="sign-in" disabled={*busy}>{ "Sign in" }</button>
                </form>
            }
        }
        Some(admin) => {
            let on_sign_out = {
                let on_token = props.on_token.clone();
                Callback::from(move |_: MouseEvent| {
                    on_token.emit(None);
                    focus("admin-token");
                })
            };
            html! {
                <>
                    <div class="signed-in toolbar">
                        <p>{ format!("Signed in: writes go to mech {}.", admin.mech) }</p>
                        <button type="button" data-testid="sign-out" onclick={on_sign_out}>{ "Sign out" }</button>
                    </div>
                    <div class="forms">
                        { for [Kind::Donation, Kind::System, Kind::Members, Kind::Gift].into_iter().map(|kind| html! {
                            <WriteForm kind={kind} admin={admin.clone()} state={props.state.clone()}
                                       rules={Rc::clone(&props.rules)} now={props.now.clone()} />
                        }) }
                    </div>
                </>
            }
        }
    };
    let _ = &props.token;
    html! {
        <section class="card manage" aria-labelledby="manage-title" data-testid="manage">
            <h2 id="manage-title">{ "Record donations" }</h2>
            { body }
        </section>
    }
}
