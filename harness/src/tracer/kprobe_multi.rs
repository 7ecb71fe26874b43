//! kprobe-multi links (fprobe; Linux 5.18+ built with `CONFIG_FPROBE`):
//! one link over every function passing an skb, with its argument's
//! position as each function's cookie, attached in one system call where
//! plain kprobes need a perf event each (~5 ms natively, ~200 ms under
//! emulation).
//!
//! aya 0.14 loads a kprobe program without an expected attach type, and
//! the kernel links only programs loaded as `BPF_TRACE_KPROBE_MULTI`:
//! [`super::rawprog`] loads it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_prog_type};

use super::rawprog::{Kind, ProbeError, Program, bpf, instructions, load, zeroed_attr};

/// How the kprobe-multi program is loaded.
pub(super) const KPROBE_MULTI: Kind = Kind {
    prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE,
    attach: bpf_attach_type::BPF_TRACE_KPROBE_MULTI,
    btf_id: 0,
    btf_obj: None,
};

/// The loaded program and its links (closing a link detaches it).
pub(super) struct Links {
    name: String,
    prog: OwnedFd,
    links: Vec<OwnedFd>,
}

/// Links a loaded program to `functions` (kernel symbol names, each with
/// its cookie: the position of its skb argument).
fn link(prog: &OwnedFd, functions: &[(String, usize)]) -> io::Result<OwnedFd> {
    let (names, cookies): (Vec<CString>, Vec<u64>) = functions
        .iter()
        .filter_map(|(f, arg)| Some((CString::new(f.as_str()).ok()?, *arg as u64)))
        .unzip();
    let ptrs: Vec<u64> = names.iter().map(|n| n.as_ptr() as u64).collect();
    let mut attr = zeroed_attr();
    // SAFETY: writing the BPF_LINK_CREATE member of a zeroed union; the
    // name pointers outlive the call.
    unsafe {
        let l = &mut attr.link_create;
        l.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
        l.attach_type = bpf_attach_type::BPF_TRACE_KPROBE_MULTI as u32;
        l.__bindgen_anon_3.kprobe_multi.cnt = ptrs.len() as u32;
        l.__bindgen_anon_3.kprobe_multi.syms = ptrs.as_ptr() as u64;
        l.__bindgen_anon_3.kprobe_multi.cookies = cookies.as_ptr() as u64;
    }
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

impl Links {
    /// Loads `program` (from [`instructions`]) as a kprobe-multi program.
    pub(super) fn load(program: &Program) -> Result<Self, ProbeError> {
        Ok(Self {
            name: program.name.clone(),
            prog: load(program, KPROBE_MULTI)?,
            links: Vec::new(),
        })
    }

    /// Links the program to `functions` (each with the position of its skb
    /// argument) in one link; returns how many, or why kprobe-multi cannot
    /// take them.
    pub(super) fn link(&mut self, functions: &[(String, usize)]) -> Result<usize, ProbeError> {
        if functions.is_empty() {
            return Ok(0);
        }
        let name = &self.name;
        let l = link(&self.prog, functions).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) => {
                    "this kernel has no kprobe-multi links (EOPNOTSUPP: CONFIG_FPROBE off)"
                        .to_string()
                }
                Some(libc::EINVAL) => format!(
                    "the kernel refused a kprobe-multi link for {name} (EINVAL; they exist from Linux 5.18)"
                ),
                Some(libc::ESRCH) => format!(
                    "one of {} functions is not in kallsyms (ESRCH)",
                    functions.len()
                ),
                _ => format!("linking {name} to {} functions: {e}", functions.len()),
            };
            ProbeError::Link { why, source: e }
        })?;
        self.links.push(l);
        Ok(functions.len())
    }
}

/// Whether this kernel loads and links a kprobe-multi program (to
/// `ip_rcv`) from the tracer `object`, for `pktfate doctor`: the same
/// path the backend takes.
pub fn probe(object: &[u8]) -> Result<(), ProbeError> {
    let ebpf = aya::EbpfLoader::new()
        .load(object)
        .map_err(ProbeError::Load)?;
    let program = instructions(object, &ebpf, None, crate::abi::KPROBE_MULTI_PROGRAM)?;
    Links::load(&program)?
        .link(&[("ip_rcv".to_string(), 0)])
        .map(drop)
}
