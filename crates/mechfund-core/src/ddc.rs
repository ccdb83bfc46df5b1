//! A DockerDiscordControl installation as input to replay (spec §2.8): the rules its config
//! files give, and its own snapshot of a mech.
//!
//! DDC keeps everything under its config dir. This module only interprets the text of those
//! files; the callers read them (the CLI and the server from disk, the custom element over HTTP)
//! and pass `None` for a file that does not exist, which means DDC's default.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::display::difficulty_bin;
use crate::replay::ReplayResult;
use crate::rules::{Difficulty, MAX_LEVEL, MAX_RULE_VALUE, Rules, decay_from, json_text};
use crate::state::KnownGoal;

/// The event log, relative to the config dir.
pub const EVENTS_FILE: &str = "progress/events.jsonl";
/// The member count the bot maintains; DDC prices each new level with it.
pub const MEMBER_COUNT_FILE: &str = "progress/member_count.json";
/// `level_base_costs` (as an object keyed "1".."10"), besides keys that are not rules.
pub const CONFIG_FILE: &str = "progress/config.json";
/// Decay per day, in the rules' `decay_per_day` object shape.
pub const DECAY_FILE: &str = "mech/decay.json";
/// Dynamic or static difficulty.
pub const EVOLUTION_MODE_FILE: &str = "evolution_mode.json";
/// The member count DDC prices a level with when [`MEMBER_COUNT_FILE`] is missing or unreadable.
pub const DEFAULT_MEMBER_COUNT: i64 = 50;

/// DDC's snapshot of `mech`, relative to the config dir.
#[must_use]
pub fn snapshot_file(mech: &str) -> String {
    format!("progress/snapshots/{mech}.json")
}

/// A DDC file that cannot be used: which file, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{file}: {message}")]
pub struct DdcError {
    /// The file, relative to the config dir.
    pub file: String,
    /// What is wrong, with the key path where there is one.
    pub message: String,
}

fn error(file: &str, message: impl Into<String>) -> DdcError {
    DdcError { file: file.to_owned(), message: message.into() }
}

fn parse(file: &str, text: &str) -> Result<Value, DdcError> {
    // `from_slice`, as event lines are read: the wasm package then holds one JSON reader.
    serde_json::from_slice(text.as_bytes()).map_err(|e| error(file, format!("not valid JSON: {e}")))
}

fn object<'v>(file: &str, value: &'v Value) -> Result<&'v Map<String, Value>, DdcError> {
    value.as_object().ok_or_else(|| error(file, format!("expected a JSON object, found {}", json_text(value))))
}

/// The text of an installation's rules files; `None` for a missing file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RulesFiles<'a> {
    /// [`CONFIG_FILE`].
    pub config: Option<&'a str>,
    /// [`DECAY_FILE`].
    pub decay: Option<&'a str>,
    /// [`EVOLUTION_MODE_FILE`].
    pub evolution_mode: Option<&'a str>,
}

/// The rules of an installation: spec §2.1's defaults overridden by its files, and a note for
/// each missing file saying which default was taken.
///
/// # Errors
/// [`DdcError`] naming the file (and key) when a file that exists is not what DDC writes.
pub fn rules(files: RulesFiles<'_>) -> Result<(Rules, Vec<String>), DdcError> {
    let mut rules = Rules::default();
    let mut notes = Vec::new();
    match files.config {
        Some(text) => base_costs(text, &mut rules.level_base_costs)?,
        None => notes.push(format!("{CONFIG_FILE} is missing: DDC's default level base costs are used")),
    }
    match files.decay {
        Some(text) => {
            let value = parse(DECAY_FILE, text)?;
            rules.decay_per_day = decay_from(&value, "").map_err(|e| {
                let at = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path) };
                error(DECAY_FILE, format!("{at}{}", e.message))
            })?;
        }
        None => notes.push(format!("{DECAY_FILE} is missing: DDC's default decay of 100 cents a day is used")),
    }
    match files.evolution_mode {
        Some(text) => rules.difficulty = difficulty(text)?,
        None => notes.push(format!("{EVOLUTION_MODE_FILE} is missing: DDC's default dynamic difficulty is used")),
    }
    Ok((rules, notes))
}

