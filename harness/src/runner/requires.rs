//! A scenario's `requires`, against this machine: the kernel release, its
//! drop reasons, the tools on PATH and function-level tracing. What is not
//! met skips the scenario, with the reason as a type.

use std::sync::Arc;

use crate::scenario::Scenario;
use crate::tracer::{BackendChoice, DropReasons, FentryError, FunctionProbes, TracerError};

/// Why kprobes are out, in the words a skip uses.
const NO_KPROBES: &str = "this kernel has no kprobes (no /sys/bus/event_source/devices/kprobe)";

/// A requirement this machine does not meet: the scenario is skipped.
#[derive(Debug, thiserror::Error)]
pub enum Unmet {
    /// The scenario needs function probes; the user excluded them.
    #[error("needs function-level tracing, and --backend tracepoint excludes it")]
    FunctionsExcluded,
    /// `--backend fentry`, and the kernel refuses fentry programs.
    #[error("--backend fentry: this kernel refuses fentry programs ({0})")]
    FentryRefused(Arc<FentryError>),
    /// `--backend kprobe` (or a scenario needing function probes), and no
    /// kprobes.
    #[error("needs function-level tracing: {NO_KPROBES}")]
    NoKprobes,
    /// Neither kprobes nor fentry.
    #[error("needs function-level tracing: {NO_KPROBES}, and it refuses fentry programs ({0})")]
    NoFunctionProbes(Arc<FentryError>),
    /// The kernel is older than the scenario needs.
    #[error("needs kernel >= {}.{}.{}, this is {}.{}.{}", want.0, want.1, want.2, have.0, have.1, have.2)]
    Kernel {
        /// What the scenario asks for.
        want: (u32, u32, u32),
        /// This kernel.
        have: (u32, u32, u32),
    },
    /// The kernel release could not be read.
    #[error("cannot read the kernel version")]
    NoKernelVersion,
    /// Drop reasons this kernel does not have.
    #[error("this kernel has no drop reason {}", .0.join(", "))]
    NoReasons(Vec<String>),
    /// The kernel's drop reasons could not be read.
    #[error("cannot read drop reasons: {0}")]
    ReasonsUnreadable(#[source] TracerError),
    /// The scenario needs its programs' returns, and this kernel will not
    /// attach fexit to a BPF program.
    #[error(
        "needs its eBPF programs' return codes: this kernel refuses fexit on a BPF program ({0})"
    )]
    NoProgramReturns(Arc<crate::tracer::ProgReturnError>),
    /// Tools missing from PATH.
    #[error("needs {} on PATH", .0.join(", "))]
    Tools(Vec<String>),
}

/// The kernel's drop reasons (BTF read once per process).
pub fn kernel_reasons() -> Result<DropReasons, TracerError> {
    Ok(DropReasons::kernel()?)
}

/// The running kernel's version from uname.
pub fn kernel_version() -> Option<(u32, u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    crate::scenario::parse_kernel_version(release.trim())
}

/// Whether (and how) to probe kernel functions for this scenario, or why
/// it cannot be run as asked.
pub(super) fn function_level(
    s: &Scenario,
    choice: BackendChoice,
) -> Result<Option<FunctionProbes>, Unmet> {
    decide_functions(
        s,
        choice,
        crate::tracer::kprobes_available(),
        &crate::tracer::raw_tp::fentry_available,
    )
}

fn decide_functions(
    s: &Scenario,
    choice: BackendChoice,
    kprobes: bool,
    fentry: &dyn Fn() -> Result<(), Arc<FentryError>>,
) -> Result<Option<FunctionProbes>, Unmet> {
    let wanted = match choice {
        BackendChoice::Tracepoint if s.requires.functions => {
            return Err(Unmet::FunctionsExcluded);
        }
        BackendChoice::Tracepoint => false,
        BackendChoice::Kprobe | BackendChoice::Fentry => true,
        BackendChoice::Auto => s.requires.functions,
    };
    match choice {
        _ if !wanted => Ok(None),
        BackendChoice::Fentry => fentry()
            .map(|()| Some(FunctionProbes::Fentry))
            .map_err(Unmet::FentryRefused),
        _ if kprobes => Ok(Some(FunctionProbes::Kprobes)),
        BackendChoice::Kprobe => Err(Unmet::NoKprobes),
        // auto: fentry where kprobes are missing.
        _ => fentry()
            .map(|()| Some(FunctionProbes::Fentry))
            .map_err(Unmet::NoFunctionProbes),
    }
}

