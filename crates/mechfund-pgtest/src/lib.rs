//! mechfund-pgtest: a throwaway PostgreSQL cluster that a test or a benchmark starts, owns and
//! removes. It is not a way to reach a PostgreSQL someone else runs, and no part of the product.
//!
//! ```no_run
//! # fn main() -> Result<(), String> {
//! use mechfund_pgtest::{Cluster, StopMode};
//!
//! let mut cluster = Cluster::start()?; // initdb into a temp dir, postgres on a free port
//! let url = cluster.create_database("serve_test")?; // postgres://mechfund@127.0.0.1:PORT/serve_test
//! // ... run the server with `--store {url}`, write ...
//! cluster.stop(StopMode::Immediate)?; // the database goes away under load
//! cluster.start_again()?; // same data, same port
//! # Ok(())
//! # }
//! // dropping it stops PostgreSQL and removes the temp dir
//! ```
//!
//! [`Cluster::start`] finds `initdb` and `postgres` (`$MECHFUND_PG_BIN`, else Debian's
//! `/usr/lib/postgresql/15/bin`, which `cargo xtask setup` installs), runs `initdb` into a
//! fresh temp dir (superuser `mechfund`, trust authentication, UTF8, C locale), then starts the
//! postmaster on a free port of 127.0.0.1 with a socket dir of its own and its log in the temp
//! dir ([`Cluster::log_path`]), and returns once it accepts connections. Each test makes a
//! database of its own ([`Cluster::create_database`]) and connects to [`Cluster::url`] as
//! `mechfund` with no password. The settings in [`SETTINGS`] trade crash safety for speed
//! (`fsync=off`: nothing an OS crash would need), yet nothing a *process* crash needs:
//! a commit is acknowledged only once its WAL is written, so an immediate stop or a killed
//! postmaster loses no acknowledged write. A benchmark that measures durable writes passes
//! `("fsync", "on")` to [`Cluster::start_with`].
//!
//! [`Cluster::start_tls`] starts one with TLS on, with a server certificate a test made with
//! [`TestCa`] (a CA of its own, in memory), and `pg_hba.conf` letting TCP clients in with TLS
//! only or either way ([`TlsClients`]). The harness's own connections ([`Cluster::connect`],
//! [`Cluster::create_database`], the readiness check) go through the Unix socket, which takes any.
//!
//! As root, `initdb` and `postgres` (which both refuse root) run as the `postgres` OS user
//! through util-linux's `setpriv`, and the temp dir is handed to that user first.
//!
//! A start costs about 0.4 s on this project's 2-core machines when the temp dir is on tmpfs
//! (`initdb` ~0.35 s, then ~50 ms until the server answers) and 0.4 to 1.7 s on their shared
//! disk, where `initdb`'s thousand files wait for other writers. The temp dir is made in
//! `TMPDIR`: `TMPDIR=/dev/shm` for suites that start many clusters, but not for a benchmark of
//! durable writes (an fsync on tmpfs costs nothing).
//!
//! # Processes
//! The postmaster is a child process of the caller, in the caller's process group (so
//! `cargo xtask test`, which ends each test binary's group, ends it too); it is signalled by its
//! pid while it is still an unreaped child, never looked up by name. It is started under
//! `setpriv --pdeathsig KILL`, so it gets SIGKILL when its parent goes away, even if the test
//! process is killed. **The parent is the thread that started it**: Linux sends that signal
//! when the spawning *thread* exits. Start a cluster on the thread that owns it (a test's own
//! thread, a benchmark's main thread); one started on a short-lived thread and moved elsewhere
//! dies with that thread (`start_again` on the owning thread makes that thread its parent).
//!
//! When the postmaster had to be killed (a stop that timed out, or the owner's death), it
//! leaves a small System V shared memory segment behind; dropping the cluster removes it
//! (`ipcrm -m`, by the id in `postmaster.pid`). After the owning process itself was killed,
//! nothing runs to remove the temp dir or that segment.

