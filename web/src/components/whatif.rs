//! The goal what-if calculator (spec §2.7): goals for a hypothetical member count next to the
//! goals the log froze, where goals stop growing, the cost of the remaining levels, a donation
//! preview, a rules editor, and a link that shares the scenario. Works with or without a log.
//!
//! The numbers all come from the core (`mechfund_core::whatif`); this file only parses inputs,
//! words the results and keeps the scenario (see `crate::storage`).

use std::rc::Rc;

use mechfund_core::decide::Stamp;
use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::state::LevelUp;
use mechfund_core::whatif::{Preview, goal_table, preview_donation, remaining_costs, saturation};
use mechfund_core::{AmountError, Cents, DomainError, EventBody, Now, Rules, State, Timestamp};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::analysis::Analysis;
use crate::browser;
use crate::components::rules_editor::RulesEditor;
use crate::format::{count, money};
use crate::storage::{self, MAX_MEMBERS, Scenario};

/// Members assumed without a log, a URL parameter or a stored scenario.
pub const DEFAULT_MEMBERS: i64 = 100;
/// The preview amount on a first visit.
const DEFAULT_AMOUNT: &str = "5.00";
/// Lets long unbroken user text in a message wrap instead of widening the page.
const WRAP: &str = "overflow-wrap: anywhere";
/// URL parameters of the page kept in a shared link.
const KEPT_PARAMS: [&str; 3] = ["log", "mech", "now"];

/// Reads the member-count field: a whole number 0..=10,000,000.
///
/// # Errors
/// A sentence saying what to type instead.
pub fn parse_members(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Enter a whole number of members (0 to 10,000,000).".to_owned());
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.strip_prefix('-').is_some_and(digits) {
        return Err("A member count cannot be negative.".to_owned());
    }
    if !digits(text) {
        return Err(format!("\"{text}\" is not a whole number of members."));
    }
    match text.parse::<i64>() {
        Ok(n) if n <= MAX_MEMBERS => Ok(n),
        _ => Err("At most 10,000,000 members.".to_owned()),
    }
}

/// The member count in use: the user's choice, else the log's latest sample, else 100.
#[must_use]
pub fn resolve_members(choice: Option<i64>, log_sample: Option<i64>) -> i64 {
    choice.or(log_sample).unwrap_or(DEFAULT_MEMBERS).clamp(0, MAX_MEMBERS)
}

/// The slider's upper end for a member count.
#[must_use]
pub fn slider_max(members: i64) -> i64 {
    members.saturating_mul(2).max(10_000)
}

/// The goal the log froze for `level`: the goal reached by the level-up out of it, or the current
/// goal for the current level. `None` for levels not reached yet (and level 11).
#[must_use]
pub fn frozen_goal(state: &State, level_ups: &[LevelUp], level: u8) -> Option<i64> {
    level_ups
        .iter()
        .rev()
        .find(|up| up.from_level == level)
        .map(|up| up.old_goal)
        .or_else(|| (level == state.level && level < MAX_LEVEL).then_some(state.goal_requirement))
}

/// `part` of `whole` in whole percent, at most 100 (100 when there is no goal).
fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 100;
    }
    let p = i128::from(part.max(0)) * 100 / i128::from(whole);
    i64::try_from(p.min(100)).unwrap_or(100)
}