/// Why a scenario cannot run here with `backend`, if its `requires` are
/// not met.
pub fn unmet_requirements(s: &Scenario, backend: BackendChoice) -> Option<Unmet> {
    if let Err(why) = function_level(s, backend) {
        return Some(why);
    }
    let r = &s.requires;
    if r.program_returns {
        if let Err(why) = crate::tracer::raw_tp::program_returns_available() {
            return Some(Unmet::NoProgramReturns(why));
        }
    }
    if let Some(want) = r.kernel {
        match kernel_version() {
            Some(have) if have >= want => {}
            Some(have) => return Some(Unmet::Kernel { want, have }),
            None => return Some(Unmet::NoKernelVersion),
        }
    }
    if !r.reasons.is_empty() {
        match kernel_reasons() {
            Ok(known) => {
                let missing: Vec<String> = r
                    .reasons
                    .iter()
                    .filter(|x| known.resolve(x).is_none())
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Some(Unmet::NoReasons(missing));
                }
            }
            Err(e) => return Some(Unmet::ReasonsUnreadable(e)),
        }
    }
    let missing: Vec<String> = r
        .tools
        .iter()
        .filter(|t| !crate::runner::preflight::on_path(t))
        .cloned()
        .collect();
    (!missing.is_empty()).then_some(Unmet::Tools(missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn function_level_tracing_is_used_where_asked_for_and_possible() {
        let file = |functions: bool| {
            let text = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../scenarios/function-level/forwarded-through-ip-forward.yaml"),
            )
            .unwrap();
            let text = if functions {
                text
            } else {
                text.replace("functions: true", "functions: false")
            };
            Scenario::parse(Path::new("f.yaml"), &text).unwrap()
        };
        let (needs, plain) = (file(true), file(false));
        use BackendChoice::*;
        let works = || Ok(());
        let refused = || {
            Err(Arc::new(FentryError::Program(
                crate::tracer::RawProgError::Refused {
                    program: "probe_fentry".into(),
                    source: std::io::Error::from_raw_os_error(libc::EPERM),
                },
            )))
        };
        let decide = |s, choice, kprobes, fentry: &dyn Fn() -> Result<(), Arc<FentryError>>| {
            decide_functions(s, choice, kprobes, fentry)
        };
        assert!(
            matches!(decide(&plain, Auto, true, &works), Ok(None)),
            "tracepoints are cheaper"
        );
        assert!(matches!(
            decide(&needs, Auto, true, &works),
            Ok(Some(FunctionProbes::Kprobes))
        ));
        assert!(
            matches!(
                decide(&needs, Auto, false, &works),
                Ok(Some(FunctionProbes::Fentry))
            ),
            "fentry where kprobes are missing"
        );
        let e = decide(&needs, Auto, false, &refused).unwrap_err();
        assert!(matches!(e, Unmet::NoFunctionProbes(_)), "{e}");
        assert!(
            e.to_string().contains("no kprobes")
                && e.to_string().contains("Operation not permitted"),
            "{e}"
        );
        assert!(matches!(
            decide(&needs, Tracepoint, true, &works),
            Err(Unmet::FunctionsExcluded)
        ));
        assert!(matches!(
            decide(&plain, Kprobe, true, &works),
            Ok(Some(FunctionProbes::Kprobes))
        ));
        assert!(matches!(
            decide(&plain, Kprobe, false, &works),
            Err(Unmet::NoKprobes)
        ));
        assert!(matches!(
            decide(&plain, Fentry, true, &works),
            Ok(Some(FunctionProbes::Fentry))
        ));
        assert!(matches!(
            decide(&plain, Fentry, true, &refused),
            Err(Unmet::FentryRefused(_))
        ));
    }
}
