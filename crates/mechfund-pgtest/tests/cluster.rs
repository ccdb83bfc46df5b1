//! A real cluster: it starts and answers, gives each test a database of its own, keeps its data
//! across a fast stop and across an immediate one (refusing connections until it is started
//! again), and leaves nothing behind when dropped: no data dir, no postmaster, no shared
//! memory; not even when its postmaster died with the thread that started it. A cluster with TLS
//! on has it on, with its key kept as PostgreSQL demands, and can refuse plaintext over TCP.

use std::path::Path;
use std::time::{Duration, Instant};

use mechfund_pgtest::{Cluster, StopMode, TestCa, TlsClients, postgres};

/// The id of the System V shared memory segment a running postmaster of `data` holds (line 7 of
/// `postmaster.pid`: key and id).
fn shared_memory_id(data: &Path) -> String {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid of a running cluster");
    pid_file.lines().nth(6).and_then(|l| l.split_whitespace().nth(1)).expect("line 7: shmem key and id").to_owned()
}

/// Whether the System V shared memory segment `id` exists.
fn shared_memory_exists(id: &str) -> bool {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").expect("/proc/sysvipc/shm");
    table.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(id))
}

/// Whether `pid` names a live process (a zombie is not: it has exited).
fn alive(pid: u32) -> bool {
    let raw = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid > 0");
    if rustix::process::test_kill_process(raw).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid:?}/stat")).unwrap_or_default();
    // `pid (comm) S ...`: the state follows the last ')'.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| state != "Z")
}

fn count(client: &mut postgres::Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).expect("count").get(0)
}

#[test]
fn it_starts_and_answers() {
    let started = Instant::now();
    let cluster = Cluster::start().expect("start");
    eprintln!("Cluster::start took {:?} (port {})", started.elapsed(), cluster.port());
    assert_eq!(cluster.url("postgres"), format!("postgres://mechfund@127.0.0.1:{}/postgres", cluster.port()));
    let mut client = cluster.connect("postgres").expect("connect");
    let one: i32 = client.query_one("SELECT 1", &[]).expect("SELECT 1").get(0);
    assert_eq!(one, 1);
    // The settings hold; the server is the one in our temp dir.
    let fsync: String = client.query_one("SHOW fsync", &[]).expect("SHOW").get(0);
    assert_eq!(fsync, "off");
    let data: String = client.query_one("SHOW data_directory", &[]).expect("SHOW").get(0);
    assert_eq!(Path::new(&data), cluster.data_dir());
    assert!(cluster.sockets_dir().join(format!(".s.PGSQL.{}", cluster.port())).exists());
    // Its log went to the file, not to the test's output.
    let log = std::fs::read_to_string(cluster.log_path()).expect("log");
    assert!(log.contains("database system is ready to accept connections"), "{log}");
}

