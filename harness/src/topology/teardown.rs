//! Last-resort cleanup: what is left when a run is interrupted.
//!
//! Normal teardown is `Drop` on [`crate::topology::Topology`], which runs on
//! pass, fail and panic. This module covers the rest: SIGINT, SIGTERM and
//! SIGHUP (a handler thread stops the tools still running, deletes every
//! namespace this process still owns, then exits with 128 + the signal),
//! and SIGKILL or a crash (the next run sweeps namespaces whose owner is
//! gone). Namespace names carry the owner's pid (`pf<pid>-...`) for that
//! purpose.
//!
//! A namespace is registered *before* it is created, under the same lock
//! the handler takes: the handler waits for a creation in flight, and once
//! it has begun, no worker creates another. Further signals during
//! teardown are absorbed, so a second Ctrl-C does not cut it short.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Private directories (CNI IPAM state) this process still owns.
static DIRS: Mutex<BTreeSet<std::path::PathBuf>> = Mutex::new(BTreeSet::new());

/// Prefix of the private directories runs make under the temp dir; the
/// owner's pid follows, so a later run can sweep those of a dead one.
pub const DIR_PREFIX: &str = "pktfate-run-";

pub use crate::common::mkdtemp;

/// A private directory for a run's own state, removed by
/// [`remove_private_dir`], by the signal handler, or (after SIGKILL) by
/// the next run's sweep.
pub fn private_dir() -> std::io::Result<std::path::PathBuf> {
    let mut dirs = DIRS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pid = std::process::id();
    let d = mkdtemp(&std::env::temp_dir(), &format!("{DIR_PREFIX}{pid}-"))?;
    dirs.insert(d.clone());
    Ok(d)
}

/// Removes a directory made by [`private_dir`].
pub fn remove_private_dir(d: &std::path::Path) {
    let _ = std::fs::remove_dir_all(d);
    DIRS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(d);
}

/// Set once a terminating signal arrived: nothing new is created.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether the process is being torn down after a signal.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Once a terminating signal has arrived, never returns: the handler ends
/// the process (128 + the signal) after its clean-up. For a caller about
/// to report a result or an exit status: a scenario cut short by the
/// signal (its DEL killed, its tools refused) is no failure to report,
/// and the status must be the signal's, not the run's.
pub fn await_exit_if_stopping() {
    // Only the handler sets the flag, and it always exits.
    while stopping() {
        std::thread::park();
    }
}

/// Registers `real_name`, then runs `make` (which creates it) under the
/// registry's lock; `None` when a signal already started the teardown.
/// A failed `make` leaves nothing registered.
pub fn create<T, E>(real_name: &str, make: impl FnOnce() -> Result<T, E>) -> Option<Result<T, E>> {
    let mut live = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if stopping() {
        return None;
    }
    live.insert(real_name.to_string());
    let r = make();
    if r.is_err() {
        live.remove(real_name);
    }
    Some(r)
}

/// Prefix of every namespace pktfate creates.
pub const PREFIX: &str = "pf";

/// Forgets a namespace after it was deleted.
pub fn release(real_name: &str) {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(real_name);
}

/// Namespaces this process still owns.
pub fn live() -> Vec<String> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect()
}

/// Deletes a named namespace (as `ip netns del` does).
pub fn delete_netns(real_name: &str) -> std::io::Result<()> {
    crate::topology::netns::delete(real_name)
}

/// Who hears what teardown could not tell a caller: problems of a
/// topology dropped on a panic, and what the signal handler removed before
/// the process exits. The CLI and the test harness set one (printing it);
/// the library itself prints nothing.
static REPORTER: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sets the process's teardown reporter (the first one set stays).
pub fn set_reporter(report: fn(&str)) {
    let _ = REPORTER.set(report);
}

/// Tells the reporter, if there is one.
pub(super) fn report(message: &str) {
    if let Some(r) = REPORTER.get() {
        r(message);
    }
}

/// Installs the SIGINT/SIGTERM/SIGHUP handler once per process.
pub fn install_interrupt_handler() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("pktfate-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    STOPPING.store(true, Ordering::SeqCst);
                    // The tools and plugins first: one still running would
                    // write into a namespace or directory removed below.
                    crate::common::process::stop_all();
                    // Held to the end: no worker creates a namespace now.
                    let live = LIVE
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for n in live.iter() {
                        let _ = delete_netns(n);
                    }
                    for d in DIRS
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .iter()
                    {
                        let _ = std::fs::remove_dir_all(d);
                    }
                    report(&format!(
                        "{}; removed {} namespace(s)",
                        signal_name(sig),
                        live.len()
                    ));
                    std::process::exit(128 + sig);
                }
            });
        drop(spawned);
    });
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "interrupted (SIGINT)",
        signal_hook::consts::SIGTERM => "terminated (SIGTERM)",
        _ => "hung up (SIGHUP)",
    }
}

/// Sets `flag` on SIGINT/SIGTERM instead of ending the process, for
/// commands that stop on their own terms (`trace`, `matrix`).
pub fn flag_on_interrupt(flag: &std::sync::Arc<AtomicBool>) {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
}

/// The owning pid encoded in a pktfate namespace name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !rest[digits.len()..].starts_with('-') {
        return None;
    }
    digits.parse().ok()
}

/// The pktfate namespaces present that process `pid` created.
pub fn owned_by(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(crate::topology::netns::NETNS_RUN_DIR) else {
        return vec![];
    };
    dir.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| owner_pid(n) == Some(pid))
        .collect()
}

/// Deletes pktfate namespaces whose owning process no longer exists.
/// Returns the names removed.
pub fn sweep_stale() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(crate::topology::netns::NETNS_RUN_DIR) else {
        return vec![];
    };
    let mut removed = vec![];
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if delete_netns(&name).is_ok() {
            removed.push(name);
        }
    }
    // Private directories of runs that died.
    if let Ok(tmp) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in tmp.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let owned = entry.metadata().is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                // SAFETY: geteuid has no preconditions and cannot fail.
                m.is_dir() && m.uid() == unsafe { libc::geteuid() }
            });
            if owned && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("pf1234-7-host"), Some(1234));
        assert_eq!(owner_pid("pf-host"), None);
        assert_eq!(owner_pid("pf12x-host"), None);
        assert_eq!(owner_pid("cni-1234-abc"), None);
    }

    #[test]
    fn registry_tracks_and_forgets() {
        let made: Option<Result<(), ()>> = create("pf1-unit-a", || Ok(()));
        assert_eq!(made, Some(Ok(())));
        assert!(live().contains(&"pf1-unit-a".to_string()));
        release("pf1-unit-a");
        assert!(!live().contains(&"pf1-unit-a".to_string()));
        // A failed creation leaves nothing to delete.
        let failed: Option<Result<(), ()>> = create("pf1-unit-b", || Err(()));
        assert_eq!(failed, Some(Err(())));
        assert!(!live().contains(&"pf1-unit-b".to_string()));
    }
}
