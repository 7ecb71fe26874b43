//! Shared by the scenario suite and the integration tests: where the
//! shipped scenarios are. Turning them into trials is the library's own
//! [`pktfate::testing`], as any user crate does.

use std::path::{Path, PathBuf};

pub use pktfate::testing::{run_scenario, skip_reason, trial_name, trials as scenario_trials};

/// The shipped scenarios.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}
