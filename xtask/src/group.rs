//! How `cargo xtask test` runs its test commands and ends what they start.
//!
//! Each test command (cargo test, an e2e test binary, wasm-bindgen-test-runner) runs in a
//! process group of its own ([`mechfund_procgroup::Group`]) with stdin from /dev/null and its
//! stdout and stderr piped and echoed here, so nothing it starts (chromedriver, Chromium,
//! `mechfund serve`) holds xtask's own descriptors. When the command exits, its group is ended
//! by that group's id, with whatever it left running; nothing else is signalled and no process
//! is looked up by name. A process that left the group and still holds the command's output
//! afterwards is reported as an error, since it would outlive the step.
//!
//! [`Bystander`] is the check that the browser steps touch nothing else: a headless Chromium
//! they did not start must still answer after them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use mechfund_procgroup::Group;

/// How long a test command's output may stay open after its group was ended.
const PIPE_GRACE: Duration = Duration::from_secs(10);

/// Runs a test command (cargo test, a test binary, a test runner) in a process group of its
/// own, echoing its output; ends the group when the command exits; fails if the command
/// failed or something it started still holds its output; returns how many tests passed.
pub fn count_passed(command: &mut Command) -> Result<usize> {
    count_passed_within(command, PIPE_GRACE)
}

fn count_passed_within(command: &mut Command, grace: Duration) -> Result<usize> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut group = Group::spawn(command).with_context(|| format!("running {command:?}"))?;
    let stdout = group.take_stdout().context("the test command's stdout")?;
    let stderr = group.take_stderr().context("the test command's stderr")?;
    let (done, closed) = mpsc::channel();
    let stdout_done = done.clone();
    std::thread::spawn(move || stdout_done.send(echo(stdout, false)));
    std::thread::spawn(move || done.send(echo(stderr, true)));
    let status = group.wait().with_context(|| format!("waiting for {command:?}"))?;
    // The group is ended: once its processes are gone their ends of the pipes are closed.
    let deadline = Instant::now() + grace;
    let mut passed = 0;
    for _ in 0..2 {
        let Ok(echoed) = closed.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            bail!(
                "{command:?} exited ({status}) and its process group was ended, but its output was still open \
                 {grace:?} later: a process it started left the group and outlives the step"
            );
        };
        passed += echoed?;
    }
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(passed)
}

/// Copies `pipe` line by line to our stdout (or stderr) until every holder closed it; returns
/// the tests counted in `test result: ok. N passed` lines.
fn echo(pipe: impl Read, to_stderr: bool) -> Result<usize> {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut passed = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).context("reading the test command's output")? == 0 {
            return Ok(passed);
        }
        // `print!`, not a write to the raw stdout: tests of this module have theirs captured.
        let text = String::from_utf8_lossy(&line);
        if to_stderr {
            eprint!("{text}");
            continue;
        }
        print!("{text}");
        if let Some(rest) = text.strip_prefix("test result: ok. ") {
            passed += rest.split_whitespace().next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        }
    }
}

/// A headless Chromium the test steps did not start, in a process group of its own with no
/// stdin, stdout or stderr of ours, and its own profile; ended (by its group) when dropped.
#[derive(Debug)]
pub struct Bystander {
    group: Group,
    profile: PathBuf,
}

impl Bystander {
    /// Starts `chromium --headless --no-sandbox --disable-gpu --remote-debugging-port=0
    /// about:blank` with a fresh profile under `dir`.
    pub fn start(chromium: &Path, dir: &Path) -> Result<Bystander> {
        let profile = dir.join(format!("bystander-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).with_context(|| format!("creating {}", profile.display()))?;
        let group = Group::spawn(
            Command::new(chromium)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("about:blank")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .with_context(|| format!("starting {}", chromium.display()))?;
        let bystander = Bystander { group, profile };
        bystander.answers(Duration::from_secs(30)).context("the bystander Chromium did not start")?;
        Ok(bystander)
    }

    /// Checks (for up to `wait`) that the browser is running and its DevTools endpoint answers.
    pub fn answers(&self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            ensure!(self.group.running()?, "the bystander Chromium (process group {}) is gone", self.group.id());
            match self.version() {
                Ok(version) => {
                    eprintln!("bystander Chromium (process group {}): {version}", self.group.id());
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `GET /json/version` on the port Chromium wrote to `DevToolsActivePort`: its "Browser".
    fn version(&self) -> Result<String> {
        let file = self.profile.join("DevToolsActivePort");
        let ports = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let port: u16 = ports.lines().next().and_then(|p| p.trim().parse().ok()).context("no port in it yet")?;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        // HTTP/1.1: Chromium answers HTTP/1.0 with nothing, and keeps the connection open.
        write!(stream, "GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        let body = loop {
            let n = stream.read(&mut buf)?;
            ensure!(n > 0, "the DevTools endpoint closed the connection");
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse::<usize>().ok())
                .context("no Content-Length")?;
            if body.len() >= length {
                break body.to_owned();
            }
        };
        let version: serde_json::Value = serde_json::from_str(&body).context("/json/version is not JSON")?;
        version["Browser"].as_str().map(str::to_owned).context("/json/version names no browser")
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.group.end();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_test_command_is_counted_and_what_it_left_running_is_ended() {
        // The background sleep holds the command's stdout, as a lingering browser would.
        let started = Instant::now();
        let script = "sleep 300 & echo 'test result: ok. 3 passed; 0 failed'; echo 'test result: ok. 2 passed'";
        let passed = count_passed_within(&mut sh(script), Duration::from_secs(5)).unwrap();
        assert_eq!(passed, 5);
        // Returning at all means the pipes were closed: the sleep is gone with its group.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn a_failing_test_command_fails() {
        let error = count_passed_within(&mut sh("echo 'test result: ok. 1 passed'; exit 1"), PIPE_GRACE).unwrap_err();
        assert!(error.to_string().contains("failed"), "{error:#}");
    }

    #[test]
    fn a_process_that_left_the_group_holding_the_output_is_an_error() {
        // `setsid` leaves the group (the script waits until it has); the sleep ends by itself.
        let script = "setsid sleep 3 & while [ \"$(ps -o sid= -p $! | tr -d ' ')\" != $! ]; do sleep 0.01; done; \
                      echo 'test result: ok. 1 passed'";
        let error = count_passed_within(&mut sh(script), Duration::from_millis(300)).unwrap_err();
        assert!(error.to_string().contains("left the group"), "{error:#}");
    }
}
