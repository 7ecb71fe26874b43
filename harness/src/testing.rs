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

use crate::common::config::{KeepPrompt, RunConfig};
use crate::topology::teardown;
use crate::{report, runner};

/// Runs every scenario under `dir` as a libtest trial and exits with
/// libtest's status. A relative `dir` is taken from the crate's root
/// (`CARGO_MANIFEST_DIR`, as `cargo test` sets it); `PKTFATE_SCENARIOS`
/// overrides it. The run's settings come from the environment
/// ([`RunConfig::from_env`]); `PKTFATE_PAUSE_ON_FAIL=1` keeps a failing
/// scenario's namespaces up and says how to enter them.
pub fn main(dir: impl AsRef<Path>) -> ! {
    let (mut cfg, env) = RunConfig::from_env();
    if env.pause_on_fail {
        cfg.keep = Some(std::sync::Arc::new(TerminalPrompt));
    }
    main_with(env.scenarios.unwrap_or_else(|| dir.as_ref().into()), cfg)
}

/// [`main`] with settings of the caller's (a crate that builds its own
/// [`RunConfig`]: another backend, CNI path or event cap).
pub fn main_with(dir: impl AsRef<Path>, cfg: RunConfig) -> ! {
    let args = Arguments::from_args();
    teardown::set_reporter(|m| eprintln!("pktfate: {m}"));
    let swept = teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed namespaces left by a run that died: {}",
            swept.join(", ")
        );
    }
    let root = resolve(dir.as_ref());
    let trials = match trials(&root, &std::sync::Arc::new(cfg)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    libtest_mimic::run(&args, trials).exit()
}

/// `dir` under the crate root when relative (cargo sets
/// `CARGO_MANIFEST_DIR` for the test binary it runs).
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
pub fn run_scenario(file: &Path, cfg: &RunConfig) -> Result<(), Failed> {
    match runner::run_file(file, cfg) {
        Ok(o) if o.passed() => Ok(()),
        Ok(o) => Err(report::failure(&o).into()),
        Err(e) => Err(e.render().into()),
    }
}

/// Why a scenario is skipped here (unmet `requires`), if it is.
pub fn skip_reason(file: &Path, cfg: &RunConfig) -> Option<runner::Unmet> {
    let s = crate::scenario::Scenario::load_with(file, &cfg.files).ok()?;
    runner::unmet_requirements(&s, cfg.backend)
}

/// One trial per scenario file under `root`.
pub fn trials(
    root: &Path,
    cfg: &std::sync::Arc<RunConfig>,
) -> Result<Vec<Trial>, runner::DiscoverError> {
    let files = runner::discover(&[root.to_path_buf()])?;
    Ok(files
        .into_iter()
        .map(|f| {
            let name = trial_name(root, &f);
            if let Some(why) = skip_reason(&f, cfg) {
                // libtest shows the kind next to the name: the reason is visible.
                Trial::test(name, || Ok(()))
                    .with_ignored_flag(true)
                    .with_kind(format!("skipped: {why}"))
            } else {
                let cfg = cfg.clone();
                Trial::test(name, move || run_scenario(&f, &cfg))
            }
        })
        .collect())
}

/// The test harness's and the CLI's `--keep` prompt: prints how to enter
/// the kept namespaces; on a terminal, waits for Enter and then has them
/// torn down; otherwise leaves them for the next run's sweep.
pub struct TerminalPrompt;

impl KeepPrompt for TerminalPrompt {
    fn kept(&self, scenario: &str, commands: &[String]) -> bool {
        use std::io::IsTerminal;
        let mut msg = format!("scenario `{scenario}` failed; its namespaces are kept up:\n");
        for c in commands {
            msg.push_str(&format!("  {c}\n"));
        }
        if std::io::stdin().is_terminal() {
            // Scenarios fail on several workers at once: one prompt at a
            // time, each answered by its own Enter, none printed into
            // another's.
            static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _turn = ONE_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            eprint!("{msg}press Enter to tear them down ");
            let _ = std::io::stdin().read_line(&mut String::new());
            true
        } else {
            eprintln!(
                "{msg}they stay up after this run; the next `pktfate run` removes them (or `ip netns del NAME`)"
            );
            false
        }
    }
}
