//! The postmaster as our child process: spawned, waited for until it accepts connections,
//! signalled by its pid (never by name) while it is still our unreaped child, and reaped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::programs::Programs;

/// How long a start may take before it is given up (the error holds the log's tail).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stop waits for the postmaster after its signal before SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of the log's end an error quotes.
const LOG_TAIL: usize = 4000;

/// Why a start failed.
#[derive(Debug)]
pub(crate) enum StartError {
    /// Something else listens on the port: try another.
    PortTaken(String),
    /// Processes of a killed postmaster still hold its shared memory: try again shortly.
    StillInUse(String),
    Failed(String),
}

impl StartError {
    pub(crate) fn into_message(self) -> String {
        match self {
            StartError::PortTaken(message) | StartError::StillInUse(message) | StartError::Failed(message) => message,
        }
    }
}

/// What a postmaster needs to start.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    pub programs: &'a Programs,
    pub data: &'a Path,
    pub sockets: &'a Path,
    pub log: &'a Path,
    pub port: u16,
    pub settings: &'a [(String, String)],
}

impl Launch<'_> {
    /// Spawns `postgres` (as a child of this thread, in our process group, dying with this
    /// thread) and waits until it accepts connections on the port and is the server of our
    /// data directory. On failure the postmaster is killed and reaped.
    ///
    /// After a postmaster was killed, its children (which leave its process group: PostgreSQL
    /// puts each in a session of its own) exit once they notice, and until then a new
    /// postmaster refuses the data dir; that is waited for, within [`START_TIMEOUT`].
    pub(crate) fn start(&self) -> Result<Child, StartError> {
        let started = Instant::now();
        loop {
            match self.start_once(started) {
                Err(StartError::StillInUse(_)) if started.elapsed() < START_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                result => return result,
            }
        }
    }

    fn start_once(&self, started: Instant) -> Result<Child, StartError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log)
            .map_err(|e| StartError::Failed(format!("opening {}: {e}", self.log.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log.try_clone().map_err(|e| StartError::Failed(format!("duplicating the log's handle: {e}")))?;
        let mut command = self.programs.command("postgres", true);
        command
            .arg("-D")
            .arg(self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.sockets)
            .current_dir(self.data)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        for (name, value) in self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let mut child = spawn(&mut command).map_err(StartError::Failed)?;
        match self.wait_ready(&mut child, log_start, started) {
            Ok(()) => Ok(child),
            Err(e) => {
                kill_and_reap(&mut child);
                Err(e)
            }
        }
    }

    fn wait_ready(&self, child: &mut Child, log_start: u64, started: Instant) -> Result<(), StartError> {
        let data = self.data.to_string_lossy();
        loop {
            if let Some(status) =
                child.try_wait().map_err(|e| StartError::Failed(format!("waiting for postgres: {e}")))?
            {
                let log = read_from(self.log, log_start);
                let message = format!(
                    "postgres exited ({status}) before it accepted connections on port {}; its log ({}) says:\n{}",
                    self.port,
                    self.log.display(),
                    tail(&log)
                );
                return Err(if log.contains("Address already in use") {
                    StartError::PortTaken(message)
                } else if log.contains("pre-existing shared memory block") {
                    StartError::StillInUse(message)
                } else {
                    StartError::Failed(message)
                });
            }
            if let Ok(mut client) = crate::connect_to(self.sockets, self.port, "postgres", Duration::from_secs(2)) {
                // Whoever answers must be our server, not one that took the port meanwhile.
                let ours = client
                    .query_one("SELECT current_setting('data_directory')", &[])
                    .ok()
                    .and_then(|row| row.try_get::<_, String>(0).ok())
                    .is_some_and(|dir| dir == data);
                if ours {
                    return Ok(());
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(StartError::Failed(format!(
                    "postgres did not accept connections on port {} within {START_TIMEOUT:?}; the end of its log ({}):\n{}",
                    self.port,
                    self.log.display(),
                    tail(&read_from(self.log, log_start))
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Spawns `command`, naming the program in the error (`setpriv` is util-linux's).
pub(crate) fn spawn(command: &mut Command) -> Result<Child, String> {
    command.spawn().map_err(|e| {
        let program = command.get_program().to_string_lossy().into_owned();
        let hint = if program == "setpriv" { " (setpriv is part of util-linux)" } else { "" };
        format!("starting {program}{hint}: {e}")
    })
}

/// Sends `signal` to our child `child`, which must not have been reaped: its pid is still ours.
pub(crate) fn signal(child: &Child, signal: Signal) -> Result<(), String> {
    let pid = Pid::from_child(child);
    match kill_process(pid, signal) {
        // ESRCH: it exited meanwhile and is being reaped by no one else.
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(format!("sending {signal:?} to the postmaster ({}): {e}", pid.as_raw_nonzero())),
    }
}

/// Waits up to `timeout` for `child` to exit and reaps it; `Ok(false)` if it is still running.
pub(crate) fn wait_for(child: &mut Child, timeout: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(true),
            Ok(None) if Instant::now() >= deadline => return Ok(false),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the postmaster: {e}")),
        }
    }
}

/// SIGKILL, then reap.
pub(crate) fn kill_and_reap(child: &mut Child) {
    let _ = signal(child, Signal::KILL);
    let _ = child.wait();
}

/// The log from byte `from` on (lossy), or what went wrong reading it.
fn read_from(path: &Path, from: u64) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.read_to_end(&mut text)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The last [`LOG_TAIL`] bytes of `text`, from a line start.
fn tail(text: &str) -> &str {
    if text.len() <= LOG_TAIL {
        return text;
    }
    let mut start = text.len() - LOG_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    rest.find('\n').map_or(rest, |newline| &rest[newline + 1..])
}

/// Removes the System V shared memory segment a postmaster killed by SIGKILL left behind
/// (PostgreSQL keeps a small one as an interlock; a clean exit removes it and
/// `postmaster.pid`). Its id is line 7 of the `postmaster.pid` the killed postmaster left in
/// `data`; a start in the same directory would have removed it, but the directory is about to
/// go. `ipcrm` only marks it: the kernel frees it once the last orphaned backend detaches.
pub(crate) fn remove_leftover_shared_memory(data: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else { return };
    let Some(id) = pid_file.lines().nth(6).and_then(|l| l.split_whitespace().nth(1)) else { return };
    if id.parse::<u32>().is_err() {
        return;
    }
    match Command::new("ipcrm").args(["-m", id]).stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "mechfund-pgtest: ipcrm -m {id} (left by a killed postmaster of {}): {}",
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("mechfund-pgtest: running ipcrm -m {id}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn a_tail_starts_at_a_line() {
        let text = format!("{}\nlast line\n", "x".repeat(5000));
        assert_eq!(tail(&text), "last line\n");
        assert_eq!(tail("short\nlog\n"), "short\nlog\n");
    }
}
