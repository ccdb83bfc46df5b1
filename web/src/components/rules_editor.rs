//! The rules editor of the what-if calculator: the base costs, member pricing, difficulty and
//! decay of spec §2.1 as form fields. The form is turned into the rules' JSON form and checked
//! by the core (`Rules::from_value`), so its error names the key path; until the form is valid
//! again the calculator keeps the last valid rules.

use std::rc::Rc;

use mechfund_core::rules::Difficulty;
use mechfund_core::{Rules, RulesError};
use serde_json::{Value, json};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::format::money;

/// The editable fields as typed, plus the rules they started from (for the keys without a
/// field: caps, the exact-hit bonus, per-level decay overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesForm {
    /// Cents, levels 1..=10.
    pub base_costs: [String; 10],
    pub freebie_members: String,
    /// Cents per member beyond the free ones.
    pub cost_per_member: String,
    pub static_difficulty: bool,
    /// Only used with static difficulty.
    pub multiplier_percent: String,
    /// Cents per day (the default rate when the rules have per-level overrides).
    pub decay_per_day: String,
    /// Where the fields came from.
    pub rest: Rules,
}

/// One field of the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    BaseCost(usize),
    FreebieMembers,
    CostPerMember,
    MultiplierPercent,
    DecayPerDay,
}

impl Field {
    /// Whether a rules error at `path` is about this field.
    #[must_use]
    pub fn matches(self, path: &str) -> bool {
        match self {
            Field::BaseCost(i) => path == format!("level_base_costs[{i}]") || path == "level_base_costs",
            Field::FreebieMembers => path == "freebie_members",
            Field::CostPerMember => path == "cost_per_member",
            Field::MultiplierPercent => path.starts_with("difficulty"),
            Field::DecayPerDay => path == "decay_per_day" || path == "decay_per_day.default",
        }
    }

    fn id(self) -> String {
        match self {
            Field::BaseCost(i) => format!("rules-base-{}", i + 1),
            Field::FreebieMembers => "rules-freebie".to_owned(),
            Field::CostPerMember => "rules-per-member".to_owned(),
            Field::MultiplierPercent => "rules-multiplier".to_owned(),
            Field::DecayPerDay => "rules-decay".to_owned(),
        }
    }
}

/// A typed number as JSON: an integer when it reads as one, else the text itself, so the core's
/// error says what was found ("expected an integer, found \"1.5\"").
fn number(text: &str) -> Value {
    let text = text.trim();
    text.parse::<i64>().map_or_else(|_| Value::String(text.to_owned()), |n| json!(n))
}

impl RulesForm {
    /// The form showing `rules`.
    #[must_use]
    pub fn from_rules(rules: &Rules) -> RulesForm {
        let (static_difficulty, multiplier) = match rules.difficulty {
            Difficulty::Dynamic => (false, 150),
            Difficulty::Static { multiplier_percent } => (true, multiplier_percent),
        };
        RulesForm {
            base_costs: rules.level_base_costs.map(|c| c.to_string()),
            freebie_members: rules.freebie_members.to_string(),
            cost_per_member: rules.cost_per_member.to_string(),
            static_difficulty,
            multiplier_percent: multiplier.to_string(),
            decay_per_day: rules.decay_per_day.default.to_string(),
            rest: rules.clone(),
        }
    }

    /// The text of `field`.
    #[must_use]
    pub fn get(&self, field: Field) -> &str {
        match field {
            Field::BaseCost(i) => self.base_costs.get(i).map_or("", String::as_str),
            Field::FreebieMembers => &self.freebie_members,
            Field::CostPerMember => &self.cost_per_member,
            Field::MultiplierPercent => &self.multiplier_percent,
            Field::DecayPerDay => &self.decay_per_day,
        }
    }

    /// The form with `field` set to `text`.
    #[must_use]
    pub fn with(&self, field: Field, text: String) -> RulesForm {
        let mut next = self.clone();
        match field {
            Field::BaseCost(i) => {
                if let Some(slot) = next.base_costs.get_mut(i) {
                    *slot = text;
                }
            }
            Field::FreebieMembers => next.freebie_members = text,
            Field::CostPerMember => next.cost_per_member = text,
            Field::MultiplierPercent => next.multiplier_percent = text,
            Field::DecayPerDay => next.decay_per_day = text,
        }
        next
    }

