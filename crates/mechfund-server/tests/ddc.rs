//! `mechfund replay/verify/rules --ddc DIR` on DDC installations written by DDC's own code
//! (`tests/samples/ddc-dirs/`, spec §2.8). Expected values are read from DDC's own snapshot
//! files, never from our output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn ddc_dirs() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.join("../../tests/samples/ddc-dirs")
}

/// Every sample installation's config dir, by folder name.
fn installations() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(ddc_dirs())
        .expect("tests/samples/ddc-dirs exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().join("config")))
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 5, "the five DDC installations of tests/samples/ddc-dirs");
    dirs
}

fn mechfund(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mechfund")).args(args).output().expect("mechfund runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr));
    })
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

#[test]
fn replay_gives_ddcs_level_evolution_and_goal_for_every_installation() {
    for (name, dir) in installations() {
        let snapshot = read_json(&dir.join("progress/snapshots/main.json"));
        let out = mechfund(&["replay", "--ddc", path(&dir)]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let result = stdout_json(&out);
        let state = &result["state"];
        for field in ["level", "evo_acc", "goal_requirement"] {
            assert_eq!(state[field], snapshot[field], "{name}: {field}");
        }
        let differs: Vec<&str> = result["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter(|d| d["kind"] == "ddc_snapshot_differs")
            .map(|d| {
                assert_eq!(d["severity"], "info", "{name}: {d}");
                d["message"].as_str().expect("a message")
            })
            .collect();
        // Every other field of the snapshot that differs from the replay is reported, with both values.
        let ours = |field: &str| match field {
            "difficulty_bin" => result["display"]["difficulty_bin"].clone(),
            _ => state[field].clone(),
        };
        for field in
            ["power_acc", "last_event_seq", "last_user_count_sample", "cumulative_donations_cents", "difficulty_bin"]
        {
            let reported = differs.iter().find(|m| m.starts_with(&format!("DDC's snapshot has {field} ")));
            if ours(field) == snapshot[field] {
                assert!(reported.is_none(), "{name}: {field} is equal but reported: {reported:?}");
            } else {
                let message = reported.unwrap_or_else(|| panic!("{name}: {field} differs but is not reported"));
                let want = format!("DDC's snapshot has {field} {}, replay gives {}", snapshot[field], ours(field));
                assert!(message.starts_with(&want), "{name}: {message}");
            }
        }
    }
}

#[test]
fn the_web_ui_installation_shows_ddcs_goal_of_24_dollars() {
    // DDC's page for this installation says $4.00 of $24.00 (level 3 priced with 50 members).
    let dir = ddc_dirs().join("webui-no-member-file/config");
    let out = mechfund(&["replay", "--ddc", path(&dir)]);
    let result = stdout_json(&out);
    assert_eq!(
        (result["state"]["evo_acc"].clone(), result["state"]["goal_requirement"].clone()),
        (json!(400), json!(2400))
    );
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("progress/member_count.json is missing: DDC prices new levels with 50 members"), "{notes}");
}

#[test]
fn verify_passes_every_installation() {
    for (name, dir) in installations() {
        let out = mechfund(&["verify", "--ddc", path(&dir)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let kinds: Vec<Value> =
            stdout_json(&out).as_array().expect("diagnostics").iter().map(|d| d["kind"].clone()).collect();
        if name == "deletions" {
            assert!(kinds.contains(&json!("bonus_deletion")), "{name}: DDC deleted exact-hit bonuses here: {kinds:?}");
        }
    }
}

#[test]
fn the_parent_of_the_config_dir_is_accepted_too() {
    let parent = ddc_dirs().join("small-guild");
    let below = stdout_json(&mechfund(&["replay", "--ddc", path(&parent)]));
    let exact = stdout_json(&mechfund(&["replay", "--ddc", path(&parent.join("config"))]));
    assert_eq!(below, exact);
}

#[test]
fn rules_prints_the_equivalent_rules_json() {
    let dir = ddc_dirs().join("static-x1.5-decay/config");
    let out = mechfund(&["rules", "--ddc", path(&dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = stdout_json(&out);
    // evolution_mode.json: use_dynamic false, x1.5; mech/decay.json: 100, level 2 250, level 3 300.
    assert_eq!(rules["difficulty"], json!({"mode": "static", "multiplier_percent": 150}));
    assert_eq!(rules["decay_per_day"], json!({"default": 100, "levels": {"2": 250, "3": 300}}));
    assert_eq!(rules["level_base_costs"], json!([1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 10000]));
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("progress/config.json is missing: DDC's default level base costs are used"), "{notes}");

    // The printed rules replay the log like the installation does, but for DDC's snapshot goal.
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules_file = tmp.path().join("rules.json");
    std::fs::write(&rules_file, rules.to_string()).expect("write rules");
    let events = dir.join("progress/events.jsonl");
    let plain = stdout_json(&mechfund(&["replay", path(&events), "--rules", path(&rules_file)]));
    let ddc = stdout_json(&mechfund(&["replay", "--ddc", path(&dir)]));
    assert_eq!(plain["state"]["cumulative_donations_cents"], ddc["state"]["cumulative_donations_cents"]);
    assert_eq!(plain["state"]["level"], ddc["state"]["level"]);
}

/// A copy of an installation's config dir to damage.
fn copy_of(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = ddc_dirs().join(name).join("config");
    for entry in walk(&src) {
        let to = tmp.path().join(entry.strip_prefix(&src).expect("below src"));
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&entry, &to).expect("copy");
    }
    tmp
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable dir").filter_map(Result::ok) {
        let p = entry.path();
        if p.is_dir() { files.extend(walk(&p)) } else { files.push(p) }
    }
    files
}

#[test]
fn a_malformed_rules_file_is_exit_2_naming_the_file() {
    let cases = [
        (
            "evolution_mode.json",
            "{\"use_dynamic\": false, \"difficulty_multiplier\": \"x1.5\"}",
            "evolution_mode.json: difficulty_multiplier",
        ),
        ("mech/decay.json", "{\"default\": 100, \"levels\": {\"12\": 5}}", "mech/decay.json: levels.12"),
        ("progress/config.json", "{\"level_base_costs\": [1,2]}", "progress/config.json: level_base_costs"),
        ("evolution_mode.json", "{\"use_dynamic\": fal", "evolution_mode.json: not valid JSON"),
    ];
    for (file, text, needle) in cases {
        let tmp = copy_of("static-x1.5-decay");
        std::fs::write(tmp.path().join(file), text).expect("damage");
        for command in ["replay", "verify", "rules"] {
            let out = mechfund(&[command, "--ddc", path(tmp.path())]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {file}: {stderr}");
            assert!(stderr.contains(needle), "{command} {file}: {stderr}");
        }
    }
}

#[test]
fn a_damaged_snapshot_is_ignored_with_a_note_like_ddc() {
    let tmp = copy_of("webui-no-member-file");
    std::fs::write(tmp.path().join("progress/snapshots/main.json"), "{\"level\": 3, \"evo_acc\"").expect("truncate");
    let out = mechfund(&["replay", "--ddc", path(tmp.path())]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("progress/snapshots/main.json: not valid JSON"), "{stderr}");
    // Without DDC's snapshot, level 3 is priced by the rules: 2000 at 0 members.
    assert_eq!(stdout_json(&out)["state"]["goal_requirement"], json!(2000));
}

#[test]
fn a_missing_log_is_an_installation_without_events() {
    let tmp = copy_of("donations-only");
    std::fs::remove_file(tmp.path().join("progress/events.jsonl")).expect("remove");
    std::fs::remove_file(tmp.path().join("progress/snapshots/main.json")).expect("remove");
    let out = mechfund(&["replay", "--ddc", path(tmp.path())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result = stdout_json(&out);
    assert_eq!(result["state"]["level"], json!(1));
    assert_eq!(result["diagnostics"][0]["kind"], json!("no_events"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("progress/events.jsonl is missing"));
}

#[test]
fn unusable_ddc_arguments_exit_2() {
    let dir = ddc_dirs().join("small-guild/config");
    let progress = dir.join("progress");
    let cases: [&[&str]; 4] = [
        &["replay", "--ddc", "/nonexistent/ddc"],
        &["replay", "--ddc", path(&progress)],
        &["replay", "some.jsonl", "--ddc", path(&dir)],
        &["verify", "--ddc", path(&dir), "--rules", "r.json"],
    ];
    for args in cases {
        let out = mechfund(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = mechfund(&["replay"]);
    assert_eq!(out.status.code(), Some(2));
}