/// The sentence that words a donation preview.
#[must_use]
pub fn preview_sentence(amount: Cents, result: &Result<Preview, DomainError>) -> String {
    let lead = format!("Donating {amount} now would");
    let preview = match result {
        Ok(preview) => preview,
        Err(error) => return format!("{lead} be refused: {error}."),
    };
    let mut reached = None;
    let mut level_ups = 0;
    let mut bonus: i64 = 0;
    for event in &preview.events {
        match &event.body {
            EventBody::LevelUpCommitted { to_level, .. } => {
                reached = Some(*to_level);
                level_ups += 1;
            }
            EventBody::ExactHitBonusGranted { power_units, .. } => bonus = bonus.saturating_add(*power_units),
            _ => {}
        }
    }
    let state = &preview.state;
    let evolution = format!(
        "{} of {} ({}%)",
        money(state.evo_acc),
        money(state.goal_requirement),
        percent(state.evo_acc, state.goal_requirement)
    );
    match reached {
        None if state.level >= MAX_LEVEL => {
            format!("{lead} add {amount} of power; the mech is already at the maximum level, {MAX_LEVEL}.")
        }
        None => format!("{lead} raise evolution to {evolution}."),
        Some(level) => {
            let mut sentence = format!("{lead} level the mech up to level {level}");
            if level_ups > 1 {
                sentence.push_str(&format!(" ({level_ups} level-ups)"));
            }
            if bonus > 0 {
                sentence.push_str(&format!(" (exact hit bonus: +{} power)", money(bonus)));
            }
            if level >= MAX_LEVEL {
                sentence.push_str(", the maximum level.");
            } else {
                sentence.push_str(&format!("; evolution would then be {evolution}."));
            }
            sentence
        }
    }
}

/// Where and when a previewed donation goes: after the log's last seq, at `now` (never before
/// the log's clock, as the display treats an earlier `now`).
#[must_use]
pub fn stamp_for(state: &State, now: Timestamp) -> Stamp {
    Stamp { next_seq: state.last_event_seq + 1, now: state.clock.map_or(now, |clock| clock.max(now)) }
}

/// Cents as the plain decimal dollars of a URL: 550 -> "5.50".
#[must_use]
pub fn dollars(cents: Cents) -> String {
    let c = cents.get();
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.unsigned_abs() / 100, c.unsigned_abs() % 100)
}

/// The link that reopens this scenario: the page's `log`, `mech` and `now` parameters, then
/// `members`, the preview `amount` and, when they are not the defaults, the rules as a
/// `data:application/json,…` URL (which the app fetches like any `&rules=` URL).
/// `encode` is `encodeURIComponent`.
#[must_use]
pub fn share_url(
    base: &str,
    kept: &[(&str, String)],
    members: i64,
    amount: Option<Cents>,
    rules: &Rules,
    encode: impl Fn(&str) -> String,
) -> String {
    let mut params: Vec<(&str, String)> = kept.to_vec();
    params.push(("members", members.to_string()));
    if let Some(amount) = amount {
        params.push(("amount", dollars(amount)));
    }
    if *rules != Rules::default() {
        let json = rules.to_value().to_string();
        params.push(("rules", format!("data:application/json,{}", encode(&json))));
    }
    let query: Vec<String> = params.iter().map(|(key, value)| format!("{key}={}", encode(value))).collect();
    format!("{base}?{}", query.join("&"))
}

/// Where the calculator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The user's member count (`None`: follow the log).
    pub members: Option<i64>,
    /// The preview amount as typed.
    pub amount: String,
    /// Use the log's rules rather than the editor's.
    pub use_log: bool,
    /// The editor's own rules.
    pub custom: Rules,
}

/// The starting point: URL parameters first, then the stored scenario, then the defaults. A
/// shared link's `&rules=` arrive as the log's rules, so they are used.
#[must_use]
pub fn start(
    stored: Option<Scenario>,
    stored_rules: Option<Rules>,
    url_members: Option<&str>,
    url_amount: Option<String>,
    url_has_rules: bool,
) -> Start {
    let stored = stored.unwrap_or_default();
    Start {
        members: url_members.and_then(|m| parse_members(m).ok()).or(stored.members),
        amount: url_amount.or(stored.amount).unwrap_or_else(|| DEFAULT_AMOUNT.to_owned()),
        use_log: url_has_rules || stored.use_log_rules.unwrap_or(true),
        custom: stored_rules.unwrap_or_default(),
    }
}

