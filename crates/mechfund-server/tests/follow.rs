//! `mechfund serve --ddc DIR` as a real process following a copy of a DDC installation written
//! by DDC's own code: lines appended as DDC writes them (one `write` per line, some split in
//! two) reach `GET …/state` and the event stream within a second, a half-written line is waited
//! for, a replaced log is read again, rules and snapshot changes are picked up, writes are 403,
//! and the state always equals `mechfund replay --ddc` of the same directory.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, Stream, client, get_text};
use serde_json::{Value, json};

/// What the issue promises: a line DDC appends is served within this.
const PROMPT: Duration = Duration::from_secs(1);
const WAIT: Duration = Duration::from_secs(10);

fn ddc_dirs() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.join("../../tests/samples/ddc-dirs")
}

/// A copy of a sample installation's config dir, which the test then writes to as DDC would.
fn copy_of(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy(&ddc_dirs().join(name).join("config"), tmp.path());
    tmp
}

fn follow(dir: &Path, data: &Path) -> Server {
    Server::start_args(data, None, &["--ddc", dir.to_str().unwrap()])
}

/// `mechfund replay --ddc DIR`: the definition the followed state must equal.
fn replay_ddc(dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mechfund")).args(["replay", "--ddc"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["state"].clone()
}

async fn state(c: &reqwest::Client, server: &Server) -> Value {
    let (status, text) = get_text(c, &server.url("/mechs/main/state")).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["state"].clone()
}

