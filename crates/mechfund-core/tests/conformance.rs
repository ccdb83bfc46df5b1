//! Runs the data-driven conformance cases in `tests/conformance/*.json` (at the repository root)
//! and checks that every rule id listed in `tests/conformance/rules.json` is pinned by a case.
//!
//! The same files run in the browser through the wasm build, so native and wasm provably agree.
//! Expected values in the files are worked out by hand from DESIGN.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mechfund_core::{Now, ReplayOptions, Rules, replay_bytes};
use serde_json::{Value, json};

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir())
        .expect("tests/conformance exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.file_name().is_some_and(|n| n != "rules.json"))
        .collect();
    files.sort();
    files
}

fn cases() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for file in case_files() {
        let text = std::fs::read_to_string(&file).expect("readable case file");
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        for case in doc["cases"].as_array().unwrap_or_else(|| panic!("{name}: no \"cases\" array")) {
            out.push((name.clone(), case.clone()));
        }
    }
    out
}

/// Checks one case; returns a description of every disagreement.
fn check(case: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let rules = match case.get("rules") {
        Some(r) => match Rules::from_value(r) {
            Ok(rules) => rules,
            Err(e) => return vec![format!("rules do not load: {e}")],
        },
        None => Rules::default(),
    };
    for g in case["goals"].as_array().into_iter().flatten() {
        let level = u8::try_from(g["level"].as_u64().expect("goal level")).expect("small level");
        let members = g["members"].as_i64().expect("goal members");
        let parts = serde_json::to_value(rules.goal_parts(level, members)).expect("serialisable");
        for key in ["base", "dynamic", "goal"] {
            if let Some(want) = g.get(key).filter(|v| !v.is_null())
                && parts[key] != *want
            {
                problems.push(format!("goal(level {level}, {members} members).{key}: got {}, want {want}", parts[key]));
            }
        }
    }
    let Some(log) = case.get("log").and_then(Value::as_array) else {
        return problems;
    };
    let mut text = String::new();
    for line in log {
        text.push_str(line.as_str().expect("log lines are strings"));
        text.push('\n');
    }
    let opts = &case["options"];
    let options = ReplayOptions {
        mech: opts["mech"].as_str().unwrap_or("main").to_owned(),
        strict: opts["strict"].as_bool().unwrap_or(false),
        timeline: opts["timeline"].as_bool().unwrap_or(false),
        now: opts["now"].as_str().map(|n| Now::parse(n).expect("valid options.now")),
    };
    let expect = &case["expect"];
    let result = match (replay_bytes(text.as_bytes(), &rules, options), expect.get("error")) {
        (Err(e), Some(want)) => {
            if json!(e.line) != want["line"] {
                problems.push(format!("strict error at line {}, want {}", e.line, want["line"]));
            }
            return problems;
        }
        (Err(e), None) => return vec![format!("unexpected strict error: {e}")],
        (Ok(_), Some(want)) => {
            return vec![format!("expected a strict error at line {}", want["line"])];
        }
        (Ok(result), None) => result,
    };
    let actual = serde_json::to_value(&result).expect("serialisable");
    for key in ["state", "display", "level_ups"] {
        if let Some(want) = expect.get(key)
            && actual[key] != *want
        {
            problems.push(format!("{key}:\n  got  {}\n  want {want}", actual[key]));
        }
    }
    let want_diags = expect["diagnostics"].as_array().cloned().unwrap_or_default();
    let got_diags = actual["diagnostics"].as_array().cloned().unwrap_or_default();
    let same = want_diags.len() == got_diags.len()
        && want_diags
            .iter()
            .zip(&got_diags)
            .all(|(w, g)| ["kind", "line", "seq"].iter().all(|k| w.get(*k).is_none_or(|v| g.get(*k) == Some(v))));
    if !same {
        let brief: Vec<Value> = got_diags
            .iter()
            .map(|d| json!({"kind": d["kind"], "line": d["line"], "seq": d["seq"], "message": d["message"]}))
            .collect();
        problems.push(format!("diagnostics:\n  got  {}\n  want {}", json!(brief), json!(want_diags)));
    }
    if expect.get("state").is_none() {
        problems.push("a case with a log must give expect.state".to_owned());
    }
    problems
}

#[test]
fn conformance_cases_pass() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} conformance cases found", cases.len());
    let mut failures = Vec::new();
    for (file, case) in &cases {
        let problems = check(case);
        if !problems.is_empty() {
            failures.push(format!("{file} / {}:\n{}", case["name"], problems.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases fail:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn every_listed_rule_has_a_case() {
    let text = std::fs::read_to_string(conformance_dir().join("rules.json")).expect("rules.json");
    let doc: Value = serde_json::from_str(&text).expect("rules.json is JSON");
    let listed: BTreeSet<String> = doc["rules"]
        .as_array()
        .expect("rules array")
        .iter()
        .map(|r| r["id"].as_str().expect("rule id").to_owned())
        .collect();
    let mut covered = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (file, case) in cases() {
        let name = case["name"].as_str().expect("case name").to_owned();
        assert!(names.insert(name.clone()), "{file}: duplicate case name {name}");
        let ids = case["rules_covered"].as_array().unwrap_or_else(|| panic!("{file} / {name}: no rules_covered"));
        assert!(!ids.is_empty(), "{file} / {name}: rules_covered is empty");
        covered.extend(ids.iter().map(|id| id.as_str().expect("rule id string").to_owned()));
    }
    let uncovered: Vec<_> = listed.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&listed).collect();
    assert!(uncovered.is_empty(), "rules without a case: {uncovered:?}");
    assert!(unknown.is_empty(), "cases cite rules not in rules.json: {unknown:?}");
    assert!(listed.len() >= 40, "only {} rules listed", listed.len());
}
