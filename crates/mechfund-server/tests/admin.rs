//! `mechfund import`, `export`, `verify`, `backup` and `restore` with the real binary: round
//! trips byte for byte, all-or-nothing imports, damaged rows found and refused, on either store;
//! and on SQLite, the store's lock against a running server, and backups taken while serving
//! (and under a donation load) restoring to a consistent state.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

// Each test crate compiles the shared module again; this one uses only part of it.
#[allow(dead_code)]
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::store::{DataDir, store_args};
use common::{Load, Log, Server, TOKEN, client, get_json, post};

/// The bundled sample of this checkout (the manifest dir cargo sets when it runs the test: the
/// compile-time one may name another checkout that shares the target dir).
fn sample() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.join("../../tests/samples/ddc-small.jsonl")
}

/// `mechfund ARGS` on the store of `data`: `--data DATA`, or on PostgreSQL the `--store URL` of
/// its [`DataDir`].
fn mechfund(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mechfund")).args(args).args(store_args(data)).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output, what: &str) {
    assert!(output.status.success(), "{what} failed: {}", stderr(output));
}

fn import(file: &Path, data: &Path) -> Output {
    mechfund(&["import", file.to_str().unwrap()], data)
}

fn export(data: &Path) -> Vec<u8> {
    let output = mechfund(&["export"], data);
    assert_ok(&output, "export");
    output.stdout
}

async fn state(server: &Server, mech: &str) -> Value {
    get_json(&client(), &server.url(&format!("/mechs/{mech}/state"))).await
}

async fn donate(server: &Server, cents: u64) {
    donate_seqs(server, cents).await;
}

/// `mechfund replay FILE`'s result.
fn replay(file: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_mechfund")).arg("replay").arg(file).output().unwrap();
    assert_ok(&output, "replay");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An import stores its rows several hundred to a statement: 1,234 events (three statements, the
/// last a short one) come back byte for byte, and every row's hash verifies.
#[test]
fn a_large_import_is_stored_in_order_and_its_chain_verifies() {
    let dir = DataDir::new();
    let data = dir.path().join("data");
    let file = dir.path().join("events.jsonl");
    let log = mechfund_loggen::log_text(1_234, 7);
    std::fs::write(&file, &log).unwrap();
    let output = import(&file, &data);
    assert_ok(&output, "import");
    assert!(String::from_utf8_lossy(&output.stdout).contains("imported 1234 events"), "{output:?}");
    assert_eq!(export(&data), log.as_bytes());
    let (code, report) = verify_store(&data);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["chain"]["ok"], true, "{report}");
}

#[test]
fn import_then_export_is_byte_for_byte() {
    let dir = DataDir::new();
    let data = dir.path().join("data");
    let output = import(&sample(), &data);
    assert_ok(&output, "import");
    assert!(String::from_utf8_lossy(&output.stdout).contains("imported 120 events"), "{output:?}");
    assert_eq!(export(&data), std::fs::read(sample()).unwrap());
    let output = mechfund(&["export", "--mech", "main"], &data);
    assert_ok(&output, "export --mech main");
    assert_eq!(output.stdout, std::fs::read(sample()).unwrap());
    let output = mechfund(&["export", "--mech", "nobody"], &data);
    assert_ok(&output, "export --mech nobody");
    assert!(output.stdout.is_empty());
}

#[test]
fn importing_twice_is_refused_and_changes_nothing() {
    let dir = DataDir::new();
    let data = dir.path().join("data");
    assert_ok(&import(&sample(), &data), "import");
    let output = import(&sample(), &data);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("mech \"main\" already has events"), "{}", stderr(&output));
    assert_eq!(export(&data), std::fs::read(sample()).unwrap());
}