/// Polls `GET …/state` until `done` holds, at most `within`; returns how long it took.
async fn state_until(
    c: &reqwest::Client,
    server: &Server,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Duration, Value) {
    let start = Instant::now();
    loop {
        let now = state(c, server).await;
        if done(&now) {
            return (start.elapsed(), now);
        }
        assert!(start.elapsed() < within, "not within {within:?}; state: {now}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends with one `write` per call, as DDC's Python appends a line.
fn append(dir: &Path, bytes: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(dir.join("progress/events.jsonl")).unwrap();
    file.write_all(bytes.as_bytes()).unwrap();
}

fn donation(seq: u64, units: u64) -> String {
    format!(
        r#"{{"seq":{seq},"ts":"2025-03-22T00:{:02}:{:02}.5+00:00","type":"DonationAdded","mech_id":"main","payload":{{"donation_id":null,"idempotency_key":null,"units":{units},"donor":"WebUI:t{seq}","channel_id":null}}}}"#,
        (seq / 60) % 60,
        seq % 60
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_installation_is_served_as_replay_gives_it() {
    let c = client();
    for name in ["deletions", "donations-only", "small-guild", "static-x1.5-decay", "webui-no-member-file"] {
        let dir = copy_of(name);
        let data = tempfile::tempdir().unwrap();
        let server = follow(dir.path(), data.path());
        assert_eq!(state(&c, &server).await, replay_ddc(dir.path()), "{name}");
        let (status, exported) = get_text(&c, &server.url("/mechs/main/events.jsonl")).await;
        assert_eq!(status, 200);
        let log = std::fs::read_to_string(dir.path().join("progress/events.jsonl")).unwrap();
        assert_eq!(exported, log, "{name}: the export is DDC's log byte for byte");
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn appended_lines_reach_state_and_stream_within_a_second_and_half_lines_wait() {
    let c = client();
    let dir = copy_of("small-guild");
    let data = tempfile::tempdir().unwrap();
    let server = follow(dir.path(), data.path());
    let mut stream = Stream::open(&server, "main", "?after_seq=90", None).await;
    let (backlog, _) = stream.until_state(WAIT).await;
    assert!(backlog.is_empty(), "{backlog:?}");

    let mut latencies = Vec::new();
    for seq in 91..=110 {
        let line = donation(seq, 37 * seq);
        let start = Instant::now();
        if seq % 4 == 0 {
            // DDC's write split in two: the first half is not an event yet.
            let (first, rest) = line.split_at(line.len() / 2);
            append(dir.path(), first);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(state(&c, &server).await["last_event_seq"], json!(seq - 1), "half a line is waited for");
            append(dir.path(), &format!("{rest}\n"));
        } else {
            append(dir.path(), &format!("{line}\n"));
        }
        let (lines, streamed_state) = stream.lines_then_state(1, WAIT).await;
        latencies.push(start.elapsed());
        assert_eq!(lines, vec![(seq, line)], "every line once, in order, byte for byte");
        assert_eq!(streamed_state["state"]["last_event_seq"], json!(seq));
        let (_, now) = state_until(&c, &server, PROMPT, |s| s["last_event_seq"] == json!(seq)).await;
        assert_eq!(now, streamed_state["state"]);
    }
    latencies.sort();
    assert!(latencies.last().unwrap() <= &(PROMPT + Duration::from_millis(300)), "{latencies:?}");
    println!("append to stream: {latencies:?}");
    assert_eq!(state(&c, &server).await, replay_ddc(dir.path()));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_deletions_and_level_ups_keep_state_equal_to_replay() {
    let c = client();
    let dir = copy_of("donations-only");
    let data = tempfile::tempdir().unwrap();
    let server = follow(dir.path(), data.path());
    // A donation that levels up (4 -> 5 at 4230), DDC's records of it, a broken line, a deletion
    // of that donation and a restore: each kind of line the follower handles differently.
    let lines = [
        donation(43, 5000),
        r#"{"seq":44,"ts":"2025-03-22T00:00:44+00:00","type":"LevelUpCommitted","mech_id":"main","payload":{"from_level":4,"to_level":5,"old_goal_requirement":4230,"exact_hit":false}}"#.to_owned(),
        r#"{"seq":45,"ts":"not a time","type":"DonationAdded","mech_id":"main","payload":{"units":1}}"#.to_owned(),
        donation(46, 120),
        r#"{"seq":47,"ts":"2025-03-22T00:00:47+00:00","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":43,"reason":"admin_deletion","donor":null,"units":5000,"original_type":"DonationAdded"}}"#.to_owned(),
    ];
    for line in &lines {
        append(dir.path(), &format!("{line}\n"));
    }
    let (_, now) = state_until(&c, &server, PROMPT * 3, |s| s["last_event_seq"] == json!(47)).await;
    assert_eq!(now, replay_ddc(dir.path()));
    assert_eq!(now["level"], json!(4), "the deletion took the level-up back");
    append(
        dir.path(),
        "{\"seq\":48,\"ts\":\"2025-03-22T00:00:48+00:00\",\"type\":\"DonationDeleted\",\"mech_id\":\"main\",\"payload\":{\"deleted_seq\":43}}\n",
    );
    let (_, now) = state_until(&c, &server, PROMPT * 3, |s| s["last_event_seq"] == json!(48)).await;
    assert_eq!(now, replay_ddc(dir.path()));
    assert_eq!(now["level"], json!(5), "restored");
    assert!(server.stderr_text().contains("line 45"), "the bad line is reported: {}", server.stderr_text());
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_or_shrunk_log_is_read_again_and_streams_restart() {
    let c = client();
    let dir = copy_of("small-guild");
    let data = tempfile::tempdir().unwrap();
    let server = follow(dir.path(), data.path());
    let mut stream = Stream::open(&server, "main", "", None).await;
    let (backlog, _) = stream.until_state(WAIT).await;
    assert_eq!(backlog.len(), 90);

    // Replaced by a shorter file (a restore of DDC's config dir, say): renamed over the old one.
    let log = dir.path().join("progress/events.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let first_half: String = text.lines().take(45).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("progress/events.new"), &first_half).unwrap();
    std::fs::rename(dir.path().join("progress/events.new"), &log).unwrap();
    let (_, now) = state_until(&c, &server, PROMPT * 3, |s| s["last_event_seq"] == json!(45)).await;
    assert_eq!(now, replay_ddc(dir.path()));
    // Open streams end, so `EventSource` reconnects and the dashboard checks itself again.
    let deadline = Instant::now() + WAIT;
    while stream.next(WAIT).await.is_some() {
        assert!(Instant::now() < deadline, "the stream did not restart");
    }

    // Truncated in place and written again, longer than before: also read from the start.
    let first_third: String = text.lines().take(30).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, &first_third).unwrap();
    let (_, now) = state_until(&c, &server, PROMPT * 3, |s| s["last_event_seq"] == json!(30)).await;
    assert_eq!(now, replay_ddc(dir.path()));
    std::fs::write(&log, &text).unwrap();
    let (_, now) = state_until(&c, &server, PROMPT * 3, |s| s["last_event_seq"] == json!(90)).await;
    assert_eq!(now, replay_ddc(dir.path()));
    let (_, exported) = get_text(&c, &server.url("/mechs/main/events.jsonl")).await;
    assert_eq!(exported, text);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_snapshot_changes_are_picked_up() {
    let c = client();
    let dir = copy_of("webui-no-member-file");
    let data = tempfile::tempdir().unwrap();
    let server = follow(dir.path(), data.path());
    // DDC's snapshot: level 3, $4.00 of $24.00.
    let now = state(&c, &server).await;
    assert_eq!((now["level"].clone(), now["goal_requirement"].clone()), (json!(3), json!(2400)));

    // DDC re-priced the level (its snapshot says so): the goal follows.
    let snapshot_file = dir.path().join("progress/snapshots/main.json");
    let mut snapshot: Value = serde_json::from_str(&std::fs::read_to_string(&snapshot_file).unwrap()).unwrap();
    snapshot["goal_requirement"] = json!(2600);
    std::fs::write(&snapshot_file, snapshot.to_string()).unwrap();
    let (took, now) = state_until(&c, &server, PROMPT * 2, |s| s["goal_requirement"] == json!(2600)).await;
    println!("snapshot change picked up in {took:?}");
    assert_eq!(now, replay_ddc(dir.path()));

    // Static difficulty x2 in DDC's evolution_mode.json: the rules in force change; the level-2
    // goal stays the recorded one, and the current goal stays DDC's snapshot's.
    std::fs::write(dir.path().join("evolution_mode.json"), r#"{"use_dynamic": false, "difficulty_multiplier": 2.0}"#)
        .unwrap();
    let start = Instant::now();
    loop {
        let (_, rules) = get_text(&c, &server.url("/rules")).await;
        let rules: Value = serde_json::from_str(&rules).unwrap();
        if rules["difficulty"] == json!({"mode": "static", "multiplier_percent": 200}) {
            break;
        }
        assert!(start.elapsed() < PROMPT * 2, "rules not picked up: {rules}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A broken rules file keeps the rules in force, with a warning.
    std::fs::create_dir_all(dir.path().join("mech")).unwrap();
    std::fs::write(dir.path().join("mech/decay.json"), "{").unwrap();
    tokio::time::sleep(PROMPT).await;
    let (_, rules) = get_text(&c, &server.url("/rules")).await;
    assert_eq!(serde_json::from_str::<Value>(&rules).unwrap()["difficulty"]["multiplier_percent"], json!(200));
    assert!(server.stderr_text().contains("mech/decay.json"), "{}", server.stderr_text());
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_refused_with_403_read_only() {
    let c = client();
    let dir = copy_of("small-guild");
    let data = tempfile::tempdir().unwrap();
    let server = follow(dir.path(), data.path());
    let response = c
        .post(server.url("/mechs/main/donations"))
        .header("Authorization", "Bearer anything")
        .header("Content-Type", "application/json")
        .body(r#"{"amount":"5.00","donor":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "read_only");
    assert!(body["error"]["message"].as_str().unwrap().contains("DDC owns this log"), "{body}");
    assert!(!data.path().join("admin-token").exists(), "a read-only follower needs no token");
    server.stop();
}
