//! What a run of one scenario gives the report: the scenario, its
//! timeline and verdict, stage timings and what the kernel could not do.

use std::fmt;
use std::time::Duration;

use crate::collect::Timeline;
use crate::common::Names;
use crate::evaluate::Verdict;
use crate::scenario::Scenario;

/// Wall time of each stage.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Parse, validate, build the topology.
    pub setup: Duration,
    /// Load and attach the tracer.
    pub attach: Duration,
    /// First injection to verdict.
    pub inject_to_verdict: Duration,
    /// Tear down.
    pub teardown: Duration,
}

impl fmt::Display for Timings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "setup {:.0}ms, attach {:.0}ms, inject->verdict {:.0}ms, teardown {:.0}ms",
            ms(self.setup),
            ms(self.attach),
            ms(self.inject_to_verdict),
            ms(self.teardown)
        )
    }
}

/// The result of running a scenario.
pub struct Outcome {
    /// The scenario as validated.
    pub scenario: Scenario,
    /// Everything traced.
    pub timeline: Timeline,
    /// The judgement.
    pub verdict: Verdict,
    /// Stage timings.
    pub timings: Timings,
    /// Tracer backend used.
    pub backend: &'static str,
    /// Hooks it had attached.
    pub hooks: Vec<&'static str>,
    /// Optional hooks this kernel could not give the tracer, and why.
    pub skipped_hooks: Vec<crate::tracer::SkippedHook>,
    /// Kernel functions probed (function-level backend), 0 when none.
    pub functions: usize,
    /// By which mechanism, when any were.
    pub function_mechanism: Option<crate::tracer::ProbeMechanism>,
    /// Why kprobe-multi was not the mechanism, on a kernel with kprobes.
    pub function_fallback: Option<String>,
    /// Functions that could not be probed (a module's), and why.
    pub function_problems: Vec<String>,
    /// How long attaching them took (by the first run of the process
    /// that needed them; later runs share the probes).
    pub function_attach: std::time::Duration,
    /// Expectations this kernel cannot check, and why (not failures).
    pub unchecked: Vec<String>,
    /// Kernel id → scenario names.
    pub names: Names,
    /// Teardown problems (reported, not fatal).
    pub teardown_problems: Vec<String>,
}

impl Outcome {
    /// Every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict.passed() && self.teardown_problems.is_empty()
    }
}
