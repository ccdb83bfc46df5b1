//! One form of donation management (a donation, a system donation, a member count or a power
//! gift). It previews its effect with the core's `decide` as you type; the server's answer is
//! the authority, and its errors are shown next to the field they name.
//!
//! A submission gets one idempotency key: a double click or a second Enter while it is pending
//! does nothing, and retrying the same values after a failure reuses the key, so one donation
//! is recorded once.

use std::cell::RefCell;
use std::rc::Rc;

use mechfund_core::decide::{Stamp, decide};
use mechfund_core::state::Effects;
use mechfund_core::{Cents, Command, EventBody, MemberSource, Now, Rules, State, display};
use serde_json::{Map, Value, json};
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::props::Admin;
use crate::api;
use crate::browser::focus;
use crate::format::{count, join, money};

/// The four forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Donation,
    System,
    Members,
    Gift,
}

/// One input of a form: its API field, label, input type and hint.
struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    required: bool,
    hint: &'static str,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Donation => "donation",
            Kind::System => "system",
            Kind::Members => "members",
            Kind::Gift => "gift",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Donation => "Donation",
            Kind::System => "System donation",
            Kind::Members => "Member count",
            Kind::Gift => "Power gift",
        }
    }

    fn submit(self) -> &'static str {
        match self {
            Kind::Donation => "Record donation",
            Kind::System => "Record system donation",
            Kind::Members => "Record member count",
            Kind::Gift => "Grant power gift",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Donation => "donations",
            Kind::System => "system-donations",
            Kind::Members => "member-count",
            Kind::Gift => "power-gifts",
        }
    }

    fn fields(self) -> &'static [Field] {
        const AMOUNT: Field = Field {
            name: "amount",
            label: "Amount ($)",
            kind: "text",
            required: true,
            hint: "Dollars, e.g. 5 or 5.50",
        };
        match self {
            Kind::Donation => &[
                AMOUNT,
                Field { name: "donor", label: "Donor", kind: "text", required: false, hint: "Optional" },
                Field {
                    name: "member_count",
                    label: "Member count",
                    kind: "number",
                    required: false,
                    hint: "Optional: priced into the next goal if this donation levels up",
                },
            ],
            Kind::System => &[
                Field { hint: "Dollars of power, up to $1,000", ..AMOUNT },
                Field { name: "event_name", label: "Event", kind: "text", required: true, hint: "What it celebrates" },
                Field { name: "description", label: "Description", kind: "text", required: false, hint: "Optional" },
            ],
            Kind::Members => &[Field {
                name: "member_count",
                label: "Member count",
                kind: "number",
                required: true,
                hint: "Community members right now",
            }],
            Kind::Gift => &[Field {
                name: "campaign_id",
                label: "Campaign",
                kind: "text",
                required: true,
                hint: "Each campaign gifts once per mech, only while it is offline",
            }],
        }
    }

    fn names(self) -> Vec<&'static str> {
        self.fields().iter().map(|f| f.name).collect()
    }
}

/// A non-blank text, trimmed.
fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The request body: the values as typed (the server checks them).
fn body(kind: Kind, values: &[String]) -> Value {
    let mut out = Map::new();
    for (field, value) in kind.fields().iter().zip(values) {
        let Some(value) = text(value) else { continue };
        let value = match (field.kind, value.parse::<i64>()) {
            ("number", Ok(n)) => json!(n),
            _ => json!(value),
        };
        out.insert(field.name.to_owned(), value);
    }
    Value::Object(out)
}

/// The command the values describe, or the field and message of the first problem.
fn command(kind: Kind, values: &[String]) -> Result<Command, (Option<&'static str>, String)> {
    let get = |i: usize| values.get(i).and_then(|v| text(v));
    let amount = |i: usize| -> Result<Cents, (Option<&'static str>, String)> {
        let value = get(i).ok_or((Some("amount"), "amount: enter an amount".to_owned()))?;
        Cents::parse_dollars(&value).map_err(|e| (Some("amount"), format!("amount: {e}")))
    };
    let members = |i: usize, required: bool| -> Result<Option<i64>, (Option<&'static str>, String)> {
        match get(i) {
            None if required => Err((Some("member_count"), "member_count: enter a whole number".to_owned())),
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| (Some("member_count"), format!("member_count: {v:?} is not a whole number"))),
        }
    };
    Ok(match kind {
        Kind::Donation => Command::AddDonation {
            amount: amount(0)?,
            donor: get(1),
            channel_id: None,
            donation_id: None,
            idempotency_key: None,
            member_count: members(2, false)?,
        },
        Kind::System => Command::AddSystemDonation {
            amount: amount(0)?,
            event_name: get(1).unwrap_or_default(),
            description: get(2),
            idempotency_key: None,
        },
        Kind::Members => Command::UpdateMemberCount(MemberSource::Count(members(0, true)?.unwrap_or_default())),
        Kind::Gift => Command::GrantPowerGift { campaign_id: get(0).unwrap_or_default() },
    })
}

