//! The scenario suite: one trial per `scenarios/**/*.yaml`, so `cargo test`
//! runs them against the real kernel and libtest's name filters, `--list`
//! and `--format json` work.

use libtest_mimic::Arguments;

fn main() {
    let args = Arguments::from_args();
    let swept = pktfate::teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed namespaces left by a run that died: {}",
            swept.join(", ")
        );
    }
    let root = std::env::var_os("PKTFATE_SCENARIOS")
        .map(Into::into)
        .unwrap_or_else(pktfate_tests::scenario_dir);
    let trials = match pktfate_tests::scenario_trials(&root) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    libtest_mimic::run(&args, trials).exit();
}
