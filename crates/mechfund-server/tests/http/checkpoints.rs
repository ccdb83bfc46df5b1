//! Deletion toggles replay from the checkpoint before the toggled event (issue 16): the store
//! keeps each mech's state every 4,096 events, a toggle drops the checkpoints it invalidates,
//! and whatever is toggled, recent or first, with checkpoints damaged or not, the live state is
//! the replay of the export. Replays read each mech's events from its packs (4,096 to a row),
//! which are extended as events are written, and made again when damaged.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::app::App;

/// Events in the imported log: two checkpoints (after events 4,096 and 8,192) and then some.
const EVENTS: u64 = 10_000;

/// The seqs of the log's `DonationAdded` lines.
fn donations(log: &str) -> Vec<u64> {
    log.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|event| event["type"] == "DonationAdded")
        .map(|event| event["seq"].as_u64().unwrap())
        .collect()
}

async fn toggle(app: &App, seq: u64) {
    let path = format!("/api/v1/mechs/main/donations/{seq}/toggle-deletion");
    let (status, body) = app.post_json(&path, &json!({"reason": "checkpoint test"})).await;
    assert_eq!(status, 201, "toggle {seq}: {body}");
}

fn checkpoints(app: &App) -> Vec<i64> {
    let count = app.query_i64("SELECT count(*) FROM checkpoints WHERE mech = 'main'");
    let last = app.query_i64("SELECT coalesce(max(last_seq), 0) FROM checkpoints WHERE mech = 'main'");
    let first = app.query_i64("SELECT coalesce(min(last_seq), 0) FROM checkpoints WHERE mech = 'main'");
    vec![count, first, last]
}

/// An app whose mech `main` holds the generated log of [`EVENTS`] events from `seed`, imported.
async fn imported(seed: u64) -> (App, String) {
    let app = App::builder().import_limit(16 << 20).start();
    let log = mechfund_loggen::log_text(EVENTS, seed);
    let (status, body) = app.post("/api/v1/mechs/main/import", log.clone(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, log)
}

fn packs(app: &App) -> Vec<i64> {
    let count = app.query_i64("SELECT count(*) FROM packs WHERE mech = 'main'");
    let first = app.query_i64("SELECT coalesce(min(last_seq), 0) FROM packs WHERE mech = 'main'");
    let last = app.query_i64("SELECT coalesce(max(last_seq), 0) FROM packs WHERE mech = 'main'");
    vec![count, first, last]
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_read_packs_and_damaged_packs_are_made_again() {
    let (app, log) = imported(11).await;
    // The import's replay packed the whole packs of events (seqs 1..=4,096 and 4,097..=8,192).
    assert_eq!(packs(&app), vec![2, 4_096, 8_192]);

    let first = donations(&log)[0];
    for damage in [
        "UPDATE packs SET digest = 'x' WHERE last_seq = 4096",
        "UPDATE packs SET format = 99 WHERE last_seq = 8192",
        "DELETE FROM packs WHERE last_seq = 4096",
        "UPDATE packs SET after_seq = 1 WHERE last_seq = 8192",
    ] {
        toggle(&app, first).await;
        app.assert_live_equals_replay("main").await;
        assert_eq!(app.execute(damage), 1, "{damage}");
        toggle(&app, first).await;
        app.assert_live_equals_replay("main").await;
        assert_eq!(packs(&app), vec![2, 4_096, 8_192], "made again after {damage}");
        assert_eq!(
            app.query_i64("SELECT count(*) FROM packs WHERE digest = 'x' OR format = 99 OR after_seq = 1"),
            0,
            "after {damage}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn toggles_replay_from_checkpoints_and_give_the_replay_of_the_log() {
    let (app, log) = imported(7).await;
    // The import's replay kept the state after events 4,096 and 8,192 (seqs 1..=10,000).
    assert_eq!(checkpoints(&app), vec![2, 4_096, 8_192]);

    let seqs = donations(&log);
    let (first, middle, recent) = (seqs[0], seqs[seqs.len() / 2], *seqs.last().unwrap());
    assert!(first < 4_096 && (4_096..8_192).contains(&middle) && recent > 8_192, "{first} {middle} {recent}");
    // Each toggle drops the checkpoints at or after its target and writes them again from the
    // replay of the events after the last one before it.
    for target in [recent, middle, first, middle, recent] {
        toggle(&app, target).await;
        app.assert_live_equals_replay("main").await;
        assert_eq!(checkpoints(&app), vec![2, 4_096, 8_192], "after toggling {target}");
    }

    // Damaged checkpoints are not used, and are written again.
    assert_eq!(
        app.execute("UPDATE checkpoints SET state = replace(state, '\"level\":', '\"level\": ') WHERE last_seq = 8192"),
        1
    );
    assert_eq!(app.execute("UPDATE checkpoints SET digest = 'x' WHERE last_seq = 4096"), 1);
    toggle(&app, recent).await;
    app.assert_live_equals_replay("main").await;
    assert_eq!(checkpoints(&app), vec![2, 4_096, 8_192]);
    assert_eq!(
        app.query_i64("SELECT count(*) FROM checkpoints WHERE digest = 'x'"),
        0,
        "the damaged rows were made again"
    );

    // Live writes add a checkpoint once 4,096 more events were written.
    for i in 0..4_100 {
        let (status, body) =
            app.post_json("/api/v1/mechs/main/donations", &json!({"amount": "0.10", "donor": format!("d{i}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let [count, _, last] = checkpoints(&app)[..] else { unreachable!() };
    assert_eq!(count, 3);
    assert_eq!(last, 8_192 + 4_096, "4,096 events after the last checkpoint");
    assert_eq!(packs(&app), vec![3, 4_096, 12_288], "packed with the checkpoint");
    // A toggle of the newest donation resumes from it.
    let newest = app.get_json("/api/v1/mechs/main/state").await["state"]["last_event_seq"].as_u64().unwrap();
    toggle(&app, newest).await;
    app.assert_live_equals_replay("main").await;
}