#[test]
fn a_bad_line_aborts_with_its_number_and_imports_nothing() {
    let dir = DataDir::new();
    let data = dir.path().join("data");
    let text = std::fs::read_to_string(sample()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[41] = r#"{"seq":42,"ts":"2025-05-23T13:30:50+00:00","type":"DonationAdded","payload":{"units":5}}"#;
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let output = import(&bad, &data);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("line 42: "), "{}", stderr(&output));
    assert!(export(&data).is_empty(), "a failed import left events behind");

    // Seqs out of order are refused too, naming the line.
    let mut swapped: Vec<&str> = text.lines().collect();
    swapped.swap(9, 10);
    let unordered = dir.path().join("unordered.jsonl");
    std::fs::write(&unordered, swapped.join("\n") + "\n").unwrap();
    let output = import(&unordered, &data);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("line 11: ") && stderr(&output).contains("strictly increasing"), "{output:?}");
    assert!(export(&data).is_empty());

    // After the failures, a good import still works.
    assert_ok(&import(&sample(), &data), "import");
    assert_eq!(export(&data), text.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_of_the_export_equals_the_served_state() {
    let dir = DataDir::new();
    let data = dir.path().join("data");
    assert_ok(&import(&sample(), &data), "import");
    let exported = dir.path().join("export.jsonl");
    std::fs::write(&exported, export(&data)).unwrap();
    let replayed = replay(&exported);
    let server = Server::start(&data);
    let live = state(&server, "main").await;
    assert_eq!(live["state"], replayed["state"]);
    assert_eq!(live["state"]["last_event_seq"], 120);
    server.stop();
}

/// Posts a donation; returns the seqs of the events it wrote.
async fn donate_seqs(server: &Server, cents: u64) -> Vec<u64> {
    let body = json!({"amount": format!("{}.{:02}", cents / 100, cents % 100), "donor": "tester"});
    let (status, answer) = post(&client(), &server.url("/mechs/main/donations"), &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// A store a newer mechfund migrated (its schema version is past this one's) is refused by
/// `serve`, `import`, `export` and `verify`, each saying to run a newer mechfund; none writes
/// to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_a_newer_mechfund_migrated_is_refused_by_every_command() {
    let dir = store_with_donations().await;
    let data = dir.path();
    let before = export(data);
    let (bump, undo) = match dir.database() {
        Some(_) => (
            "INSERT INTO mechfund_migrations (version) VALUES (1000)",
            "DELETE FROM mechfund_migrations WHERE version = 1000",
        ),
        None => (
            "PRAGMA user_version = 1000",
            &*format!("PRAGMA user_version = {}", mechfund_server::store::schema_version()),
        ),
    };
    dir.execute(bump);
    let newer = "schema is version 1000, newer than this mechfund's";
    let mut serve = Server::spawn(data, Some(TOKEN), &[]);
    let (code, stdout) = serve.exited(Duration::from_secs(30));
    assert_eq!(code, Some(1), "serve: {stdout}");
    assert!(!stdout.contains("listening") && serve.stderr_text().contains(newer), "{stdout}{}", serve.stderr_text());
    for args in [&["import", sample().to_str().unwrap()][..], &["export"], &["verify"]] {
        let output = mechfund(args, data);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(newer) && stderr(&output).contains("run a newer mechfund"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    dir.execute(undo);
    assert_eq!(export(data), before, "the refused commands changed the store");
}

/// A store with five donations of $1 (seqs 1..=5, level 1, $5 of $10), the server stopped.
async fn store_with_donations() -> DataDir {
    let dir = DataDir::new();
    donate_five(dir.path()).await;
    dir
}

/// Five donations of $1 to `main` by a server on `data`, stopped after.
async fn donate_five(data: &Path) {
    let server = Server::start(data);
    for _ in 0..5 {
        donate(&server, 100).await;
    }
    server.stop();
}

fn verify_store(data: &Path) -> (Option<i32>, Value) {
    let output = mechfund(&["verify"], data);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("no report: {}", stderr(&output)));
    (output.status.code(), report)
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_removed_or_added_rows_are_found_and_the_store_takes_no_writes() {
    let cases = [
        ("edited", "UPDATE events SET line = replace(line, '\"units\":100', '\"units\":30000') WHERE seq = 3", 3),
        ("removed", "DELETE FROM events WHERE seq = 2", 3),
        ("removed at the end", "DELETE FROM events WHERE seq = 5", 4),
        (
            "added",
            "INSERT INTO events (seq, mech, line) SELECT 6, mech, replace(line, '\"seq\":5', '\"seq\":6') FROM events WHERE seq = 5",
            6,
        ),
    ];
    for (what, statement, first_bad) in cases {
        let dir = store_with_donations().await;
        let data = dir.path();
        assert_eq!(verify_store(data).0, Some(0), "{what}: the untouched store verifies");
        dir.execute(statement);
        let (code, report) = verify_store(data);
        assert_eq!(code, Some(1), "{what}: {report}");
        assert_eq!(report["chain"]["ok"], false, "{what}: {report}");
        assert_eq!(report["chain"]["first_bad_seq"], first_bad, "{what}: {report}");
        // The server starts (reads go on) but refuses every write, saying what to run.
        let server = Server::start(data);
        let (status, body) = post(&client(), &server.url("/mechs/main/donations"), &json!({"amount": "1"})).await;
        assert_eq!(status, 503, "{what}: {body}");
        assert!(
            server.stderr_text().contains(&format!("damaged at seq {first_bad}")),
            "{what}: {}",
            server.stderr_text()
        );
        assert_eq!(body["error"]["code"], "store_damaged");
        let run = if dir.database().is_some() { "mechfund verify --store" } else { "mechfund verify --data" };
        assert!(body["error"]["message"].as_str().unwrap().contains(run), "{body}");
        assert_eq!(get_json(&client(), &server.url("/mechs/main/state")).await["state"]["level"], 1);
        server.stop();
        // Nothing was appended to the damaged log.
        assert_eq!(verify_store(data).1["chain"], report["chain"], "{what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_snapshot_is_not_served_the_log_is() {
    let dir = store_with_donations().await;
    let data = dir.path();
    // Goal 1 would level the mech up at the next donation.
    dir.execute("UPDATE snapshots SET state = replace(state, '\"goal_requirement\":1000', '\"goal_requirement\":1')");
    let (code, report) = verify_store(data);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["chain"]["ok"], true);
    assert_eq!(report["snapshots"][0]["ok"], false, "{report}");
    let server = Server::start(data);
    assert!(server.stderr_text().contains("does not match its digest"), "{}", server.stderr_text());
    let state = state(&server, "main").await;
    assert_eq!(state["state"]["goal_requirement"], 1000, "{state}");
    donate(&server, 100).await;
    let state = get_json(&client(), &server.url("/mechs/main/state")).await;
    assert_eq!((state["state"]["level"].clone(), state["state"]["evo_acc"].clone()), (json!(1), json!(600)));
    server.stop();
    let exported = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(exported.path(), export(data)).unwrap();
    assert_eq!(replay(exported.path())["state"], state["state"]);
    assert_eq!(verify_store(data).0, Some(0));
}

mod sqlite_file {
    //! The SQLite file itself: `backup` and `restore` (on PostgreSQL: pg_dump or point-in-time
    //! recovery, docs/http-api.md), the store's lock file, an emptied file, and a store from before the
    //! hash chain (PostgreSQL stores were chained from their first version). Always on SQLite: the
    //! PostgreSQL run skips them.

    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn import_and_restore_refuse_while_serving_backup_then_restore_gives_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_ok(&import(&sample(), &data), "import");
        let server = Server::start(&data);

        // The server holds the store: import and restore refuse, naming the reason.
        let other = dir.path().join("other.jsonl");
        std::fs::write(&other, concat!(
            r#"{"seq":500,"ts":"2025-06-01T00:00:00+00:00","type":"DonationAdded","mech_id":"alt","payload":{"units":5}}"#,
            "\n"
        ))
        .unwrap();
        let output = import(&other, &data);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("is in use by a running `mechfund serve` (stop it first)"),
            "{}",
            stderr(&output)
        );

        // Writes after the import, then an online backup while serving; export works meanwhile.
        for cents in [1500, 250, 99_999] {
            donate(&server, cents).await;
        }
        let served_export = export(&data);
        assert!(served_export.starts_with(&std::fs::read(sample()).unwrap()));
        let backup = dir.path().join("backup.db");
        let output = mechfund(&["backup", backup.to_str().unwrap()], &data);
        assert_ok(&output, "backup");
        let output = mechfund(&["backup", backup.to_str().unwrap()], &data);
        assert_eq!(output.status.code(), Some(1), "a backup must not overwrite a file");
        let output = mechfund(&["restore", backup.to_str().unwrap()], &data);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("stop it first"), "{}", stderr(&output));
        let before = state(&server, "main").await;
        server.stop();

        // A fresh directory from the backup serves the same state and the same log.
        let fresh = dir.path().join("fresh");
        assert_ok(&mechfund(&["restore", backup.to_str().unwrap()], &fresh), "restore");
        assert_eq!(export(&fresh), served_export);
        let restored = Server::start(&fresh);
        assert_eq!(state(&restored, "main").await["state"], before["state"]);
        restored.stop();

        // Restoring over the original store keeps the old database aside.
        assert_ok(&mechfund(&["restore", backup.to_str().unwrap()], &data), "restore over");
        assert!(
            std::fs::read_dir(&data)
                .unwrap()
                .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with("mechfund.db.before-restore-") })
        );
        assert_eq!(export(&data), served_export);

        // Something that is not a store is refused.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not a database").unwrap();
        let output = mechfund(&["restore", junk.to_str().unwrap()], &fresh);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("not a usable mechfund store"), "{}", stderr(&output));
        assert_eq!(export(&fresh), served_export);
    }

    #[tokio::test]
    async fn seqs_given_out_before_a_restore_are_never_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_ok(&import(&sample(), &data), "import");
        let server = Server::start(&data);
        let in_backup = donate_seqs(&server, 100).await;
        assert_eq!(in_backup[0], 121, "the sample ends at seq 120");
        let backup = dir.path().join("backup.db");
        assert_ok(&mechfund(&["backup", backup.to_str().unwrap()], &data), "backup");
        let backup_lines = export(&data);
        // Written after the backup: lost by the restore, but their seqs were handed out.
        let mut lost = donate_seqs(&server, 200).await;
        lost.extend(donate_seqs(&server, 300).await);
        let highest = *lost.iter().max().unwrap();
        server.stop();

        let output = mechfund(&["restore", backup.to_str().unwrap()], &data);
        assert_ok(&output, "restore");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(said.contains(&format!("the next event gets seq {}", highest + 1)), "{said}");
        assert_eq!(export(&data), backup_lines);
        let server = Server::start(&data);
        let after = donate_seqs(&server, 400).await;
        assert_eq!(after[0], highest + 1, "a seq given out before the restore was given again");
        let served = state(&server, "main").await;
        server.stop();
        // The log has a gap where the lost events were; replay does not mind.
        let log = dir.path().join("after.jsonl");
        std::fs::write(&log, export(&data)).unwrap();
        assert_eq!(replay(&log)["state"], served["state"]);

        // Restored where no database was, the backup's own seqs continue.
        let fresh = dir.path().join("fresh");
        let output = mechfund(&["restore", backup.to_str().unwrap()], &fresh);
        assert_ok(&output, "restore into a fresh directory");
        let said = String::from_utf8_lossy(&output.stdout);
        let next = in_backup.iter().max().unwrap() + 1;
        assert!(said.contains(&format!("the next event gets seq {next}")), "{said}");
    }

    /// The highest seq of some stored lines (0 for none).
    fn last_seq(lines: &str) -> u64 {
        lines
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap())
            .max()
            .unwrap_or(0)
    }

    /// The lines of a store file (every mech, in seq order, each followed by a newline) and whether
    /// each mech's snapshot row is at its last event.
    fn read_store(db: &Path) -> (String, Vec<(String, i64, i64)>) {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut lines = String::new();
        let mut stmt = conn.prepare("SELECT line FROM events ORDER BY seq").unwrap();
        for line in stmt.query_map([], |row| row.get::<_, String>(0)).unwrap() {
            lines.push_str(&line.unwrap());
            lines.push('\n');
        }
        let mut stmt = conn
            .prepare(
                "SELECT e.mech, MAX(e.seq), (SELECT last_seq FROM snapshots s WHERE s.mech = e.mech) \
                 FROM events e GROUP BY e.mech",
            )
            .unwrap();
        let rows =
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, Option<i64>>(2)?.unwrap_or(-1))));
        (lines, rows.unwrap().map(Result::unwrap).collect())
    }

    /// A backup taken while clients donate is a consistent snapshot, and restoring it (over the
    /// store of a server killed with -9, hot WAL and all) serves it: state == replay of the restored
    /// log, which is the backup's byte for byte; its snapshot rows are at its last events (the server
    /// rebuilds nothing); every donation acknowledged before the backup started is there once, none
    /// sent after it finished is, and each client's donations in it are a prefix of what it sent.
    /// The old store is kept aside complete. Clients retrying with their keys then get their first
    /// answers for what the backup holds, and the rest takes effect once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_backup_under_load_restores_to_a_consistent_state() {
        let seed = common::seed("MECHFUND_BACKUP_SEED");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let c = client();
        let mut server = Server::start(&data);
        let load = Load::start(&c, &server, 8, "b", seed);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let backup = dir.path().join("backup.db");
        let started = Instant::now();
        let (path, dir_of_data) = (backup.to_str().unwrap().to_owned(), data.clone());
        let output = tokio::task::spawn_blocking(move || mechfund(&["backup", &path], &dir_of_data)).await.unwrap();
        let finished = Instant::now();
        assert_ok(&output, "backup while serving");
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill9();
        let writes = load.join().await;
        drop(server);

        let (backup_lines, snapshots) = read_store(&backup);
        for (mech, last_seq, snapshot_seq) in &snapshots {
            assert_eq!(snapshot_seq, last_seq, "seed {seed}: the backup's snapshot of {mech} is not at its last event");
        }
        assert_ok(&mechfund(&["restore", backup.to_str().unwrap()], &data), "restore");
        let server = Server::start(&data);
        assert!(!server.stderr_text().contains("snapshot rebuilt"), "seed {seed}: {}", server.stderr_text());
        let log = Log::fetch(&c, &server).await;
        let restored = String::from_utf8(export(&data)).unwrap();
        if restored != backup_lines {
            let line = restored.lines().zip(backup_lines.lines()).position(|(a, b)| a != b);
            panic!(
                "seed {seed}: the restored log ({} lines) is not the backup's ({} lines); first difference at line {line:?}",
                restored.lines().count(),
                backup_lines.lines().count()
            );
        }

        let donor_of = |key: &str| key.rsplit_once('-').unwrap().0.to_owned();
        let before: Vec<_> =
            writes.iter().filter(|w| w.answer.as_ref().is_some_and(|a| a.at < started)).cloned().collect();
        log.assert_exactly_once(&before, &format!("seed {seed}: acknowledged before the backup"));
        let mut gone: HashSet<String> = HashSet::new();
        for write in writes.iter().filter(|w| w.donor.is_some()) {
            let donor = write.donor.as_ref().unwrap();
            let present = log.donors.contains_key(donor);
            assert!(!(present && write.sent > finished), "seed {seed}: {donor} was sent after the backup finished");
            // Each client sends one write at a time: once one is missing, so are its later ones.
            let client = donor_of(&write.key);
            assert!(
                !(present && gone.contains(&client)),
                "seed {seed}: {donor} is in the backup, an earlier one is not"
            );
            if !present {
                gone.insert(client);
            }
        }
        let old = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("mechfund.db.before-restore-") && !name.ends_with("-wal")
            })
            .unwrap();
        let (old_lines, _) = read_store(&old);
        // The seqs the old store gave out after the backup are not given again.
        let lost = last_seq(&backup_lines) + 1..=last_seq(&old_lines);
        for write in writes.iter().filter(|w| w.answer.is_some()) {
            if let Some(donor) = &write.donor {
                assert!(old_lines.contains(&format!("\"donor\":\"{donor}\"")), "seed {seed}: {donor} not kept aside");
            }
        }

        // The clients retry: the first answer for what the backup holds, once more for the rest.
        let mut retried = writes.clone();
        for write in
            retried.iter_mut().filter(|w| w.donor.is_some() || w.answer.as_ref().is_some_and(|a| a.at < started))
        {
            let again = write.retry(&c, &server).await.unwrap();
            assert!([200, 201].contains(&again.0), "seed {seed}: retry of {}: {again:?}", write.key);
            let kept = write.donor.as_ref().is_none_or(|donor| log.donors.contains_key(donor));
            if let (Some(first), true) = (&write.answer, kept) {
                assert_eq!(again, (first.status, first.body.clone()), "seed {seed}: retry of {}", write.key);
            }
            write.answer = Some(common::Answer { status: again.0, body: again.1, at: Instant::now() });
        }
        let log = Log::fetch_with_gap(&c, &server, Some(lost)).await;
        log.assert_exactly_once(&retried, &format!("seed {seed}: after the retries"));
        let donations = writes.iter().filter(|w| w.donor.is_some()).count();
        assert_eq!(log.donors.len(), donations, "seed {seed}: every donation is recorded once after the retries");
        let during = writes.iter().filter(|w| w.answer.as_ref().is_some_and(|a| a.at >= started && w.sent <= finished));
        eprintln!(
            "{} writes, {} acknowledged before the backup, {} during it, {} events in it",
            writes.len(),
            before.len(),
            during.count(),
            log.events.len()
        );
        assert!(before.len() >= 10, "seed {seed}: too little load before the backup");
        server.stop();
    }

    #[test]
    fn a_server_refuses_to_start_on_a_locked_store() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let lock = std::fs::File::create(data.join("lock")).unwrap();
        lock.try_lock().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_mechfund"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("MECHFUND_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("in use by another mechfund process"), "{}", stderr(&output));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_emptied_database_is_refused_not_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let backup = dir.path().join("backup.db");
        {
            let server = Server::start(&data);
            donate(&server, 500).await;
            assert_ok(&mechfund(&["backup", backup.to_str().unwrap()], &data), "backup");
            server.stop();
        }
        // The database emptied (a disk full, a careless `> mechfund.db`); the lock file the server
        // left says the directory held a store.
        std::fs::write(data.join("mechfund.db"), b"").unwrap();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data.join(format!("mechfund.db{suffix}")));
        }
        let output = Command::new(env!("CARGO_BIN_EXE_mechfund"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env_remove("MECHFUND_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
        let message = stderr(&output);
        assert!(message.contains("is empty (0 bytes)") && message.contains("mechfund restore"), "{message}");
        let output = import(&sample(), &data);
        assert!(!output.status.success() && stderr(&output).contains("is empty (0 bytes)"), "{}", stderr(&output));
        // Deleted rather than emptied: the same.
        std::fs::remove_file(data.join("mechfund.db")).unwrap();
        let output = import(&sample(), &data);
        assert!(stderr(&output).contains("is missing"), "{}", stderr(&output));
        // What the message says to run brings the store back.
        assert_ok(&mechfund(&["restore", backup.to_str().unwrap()], &data), "restore");
        let server = Server::start(&data);
        assert_eq!(state(&server, "main").await["state"]["cumulative_donations_cents"], 500);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_store_from_before_the_chain_is_chained_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        donate_five(&data).await;
        let conn = rusqlite::Connection::open(data.join("mechfund.db")).unwrap();
        conn.execute_batch(
            "UPDATE events SET hash = NULL; UPDATE snapshots SET digest = NULL; DELETE FROM meta WHERE key = 'head_seq';",
        )
        .unwrap();
        drop(conn);
        let (code, report) = verify_store(&data);
        assert_eq!(code, Some(1), "snapshots without a digest: {report}");
        assert!(report["chain"]["unchained"].is_string(), "{report}");
        let server = Server::start(&data);
        donate(&server, 100).await;
        server.stop();
        let (code, report) = verify_store(&data);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["chain"]["last_seq"], 6);
    }
}
