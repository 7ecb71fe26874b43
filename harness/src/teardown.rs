//! Last-resort cleanup: what is left when a run is interrupted.
//!
//! Normal teardown is `Drop` on [`crate::topology::Topology`], which runs on
//! pass, fail and panic. This module covers the rest: Ctrl-C / SIGTERM (a
//! handler deletes every namespace this process still owns, then exits), and
//! SIGKILL or a crash (the next run sweeps namespaces whose owner is gone).
//! Namespace names carry the owner's pid (`pf<pid>-...`) for that purpose.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Mutex, Once};

static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Prefix of every namespace pktfate creates.
pub const PREFIX: &str = "pf";

/// Records a namespace as owned by this process.
pub fn register(real_name: &str) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(real_name.to_string());
}

/// Forgets a namespace after it was deleted.
pub fn release(real_name: &str) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(real_name);
}

/// Namespaces this process still owns.
pub fn live() -> Vec<String> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Deletes a named namespace (`ip netns del`).
pub fn delete_netns(real_name: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "del", real_name])
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Installs the Ctrl-C/SIGTERM handler once per process.
pub fn install_interrupt_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let names = live();
            for n in &names {
                let _ = delete_netns(n);
            }
            eprintln!("pktfate: interrupted; removed {} namespace(s)", names.len());
            std::process::exit(130);
        });
    });
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

/// Deletes pktfate namespaces whose owning process no longer exists.
/// Returns the names removed.
pub fn sweep_stale() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(crate::netns::NETNS_RUN_DIR) else {
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
        register("pf1-unit-a");
        assert!(live().contains(&"pf1-unit-a".to_string()));
        release("pf1-unit-a");
        assert!(!live().contains(&"pf1-unit-a".to_string()));
    }
}
