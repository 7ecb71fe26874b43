//! The function-level backend: the shared function probe on the kernel
//! functions that take an `sk_buff` (found from BTF, as pwru does), beside
//! the tracepoints. Which functions is decided here; how they are probed
//! is a [`FunctionProbe`], one file per mechanism: [`super::kprobe_multi`]
//! (one link for all), [`super::kprobe`] (a perf event per function) and
//! [`super::fentry`] (a program per function, for kernels without
//! kprobes), tried in that order of cost.

use aya::Ebpf;

use super::btf::Btf;
use super::fentry::Fentries;
use super::kprobe::Kprobes;
use super::kprobe_multi::KprobeMulti;
use super::probe::{Attached, FunctionProbe, ProbeMechanism, Target};
use super::{FunctionProbeError, FunctionProbes, HookError, TracerError};
use crate::abi::KPROBE_PROGRAMS;

/// A [`FunctionProbe`] whatever its error type: the mechanism in use.
trait AnyProbe: Send {
    fn mechanism(&self) -> ProbeMechanism;
    fn default_functions(&self) -> &'static str;
    fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<FunctionProbeError>, FunctionProbeError>;
}

impl<P> AnyProbe for P
where
    P: FunctionProbe,
    P::Error: Into<FunctionProbeError>,
{
    fn mechanism(&self) -> ProbeMechanism {
        FunctionProbe::mechanism(self)
    }

    fn default_functions(&self) -> &'static str {
        FunctionProbe::default_functions(self)
    }

    fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<FunctionProbeError>, FunctionProbeError> {
        let a = FunctionProbe::attach(self, ebpf, btf, targets).map_err(Into::into)?;
        Ok(Attached {
            count: a.count,
            left_out: a.left_out.map(Into::into),
        })
    }
}

/// Functions of some modules that were not probed.
#[derive(Debug)]
pub(super) struct ModulesLeftOut {
    /// The modules.
    pub modules: Vec<String>,
    /// Why.
    pub why: FunctionProbeError,
}

impl std::fmt::Display for ModulesLeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "functions of {} not probed: {}",
            self.modules.join(", "),
            self.why
        )
    }
}

/// The function-level probes in place.
pub(super) struct Functions {
    /// Functions probed.
    pub count: usize,
    /// Why kprobe-multi was not used, on a kernel with kprobes.
    pub fallback: Option<FunctionProbeError>,
    /// Modules whose functions are not (all) probed.
    pub left_out: Vec<ModulesLeftOut>,
    /// How long loading and attaching the probes took.
    pub attach: std::time::Duration,
    /// The mechanism, holding its programs and links.
    probe: Box<dyn AnyProbe>,
    /// Modules whose functions were looked for: one loaded later (by a
    /// later scenario's topology) is probed on the next run.
    modules: std::collections::HashSet<String>,
    /// The run's `PKTFATE_FUNCTIONS`, which modules loaded later match too.
    chosen: Option<String>,
}

/// Functions ftrace can probe, when tracefs says (a kprobe elsewhere may
/// still work, but these are the ones pwru-style tracing relies on).
fn probeable() -> Option<std::collections::HashSet<String>> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/available_filter_functions")).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect()
        })
}

/// `chosen` (`PKTFATE_FUNCTIONS`), or `default`.
fn pattern(chosen: Option<&str>, default: &str) -> Result<regex::Regex, TracerError> {
    regex::Regex::new(chosen.unwrap_or(default)).map_err(|e| {
        TracerError::Limit(format!(
            "PKTFATE_FUNCTIONS is not a regular expression: {e}"
        ))
    })
}

/// Loaded modules with BTF (`/sys/kernel/btf/<module>`), sorted.
fn modules_with_btf() -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir("/sys/kernel/btf")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "vmlinux")
        .collect();
    m.sort();
    m
}

/// The functions of the kernel (`module` None) or of a module taking an
/// skb in one of the argument positions the probes read, that ftrace can
/// probe ([] when the module's BTF is unreadable).
fn candidates(
    btf: &Btf,
    module: Option<&str>,
    probeable: Option<&std::collections::HashSet<String>>,
) -> Vec<Target> {
    let found = match module {
        None => btf.functions_taking("sk_buff", KPROBE_PROGRAMS.len()),
        Some(m) => std::fs::read(format!("/sys/kernel/btf/{m}"))
            .ok()
            .and_then(|d| {
                btf.module_functions_taking(&d, "sk_buff", KPROBE_PROGRAMS.len())
                    .ok()
            })
            .unwrap_or_default(),
    };
    found
        .into_iter()
        .filter(|(name, _)| probeable.is_none_or(|p| p.contains(name)))
        .map(|(name, arg)| Target {
            name,
            arg,
            module: module.map(String::from),
        })
        .collect()
}

/// The targets `probe` takes of `all`, by the run's choice or its default.
fn wanted(
    probe: &dyn AnyProbe,
    chosen: Option<&str>,
    all: &[Target],
) -> Result<Vec<Target>, TracerError> {
    let re = pattern(chosen, probe.default_functions())?;
    Ok(all
        .iter()
        .filter(|t| re.is_match(&t.name))
        .cloned()
        .collect())
}

/// A mechanism's failure to probe anything, as the tracer reports it.
fn none_attached(probe: &dyn AnyProbe, why: FunctionProbeError) -> TracerError {
    TracerError::Attach {
        hook: probe.mechanism().name().into(),
        source: HookError::Probe(std::sync::Arc::new(why)),
    }
}

