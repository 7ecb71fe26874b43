//! Helpers shared by the CLI and reliability tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root (the tests run pktfate there, as a user would).
#[allow(dead_code)] // cli.rs runs the binary its own way
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pktfate binary, run from the repository's root without colour;
/// `PKTFATE_BIN` lets the same tests judge another build (e.g. main's).
#[allow(dead_code)] // cli.rs runs the binary its own way
pub fn bin() -> Command {
    let path =
        std::env::var("PKTFATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pktfate").into());
    let mut c = Command::new(path);
    c.current_dir(repo()).env("NO_COLOR", "1");
    c
}

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