    /// The rules' JSON form (spec §2.1) of what the form says.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let mut value = self.rest.to_value();
        if let Some(map) = value.as_object_mut() {
            map.insert("level_base_costs".into(), Value::Array(self.base_costs.iter().map(|c| number(c)).collect()));
            map.insert("freebie_members".into(), number(&self.freebie_members));
            map.insert("cost_per_member".into(), number(&self.cost_per_member));
            let difficulty = if self.static_difficulty {
                json!({"mode": "static", "multiplier_percent": number(&self.multiplier_percent)})
            } else {
                json!({"mode": "dynamic"})
            };
            map.insert("difficulty".into(), difficulty);
            let decay = number(&self.decay_per_day);
            match map.get_mut("decay_per_day") {
                Some(Value::Object(decay_map)) => {
                    decay_map.insert("default".into(), decay);
                }
                _ => {
                    map.insert("decay_per_day".into(), decay);
                }
            }
        }
        value
    }

    /// The rules the form describes, checked by the core.
    ///
    /// # Errors
    /// The core's [`RulesError`], with the key path of the first bad field.
    pub fn to_rules(&self) -> Result<Rules, RulesError> {
        Rules::from_value(&self.to_value())
    }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The rules the calculator uses now.
    pub rules: Rc<Rules>,
    /// Whether those are the log's rules.
    pub use_log: bool,
    /// New valid rules typed in the editor (switches away from the log's rules).
    pub on_rules: Callback<Rc<Rules>>,
    /// The "Use the log's rules" checkbox.
    pub on_use_log: Callback<bool>,
}