fn base_costs(text: &str, costs: &mut [i64; 10]) -> Result<(), DdcError> {
    let value = parse(CONFIG_FILE, text)?;
    let Some(levels) = object(CONFIG_FILE, &value)?.get("level_base_costs") else {
        return Ok(());
    };
    let levels = levels.as_object().ok_or_else(|| {
        error(
            CONFIG_FILE,
            format!("level_base_costs: expected an object {{\"1\": 1000, …}}, found {}", json_text(levels)),
        )
    })?;
    for (key, cost) in levels {
        let level =
            key.parse::<u8>().ok().filter(|l| (1..MAX_LEVEL).contains(l) && *key == l.to_string()).ok_or_else(
                || error(CONFIG_FILE, format!("level_base_costs.{key}: level keys must be \"1\"..\"10\"")),
            )?;
        let cents = cost.as_i64().filter(|c| !cost.is_f64() && (1..=MAX_RULE_VALUE).contains(c)).ok_or_else(|| {
            error(
                CONFIG_FILE,
                format!("level_base_costs.{key}: expected a positive integer of cents, found {}", json_text(cost)),
            )
        })?;
        costs[usize::from(level - 1)] = cents;
    }
    Ok(())
}

fn difficulty(text: &str) -> Result<Difficulty, DdcError> {
    let file = EVOLUTION_MODE_FILE;
    let value = parse(file, text)?;
    let obj = object(file, &value)?;
    let dynamic = match obj.get("use_dynamic") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| error(file, format!("use_dynamic: expected true or false, found {}", json_text(v))))?,
    };
    if dynamic {
        return Ok(Difficulty::Dynamic);
    }
    let multiplier = match obj.get("difficulty_multiplier") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| error(file, format!("difficulty_multiplier: expected a number, found {}", json_text(v))))?,
    };
    let percent = (multiplier * 100.0).round();
    if !(1.0..=1_000_000.0).contains(&percent) {
        return Err(error(
            file,
            format!("difficulty_multiplier: {multiplier} is out of range (0.01..=10000, e.g. 1.5 for x1.5)"),
        ));
    }
    #[allow(clippy::cast_possible_truncation, reason = "a whole number within 1..=1_000_000")]
    Ok(Difficulty::Static { multiplier_percent: percent as i64 })
}

/// The member count DDC prices the next level with, from [`MEMBER_COUNT_FILE`]'s text, and a
/// note when DDC's default of 50 applies (a missing or unreadable file, as in DDC).
#[must_use]
pub fn member_count(text: Option<&str>) -> (i64, Option<String>) {
    let Some(text) = text else {
        return (
            DEFAULT_MEMBER_COUNT,
            Some(format!("{MEMBER_COUNT_FILE} is missing: DDC prices new levels with {DEFAULT_MEMBER_COUNT} members")),
        );
    };
    let count = serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("count").and_then(Value::as_i64));
    match count {
        Some(count) if count >= 0 => (count, None),
        _ => (
            DEFAULT_MEMBER_COUNT,
            Some(format!(
                "{MEMBER_COUNT_FILE} has no non-negative integer \"count\": DDC prices new levels with {DEFAULT_MEMBER_COUNT} members"
            )),
        ),
    }
}

/// DDC's own state of a mech (`progress/snapshots/{mech}.json`), in cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// 1..=11.
    pub level: u8,
    /// Evolution toward the goal.
    pub evo_acc: i64,
    /// Power as DDC last stored it.
    pub power_acc: i64,
    /// The goal of the current level, priced by DDC (never logged).
    pub goal_requirement: i64,
    /// The last seq DDC applied.
    pub last_event_seq: u64,
    /// DDC's latest member sample, if stored.
    pub last_user_count_sample: Option<i64>,
    /// DDC's total of donations, if stored.
    pub cumulative_donations_cents: Option<i64>,
    /// DDC's difficulty bin, if stored.
    pub difficulty_bin: Option<i64>,
}

