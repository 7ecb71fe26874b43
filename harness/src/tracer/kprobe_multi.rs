//! kprobe-multi links (fprobe; Linux 5.18+ built with `CONFIG_FPROBE`):
//! one link over every function passing an skb, with its argument's
//! position as each function's cookie, attached in one system call where
//! plain kprobes need a perf event each (~5 ms natively, ~200 ms under
//! emulation).
//!
//! aya 0.14 loads a kprobe program without an expected attach type, and
//! the kernel links only programs loaded as `BPF_TRACE_KPROBE_MULTI`:
//! `rawprog` loads it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_prog_type};

use super::btf::Btf;
use super::probe::{Attached, FunctionProbe, ProbeMechanism, Target};
use super::rawprog::{Kind, Program, RawProgError, bpf, instructions, load, zeroed_attr};

/// Why kprobe-multi could not be used; the `bpf(2)` error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum KprobeMultiError {
    /// Its program could not be taken out of the object or loaded.
    #[error(transparent)]
    Program(#[from] RawProgError),
    /// EOPNOTSUPP: the kernel was built without `CONFIG_FPROBE`.
    #[error("this kernel has no kprobe-multi links (EOPNOTSUPP: CONFIG_FPROBE off)")]
    Unsupported(#[source] io::Error),
    /// EINVAL: the kernel does not know the attach type (before 5.18).
    #[error("the kernel refused a kprobe-multi link (EINVAL; they exist from Linux 5.18)")]
    Refused(#[source] io::Error),
    /// ESRCH: a function name is not in kallsyms.
    #[error("one of {count} functions is not in kallsyms (ESRCH)")]
    NotInKallsyms {
        /// How many functions the link named.
        count: usize,
        /// `bpf(2)`'s error.
        #[source]
        source: io::Error,
    },
    /// Any other refusal of the link.
    #[error("linking to {count} functions: {source}")]
    Link {
        /// How many functions the link named.
        count: usize,
        /// `bpf(2)`'s error.
        #[source]
        source: io::Error,
    },
}

impl KprobeMultiError {
    /// The refusal of a link over `count` functions, by its errno.
    fn of_link(count: usize, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Self::Unsupported(source),
            Some(libc::EINVAL) => Self::Refused(source),
            Some(libc::ESRCH) => Self::NotInKallsyms { count, source },
            _ => Self::Link { count, source },
        }
    }
}

/// How the kprobe-multi program is loaded.
pub(super) const KPROBE_MULTI: Kind = Kind {
    prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE,
    attach: bpf_attach_type::BPF_TRACE_KPROBE_MULTI,
    btf_id: 0,
    btf_obj: None,
};

/// The loaded program and its links (closing a link detaches it).
pub(super) struct KprobeMulti {
    prog: OwnedFd,
    links: Vec<OwnedFd>,
}

/// Links a loaded program to `functions` (kernel symbol names, each with
/// its cookie: the position of its skb argument).
fn link(prog: &OwnedFd, functions: &[&Target]) -> io::Result<OwnedFd> {
    let (names, cookies): (Vec<CString>, Vec<u64>) = functions
        .iter()
        .filter_map(|t| Some((CString::new(t.name.as_str()).ok()?, t.arg as u64)))
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

impl KprobeMulti {
    /// Loads the kprobe-multi program of `object`, its maps `ebpf`'s.
    pub(super) fn load(
        ebpf: &Ebpf,
        object: &[u8],
        events_fd: std::os::fd::RawFd,
    ) -> Result<Self, KprobeMultiError> {
        let program = instructions(
            object,
            ebpf,
            Some(events_fd),
            crate::abi::KPROBE_MULTI_PROGRAM,
        )?;
        Self::load_program(&program)
    }

    /// Loads `program` (from [`instructions`]) as a kprobe-multi program.
    fn load_program(program: &Program) -> Result<Self, KprobeMultiError> {
        Ok(Self {
            prog: load(program, KPROBE_MULTI)?,
            links: Vec::new(),
        })
    }

    /// Links the program to `functions` in one link (each function's
    /// cookie the position of its skb argument); returns how many.
    fn link(&mut self, functions: &[&Target]) -> Result<usize, KprobeMultiError> {
        if functions.is_empty() {
            return Ok(0);
        }
        let l = link(&self.prog, functions)
            .map_err(|e| KprobeMultiError::of_link(functions.len(), e))?;
        self.links.push(l);
        Ok(functions.len())
    }
}

impl FunctionProbe for KprobeMulti {
    type Error = KprobeMultiError;

    fn mechanism(&self) -> ProbeMechanism {
        ProbeMechanism::KprobeMulti
    }

    /// One link takes them all, as pwru does.
    fn default_functions(&self) -> &'static str {
        "."
    }

    /// One link for the kernel's and the modules' functions together (each
    /// link costs the kernel a walk over kallsyms and an ftrace update);
    /// the kernel's alone if the modules' names do not resolve, with why.
    fn attach(
        &mut self,
        _ebpf: &mut Ebpf,
        _btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<KprobeMultiError>, KprobeMultiError> {
        let all: Vec<&Target> = targets.iter().collect();
        match self.link(&all) {
            Ok(count) => Ok(Attached {
                count,
                left_out: None,
            }),
            Err(with_modules) => {
                let kernel: Vec<&Target> = targets.iter().filter(|t| t.module.is_none()).collect();
                if kernel.len() == all.len() || kernel.is_empty() {
                    return Err(with_modules);
                }
                Ok(Attached {
                    count: self.link(&kernel)?,
                    left_out: Some(with_modules),
                })
            }
        }
    }
}

/// Whether this kernel loads and links a kprobe-multi program (to
/// `ip_rcv`) from the tracer `object`, for `pktfate doctor`: the same
/// path the backend takes.
pub fn probe(object: &[u8]) -> Result<(), KprobeMultiError> {
    let ebpf = crate::common::ebpf_loader::load(object).map_err(RawProgError::Load)?;
    let program = instructions(object, &ebpf, None, crate::abi::KPROBE_MULTI_PROGRAM)?;
    let target = Target {
        name: "ip_rcv".into(),
        arg: 0,
        module: None,
    };
    KprobeMulti::load_program(&program)?
        .link(&[&target])
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_link_is_told_by_its_errno() {
        let of = |errno| KprobeMultiError::of_link(9, io::Error::from_raw_os_error(errno));
        assert!(matches!(
            of(libc::EOPNOTSUPP),
            KprobeMultiError::Unsupported(_)
        ));
        assert!(matches!(of(libc::EINVAL), KprobeMultiError::Refused(_)));
        assert!(matches!(
            of(libc::ESRCH),
            KprobeMultiError::NotInKallsyms { count: 9, .. }
        ));
        let busy = of(libc::EBUSY);
        assert!(matches!(busy, KprobeMultiError::Link { count: 9, .. }));
        // The errno stays the source, under the words.
        let os = std::error::Error::source(&busy)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(os, Some(libc::EBUSY));
    }
}
