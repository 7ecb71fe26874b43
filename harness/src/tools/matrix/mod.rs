//! `pktfate matrix`: the suite on other kernels, each booted in a VM, and a
//! scenario × kernel table. Exits 0 only when every scenario passes (or is
//! skipped with a stated reason) on every kernel.

mod error;
pub mod html;
mod debian;
pub mod kernels;
pub mod kvm;
pub mod merge;
mod preload;
pub mod shard;
pub mod vm;

pub use error::MatrixError;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::junit;
use crate::report::model::{ScenarioReport, SkippedHookReport, Status};
use crate::tracer::ProbeMechanism;

impl MatrixError {
    /// The message with its hint.
    pub fn render(&self) -> String {
        match self {
            MatrixError::User { msg, hint } => format!("{msg}\n  hint: {hint}"),
            other => other.to_string(),
        }
    }
}

/// The function-level backend a guest's scenarios used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionsUsed {
    /// kprobe-multi, kprobe or fentry.
    pub mechanism: ProbeMechanism,
    /// Functions probed.
    pub count: usize,
    /// How long attaching them took.
    pub attach_ms: f64,
}

/// One scenario's result on one kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Scenario name.
    pub name: String,
    /// Scenario file.
    pub path: String,
    /// How it ended.
    pub status: Status,
    /// Why it failed, was skipped, or what it could not check.
    pub message: String,
}

/// Everything one kernel produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelResult {
    /// The kernel release.
    pub kernel: String,
    /// What was asked for (`6.1` or a path).
    pub spec: String,
    /// The tracer backend the guest used.
    pub backend: String,
    /// Hooks attached in the guest.
    pub hooks: Vec<String>,
    /// Hooks skipped in the guest, with why.
    pub skipped_hooks: Vec<SkippedHookReport>,
    /// The function-level backend, when a scenario used it.
    pub functions: Option<FunctionsUsed>,
    /// Per scenario.
    pub scenarios: Vec<Cell>,
    /// Per scenario, the guest's whole report (the HTML page draws each
    /// kernel's run of it); absent from the JSON of older pktfates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ScenarioReport>,
    /// When the guest produced nothing: why.
    pub error: Option<String>,
    /// A first boot whose kernel panicked before any result (booted once
    /// more; under emulation, code patching races have been seen): its oops.
    pub panicked_first: Option<String>,
    /// Seconds from boot to power-off.
    pub seconds: f64,
}

impl KernelResult {
    /// Every scenario passed or was skipped with a reason.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.scenarios.is_empty()
            && self.scenarios.iter().all(|c| {
                c.status == Status::Pass || (c.status == Status::Skip && !c.message.is_empty())
            })
    }
}

/// Options of one matrix run.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// `--kernel` values.
    pub kernels: Vec<String>,
    /// Scenario files (found and filtered on the host; the guest sees the
    /// same files).
    pub scenarios: Vec<PathBuf>,
    /// Options for `pktfate run` in each guest (`--backend`), each with
    /// its value.
    pub guest_args: Vec<String>,
    /// Only this slice of the (kernel, scenario) pairs.
    pub shard: Option<shard::Shard>,
    /// KVM: `Some(true)` on, `Some(false)` off, `None` when [`kvm::probe`]
    /// runs a test guest through it.
    pub kvm: Option<bool>,
    /// Per-guest time limit; `None`: [`guest_timeout`] of the scenarios.
    pub timeout: Option<Duration>,
    /// Where kernels are cached.
    pub cache: PathBuf,
    /// Guests booted at once ([`default_jobs`] when not asked).
    pub jobs: usize,
    /// Where the guests' CNI plugins are looked up (as `CNI_PATH`).
    pub cni_path: String,
}

/// How long a guest may take before it is killed: a boot's worth, plus
/// each scenario's worth, both larger under emulation (measured under TCG
/// on 2 cores: boots 14-22 s, 3-6 s per scenario cold; the margins are
/// for a busy host and for slow scenarios).
pub fn guest_timeout(scenarios: usize, accel: kvm::Accel) -> Duration {
    let (boot, each) = match accel {
        kvm::Accel::Kvm => (60, 10),
        kvm::Accel::Tcg => (180, 20),
    };
    Duration::from_secs(boot + each * scenarios as u64)
}