#[test]
fn each_test_gets_a_database_of_its_own() {
    let cluster = Cluster::start_with(&[("work_mem", "8MB")]).expect("start");
    let url_a = cluster.create_database("suite_a").expect("create suite_a");
    let url_b = cluster.create_database("Suite_B").expect("create Suite_B");
    assert_eq!(url_a, format!("postgres://mechfund@127.0.0.1:{}/suite_a", cluster.port()));
    assert!(url_b.ends_with("/Suite_B"), "{url_b}");

    let mut a = postgres::Client::connect(&url_a, postgres::NoTls).expect("connect by URL");
    a.batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)").expect("write a");
    let mut b = postgres::Client::connect(&url_b, postgres::NoTls).expect("connect by URL");
    let there: i64 = b.query_one("SELECT count(*) FROM pg_tables WHERE tablename = 't'", &[]).expect("ask b").get(0);
    assert_eq!(there, 0, "a table of suite_a shows in Suite_B");
    assert_eq!(count(&mut a, "t"), 2);
    let work_mem: String = a.query_one("SHOW work_mem", &[]).expect("SHOW").get(0);
    assert_eq!(work_mem, "8MB", "a setting given to start_with");

    let again = cluster.create_database("suite_a").expect_err("a second suite_a");
    assert!(again.contains("already exists"), "{again}");
    for bad in ["", "a-b", "1st", "x\"; DROP DATABASE suite_a; --", &"n".repeat(64)] {
        assert!(cluster.create_database(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn data_survives_a_fast_stop_and_a_start_again() {
    let mut cluster = Cluster::start().expect("start");
    let port = cluster.port();
    cluster.create_database("kept").expect("create");
    let mut client = cluster.connect("kept").expect("connect");
    client.batch_execute("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)").expect("write");
    let first = cluster.pid().expect("running");

    cluster.stop(StopMode::Fast).expect("fast stop");
    assert_eq!(cluster.pid(), None);
    assert!(!alive(first), "the postmaster outlived a fast stop");
    assert!(client.query_one("SELECT 1", &[]).is_err(), "a session outlived a fast stop");
    assert!(cluster.connect("kept").is_err(), "a stopped cluster accepted a connection");
    cluster.stop(StopMode::Fast).expect("stopping a stopped cluster does nothing");

    cluster.start_again().expect("start again");
    assert_eq!(cluster.port(), port);
    assert_ne!(cluster.pid(), Some(first));
    assert!(cluster.start_again().is_err(), "started a running cluster again");
    let mut client = cluster.connect("kept").expect("connect after the restart");
    assert_eq!(count(&mut client, "t"), 1000);
}

#[test]
fn an_immediate_stop_refuses_connections_until_start_again() {
    let mut cluster = Cluster::start().expect("start");
    cluster.create_database("crashed").expect("create");
    let mut client = cluster.connect("crashed").expect("connect");
    client.batch_execute("CREATE TABLE t (n int)").expect("create table");
    // Acknowledged commits, then an immediate stop while a session is busy.
    for n in 0..50 {
        client.execute("INSERT INTO t VALUES ($1)", &[&n]).expect("insert");
    }
    let busy = cluster.url("crashed");
    let sleeper = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&busy, postgres::NoTls).expect("connect");
        c.batch_execute("SELECT pg_sleep(30)")
    });
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    cluster.stop(StopMode::Immediate).expect("immediate stop");
    assert!(stopping.elapsed() < Duration::from_secs(5), "the immediate stop waited for the session");
    assert!(sleeper.join().expect("join").is_err(), "a query survived an immediate stop");

    for _ in 0..3 {
        assert!(cluster.connect("crashed").is_err(), "a stopped cluster accepted a connection");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.start_again().expect("start again (crash recovery)");
    let mut client = cluster.connect("crashed").expect("connect after recovery");
    assert_eq!(count(&mut client, "t"), 50, "an acknowledged commit was lost");
    let log = std::fs::read_to_string(cluster.log_path()).expect("log");
    assert!(log.contains("was not properly shut down"), "no crash recovery in the log:\n{log}");
}

#[test]
fn a_drop_removes_the_data_dir_the_postmaster_and_its_shared_memory() {
    let cluster = Cluster::start().expect("start");
    let pid = cluster.pid().expect("running");
    let dir = cluster.temp_dir().to_owned();
    let shm = shared_memory_id(cluster.data_dir());
    let mut client = cluster.connect("postgres").expect("connect");
    assert!(alive(pid) && dir.join("data/PG_VERSION").is_file() && shared_memory_exists(&shm));

    drop(cluster);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(!alive(pid), "the postmaster {pid} is still running");
    assert!(!shared_memory_exists(&shm), "the shared memory segment {shm} is still there");
    assert!(client.query_one("SELECT 1", &[]).is_err(), "a session outlived the drop");
}

#[test]
fn the_postmaster_dies_with_the_thread_that_started_it() {
    // Started on a thread that then ends, and moved out: what the docs say not to do.
    let mut cluster = std::thread::spawn(|| Cluster::start().expect("start")).join().expect("join");
    let pid = cluster.pid().expect("started");
    let shm = shared_memory_id(cluster.data_dir());
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "the postmaster {pid} outlived the thread that started it by 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed, it left its postmaster.pid and shared memory; the drop removes both.
    assert!(cluster.connect("postgres").is_err());
    assert!(shared_memory_exists(&shm));
    let dir = cluster.temp_dir().to_owned();
    cluster.stop(StopMode::Fast).expect("stopping a dead postmaster reaps it");
    drop(cluster);
    assert!(!dir.exists(), "{} is still there", dir.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    // It goes once the orphaned backends notice their postmaster's death and detach.
    while shared_memory_exists(&shm) {
        assert!(Instant::now() < deadline, "the killed cluster's shared memory segment {shm} is still there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn start_again_waits_for_the_children_of_a_killed_postmaster() {
    // The postmaster dies with the thread that started it while a backend is busy: that
    // backend keeps the old shared memory until its statement ends, and a new postmaster
    // refuses the data dir until then.
    let (busy, running) = std::sync::mpsc::channel();
    let mut cluster = std::thread::spawn(move || {
        let cluster = Cluster::start().expect("start");
        let url = cluster.url("postgres");
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let _ = busy.send(());
            let _ = client.batch_execute(
                "DO $$ BEGIN WHILE clock_timestamp() < now() + interval '2 seconds' LOOP END LOOP; END $$",
            );
        });
        running.recv().expect("the busy session connected");
        std::thread::sleep(Duration::from_millis(300));
        cluster
    })
    .join()
    .expect("join");
    let pid = cluster.pid().expect("started");
    while alive(pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let restarting = Instant::now();
    cluster.stop(StopMode::Fast).expect("reap");
    cluster.start_again().expect("start again once the busy backend is gone");
    eprintln!("start_again after the kill took {:?}", restarting.elapsed());
    let log = std::fs::read_to_string(cluster.log_path()).expect("log");
    assert!(log.contains("pre-existing shared memory block"), "the new postmaster never had to wait:\n{log}");
    let mut client = cluster.connect("postgres").expect("connect");
    let one: i32 = client.query_one("SELECT 1", &[]).expect("SELECT 1").get(0);
    assert_eq!(one, 1);
}

#[test]
fn a_tls_cluster_has_ssl_on_and_can_refuse_plaintext_over_tcp() {
    let ca = TestCa::new("pgtest CA").expect("CA");
    let server = ca.server(&["localhost"]).expect("server certificate");
    let cluster = Cluster::start_tls(&server, TlsClients::TlsOnly, &[]).expect("start with TLS");
    // The harness's own connection (the Unix socket) is let in; TLS is on.
    let mut client = cluster.connect("postgres").expect("connect through the socket");
    let ssl: String = client.query_one("SHOW ssl", &[]).expect("SHOW ssl").get(0);
    assert_eq!(ssl, "on");
    // The key as PostgreSQL demands it (it refuses to start otherwise): mode 0600.
    let key = std::fs::metadata(cluster.data_dir().join("server.key")).expect("server.key");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    // Plaintext over TCP: `hostssl` only.
    let refused = postgres::Client::connect(&format!("{}?sslmode=disable", cluster.url("postgres")), postgres::NoTls)
        .err()
        .expect("a plaintext TCP connection is refused");
    let message = refused.as_db_error().expect("the server's refusal").message().to_owned();
    assert!(message.contains("no encryption"), "{message}");
}
