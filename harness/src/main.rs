//! The `pktfate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pktfate::{report, runner, scenario::Scenario};

/// Scenario-driven regression tests for the Linux network stack.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios (files, or directories searched for *.yaml) and report.
    Run {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only scenarios whose name or path matches this regex.
        #[arg(long)]
        filter: Option<String>,
        /// Print the timeline for passing scenarios too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Validate scenario files without running them (no root needed).
    Check {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// List the running kernel's drop reasons (from BTF).
    Reasons,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            paths,
            filter,
            verbose,
        } => cmd_run(&paths, filter.as_deref(), verbose),
        Cmd::Check { paths } => cmd_check(&paths),
        Cmd::Reasons => cmd_reasons(),
    }
}

/// Prints human output, coloured on a terminal unless NO_COLOR is set.
fn say(text: &str) {
    if report::colour_wanted() {
        println!("{}", report::colourize(text));
    } else {
        println!("{text}");
    }
}

fn cmd_run(paths: &[PathBuf], filter: Option<&str>, verbose: bool) -> ExitCode {
    let files = match runner::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let re = match filter.map(regex::Regex::new).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --filter: {e}");
            return ExitCode::from(2);
        }
    };
    let swept = pktfate::teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed {} namespace(s) left by an earlier run that died: {}",
            swept.len(),
            swept.join(", ")
        );
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let started = std::time::Instant::now();
    for f in files {
        if let Some(re) = &re {
            if !re.is_match(&f.to_string_lossy()) {
                continue;
            }
        }
        match runner::run_file(&f) {
            Ok(o) => {
                say(&report::summary(&o));
                if o.passed() {
                    passed += 1;
                    if verbose {
                        println!("{}", report::timeline_table(&o.timeline));
                        for p in &o.verdict.packets {
                            println!("path of `{}`: {}\n", p.name, p.path.join(" -> "));
                        }
                    }
                } else {
                    failed += 1;
                    say(&report::failure(&o));
                }
            }
            Err(pktfate::runner::RunError::Skipped(why)) => {
                skipped += 1;
                say(&format!("SKIP {} ({why})", f.display()));
            }
            Err(e) => {
                failed += 1;
                say(&format!("ERROR {}\n{}\n", f.display(), e.render()));
            }
        }
    }
    println!(
        "\npktfate: {passed} passed, {failed} failed, {skipped} skipped in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cmd_check(paths: &[PathBuf]) -> ExitCode {
    let files = match runner::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Reason names need kernel BTF, which is readable without root.
    let reasons = runner::kernel_reasons().ok();
    let mut bad = 0;
    for f in &files {
        let result = Scenario::load(f).and_then(|mut s| match &reasons {
            Some(r) => s.check_against_kernel(r),
            None => Ok(()),
        });
        if let Err(errs) = result {
            bad += 1;
            for e in errs {
                eprintln!("{e}");
            }
        }
    }
    if reasons.is_none() {
        eprintln!("note: no kernel BTF; drop reason names were not checked");
    }
    println!("{} file(s) checked, {bad} with errors", files.len());
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cmd_reasons() -> ExitCode {
    match runner::kernel_reasons() {
        Ok(r) => {
            for (v, n) in r.iter() {
                println!("{v:>4}  {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\n  hint: the kernel needs CONFIG_DEBUG_INFO_BTF=y");
            ExitCode::FAILURE
        }
    }
}
