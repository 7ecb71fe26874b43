//! `pktfate run`: scenarios through the suite runner, reported as text,
//! JSON lines or JUnit, with an optional pcapng of every traced packet.

use std::path::PathBuf;
use std::process::ExitCode;

use pktfate::runner::{self, suite};

use crate::args::{BackendArg, Format, RunArgs};
use crate::output::{file_policy, say, write_pcap};

/// Applies the run's settings, then runs the scenarios.
pub fn run(a: RunArgs) -> ExitCode {
    let RunArgs {
        paths,
        filter,
        jobs,
        format,
        output,
        pcap,
        verbose,
        keep,
        cni_path,
        backend,
        max_events,
        allow_path,
        no_commands,
    } = a;
    // Flags over the environment over the defaults.
    let (mut cfg, env) = runner::RunConfig::from_env();
    if keep || env.pause_on_fail {
        cfg.keep = Some(std::sync::Arc::new(pktfate::testing::TerminalPrompt));
    }
    if let Some(p) = cni_path {
        cfg.cni_path = p;
    }
    cfg.files = match file_policy(&allow_path, no_commands) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(n) = max_events {
        cfg.collection.max_events = n.max(1);
    }
    if backend == BackendArg::Kprobe && !pktfate::tracer::kprobes_available() {
        eprintln!(
            "error: --backend kprobe: this kernel has no kprobes (no /sys/bus/event_source/devices/kprobe)\n  hint: use --backend auto (tracepoints; `pktfate doctor` shows what this kernel offers)"
        );
        return ExitCode::from(2);
    }
    if backend == BackendArg::Fentry {
        if let Err(e) = pktfate::tracer::raw_tp::fentry_available() {
            eprintln!(
                "error: --backend fentry: this kernel refuses fentry programs ({e})\n  hint: use --backend auto (`pktfate doctor` shows what this kernel offers)"
            );
            return ExitCode::from(2);
        }
    }
    cfg.backend = backend.choice();
    let files = match scenario_files(&paths, filter.as_deref()) {
        Ok(f) => f,
        Err(code) => return code,
    };
    cmd_run(
        &cfg,
        &files,
        jobs,
        format,
        output.as_ref(),
        pcap.as_ref(),
        verbose,
    )
}

/// The scenario files under `paths` whose path matches `filter`.
pub fn scenario_files(paths: &[PathBuf], filter: Option<&str>) -> Result<Vec<PathBuf>, ExitCode> {
    let files = runner::discover(paths).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let re = filter.map(regex::Regex::new).transpose().map_err(|e| {
        eprintln!("error: --filter: {e}");
        ExitCode::from(2)
    })?;
    Ok(files
        .into_iter()
        .filter(|f| {
            re.as_ref()
                .is_none_or(|re| re.is_match(&f.to_string_lossy()))
        })
        .collect())
}

// Long on purpose: the run's sequence (sweep, preload, run, report), read top to bottom.
fn cmd_run(
    cfg: &runner::RunConfig,
    files: &[PathBuf],
    jobs: Option<usize>,
    format: Format,
    output: Option<&PathBuf>,
    pcap: Option<&PathBuf>,
    verbose: bool,
) -> ExitCode {
    let swept = pktfate::topology::teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed {} namespace(s) left by an earlier run (it died, or kept them with --keep): {}",
            swept.len(),
            swept.join(", ")
        );
    }
    // The verifier works through the tracer's programs while the first
    // scenarios build their namespaces (as root only: otherwise the runner
    // says so first).
    // SAFETY: geteuid has no preconditions.
    if !files.is_empty() && unsafe { libc::geteuid() } == 0 {
        pktfate::tracer::shared::preload();
    }
    let started = std::time::Instant::now();
    let human = format == Format::Human && output.is_none();
    let results = suite::run_all(files, suite::jobs(jobs), cfg, |r| {
        // People see each scenario as it finishes.
        if human {
            say(&suite::human(r, verbose));
        }
    });
    let elapsed = started.elapsed();
    // A signal after the last result: its exit status, not the run's.
    pktfate::topology::teardown::await_exit_if_stopping();
    if let Some(p) = pcap {
        if let Err(code) = write_suite_pcap(p, &results) {
            return code;
        }
    }
    let (passed, failed, skipped) = suite::counts(&results);
    let text = render(format, &results, verbose, elapsed);
    let closing = format!(
        "pktfate: {passed} passed, {failed} failed, {skipped} skipped in {:.1}s",
        elapsed.as_secs_f64()
    );
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
            say(&closing);
        }
        None if human => say(&format!("\n{closing}")),
        None => {
            use std::io::Write;
            let _ = write!(std::io::stdout(), "{text}");
            eprintln!("{closing}");
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every scenario's traced packets in one pcapng file.
fn write_suite_pcap(p: &PathBuf, results: &[suite::SuiteResult]) -> Result<(), ExitCode> {
    let runs: Vec<(String, &[pktfate::collect::Step])> = results
        .iter()
        .filter_map(|r| {
            r.outcome
                .as_ref()
                .ok()
                .map(|o| (o.scenario.name.clone(), o.timeline.steps.as_slice()))
        })
        .collect();
    let refs: Vec<(&str, &[pktfate::collect::Step])> =
        runs.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    write_pcap(p, &refs)
}

/// The whole report in the chosen format.
fn render(
    format: Format,
    results: &[suite::SuiteResult],
    verbose: bool,
    elapsed: std::time::Duration,
) -> String {
    match format {
        Format::Human => results
            .iter()
            .map(|r| suite::human(r, verbose))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => {
            results
                .iter()
                .map(|r| suite::json(r).to_string())
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        Format::Junit => suite::junit(results, elapsed),
        Format::Html => {
            let reports: Vec<_> = results.iter().map(suite::report).collect();
            let title = format!("pktfate: {} scenarios", results.len());
            // The scenario files are the user's own, named on the command line.
            pktfate::report::html::suite(&title, &reports, &|p| std::fs::read_to_string(p).ok())
        }
    }
}
