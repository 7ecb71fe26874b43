//! Helpers shared by the CLI and reliability tests.

use std::path::PathBuf;
use std::process::Output;

/// A command's stdout and stderr, one after the other.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A private scratch directory (unpredictable name, mode 0700),
/// removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new directory whose name starts with `pktfate-<tag>-`.
    pub fn new(tag: &str) -> Self {
        Scratch(
            pktfate::common::mkdtemp(&std::env::temp_dir(), &format!("pktfate-{tag}-"))
                .expect("a private directory"),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
