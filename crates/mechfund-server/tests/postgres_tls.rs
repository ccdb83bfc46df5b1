//! TLS to PostgreSQL as libpq users know it (`sslmode`, `sslrootcert`, `PGSSLROOTCERT`), against
//! a real PostgreSQL 15 with `ssl=on` and a certificate for `localhost` signed by a CA each test
//! makes (`mechfund-pgtest`): what connects, what is refused and what the refusal says, and that
//! every connection of a server (writer, listener, readers) and of the store commands goes the
//! same way.

#![allow(clippy::unwrap_used, reason = "test helpers too: any failure is the test's failure")]

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, TOKEN, assert_live_equals_replay, client, events, send_post};
use mechfund_pgtest::{Cluster, TestCa, TlsClients};
use serde_json::{Value, json};

/// One test at a time: each starts a cluster, and some a server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster with TLS on, its certificate issued for `localhost` only by a new CA, and a
/// database `tls`; the CA's certificate and another CA's (which signed nothing here) in `dir`.
struct Tls {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Tls {
    fn start(clients: TlsClients) -> Tls {
        tokio::task::block_in_place(|| {
            let ca = TestCa::new("mechfund test CA").unwrap();
            let server = ca.server(&["localhost"]).unwrap();
            let other = TestCa::new("another CA").unwrap();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
            let cluster = Cluster::start_tls(&server, clients, &[]).unwrap_or_else(|e| panic!("start PostgreSQL: {e}"));
            cluster.create_database("tls").unwrap();
            Tls { cluster, dir }
        })
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// `postgres://mechfund@HOST:PORT/tls?QUERY`.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://mechfund@{host}:{}/tls?{query}", self.cluster.port())
    }

