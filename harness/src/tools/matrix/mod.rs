//! `pktfate matrix`: the suite on other kernels, each booted in a VM, and a
//! scenario × kernel table. Exits 0 only when every scenario passes (or is
//! skipped with a stated reason) on every kernel.

mod error;
pub mod kernels;
pub mod kvm;
pub mod vm;

pub use error::MatrixError;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

impl MatrixError {
    /// The message with its hint.
    pub fn render(&self) -> String {
        match self {
            MatrixError::User { msg, hint } => format!("{msg}\n  hint: {hint}"),
            MatrixError::Io(m) => m.clone(),
        }
    }
}

/// One scenario's result on one kernel.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Scenario name.
    pub name: String,
    /// Scenario file.
    pub path: String,
    /// pass, fail, skip or error.
    pub status: String,
    /// Why it failed, was skipped, or what it could not check.
    pub message: String,
}

/// Everything one kernel produced.
#[derive(Debug, Clone, Serialize)]
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
    pub skipped_hooks: Vec<Value>,
    /// The function-level backend, when a scenario used it: `mechanism`
    /// (`kprobe-multi` or `kprobe`), `count` and `attach_ms`.
    pub functions: Option<Value>,
    /// Per scenario.
    pub scenarios: Vec<Cell>,
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
            && self
                .scenarios
                .iter()
                .all(|c| c.status == "pass" || (c.status == "skip" && !c.message.is_empty()))
    }
}

/// Options of one matrix run.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// `--kernel` values.
    pub kernels: Vec<String>,
    /// Arguments for `pktfate run` in each guest (paths, filters).
    pub run_args: Vec<String>,
    /// KVM: `Some(true)` on, `Some(false)` off, `None` when [`kvm::probe`]
    /// runs a test guest through it.
    pub kvm: Option<bool>,
    /// Per-guest time limit; `None`: [`guest_timeout`] of the scenarios.
    pub timeout: Option<Duration>,
    /// Where kernels are cached.
    pub cache: PathBuf,
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

fn message(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    if let Some(m) = s("error").or_else(|| s("skipped")) {
        return crate::common::text::clip(m.lines().next().unwrap_or(""), 200);
    }
    let mut parts: Vec<String> = v
        .get("trace_problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| crate::common::text::clip(t, 200))
        .collect();
    for p in v
        .get("packets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for m in p
            .get("mismatches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            parts.push(format!(
                "{}: expected {}, got {}",
                f("what"),
                f("expected"),
                crate::common::text::clip(f("actual"), 120)
            ));
        }
    }
    for u in v
        .get("unchecked")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.push(format!("not checkable: {}", u.as_str().unwrap_or("")));
    }
    parts.join("; ")
}

