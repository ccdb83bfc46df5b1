//! Runs the hand-worked conformance cases (`tests/conformance/*.json`) against the core, and
//! checks that every rule listed in `tests/conformance/rules.json` is pinned by a case. The same
//! cases run in a real browser against the wasm build (crates/mechfund-wasm/tests).

use mechfund_conformance::{Backend, Failure};
use mechfund_core::ddc::Snapshot;
use mechfund_core::whatif::goal_table;
use mechfund_core::{Now, ReplayOptions, Rules, replay_bytes};
use serde_json::Value;

struct Native;

fn rules_of(rules: Option<&Value>) -> Result<Rules, String> {
    rules.map_or_else(|| Ok(Rules::default()), |r| Rules::from_value(r).map_err(|e| e.to_string()))
}

impl Backend for Native {
    fn replay(&self, log: &str, rules: Option<&Value>, options: &Value) -> Result<Value, Failure> {
        let rules = rules_of(rules).map_err(Failure::Other)?;
        let now = match options["now"].as_str() {
            Some(text) => Some(Now::parse(text).map_err(|e| Failure::Other(e.to_string()))?),
            None => None,
        };
        let options = ReplayOptions {
            mech: options["mech"].as_str().unwrap_or("main").to_owned(),
            strict: options["strict"].as_bool().unwrap_or(false),
            timeline: options["timeline"].as_bool().unwrap_or(false),
            now,
            ddc_snapshot: match options.get("ddc_snapshot") {
                Some(snapshot) => Some(
                    Snapshot::from_json("ddc_snapshot", &snapshot.to_string())
                        .map_err(|e| Failure::Other(e.to_string()))?,
                ),
                None => None,
            },
        };
        let result = replay_bytes(log.as_bytes(), &rules, options).map_err(|e| Failure::Strict { line: e.line })?;
        serde_json::to_value(result).map_err(|e| Failure::Other(e.to_string()))
    }

    fn goal_table(&self, members: i64, rules: Option<&Value>) -> Result<Value, String> {
        serde_json::to_value(goal_table(members, &rules_of(rules)?)).map_err(|e| e.to_string())
    }
}

#[test]
fn conformance_cases_pass() {
    match mechfund_conformance::run_all(&Native) {
        Ok(count) => assert!(count >= 90, "only {count} conformance cases"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn every_listed_rule_has_a_case() {
    match mechfund_conformance::check_rule_coverage() {
        Ok(count) => assert!(count >= 60, "only {count} rules listed"),
        Err(report) => panic!("{report}"),
    }
}
