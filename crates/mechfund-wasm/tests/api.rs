//! The JS API in a real browser (headless Chromium via wasm-bindgen-test-runner):
//! every conformance case through `replayLog`/`goalTable`, and the errors bad input gets.
#![cfg(target_arch = "wasm32")]

use mechfund_conformance::{Backend, Failure};
use mechfund_wasm::{default_rules, goal_for, goal_table_js, preview_donation_js, replay_log};
use serde_json::{Value, json};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A JS value from JSON, as a page would pass it.
fn js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).expect("valid JSON")
}

fn json_of(value: &JsValue) -> Value {
    let text = js_sys::JSON::stringify(value).expect("stringify").as_string().expect("a string");
    serde_json::from_str(&text).expect("JSON")
}

fn message(error: &JsValue) -> String {
    assert!(error.is_instance_of::<js_sys::Error>(), "not a JS Error: {error:?}");
    js_sys::Error::from(error.clone()).message().into()
}

struct Wasm;

impl Backend for Wasm {
    fn replay(&self, log: &str, rules: Option<&Value>, options: &Value) -> Result<Value, Failure> {
        let mut options = options.clone();
        if let Some(rules) = rules {
            options["rules"] = rules.clone();
        }
        match replay_log(&JsValue::from(log), js(&options)) {
            Ok(result) => Ok(json_of(&result)),
            Err(error) => {
                let line = js_sys::Reflect::get(&error, &JsValue::from_str("line")).ok().and_then(|l| l.as_f64());
                match line {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a line number")]
                    Some(line) => Err(Failure::Strict { line: line as u64 }),
                    None => Err(Failure::Other(message(&error))),
                }
            }
        }
    }

    fn goal_table(&self, members: i64, rules: Option<&Value>) -> Result<Value, String> {
        #[allow(clippy::cast_precision_loss, reason = "small test numbers")]
        let members = JsValue::from_f64(members as f64);
        let rules = rules.map_or(JsValue::UNDEFINED, js);
        goal_table_js(members, rules).map(|t| json_of(&t)).map_err(|e| message(&e))
    }
}

#[wasm_bindgen_test]
fn every_conformance_case_passes_in_the_browser() {
    match mechfund_conformance::run_all(&Wasm) {
        Ok(count) => assert!(count >= 90, "only {count} cases ran"),
        Err(report) => panic!("{report}"),
    }
}

const LOG: &str = concat!(
    r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":400}}"#,
    "\n",
    r#"{"seq":2,"ts":"2025-01-01T12:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":600}}"#,
    "\n",
);

#[wasm_bindgen_test]
fn replay_log_accepts_now_as_text_or_epoch_milliseconds() {
    // 400, 12 h decay 50 -> 350, then 600: 1000 = goal, exact hit: level 2, power 100, goal 1500.
    // One day after the last event at 100/day: power 0.
    let text = json_of(&replay_log(&JsValue::from(LOG), js(&json!({"now": "2025-01-02T12:00:00Z"}))).expect("replays"));
    assert_eq!(text["state"]["level"], 2);
    assert_eq!(text["display"]["power_now"], 0);
    assert_eq!(text["display"]["now"], "2025-01-02T12:00:00Z");
    // 2025-01-02T00:00:00Z = 1735776000000 ms: half a day, 50 lost.
    let millis =
        json_of(&replay_log(&JsValue::from(LOG), js(&json!({"now": 1_735_776_000_000_i64}))).expect("replays"));
    assert_eq!(millis["display"]["power_now"], 50);
    assert_eq!(millis["display"]["now"], "2025-01-02T00:00:00+00:00");
}

#[wasm_bindgen_test]
fn replay_log_errors_name_the_field_or_line() {
    let cases = [
        (json!({"now": "tomorrow"}), "options.now"),
        (json!({"now": 1.5}), "options.now"),
        (json!({"now": true}), "options.now"),
        (json!({"mech": 5}), "options.mech"),
        (json!({"strict": "yes"}), "options.strict"),
        (json!({"stirct": true}), "options.stirct"),
        (json!({"rules": {"freebie_members": -1}}), "freebie_members"),
        (json!({"rules": {"cost_per_member": 0.5}}), "cost_per_member"),
        (json!({"rules": {"decay_per_day": {"levels": {"12": 1}}}}), "decay_per_day.levels.12"),
        (json!([1, 2]), "options"),
    ];
    for (options, needle) in cases {
        let error = replay_log(&JsValue::from(LOG), js(&options)).expect_err(&options.to_string());
        let text = message(&error);
        assert!(text.contains(needle), "{options}: {text}");
    }
    let bad = format!("{LOG}not json\n");
    let error = replay_log(&JsValue::from(bad), js(&json!({"strict": true}))).expect_err("strict stops");
    assert!(message(&error).starts_with("line 3"), "{}", message(&error));
    let line = js_sys::Reflect::get(&error, &JsValue::from_str("line")).expect("line property");
    assert_eq!(line.as_f64(), Some(3.0));
}

