//! Programs of the tracer object that aya 0.14 cannot load: taken out of
//! the object with aya-obj, their map references pointed at the maps aya
//! already created (the ones the tracepoint programs share), and loaded
//! with `bpf(2)` as the kind aya cannot express (a kprobe-multi program,
//! an fentry program per target function).

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_btf_info, bpf_cmd, bpf_insn, bpf_prog_type,
};

/// Why a program the tracer loads by itself (kprobe-multi, fentry) could
/// not be taken out of the object or loaded. Each mechanism's own error
/// ([`super::kprobe_multi::KprobeMultiError`], [`super::fentry::FentryError`])
/// wraps it. The OS error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum RawProgError {
    /// aya could not load the tracer object (its maps; needs root).
    #[error("loading the tracer object: {0}")]
    Load(#[source] aya::EbpfError),
    /// The kernel's BTF could not be read.
    #[error("kernel BTF: {0}")]
    Btf(#[from] super::btf::BtfError),
    /// The tracer object could not be parsed.
    #[error("the tracer object: {0}")]
    Parse(#[source] aya_obj::ParseError),
    /// A map the program refers to is not in the object (ours).
    #[error("map {0} is not in the object")]
    NoMap(String),
    /// The object's calls or map references could not be resolved.
    #[error("linking the tracer object: {0}")]
    Relocation(#[source] aya_obj::relocation::EbpfRelocationError),
    /// No such program in the object.
    #[error("program {0} missing from the tracer object")]
    NoProgram(String),
    /// The program's licence string holds a NUL (ours).
    #[error("program {0}: its licence is not a C string")]
    Licence(String),
    /// The verifier refused the program; `line` is its log's key line.
    #[error("the verifier refused {program} ({source}): {line}")]
    Verifier {
        /// The program.
        program: String,
        /// The log line that says why.
        line: String,
        /// `bpf(2)`'s error.
        #[source]
        source: io::Error,
    },
    /// `bpf(2)` refused to load it, without a verifier line.
    #[error("loading {program} failed: {source}")]
    Refused {
        /// The program.
        program: String,
        /// `bpf(2)`'s error.
        #[source]
        source: io::Error,
    },
}

/// The `bpf(2)` system call, for commands that return a number.
pub(super) fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: attr is a valid, zero-initialised bpf_attr of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// The `bpf(2)` system call, for commands that return a new descriptor.
pub(super) fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: the commands used here return a new descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The kernel's BTF object of module `module` (an fentry program on one
/// of its functions names it as `attach_btf_obj_fd`; 5.11+).
pub(super) fn module_btf(module: &str) -> Option<OwnedFd> {
    let mut id = 0u32;
    loop {
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
        sys_bpf(bpf_cmd::BPF_BTF_GET_NEXT_ID, &mut attr).ok()?;
        // SAFETY: the kernel filled in next_id.
        id = unsafe { attr.__bindgen_anon_6.next_id };
        let mut attr = zeroed_attr();
        attr.__bindgen_anon_6.__bindgen_anon_1.btf_id = id;
        let Ok(fd) = bpf(bpf_cmd::BPF_BTF_GET_FD_BY_ID, &mut attr) else {
            continue;
        };
        let mut name = [0u8; 64];
        // SAFETY: bpf_btf_info is plain data; zero is valid.
        let mut info: bpf_btf_info = unsafe { std::mem::zeroed() };
        info.name = name.as_mut_ptr() as u64;
        info.name_len = name.len() as u32;
        let mut attr = zeroed_attr();
        attr.info.bpf_fd = fd.as_raw_fd() as u32;
        attr.info.info_len = size_of::<bpf_btf_info>() as u32;
        attr.info.info = std::ptr::from_mut(&mut info) as u64;
        if sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr).is_ok()
            && info.kernel_btf != 0
            && name.split(|&c| c == 0).next() == Some(module.as_bytes())
        {
            return Some(fd);
        }
    }
}

pub(super) fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a plain C union; all zeroes is its valid default
    // (and the kernel requires unused bytes to be zero).
    unsafe { std::mem::zeroed() }
}

/// The descriptor of a map aya created.
fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(d)
        | Map::ArrayOfMaps(d)
        | Map::BloomFilter(d)
        | Map::CgroupArray(d)
        | Map::CgroupStorage(d)
        | Map::CgrpStorage(d)
        | Map::CpuMap(d)
        | Map::DevMap(d)
        | Map::DevMapHash(d)
        | Map::HashMap(d)
        | Map::HashOfMaps(d)
        | Map::InodeStorage(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuCgroupStorage(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::PerfEventArray(d)
        | Map::ProgramArray(d)
        | Map::Queue(d)
        | Map::ReusePortSockArray(d)
        | Map::RingBuf(d)
        | Map::SockHash(d)
        | Map::SockMap(d)
        | Map::SkStorage(d)
        | Map::Stack(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d)
        | Map::XskMap(d) => d,
    }
}

/// A program taken out of the tracer object: name, instructions, licence.
pub(super) struct Program {
    /// Its name in the object.
    pub name: String,
    /// Linked, with map references set.
    pub insns: Vec<bpf_insn>,
    /// Its licence (the helpers it calls need GPL).
    pub license: String,
}

/// The tracer object parsed and linked once (its calls resolved, its map
/// references set to `ebpf`'s maps and to `EVENTS`, the ring buffer, when
/// taken out of `ebpf`), to take several programs from: parsing and
/// linking the object costs ~12 ms natively, more than the kernel's load
/// of one function probe.
pub(super) struct Linked {
    obj: aya_obj::Object,
}

impl Linked {
    /// Parses and links `object` against `ebpf`'s maps.
    pub(super) fn new(
        object: &[u8],
        ebpf: &Ebpf,
        events_fd: Option<RawFd>,
    ) -> Result<Self, RawProgError> {
        let mut obj = aya_obj::Object::parse(object).map_err(RawProgError::Parse)?;
        let mut fds: Vec<(String, RawFd)> = ebpf
            .maps()
            .map(|(name, m)| (name.to_string(), map_data(m).fd().as_fd().as_raw_fd()))
            .collect();
        if let Some(fd) = events_fd {
            fds.push(("EVENTS".into(), fd));
        }
        let maps = obj.maps.clone();
        let mut with_defs = Vec::new();
        for (map, fd) in &fds {
            let def = maps
                .get(map)
                .ok_or_else(|| RawProgError::NoMap(map.clone()))?;
            with_defs.push((map.as_str(), *fd, def));
        }
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        obj.relocate_maps(with_defs.into_iter(), &text_sections)
            .map_err(RawProgError::Relocation)?;
        obj.relocate_calls(&text_sections)
            .map_err(RawProgError::Relocation)?;
        Ok(Self { obj })
    }

    /// Program `name`, linked.
    pub(super) fn program(&self, name: &str) -> Result<Program, RawProgError> {
        let prog = self
            .obj
            .programs
            .get(name)
            .ok_or_else(|| RawProgError::NoProgram(name.to_string()))?;
        Ok(Program {
            name: name.to_string(),
            insns: self.obj.functions[&prog.function_key()]
                .instructions
                .clone(),
            license: prog.license.to_string_lossy().into_owned(),
        })
    }
}

/// Program `name` of `object`, linked against `ebpf`'s maps (see
/// [`Linked`], for more than one).
pub(super) fn instructions(
    object: &[u8],
    ebpf: &Ebpf,
    events_fd: Option<RawFd>,
    name: &str,
) -> Result<Program, RawProgError> {
    Linked::new(object, ebpf, events_fd)?.program(name)
}

/// `r0 = 0; exit`: a program any program type's verifier accepts. A
/// kernel that refuses a whole kind of program (fentry, fexit on a
/// program: no trampolines, or a policy) refuses this one too, so a probe
/// loads it before it makes a tracer object's maps for the real program.
pub(super) fn minimal_program() -> Program {
    let insn = |code: u8| bpf_insn {
        code,
        _bitfield_align_1: [],
        _bitfield_1: bpf_insn::new_bitfield_1(0, 0),
        off: 0,
        imm: 0,
    };
    // BPF_ALU64 | BPF_MOV | BPF_K, then BPF_JMP | BPF_EXIT.
    Program {
        name: "probe_minimal".into(),
        insns: vec![insn(0xb7), insn(0x95)],
        license: "GPL".into(),
    }
}

/// How a program is loaded: its type, expected attach type and, for a
/// tracing program, the BTF id of the function it attaches to.
#[derive(Clone, Copy)]
pub(super) struct Kind {
    /// `bpf_prog_type`.
    pub prog_type: bpf_prog_type,
    /// `bpf_attach_type`.
    pub attach: bpf_attach_type,
    /// The target function's id in the kernel's BTF (fentry), else 0.
    pub btf_id: u32,
    /// The module's BTF object holding `btf_id`, for a module's function.
    pub btf_obj: Option<RawFd>,
}

/// Loads `program` as `kind`; a verifier refusal is reported with its key
/// line.
pub(super) fn load(program: &Program, kind: Kind) -> Result<OwnedFd, RawProgError> {
    let Program {
        name,
        insns,
        license,
    } = program;
    let license =
        CString::new(license.as_str()).map_err(|_| RawProgError::Licence(name.clone()))?;
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = zeroed_attr();
        // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
        let a = unsafe { &mut attr.__bindgen_anon_3 };
        a.prog_type = kind.prog_type as u32;
        a.expected_attach_type = kind.attach as u32;
        a.attach_btf_id = kind.btf_id;
        if let Some(fd) = kind.btf_obj {
            a.__bindgen_anon_1.attach_btf_obj_fd = fd as u32;
        }
        a.insns = insns.as_ptr() as u64;
        a.insn_cnt = insns.len() as u32;
        a.license = license.as_ptr() as u64;
        for (dst, src) in a.prog_name.iter_mut().zip(name.bytes().take(15)) {
            *dst = src as libc::c_char;
        }
        if let Some(buf) = log {
            a.log_level = 1;
            a.log_buf = buf.as_mut_ptr() as u64;
            a.log_size = buf.len() as u32;
        }
        bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    attempt(None).or_else(|e| {
        // A refusal before the verifier runs (EPERM: fentry or fexit on a
        // kernel that forbids them, lockdown) has no log to read: not
        // loaded again, which would zero a 1 MiB buffer for nothing.
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(RawProgError::Refused {
                program: name.clone(),
                source: e,
            });
        }
        // Loaded again with a log only on failure: the log costs time.
        let mut buf = vec![0u8; 1 << 20];
        let again = attempt(Some(&mut buf));
        // The kernel writes a NUL-terminated log into the 1 MiB buffer:
        // only that much is text (a refusal before the verifier runs, as
        // fentry's EPERM on kernels without it, writes none).
        let used = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let text = String::from_utf8_lossy(&buf[..used]);
        match (again, crate::common::verifier::verifier_key_line(&text)) {
            (Ok(fd), _) => Ok(fd),
            (Err(_), Some(line)) => Err(RawProgError::Verifier {
                program: name.clone(),
                line: line.clone(),
                source: e,
            }),
            (Err(_), None) => Err(RawProgError::Refused {
                program: name.clone(),
                source: e,
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probes' pre-check program must be one the verifier accepts, or
    /// a kernel with fentry would be said to refuse it: loaded here as a
    /// socket filter, which every kernel has.
    #[test]
    fn the_minimal_program_is_accepted_by_the_verifier() {
        let p = minimal_program();
        assert_eq!(p.insns.len(), 2);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let kind = Kind {
            prog_type: bpf_prog_type::BPF_PROG_TYPE_SOCKET_FILTER,
            attach: bpf_attach_type::BPF_CGROUP_INET_INGRESS,
            btf_id: 0,
            btf_obj: None,
        };
        load(&p, kind).expect("r0 = 0; exit is a valid program");
    }
}
