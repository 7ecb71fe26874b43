//! `pktfate doctor`: what this kernel gives the tracer, found by asking it
//! (BTF prototypes, real program loads), not by version numbers.

use std::fmt::Write as _;

use crate::common::Hook;
use serde::{Deserialize, Serialize};

use crate::topology::kmod::{self, ModuleState};

mod userspace;
use crate::tracer::btf::Btf;
use crate::tracer::{DropReasons, TraceSpec, Tracer};
pub use userspace::ToolReport;

/// One hook: its prototype, the program variant chosen, and the outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookReport {
    /// Tracepoint name.
    pub hook: String,
    /// Arguments in this kernel's prototype; `None` when it has no such tracepoint.
    pub args: Option<usize>,
    /// The program variant loaded, when attached.
    pub program: Option<String>,
    /// Why not, when skipped.
    pub skipped: Option<String>,
}

/// Whether a function-level mechanism works here, and why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capability {
    /// Usable.
    pub available: bool,
    /// What was found or what refused it.
    pub detail: String,
}

/// Everything `doctor` found; the matrix reads a guest's back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[expect(
    clippy::unsafe_derive_deserialize,
    reason = "the unsafe is in probing the kernel; the fields hold no invariant"
)]
pub struct Doctor {
    /// `uname -r`.
    pub kernel: String,
    /// Kernel BTF, with its size.
    pub btf: Capability,
    /// Number of drop reasons in `enum skb_drop_reason` (0: none).
    pub drop_reasons: usize,
    /// Whether `kfree_skb` passes the reason to the tracer.
    pub reasons_traced: bool,
    /// The backend `run` uses.
    pub backend: String,
    /// Tracer start-up error, when it could not start at all.
    pub tracer_error: Option<String>,
    /// Every tracepoint hook.
    pub hooks: Vec<HookReport>,
    /// kprobes (perf kprobe PMU plus a real attach).
    pub kprobes: Capability,
    /// kprobe-multi (fprobe; a real load and link, as the backend does).
    pub kprobe_multi: Capability,
    /// fentry (a real load and attach of a BPF trampoline program, as the
    /// backend does).
    pub fentry: Capability,
    /// Kernel modules scenarios use.
    pub modules: Vec<(String, ModuleState)>,
    /// How `pktfate matrix --kvm auto` would run guests here, and why.
    pub virtualisation: crate::tools::matrix::kvm::KvmVerdict,
    /// The user-space tools scenarios run (nft, iptables, ip, tc).
    #[serde(default)]
    pub tools: Vec<ToolReport>,
}

/// Loads and attaches the tracer object's `probe_kprobe` on `ip_rcv`.
fn probe_kprobe() -> Capability {
    use crate::tracer::HookError;
    let result = (|| -> Result<(), HookError> {
        let mut ebpf = crate::common::ebpf_loader::load(crate::tracer::raw_tp::TRACER_OBJ)
            .map_err(|e| HookError::Object(std::sync::Arc::new(e)))?;
        let p: &mut aya::programs::KProbe = ebpf
            .program_mut("probe_kprobe")
            .ok_or_else(|| HookError::MissingProgram("probe_kprobe".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| HookError::WrongType {
                program: "probe_kprobe".into(),
                source: std::sync::Arc::new(e),
            })?;
        p.load().map_err(HookError::refused)?;
        p.attach("ip_rcv", 0)
            .map(drop)
            .map_err(HookError::not_attached)
    })();
    Capability::from_probe(result, "a probe on ip_rcv loaded and attached")
}

impl Capability {
    /// From a probe's outcome: `ok` when it worked, else its error.
    fn from_probe<E: std::fmt::Display>(result: Result<(), E>, ok: &str) -> Self {
        match result {
            Ok(()) => Self {
                available: true,
                detail: ok.into(),
            },
            Err(e) => Self {
                available: false,
                detail: crate::common::text::clip(&e.to_string(), 160),
            },
        }
    }
}

// Long on purpose: one probe per line of the report, in the report's order.
/// Examines the running kernel.
pub fn examine() -> Doctor {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |r| r.trim().to_string());
    let btf_result = Btf::kernel();
    let btf = btf_result.as_ref().ok().map(|b| &**b);
    let btf_cap = match (&btf_result, std::fs::metadata("/sys/kernel/btf/vmlinux")) {
        (Ok(_), Ok(m)) => Capability {
            available: true,
            detail: format!(
                "/sys/kernel/btf/vmlinux ({:.1} MiB)",
                m.len() as f64 / 1_048_576.0
            ),
        },
        (Err(e), _) => Capability {
            available: false,
            detail: e.to_string(),
        },
        (_, Err(e)) => Capability {
            available: false,
            detail: e.to_string(),
        },
    };
    let drop_reasons = btf
        .and_then(|b| DropReasons::from_btf(b).ok())
        .map_or(0, |r| r.iter().count());
    // A spec that matches nothing: the tracer loads and attaches, and
    // reports which hooks it has, without tracing anyone's packets.
    let spec = TraceSpec {
        netns: vec![u32::MAX],
        filters: vec![],
        stacks: false,
        tc_hooks: vec![],
        functions: None,
        function_pattern: None,
        programs: vec![],
    };
    let (backend, tracer_error, attached, skipped) = match Tracer::start(&spec) {
        Ok(t) => (
            t.backend().name().to_string(),
            None,
            t.backend().attached(),
            t.backend().skipped(),
        ),
        Err(e) => ("none".into(), Some(e.to_string()), vec![], vec![]),
    };
    let hooks: Vec<HookReport> = Hook::tracepoints()
        .map(|h| HookReport {
            hook: h.name().to_string(),
            args: btf.and_then(|b| b.tracepoint_arity(h.name())),
            program: attached
                .iter()
                .find(|a| a.hook == h)
                .map(|a| a.program.to_string()),
            skipped: skipped
                .iter()
                .find(|s| s.hook == h)
                .map(|s| s.why.to_string()),
        })
        .collect();
    // The program variant that reads the reason argument (5.17+).
    let reasons_traced = attached
        .iter()
        .any(|a| a.hook == Hook::KfreeSkb && a.program == "kfree_skb");
    let kprobes = if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        probe_kprobe()
    } else {
        Capability {
            available: false,
            detail: "no kprobe PMU (/sys/bus/event_source/devices/kprobe): CONFIG_KPROBES off"
                .into(),
        }
    };
    let kprobe_multi = if kprobes.available {
        Capability::from_probe(
            crate::tracer::kprobe_multi::probe(crate::tracer::raw_tp::TRACER_OBJ),
            "a kprobe-multi link on ip_rcv loaded and attached",
        )
    } else {
        Capability {
            available: false,
            detail: "needs kprobes".into(),
        }
    };
    Doctor {
        kernel,
        btf: btf_cap,
        drop_reasons,
        reasons_traced,
        backend,
        tracer_error,
        hooks,
        kprobes,
        kprobe_multi,
        fentry: Capability::from_probe(
            crate::tracer::fentry::probe(crate::tracer::raw_tp::TRACER_OBJ),
            "an fentry program on ip_rcv loaded and attached",
        ),
        modules: kmod::KNOWN
            .iter()
            .map(|m| ((*m).to_string(), kmod::state(m)))
            .collect(),
        virtualisation: crate::tools::matrix::kvm::probe(),
        tools: userspace::tools_on(&std::env::var_os("PATH").unwrap_or_default()),
    }
}

