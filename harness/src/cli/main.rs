//! The `pktfate` command line: `args.rs` says what it takes, `run.rs`
//! runs scenarios, `commands.rs` holds the other subcommands, `output.rs`
//! where their output goes.

mod args;
mod commands;
mod output;
mod run;

use std::process::ExitCode;

use args::{Cli, Cmd};
use clap::Parser;

fn main() -> ExitCode {
    // One malloc arena: pktfate's many short-lived helper threads (one per
    // namespace operation) would each get an arena of their own, which
    // kept ~25 MiB of a suite's peak RSS for nothing.
    // SAFETY: called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let cli = Cli::parse();
    // What the library's teardown cannot hand back to a caller.
    pktfate::topology::teardown::set_reporter(|m| eprintln!("pktfate: {m}"));
    if matches!(cli.cmd, Cmd::Run(_) | Cmd::Record(_)) {
        // From the start, so a signal at any moment exits 128 + signal
        // and removes whatever namespaces exist by then.
        pktfate::topology::teardown::install_interrupt_handler();
    }
    match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Check(a) => match output::file_policy(&a.allow_path, a.no_commands) {
            Ok(policy) => commands::cmd_check(&a.paths, &policy),
            Err(code) => code,
        },
        Cmd::Reasons => commands::cmd_reasons(),
        Cmd::Doctor(a) => commands::doctor(&a),
        Cmd::Trace(a) => commands::trace(a),
        Cmd::Matrix(a) => commands::matrix(a),
        Cmd::Merge(a) => commands::merge(&a),
        Cmd::Record(a) => commands::record(&a),
    }
}
