//! The dashboard's root: the page layout and the effects that start loads and follow the
//! stream. Its state (model, actions, reducer) is the `state` module; starting a load (source
//! -> bytes -> sliced replay -> analysis) is `loading`.

use std::cell::Cell;
use std::rc::Rc;

use mechfund_core::Now;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::browser;
use crate::components::chart::Chart;
use crate::components::diagnostics::Diagnostics;
use crate::components::events::Events;
use crate::components::leaderboard::Leaderboard;
use crate::components::loader::Loader;
use crate::components::manage::Manage;
use crate::components::props::Admin;
use crate::components::summary::Summary;
use crate::components::whatif::WhatIf;
use crate::live::{self, Status};
use crate::loading::loads::Loads;
use crate::loading::source::Source;
use crate::loading::startup::initial_rules;
use crate::state::action::Action;
use crate::state::model::Model;

#[function_component(App)]
pub fn app() -> Html {
    let model = use_reducer(Model::default);
    let counter: Rc<Cell<u64>> = (*use_memo((), |()| Rc::new(Cell::new(0u64)))).clone();
    let loads = Loads::new(model.dispatcher(), Rc::clone(&counter), Rc::clone(&model.rules), model.now.clone());

    // First render: `&now=`, `&rules=`, then `?log=` (or the server's log, quietly).
    {
        let dispatch = model.dispatcher();
        let counter = Rc::clone(&counter);
        use_effect_with((), move |()| {
            let now = browser::query_param("now");
            spawn_local(async move {
                let fixed = match now.as_deref().map(Now::parse) {
                    Some(Ok(now)) => Some(now),
                    Some(Err(e)) => {
                        dispatch.dispatch(Action::Failed {
                            generation: 0,
                            message: format!(
                                "now={}: {e}. Remove it to follow the browser clock.",
                                now.unwrap_or_default()
                            ),
                        });
                        return;
                    }
                    None => None,
                };
                dispatch.dispatch(Action::Now(fixed.clone()));
                let rules_url = browser::query_param("rules");
                let rules = match initial_rules(rules_url.as_deref()).await {
                    Ok(rules) => Rc::new(rules.unwrap_or_default()),
                    Err(message) => {
                        dispatch.dispatch(Action::Failed { generation: 0, message });
                        return;
                    }
                };
                dispatch.dispatch(Action::Rules(Rc::clone(&rules)));
                let loads = Loads::new(dispatch, counter, rules, fixed);
                let mech = browser::query_param("mech").unwrap_or_else(|| "main".to_owned());
                match browser::query_param("log") {
                    Some(url) => loads.load(Source::Url(url), mech, false),
                    None => loads.load_server(mech),
                }
            });
        });
    }

    // A fresh load renders in steps, a task each, so a big log never blocks the page for one
    // long first render: the progress first, then diagnostics and what-if, the chart, the table.
    // The stage belongs to one analysis: a new one starts at 0 in the very render that shows it.
    let staged = use_state(|| (None::<usize>, 0u8));
    let key = model.analysis.as_ref().map(|a| Rc::as_ptr(a) as usize);
    let stage = if staged.0 == key { staged.1 } else { 0 };
    {
        let staged = staged.clone();
        use_effect_with(key, move |&key| {
            staged.set((key, 0));
            spawn_local(async move {
                for next in 1..=3 {
                    browser::next_task().await;
                    browser::mark(&format!("mechfund render stage {next}"));
                    staged.set((key, next));
                }
            });
        });
    }
    let on_mech = {
        let loads = loads.clone();
        let log = model.log.clone();
        let live = model.live;
        Callback::from(move |mech: String| {
            if live {
                loads.load_server(mech);
            } else if let Some(log) = &log {
                loads.select_mech(Rc::clone(log), mech);
            }
        })
    };

    // The live stream of the server's log on screen, from just after its last event. A new load
    // (or a stream the browser gave up on, retried after a pause) subscribes again.
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
                let url =
                    format!("{}/mechs/{}/events/stream?after_seq={after}", crate::api::API, crate::api::encode(mech));
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

    // Streamed lines that rewrite history, a replay the server's log disagrees with, or a first
    // event in an empty store: load again.
    {
        let loads = loads.clone();
        let mech = model.mech.clone();
        use_effect_with(model.reloads, move |&reloads| {
            if reloads > 0 {
                loads.load_server(mech);
            }
        });
    }

    // The admin token of this tab (sessionStorage), for the management forms.
    let token = use_state(|| crate::api::stored_token().map(Rc::<str>::from));
    let on_token = {
        let token = token.clone();
        Callback::from(move |next: Option<Rc<str>>| {
            crate::api::store_token(next.as_deref());
            token.set(next);
        })
    };
    // After a write: the stream shows it; without a stream, reload.
    let on_written = {
        let loads = loads.clone();
        let mech = model.mech.clone();
        let streaming = *status == Some(Status::Live);
        Callback::from(move |()| {
            if !streaming {
                loads.load_server(mech.clone());
            }
        })
    };
    let manage = model.manages();
    let admin = match (&*token, manage) {
        (Some(token), true) => {
            Some(Admin { token: Rc::clone(token), mech: model.mech.clone(), on_written: on_written.clone() })
        }
        _ => None,
    };
    html! {
        <div class="app">
            <header class="masthead">
                <h1>{ "mechfund" }</h1>
                <p class="tagline">{ "Replay a mech's donation log in your browser: progress, history and what-if goals." }</p>
            </header>
            <main>
                <Loader
                    loads={loads.clone()}
                    loading={model.loading()}
                    failed={model.failure()}
                    log_name={model.log.as_ref().map(|l| l.name.clone())}
                    log_size={model.analysis.as_ref().map(|a| (a.bytes, a.lines))}
                    mechs={model.analysis.as_ref().map(|a| a.mechs.clone()).unwrap_or_default()}
                    mech={model.mech.clone()}
                    on_mech={on_mech}
                />
                if let Some(status) = *status {
                    <p class={classes!("live-status", status.as_str())} role="status" aria-live="polite"
                       data-testid="live-status" data-state={status.as_str()}>
                        <span class="dot" aria-hidden="true"></span>
                        { match status {
                            Status::Connecting => "Connecting to live updates…",
                            Status::Live => "Live: new donations appear as they are recorded.",
                            Status::Reconnecting => "Reconnecting to the server…",
                            Status::Closed => "Live updates stopped; retrying…",
                        } }
                    </p>
                }
                <div class="announcer" role="status" aria-live="assertive" aria-atomic="true">
                    if let Some((number, text)) = &model.announcement {
                        <p class="level-up" key={number.to_string()} data-testid="level-up-announcement">{ text }</p>
                    }
                </div>
                if let Some(analysis) = &model.analysis {
                    <Summary analysis={Rc::clone(analysis)} rules={Rc::clone(&model.rules)} now={model.now.clone()} />
                    if stage >= 1 {
                        <Diagnostics analysis={Rc::clone(analysis)} />
                    }
                    if stage >= 2 {
                        <Chart analysis={Rc::clone(analysis)} />
                    }
                    if stage >= 3 {
                        <div class="columns">
                            <Events analysis={Rc::clone(analysis)} mech={model.mech.clone()} admin={admin.clone()} />
                            <Leaderboard analysis={Rc::clone(analysis)} />
                        </div>
                    }
                }
                if manage {
                    <Manage token={(*token).clone()} on_token={on_token} admin={admin.clone()}
                            state={model.state()} rules={Rc::clone(&model.rules)} now={model.now.clone()} />
                }
                <WhatIf
                    analysis={model.analysis.clone().filter(|_| stage >= 1)}
                    rules={Rc::clone(&model.rules)}
                    now={model.now.clone()}
                />
            </main>
            <footer class="footer">
                <p>{ "Everything runs in this page: the log never leaves your browser." }</p>
            </footer>
        </div>
    }
}