/// Why a scenario's passing run still fails on this kernel: `auto` must
/// pick the best function-level mechanism, so plain kprobes where the
/// guest's doctor linked kprobe-multi are a fallback that should not be.
fn fell_back(v: &Value, multi_works: bool) -> Option<String> {
    let tracer = v.get("tracer")?;
    if !multi_works || tracer.get("backend").and_then(Value::as_str) != Some("raw_tp+kprobe") {
        return None;
    }
    let why = tracer
        .get("skipped_hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|h| h.get("hook").and_then(Value::as_str) == Some("kprobe-multi"))
        .and_then(|h| h.get("why").and_then(Value::as_str))
        .unwrap_or("no reason given");
    Some(format!(
        "plain kprobes, though kprobe-multi links on this kernel (doctor): {}",
        crate::common::text::clip(why, 160)
    ))
}

/// The function-level backend a guest's scenarios used, if any did.
/// How many scenario files the guests' `pktfate run` arguments name (an
/// upper bound: a `--filter` may take fewer). Every option given to the
/// guests takes a value.
fn count_scenarios(run_args: &[String]) -> usize {
    let mut paths = vec![];
    let mut args = run_args.iter();
    while let Some(a) = args.next() {
        if a.starts_with("--") {
            args.next();
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    if paths.is_empty() {
        paths.push(PathBuf::from("scenarios"));
    }
    crate::runner::discover(&paths).map_or(0, |found| found.len())
}

fn functions_used(results: &[Value]) -> Option<Value> {
    results.iter().find_map(|v| {
        let t = v.get("tracer")?;
        let count = t.get("functions").and_then(Value::as_u64)?;
        let backend = t.get("backend").and_then(Value::as_str)?;
        (count > 0).then(|| {
            serde_json::json!({
                "mechanism": backend.strip_prefix("raw_tp+").unwrap_or(backend),
                "count": count,
                "attach_ms": t.get("function_attach_ms"),
            })
        })
    })
}

/// Turns one guest run into a [`KernelResult`].
pub fn summarise(kernel: &kernels::Kernel, run: &vm::GuestRun) -> KernelResult {
    let doctor = run.doctor.clone().unwrap_or(Value::Null);
    // Doctor's hooks that have `field` set (`program`: attached; `skipped`).
    let hooks_with = |field: &str| -> Vec<Value> {
        doctor
            .get("hooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|h| h.get(field).is_some_and(|p| !p.is_null()))
            .cloned()
            .collect()
    };
    let hooks = hooks_with("program")
        .iter()
        .filter_map(|h| h.get("hook").and_then(Value::as_str).map(String::from))
        .collect();
    let skipped_hooks = hooks_with("skipped");
    let multi_works = doctor
        .pointer("/kprobe_multi/available")
        .and_then(Value::as_bool)
        == Some(true);
    let scenarios = run
        .results
        .iter()
        .map(|v| {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("error");
            let (status, message) = match fell_back(v, multi_works) {
                Some(why) if status == "pass" => ("fail", why),
                _ => (status, message(v)),
            };
            Cell {
                name: v.get("name").and_then(Value::as_str).unwrap_or("?").into(),
                path: v.get("path").and_then(Value::as_str).unwrap_or("").into(),
                status: status.into(),
                message,
            }
        })
        .collect();
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
        backend: doctor
            .get("backend")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .into(),
        hooks,
        skipped_hooks,
        functions: functions_used(&run.results),
        scenarios,
        error,
        panicked_first: None,
        seconds: (run.elapsed.as_secs_f64() * 10.0).round() / 10.0,
    }
}

/// Resolves, boots and runs every kernel in turn (guests run one at a
/// time: two emulated CPUs take both cores). `progress` hears each step.
pub fn run(
    opts: &MatrixOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<KernelResult>, MatrixError> {
    let mut out = vec![];
    let mut kvm = if let Some(on) = opts.kvm {
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
    };
    let scenarios = count_scenarios(&opts.run_args);
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
    for spec in &opts.kernels {
        progress(&format!("kernel {spec}: resolving"));
        let kernel = kernels::resolve(spec, &opts.cache)?;
        progress(&format!(
            "kernel {spec}: booting {} ({}, {scenarios} scenarios, killed after {} s)",
            kernel.release,
            if kvm { "KVM" } else { "TCG emulation" },
            timeout_for(kvm).as_secs()
        ));
        // The probe ran a test guest, yet qemu may still fail where a
        // one-instruction guest did not (it sets many more CPU registers).
        let trying_kvm = kvm && opts.kvm.is_none();
        let vm_opts = vm::VmOptions {
            kvm,
            timeout: timeout_for(kvm),
            run_args: opts.run_args.clone(),
        };
        let guests = opts.cache.join("guests");
        let mut guest = vm::run(&kernel, &vm_opts, &guests)?;
        if trying_kvm && guest.rc.is_none() {
            // KVM may exist and still fail to run guests: emulate instead,
            // for this kernel and the rest.
            progress(&format!(
                "kernel {spec}: the KVM guest failed, retrying under TCG emulation"
            ));
            kvm = false;
            let tcg = vm::VmOptions {
                kvm: false,
                timeout: timeout_for(false),
                ..vm_opts
            };
            guest = vm::run(&kernel, &tcg, &guests)?;
        }
        let mut panicked_first = None;
        if guest.rc.is_none() && !vm::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(oops) = guest.panic.take() {
                // Once only: a kernel that panics twice is reported as such.
                progress(&format!(
                    "kernel {spec}: the guest kernel panicked ({oops}); booting it once more"
                ));
                panicked_first = Some(oops);
                let again = vm::VmOptions {
                    kvm,
                    timeout: timeout_for(kvm),
                    run_args: opts.run_args.clone(),
                };
                guest = vm::run(&kernel, &again, &guests)?;
            }
        }
        let mut r = summarise(&kernel, &guest);
        r.panicked_first = panicked_first;
        progress(&format!(
            "kernel {spec}: {} in {:.0}s",
            if r.ok() { "ok" } else { "FAILED" },
            r.seconds
        ));
        out.push(r);
        if vm::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    Ok(out)
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
                Some(c) => c.status.clone(),
            };
            let _ = write!(o, "  {text:<16}");
        }
        o.push('\n');
    }
    o.push('\n');
    for r in results {
        let skipped: Vec<String> = r
            .skipped_hooks
            .iter()
            .filter_map(|h| h.get("hook").and_then(Value::as_str).map(String::from))
            .collect();
        let functions = r.functions.as_ref().map_or_else(String::new, |f| {
            format!(
                ", functions by {} ({}, attached in {:.0} ms)",
                f["mechanism"].as_str().unwrap_or("?"),
                f["count"],
                f["attach_ms"].as_f64().unwrap_or(0.0)
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
    let esc = crate::runner::suite::xml_escape;
    let mut o = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"pktfate matrix\">\n",
    );
    for r in results {
        let fails = r
            .scenarios
            .iter()
            .filter(|c| c.status == "fail" || c.status == "error")
            .count()
            + usize::from(r.error.is_some());
        let _ = writeln!(
            o,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" time=\"{}\">",
            esc(&r.kernel),
            r.scenarios.len(),
            r.seconds
        );
        if let Some(e) = &r.error {
            let _ = writeln!(
                o,
                "    <testcase name=\"boot\"><error message=\"{}\"/></testcase>",
                esc(e)
            );
        }
        for c in &r.scenarios {
            let _ = write!(
                o,
                "    <testcase classname=\"{}\" name=\"{}\"",
                esc(&r.kernel),
                esc(&c.name)
            );
            match c.status.as_str() {
                "pass" => o.push_str("/>\n"),
                "skip" => {
                    let _ = writeln!(o, "><skipped message=\"{}\"/></testcase>", esc(&c.message));
                }
                _ => {
                    let _ = writeln!(o, "><failure message=\"{}\"/></testcase>", esc(&c.message));
                }
            }
        }
        o.push_str("  </testsuite>\n");
    }
    o.push_str("</testsuites>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guests_time_limit_grows_with_its_scenarios_and_under_emulation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/firewall");
        let files = crate::runner::discover(std::slice::from_ref(&dir)).unwrap();
        let args = vec![
            dir.display().to_string(),
            "--backend".into(),
            "auto".into(),
            "--filter".into(),
            "scenarios".into(),
        ];
        // Option values are not paths.
        assert_eq!(count_scenarios(&args), files.len());
        assert!(files.len() > 1);
        assert!(guest_timeout(10, kvm::Accel::Tcg) > guest_timeout(10, kvm::Accel::Kvm));
        assert!(guest_timeout(500, kvm::Accel::Tcg) > guest_timeout(27, kvm::Accel::Tcg));
        assert_eq!(
            guest_timeout(27, kvm::Accel::Tcg),
            Duration::from_secs(180 + 27 * 20)
        );
    }

    fn result(kernel: &str, cells: &[(&str, &str, &str)]) -> KernelResult {
        KernelResult {
            kernel: kernel.into(),
            spec: kernel.into(),
            backend: "raw_tp".into(),
            hooks: vec![],
            skipped_hooks: vec![],
            functions: None,
            scenarios: cells
                .iter()
                .map(|(n, s, m)| Cell {
                    name: (*n).into(),
                    path: format!("scenarios/{n}.yaml"),
                    status: (*s).into(),
                    message: (*m).into(),
                })
                .collect(),
            error: None,
            panicked_first: None,
            seconds: 1.0,
        }
    }

    #[test]
    fn a_kernel_passes_only_with_every_scenario_passing_or_skipped_with_a_reason() {
        assert!(result("6.1", &[("a", "pass", ""), ("b", "skip", "needs nft")]).ok());
        assert!(!result("6.1", &[("a", "pass", ""), ("b", "fail", "reason")]).ok());
        assert!(
            !result("6.1", &[("b", "skip", "")]).ok(),
            "a skip must say why"
        );
        assert!(!result("6.1", &[]).ok(), "no results is no pass");
        let mut booted_not = result("6.1", &[("a", "pass", "")]);
        booted_not.error = Some("no result within 900s".into());
        assert!(!booted_not.ok());
    }

    #[test]
    fn the_table_has_a_column_per_kernel_and_numbered_notes() {
        let t = human(&[
            result(
                "6.1.0-56-amd64",
                &[("a", "pass", ""), ("b", "fail", "at: expected x, got y")],
            ),
            result(
                "6.12.117+deb12-amd64",
                &[("a", "pass", ""), ("b", "pass", "")],
            ),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("scenario") && lines[0].contains("6.1.0-56-amd64"));
        assert!(lines[1].starts_with("scenarios/a.yaml") && lines[1].matches("pass").count() == 2);
        assert!(lines[2].contains("fail [1]"));
        assert!(t.contains("[1] scenarios/b.yaml on 6.1.0-56-amd64: fail (at: expected x, got y)"));
        assert!(t.contains("matrix: 1 of 2 kernels passed\nmatrix: FAILED"));
    }

    #[test]
    fn guest_json_lines_become_cells_with_their_reasons() {
        let run = vm::GuestRun {
            results: vec![
                serde_json::json!({"name":"m","path":"p.yaml","status":"pass","unchecked":["packet 1: reason IP_CSUM not checked (no reasons)"]}),
                serde_json::json!({"name":"n","path":"q.yaml","status":"fail","packets":[{"mismatches":[{"what":"reason","expected":"A","actual":"B"}]}]}),
                serde_json::json!({"name":"o","path":"r.yaml","status":"fail","trace_problems":["2 tracer event(s) were lost"],"packets":[{"mismatches":[]}]}),
            ],
            doctor: Some(
                serde_json::json!({"backend":"raw_tp","hooks":[{"hook":"kfree_skb","program":"kfree_skb_noreason","skipped":null},{"hook":"icmp_send","program":null,"skipped":"absent"}]}),
            ),
            ..Default::default()
        };
        let k = kernels::Kernel {
            spec: "5.10".into(),
            release: "5.10.0-32-amd64".into(),
            vmlinuz: PathBuf::new(),
        };
        let r = summarise(&k, &run);
        assert_eq!(r.hooks, vec!["kfree_skb"]);
        assert_eq!(r.skipped_hooks.len(), 1);
        assert_eq!(
            r.scenarios[0].message,
            "not checkable: packet 1: reason IP_CSUM not checked (no reasons)"
        );
        assert_eq!(r.scenarios[1].message, "reason: expected A, got B");
        // A failure with nothing but a trace problem still says why.
        assert_eq!(r.scenarios[2].message, "2 tracer event(s) were lost");
        assert!(!r.ok());
    }

    /// `auto` must use kprobe-multi where the guest links it: a passing
    /// run on plain kprobes there fails, with the fallback's reason; where
    /// kprobe-multi does not link (6.1), plain kprobes pass.
    #[test]
    fn plain_kprobes_where_kprobe_multi_links_fail_the_scenario() {
        let scenario = |backend: &str, skipped: Value| {
            serde_json::json!({"name":"f","path":"f.yaml","status":"pass","tracer":{
                "backend": backend, "functions": 44, "function_attach_ms": 3900.0,
                "skipped_hooks": skipped}})
        };
        let fallback = serde_json::json!([{"hook":"kprobe-multi","why":"linking kmulti_skb_arg0 to 9 functions: EBUSY; plain kprobes instead"}]);
        let k = kernels::Kernel {
            spec: "6.18".into(),
            release: "6.18.15+deb13-amd64".into(),
            vmlinuz: PathBuf::new(),
        };
        let guest = |result: Value, multi: bool| vm::GuestRun {
            results: vec![result],
            doctor: Some(serde_json::json!({"backend":"raw_tp","hooks":[],
                "kprobe_multi":{"available":multi,"detail":""}})),
            ..Default::default()
        };
        let r = summarise(
            &k,
            &guest(scenario("raw_tp+kprobe", fallback.clone()), true),
        );
        assert_eq!(r.scenarios[0].status, "fail");
        assert!(
            r.scenarios[0].message.contains("EBUSY"),
            "{}",
            r.scenarios[0].message
        );
        assert!(!r.ok());
        assert_eq!(r.functions.as_ref().unwrap()["mechanism"], "kprobe");

        let r = summarise(&k, &guest(scenario("raw_tp+kprobe", fallback), false));
        assert!(r.ok(), "no kprobe-multi here: plain kprobes are the best");

        let r = summarise(
            &k,
            &guest(scenario("raw_tp+kprobe-multi", Value::Null), true),
        );
        assert!(r.ok());
        assert!(human(&[r]).contains("functions by kprobe-multi (44, attached in 3900 ms)"));
    }

    /// A guest whose run refused to start says why, not just its status.
    #[test]
    fn a_run_that_refused_to_start_is_reported_with_its_words() {
        let k = kernels::Kernel {
            spec: "5.10".into(),
            release: "5.10.0-32-amd64".into(),
            vmlinuz: PathBuf::new(),
        };
        let run = vm::GuestRun {
            rc: Some(2),
            log: "error: --backend fentry: this kernel refuses fentry programs (invalid func unknown#173)".into(),
            ..Default::default()
        };
        let r = summarise(&k, &run);
        let e = r.error.unwrap();
        assert!(
            e.contains("exit status Some(2)") && e.contains("unknown#173"),
            "{e}"
        );
    }
}
