//! Running a real tool (`nft`, `iptables-restore`, a CNI plugin, a `run:`
//! command) with its input on stdin and its output captured: no file on
//! disk to swap.
//!
//! Each tool leads a process group of its own, registered while it runs,
//! so that a terminating signal can stop it and whatever it started (a
//! bridge plugin's `host-local`, a firewall plugin's `iptables`) before
//! the run's namespaces and private directories are removed: a plugin
//! still running after them would write its state back into a directory
//! already removed.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The process groups of the tools running, and whether they were stopped
/// (after which none may start).
struct Running {
    groups: Mutex<BTreeSet<i32>>,
    stopped: AtomicBool,
}

impl Running {
    const fn new() -> Self {
        Running {
            groups: Mutex::new(BTreeSet::new()),
            stopped: AtomicBool::new(false),
        }
    }

    /// [`fed`], with the tool's group registered here while it runs.
    fn fed(&self, cmd: &mut Command, stdin: &[u8]) -> io::Result<Output> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the run is stopping",
            ));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let group = i32::try_from(child.id()).unwrap_or(i32::MAX);
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group);
        // A stop that came between the check above and the registration
        // did not see this group.
        if self.stopped.load(Ordering::SeqCst) {
            kill_group(group);
        }
        if let Some(mut i) = child.stdin.take() {
            // A tool that stops reading early still gets its verdict.
            let _ = i.write_all(stdin);
        }
        let out = child.wait_with_output();
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group);
        out
    }

    /// Kills every registered group and waits (up to `limit`) until none
    /// of their processes is left; no tool starts after this.
    fn stop_all(&self, limit: Duration) {
        self.stopped.store(true, Ordering::SeqCst);
        let groups: Vec<i32> = self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        for g in &groups {
            kill_group(*g);
        }
        let end = Instant::now() + limit;
        while !groups.is_empty() && running_in(&groups) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Whether a process of one of `groups` still runs. Zombies do not count:
/// a killed plugin's orphans wait for init to reap them, which can take
/// long (`kill(-group, 0)` counts them).
fn running_in(groups: &[i32]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and ')'.
        let mut after = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace();
        let (Some(state), Some(_), Some(pgrp)) = (after.next(), after.next(), after.next()) else {
            return false;
        };
        !matches!(state, "Z" | "X") && pgrp.parse().is_ok_and(|g: i32| groups.contains(&g))
    })
}

fn kill_group(group: i32) {
    // SAFETY: a negative pid signals that process group only, one we made.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

static RUNNING: Running = Running::new();

/// Runs `cmd` in the calling thread's namespaces, feeds it `stdin` and
/// waits for it, with stdout and stderr captured. It leads a process
/// group of its own, which [`stop_all`] kills.
pub fn fed(cmd: &mut Command, stdin: &[u8]) -> io::Result<Output> {
    RUNNING.fed(cmd, stdin)
}

/// Kills every tool [`fed`] is running, and what they started, and waits
/// (up to a second) until they are gone; no tool starts afterwards. For a
/// terminating signal, before the run's namespaces and directories go.
pub fn stop_all() {
    RUNNING.stop_all(Duration::from_secs(1));
}

/// Whether [`stop_all`] has run: work that waits (a lock another run
/// holds) gives up instead of waiting on.
pub fn stopping() -> bool {
    RUNNING.stopped.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_stdin_and_captures_both_outputs() {
        let out = fed(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            b"in",
        )
        .unwrap();
        assert_eq!(out.stdout, b"in");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_stop_kills_a_running_tool_and_what_it_started_and_no_tool_starts_after() {
        let dir = tempfile::tempdir().unwrap();
        let (late, started) = (dir.path().join("late"), dir.path().join("started"));
        let running = Running::new();
        // A tool whose own child writes later, as a plugin's host-local.
        let script = format!(
            "(sleep 0.3; touch {}) & touch {}; wait",
            late.display(),
            started.display()
        );
        std::thread::scope(|s| {
            let tool = s.spawn(|| running.fed(Command::new("sh").args(["-c", &script]), b""));
            let start = Instant::now();
            while !started.exists() {
                assert!(start.elapsed() < Duration::from_secs(5), "the tool started");
                std::thread::sleep(Duration::from_millis(1));
            }
            running.stop_all(Duration::from_secs(1));
            let out = tool.join().unwrap().unwrap();
            assert_eq!(out.status.code(), None, "killed by a signal");
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(!late.exists(), "the tool's child was killed with it");
        let again = running.fed(&mut Command::new("true"), b"");
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::Interrupted);
    }
}
