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
use super::rawprog::{Kind, Linked, ProbeError, bpf, instructions, load, zeroed_attr};
use crate::abi::FENTRY_PROGRAMS;

/// The attached programs (closing a link detaches it).
pub(super) struct Fentries {
    links: Vec<OwnedFd>,
}

impl Fentries {
    /// Keeps `more`'s links too.
    pub(super) fn absorb(&mut self, more: Fentries) {
        self.links.extend(more.links);
    }
}

/// A function to attach to.
pub(super) struct Target {
    /// Its name.
    pub name: String,
    /// The position of its skb argument.
    pub arg: usize,
    /// Its id in the kernel's BTF, or in its module's split BTF.
    pub btf_id: u32,
    /// Its module, when not the kernel's.
    pub module: Option<String>,
}

/// The targets among `kernel` (the kernel's functions) and the functions
/// of `modules` (from their split BTF) that `keep` accepts.
pub(super) fn targets(
    btf: &Btf,
    kernel: &[(String, usize)],
    modules: &[String],
    keep: &dyn Fn(&str) -> bool,
) -> Vec<Target> {
    let mut out: Vec<Target> = kernel
        .iter()
        .filter(|(name, _)| keep(name))
        .filter_map(|(name, arg)| {
            Some(Target {
                name: name.clone(),
                arg: *arg,
                btf_id: btf.function_id(name)?,
                module: None,
            })
        })
        .collect();
    for module in modules {
        let Ok(data) = std::fs::read(format!("/sys/kernel/btf/{module}")) else {
            continue;
        };
        let functions = btf
            .module_functions_taking(&data, "sk_buff", FENTRY_PROGRAMS.len())
            .unwrap_or_default();
        for (name, arg) in functions.into_iter().filter(|(n, _)| keep(n)) {
            if let Ok(Some(btf_id)) = btf.module_function_id(&data, &name) {
                out.push(Target {
                    name,
                    arg,
                    btf_id,
                    module: Some(module.clone()),
                });
            }
        }
    }
    out
}

/// Attaches an fentry program to each target; returns the links and how
/// many attached, or why none could (the first refusal).
pub(super) fn attach(
    ebpf: &Ebpf,
    object: &[u8],
    events_fd: std::os::fd::RawFd,
    targets: &[Target],
) -> Result<(Fentries, usize), ProbeError> {
    let mut links = Vec::new();
    let mut first_error = None;
    let mut module_btf = std::collections::HashMap::<String, Option<OwnedFd>>::new();
    let linked = Linked::new(object, ebpf, Some(events_fd))?;
    for (arg, name) in FENTRY_PROGRAMS.iter().enumerate() {
        let mine: Vec<&Target> = targets.iter().filter(|t| t.arg == arg).collect();
        if mine.is_empty() {
            continue;
        }
        let program = linked.program(name)?;
        for t in mine {
            let btf_obj = match &t.module {
                None => None,
                Some(m) => {
                    let fd = module_btf
                        .entry(m.clone())
                        .or_insert_with(|| super::rawprog::module_btf(m));
                    let Some(fd) = fd else {
                        first_error.get_or_insert(ProbeError::Missing(format!(
                            "no BTF object for module {m}"
                        )));
                        continue;
                    };
                    Some(fd.as_raw_fd())
                }
            };
            let kind = Kind {
                prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
                attach: bpf_attach_type::BPF_TRACE_FENTRY,
                btf_id: t.btf_id,
                btf_obj,
            };
            match load(&program, kind).and_then(|prog| open(&prog)) {
                Ok(link) => links.push(link),
                Err(e) => {
                    first_error.get_or_insert(ProbeError::Target {
                        function: t.name.clone(),
                        source: Box::new(e),
                    });
                }
            }
        }
    }
    if links.is_empty() {
        return Err(
            first_error.unwrap_or_else(|| ProbeError::Missing("no function to attach to".into()))
        );
    }
    let n = links.len();
    Ok((Fentries { links }, n))
}

/// Attaches a loaded fentry program to its target (5.5+:
/// `BPF_RAW_TRACEPOINT_OPEN` without a name).
fn open(prog: &OwnedFd) -> Result<OwnedFd, ProbeError> {
    let mut attr = zeroed_attr();
    attr.raw_tracepoint.prog_fd = prog.as_raw_fd() as u32;
    bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr).map_err(|source| ProbeError::Refused {
        what: "attaching".into(),
        source,
    })
}

/// Whether this kernel loads and attaches an fentry program (on `ip_rcv`)
/// from the tracer `object`: the path the backend takes.
pub fn probe(object: &[u8]) -> Result<(), ProbeError> {
    let ebpf = aya::EbpfLoader::new()
        .load(object)
        .map_err(ProbeError::Load)?;
    let btf = Btf::kernel()?;
    let btf_id = btf
        .function_id("ip_rcv")
        .ok_or_else(|| ProbeError::Missing("no ip_rcv in BTF".into()))?;
    let program = instructions(object, &ebpf, None, "probe_fentry")?;
    let kind = Kind {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
        attach: bpf_attach_type::BPF_TRACE_FENTRY,
        btf_id,
        btf_obj: None,
    };
    load(&program, kind).and_then(|prog| open(&prog)).map(drop)
}
