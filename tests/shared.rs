//! What the integration test binaries share: scratch projects, the
//! settings `pktfate run` would have, the shipped scenarios, and checks
//! that nothing is left behind.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::path::PathBuf;
use std::process::Command;

use pktfate::runner;

/// A private scratch directory (unpredictable name, mode 0700)
/// holding a `pktfate.toml`, so scenarios written there are a project of
/// their own. Removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = pktfate::common::mkdtemp(&std::env::temp_dir(), &format!("pktfate-it-{tag}-"))
            .expect("a private directory");
        std::fs::write(dir.join("pktfate.toml"), "").unwrap();
        TempDir(dir)
    }

    /// Copies the project's nft rulesets in, for scenarios naming them.
    pub fn with_nft_fixtures(self) -> Self {
        let from = pktfate_tests::scenario_dir().join("../fixtures/nft");
        let to = self.0.join("fixtures/nft");
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        self
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The settings `pktfate run` would have here: the environment's.
pub fn cfg() -> runner::RunConfig {
    runner::RunConfig::from_env().0
}

pub fn shipped(rel: &str) -> PathBuf {
    pktfate_tests::scenario_dir().join(rel)
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(shipped(rel)).unwrap()
}

/// Tests that create namespaces hold this, so that "nothing is left"
/// checks see only their own namespaces, not a parallel test's.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Our namespaces (by this process) currently present.
pub fn our_namespaces() -> Vec<String> {
    pktfate::topology::teardown::owned_by(std::process::id())
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a scenario must never change in the root namespace.
pub fn root_state() -> String {
    let mut s = String::new();
    for cmd in [
        "ip -o link show | sed 's/ state [A-Z]*//'",
        "ip -o addr show",
        "ip route show table all",
        "ip -6 route show table all",
        "ip rule show",
        "nft list ruleset 2>/dev/null",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/rp_filter /proc/sys/net/ipv4/conf/default/rp_filter /proc/sys/net/ipv4/conf/all/accept_local",
    ] {
        s.push_str(&format!("$ {cmd}\n{}\n", sh(cmd)));
    }
    s
}

/// Runs scenario `text` as a file of a scratch project of its own.
pub fn run_text(tag: &str, text: &str) -> Result<runner::Outcome, runner::RunError> {
    let dir = TempDir::new(tag);
    let f = dir.0.join(format!("{tag}.yaml"));
    std::fs::write(&f, text).unwrap();
    runner::run_file(&f, &cfg())
}
