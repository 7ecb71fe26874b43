//! Shared by the scenario suite and the integration tests: turning scenario
//! files into libtest-mimic trials.

use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use pktfate::{report, runner};

/// The shipped scenarios.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
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
    let s = pktfate::scenario::Scenario::load(file).ok()?;
    runner::unmet_requirements(&s)
}

/// One trial per scenario file under `root`.
pub fn scenario_trials(root: &Path) -> Result<Vec<Trial>, String> {
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
