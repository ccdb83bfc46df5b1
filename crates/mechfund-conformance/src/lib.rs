//! The conformance suite as a library: the hand-worked cases of `tests/conformance/*.json`
//! (embedded at build time) and a checker that runs them against any implementation of the
//! replay contract. The native tests run it against `mechfund-core`, the browser tests against
//! the wasm JS API, so both provably give the same answers.
//!
//! It deliberately does not depend on `mechfund-core`: it only knows the contract's JSON.

use std::collections::BTreeSet;

use serde_json::{Value, json};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/files.rs"));
}

/// What an implementation must offer to be checked.
pub trait Backend {
    /// Replays `log` with `rules` (the §2.1 JSON, `None` for defaults) and `options`
    /// (`{mech?, now?, strict?, timeline?, ddc_snapshot?}`), returning the replay result as JSON.
    ///
    /// # Errors
    /// The failure, with the line number when strict replay stopped at a bad line.
    fn replay(&self, log: &str, rules: Option<&Value>, options: &Value) -> Result<Value, Failure>;

    /// The goal table `[{level, base, dynamic, goal}]` for `members` under `rules`.
    ///
    /// # Errors
    /// Anything the implementation refuses.
    fn goal_table(&self, members: i64, rules: Option<&Value>) -> Result<Value, String>;
}

/// Why a replay produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Strict replay stopped at this bad line.
    Strict {
        /// 1-based line number.
        line: u64,
    },
    /// Anything else.
    Other(String),
}

/// One case with the file it comes from.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file name, e.g. `decay.json`.
    pub file: &'static str,
    /// The case object.
    pub case: Value,
}

impl Case {
    /// The case's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.case["name"].as_str().unwrap_or("(unnamed)")
    }
}

/// Every case of every file.
///
/// # Panics
/// If a file is not valid JSON or has no `cases` array (the suite itself is broken).
#[must_use]
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for &(file, text) in embedded::FILES.iter().filter(|(name, _)| *name != "rules.json") {
        let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let list = doc["cases"].as_array().unwrap_or_else(|| panic!("{file}: no \"cases\" array"));
        out.extend(list.iter().map(|case| Case { file, case: case.clone() }));
    }
    out
}

/// Checks one case against `backend`; returns a description of every disagreement.
#[must_use]
pub fn check(case: &Value, backend: &impl Backend) -> Vec<String> {
    let mut problems = Vec::new();
    let rules = case.get("rules");
    if let Some(goals) = case["goals"].as_array() {
        check_goals(goals, rules, backend, &mut problems);
    }
    let Some(log) = case.get("log").and_then(Value::as_array) else { return problems };
    let mut text = String::new();
    for line in log {
        text.push_str(line.as_str().unwrap_or_default());
        text.push('\n');
    }
    let options = case.get("options").cloned().unwrap_or_else(|| json!({}));
    let expect = &case["expect"];
    let actual = match (backend.replay(&text, rules, &options), expect.get("error")) {
        (Err(Failure::Strict { line }), Some(want)) => {
            if json!(line) != want["line"] {
                problems.push(format!("strict error at line {line}, want {}", want["line"]));
            }
            return problems;
        }
        (Err(failure), _) => return vec![format!("replay failed: {failure:?}")],
        (Ok(_), Some(want)) => return vec![format!("expected a strict error at line {}", want["line"])],
        (Ok(actual), None) => actual,
    };
    if expect.get("state").is_none() {
        problems.push("a case with a log must give expect.state".to_owned());
    }
    for key in ["state", "display", "level_ups"] {
        if let Some(want) = expect.get(key)
            && actual[key] != *want
        {
            problems.push(format!("{key}:\n  got  {}\n  want {want}", actual[key]));
        }
    }
    let want = expect["diagnostics"].as_array().cloned().unwrap_or_default();
    let got = actual["diagnostics"].as_array().cloned().unwrap_or_default();
    let same = want.len() == got.len()
        && want.iter().zip(&got).all(|(w, g)| {
            ["kind", "line", "seq"].iter().all(|k| w.get(*k).is_none_or(|v| g.get(*k) == Some(v)))
                && g["severity"] == json!(severity(g["kind"].as_str().unwrap_or_default()))
                && g["message"].as_str().is_some_and(|m| !m.is_empty())
        });
    if !same {
        problems.push(format!("diagnostics:\n  got  {}\n  want {}", json!(got), json!(want)));
    }
    problems
}