/// What the values would do, as a sentence, or the problem `decide` finds.
pub fn preview(
    kind: Kind,
    values: &[String],
    state: &State,
    rules: &Rules,
    now: &Now,
) -> Result<String, (Option<&'static str>, String)> {
    let command = command(kind, values)?;
    let stamp = Stamp { next_seq: state.last_event_seq + 1, now: now.ts };
    let fields = kind.names();
    let events = decide(state, &command, rules, stamp).map_err(|e| {
        let message = e.to_string();
        (api::field_of(&message, &fields), message)
    })?;
    let mut next = state.clone();
    let mut effects = Effects::default();
    for event in &events {
        next.apply(&event.record(), rules, &mut effects);
    }
    let before = display(state, rules, Some(now));
    let after = display(&next, rules, Some(now));
    let power = format!("power {} → {}", money(before.power_now), money(after.power_now));
    Ok(match (kind, &command) {
        (Kind::Donation, Command::AddDonation { amount, .. }) => match effects.level_ups.last() {
            Some(up) => {
                let goal = if up.to_level >= mechfund_core::rules::MAX_LEVEL {
                    "the maximum level".to_owned()
                } else {
                    format!("next goal {}", money(next.goal_requirement))
                };
                let exact =
                    if effects.level_ups.iter().any(|u| u.exact_hit) { ", an exact hit (bonus power)" } else { "" };
                format!("This donation of {amount} levels the mech up to {} ({goal}{exact}).", up.to_level)
            }
            None if next.level >= mechfund_core::rules::MAX_LEVEL => {
                format!("This donation of {amount} adds power at the maximum level: {power}.")
            }
            None => format!(
                "This donation of {amount} brings evolution to {} of {} ({}%); {power}.",
                money(next.evo_acc),
                money(next.goal_requirement),
                after.evo_percent
            ),
        },
        (Kind::System, Command::AddSystemDonation { amount, .. }) => {
            format!("This system donation adds {amount} of power ({power}); evolution is unchanged.")
        }
        (Kind::Members, _) => {
            let goal = if next.goal_requirement == state.goal_requirement {
                format!(
                    "the goal of level {} stays {} until the next level-up",
                    next.level,
                    money(next.goal_requirement)
                )
            } else {
                format!("the level-{} goal becomes {}", next.level, money(next.goal_requirement))
            };
            format!("The member count becomes {}; {goal}.", count(next.last_user_count_sample))
        }
        (Kind::Gift, _) => {
            let units = events.iter().find_map(|e| match &e.body {
                EventBody::PowerGiftGranted { power_units, .. } => Some(*power_units),
                _ => None,
            });
            format!("This gift grants {} of power ({power}).", money(units.unwrap_or_default()))
        }
        _ => String::new(),
    })
}

/// What the server recorded, from a 201 body.
fn recorded(kind: Kind, answer: &Value) -> String {
    let events = answer["events"].as_array().map_or(&[][..], Vec::as_slice);
    let first = events.iter().find(|e| e["type"] != "MemberCountUpdated").or(events.first());
    let seq = first.and_then(|e| e["seq"].as_u64()).map_or_else(String::new, |s| format!(" as #{s}"));
    let level = answer["state"]["level"].as_u64().map_or_else(String::new, |l| format!(" The mech is at level {l}."));
    let what = match kind {
        Kind::Donation => "Donation recorded",
        Kind::System => "System donation recorded",
        Kind::Members => "Member count recorded",
        Kind::Gift => "Power gift granted",
    };
    format!("{what}{seq}.{level}")
}

/// The browser's clock, or the page's frozen `now`.
fn now_or(now: Option<&Now>) -> Now {
    #[allow(clippy::cast_possible_truncation, reason = "Date.now() is whole milliseconds")]
    now.cloned().unwrap_or_else(|| Now::from_millis(js_sys::Date::now() as i64))
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub kind: Kind,
    pub admin: Admin,
    pub state: State,
    pub rules: Rc<Rules>,
    pub now: Option<Now>,
}

