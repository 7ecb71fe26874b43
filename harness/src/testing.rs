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
/// scenario's namespaces up and says how to enter them;
/// `PKTFATE_HTML=report.html` writes the run's HTML report there.
pub fn main(dir: impl AsRef<Path>) -> ! {
    let (mut cfg, env) = RunConfig::from_env();
    if env.pause_on_fail {
        cfg.keep = Some(std::sync::Arc::new(TerminalPrompt));
    }
    let dir = env.scenarios.unwrap_or_else(|| dir.as_ref().into());
    run_all(&dir, cfg, env.html.as_deref())
}

/// [`main`] with settings of the caller's (a crate that builds its own
/// [`RunConfig`]: another backend, CNI path or event cap).
pub fn main_with(dir: impl AsRef<Path>, cfg: RunConfig) -> ! {
    run_all(dir.as_ref(), cfg, None)
}

/// [`main_with`], also writing the run's HTML report (the scenarios that
/// ran, in path order) to `html`.
pub fn main_with_html(dir: impl AsRef<Path>, cfg: RunConfig, html: &Path) -> ! {
    run_all(dir.as_ref(), cfg, Some(html))
}

/// The reports of the scenarios run so far, for the HTML report.
type Sink = std::sync::Arc<std::sync::Mutex<Vec<report::model::ScenarioReport>>>;

fn run_all(dir: &Path, cfg: RunConfig, html: Option<&Path>) -> ! {
    let args = Arguments::from_args();
    teardown::set_reporter(|m| eprintln!("pktfate: {m}"));
    let swept = teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed namespaces left by a run that died: {}",
            swept.join(", ")
        );
    }
    let root = resolve(dir);
    let sink: Option<Sink> = html.map(|_| Sink::default());
    let trials = match trials_into(&root, &std::sync::Arc::new(cfg), sink.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let conclusion = libtest_mimic::run(&args, trials);
    if let (Some(path), Some(sink)) = (html, sink) {
        let mut reports = sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        reports.sort_by(|a, b| a.path.cmp(&b.path));
        let title = format!("pktfate: {} scenarios", reports.len());
        let page = report::html::suite(&title, &reports, &|p| std::fs::read_to_string(p).ok());
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: writing the HTML report {}: {e}", path.display());
            std::process::exit(2);
        }
    }
    conclusion.exit()
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

/// [`run_scenario`], its report put into `sink`.
fn run_into(file: &Path, cfg: &RunConfig, sink: &Sink) -> Result<(), Failed> {
    let outcome = runner::run_file(file, cfg);
    let verdict = match &outcome {
        Ok(o) if o.passed() => Ok(()),
        Ok(o) => Err(report::failure(o).into()),
        Err(e) => Err(e.render().into()),
    };
    let result = runner::suite::SuiteResult {
        path: file.to_path_buf(),
        outcome,
    };
    sink.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(runner::suite::report(&result));
    verdict
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
    trials_into(root, cfg, None)
}

/// [`trials`], each run's report also put into `sink`.
fn trials_into(
    root: &Path,
    cfg: &std::sync::Arc<RunConfig>,
    sink: Option<&Sink>,
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
                let (cfg, sink) = (cfg.clone(), sink.cloned());
                Trial::test(name, move || match &sink {
                    Some(sink) => run_into(&f, &cfg, sink),
                    None => run_scenario(&f, &cfg),
                })
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
