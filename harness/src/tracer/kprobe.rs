//! Plain kprobes: one perf event per function, through aya, with one of
//! five programs (one per position of the skb argument). The mechanism of
//! every kernel with kprobes (5.10 and later); the slowest to attach.

use aya::Ebpf;
use aya::programs::{KProbe, ProgramError};

use super::btf::Btf;
use super::probe::{Attached, FunctionProbe, ProbeMechanism, Target};
use crate::abi::KPROBE_PROGRAMS;

/// Why plain kprobes could not probe any function.
#[derive(Debug, thiserror::Error)]
pub enum KprobeError {
    /// A program is missing from the tracer object (ours).
    #[error("program {0} missing from the tracer object")]
    NoProgram(&'static str),
    /// A program is not a kprobe (ours).
    #[error("program {program} is not a kprobe: {source}")]
    WrongType {
        /// The program.
        program: &'static str,
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// The kernel refused to load a program.
    #[error("loading {program}: {}", crate::common::verifier::describe(.source))]
    Load {
        /// The program.
        program: &'static str,
        /// aya's error (the `bpf(2)` error underneath).
        #[source]
        source: ProgramError,
    },
    /// No function could be attached; the first refusal.
    #[error("no function attached ({function}: {source})")]
    NoneAttached {
        /// The first function refused.
        function: String,
        /// aya's error.
        #[source]
        source: ProgramError,
    },
}

/// Plain kprobes (aya holds their programs and links).
pub(super) struct Kprobes;

/// Raises the open-file limit to its hard maximum: every plain kprobe
/// holds a perf event descriptor.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit out-parameter; setrlimit only lowers or raises
    // the soft limit up to the hard one, which is always allowed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim);
        }
    }
}

impl FunctionProbe for Kprobes {
    type Error = KprobeError;

    fn mechanism(&self) -> ProbeMechanism {
        ProbeMechanism::Kprobe
    }

    /// A function the kernel will not probe (inlined, notrace,
    /// blacklisted) is left out silently: the candidates come from BTF,
    /// which names functions ftrace never sees.
    fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        _btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<KprobeError>, KprobeError> {
        raise_fd_limit();
        let mut attached = 0;
        let mut first_refusal = None;
        for (arg, &program) in KPROBE_PROGRAMS.iter().enumerate() {
            let mine: Vec<&Target> = targets.iter().filter(|t| t.arg == arg).collect();
            if mine.is_empty() {
                continue;
            }
            let prog: &mut KProbe = ebpf
                .program_mut(program)
                .ok_or(KprobeError::NoProgram(program))?
                .try_into()
                .map_err(|source| KprobeError::WrongType { program, source })?;
            if prog.fd().is_err() {
                prog.load()
                    .map_err(|source| KprobeError::Load { program, source })?;
            }
            for t in mine {
                match prog.attach(&t.name, 0) {
                    Ok(_) => attached += 1,
                    Err(source) => {
                        first_refusal.get_or_insert((t.name.clone(), source));
                    }
                }
            }
        }
        match (attached, first_refusal) {
            (0, Some((function, source))) => Err(KprobeError::NoneAttached { function, source }),
            (count, _) => Ok(Attached {
                count,
                left_out: None,
            }),
        }
    }
}
