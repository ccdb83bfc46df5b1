//! The `mechfund` CLI contract (spec §3.2), run as a real process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `tests/samples` of this checkout: the manifest dir cargo sets when it runs the test (the
/// compile-time one may name another checkout that shares the target dir).
fn samples() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.join("../../tests/samples")
}

fn mechfund(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mechfund")).args(args).output().expect("mechfund runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.to_string_lossy().into_owned()
}

const D1: &str =
    r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":400}}"#;
const D2: &str =
    r#"{"seq":2,"ts":"2025-01-01T12:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":600}}"#;
const D3: &str = r#"{"seq":3,"ts":"2025-01-02T00:00:00+00:00","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":50}}"#;

#[test]
fn replay_prints_the_contract_shape_for_the_samples() {
    for sample in ["ddc-small.jsonl", "ddc-mixed-1500.jsonl"] {
        let path = samples().join(sample);
        let out = mechfund(&["replay", path.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "{sample}: {}", String::from_utf8_lossy(&out.stderr));
        let result = json(&out);
        for key in [
            "mech_id",
            "level",
            "evo_acc",
            "power_acc",
            "goal_requirement",
            "goal_member_count",
            "last_user_count_sample",
            "cumulative_donations_cents",
            "last_event_seq",
            "last_event_ts",
        ] {
            assert!(result["state"].get(key).is_some(), "{sample}: state.{key} missing");
        }
        assert_eq!(result["state"]["mech_id"], "main");
        assert!(result["display"]["tier"].is_string());
        assert!(result.get("timeline").is_none(), "timeline only on request");
    }
}

#[test]
fn verify_accepts_both_real_ddc_logs() {
    for sample in ["ddc-small.jsonl", "ddc-mixed-1500.jsonl"] {
        let path = samples().join(sample);
        let out = mechfund(&["verify", path.to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(0), "{sample}: {}", String::from_utf8_lossy(&out.stderr));
        for d in json(&out).as_array().expect("a list of diagnostics") {
            let kind = d["kind"].as_str().expect("kind");
            assert!(kind == "superseded" || kind == "recorded_goal_differs", "{sample}: unexpected {d}");
        }
    }
}

#[test]
fn verify_fails_on_warnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad =
        r#"{"seq":2,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":"5"}}"#;
    let log = write(dir.path(), "bad.jsonl", &format!("{D1}\n{bad}\n"));
    let out = mechfund(&["verify", &log]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)[0]["kind"], "invalid_payload");
    assert_eq!(json(&out)[0]["line"], 2);
}

#[test]
fn strict_mode_exits_1_at_the_first_bad_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = write(dir.path(), "bad.jsonl", &format!("{D1}\nnot json\n{D2}\n"));
    let lenient = mechfund(&["replay", &log]);
    assert_eq!(lenient.status.code(), Some(0));
    assert_eq!(json(&lenient)["diagnostics"][0]["kind"], "bad_line");
    let strict = mechfund(&["replay", "--strict", &log]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&strict.stderr));
}

#[test]
fn unusable_arguments_exit_2_with_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = write(dir.path(), "ok.jsonl", &format!("{D1}\n"));
    let rules = write(dir.path(), "rules.json", r#"{"decay_per_day": {"levels": {"12": 5}}}"#);
    let cases: [(&[&str], &str); 4] = [
        (&["replay", "/nonexistent/events.jsonl"], "cannot open"),
        (&["replay", &log, "--rules", &rules], "decay_per_day.levels.12"),
        (&["replay", &log, "--now", "yesterday"], "--now"),
        (&["whatif", "--members", "ten"], "members"),
    ];
    for (args, needle) in cases {
        let out = mechfund(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn stdin_gzip_and_file_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!("{D1}\n{D2}\n{D3}\n");
    let log = write(dir.path(), "log.jsonl", &text);
    let gz = dir.path().join("log.jsonl.gz");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).expect("create"), flate2::Compression::default());
    enc.write_all(text.as_bytes()).expect("compress");
    enc.finish().expect("finish gzip");
    let from_file = json(&mechfund(&["replay", &log]));
    let from_gz = json(&mechfund(&["replay", gz.to_str().expect("utf-8 path")]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mechfund"))
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    let from_stdin = json(&child.wait_with_output().expect("wait"));
    assert_eq!(from_file, from_gz);
    assert_eq!(from_file, from_stdin);
    // Worked by hand: 400 at t0; 12 h later decay 50 -> 350, then 600: evo 1000 = goal 1000,
    // an exact hit: level 2, evo 0, power 0 + 100 bonus; goal(2, 0 members) = 1500.
    // 12 h later at level 2: decay 50 -> power 50; the member count no longer re-prices.
    assert_eq!(from_file["state"]["level"], 2);
    assert_eq!(from_file["state"]["power_acc"], 50);
    assert_eq!(from_file["state"]["goal_requirement"], 1500);
    assert_eq!(from_file["state"]["last_user_count_sample"], 50);
    assert_eq!(from_file["state"]["cumulative_donations_cents"], 1000);
}

#[test]
fn out_of_order_files_replay_like_sorted_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sorted = write(dir.path(), "sorted.jsonl", &format!("{D1}\n{D2}\n{D3}\n"));
    let shuffled = write(dir.path(), "shuffled.jsonl", &format!("{D3}\n{D1}\n{D2}\n"));
    let a = json(&mechfund(&["replay", &sorted]));
    let b = json(&mechfund(&["replay", &shuffled]));
    assert_eq!(a["state"], b["state"]);
    assert_eq!(a["display"], b["display"]);
    assert_eq!(a["level_ups"][0]["seq"], 2);
    assert_eq!(b["level_ups"][0]["seq"], 2);
}

#[test]
fn replay_with_now_and_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = write(dir.path(), "log.jsonl", &format!("{D1}\n"));
    // 400 power, one day later at 100/day: 300.
    let out = json(&mechfund(&["replay", &log, "--now", "2025-01-02T00:00:00Z", "--timeline"]));
    assert_eq!(out["display"]["power_now"], 300);
    assert_eq!(out["display"]["now"], "2025-01-02T00:00:00Z");
    assert_eq!(out["timeline"].as_array().map(Vec::len), Some(1));
}

#[test]
fn whatif_prints_the_goal_table() {
    let out = json(&mechfund(&["whatif", "--members", "15"]));
    assert_eq!(out["members"], 15);
    let table = out["table"].as_array().expect("table");
    assert_eq!(table.len(), 10);
    // Seed example: 15 members, level 1 -> $10.50; level 10: 10000 + 50 = 10050.
    assert_eq!(table[0], serde_json::json!({"level": 1, "base": 1000, "dynamic": 50, "goal": 1050}));
    assert_eq!(table[9]["goal"], 10050);
    let negative = json(&mechfund(&["whatif", "--members", "-5"]));
    assert_eq!(negative["table"][0]["goal"], 1000);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let path = samples().join("ddc-mixed-1500.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mechfund"))
        .args(["replay", "--timeline", path.to_str().expect("utf-8 path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read nothing and hang up, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
