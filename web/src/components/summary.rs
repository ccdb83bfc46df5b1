//! The progress viewer: level and tier, the evolution and power bars (power decays live with the
//! browser clock unless `&now=` froze it), total donated, member counts, and the "can level up"
//! and "offline" states — the numbers `mechfund replay --now` prints. At level 11 the evolution
//! reads "Max level" (`evo-goal`; no `evo-current`) instead of a goal of $0.00.

use std::rc::Rc;

use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::{Now, Rules, display};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use yew::prelude::*;

use crate::analysis::Analysis;
use crate::format::{count, money, when};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub analysis: Rc<Analysis>,
    pub rules: Rc<Rules>,
    /// A frozen clock; `None` follows the browser's.
    pub now: Option<Now>,
}

/// The browser's time, refreshed every second while `fixed` is `None`.
#[hook]
fn use_clock(fixed: Option<Now>) -> Now {
    let tick = use_state(|| 0u64);
    {
        let tick = tick.clone();
        use_effect_with(fixed.is_none(), move |live| {
            let mut cleanup: Option<(i32, Closure<dyn FnMut()>)> = None;
            if *live && let Some(window) = web_sys::window() {
                let callback = Closure::<dyn FnMut()>::new(move || tick.set(*tick + 1));
                if let Ok(id) = window
                    .set_interval_with_callback_and_timeout_and_arguments_0(callback.as_ref().unchecked_ref(), 1000)
                {
                    cleanup = Some((id, callback));
                }
            }
            move || {
                if let (Some((id, _callback)), Some(window)) = (cleanup, web_sys::window()) {
                    window.clear_interval_with_handle(id);
                }
            }
        });
    }
    #[allow(clippy::cast_possible_truncation, reason = "Date.now() is whole milliseconds")]
    fixed.unwrap_or_else(|| Now::from_millis(js_sys::Date::now() as i64))
}

fn bar(label: &str, id: &str, now: i64, max: i64, percent: i64, text: &str) -> Html {
    let width = format!("width: {}%", percent.clamp(0, 100));
    html! {
        <div class="bar" role="progressbar" aria-labelledby={id.to_owned()} aria-valuemin="0"
             aria-valuemax={max.to_string()} aria-valuenow={now.clamp(0, max).to_string()} aria-valuetext={text.to_owned()}>
            <div class="track"><div class="fill" style={width}></div></div>
            <span class="sr-only" id={id.to_owned()}>{ label }</span>
        </div>
    }
}

#[function_component(Summary)]
pub fn summary(props: &Props) -> Html {
    let now = use_clock(props.now.clone());
    let state = &props.analysis.result.state;
    let shown = display(state, &props.rules, Some(&now));
    let max_level = state.level >= MAX_LEVEL;
    let evo_text = if max_level {
        "Max level reached".to_owned()
    } else {
        format!("{} / {} ({}%)", money(state.evo_acc), money(state.goal_requirement), shown.evo_percent)
    };
    let as_of =
        mechfund_core::Timestamp::parse(shown.now.as_deref().unwrap_or_default()).map_or_else(|_| "—".to_owned(), when);
    let power_text = format!("{} / {} ({}%)", money(shown.power_now), money(shown.power_max), shown.power_percent);
    html! {
        <section class="card summary" aria-labelledby="summary-title">
            <h2 id="summary-title" class="sr-only">{ "Progress" }</h2>
            <div class="level-row">
                <div class="level-badge" aria-label={format!("Level {}", state.level)}>
                    <span class="level-caption">{ "Level" }</span>
                    <span class="level-number" data-testid="level">{ state.level }</span>
                </div>
                <div class="level-text">
                    <span class="tier" data-testid="tier">{ shown.tier }</span>
                    <span class="states">
                        if shown.can_level_up {
                            <span class="badge good" data-testid="can-level-up">{ "Can level up" }</span>
                        }
                        if shown.is_offline {
                            <span class="badge bad" data-testid="offline">{ "Offline: no power" }</span>
                        }
                        if max_level {
                            <span class="badge">{ "Max level" }</span>
                        }
                    </span>
                </div>
            </div>
            <div class="meter">
                <div class="meter-head">
                    <span class="meter-name" id="evo-label">{ "Evolution" }</span>
                    <span class="meter-value">
                        // Level 11 has no goal (0): "$10.09 / $0.00 · 100%" would read as a bug.
                        if max_level {
                            <span data-testid="evo-goal">{ "Max level" }</span>
                        } else {
                            <span data-testid="evo-current">{ money(state.evo_acc) }</span>
                            { " / " }
                            <span data-testid="evo-goal">{ money(state.goal_requirement) }</span>
                            <span class="percent">{ format!(" · {}%", shown.evo_percent) }</span>
                        }
                    </span>
                </div>
                { bar("Evolution", "evo-bar-label", state.evo_acc, state.goal_requirement.max(1), shown.evo_percent, &evo_text) }
            </div>
            <div class={classes!("meter", "power", shown.is_offline.then_some("offline"))}>
                <div class="meter-head">
                    <span class="meter-name">{ "Power" }</span>
                    <span class="meter-value">
                        <span data-testid="power-current">{ money(shown.power_now) }</span>
                        { " / " }
                        <span data-testid="power-max">{ money(shown.power_max) }</span>
                        <span class="percent">{ format!(" · {}%", shown.power_percent) }</span>
                    </span>
                </div>
                { bar("Power", "power-bar-label", shown.power_now, shown.power_max.max(1), shown.power_percent, &power_text) }
            </div>
            <dl class="facts">
                <div><dt>{ "Total donated" }</dt><dd data-testid="total-donated">{ money(state.cumulative_donations_cents) }</dd></div>
                <div><dt>{ "Members (latest sample)" }</dt><dd data-testid="member-count">{ count(state.last_user_count_sample) }</dd></div>
                <div><dt>{ "Members frozen for this level's goal" }</dt><dd data-testid="goal-member-count">{ count(state.goal_member_count) }</dd></div>
                <div><dt>{ "Last event" }</dt><dd title={state.last_event_ts.map(|ts| ts.to_string())}>{ state.last_event_ts.map_or_else(|| "—".to_owned(), |ts| mechfund_core::Timestamp::parse(ts.as_str()).map_or_else(|_| ts.to_string(), when)) }</dd></div>
                <div><dt>{ "As of" }</dt><dd data-testid="as-of" title={shown.now.clone()}>{ as_of }</dd></div>
            </dl>
        </section>
    }
}