/// Copies `text` with the asynchronous clipboard API, looked up dynamically (it needs a secure
/// context and is missing in some browsers). Resolves to whether it worked.
async fn copy_to_clipboard(text: String) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let get = |target: &wasm_bindgen::JsValue, key: &str| js_sys::Reflect::get(target, &key.into()).ok();
    let Some(clipboard) = get(&window, "navigator").and_then(|n| get(&n, "clipboard")) else { return false };
    let Some(write) = get(&clipboard, "writeText").and_then(|f| f.dyn_into::<js_sys::Function>().ok()) else {
        return false;
    };
    let Ok(promise) = write.call1(&clipboard, &text.into()) else { return false };
    let Ok(promise) = promise.dyn_into::<js_sys::Promise>() else { return false };
    JsFuture::from(promise).await.is_ok()
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub analysis: Option<Rc<Analysis>>,
    pub rules: Rc<Rules>,
    pub now: Option<Now>,
}

#[function_component(WhatIf)]
pub fn view(props: &Props) -> Html {
    let init = use_memo((), |()| {
        start(
            storage::load_scenario(),
            storage::load_rules(),
            browser::query_param("members").as_deref(),
            browser::query_param("amount"),
            browser::query_param("rules").is_some(),
        )
    });
    let choice = use_state(|| init.members);
    let members_text = use_state(|| None::<String>);
    let slider_anchor = use_state(|| None::<i64>);
    let amount_text = use_state(|| init.amount.clone());
    let use_log = use_state(|| init.use_log);
    let custom = use_state(|| Rc::new(init.custom.clone()));
    let copy_status = use_state(String::new);
    let share_ref = use_node_ref();

    // Persistence at the edge.
    use_effect_with((*choice, (*amount_text).clone(), *use_log), |(members, amount, use_log)| {
        storage::save_scenario(&Scenario {
            members: *members,
            amount: Some(amount.clone()),
            use_log_rules: Some(*use_log),
        });
    });
    use_effect_with(Rc::clone(&*custom), |rules| storage::save_rules(rules));

    let rules: Rc<Rules> = if *use_log { Rc::clone(&props.rules) } else { Rc::clone(&*custom) };
    let result = props.analysis.as_ref().map(|a| &a.result);
    let state = result.map(|r| &r.state);
    let members = resolve_members(*choice, state.map(|s| s.last_user_count_sample));
    let members_error = members_text.as_ref().and_then(|t| parse_members(t).err());
    let slider_top = slider_anchor.unwrap_or_else(|| slider_max(members));

    let on_members = {
        let (choice, members_text, slider_anchor) = (choice.clone(), members_text.clone(), slider_anchor.clone());
        Callback::from(move |e: InputEvent| {
            let text = e.target_unchecked_into::<HtmlInputElement>().value();
            if let Ok(n) = parse_members(&text) {
                choice.set(Some(n));
                slider_anchor.set(None);
            }
            members_text.set(Some(text));
        })
    };
    let on_slider = {
        let (choice, members_text, slider_anchor) = (choice.clone(), members_text.clone(), slider_anchor.clone());
        Callback::from(move |e: InputEvent| {
            if let Ok(n) = parse_members(&e.target_unchecked_into::<HtmlInputElement>().value()) {
                // Keep the range fixed while dragging, so the thumb stays under the pointer.
                if slider_anchor.is_none() {
                    slider_anchor.set(Some(slider_top));
                }
                choice.set(Some(n));
                members_text.set(None);
            }
        })
    };
    // Once the thumb is let go, the range follows the new count again.
    let on_slider_done = {
        let slider_anchor = slider_anchor.clone();
        Callback::from(move |_: Event| slider_anchor.set(None))
    };
    let on_amount = {
        let amount_text = amount_text.clone();
        Callback::from(move |e: InputEvent| amount_text.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let on_rules = {
        let (custom, use_log) = (custom.clone(), use_log.clone());
        Callback::from(move |rules: Rc<Rules>| {
            custom.set(rules);
            use_log.set(false);
        })
    };
    let on_use_log = {
        let use_log = use_log.clone();
        Callback::from(move |on: bool| use_log.set(on))
    };

    // Goal table.
    let table = goal_table(members, &rules);
    let saturation = saturation(&rules);
    let frozen = |level: u8| props.analysis.as_ref().map(|a| frozen_goal(&a.result.state, &a.result.level_ups, level));
    let rows = table.iter().map(|row| {
        let level = row.level;
        let stops = saturation.iter().find(|s| s.level == level).map_or_else(
            || "—".to_owned(),
            |s| {
                if s.saturates_at == 0 {
                    "never grows".to_owned()
                } else {
                    format!("{} members", count(s.saturates_at))
                }
            },
        );
        let current = state.is_some_and(|s| s.level == level);
        html! {
            <tr class={classes!(current.then_some("current"))} aria-current={current.then_some("true")}>
                <th scope="row">{ level }</th>
                <td class="num">{ money(row.base) }</td>
                <td class="num">{ money(row.dynamic) }</td>
                <td class="num goal" data-testid={format!("whatif-goal-{level}")}>{ money(row.goal) }</td>
                if let Some(frozen) = frozen(level) {
                    <td class="num frozen" data-testid={format!("whatif-frozen-{level}")}>
                        { frozen.map_or_else(|| "—".to_owned(), money) }
                    </td>
                }
                <td class="num">{ stops }</td>
            </tr>
        }
    });
    let freebie = rules.freebie_members.min(rules.member_cap);

    // Remaining costs.
    let remaining = match state {
        None => html! {
            <p class="hint">{ "Load a log to see what reaching each level would cost from the mech's current state." }</p>
        },
        Some(s) if s.level >= MAX_LEVEL => html! {
            <p class="hint">{ "The mech is at the maximum level: nothing left to reach." }</p>
        },
        Some(s) => {
            let costs = remaining_costs(s, members, &rules);
            html! {
                <>
                    <p class="hint">
                        { format!(
                            "From level {} with {} of {} toward the next level, if later levels are priced at {} members (goals the log already recorded are kept):",
                            s.level, money(s.evo_acc), money(s.goal_requirement), count(members)
                        ) }
                    </p>
                    <div class="table-scroll">
                        <table class="remaining-table">
                            <thead><tr><th scope="col">{ "To reach level" }</th><th scope="col">{ "Still to donate" }</th></tr></thead>
                            <tbody>
                                { for costs.iter().map(|r| html! {
                                    <tr>
                                        <th scope="row">{ r.level }</th>
                                        <td class="num" data-testid={format!("whatif-remaining-{}", r.level)}>{ money(r.cost) }</td>
                                    </tr>
                                }) }
                            </tbody>
                        </table>
                    </div>
                </>
            }
        }
    };

    // Donation preview.
    let amount = Cents::parse_dollars(&amount_text);
    let amount_invalid = amount.is_err() && !amount_text.trim().is_empty();
    let preview = match (&amount, state) {
        (Err(AmountError::Empty), _) => "Enter an amount in dollars to preview a donation.".to_owned(),
        (Err(_), _) => String::new(),
        (Ok(_), None) => {
            "Load a log to preview a donation: the preview starts from the mech's current state.".to_owned()
        }
        (Ok(amount), Some(s)) => {
            #[allow(clippy::cast_possible_truncation, reason = "Date.now() is whole milliseconds")]
            let now = props.now.as_ref().map_or_else(|| Timestamp::from_millis(js_sys::Date::now() as i64), |n| n.ts);
            let result = preview_donation(s, *amount, Some(members), &rules, stamp_for(s, now));
            preview_sentence(*amount, &result)
        }
    };

    // Share link.
    let kept: Vec<(&str, String)> =
        KEPT_PARAMS.iter().filter_map(|&key| browser::query_param(key).map(|value| (key, value))).collect();
    let link = share_url(&browser::page_base(), &kept, members, amount.as_ref().ok().copied(), &rules, |s| {
        String::from(js_sys::encode_uri_component(s))
    });
    let on_copy = {
        let (link, copy_status, share_ref) = (link.clone(), copy_status.clone(), share_ref.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(input) = share_ref.cast::<HtmlInputElement>() {
                input.select();
            }
            let (link, copy_status) = (link.clone(), copy_status.clone());
            wasm_bindgen_futures::spawn_local(async move {
                copy_status.set(if copy_to_clipboard(link).await {
                    "Link copied.".to_owned()
                } else {
                    "Could not copy: the link is selected, press Ctrl+C (⌘C) to copy it.".to_owned()
                });
            });
        })
    };

    html! {
        <section class="card whatif" aria-labelledby="whatif-title">
            <h2 id="whatif-title">{ "What if?" }</h2>
            <p class="hint">{ "Goals for a hypothetical community size, the cost of the remaining levels and a donation preview." }</p>

            <div class="whatif-members">
                <div class={classes!("field", members_error.is_some().then_some("invalid"))}>
                    <label for="whatif-members">{ "Members" }</label>
                    <input id="whatif-members" type="number" min="0" max={MAX_MEMBERS.to_string()} step="1" inputmode="numeric"
                           data-testid="whatif-members"
                           value={members_text.as_ref().cloned().unwrap_or_else(|| members.to_string())}
                           aria-invalid={members_error.is_some().to_string()}
                           aria-describedby={members_error.is_some().then_some("whatif-members-error")}
                           oninput={on_members} />
                    if let Some(error) = &members_error {
                        <span class="field-error" id="whatif-members-error" role="alert" style={WRAP}>{ error.clone() }</span>
                    }
                </div>
                <div class="field slider">
                    <label for="whatif-members-slider">{ format!("Members (0–{})", count(slider_top)) }</label>
                    <input id="whatif-members-slider" type="range" min="0" max={slider_top.to_string()} step="1"
                           data-testid="whatif-members-slider" value={members.min(slider_top).to_string()}
                           aria-valuetext={format!("{} members", count(members))}
                           oninput={on_slider} onchange={on_slider_done} />
                </div>
            </div>

            <h3>{ format!("Goals at {} members", count(members)) }</h3>
            <p class="hint">
                { format!(
                    "Up to {} members a goal is its base cost; each member beyond adds {}.",
                    count(freebie), money(rules.cost_per_member)
                ) }
            </p>
            <div class="table-scroll">
                <table class="goal-table">
                    <thead>
                        <tr>
                            <th scope="col">{ "Level" }</th>
                            <th scope="col">{ "Base" }</th>
                            <th scope="col">{ "Members part" }</th>
                            <th scope="col">{ "Goal" }</th>
                            if props.analysis.is_some() {
                                <th scope="col">{ "Frozen in log" }</th>
                            }
                            <th scope="col">{ "Stops growing at" }</th>
                        </tr>
                    </thead>
                    <tbody>{ for rows }</tbody>
                </table>
            </div>

            <h3>{ "Cost of the remaining levels" }</h3>
            { remaining }

            <h3>{ "Donation preview" }</h3>
            if state.is_some() {
                <p class="hint">
                    { format!(
                        "From the log's current state, now; a level the donation reaches is priced at {} members.",
                        count(members)
                    ) }
                </p>
            }
            <div class="whatif-preview">
                <div class={classes!("field", amount_invalid.then_some("invalid"))}>
                    <label for="whatif-amount">{ "Amount (dollars)" }</label>
                    <input id="whatif-amount" type="text" inputmode="decimal" autocomplete="off"
                           data-testid="whatif-amount" value={(*amount_text).clone()}
                           aria-invalid={amount_invalid.to_string()}
                           aria-describedby={amount_invalid.then_some("whatif-amount-error")}
                           oninput={on_amount} />
                    if let (true, Err(error)) = (amount_invalid, &amount) {
                        <span class="field-error" id="whatif-amount-error" role="alert" style={WRAP}>{ error.to_string() }</span>
                    }
                </div>
                if !preview.is_empty() {
                    <p class="preview-sentence" data-testid="whatif-preview" aria-live="polite">{ preview }</p>
                }
            </div>

            <RulesEditor rules={Rc::clone(&rules)} use_log={*use_log} on_rules={on_rules} on_use_log={on_use_log} />

            <h3>{ "Share" }</h3>
            <div class="share">
                <div class="field">
                    <label for="whatif-share">{ "Link to this scenario" }</label>
                    <input id="whatif-share" type="text" readonly=true value={link} ref={share_ref}
                           data-testid="whatif-share-url" />
                </div>
                <button type="button" onclick={on_copy} data-testid="whatif-copy-link">{ "Copy link" }</button>
                <span class="copy-status" role="status">{ (*copy_status).clone() }</span>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use mechfund_core::whatif::preview_donation;

    use super::*;

    fn initial() -> State {
        State::initial("main", &Rules::default(), [None; 10])
    }

    fn preview(state: &State, cents: i64) -> String {
        let now = Timestamp::parse("2025-01-01T00:00:00+00:00").expect("valid");
        let result = preview_donation(state, Cents(cents), None, &Rules::default(), stamp_for(state, now));
        preview_sentence(Cents(cents), &result)
    }

    #[test]
    fn member_input_accepts_whole_numbers_only() {
        assert_eq!(parse_members("279"), Ok(279));
        assert_eq!(parse_members(" 0 "), Ok(0));
        assert_eq!(parse_members("007"), Ok(7));
        assert_eq!(parse_members("10000000"), Ok(10_000_000));
        assert!(parse_members("10000001").is_err());
        assert!(parse_members("99999999999999999999999").is_err());
        assert_eq!(parse_members("-5"), Err("A member count cannot be negative.".to_owned()));
        assert!(parse_members("").is_err());
        assert!(parse_members("1.5").is_err());
        assert!(parse_members("1e3").is_err());
        assert!(parse_members("abc").is_err());
        assert!(parse_members("-").is_err());
    }

    #[test]
    fn members_default_and_slider_range() {
        assert_eq!(resolve_members(Some(279), Some(50)), 279);
        assert_eq!(resolve_members(None, Some(50)), 50);
        assert_eq!(resolve_members(None, None), 100);
        assert_eq!(slider_max(100), 10_000);
        assert_eq!(slider_max(7_000), 14_000);
    }

    #[test]
    fn goal_table_matches_the_formula_by_hand() {
        // Level 1: $10.00 base + (279 - 10) * $0.10 = $10.00 + $26.90 = $36.90.
        let table = goal_table(279, &Rules::default());
        assert_eq!(table.len(), 10);
        assert_eq!((table[0].base, table[0].dynamic, table[0].goal), (1000, 2690, 3690));
        assert_eq!(money(table[0].goal), "$36.90");
        // Level 10: $100.00 + $26.90.
        assert_eq!(money(table[9].goal), "$126.90");
        // 10 members or fewer: the base cost.
        assert_eq!(goal_table(10, &Rules::default())[1].goal, 1500);
    }

    #[test]
    fn frozen_goals_come_from_level_ups_and_the_current_level() {
        let up = |from: u8, old_goal: i64| LevelUp {
            seq: 5,
            ts: "2025-01-01T00:00:00+00:00".into(),
            from_level: from,
            to_level: from + 1,
            exact_hit: false,
            old_goal,
            new_goal: 0,
            member_count: 0,
            bonus: 0,
        };
        let state = State { level: 3, goal_requirement: 2270, ..initial() };
        let ups = [up(1, 1000), up(2, 1770)];
        assert_eq!(frozen_goal(&state, &ups, 1), Some(1000));
        assert_eq!(frozen_goal(&state, &ups, 2), Some(1770));
        assert_eq!(frozen_goal(&state, &ups, 3), Some(2270));
        assert_eq!(frozen_goal(&state, &ups, 4), None);
        let top = State { level: 11, goal_requirement: 0, ..initial() };
        assert_eq!(frozen_goal(&top, &[], 10), None);
        assert_eq!(frozen_goal(&top, &[], 11), None);
    }

    #[test]
    fn preview_sentences_by_hand() {
        // Level 1 at 0 members: goal $10.00.
        let state = initial();
        assert_eq!(preview(&state, 500), "Donating $5.00 now would raise evolution to $5.00 of $10.00 (50%).");
        // Exactly the goal: level 2 (goal $15.00), bonus $1.00 of power.
        assert_eq!(
            preview(&state, 1000),
            "Donating $10.00 now would level the mech up to level 2 (exact hit bonus: +$1.00 power); \
             evolution would then be $0.00 of $15.00 (0%)."
        );
        // $30: 3000 - 1000 = 2000 carried into level 2, - 1500 = 500 carried into level 3 ($20.00).
        assert_eq!(
            preview(&state, 3000),
            "Donating $30.00 now would level the mech up to level 3 (2 level-ups); \
             evolution would then be $5.00 of $20.00 (25%)."
        );
        assert_eq!(
            preview(&state, 0),
            "Donating $0.00 now would be refused: amount: $0.00 is outside the allowed range $0.01..=$10,000.00."
        );
        let top = State { level: 11, goal_requirement: 0, ..initial() };
        assert_eq!(
            preview(&top, 250),
            "Donating $2.50 now would add $2.50 of power; the mech is already at the maximum level, 11."
        );
        // Level 10 with $120.00 of $126.90: $6.90 reaches level 11 (exactly: bonus).
        let ten = State { level: 10, evo_acc: 12_000, goal_requirement: 12_690, ..initial() };
        assert_eq!(
            preview(&ten, 690),
            "Donating $6.90 now would level the mech up to level 11 (exact hit bonus: +$1.00 power), the maximum level."
        );
    }

    fn encode(text: &str) -> String {
        // encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as UTF-8 %XX.
        let mut out = String::new();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn share_urls_keep_the_page_parameters() {
        let kept = [("log", "https://a.test/x y.jsonl".to_owned()), ("mech", "main".to_owned())];
        assert_eq!(
            share_url("https://d.test/app/", &kept, 279, Some(Cents(550)), &Rules::default(), encode),
            "https://d.test/app/?log=https%3A%2F%2Fa.test%2Fx%20y.jsonl&mech=main&members=279&amount=5.50"
        );
        assert_eq!(share_url("/", &[], 0, None, &Rules::default(), encode), "/?members=0");
        assert_eq!(dollars(Cents(5)), "0.05");
        assert_eq!(dollars(Cents(100_000)), "1000.00");
    }

    #[test]
    fn share_urls_carry_custom_rules_as_a_data_url() {
        let rules = Rules { freebie_members: 25, ..Rules::default() };
        let link = share_url("/", &[], 50, None, &rules, encode);
        let (head, value) = link.split_once("&rules=").expect("a rules parameter");
        assert_eq!(head, "/?members=50");
        // Encoded twice: once inside the data URL, once as a query value ("{" -> %7B -> %257B).
        assert!(value.starts_with("data%3Aapplication%2Fjson%2C%257B%2522"), "{value}");
        let data_url = decode(value);
        let json = decode(data_url.strip_prefix("data:application/json,").expect("a data URL"));
        assert_eq!(Rules::from_json(&json), Ok(rules));
    }

    #[test]
    fn start_prefers_the_url_then_storage() {
        let stored = Scenario { members: Some(42), amount: Some("7".into()), use_log_rules: Some(false) };
        let custom = Rules { cost_per_member: 20, ..Rules::default() };
        let s = start(Some(stored.clone()), Some(custom.clone()), Some("279"), Some("1.25".into()), false);
        assert_eq!(s, Start { members: Some(279), amount: "1.25".into(), use_log: false, custom: custom.clone() });
        let s = start(Some(stored.clone()), None, Some("lots"), None, true);
        assert_eq!(s, Start { members: Some(42), amount: "7".into(), use_log: true, custom: Rules::default() });
        let s = start(None, None, None, None, false);
        assert_eq!(s, Start { members: None, amount: "5.00".into(), use_log: true, custom: Rules::default() });
    }
}
