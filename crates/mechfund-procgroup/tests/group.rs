//! A group is ended with everything in it, by its id: nothing of it survives, nothing of it
//! keeps an inherited pipe open, and a process outside it is left alone; also when the owner
//! panics.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mechfund_procgroup::{Group, group_has_processes};

fn sh(script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command.args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

/// Reads `pipe` to its end on a thread: the text arrives once every holder of the pipe closed it.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// Whether the group `id` is empty within `secs` (what a killed group leaves is reaped by init).
fn gone_within(id: u32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while group_has_processes(id) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn ending_a_group_ends_what_its_first_process_started() {
    // The first process starts another that holds the pipe (as Chromium holds chromedriver's
    // output), and keeps running.
    let mut group = Group::spawn(sh("sleep 300 & echo started; wait").stdout(Stdio::piped())).unwrap();
    let mut out = BufReader::new(group.take_stdout().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    let eof = drain(out);
    assert!(group.running().unwrap());
    let status = group.end().unwrap();
    assert!(!status.success(), "{status}");
    eof.recv_timeout(Duration::from_secs(5)).expect("no process of the ended group holds its pipe");
    assert!(gone_within(group.id(), 5), "a process of the group survived its end");
    assert!(!group.running().unwrap());
}

#[test]
fn wait_ends_what_the_first_process_left_running() {
    let mut group = Group::spawn(sh("sleep 300 & echo done").stdout(Stdio::piped())).unwrap();
    let eof = drain(group.take_stdout().unwrap());
    let started = Instant::now();
    let status = group.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(eof.recv_timeout(Duration::from_secs(5)).expect("the pipe is closed"), "done\n");
    assert!(gone_within(group.id(), 5), "the background process survived");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_process_outside_the_group_is_left_alone() {
    let mut unrelated = Group::spawn(&mut sh("exec sleep 300")).unwrap();
    let mut group = Group::spawn(&mut sh("sleep 300 & exit 0")).unwrap();
    assert!(group.wait().unwrap().success());
    assert!(gone_within(group.id(), 5));
    assert!(unrelated.running().unwrap(), "a process of another group was ended");
    unrelated.end().unwrap();
    assert!(!unrelated.running().unwrap());
    assert!(gone_within(unrelated.id(), 5));
}

#[test]
fn running_does_not_reap_and_a_panic_ends_the_group() {
    let mut group = Group::spawn(&mut sh("exit 3")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group.running().unwrap() {
        assert!(Instant::now() < deadline, "`exit 3` did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not reaped by `running`: the status is still there for `end`.
    assert_eq!(group.end().unwrap().code(), Some(3));
    assert_eq!(group.wait().unwrap().code(), Some(3));

    // A test that panics while it owns a group: unwinding drops it, which ends it.
    let panicked = std::thread::spawn(|| {
        let group = Group::spawn(&mut sh("sleep 300 & exec sleep 300")).unwrap();
        std::panic::panic_any(group.id());
    })
    .join()
    .expect_err("the thread panicked");
    let id = *panicked.downcast::<u32>().expect("the group's id");
    assert!(gone_within(id, 5), "the group of a panicking owner survived");
}
