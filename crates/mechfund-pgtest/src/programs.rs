//! The PostgreSQL programs, and the OS user they run as.
//!
//! `initdb` and `postgres` refuse to run as root, so when this process is root they run as the
//! `postgres` OS user (Debian's package creates it) through util-linux's `setpriv`, which
//! changes the user and then executes the program itself: the child we spawn *is* the program,
//! so its pid is the postmaster's. `setpriv --pdeathsig KILL` is also how the postmaster is
//! bound to the thread that started it, without `unsafe`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the directory of `initdb` and `postgres`.
pub const BIN_ENV: &str = "MECHFUND_PG_BIN";

/// Where Debian's `postgresql-15` package puts them.
pub const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The OS user the programs run as when this process is root.
pub const OS_USER: &str = "postgres";

/// The directory of the programs and whether they must run as [`OS_USER`].
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    bin: PathBuf,
    as_postgres: bool,
}

impl Programs {
    /// Finds `initdb` and `postgres` in `$MECHFUND_PG_BIN`, else in [`DEFAULT_BIN`].
    pub(crate) fn find() -> Result<Programs, String> {
        let (bin, from) = match std::env::var_os(BIN_ENV) {
            Some(dir) => (PathBuf::from(dir), format!("${BIN_ENV}")),
            None => (PathBuf::from(DEFAULT_BIN), format!("the default ({BIN_ENV} is not set)")),
        };
        for program in ["initdb", "postgres"] {
            if !bin.join(program).is_file() {
                return Err(format!(
                    "PostgreSQL's `{program}` is not in {} ({from}): run `cargo xtask setup` (it installs Debian's \
                     postgresql-15), or set {BIN_ENV} to the directory of a PostgreSQL's initdb and postgres",
                    bin.display()
                ));
            }
        }
        Ok(Programs { bin, as_postgres: rustix::process::geteuid().is_root() })
    }

    /// Whether the programs run as [`OS_USER`] (this process is root).
    pub(crate) fn as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// A command that runs `program` of the bin directory as the cluster's OS user, and, with
    /// `pdeathsig`, gets SIGKILL when the thread that spawns it exits. Its stdin is null;
    /// `LC_ALL=C` keeps its messages in English, and `PGDATA` cannot pick another cluster.
    pub(crate) fn command(&self, program: &str, pdeathsig: bool) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres || pdeathsig {
            let mut setpriv = Command::new("setpriv");
            if self.as_postgres {
                setpriv.args(["--reuid", OS_USER, "--regid", OS_USER, "--init-groups"]);
            }
            if pdeathsig {
                setpriv.args(["--pdeathsig", "KILL"]);
            }
            setpriv.arg("--").arg(&path);
            setpriv
        } else {
            Command::new(&path)
        };
        command.stdin(std::process::Stdio::null()).env("LC_ALL", "C").env_remove("PGDATA");
        command
    }

    /// Hands `dir` and everything in it to [`OS_USER`] when the programs run as that user.
    pub(crate) fn give_to_postgres(&self, dir: &Path) -> Result<(), String> {
        if !self.as_postgres {
            return Ok(());
        }
        let owner = format!("{OS_USER}:{OS_USER}");
        let output = Command::new("chown")
            .args([OsStr::new("-R"), OsStr::new(&owner), dir.as_os_str()])
            .output()
            .map_err(|e| format!("running chown: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "chown -R {owner} {} failed ({}): {} (does the OS user {OS_USER} exist? Debian's postgresql-15 \
                 creates it)",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}