#[wasm_bindgen_test]
fn replay_log_reads_any_string_and_refuses_other_values() {
    // LOG with donors of one, two, three and four bytes per character in UTF-8 (the last a
    // surrogate pair in JS) and a lone surrogate, which becomes U+FFFD: the same two donations.
    let lone = js_sys::JsString::from_char_code1(0xD800);
    let donor = |line: &str, name: &js_sys::JsString| {
        let (head, tail) = line.split_at(line.len() - 2);
        js_sys::JsString::from(format!("{head},\"donor\":\"")).concat(name).concat(&format!("\"{tail}\n").into())
    };
    let mut lines = LOG.lines();
    let first = donor(lines.next().expect("line 1"), &"é€😀".into());
    let second = donor(lines.next().expect("line 2"), &lone);
    let text = first.concat(&second);
    let result = json_of(&replay_log(&text.into(), js(&json!({"now": "2025-01-02T12:00:00Z"}))).expect("replays"));
    // No bad line: only LOG's own warnings, that it records neither the level-up nor the bonus.
    let kinds: Vec<&str> =
        result["diagnostics"].as_array().expect("diagnostics").iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["levelup_missing", "levelup_missing"]);
    assert_eq!(result["state"]["level"], 2);
    assert_eq!(result["state"]["cumulative_donations_cents"], 1000);
    assert_eq!(result["state"]["last_event_seq"], 2);

    for value in [JsValue::from(5.0), JsValue::NULL, JsValue::UNDEFINED, js(&json!(["a"]))] {
        let error = replay_log(&value, JsValue::UNDEFINED).expect_err("refused");
        assert!(message(&error).starts_with("text: expected a string"), "{}", message(&error));
    }
}

#[wasm_bindgen_test]
fn goal_for_follows_the_seed_examples_and_refuses_bad_numbers() {
    let goal = |level: f64, members: f64| goal_for(level.into(), members.into(), JsValue::UNDEFINED);
    assert_eq!(goal(1.0, 15.0).expect("valid"), 1050.0);
    assert_eq!(goal(1.0, -5.0).expect("valid"), 1000.0);
    assert_eq!(goal(1.0, 999_999.0).expect("valid"), 1_000_000.0);
    assert_eq!(goal(11.0, 50.0).expect("valid"), 0.0);
    // Static difficulty x1.5 on level 1 with 50 members: 1400 * 150 / 100 = 2100.
    let static_rules = js(&json!({"difficulty": {"mode": "static", "multiplier_percent": 150}}));
    assert_eq!(goal_for(1.0.into(), 50.0.into(), static_rules).expect("valid"), 2100.0);
    for (level, members, needle) in [
        (JsValue::from(0.0), JsValue::from(10.0), "level"),
        (JsValue::from(12.0), JsValue::from(10.0), "level"),
        (JsValue::from(1.5), JsValue::from(10.0), "level"),
        (JsValue::from("1"), JsValue::from(10.0), "level"),
        (JsValue::from(1.0), JsValue::from(10.5), "members"),
        (JsValue::from(1.0), JsValue::from(f64::NAN), "members"),
    ] {
        let text = message(&goal_for(level, members, JsValue::UNDEFINED).expect_err("refused"));
        assert!(text.contains(needle), "{text}");
    }
    let text = message(&goal_for(1.0.into(), 1.0.into(), js(&json!({"colour": 1}))).expect_err("refused"));
    assert!(text.contains("colour"), "{text}");
}

#[wasm_bindgen_test]
fn goal_table_and_default_rules() {
    let table = json_of(&goal_table_js(50.0.into(), JsValue::UNDEFINED).expect("valid"));
    assert_eq!(table[0], json!({"level": 1, "base": 1000, "dynamic": 400, "goal": 1400}));
    assert_eq!(table.as_array().map(Vec::len), Some(10));
    let rules = json_of(&default_rules().expect("defaults"));
    assert_eq!(rules["level_base_costs"][9], 10000);
    assert_eq!(rules["difficulty"], json!({"mode": "dynamic"}));
}

#[wasm_bindgen_test]
fn preview_donation_shows_the_level_up_it_would_cause() {
    let result = replay_log(&JsValue::from(LOG), JsValue::UNDEFINED).expect("replays");
    let state = js_sys::Reflect::get(&result, &JsValue::from_str("state")).expect("state");
    // Level 2, evo 0, goal 1500: donating 1600 levels up to 3 with a carry of 100; the new goal is
    // goal(3, 20 members) = 2000 + 10 * 10 = 2100, and the count is recorded first.
    let options = js(&json!({"now": "2025-01-01T12:00:00Z", "members": 20}));
    let preview = json_of(&preview_donation_js(state.clone(), 1600.0.into(), options).expect("valid"));
    let types: Vec<&str> =
        preview["events"].as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["MemberCountUpdated", "DonationAdded", "LevelUpCommitted"]);
    assert_eq!(preview["events"][0]["seq"], 3);
    assert_eq!(preview["events"][1]["payload"]["units"], 1600);
    assert_eq!(preview["state"]["level"], 3);
    assert_eq!(preview["state"]["evo_acc"], 100);
    assert_eq!(preview["state"]["goal_requirement"], 2100);
    for (amount, needle) in [(0.0, "amount"), (1_000_001.0, "amount"), (5.5, "amountCents")] {
        let error = preview_donation_js(state.clone(), amount.into(), JsValue::UNDEFINED).expect_err("refused");
        assert!(message(&error).contains(needle), "{amount}: {}", message(&error));
    }
    let error = preview_donation_js(js(&json!({"level": 2})), 100.0.into(), JsValue::UNDEFINED).expect_err("refused");
    assert!(message(&error).contains("state"), "{}", message(&error));
    let error = preview_donation_js(state, 100.0.into(), js(&json!({"members": "many"}))).expect_err("refused");
    assert!(message(&error).contains("options.members"), "{}", message(&error));
}