    /// How many of the server's client connections named `mechfund` there are, and how many of
    /// them use TLS (`pg_stat_ssl`).
    fn mechfund_connections(&self) -> (i64, i64) {
        tokio::task::block_in_place(|| {
            let mut c = self.cluster.connect("postgres").unwrap();
            let row = c
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
                     JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'mechfund'",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        })
    }
}

/// `mechfund ARGS` with the variables `env` names set (`PGSSLMODE` and `PGSSLROOTCERT` unset
/// otherwise).
fn mechfund(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mechfund"));
    command.args(args).env_remove("PGSSLMODE").env_remove("PGSSLROOTCERT");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::block_in_place(|| command.output().unwrap())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `mechfund import EMPTY --store URL` (which creates the tables at the first connection) and
/// `mechfund verify --store URL` succeed: they connect, write, read and check the store.
#[track_caller]
fn assert_connects(url: &str) {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let output = mechfund(&["import", empty.path().to_str().unwrap(), "--store", url], &[]);
    assert!(output.status.success(), "import --store {url} failed: {}", stderr(&output));
    let output = mechfund(&["verify", "--store", url], &[]);
    assert!(output.status.success(), "verify --store {url} failed: {}", stderr(&output));
}

/// `mechfund verify --store URL` fails with exit 1 and says all of `says`; the message.
#[track_caller]
fn assert_refused(url: &str, says: &[&str]) -> String {
    let output = mechfund(&["verify", "--store", url], &[]);
    let message = stderr(&output);
    eprintln!("refused, as it must be: {message}");
    assert_eq!(output.status.code(), Some(1), "verify --store {url}: {message}");
    for part in says {
        assert!(message.contains(part), "verify --store {url}: {part:?} is not in: {message}");
    }
    message
}

/// A donation through `server`; the events its answer holds.
async fn donate(server: &Server, donor: &str) -> Vec<Value> {
    let body = json!({"amount": "5", "donor": donor}).to_string().into_bytes();
    let (status, text) =
        send_post(&client(), &server.url("/mechs/main/donations"), body, Some(TOKEN), Some(donor)).await.unwrap();
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    answer["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_with_the_ca_serves_a_round_trip() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // TLS only: whatever connects here (writer, listener, readers, the CLI) uses TLS.
    let tls = Tls::start(TlsClients::TlsOnly);
    let url = tls.url("localhost", &format!("sslmode=verify-full&sslrootcert={}", tls.ca().display()));
    let data = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| Server::start_args(data.path(), Some(TOKEN), &["--store", &url]));
    let written = donate(&server, "alice").await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["type"], "DonationAdded");
    assert_eq!(written[0]["payload"]["donor"], "alice");
    // The state is served (by a read connection) and is the replay of the export.
    let exported_live = assert_live_equals_replay(&client(), &server, "main").await;
    assert_eq!(events(&exported_live), written);
    let state: Value = common::get_json(&client(), &server.url("/mechs/main/state")).await;
    assert_eq!(state["state"]["last_event_seq"], written[0]["seq"]);
    // Writer, listener and at least one reader, every one over TLS.
    let (connections, encrypted) = tls.mechfund_connections();
    assert!(connections >= 3, "{connections} connections named mechfund");
    assert_eq!(encrypted, connections);
    tokio::task::block_in_place(|| server.stop());
    // The store commands take the same URL: the export is what was written.
    let output = mechfund(&["export", "--store", &url], &[]);
    assert!(output.status.success(), "export: {}", stderr(&output));
    assert_eq!(events(&String::from_utf8(output.stdout).unwrap()), written);
    assert_connects(&url);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_hold() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let tls = Tls::start(TlsClients::TlsOnly);
    let root = format!("sslrootcert={}", tls.ca().display());
    // The certificate names localhost, not 127.0.0.1: same server, same trusted CA.
    let url = tls.url("127.0.0.1", &format!("sslmode=verify-full&{root}"));
    assert_refused(&url, &["not issued for the host 127.0.0.1", "sslmode=verify-full", "sslmode=verify-ca"]);
    // A server refuses to start on it, saying the same.
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(data.path(), Some(TOKEN), &["--store", &url]);
    let (code, stdout) = tokio::task::block_in_place(|| server.exited(Duration::from_secs(20)));
    assert_eq!(code, Some(1), "{}", server.stderr_text());
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(server.stderr_text().contains("not issued for the host 127.0.0.1"), "{}", server.stderr_text());
    // What the refusal is about: the name. verify-ca (the issuer only) connects to 127.0.0.1,
    // and verify-full to the name the certificate holds.
    assert_connects(&tls.url("127.0.0.1", &format!("sslmode=verify-ca&{root}")));
    assert_connects(&tls.url("localhost", &format!("sslmode=verify-full&{root}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_refuses_a_certificate_without_the_right_root() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let tls = Tls::start(TlsClients::TlsOnly);
    let other = tls.other_ca();
    // Another CA's certificate as the root: the message names the mode and the file.
    let url = tls.url("localhost", &format!("sslmode=verify-ca&sslrootcert={}", other.display()));
    assert_refused(&url, &["sslmode=verify-ca", &format!("sslrootcert={}", other.display()), "UnknownIssuer"]);
    // No root given: the system's roots (SSL_CERT_FILE stands for the system's store here, so
    // the test does not depend on what this machine trusts): another CA's are refused, and the
    // test CA's, once the system trusts it, connect.
    let url = tls.url("localhost", "sslmode=verify-ca");
    let output = mechfund(&["verify", "--store", &url], &[("SSL_CERT_FILE", &other)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    for part in ["sslmode=verify-ca", "the system's root certificates", "give sslrootcert=FILE"] {
        assert!(stderr(&output).contains(part), "{part:?} is not in: {}", stderr(&output));
    }
    let empty = tempfile::NamedTempFile::new().unwrap();
    let import = ["import", empty.path().to_str().unwrap(), "--store", &url];
    let output = mechfund(&import, &[("SSL_CERT_FILE", &tls.ca())]);
    assert!(output.status.success(), "{}", stderr(&output));
    // With a root file, require checks the issuer too (as libpq does).
    let url = tls.url("localhost", &format!("sslmode=require&sslrootcert={}", other.display()));
    assert_refused(&url, &["sslmode=require", "UnknownIssuer"]);
    // PGSSLROOTCERT when the URL names no root: the wrong one is refused, the right one connects.
    let url = tls.url("localhost", "sslmode=verify-ca");
    let output = mechfund(&["verify", "--store", &url], &[("PGSSLROOTCERT", &other)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("PGSSLROOTCERT={}", other.display())), "{}", stderr(&output));
    let output = mechfund(&import, &[("PGSSLROOTCERT", &tls.ca())]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn require_without_a_root_encrypts_every_connection() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Plaintext is let in too, so what encrypts is mechfund's asking for it.
    let tls = Tls::start(TlsClients::Either);
    for (query, encrypted) in [("sslmode=require", true), ("sslmode=disable", false), ("", true)] {
        let url = tls.url("127.0.0.1", query);
        let data = tempfile::tempdir().unwrap();
        let server = tokio::task::block_in_place(|| Server::start_args(data.path(), Some(TOKEN), &["--store", &url]));
        donate(&server, &format!("donor-{}", query.len())).await;
        common::get_json(&client(), &server.url("/mechs/main/state")).await;
        let (connections, with_tls) = tls.mechfund_connections();
        assert!(connections >= 3, "{query:?}: {connections} connections named mechfund");
        let want = if encrypted { connections } else { 0 };
        assert_eq!(with_tls, want, "{query:?}: {with_tls} of {connections} connections use TLS");
        tokio::task::block_in_place(|| server.stop());
        // Its connections are gone before the next server counts its own.
        let gone = std::time::Instant::now() + Duration::from_secs(10);
        while tls.mechfund_connections().0 > 0 {
            assert!(std::time::Instant::now() < gone, "the stopped server's connections linger");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_is_refused_by_a_server_that_takes_only_tls() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let tls = Tls::start(TlsClients::TlsOnly);
    assert_refused(&tls.url("127.0.0.1", "sslmode=disable"), &["no encryption", "use sslmode=require"]);
    // allow: plaintext first, then TLS when the server refuses it (libpq's order).
    assert_connects(&tls.url("127.0.0.1", "sslmode=allow"));
    // prefer, the default: TLS since the server offers it.
    assert_connects(&tls.url("127.0.0.1", ""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_tls_refuses_require_over_tcp_and_prefer_falls_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (cluster, url) = tokio::task::block_in_place(|| {
        let cluster = Cluster::start().unwrap();
        let url = cluster.create_database("plain").unwrap();
        (cluster, url)
    });
    assert_refused(
        &format!("{url}?sslmode=require"),
        &["the server does not offer TLS", "sslmode=require", "sslmode=prefer"],
    );
    assert_connects(&format!("{url}?sslmode=prefer"));
    assert_connects(&url);
    // Through the Unix socket sslmode does not apply (PostgreSQL has no TLS there; libpq
    // ignores it too): require connects there.
    let sockets = cluster.sockets_dir().to_str().unwrap().replace('/', "%2F");
    assert_connects(&format!("postgres://mechfund@{sockets}:{}/plain?sslmode=require", cluster.port()));
    drop(cluster);
}

/// A bad sslmode stops every command before it starts: exit 2, the known modes listed, the
/// password never shown.
#[test]
fn an_unknown_sslmode_is_exit_2_without_the_password() {
    let url = "postgres://mechfund:s3cret-pw@127.0.0.1:1/db?sslmode=verify";
    let want =
        "sslmode=\"verify\" is not an sslmode; give one of disable, allow, prefer, require, verify-ca, verify-full";
    for args in [&["verify", "--store", url][..], &["export", "--store", url]] {
        let output = Command::new(env!("CARGO_BIN_EXE_mechfund")).args(args).output().unwrap();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains(want), "{args:?}: {message}");
        assert!(message.contains("postgres://mechfund@127.0.0.1:1/db"), "{args:?}: {message}");
        assert!(!message.contains("s3cret"), "{args:?}: {message}");
    }
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(data.path(), Some(TOKEN), &["--store", url]);
    let (code, stdout) = server.exited(Duration::from_secs(10));
    assert_eq!(code, Some(2), "{}", server.stderr_text());
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(server.stderr_text().contains(want), "{}", server.stderr_text());
    assert!(!server.stderr_text().contains("s3cret"), "{}", server.stderr_text());
    // A root file that cannot be read is found before anything starts too.
    let missing = "postgres://mechfund@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let output = Command::new(env!("CARGO_BIN_EXE_mechfund")).args(["verify", "--store", missing]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("sslrootcert=/nonexistent/ca.pem"), "{}", stderr(&output));
}