impl Doctor {
    /// Text for people.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let cap =
            |c: &Capability| format!("{} ({})", if c.available { "yes" } else { "no" }, c.detail);
        let _ = writeln!(o, "kernel        {}", self.kernel);
        let _ = writeln!(o, "BTF           {}", cap(&self.btf));
        let _ = writeln!(
            o,
            "drop reasons  {}{}",
            self.drop_reasons,
            if self.reasons_traced || self.tracer_error.is_some() {
                ""
            } else {
                " (kfree_skb passes no reason here: `reason:` is not checkable)"
            }
        );
        let _ = writeln!(o, "backend       {}", self.backend);
        if let Some(e) = &self.tracer_error {
            let _ = writeln!(o, "  tracer failed: {e}");
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                let _ = writeln!(
                    o,
                    "  hint: loading eBPF needs root: run `sudo pktfate doctor`; hooks and probes below are untested"
                );
            }
        }
        let _ = writeln!(o, "hooks:");
        for h in &self.hooks {
            let args = h.args.map_or("-".to_string(), |n| n.to_string());
            let state = match (&h.program, &h.skipped) {
                (Some(p), _) => format!("attached ({p})"),
                (None, Some(why)) => format!("skipped: {why}"),
                (None, None) => "not tried".to_string(),
            };
            let _ = writeln!(o, "  {:<26} args {:<3} {state}", h.hook, args);
        }
        let _ = writeln!(o, "function-level tracing:");
        let _ = writeln!(o, "  kprobes       {}", cap(&self.kprobes));
        let _ = writeln!(o, "  kprobe-multi  {}", cap(&self.kprobe_multi));
        let _ = writeln!(o, "  fentry        {}", cap(&self.fentry));
        let mods: Vec<String> = self
            .modules
            .iter()
            .map(|(m, s)| format!("{m} {}", format!("{s:?}").to_lowercase()))
            .collect();
        let _ = writeln!(o, "modules       {}", mods.join(", "));
        let _ = writeln!(
            o,
            "matrix guests {} ({})",
            self.virtualisation.accel.label(),
            self.virtualisation.why
        );
        if !self.tools.is_empty() {
            let _ = writeln!(o, "tools:");
        }
        for t in &self.tools {
            let found = match (&t.version, &t.path) {
                (Some(v), Some(p)) => format!("{v} ({p})"),
                (None, Some(p)) => format!("no version printed ({p})"),
                (_, None) => "-".into(),
            };
            let _ = writeln!(o, "  {:<13} {found}", t.name);
            if let Some(n) = &t.note {
                let _ = writeln!(o, "  {:<13} {n}", "");
            }
        }
        o
    }
}
