//! A `cargo test` harness for other crates: one libtest trial per scenario
//! file, with libtest's name filters, `--list`, `--ignored`, `--format json`
//! and the same failure report as `pktfate run`.
//!
//! In the user's crate:
//!
//! ```toml
//! [dev-dependencies]
//! pktfate = "0.1"
//!
//! [[test]]
//! name = "net"
//! harness = false
//! ```
//!
//! ```no_run
//! // tests/net.rs
//! fn main() {
//!     pktfate::testing::main("tests/net")
//! }
//! ```
//!
//! `cargo test --test net -- martian` then runs the scenarios whose path
//! (under `tests/net`, `::` between directories) contains `martian`.
#![allow(
    clippy::needless_doctest_main,
    reason = "the example is the user's whole test file, `main` included"
)]

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::topology::teardown;
use crate::{report, runner};

/// Runs every scenario under `dir` as a libtest trial and exits with
/// libtest's status. A relative `dir` is taken from the crate's root
/// (`CARGO_MANIFEST_DIR`, as `cargo test` sets it); `PKTFATE_SCENARIOS`
/// overrides it.
pub fn main(dir: impl AsRef<Path>) -> ! {
    let args = Arguments::from_args();
    let swept = teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed namespaces left by a run that died: {}",
            swept.join(", ")
        );
    }
    let root =
        std::env::var_os("PKTFATE_SCENARIOS").map_or_else(|| resolve(dir.as_ref()), PathBuf::from);
    let trials = match trials(&root) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    libtest_mimic::run(&args, trials).exit()
}

/// `dir` under the crate root when relative.
fn resolve(dir: &Path) -> PathBuf {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(m) if dir.is_relative() => Path::new(&m).join(dir),
        _ => dir.to_path_buf(),
    }
}

/// Trial name for a scenario file: its path under `root`, without the
/// extension, with `::` between directories (`tun-syn::01-bad-ip-checksum`).
pub fn trial_name(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("::")
}

/// Runs one scenario file; a failed expectation returns the full report.
pub fn run_scenario(file: &Path) -> Result<(), Failed> {
    match runner::run_file(file) {
        Ok(o) if o.passed() => Ok(()),
        Ok(o) => Err(report::failure(&o).into()),
        Err(e) => Err(e.render().into()),
    }
}

/// Why a scenario is skipped here (unmet `requires`), if it is.
pub fn skip_reason(file: &Path) -> Option<String> {
    let s = crate::scenario::Scenario::load(file).ok()?;
    runner::unmet_requirements(&s)
}

/// One trial per scenario file under `root`.
pub fn trials(root: &Path) -> Result<Vec<Trial>, String> {
    let files = runner::discover(&[root.to_path_buf()])?;
    Ok(files
        .into_iter()
        .map(|f| {
            let name = trial_name(root, &f);
            match skip_reason(&f) {
                // libtest shows the kind next to the name: the reason is visible.
                Some(why) => Trial::test(name, || Ok(()))
                    .with_ignored_flag(true)
                    .with_kind(format!("skipped: {why}")),
                None => Trial::test(name, move || run_scenario(&f)),
            }
        })
        .collect())
}
