//! The function-level backend through fentry programs (BPF trampolines),
//! for a kernel that has them but no kprobes (`--backend fentry`, or
//! `auto` there). Each function needs a program loaded for it, so the
//! verifier runs once per function: the plain-kprobe default set, not all
//! ~1,700. `bpf_get_func_ip` names the function: 5.15 and later. A
//! module's function is named by its id in the module's split BTF and the
//! module's BTF object.

use std::os::fd::{AsRawFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_prog_type};

use super::btf::Btf;
use super::probe::{Attached, FunctionProbe, ProbeMechanism, Target};
use super::rawprog::{Kind, Linked, RawProgError, bpf, instructions, load, zeroed_attr};
use crate::abi::FENTRY_PROGRAMS;

/// Why fentry could not probe a function, or any.
#[derive(Debug, thiserror::Error)]
pub enum FentryError {
    /// A program could not be taken out of the object or loaded.
    #[error(transparent)]
    Program(#[from] RawProgError),
    /// A module's BTF object was not found (5.11+ exposes them).
    #[error("no BTF object for module {0}")]
    NoModuleBtf(String),
    /// The function is not in the kernel's (or its module's) BTF.
    #[error("{0} is not in BTF")]
    NotInBtf(String),
    /// `BPF_RAW_TRACEPOINT_OPEN` refused the loaded program.
    #[error("attaching: {0}")]
    Attach(#[source] std::io::Error),
    /// A target function's refusal (the first, when none attached).
    #[error("{function}: {source}")]
    Target {
        /// The function.
        function: String,
        /// Why.
        #[source]
        source: Box<FentryError>,
    },
    /// There was nothing to attach to.
    #[error("no function to attach to")]
    NoFunction,
}

/// The fentry programs: the object linked once, and the attached copies
/// (closing a link detaches it).
pub(super) struct Fentries {
    linked: Linked,
    links: Vec<OwnedFd>,
    /// Modules' BTF objects, by module (None: not found).
    module_btf: std::collections::HashMap<String, Option<OwnedFd>>,
}

impl Fentries {
    /// Links the tracer `object` against `ebpf`'s maps, for the copies.
    pub(super) fn new(
        ebpf: &Ebpf,
        object: &[u8],
        events_fd: std::os::fd::RawFd,
    ) -> Result<Self, FentryError> {
        Ok(Self {
            linked: Linked::new(object, ebpf, Some(events_fd))?,
            links: Vec::new(),
            module_btf: std::collections::HashMap::new(),
        })
    }

    /// `t`'s id in BTF and, for a module's function, the module's BTF
    /// object; `data` caches the modules' split BTF.
    fn target_id(
        &mut self,
        btf: &Btf,
        data: &mut std::collections::HashMap<String, Option<Vec<u8>>>,
        t: &Target,
    ) -> Result<(u32, Option<std::os::fd::RawFd>), FentryError> {
        let Some(m) = &t.module else {
            let id = btf.function_id(&t.name);
            return Ok((
                id.ok_or_else(|| FentryError::NotInBtf(t.name.clone()))?,
                None,
            ));
        };
        let split = data
            .entry(m.clone())
            .or_insert_with(|| std::fs::read(format!("/sys/kernel/btf/{m}")).ok());
        let split = split
            .as_deref()
            .ok_or_else(|| FentryError::NoModuleBtf(m.clone()))?;
        let id = btf.module_function_id(split, &t.name).ok().flatten();
        let id = id.ok_or_else(|| FentryError::NotInBtf(t.name.clone()))?;
        let fd = self
            .module_btf
            .entry(m.clone())
            .or_insert_with(|| super::rawprog::module_btf(m));
        let fd = fd
            .as_ref()
            .ok_or_else(|| FentryError::NoModuleBtf(m.clone()))?;
        Ok((id, Some(fd.as_raw_fd())))
    }
}

impl FunctionProbe for Fentries {
    type Error = FentryError;

    fn mechanism(&self) -> ProbeMechanism {
        ProbeMechanism::Fentry
    }

    /// Each function gets a copy of its argument position's program,
    /// loaded with that function as its attach target (the verifier runs
    /// once per function, hence the default set); the first refusal is
    /// the error when none attached.
    fn attach(
        &mut self,
        _ebpf: &mut Ebpf,
        btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<FentryError>, FentryError> {
        let mut count = 0;
        let mut first_error = None;
        let mut data = std::collections::HashMap::new();
        for (arg, name) in FENTRY_PROGRAMS.iter().enumerate() {
            let mine: Vec<&Target> = targets.iter().filter(|t| t.arg == arg).collect();
            if mine.is_empty() {
                continue;
            }
            let program = self.linked.program(name)?;
            for t in mine {
                let attached = self
                    .target_id(btf, &mut data, t)
                    .and_then(|(btf_id, btf_obj)| {
                        let kind = Kind {
                            prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
                            attach: bpf_attach_type::BPF_TRACE_FENTRY,
                            btf_id,
                            btf_obj,
                        };
                        open(&load(&program, kind)?)
                    });
                match attached {
                    Ok(link) => {
                        self.links.push(link);
                        count += 1;
                    }
                    Err(e) => {
                        first_error.get_or_insert(FentryError::Target {
                            function: t.name.clone(),
                            source: Box::new(e),
                        });
                    }
                }
            }
        }
        if count == 0 {
            return Err(first_error.unwrap_or(FentryError::NoFunction));
        }
        Ok(Attached {
            count,
            left_out: None,
        })
    }
}

/// Attaches a loaded fentry program to its target (5.5+:
/// `BPF_RAW_TRACEPOINT_OPEN` without a name).
fn open(prog: &OwnedFd) -> Result<OwnedFd, FentryError> {
    let mut attr = zeroed_attr();
    attr.raw_tracepoint.prog_fd = prog.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr).map_err(FentryError::Attach)
}

/// The function [`probe`] attaches to.
const PROBE_TARGET: &str = "ip_rcv";

/// [`PROBE_TARGET`]'s BTF id, when a parse of the kernel's BTF noted it.
pub(super) static PROBE_TARGET_ID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// Notes the probe's target from a parse of the running kernel's BTF (the
/// tracer's, made in every run), so that a later [`probe`] need not read
/// the BTF again: 5-6 MB, ~7 ms of CPU.
pub fn note_probe_target(kernel: &super::btf::Btf) {
    let _ = PROBE_TARGET_ID.set(kernel.function_id(PROBE_TARGET));
}

/// Whether this kernel loads and attaches an fentry program (on `ip_rcv`)
/// from the tracer `object`: the path the backend takes.
pub fn probe(object: &[u8]) -> Result<(), FentryError> {
    let noted = PROBE_TARGET_ID.get().copied();
    // Else ip_rcv's id alone, without a parse of the whole BTF.
    let btf_id = match noted {
        Some(id) => id,
        None => super::btf::kernel_bytes()
            .and_then(|b| super::btf::function_id_in(&b, PROBE_TARGET))
            .map_err(RawProgError::from)?,
    }
    .ok_or_else(|| FentryError::NotInBtf(PROBE_TARGET.into()))?;
    let kind = Kind {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
        attach: bpf_attach_type::BPF_TRACE_FENTRY,
        btf_id,
        btf_obj: None,
    };
    // A kernel that refuses every fentry program (no trampolines, or a
    // policy) refuses a two-instruction one too: said before the tracer
    // object's maps are made for the real program.
    drop(load(&super::rawprog::minimal_program(), kind)?);
    let ebpf = crate::common::ebpf_loader::load(object).map_err(RawProgError::Load)?;
    let program = instructions(object, &ebpf, None, "probe_fentry")?;
    open(&load(&program, kind)?).map(drop)
}