mod postmaster;
mod programs;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

pub use postgres;
use postgres::{Client, NoTls};
pub use programs::{BIN_ENV, DEFAULT_BIN, OS_USER};
use rustix::process::Signal;
use tempfile::TempDir;
pub use tls::{ServerTls, TestCa};

use postmaster::{Launch, STOP_TIMEOUT, StartError};

/// The superuser `initdb` creates; [`Cluster::url`] connects as it, with no password.
pub const USER: &str = "mechfund";

/// The server settings of every cluster, before those given to [`Cluster::start_with`]:
/// TCP on loopback only, no fsync (tests and benchmarks, not durability against OS crashes),
/// room for many clients, and dynamic shared memory in the data dir rather than `/dev/shm`
/// (so a killed cluster leaves nothing there).
pub const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "200"),
    ("dynamic_shared_memory_type", "mmap"),
    ("logging_collector", "off"),
];

/// How many free ports [`Cluster::start`] tries when another process takes the one it found.
const PORT_ATTEMPTS: usize = 5;

/// Which TCP clients a cluster with TLS on lets in ([`Cluster::start_tls`]); its Unix socket,
/// which the harness itself uses, takes any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsClients {
    /// TLS or plaintext (`host` lines in `pg_hba.conf`).
    Either,
    /// TLS only (`hostssl` lines): a plaintext connection is refused.
    TlsOnly,
}

/// How the postmaster is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// SIGINT: sessions are ended, a shutdown checkpoint is written.
    Fast,
    /// SIGQUIT: every process quits at once, as in a crash; the next start recovers from the WAL.
    Immediate,
}

/// A PostgreSQL cluster in a temp dir, its postmaster a child process of the thread that
/// started it (see the crate's documentation). Dropping it stops the postmaster (fast; SIGKILL
/// after 10 s) and removes the temp dir.
#[derive(Debug)]
pub struct Cluster {
    programs: programs::Programs,
    /// Holds `data/` (the cluster), `sockets/` and `postgres.log`; `None` once removed.
    dir: Option<TempDir>,
    root: PathBuf,
    data: PathBuf,
    sockets: PathBuf,
    log: PathBuf,
    port: u16,
    settings: Vec<(String, String)>,
    postmaster: Option<Child>,
}

impl Cluster {
    /// Creates a cluster in a new temp dir and starts it on a free port (see the crate's
    /// documentation); call it on the thread that owns the cluster.
    ///
    /// # Errors
    /// If the binaries are missing (the message says to run `cargo xtask setup`), `initdb`
    /// fails, or the server does not accept connections within 30 s (the message holds the end
    /// of its log).
    pub fn start() -> Result<Cluster, String> {
        Cluster::start_with(&[])
    }

