//! `mechfund import`, `export`, `backup` and `restore` with the real binary: round trips byte
//! for byte, all-or-nothing imports, the store's lock against a running server, and a backup
//! taken while serving restoring to the same state.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const TOKEN: &str = "test-token-0123456789";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/samples/ddc-small.jsonl")
}

fn mechfund(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mechfund")).args(args).arg("--data").arg(data).output().unwrap()
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

/// A running `mechfund serve` (as in tests/serve.rs).
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        let stderr = data.with_extension(format!("stderr-{}.log", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mechfund"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--dist")
            .arg(data.join("no-dist"))
            .args(["--rate-limit", "0"])
            .env("MECHFUND_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("mechfund serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(base) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            panic!("no address printed: {line:?}; stderr: {}", std::fs::read_to_string(&stderr).unwrap_or_default());
        };
        std::thread::spawn(move || for _ in out.lines() {});
        Server { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn stop(mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn state(server: &Server, mech: &str) -> Value {
    let response = client().get(server.url(&format!("/mechs/{mech}/state"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn donate(server: &Server, cents: u64) {
    let body = format!(r#"{{"amount":"{}.{:02}","donor":"tester"}}"#, cents / 100, cents % 100);
    let response = client()
        .post(server.url("/mechs/main/donations"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
}

/// `mechfund replay FILE`'s result.
fn replay(file: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_mechfund")).arg("replay").arg(file).output().unwrap();
    assert_ok(&output, "replay");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn import_then_export_is_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_ok(&import(&sample(), &data), "import");
    let output = import(&sample(), &data);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("mech \"main\" already has events"), "{}", stderr(&output));
    assert_eq!(export(&data), std::fs::read(sample()).unwrap());
}

#[test]
fn a_bad_line_aborts_with_its_number_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
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
    assert!(stderr(&output).contains("is in use by a running `mechfund serve` (stop it first)"), "{}", stderr(&output));

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
