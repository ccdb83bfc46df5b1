//! The rules in force (spec §2.1): base costs, member pricing, caps, difficulty, decay.
//!
//! The JSON form is a contract: every key optional, unknown keys rejected with their path.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use thiserror::Error;

/// The highest level. A mech at this level has no goal.
pub const MAX_LEVEL: u8 = 11;
/// Largest integer any rules value may take (exact in JavaScript numbers).
pub const MAX_RULE_VALUE: i64 = (1 << 53) - 1;
/// A normal donation is 1..=this many cents when it is recorded (`decide`; the seed's $10,000).
pub const MAX_DONATION: i64 = 1_000_000;
/// A recorded `DonationAdded` is valid in replay up to this many cents: DDC's donation validation
/// allows $1,000,000, and no donation of a real DDC log may be dropped (spec §2.1).
pub const MAX_REPLAYED_DONATION: i64 = 100_000_000;
/// A system donation or power gift is 1..=this many cents.
pub const MAX_SYSTEM_DONATION: i64 = 100_000;
/// Power never exceeds this many cents.
pub const POWER_CAP: i64 = 10_000_000;

/// How goals are derived from the subtotal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difficulty {
    /// The goal is the subtotal.
    Dynamic,
    /// DDC's "Static Difficulty Override": goal = floor(subtotal * multiplier_percent / 100).
    Static {
        /// 150 means x1.5.
        multiplier_percent: i64,
    },
}

/// Cents of power lost per day, per level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecayPerDay {
    /// Rate for levels without an override.
    pub default: i64,
    /// Overrides by level (1..=11).
    pub levels: BTreeMap<u8, i64>,
}

impl DecayPerDay {
    /// The rate in force at `level`.
    #[must_use]
    pub fn at(&self, level: u8) -> i64 {
        self.levels.get(&level).copied().unwrap_or(self.default)
    }
}

/// The configurable rules. [`Rules::default`] gives DDC's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Base cost in cents of levels 1..=10 (index 0 is level 1).
    pub level_base_costs: [i64; 10],
    /// Members that cost nothing.
    pub freebie_members: i64,
    /// Cents per member beyond the free ones.
    pub cost_per_member: i64,
    /// Member counts are clamped to this.
    pub member_cap: i64,
    /// The member-dependent part never exceeds this.
    pub dynamic_cap: i64,
    /// base + dynamic never exceeds this (before a static multiplier).
    pub max_goal: i64,
    /// Dynamic or static difficulty.
    pub difficulty: Difficulty,
    /// Power decay.
    pub decay_per_day: DecayPerDay,
    /// Extra power for a donation that hits a goal exactly.
    pub exact_hit_bonus: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            level_base_costs: [1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 10000],
            freebie_members: 10,
            cost_per_member: 10,
            member_cap: 100_000,
            dynamic_cap: 1_000_000,
            max_goal: 1_000_000,
            difficulty: Difficulty::Dynamic,
            decay_per_day: DecayPerDay { default: 100, levels: BTreeMap::new() },
            exact_hit_bonus: 100,
        }
    }
}