#[function_component(RulesEditor)]
pub fn rules_editor(props: &Props) -> Html {
    let form = use_state(|| RulesForm::from_rules(&props.rules));

    // Rules changed from outside (reset, the log's rules, a new log): show them, unless the
    // form already says exactly that.
    {
        let form = form.clone();
        use_effect_with(Rc::clone(&props.rules), move |rules| {
            if form.to_rules().as_ref() != Ok(&**rules) {
                form.set(RulesForm::from_rules(rules));
            }
        });
    }

    let result = form.to_rules();
    let error = result.as_ref().err().cloned();

    let update = {
        let form = form.clone();
        let rules = Rc::clone(&props.rules);
        let on_rules = props.on_rules.clone();
        move |next: RulesForm| {
            if let Ok(valid) = next.to_rules()
                && valid != *rules
            {
                on_rules.emit(Rc::new(valid));
            }
            form.set(next);
        }
    };

    let field = |field: Field, label: String, hint: Option<String>, disabled: bool| -> Html {
        let id = field.id();
        let text = form.get(field).to_owned();
        let invalid = error.as_ref().is_some_and(|e| field.matches(&e.path));
        let oninput = {
            let form = form.clone();
            let update = update.clone();
            Callback::from(move |e: InputEvent| {
                let input: HtmlInputElement = e.target_unchecked_into();
                update(form.with(field, input.value()));
            })
        };
        html! {
            <div class={classes!("field", invalid.then_some("invalid"))}>
                <label for={id.clone()}>{ label }</label>
                <input id={id.clone()} data-testid={id} type="text" inputmode="numeric" autocomplete="off" value={text}
                       aria-invalid={invalid.to_string()} {disabled} {oninput} />
                if let Some(hint) = hint {
                    <span class="field-hint">{ hint }</span>
                }
            </div>
        }
    };
    let cents_hint = |field: Field| form.get(field).trim().parse::<i64>().ok().filter(|c| *c >= 0).map(money);

    let on_difficulty = {
        let form = form.clone();
        let update = update.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            let mut next = (*form).clone();
            next.static_difficulty = select.value() == "static";
            update(next);
        })
    };
    let on_reset = {
        let on_rules = props.on_rules.clone();
        let form = form.clone();
        Callback::from(move |_: MouseEvent| {
            form.set(RulesForm::from_rules(&Rules::default()));
            on_rules.emit(Rc::new(Rules::default()));
        })
    };
    let on_use_log = {
        let cb = props.on_use_log.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            cb.emit(input.checked());
        })
    };
    let source = if props.use_log {
        "the log's rules"
    } else if *props.rules == Rules::default() {
        "the default rules"
    } else {
        "your own rules"
    };

    html! {
        <form class="rules-editor" aria-labelledby="rules-editor-title" onsubmit={Callback::from(|e: SubmitEvent| e.prevent_default())}>
            <h3 id="rules-editor-title">{ "Rules" }</h3>
            <p class="rules-source" data-testid="rules-source">{ format!("The calculator uses {source}.") }</p>
            <div class="rules-actions">
                <label class="check">
                    <input type="checkbox" checked={props.use_log} onchange={on_use_log} data-testid="rules-use-log" />
                    { " Use the log's rules" }
                </label>
                <button type="button" onclick={on_reset} data-testid="rules-reset">{ "Reset to defaults" }</button>
            </div>
            <fieldset class="rules-base-costs">
                <legend>{ "Base cost per level (cents)" }</legend>
                <div class="field-grid">
                    { for (0..10).map(|i| field(Field::BaseCost(i), format!("Level {}", i + 1), cents_hint(Field::BaseCost(i)), false)) }
                </div>
            </fieldset>
            <fieldset class="rules-members">
                <legend>{ "Members and difficulty" }</legend>
                <div class="field-grid">
                    { field(Field::FreebieMembers, "Free members".to_owned(), None, false) }
                    { field(Field::CostPerMember, "Cost per extra member (cents)".to_owned(), cents_hint(Field::CostPerMember), false) }
                    <div class="field">
                        <label for="rules-difficulty">{ "Difficulty" }</label>
                        <select id="rules-difficulty" data-testid="rules-difficulty" onchange={on_difficulty}>
                            <option value="dynamic" selected={!form.static_difficulty}>{ "Dynamic (goal = base + members)" }</option>
                            <option value="static" selected={form.static_difficulty}>{ "Static (× multiplier)" }</option>
                        </select>
                    </div>
                    { field(Field::MultiplierPercent, "Multiplier (percent, 150 = ×1.5)".to_owned(), None, !form.static_difficulty) }
                    { field(Field::DecayPerDay, "Power decay per day (cents)".to_owned(), cents_hint(Field::DecayPerDay), false) }
                </div>
            </fieldset>
            if let Some(error) = &error {
                <p class="field-error" role="alert" data-testid="rules-error" style="overflow-wrap: anywhere">
                    { error.to_string() }
                    { ". The calculator keeps the last valid rules." }
                </p>
            }
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_the_rules() {
        let defaults = Rules::default();
        let form = RulesForm::from_rules(&defaults);
        assert_eq!(form.base_costs[0], "1000");
        assert_eq!(form.base_costs[9], "10000");
        assert_eq!(form.freebie_members, "10");
        assert_eq!(form.cost_per_member, "10");
        assert_eq!(form.decay_per_day, "100");
        assert!(!form.static_difficulty);
        assert_eq!(form.to_value(), defaults.to_value());
        assert_eq!(form.to_rules(), Ok(defaults));

        let custom = Rules::from_json(
            r#"{"difficulty":{"mode":"static","multiplier_percent":150},"decay_per_day":{"default":50,"levels":{"2":250}},"max_goal":5000}"#,
        )
        .expect("valid");
        assert_eq!(RulesForm::from_rules(&custom).to_rules(), Ok(custom));
    }

    #[test]
    fn edits_become_the_json_form() {
        let form = RulesForm::from_rules(&Rules::default())
            .with(Field::BaseCost(0), " 1200 ".into())
            .with(Field::FreebieMembers, "25".into())
            .with(Field::MultiplierPercent, "200".into());
        let form = RulesForm { static_difficulty: true, ..form };
        let value = form.to_value();
        assert_eq!(value["level_base_costs"][0], json!(1200));
        assert_eq!(value["freebie_members"], json!(25));
        assert_eq!(value["difficulty"], json!({"mode": "static", "multiplier_percent": 200}));
        let rules = form.to_rules().expect("valid");
        // Level 1 at 35 members: (1200 + (35 - 25) * 10) * 200 / 100 = 2600.
        assert_eq!(rules.goal(1, 35), 2600);

        // A per-level decay override is kept; the field sets the default rate.
        let rules = Rules::from_json(r#"{"decay_per_day":{"default":100,"levels":{"3":7}}}"#).expect("valid");
        let value = RulesForm::from_rules(&rules).with(Field::DecayPerDay, "40".into()).to_value();
        assert_eq!(value["decay_per_day"], json!({"default": 40, "levels": {"3": 7}}));
    }

    #[test]
    fn errors_carry_the_key_path_of_the_field() {
        let form = RulesForm::from_rules(&Rules::default());
        let cases = [
            (form.with(Field::BaseCost(3), "abc".into()), "level_base_costs[3]", Field::BaseCost(3)),
            (form.with(Field::BaseCost(0), "0".into()), "level_base_costs[0]", Field::BaseCost(0)),
            (form.with(Field::FreebieMembers, "-1".into()), "freebie_members", Field::FreebieMembers),
            (form.with(Field::CostPerMember, "1.5".into()), "cost_per_member", Field::CostPerMember),
            (form.with(Field::DecayPerDay, "".into()), "decay_per_day", Field::DecayPerDay),
            (
                RulesForm { static_difficulty: true, ..form.with(Field::MultiplierPercent, "0".into()) },
                "difficulty.multiplier_percent",
                Field::MultiplierPercent,
            ),
        ];
        for (form, path, field) in cases {
            let error = form.to_rules().expect_err(path);
            assert_eq!(error.path, path);
            assert!(field.matches(&error.path));
            assert!(!Field::FreebieMembers.matches(&error.path) || field == Field::FreebieMembers);
        }
        // An invalid multiplier does not matter with dynamic difficulty.
        assert!(form.with(Field::MultiplierPercent, "x".into()).to_rules().is_ok());
    }
}