    /// [`Cluster::start`] with more server settings (`-c name=value`), after and so over
    /// [`SETTINGS`]; they hold for [`Cluster::start_again`] too.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Cluster, String> {
        Cluster::start_inner(settings, None)
    }

    /// [`Cluster::start_with`] with TLS on (`ssl=on`): `tls` is the server's certificate and
    /// key (`server.crt`, `server.key` in the data dir, the key's mode 0600, both owned by the
    /// user the server runs as), and `clients` says whether TCP clients must use TLS.
    ///
    /// # Errors
    /// As [`Cluster::start`], or the files cannot be written.
    pub fn start_tls(tls: &ServerTls, clients: TlsClients, settings: &[(&str, &str)]) -> Result<Cluster, String> {
        let mut all = vec![("ssl", "on")];
        all.extend_from_slice(settings);
        Cluster::start_inner(&all, Some((tls, clients)))
    }

    fn start_inner(settings: &[(&str, &str)], tls: Option<(&ServerTls, TlsClients)>) -> Result<Cluster, String> {
        let programs = programs::Programs::find()?;
        let dir = tempfile::Builder::new()
            .prefix("mechfund-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for PostgreSQL: {e}"))?;
        // The path PostgreSQL reports as its data directory (it is checked on every start).
        let root = dir.path().canonicalize().map_err(|e| format!("resolving {}: {e}", dir.path().display()))?;
        let mut cluster = Cluster {
            programs,
            dir: Some(dir),
            data: root.join("data"),
            sockets: root.join("sockets"),
            log: root.join("postgres.log"),
            root,
            port: 0,
            settings: SETTINGS.iter().chain(settings).map(|&(n, v)| (n.to_owned(), v.to_owned())).collect(),
            postmaster: None,
        };
        cluster.init()?;
        if let Some((tls, clients)) = tls {
            cluster.write_tls(tls, clients)?;
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.launch().start() {
                Ok(child) => {
                    cluster.postmaster = Some(child);
                    return Ok(cluster);
                }
                Err(StartError::PortTaken(message)) => last = message,
                Err(e) => return Err(e.into_message()),
            }
        }
        Err(format!("every one of {PORT_ATTEMPTS} free ports was taken before postgres bound it; the last: {last}"))
    }

    /// `initdb` into `data/`, and the socket dir, all owned by the user the server runs as.
    fn init(&self) -> Result<(), String> {
        let sockets = &self.sockets;
        // A Unix socket's path holds at most 107 bytes: `.s.PGSQL.NNNNN` and its lock file.
        if sockets.as_os_str().len() > 80 {
            return Err(format!(
                "the socket dir {} is too long for a Unix socket; set TMPDIR to a shorter directory",
                sockets.display()
            ));
        }
        std::fs::create_dir(sockets).map_err(|e| format!("creating {}: {e}", sockets.display()))?;
        self.programs.give_to_postgres(&self.root)?;
        let output = postmaster::spawn(
            self.programs
                .command("initdb", false)
                .arg("-D")
                .arg(&self.data)
                .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8", "--locale=C"])
                .current_dir(&self.root)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .and_then(|child| child.wait_with_output().map_err(|e| format!("waiting for initdb: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "initdb -D {} failed ({}){}:\n{}{}",
            self.data.display(),
            output.status,
            if self.programs.as_postgres() { format!(" as the OS user {OS_USER}") } else { String::new() },
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// The server's certificate and key, and a `pg_hba.conf` that trusts `mechfund` on the Unix
    /// socket and on loopback TCP, with or without TLS as `clients` says.
    fn write_tls(&self, tls: &ServerTls, clients: TlsClients) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let tcp = match clients {
            TlsClients::Either => "host",
            TlsClients::TlsOnly => "hostssl",
        };
        let hba = format!("local all all trust\n{tcp} all all 127.0.0.1/32 trust\n{tcp} all all ::1/128 trust\n");
        let files = [
            ("server.crt", tls.cert_pem.as_str(), 0o644),
            ("server.key", &tls.key_pem, 0o600),
            ("pg_hba.conf", &hba, 0o600),
        ];
        for (name, text, mode) in files {
            let path = self.data.join(name);
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {mode:o} {}: {e}", path.display()))?;
            self.programs.give_to_postgres(&path)?;
        }
        Ok(())
    }

    fn launch(&self) -> Launch<'_> {
        Launch {
            programs: &self.programs,
            data: &self.data,
            sockets: &self.sockets,
            log: &self.log,
            port: self.port,
            settings: &self.settings,
        }
    }

    /// The port the server listens on, on 127.0.0.1 (the same across [`Cluster::start_again`]).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://mechfund@127.0.0.1:PORT/DATABASE`.
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the database `name` (letters, digits and `_`, at most 63 bytes, as PostgreSQL
    /// keeps it: case too) and returns its URL ([`Cluster::url`]).
    ///
    /// # Errors
    /// If the name is not such a name, the server cannot be reached or the database exists.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!(
                "{name:?} is not a database name here: letters, digits and _, not starting with a digit, at most 63 bytes"
            ));
        }
        let mut client = self.connect("postgres")?;
        // Quoted, so the name is kept as it is (the URL names it the same way).
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| format!("CREATE DATABASE {name}: {}", error_text(&e)))?;
        Ok(self.url(name))
    }

    /// A client (the `postgres` crate's) connected to `database` as [`USER`] through the
    /// cluster's Unix socket, so with or without TLS on (whatever `pg_hba.conf` asks of TCP).
    ///
    /// # Errors
    /// If the server does not accept the connection within 10 s.
    pub fn connect(&self, database: &str) -> Result<Client, String> {
        connect_to(&self.sockets, self.port, database, Duration::from_secs(10))
            .map_err(|e| format!("connecting to {}: {}", self.url(database), error_text(&e)))
    }

    /// Stops the postmaster: SIGINT ([`StopMode::Fast`]) or SIGQUIT ([`StopMode::Immediate`]),
    /// then waits up to 10 s before SIGKILL. Stopping a stopped cluster does nothing.
    ///
    /// # Errors
    /// If it had to be killed (it is stopped even so) or the signal or wait failed.
    pub fn stop(&mut self, mode: StopMode) -> Result<(), String> {
        let Some(mut child) = self.postmaster.take() else { return Ok(()) };
        let signal = match mode {
            StopMode::Fast => Signal::INT,
            StopMode::Immediate => Signal::QUIT,
        };
        let stopped = postmaster::signal(&child, signal).and_then(|()| postmaster::wait_for(&mut child, STOP_TIMEOUT));
        match stopped {
            Ok(true) => Ok(()),
            Ok(false) => {
                postmaster::kill_and_reap(&mut child);
                Err(format!("the postmaster did not stop within {STOP_TIMEOUT:?} of {signal:?}; it was killed"))
            }
            Err(e) => {
                postmaster::kill_and_reap(&mut child);
                Err(format!("{e}; the postmaster was killed"))
            }
        }
    }

    /// Starts the stopped cluster again: the same data dir, settings and port, on this thread
    /// (which becomes the postmaster's parent). An immediate stop is recovered from here.
    ///
    /// # Errors
    /// If it is running, or it does not accept connections within 30 s (for instance because
    /// another process took the port meanwhile; the message holds the end of its log).
    pub fn start_again(&mut self) -> Result<(), String> {
        if self.postmaster.is_some() {
            return Err(format!("the cluster on port {} is running; stop it first", self.port));
        }
        let child = self.launch().start().map_err(StartError::into_message)?;
        self.postmaster = Some(child);
        Ok(())
    }

    /// The postmaster's pid while it runs (it may have exited since; it is reaped only by
    /// [`Cluster::stop`] or the drop).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// The cluster's data directory (inside the temp dir, which the drop removes).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory of the server's Unix socket (`.s.PGSQL.PORT`).
    #[must_use]
    pub fn sockets_dir(&self) -> &Path {
        &self.sockets
    }

    /// The server's log, kept across restarts (removed with the temp dir).
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The temp dir that holds the data dir, the socket dir and the log.
    #[must_use]
    pub fn temp_dir(&self) -> &Path {
        &self.root
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop(StopMode::Fast) {
            eprintln!("mechfund-pgtest: stopping the cluster in {}: {e}", self.root.display());
        }
        // Only a postmaster that did not exit cleanly leaves postmaster.pid behind.
        postmaster::remove_leftover_shared_memory(&self.data);
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("mechfund-pgtest: removing {}: {e}", self.root.display());
        }
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("finding a free port: {e}"))
}

/// Connects to `database` as [`USER`] through the Unix socket of `port` in `sockets`.
pub(crate) fn connect_to(
    sockets: &Path,
    port: u16,
    database: &str,
    timeout: Duration,
) -> Result<Client, postgres::Error> {
    postgres::Config::new()
        .host_path(sockets)
        .port(port)
        .user(USER)
        .dbname(database)
        .connect_timeout(timeout)
        .connect(NoTls)
}

/// A client error with its causes (the server's message, the I/O error), which `Display` of
/// `postgres::Error` leaves out.
fn error_text(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}
