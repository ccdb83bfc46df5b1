//! The dashboard's root: the page layout, wired by hooks to its state (`state`: model, actions,
//! reducer), to loading (`loading`: the first load, loads, the server's stream) and to the
//! staged render of a fresh load (`stage`).

use std::rc::Rc;

use yew::prelude::*;

use crate::api;
use crate::components::chart::Chart;
use crate::components::diagnostics::Diagnostics;
use crate::components::events::Events;
use crate::components::leaderboard::Leaderboard;
use crate::components::loader::Loader;
use crate::components::manage::Manage;
use crate::components::props::Admin;
use crate::components::summary::Summary;
use crate::components::whatif::WhatIf;
use crate::live::Status;
use crate::loading::follow::use_follow;
use crate::loading::loads::use_loads;
use crate::loading::startup::use_first_load;
use crate::stage::use_render_stage;
use crate::state::model::Model;

#[function_component(App)]
pub fn app() -> Html {
    let model = use_reducer(Model::default);
    let loads = use_loads(&model);
    use_first_load(&model, &loads);
    let stage = use_render_stage(model.analysis.as_ref());
    let status = use_follow(&model, &loads);
    // The admin token of this tab (sessionStorage), for the management forms.
    let token = use_state(|| api::stored_token().map(Rc::<str>::from));

    // Another mech: the server's log of it, or the log in memory replayed for it.
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
    let on_token = {
        let token = token.clone();
        Callback::from(move |next: Option<Rc<str>>| {
            api::store_token(next.as_deref());
            token.set(next);
        })
    };
    // After a write: the stream shows it; without a stream, reload.
    let on_written = {
        let loads = loads.clone();
        let mech = model.mech.clone();
        let streaming = status == Some(Status::Live);
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
                if let Some(status) = status {
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