/// `probe` on the functions of `all` the run wants; none is an error.
fn attach_all(
    mut probe: Box<dyn AnyProbe>,
    ebpf: &mut Ebpf,
    btf: &Btf,
    chosen: Option<&str>,
    all: &[Target],
) -> Result<(Box<dyn AnyProbe>, Attached<FunctionProbeError>), TracerError> {
    let targets = wanted(probe.as_ref(), chosen, all)?;
    let attached = probe
        .attach(ebpf, btf, &targets)
        .map_err(|e| none_attached(probe.as_ref(), e))?;
    Ok((probe, attached))
}

/// Attaches the function-level backend to the kernel functions that take
/// an `sk_buff` in one of their first five arguments (from BTF: the
/// kernel's and each loaded module's) and match `PKTFATE_FUNCTIONS`:
/// through kprobe-multi where the kernel links it (every such function by
/// default, as pwru does), else through plain kprobes ([`super::probe::DEFAULT_FUNCTIONS`]
/// by default); with [`FunctionProbes::Fentry`], through one fentry program
/// per function of that default set instead. A function the kernel will not
/// probe (inlined, notrace, blacklisted) is left out.
pub(super) fn attach_functions(
    ebpf: &mut Ebpf,
    object: &[u8],
    events_fd: std::os::fd::RawFd,
    btf: &Btf,
    how: FunctionProbes,
    chosen: Option<&str>,
) -> Result<Functions, TracerError> {
    let start = std::time::Instant::now();
    let probeable = probeable();
    let modules = modules_with_btf();
    let all: Vec<Target> = std::iter::once(None)
        .chain(modules.iter().map(|m| Some(m.as_str())))
        .flat_map(|m| candidates(btf, m, probeable.as_ref()))
        .collect();
    let mut fallback = None;
    let (probe, attached) = match how {
        FunctionProbes::Fentry => {
            let probe =
                Fentries::new(ebpf, object, events_fd).map_err(|e| TracerError::Attach {
                    hook: ProbeMechanism::Fentry.name().into(),
                    source: HookError::Probe(std::sync::Arc::new(e.into())),
                })?;
            attach_all(Box::new(probe), ebpf, btf, chosen, &all)?
        }
        FunctionProbes::Kprobes => {
            let multi = KprobeMulti::load(ebpf, object, events_fd)
                .map_err(FunctionProbeError::from)
                .and_then(|probe| {
                    let mut probe: Box<dyn AnyProbe> = Box::new(probe);
                    let targets = wanted(probe.as_ref(), chosen, &all).unwrap_or_default();
                    let attached = probe.attach(ebpf, btf, &targets)?;
                    Ok((probe, attached))
                });
            match multi {
                Ok(done) => done,
                Err(why) => {
                    fallback = Some(why);
                    attach_all(Box::new(Kprobes), ebpf, btf, chosen, &all)?
                }
            }
        }
    };
    if attached.count == 0 {
        return Err(TracerError::Attach {
            hook: probe.mechanism().name().into(),
            source: HookError::NoFunction,
        });
    }
    let left_out = attached
        .left_out
        .map(|why| ModulesLeftOut {
            modules: modules.clone(),
            why,
        })
        .into_iter()
        .collect();
    Ok(Functions {
        count: attached.count,
        fallback,
        left_out,
        attach: start.elapsed(),
        probe,
        modules: modules.into_iter().collect(),
        chosen: chosen.map(String::from),
    })
}

impl Functions {
    /// How functions are probed.
    pub(super) fn mechanism(&self) -> ProbeMechanism {
        self.probe.mechanism()
    }

    /// Probes the functions of modules loaded since the last call (a
    /// scenario's topology loads bridge, vxlan, ...); returns how many
    /// functions were added. A mechanism that cannot take them names why,
    /// and the run goes on without them.
    pub(super) fn add_new_modules(
        &mut self,
        ebpf: &mut Ebpf,
        btf: &Btf,
    ) -> Result<usize, TracerError> {
        let start = std::time::Instant::now();
        let new: Vec<String> = modules_with_btf()
            .into_iter()
            .filter(|m| self.modules.insert(m.clone()))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let probeable = probeable();
        let all: Vec<Target> = new
            .iter()
            .flat_map(|m| candidates(btf, Some(m), probeable.as_ref()))
            .collect();
        let targets = wanted(self.probe.as_ref(), self.chosen.as_deref(), &all)?;
        if targets.is_empty() {
            return Ok(0);
        }
        let (count, why) = match self.probe.attach(ebpf, btf, &targets) {
            Ok(a) => (a.count, a.left_out),
            Err(why) => (0, Some(why)),
        };
        if let Some(why) = why {
            self.left_out.push(ModulesLeftOut { modules: new, why });
        }
        if count > 0 {
            self.count += count;
            self.attach += start.elapsed();
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mechanism_takes_its_default_or_the_runs_choice() {
        let t = |name: &str| Target {
            name: name.into(),
            arg: 0,
            module: None,
        };
        let all = [t("ip_rcv"), t("skb_release_data"), t("br_forward")];
        let names = |v: Vec<Target>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
        // One at a time: the default set only.
        assert_eq!(
            names(wanted(&Kprobes, None, &all).unwrap()),
            ["ip_rcv", "br_forward"]
        );
        // The run's choice wins.
        assert_eq!(
            names(wanted(&Kprobes, Some("^skb_"), &all).unwrap()),
            ["skb_release_data"]
        );
        assert!(matches!(
            wanted(&Kprobes, Some("("), &all),
            Err(TracerError::Limit(_))
        ));
    }
}