/// A rules document that cannot be used, with the path of the offending key.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("rules: {path}: {message}")]
pub struct RulesError {
    /// Where, e.g. `decay_per_day.levels.12`.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// `value` as compact JSON for a message: what `{value}` prints, without linking `Value`'s
/// `Display` (a second serializer with a pretty printer) into the wasm package (its size budget).
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(crate) fn err(path: &str, message: impl Into<String>) -> RulesError {
    RulesError { path: path.to_owned(), message: message.into() }
}

pub(crate) fn integer(value: &Value, path: &str, min: i64) -> Result<i64, RulesError> {
    let n = value
        .as_i64()
        .filter(|_| !value.is_f64())
        .ok_or_else(|| err(path, format!("expected an integer, found {}", json_text(value))))?;
    if n < min || n > MAX_RULE_VALUE {
        return Err(err(path, format!("{n} is out of range ({min}..={MAX_RULE_VALUE})")));
    }
    Ok(n)
}

pub(crate) fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, RulesError> {
    value.as_object().ok_or_else(|| err(path, format!("expected an object, found {}", json_text(value))))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

impl Rules {
    /// Reads rules from their JSON form (spec §2.1); missing keys take the defaults.
    ///
    /// # Errors
    /// [`RulesError`] naming the key path for malformed JSON, unknown keys, wrong types and values
    /// out of range.
    pub fn from_json(text: &str) -> Result<Rules, RulesError> {
        let value: Value = serde_json::from_str(text).map_err(|e| err("(document)", format!("not valid JSON: {e}")))?;
        Rules::from_value(&value)
    }

    /// Like [`Rules::from_json`], from an already parsed JSON value.
    ///
    /// # Errors
    /// See [`Rules::from_json`].
    pub fn from_value(value: &Value) -> Result<Rules, RulesError> {
        let mut rules = Rules::default();
        for (key, v) in object(value, "(document)")? {
            let path = key.as_str();
            match path {
                "level_base_costs" => {
                    let items = v.as_array().ok_or_else(|| {
                        err(path, format!("expected an array of 10 integers, found {}", json_text(v)))
                    })?;
                    if items.len() != 10 {
                        return Err(err(
                            path,
                            format!("expected exactly 10 costs (levels 1..10), found {}", items.len()),
                        ));
                    }
                    for (i, item) in items.iter().enumerate() {
                        rules.level_base_costs[i] = integer(item, &format!("{path}[{i}]"), 1)?;
                    }
                }
                "freebie_members" => rules.freebie_members = integer(v, path, 0)?,
                "cost_per_member" => rules.cost_per_member = integer(v, path, 0)?,
                "member_cap" => rules.member_cap = integer(v, path, 0)?,
                "dynamic_cap" => rules.dynamic_cap = integer(v, path, 0)?,
                "max_goal" => rules.max_goal = integer(v, path, 0)?,
                "exact_hit_bonus" => rules.exact_hit_bonus = integer(v, path, 0)?,
                "difficulty" => rules.difficulty = difficulty_from(v, path)?,
                "decay_per_day" => rules.decay_per_day = decay_from(v, path)?,
                _ => return Err(err(path, "unknown key")),
            }
        }
        Ok(rules)
    }

    /// The JSON form of these rules (every key present).
    #[must_use]
    pub fn to_value(&self) -> Value {
        let difficulty = match self.difficulty {
            Difficulty::Dynamic => json!({"mode": "dynamic"}),
            Difficulty::Static { multiplier_percent } => {
                json!({"mode": "static", "multiplier_percent": multiplier_percent})
            }
        };
        let decay = if self.decay_per_day.levels.is_empty() {
            json!(self.decay_per_day.default)
        } else {
            let levels: Map<String, Value> =
                self.decay_per_day.levels.iter().map(|(l, r)| (l.to_string(), json!(r))).collect();
            json!({"default": self.decay_per_day.default, "levels": levels})
        };
        json!({
            "level_base_costs": self.level_base_costs,
            "freebie_members": self.freebie_members,
            "cost_per_member": self.cost_per_member,
            "member_cap": self.member_cap,
            "dynamic_cap": self.dynamic_cap,
            "max_goal": self.max_goal,
            "difficulty": difficulty,
            "decay_per_day": decay,
            "exact_hit_bonus": self.exact_hit_bonus,
        })
    }

    /// Base cost of `level` (1..=10); 0 for level 11 and anything else.
    #[must_use]
    pub fn base_cost(&self, level: u8) -> i64 {
        match level {
            1..=10 => self.level_base_costs[usize::from(level - 1)],
            _ => 0,
        }
    }

    /// `member_count` clamped to `0..=member_cap`.
    #[must_use]
    pub fn clamp_members(&self, member_count: i64) -> i64 {
        member_count.clamp(0, self.member_cap)
    }

    /// The member-dependent part of a goal (spec §2.2).
    #[must_use]
    pub fn dynamic_cost(&self, member_count: i64) -> i64 {
        let billable = i128::from((self.clamp_members(member_count) - self.freebie_members).max(0));
        let cost = billable * i128::from(self.cost_per_member);
        saturate(cost.min(i128::from(self.dynamic_cap)))
    }

    /// The goal for `level` at `member_count` members (spec §2.2); 0 at level 11.
    #[must_use]
    pub fn goal(&self, level: u8, member_count: i64) -> i64 {
        self.goal_parts(level, member_count).goal
    }

    /// The goal with its parts, for the what-if table.
    #[must_use]
    pub fn goal_parts(&self, level: u8, member_count: i64) -> GoalParts {
        if !(1..=10).contains(&level) {
            return GoalParts { level, base: 0, dynamic: 0, goal: 0 };
        }
        let base = self.base_cost(level);
        let dynamic = self.dynamic_cost(member_count);
        let subtotal = base.saturating_add(dynamic).min(self.max_goal);
        let goal = match self.difficulty {
            Difficulty::Dynamic => subtotal,
            Difficulty::Static { multiplier_percent } => {
                saturate(i128::from(subtotal) * i128::from(multiplier_percent) / 100)
            }
        };
        GoalParts { level, base, dynamic, goal }
    }
}

/// One row of a goal table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GoalParts {
    /// The level whose goal this is.
    pub level: u8,
    /// Its base cost.
    pub base: i64,
    /// The member-dependent part (before caps on the subtotal).
    pub dynamic: i64,
    /// The goal in force.
    pub goal: i64,
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v.clamp(0, i128::from(MAX_RULE_VALUE))).unwrap_or(MAX_RULE_VALUE)
}