/// The contract's severity of a diagnostic kind.
fn severity(kind: &str) -> &'static str {
    match kind {
        "superseded" | "no_events" | "bonus_deletion" | "ddc_snapshot_differs" => "info",
        _ => "warning",
    }
}

fn check_goals(goals: &[Value], rules: Option<&Value>, backend: &impl Backend, problems: &mut Vec<String>) {
    for g in goals {
        let (Some(level), Some(members)) = (g["level"].as_u64(), g["members"].as_i64()) else {
            problems.push(format!("malformed goal check {g}"));
            continue;
        };
        let table = match backend.goal_table(members, rules) {
            Ok(table) => table,
            Err(e) => {
                problems.push(format!("goal table for {members} members failed: {e}"));
                continue;
            }
        };
        let row = table.as_array().and_then(|rows| rows.iter().find(|r| r["level"] == json!(level)));
        let Some(row) = row else {
            problems.push(format!("goal table for {members} members has no level {level}"));
            continue;
        };
        for key in ["base", "dynamic", "goal"] {
            if let Some(want) = g.get(key).filter(|v| !v.is_null())
                && row[key] != *want
            {
                problems.push(format!("goal(level {level}, {members} members).{key}: got {}, want {want}", row[key]));
            }
        }
    }
}

/// Runs every case against `backend`.
///
/// # Errors
/// A report of every failing case.
pub fn run_all(backend: &impl Backend) -> Result<usize, String> {
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let problems = check(&c.case, backend);
            (!problems.is_empty()).then(|| format!("{} / {}:\n{}", c.file, c.name(), problems.join("\n")))
        })
        .collect();
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(format!("{} of {} cases fail:\n\n{}", failures.len(), cases.len(), failures.join("\n\n")))
    }
}

/// Checks that every rule id of `rules.json` is pinned by a case, that cases only cite listed
/// rules, and that case names are unique.
///
/// # Errors
/// What is missing or inconsistent.
pub fn check_rule_coverage() -> Result<usize, String> {
    let text =
        embedded::FILES.iter().find(|(name, _)| *name == "rules.json").map(|(_, t)| *t).ok_or("no rules.json")?;
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("rules.json: {e}"))?;
    let listed: BTreeSet<&str> =
        doc["rules"].as_array().ok_or("rules.json: no rules array")?.iter().filter_map(|r| r["id"].as_str()).collect();
    let cases = cases();
    let mut covered = BTreeSet::new();
    let mut names = BTreeSet::new();
    for c in &cases {
        if !names.insert(c.name().to_owned()) {
            return Err(format!("{}: duplicate case name {}", c.file, c.name()));
        }
        let ids = c.case["rules_covered"].as_array().filter(|ids| !ids.is_empty());
        let ids = ids.ok_or_else(|| format!("{} / {}: no rules_covered", c.file, c.name()))?;
        covered.extend(ids.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    let uncovered: Vec<_> = listed.iter().filter(|id| !covered.contains(**id)).collect();
    let unknown: Vec<_> = covered.iter().filter(|id| !listed.contains(id.as_str())).collect();
    if !uncovered.is_empty() {
        return Err(format!("rules without a case: {uncovered:?}"));
    }
    if !unknown.is_empty() {
        return Err(format!("cases cite rules not in rules.json: {unknown:?}"));
    }
    Ok(listed.len())
}