/// What a cell says beside its status: the error or skip reason, else the
/// trace problems, the mismatches and what was not checkable.
fn message(r: &ScenarioReport) -> String {
    let clip = crate::common::text::clip;
    if let Some(m) = r.error.as_ref().or(r.skipped.as_ref()) {
        return clip(m.lines().next().unwrap_or(""), 200);
    }
    let mut parts: Vec<String> = r.trace_problems.iter().map(|t| clip(t, 200)).collect();
    for m in r.packets.iter().flat_map(|p| &p.mismatches) {
        parts.push(format!(
            "{}: expected {}, got {}",
            m.what,
            m.expected,
            clip(&m.actual, 120)
        ));
    }
    for u in &r.unchecked {
        parts.push(format!("not checkable: {u}"));
    }
    parts.join("; ")
}

/// Why a scenario's passing run still fails on this kernel: `auto` must
/// pick the best function-level mechanism, so plain kprobes where the
/// guest's doctor linked kprobe-multi are a fallback that should not be.
fn fell_back(r: &ScenarioReport, multi_works: bool) -> Option<String> {
    let tracer = r.tracer.as_ref()?;
    if !multi_works || tracer.function_mechanism != Some(ProbeMechanism::Kprobe) {
        return None;
    }
    let why = tracer
        .function_fallback
        .as_deref()
        .unwrap_or("no reason given");
    Some(format!(
        "plain kprobes, though kprobe-multi links on this kernel (doctor): {}",
        crate::common::text::clip(why, 160)
    ))
}

/// The function-level backend a guest's scenarios used, if any did.
fn functions_used(reports: &[ScenarioReport]) -> Option<FunctionsUsed> {
    reports.iter().find_map(|r| {
        let t = r.tracer.as_ref()?;
        let mechanism = t.function_mechanism?;
        (t.functions > 0).then_some(FunctionsUsed {
            mechanism,
            count: t.functions,
            attach_ms: t.function_attach_ms,
        })
    })
}

/// Turns one guest run into a [`KernelResult`].
pub fn summarise(kernel: &kernels::Kernel, run: &vm::GuestRun) -> KernelResult {
    let doctor = run.doctor.as_ref();
    let doctor_hooks = doctor.map(|d| d.hooks.as_slice()).unwrap_or_default();
    let hooks = doctor_hooks
        .iter()
        .filter(|h| h.program.is_some())
        .map(|h| h.hook.clone())
        .collect();
    let skipped_hooks = doctor_hooks
        .iter()
        .filter_map(|h| {
            h.skipped.as_ref().map(|why| SkippedHookReport {
                hook: h.hook.clone(),
                why: why.clone(),
            })
        })
        .collect();
    let multi_works = doctor.is_some_and(|d| d.kprobe_multi.available);
    // The guest ran this very binary: its lines are this report model; a
    // line that is not is an error cell, not lost.
    let mut reports: Vec<ScenarioReport> = vec![];
    let mut unreadable: Vec<Cell> = vec![];
    for v in &run.results {
        match serde_json::from_value::<ScenarioReport>(v.clone()) {
            Ok(r) => reports.push(r),
            Err(e) => unreadable.push(Cell {
                name: "?".into(),
                path: String::new(),
                status: Status::Error,
                message: format!("a result line of the guest does not read as a report: {e}"),
            }),
        }
    }
    let mut scenarios: Vec<Cell> = reports
        .iter()
        .map(|r| {
            let (status, message) = match fell_back(r, multi_works) {
                Some(why) if r.status == Status::Pass => (Status::Fail, why),
                _ => (r.status, message(r)),
            };
            Cell {
                name: r.name.clone(),
                path: r.path.clone(),
                status,
                message,
            }
        })
        .collect();
    scenarios.extend(unreadable);
    // Without the guest's doctor, its hooks and whether kprobe-multi
    // works are unknown: a fallback would pass unnoticed.
    if let (Some(why), false) = (&run.doctor_unread, run.results.is_empty()) {
        scenarios.push(Cell {
            name: "doctor".into(),
            path: String::new(),
            status: Status::Error,
            message: format!("the guest's doctor report is {why}"),
        });
    }
    let error = run.failure.clone().or_else(|| {
        run.results.is_empty().then(|| {
            format!(
                "no scenario results (guest exit status {:?}){}",
                run.rc,
                if run.log.is_empty() {
                    String::new()
                } else {
                    format!(": {}", run.log)
                }
            )
        })
    });
    KernelResult {
        kernel: kernel.release.clone(),
        spec: kernel.spec.clone(),
        backend: doctor.map_or("?", |d| d.backend.as_str()).into(),
        hooks,
        skipped_hooks,
        functions: functions_used(&reports),
        scenarios,
        reports,
        error,
        panicked_first: None,
        seconds: (run.elapsed.as_secs_f64() * 10.0).round() / 10.0,
    }
}

