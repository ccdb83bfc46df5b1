//! mechfund-procgroup: a child process in a process group of its own, ended by that group's id.
//!
//! What `cargo xtask test` and the browser tests start, they end, and nothing else: no process
//! is ever looked up by name. [`Group::spawn`] runs a command with `process_group(0)`, so the
//! child leads a new group whose id is its pid, and what it starts (chromedriver's Chromium, a
//! test binary's servers) is in that group too unless it leaves it on purpose. Ending the
//! [`Group`] ([`Group::end`], [`Group::wait`] once its first process has exited, or dropping
//! it, as a failing test's unwinding does) sends SIGKILL to that group id and then reaps the
//! first process. The first process is reaped only after the signal, so the id cannot have been
//! reused: the signal reaches this group and nothing else.
//!
//! A group is not in the terminal's foreground group, so Ctrl-C does not reach it. Once a group
//! has been started, SIGINT, SIGTERM or SIGHUP to this process sends SIGTERM to every group not
//! yet ended, gives their first processes up to [`INTERRUPT_GRACE`] to exit (a test binary
//! that uses this crate ends its own groups then), sends SIGKILL to the groups and exits.
//!
//! The caller chooses the child's stdin, stdout and stderr; the test command and the browser
//! harness hand it none of their own (null, or pipes they drain).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, Once, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, test_kill_process_group, waitid};

/// How long an interrupted process gives its groups' first processes to exit after SIGTERM.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// The groups started and not ended yet. A group leaves it (under the lock) before its first
/// process is reaped, so an id in it always names one of our groups.
static LIVE: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<Pid>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child process leading a process group of its own; the group is ended when this is
/// dropped (see the crate's documentation).
#[derive(Debug)]
pub struct Group {
    child: Child,
    pid: Pid,
    /// Set once the first process is reaped (after the group was ended).
    status: Option<ExitStatus>,
}

impl Group {
    /// Spawns `command` as the first process of a new process group (`process_group(0)`).
    ///
    /// # Errors
    /// If the command cannot be spawned.
    pub fn spawn(command: &mut Command) -> io::Result<Group> {
        watch_signals();
        // Registered under the lock: an interruption during the spawn still ends it.
        let mut live = live();
        let child = command.process_group(0).spawn()?;
        let pid = Pid::from_child(&child);
        live.push(pid);
        Ok(Group { child, pid, status: None })
    }

    /// The group's id: its first process's pid.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The first process's stdout, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The first process's stderr, if it was piped (once).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Whether the first process is still running. It is not reaped by this.
    ///
    /// # Errors
    /// If `waitid` fails.
    pub fn running(&self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        Ok(first_running(self.pid)?)
    }

    /// Waits for the first process to exit, then ends the group (whatever it left running in
    /// it) and returns the first process's exit status.
    ///
    /// # Errors
    /// If `waitid`, the signal or the final wait fails.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if self.status.is_none() {
            loop {
                match waitid(WaitId::Pid(self.pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
                    Ok(_) => break,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.end()
    }

    /// Ends the group now: SIGKILL to every process in it, then reaps the first process and
    /// returns its exit status. Ending it again returns the same status.
    ///
    /// # Errors
    /// If the signal or the wait fails.
    pub fn end(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        {
            let mut live = live();
            match kill_process_group(self.pid, Signal::KILL) {
                // ESRCH: nothing of it is left (not even the unreaped first process).
                Ok(()) | Err(Errno::SRCH) => {}
                Err(e) => return Err(e.into()),
            }
            live.retain(|&pid| pid != self.pid);
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// Whether any process (a zombie included) is still in the process group `id`. For tests that
/// check, soon after ending a group they started, that nothing of it is left: processes a
/// killed group left behind are reaped by init, so poll for a few seconds.
#[must_use]
pub fn group_has_processes(id: u32) -> bool {
    i32::try_from(id).ok().and_then(Pid::from_raw).is_some_and(|pid| test_kill_process_group(pid).is_ok())
}

/// Whether our child `pid` has not exited yet (`waitid(WNOHANG | WNOWAIT)`: not reaped).
fn first_running(pid: Pid) -> Result<bool, Errno> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), options)?.is_none())
}

/// Starts (once) the thread that ends the live groups when this process is interrupted.
fn watch_signals() {
    static WATCH: Once = Once::new();
    WATCH.call_once(|| {
        let (ready, installed) = mpsc::channel();
        let watcher = std::thread::Builder::new().name("procgroup-signals".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_io().build() else {
                let _ = ready.send(());
                return;
            };
            let signal = runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (signal(kinds[0]), signal(kinds[1]), signal(kinds[2]))
                else {
                    let _ = ready.send(());
                    return None;
                };
                let _ = ready.send(());
                let kind = tokio::select! {
                    _ = int.recv() => kinds[0],
                    _ = term.recv() => kinds[1],
                    _ = hup.recv() => kinds[2],
                };
                Some(kind.as_raw_value())
            });
            if let Some(signal) = signal {
                end_all_and_exit(signal);
            }
        });
        // Wait until the handlers are installed, so an interruption from now on is seen.
        if watcher.is_ok() {
            let _ = installed.recv();
        }
    });
}

/// SIGTERM to every live group, up to [`INTERRUPT_GRACE`] for their first processes to exit,
/// SIGKILL to the groups, exit. The lock is held to the end: no group is reaped meanwhile.
fn end_all_and_exit(signal: i32) -> ! {
    let live = live();
    for &pid in live.iter() {
        let _ = kill_process_group(pid, Signal::TERM);
    }
    let deadline = Instant::now() + INTERRUPT_GRACE;
    while Instant::now() < deadline && live.iter().any(|&pid| first_running(pid).unwrap_or(false)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in live.iter() {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    std::process::exit(128 + signal)
}
