//! What the dashboard remembers between visits, in `localStorage`: the what-if scenario and the
//! rules editor's rules. Reads are forgiving: missing, old or malformed entries are ignored, and
//! a browser without storage (private mode, blocked cookies) simply remembers nothing.

use gloo_storage::{LocalStorage, Storage};
use mechfund_core::Rules;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Key of the what-if scenario.
pub const SCENARIO_KEY: &str = "mechfund.whatif.v1";
/// Key of the rules editor's rules (the §2.1 JSON form).
pub const RULES_KEY: &str = "mechfund.rules.v1";

/// The most members the what-if accepts.
pub const MAX_MEMBERS: i64 = 10_000_000;
/// The longest preview amount kept (anything longer is not a real amount).
const MAX_AMOUNT_LEN: usize = 40;

/// The what-if inputs worth keeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// The member count the user chose; `None` follows the loaded log.
    #[serde(default)]
    pub members: Option<i64>,
    /// The preview amount as typed (dollars).
    #[serde(default)]
    pub amount: Option<String>,
    /// Whether the calculator uses the log's rules rather than the editor's own.
    #[serde(default)]
    pub use_log_rules: Option<bool>,
}

/// Reads a stored scenario, dropping whatever is out of range. `None` if it is not an object of
/// the expected shape.
#[must_use]
pub fn decode_scenario(value: Value) -> Option<Scenario> {
    let mut scenario: Scenario = serde_json::from_value(value).ok()?;
    scenario.members = scenario.members.filter(|m| (0..=MAX_MEMBERS).contains(m));
    scenario.amount = scenario.amount.filter(|a| a.chars().count() <= MAX_AMOUNT_LEN);
    Some(scenario)
}

/// Reads stored rules (the §2.1 JSON form); `None` if they are not valid rules.
#[must_use]
pub fn decode_rules(value: &Value) -> Option<Rules> {
    Rules::from_value(value).ok()
}

/// Whether `localStorage` can be touched without an exception (reading the property throws in
/// some privacy modes; gloo would panic there).
fn available() -> bool {
    let Some(window) = web_sys::window() else { return false };
    js_sys::Reflect::get(&window, &"localStorage".into()).is_ok_and(|storage| !storage.is_null_or_undefined())
}

fn read(key: &str) -> Option<Value> {
    if !available() {
        return None;
    }
    LocalStorage::get::<Value>(key).ok()
}

fn write(key: &str, value: &Value) {
    if available() {
        // A full or blocked storage only means the scenario is not remembered.
        let _ = LocalStorage::set(key, value);
    }
}

/// The stored scenario, if any.
#[must_use]
pub fn load_scenario() -> Option<Scenario> {
    read(SCENARIO_KEY).and_then(decode_scenario)
}

/// Remembers the scenario.
pub fn save_scenario(scenario: &Scenario) {
    if let Ok(value) = serde_json::to_value(scenario) {
        write(SCENARIO_KEY, &value);
    }
}

/// The stored editor rules, if any and valid.
#[must_use]
pub fn load_rules() -> Option<Rules> {
    read(RULES_KEY).as_ref().and_then(decode_rules)
}

/// Remembers the editor's rules.
pub fn save_rules(rules: &Rules) {
    write(RULES_KEY, &rules.to_value());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scenarios_round_trip_and_bad_parts_are_dropped() {
        let scenario = Scenario { members: Some(279), amount: Some("5.50".into()), use_log_rules: Some(false) };
        let value = serde_json::to_value(&scenario).expect("serialises");
        assert_eq!(decode_scenario(value), Some(scenario));
        assert_eq!(decode_scenario(json!({})), Some(Scenario::default()));
        assert_eq!(
            decode_scenario(json!({"members": -5, "amount": "7"})),
            Some(Scenario { members: None, amount: Some("7".into()), use_log_rules: None })
        );
        assert_eq!(decode_scenario(json!({"members": 10_000_001})).and_then(|s| s.members), None);
        assert_eq!(decode_scenario(json!({"members": "many"})), None);
        assert_eq!(decode_scenario(json!([1, 2])), None);
        assert_eq!(decode_scenario(json!("text")), None);
    }

    #[test]
    fn stored_rules_must_be_valid() {
        let rules = Rules { freebie_members: 25, ..Rules::default() };
        assert_eq!(decode_rules(&rules.to_value()), Some(rules));
        assert_eq!(decode_rules(&json!({"colour": 1})), None);
        assert_eq!(decode_rules(&json!(null)), None);
    }
}