/// What the form shows after the last submission.
#[derive(Clone, Debug, Default, PartialEq)]
struct Outcome {
    field: Option<(&'static str, String)>,
    form: Option<String>,
    done: Option<String>,
}

#[function_component(WriteForm)]
pub fn write_form(props: &Props) -> Html {
    let kind = props.kind;
    let fields = kind.fields();
    let values = use_state(|| vec![String::new(); fields.len()]);
    let outcome = use_state(Outcome::default);
    let pending = use_state(|| false);
    // Set synchronously, so a second submit event in the same task sees it.
    let busy = use_mut_ref(|| false);
    // The body and key of the last unconfirmed submission: the same values reuse the key.
    let attempt: Rc<RefCell<Option<(String, String)>>> = use_mut_ref(|| None);

    let now = now_or(props.now.as_ref());
    let shown = if values.iter().all(|v| v.trim().is_empty()) {
        None
    } else {
        Some(preview(kind, &values, &props.state, &props.rules, &now))
    };

    let on_input = |i: usize| {
        let values = values.clone();
        let outcome = outcome.clone();
        Callback::from(move |e: InputEvent| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else { return };
            let mut next = (*values).clone();
            next[i] = input.value();
            values.set(next);
            if outcome.field.is_some() || outcome.form.is_some() {
                outcome.set(Outcome { done: outcome.done.clone(), ..Outcome::default() });
            }
        })
    };
    let on_submit = {
        let values = values.clone();
        let outcome = outcome.clone();
        let pending = pending.clone();
        let admin = props.admin.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy.borrow() {
                return;
            }
            let body = body(kind, &values);
            let text = body.to_string();
            let key = match &*attempt.borrow() {
                Some((sent, key)) if *sent == text => key.clone(),
                _ => api::new_key(),
            };
            *attempt.borrow_mut() = Some((text, key.clone()));
            *busy.borrow_mut() = true;
            pending.set(true);
            let path = format!("mechs/{}/{}", api::encode(&admin.mech), kind.path());
            let (busy, attempt, values, outcome, pending, admin) =
                (busy.clone(), attempt.clone(), values.clone(), outcome.clone(), pending.clone(), admin.clone());
            spawn_local(async move {
                let answer = api::post(&path, &body, &admin.token, Some(&key)).await;
                *busy.borrow_mut() = false;
                pending.set(false);
                match answer {
                    Ok(answer) => {
                        *attempt.borrow_mut() = None;
                        values.set(vec![String::new(); kind.fields().len()]);
                        outcome.set(Outcome { done: Some(recorded(kind, &answer)), ..Outcome::default() });
                        admin.on_written.emit(());
                        focus(&join(&[kind.id(), "-", kind.fields()[0].name]));
                    }
                    Err(failure) => {
                        let message = failure.message();
                        match failure.field(&kind.names()) {
                            Some(field) => {
                                focus(&join(&[kind.id(), "-", field]));
                                outcome.set(Outcome { field: Some((field, message)), ..Outcome::default() });
                            }
                            None => outcome.set(Outcome { form: Some(message), ..Outcome::default() }),
                        }
                    }
                }
            });
        })
    };

    let id = kind.id();
    // The element ids: "{id}{suffix}", built by one small function instead of a `format!` each.
    let id_with = |suffix: &str| join(&[id, suffix]);
    let preview_id = id_with("-preview");
    html! {
        <form class="write-form" data-testid={id_with("-form")} onsubmit={on_submit} novalidate=true
              aria-labelledby={id_with("-title")} aria-busy={if *pending { "true" } else { "false" }}>
            <h3 id={id_with("-title")}>{ kind.title() }</h3>
            { for fields.iter().enumerate().map(|(i, field)| {
                let input_id = join(&[id, "-", field.name]);
                let error = outcome.field.as_ref().filter(|(f, _)| *f == field.name).map(|(_, m)| m.clone());
                let hint_id = join(&[&input_id, "-hint"]);
                let error_id = join(&[&input_id, "-error"]);
                let described = if error.is_some() {
                    join(&[&error_id, " ", &hint_id, " ", &preview_id])
                } else {
                    join(&[&hint_id, " ", &preview_id])
                };
                html! {
                    <div class="field">
                        <label for={input_id.clone()}>
                            { field.label }
                            if field.required { <span aria-hidden="true">{ " *" }</span> }
                        </label>
                        <input id={input_id.clone()} name={field.name} type={field.kind} data-testid={input_id}
                               value={values[i].clone()} oninput={on_input(i)} required={field.required}
                               inputmode={if field.name == "amount" { "decimal" } else { "" }}
                               min={if field.kind == "number" { "0" } else { "" }}
                               autocomplete="off"
                               aria-invalid={if error.is_some() { "true" } else { "false" }} aria-describedby={described} />
                        <span class="hint" id={hint_id}>{ field.hint }</span>
                        if let Some(message) = error {
                            <p class="error field-error" id={error_id.clone()} data-testid={error_id}>{ message }</p>
                        }
                    </div>
                }
            }) }
            <p class={if matches!(shown, Some(Err(_))) { "preview warn" } else { "preview" }} id={preview_id.clone()}
               data-testid={preview_id} aria-live="polite">
                { match &shown {
                    None => "Fill in the form to preview its effect.".to_owned(),
                    Some(Ok(text)) => text.clone(),
                    Some(Err((_, message))) => join(&["Not valid yet: ", message]),
                } }
            </p>
            if let Some(message) = &outcome.form {
                <p class="error" role="alert" data-testid={id_with("-error")}>{ message }</p>
            }
            <div class="actions">
                <button type="submit" class="primary" data-testid={id_with("-submit")} disabled={*pending}>
                    { if *pending { "Recording…" } else { kind.submit() } }
                </button>
            </div>
            if let Some(message) = &outcome.done {
                <p class="done" role="status" data-testid={id_with("-result")}>{ message }</p>
            }
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn at(text: &str) -> Now {
        Now::parse(text).expect("valid")
    }

    #[test]
    fn previews_say_what_a_donation_does() {
        let rules = Rules::default();
        let state = State::initial("main", &rules, [None; 10]);
        let now = at("2025-01-01T00:00:00Z");
        // Level 1 costs $10.00 for 0 members: $5.00 is half way; $10.00 levels up exactly.
        let half = preview(Kind::Donation, &values(&["5", "ann", ""]), &state, &rules, &now).expect("valid");
        assert_eq!(half, "This donation of $5.00 brings evolution to $5.00 of $10.00 (50%); power $0.00 → $5.00.");
        let up = preview(Kind::Donation, &values(&["10.00", "", ""]), &state, &rules, &now).expect("valid");
        assert_eq!(
            up,
            "This donation of $10.00 levels the mech up to 2 (next goal $15.00, an exact hit (bonus power))."
        );
        // $25 + $0.01: 1000 (level 1) + 1500 (level 2) leaves 1 cent at level 3.
        let two = preview(Kind::Donation, &values(&["25.01", "", ""]), &state, &rules, &now).expect("valid");
        assert!(two.contains("levels the mech up to 3 (next goal $20.00)"), "{two}");
        let bad = preview(Kind::Donation, &values(&["5.555", "", ""]), &state, &rules, &now).expect_err("sub-cent");
        assert_eq!(bad.0, Some("amount"));
        let members = preview(Kind::Donation, &values(&["5", "", "x"]), &state, &rules, &now).expect_err("count");
        assert_eq!(members.0, Some("member_count"));
    }

    #[test]
    fn previews_of_the_other_forms() {
        let rules = Rules::default();
        let state = State::initial("main", &rules, [None; 10]);
        let now = at("2025-01-01T00:00:00Z");
        // 50 members at level 1 before any donation: 1000 + 40 * 10 = 1400.
        let members = preview(Kind::Members, &values(&["50"]), &state, &rules, &now).expect("valid");
        assert_eq!(members, "The member count becomes 50; the level-1 goal becomes $14.00.");
        let system = preview(Kind::System, &values(&["1", "launch", ""]), &state, &rules, &now).expect("valid");
        assert_eq!(system, "This system donation adds $1.00 of power (power $0.00 → $1.00); evolution is unchanged.");
        let no_name = preview(Kind::System, &values(&["1", "", ""]), &state, &rules, &now).expect_err("name");
        assert_eq!(no_name.0, Some("event_name"));
        let gift = preview(Kind::Gift, &values(&["spring"]), &state, &rules, &now).expect("an offline mech");
        assert!(gift.starts_with("This gift grants $"), "{gift}");
    }

    #[test]
    fn bodies_hold_what_was_typed() {
        assert_eq!(body(Kind::Donation, &values(&[" 5.00 ", "", "12"])), json!({"amount": "5.00", "member_count": 12}));
        assert_eq!(body(Kind::Members, &values(&["abc"])), json!({"member_count": "abc"}));
        assert_eq!(body(Kind::Gift, &values(&["spring"])), json!({"campaign_id": "spring"}));
    }
}