/// What one guest needs of the host: its vCPUs and memory (`vng
/// --cpus 2 --memory 2G`, plus qemu's own).
pub const GUEST_CPUS: usize = 2;
/// Memory a guest takes, with qemu's own share, in MiB.
pub const GUEST_MIB: u64 = 2560;

/// Guests to run at once by default: as many as the host's cores and
/// available memory hold ([`GUEST_CPUS`] cores and [`GUEST_MIB`] each), at
/// least one. A 2-core machine runs one at a time.
pub fn default_jobs() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let avail_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb / 1024);
    let by_mem = usize::try_from(avail_mib / GUEST_MIB).unwrap_or(usize::MAX);
    (cpus / GUEST_CPUS).min(by_mem).max(1)
}

/// vCPUs per guest: [`GUEST_CPUS`], or the host's cores shared out when
/// more guests run at once than that leaves room for. Under TCG a vCPU is
/// a host thread: two 2-vCPU guests on 2 cores took as long as one after
/// the other (140 s for 6.1 + 6.12), two 1-vCPU guests 107 s.
fn guest_cpus(jobs: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cpus / jobs.max(1)).clamp(1, GUEST_CPUS)
}

/// What a guest's `pktfate run` gets: the scenario files, then the
/// user's arguments, with `--jobs` set to the guest's vCPUs unless the
/// user set it. A guest computes more than it waits (the verifier and the
/// plugins run emulated), so the host's default of two per CPU would only
/// make its scenarios slower, each against its own timeout.
fn guest_run_args(files: &[PathBuf], user: &[String], cpus: usize) -> Vec<String> {
    let mut args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(user.iter().cloned());
    let set = user
        .iter()
        .any(|a| a == "-j" || a == "--jobs" || a.starts_with("--jobs=") || a.starts_with("-j"));
    if !set {
        args.extend(["--jobs".to_string(), cpus.to_string()]);
    }
    args
}