impl Snapshot {
    /// Reads a snapshot file's text; `file` names it in errors.
    ///
    /// # Errors
    /// [`DdcError`] naming the file and field when the text is not a snapshot DDC writes.
    pub fn from_json(file: &str, text: &str) -> Result<Snapshot, DdcError> {
        let value = parse(file, text)?;
        let obj = object(file, &value)?;
        let int =
            |key: &str, min: i64| -> Result<Option<i64>, DdcError> {
                match obj.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_i64().filter(|n| !v.is_f64() && *n >= min).map(Some).ok_or_else(|| {
                        error(file, format!("{key}: expected an integer >= {min}, found {}", json_text(v)))
                    }),
                }
            };
        let required = |key: &str, min: i64| -> Result<i64, DdcError> {
            int(key, min)?.ok_or_else(|| error(file, format!("{key}: missing")))
        };
        let level = required("level", 1)?;
        let level = u8::try_from(level)
            .ok()
            .filter(|l| *l <= MAX_LEVEL)
            .ok_or_else(|| error(file, format!("level: {level} is outside 1..=11")))?;
        Ok(Snapshot {
            level,
            evo_acc: required("evo_acc", 0)?,
            power_acc: required("power_acc", 0)?,
            goal_requirement: required("goal_requirement", 0)?,
            last_event_seq: required("last_event_seq", 0)?.unsigned_abs(),
            last_user_count_sample: int("last_user_count_sample", 0)?,
            cumulative_donations_cents: int("cumulative_donations_cents", 0)?,
            difficulty_bin: int("difficulty_bin", 0)?,
        })
    }

    /// The goal it gives replay: its level's goal, valid for a level-up at or before its seq.
    #[must_use]
    pub fn known_goal(&self) -> Option<KnownGoal> {
        (self.level < MAX_LEVEL && self.goal_requirement > 0).then_some(KnownGoal {
            level: self.level,
            goal: self.goal_requirement,
            seq: self.last_event_seq,
        })
    }

    /// Every field where the replay differs from this snapshot, as `(field, ddc, replay)`.
    #[must_use]
    pub fn differences(&self, result: &ReplayResult) -> Vec<(&'static str, i64, i64)> {
        let state = &result.state;
        let seq = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let mut fields = vec![
            ("level", i64::from(self.level), i64::from(state.level)),
            ("evo_acc", self.evo_acc, state.evo_acc),
            ("goal_requirement", self.goal_requirement, state.goal_requirement),
            ("power_acc", self.power_acc, state.power_acc),
            ("last_event_seq", seq(self.last_event_seq), seq(state.last_event_seq)),
        ];
        let optional = [
            ("last_user_count_sample", self.last_user_count_sample, state.last_user_count_sample),
            ("cumulative_donations_cents", self.cumulative_donations_cents, state.cumulative_donations_cents),
            ("difficulty_bin", self.difficulty_bin, i64::from(difficulty_bin(state.last_user_count_sample))),
        ];
        fields.extend(optional.into_iter().filter_map(|(name, ddc, ours)| Some((name, ddc?, ours))));
        fields.retain(|(_, ddc, ours)| ddc != ours);
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::rules::DecayPerDay;

    #[test]
    fn missing_files_take_ddc_defaults_and_say_so() {
        let (rules, notes) = rules(RulesFiles::default()).unwrap();
        assert_eq!(rules, Rules::default());
        assert_eq!(notes.len(), 3);
        assert!(notes[0].starts_with("progress/config.json is missing"), "{notes:?}");
    }

    #[test]
    fn files_override_the_defaults() {
        let files = RulesFiles {
            config: Some(
                r#"{"timezone":"Europe/Zurich","level_base_costs":{"1":700,"10":9000},"difficulty_bins":[0]}"#,
            ),
            decay: Some(r#"{"default": 100, "levels": {"2": 250, "3": 300}}"#),
            evolution_mode: Some(r#"{"use_dynamic": false, "difficulty_multiplier": 1.5}"#),
        };
        let (rules, notes) = rules(files).unwrap();
        assert!(notes.is_empty());
        assert_eq!(rules.level_base_costs, [700, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 9000]);
        assert_eq!(rules.difficulty, Difficulty::Static { multiplier_percent: 150 });
        assert_eq!(rules.decay_per_day, DecayPerDay { default: 100, levels: BTreeMap::from([(2, 250), (3, 300)]) });
    }

    #[test]
    fn dynamic_mode_ignores_the_multiplier() {
        let text = r#"{"use_dynamic": true, "difficulty_multiplier": 3.0}"#;
        assert_eq!(difficulty(text), Ok(Difficulty::Dynamic));
        assert_eq!(
            difficulty(r#"{"use_dynamic": false, "difficulty_multiplier": 0.333}"#),
            Ok(Difficulty::Static { multiplier_percent: 33 })
        );
    }

    #[test]
    fn bad_files_are_errors_naming_file_and_key() {
        let cases = [
            (RulesFiles { config: Some("{"), ..RulesFiles::default() }, "progress/config.json", "not valid JSON"),
            (
                RulesFiles { config: Some(r#"{"level_base_costs":{"11":5}}"#), ..RulesFiles::default() },
                "progress/config.json",
                "level_base_costs.11",
            ),
            (
                RulesFiles { config: Some(r#"{"level_base_costs":{"2":0}}"#), ..RulesFiles::default() },
                "progress/config.json",
                "level_base_costs.2",
            ),
            (
                RulesFiles { decay: Some(r#"{"levels":{"12":1}}"#), ..RulesFiles::default() },
                "mech/decay.json",
                "levels.12",
            ),
            (
                RulesFiles { evolution_mode: Some(r#"{"use_dynamic":"no"}"#), ..RulesFiles::default() },
                "evolution_mode.json",
                "use_dynamic",
            ),
            (
                RulesFiles {
                    evolution_mode: Some(r#"{"use_dynamic":false,"difficulty_multiplier":0}"#),
                    ..RulesFiles::default()
                },
                "evolution_mode.json",
                "difficulty_multiplier",
            ),
        ];
        for (files, file, needle) in cases {
            let e = rules(files).expect_err(needle);
            assert_eq!(e.file, file);
            assert!(e.message.contains(needle), "{e}");
        }
    }

    #[test]
    fn member_count_falls_back_to_fifty_like_ddc() {
        assert_eq!(member_count(Some(r#"{"count": 140, "source": "status_channels"}"#)), (140, None));
        assert_eq!(member_count(None).0, 50);
        assert_eq!(member_count(Some("garbage")).0, 50);
        assert!(member_count(Some(r#"{"count": -3}"#)).1.is_some());
    }

    #[test]
    fn snapshot_fields_are_checked() {
        let ok = r#"{"mech_id":"main","level":3,"evo_acc":400,"power_acc":400,"goal_requirement":2400,
            "difficulty_bin":3,"last_event_seq":7,"last_user_count_sample":50,"cumulative_donations_cents":3300,"version":4}"#;
        let snap = Snapshot::from_json("s.json", ok).unwrap();
        assert_eq!(snap.known_goal(), Some(KnownGoal { level: 3, goal: 2400, seq: 7 }));
        let e = Snapshot::from_json(
            "s.json",
            r#"{"level":12,"evo_acc":0,"power_acc":0,"goal_requirement":1,"last_event_seq":1}"#,
        )
        .unwrap_err();
        assert!(e.message.starts_with("level"), "{e}");
        let e = Snapshot::from_json("s.json", r#"{"level":2,"power_acc":0,"goal_requirement":1,"last_event_seq":1}"#)
            .unwrap_err();
        assert_eq!(e.message, "evo_acc: missing");
        let e = Snapshot::from_json("s.json", r#"{"level":2,"evo_acc":1.5}"#).unwrap_err();
        assert!(e.message.starts_with("evo_acc: expected an integer"), "{e}");
    }
}
