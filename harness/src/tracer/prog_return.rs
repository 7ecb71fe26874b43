//! What a scenario's own tc and XDP programs return: a copy of the
//! tracer's `prog_return_tc` or `prog_return_xdp` attached to each as an
//! fexit program (a BPF trampoline on a BPF program: 5.5+; the kernel
//! takes the target's entry function from the target's own BTF, so the
//! program must have been built with BTF). Each copy carries the slot
//! that names its target in its instructions, in place of
//! [`PROG_SLOT_MAGIC`]: an fexit program has no attach cookie before 6.0.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use aya::Ebpf;
use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_func_info, bpf_prog_info, bpf_prog_type};

use super::rawprog::{Kind, Linked, RawProgError, bpf, load, sys_bpf, zeroed_attr};
use crate::abi::{PROG_RETURN_PROGRAMS, PROG_SLOT_MAGIC};
use crate::scenario::{ProgHook, ProgramRef};

/// Why a program's return codes cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum ProgReturnError {
    /// The fexit program could not be taken out of the object or loaded
    /// (a kernel without fexit on BPF programs refuses it here).
    #[error(transparent)]
    Program(#[from] RawProgError),
    /// The program the scenario attached is gone (its device went away).
    #[error("program id {id} is gone: {source}")]
    Gone {
        /// Its kernel id.
        id: u32,
        /// `BPF_PROG_GET_FD_BY_ID`'s error.
        #[source]
        source: io::Error,
    },
    /// The kernel would not describe the program.
    #[error("reading the program's info: {0}")]
    Info(#[source] io::Error),
    /// The program was loaded without BTF, so fexit has no prototype to
    /// attach by.
    #[error(
        "the program has no BTF (build it with BTF: clang -g, or bpf-linker --btf), so fexit cannot attach to it"
    )]
    NoBtf,
    /// The tracer object's fexit program has no slot to write (ours).
    #[error("{0} carries no slot immediate")]
    NoSlot(String),
    /// The built-in XDP program the check attaches to did not load.
    #[error("loading the built-in XDP program to check on: {0}")]
    ProbeTarget(#[source] aya::programs::ProgramError),
    /// `BPF_RAW_TRACEPOINT_OPEN` refused the loaded fexit program.
    #[error("attaching fexit: {0}")]
    Attach(#[source] io::Error),
}

/// A scenario program to watch: its kernel id and what it is in the
/// scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgTarget {
    /// The program's kernel id (it stays loaded while attached).
    pub id: u32,
    /// Its name and place in the scenario.
    pub at: ProgramRef,
}

/// A scenario program the run watches (or tried to), by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedProgram {
    /// The slot its events carry.
    pub slot: u32,
    /// The program.
    pub at: ProgramRef,
    /// Why its returns are not watched, when they are not.
    pub not_watched: Option<String>,
}

/// The fexit programs, linked once against the tracer's maps.
pub(super) struct ProgReturns {
    linked: Linked,
}

impl ProgReturns {
    /// Links the tracer `object` against `ebpf`'s maps and ring buffer.
    pub(super) fn new(
        ebpf: &Ebpf,
        object: &[u8],
        events_fd: Option<std::os::fd::RawFd>,
    ) -> Result<Self, ProgReturnError> {
        Ok(Self {
            linked: Linked::new(object, ebpf, events_fd)?,
        })
    }

    /// Attaches a copy of the fexit program for `t`'s kind to it, naming
    /// it `slot`; closing the returned link detaches it.
    pub(super) fn attach(&self, t: &ProgTarget, slot: u32) -> Result<OwnedFd, ProgReturnError> {
        let target = prog_fd(t.id)?;
        let name = PROG_RETURN_PROGRAMS[usize::from(t.at.hook == ProgHook::Xdp)];
        let mut program = self.linked.program(name)?;
        if write_slot(&mut program.insns, slot) == 0 {
            return Err(ProgReturnError::NoSlot(name.into()));
        }
        let prog = load(&program, fexit_on(&target)?)?;
        let mut attr = zeroed_attr();
        attr.raw_tracepoint.prog_fd = prog.as_raw_fd() as u32;
        bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr).map_err(ProgReturnError::Attach)
    }
}

/// How an fexit program on `target` (a program's descriptor) is loaded.
fn fexit_on(target: &OwnedFd) -> Result<Kind, ProgReturnError> {
    Ok(Kind {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_TRACING,
        attach: bpf_attach_type::BPF_TRACE_FEXIT,
        btf_id: entry_btf_id(target)?,
        // The same field as a module's BTF object: the kernel takes a
        // program descriptor there first.
        btf_obj: Some(target.as_raw_fd()),
    })
}

/// Writes `slot` over every immediate that holds [`PROG_SLOT_MAGIC`] (the
/// compiler may store it more than once); how many it wrote.
pub(super) fn write_slot(insns: &mut [aya_obj::generated::bpf_insn], slot: u32) -> usize {
    let mut n = 0;
    for i in insns.iter_mut().filter(|i| i.imm == PROG_SLOT_MAGIC) {
        i.imm = slot as i32;
        n += 1;
    }
    n
}

/// A descriptor of program `id`.
fn prog_fd(id: u32) -> Result<OwnedFd, ProgReturnError> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    bpf(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr)
        .map_err(|source| ProgReturnError::Gone { id, source })
}

/// The BTF id of the program's entry function, in the program's own BTF:
/// its first function record (the one at instruction 0).
fn entry_btf_id(prog: &OwnedFd) -> Result<u32, ProgReturnError> {
    let mut func = bpf_func_info {
        insn_off: 0,
        type_id: 0,
    };
    // SAFETY: bpf_prog_info is plain data; zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info.nr_func_info = 1;
    info.func_info_rec_size = size_of::<bpf_func_info>() as u32;
    info.func_info = std::ptr::from_mut(&mut func) as u64;
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = prog.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_prog_info>() as u32;
    attr.info.info = std::ptr::from_mut(&mut info) as u64;
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(ProgReturnError::Info)?;
    if info.btf_id == 0 || info.nr_func_info == 0 || func.type_id == 0 {
        return Err(ProgReturnError::NoBtf);
    }
    Ok(func.type_id)
}

/// Whether this kernel lets the tracer `object` watch a program's
/// returns: the real path, on the built-in XDP program (loaded, not
/// attached to any device), with the object's maps.
pub fn probe(object: &[u8]) -> Result<(), ProgReturnError> {
    const TARGET: &str = "xdp_drop_udp_ports";
    let mut fixtures = crate::common::ebpf_loader::load(crate::common::fixtures::TC_OBJ)
        .map_err(RawProgError::Load)?;
    let xdp: &mut aya::programs::Xdp = fixtures
        .program_mut(TARGET)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| RawProgError::NoProgram(TARGET.into()))?;
    xdp.load().map_err(ProgReturnError::ProbeTarget)?;
    let id = xdp.info().map_err(ProgReturnError::ProbeTarget)?.id();
    // Refused already with two instructions: said before the tracer
    // object's maps are made.
    let xdp_fd = prog_fd(id)?;
    drop(load(
        &super::rawprog::minimal_program(),
        fexit_on(&xdp_fd)?,
    )?);
    let tracer = crate::common::ebpf_loader::load(object).map_err(RawProgError::Load)?;
    let target = ProgTarget {
        id,
        at: ProgramRef {
            program: TARGET.into(),
            ns: String::new(),
            dev: String::new(),
            hook: ProgHook::Xdp,
        },
    };
    ProgReturns::new(&tracer, object, None)?
        .attach(&target, 0)
        .map(drop)
}