/// Boots one resolved kernel (again under TCG when a KVM guest fails;
/// once more when its kernel panicked before any result) and summarises it.
fn one_kernel(
    opts: &MatrixOptions,
    (kernel, files): &(kernels::Kernel, Vec<PathBuf>),
    kvm: &std::sync::atomic::AtomicBool,
    cpus: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<KernelResult, MatrixError> {
    use std::sync::atomic::Ordering;
    let spec = &kernel.spec;
    let scenarios = files.len();
    let timeout_for = |kvm: bool| {
        opts.timeout.unwrap_or_else(|| {
            guest_timeout(
                scenarios,
                if kvm {
                    kvm::Accel::Kvm
                } else {
                    kvm::Accel::Tcg
                },
            )
        })
    };
    let run_args = guest_run_args(files, &opts.guest_args, cpus);
    let preload = preload::files(files, &opts.cni_path);
    let on_kvm = kvm.load(Ordering::SeqCst);
    progress(&format!(
        "kernel {spec}: booting {} ({}, {scenarios} scenarios, killed after {} s)",
        kernel.release,
        if on_kvm { "KVM" } else { "TCG emulation" },
        timeout_for(on_kvm).as_secs()
    ));
    // The probe ran a test guest, yet qemu may still fail where a
    // one-instruction guest did not (it sets many more CPU registers).
    let trying_kvm = on_kvm && opts.kvm.is_none();
    let vm_opts = |kvm: bool| vm::VmOptions {
        kvm,
        cpus,
        timeout: timeout_for(kvm),
        run_args: run_args.clone(),
        preload: preload.clone(),
    };
    let guests = opts.cache.join("guests");
    let running = |t: Duration| {
        progress(&format!("kernel {spec}: running for {} s", t.as_secs()));
    };
    let mut guest = vm::run(kernel, &vm_opts(on_kvm), &guests, &running)?;
    if trying_kvm && guest.rc.is_none() {
        // KVM may exist and still fail to run guests: emulate instead,
        // for this kernel and the ones not started yet.
        progress(&format!(
            "kernel {spec}: the KVM guest failed, retrying under TCG emulation"
        ));
        kvm.store(false, Ordering::SeqCst);
        guest = vm::run(kernel, &vm_opts(false), &guests, &running)?;
    }
    let mut panicked_first = None;
    if guest.rc.is_none() && !vm::INTERRUPTED.load(Ordering::SeqCst) {
        if let Some(oops) = guest.panic.take() {
            // Once only: a kernel that panics twice is reported as such.
            progress(&format!(
                "kernel {spec}: the guest kernel panicked ({oops}); booting it once more"
            ));
            panicked_first = Some(oops);
            guest = vm::run(
                kernel,
                &vm_opts(kvm.load(Ordering::SeqCst)),
                &guests,
                &running,
            )?;
        }
    }
    let mut r = summarise(kernel, &guest);
    r.panicked_first = panicked_first;
    progress(&format!(
        "kernel {spec}: {} in {:.0}s",
        if r.ok() { "ok" } else { "FAILED" },
        r.seconds
    ));
    Ok(r)
}

/// Resolves every kernel (one at a time: apt and the cache), then boots
/// them, up to `opts.jobs` guests at once; results come back in the order
/// the kernels were given. `progress` hears each step of each kernel.
pub fn run(
    opts: &MatrixOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<KernelResult>, MatrixError> {
    use std::ops::ControlFlow;
    use std::sync::atomic::{AtomicBool, Ordering};
    let kvm = AtomicBool::new(if let Some(on) = opts.kvm {
        on
    } else {
        let v = kvm::probe();
        progress(&format!(
            "guests run under {}: {} (decided in {} ms)",
            v.accel.label(),
            v.why,
            v.probe_ms
        ));
        v.accel == kvm::Accel::Kvm
    });
    let mut resolved = vec![];
    for (spec, files) in shard::slice(&opts.kernels, &opts.scenarios, opts.shard) {
        progress(&format!("kernel {spec}: resolving"));
        resolved.push((kernels::resolve(&spec, &opts.cache)?, files));
    }
    if let Some(sh) = opts.shard {
        progress(&format!(
            "shard {sh}: {} of {} (kernel, scenario) pairs",
            resolved.iter().map(|(_, f)| f.len()).sum::<usize>(),
            opts.kernels.len() * opts.scenarios.len()
        ));
    }
    let jobs = opts.jobs.clamp(1, resolved.len().max(1));
    if jobs > 1 {
        progress(&format!(
            "{jobs} guests at once ({} vCPU(s) and {GUEST_MIB} MiB each)",
            guest_cpus(jobs)
        ));
    }
    let stop = || vm::INTERRUPTED.load(Ordering::SeqCst);
    crate::common::parallel::map_in_order(&resolved, jobs, &stop, |kernel| {
        match one_kernel(opts, kernel, &kvm, guest_cpus(jobs), progress) {
            Ok(r) => ControlFlow::Continue(Ok(r)),
            // A guest that cannot even start (vng missing): no more.
            Err(e) => ControlFlow::Break(Err(e)),
        }
    })
    .into_iter()
    .collect()
}

// Long on purpose: the table's layout, column by column.
/// The scenario × kernel table, then what failed and why.
pub fn human(results: &[KernelResult]) -> String {
    let mut names: Vec<String> = vec![];
    for r in results {
        for c in &r.scenarios {
            let n = if c.path.is_empty() {
                c.name.clone()
            } else {
                c.path.clone()
            };
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let width = names.iter().map(String::len).max().unwrap_or(8).max(8);
    let mut o = String::new();
    let _ = write!(o, "{:<width$}", "scenario");
    for r in results {
        let _ = write!(o, "  {:<16}", crate::common::text::clip(&r.kernel, 16));
    }
    o.push('\n');
    let mut notes = vec![];
    for n in &names {
        let _ = write!(o, "{n:<width$}");
        for r in results {
            let cell = r.scenarios.iter().find(|c| &c.path == n || &c.name == n);
            let text = match cell {
                None => "-".to_string(),
                Some(c) if !c.message.is_empty() => {
                    notes.push(format!(
                        "{} on {}: {} ({})",
                        n, r.kernel, c.status, c.message
                    ));
                    format!("{} [{}]", c.status, notes.len())
                }
                Some(c) => c.status.to_string(),
            };
            let _ = write!(o, "  {text:<16}");
        }
        o.push('\n');
    }
    o.push('\n');
    for r in results {
        let skipped: Vec<&str> = r.skipped_hooks.iter().map(|h| h.hook.as_str()).collect();
        let functions = r.functions.as_ref().map_or_else(String::new, |f| {
            format!(
                ", functions by {} ({}, attached in {:.0} ms)",
                f.mechanism.name(),
                f.count,
                f.attach_ms
            )
        });
        let _ = writeln!(
            o,
            "{}: backend {}, {} hooks{}{functions}, {:.0}s{}",
            r.kernel,
            r.backend,
            r.hooks.len(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (without {})", skipped.join(", "))
            },
            r.seconds,
            r.error
                .as_ref()
                .map(|e| format!("\n  ERROR: {e}"))
                .or_else(|| r.panicked_first.as_ref().map(|p| format!(
                    "\n  note: its first boot panicked ({p}); these results are from a second boot"
                )))
                .unwrap_or_default()
        );
    }
    for (i, n) in notes.iter().enumerate() {
        let _ = writeln!(o, "[{}] {n}", i + 1);
    }
    let ok = results.iter().all(KernelResult::ok);
    let _ = writeln!(
        o,
        "\nmatrix: {} of {} kernels passed",
        results.iter().filter(|r| r.ok()).count(),
        results.len()
    );
    if !ok {
        let _ = writeln!(o, "matrix: FAILED");
    }
    o
}

/// `JUnit` XML: a test suite per kernel.
pub fn junit(results: &[KernelResult]) -> String {
    let suites: Vec<junit::Suite> = results
        .iter()
        .map(|r| {
            let mut cases = vec![];
            if let Some(e) = &r.error {
                cases.push(junit::Case {
                    name: "boot".into(),
                    classname: r.kernel.clone(),
                    file: None,
                    time: None,
                    status: Status::Error,
                    message: e.lines().next().unwrap_or("").to_string(),
                    detail: Some(e.clone()),
                });
            }
            cases.extend(r.scenarios.iter().map(|c| junit::Case {
                name: c.name.clone(),
                classname: r.kernel.clone(),
                file: (!c.path.is_empty()).then(|| c.path.clone()),
                time: None,
                status: c.status,
                message: c.message.clone(),
                detail: None,
            }));
            junit::Suite {
                name: r.kernel.clone(),
                time: Some(Duration::from_secs_f64(r.seconds.max(0.0))),
                cases,
            }
        })
        .collect();
    junit::write("pktfate matrix", None, &suites)
}

#[cfg(test)]
mod tests;