fn difficulty_from(v: &Value, path: &str) -> Result<Difficulty, RulesError> {
    let obj = object(v, path)?;
    for key in obj.keys() {
        if key != "mode" && key != "multiplier_percent" {
            return Err(err(&join(path, key), "unknown key"));
        }
    }
    let mode_path = join(path, "mode");
    match obj.get("mode").and_then(Value::as_str) {
        Some("dynamic") => {
            if obj.contains_key("multiplier_percent") {
                return Err(err(&join(path, "multiplier_percent"), "only allowed with \"mode\": \"static\""));
            }
            Ok(Difficulty::Dynamic)
        }
        Some("static") => {
            let mp_path = join(path, "multiplier_percent");
            let mp = obj
                .get("multiplier_percent")
                .ok_or_else(|| err(&mp_path, "required with \"mode\": \"static\" (e.g. 150 for x1.5)"))?;
            Ok(Difficulty::Static { multiplier_percent: integer(mp, &mp_path, 1)? })
        }
        _ => Err(err(&mode_path, "expected \"dynamic\" or \"static\"")),
    }
}

pub(crate) fn decay_from(v: &Value, path: &str) -> Result<DecayPerDay, RulesError> {
    if !v.is_object() {
        return Ok(DecayPerDay { default: integer(v, path, 0)?, levels: BTreeMap::new() });
    }
    let obj = object(v, path)?;
    let mut decay = DecayPerDay { default: 100, levels: BTreeMap::new() };
    for (key, value) in obj {
        let key_path = join(path, key);
        match key.as_str() {
            "default" => decay.default = integer(value, &key_path, 0)?,
            "levels" => {
                for (level, rate) in object(value, &key_path)? {
                    let level_path = join(&key_path, level);
                    let n: u8 = level
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LEVEL).contains(n) && level == &n.to_string())
                        .ok_or_else(|| err(&level_path, "level keys must be \"1\"..\"11\""))?;
                    decay.levels.insert(n, integer(rate, &level_path, 0)?);
                }
            }
            _ => return Err(err(&key_path, "unknown key")),
        }
    }
    Ok(decay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let rules = Rules::default();
        assert_eq!(Rules::from_value(&rules.to_value()), Ok(rules.clone()));
        assert_eq!(Rules::from_json("{}"), Ok(rules));
    }

    #[test]
    fn errors_name_the_key_path() {
        let cases = [
            (r#"{"colour": 1}"#, "colour"),
            (r#"{"level_base_costs": [1,2,3]}"#, "level_base_costs"),
            (r#"{"level_base_costs": [1,2,3,4,5,6,7,8,9,0]}"#, "level_base_costs[9]"),
            (r#"{"freebie_members": -1}"#, "freebie_members"),
            (r#"{"cost_per_member": 1.5}"#, "cost_per_member"),
            (r#"{"difficulty": {"mode": "static"}}"#, "difficulty.multiplier_percent"),
            (r#"{"difficulty": {"mode": "static", "multiplier_percent": 0}}"#, "difficulty.multiplier_percent"),
            (r#"{"difficulty": {"mode": "hard"}}"#, "difficulty.mode"),
            (r#"{"difficulty": {"mode": "dynamic", "x": 1}}"#, "difficulty.x"),
            (r#"{"decay_per_day": {"levels": {"12": 5}}}"#, "decay_per_day.levels.12"),
            (r#"{"decay_per_day": {"levels": {"01": 5}}}"#, "decay_per_day.levels.01"),
            (r#"{"decay_per_day": {"rate": 5}}"#, "decay_per_day.rate"),
            (r#"{"decay_per_day": "100"}"#, "decay_per_day"),
            ("[1]", "(document)"),
            ("{", "(document)"),
        ];
        for (text, path) in cases {
            let error = Rules::from_json(text).expect_err(text);
            assert_eq!(error.path, path, "{text}: {error}");
        }
    }

    #[test]
    fn decay_object_form() {
        let rules = Rules::from_json(r#"{"decay_per_day": {"default": 50, "levels": {"2": 250}}}"#).unwrap();
        assert_eq!(rules.decay_per_day.at(1), 50);
        assert_eq!(rules.decay_per_day.at(2), 250);
        assert_eq!(Rules::from_value(&rules.to_value()), Ok(rules));
    }
}
