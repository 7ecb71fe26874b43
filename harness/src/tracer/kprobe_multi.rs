//! kprobe-multi links (fprobe; Linux 5.18+ built with `CONFIG_FPROBE`):
//! one link over every function passing an skb, with its argument's
//! position as each function's cookie, attached in one system call where
//! plain kprobes need a perf event each (~5 ms natively, ~200 ms under
//! emulation).
//!
//! aya 0.14 loads a kprobe program without an expected attach type, and
//! the kernel links only programs loaded as `BPF_TRACE_KPROBE_MULTI`. So
//! the program is taken from the tracer object with aya-obj, its map
//! references are pointed at the maps aya already created (the ones the
//! tracepoint programs share), and it is loaded and linked here.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type};

use super::TracerError;

/// The loaded program and its links (closing a link detaches it).
pub(super) struct Links {
    name: String,
    prog: OwnedFd,
    links: Vec<OwnedFd>,
}

/// The `bpf(2)` system call.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    // SAFETY: attr is a valid, zero-initialised bpf_attr of the size given;
    // the commands used here return a new descriptor or -1.
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
    // SAFETY: a successful BPF_PROG_LOAD or BPF_LINK_CREATE returns a new
    // descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

fn zeroed_attr() -> bpf_attr {
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

/// Program `name` of `object`, linked (its calls resolved) and with its
/// map references set to `ebpf`'s maps and to `EVENTS` (the ring buffer,
/// when taken out of `ebpf`).
pub(super) fn instructions(
    object: &[u8],
    ebpf: &Ebpf,
    events_fd: Option<RawFd>,
    name: &str,
) -> Result<Program, TracerError> {
    let err = |e: String| TracerError::Load(format!("kprobe-multi program: {e}"));
    let mut obj = aya_obj::Object::parse(object).map_err(|e| err(e.to_string()))?;
    let mut fds: Vec<(String, RawFd)> = ebpf
        .maps()
        .map(|(name, m)| (name.to_string(), map_data(m).fd().as_fd().as_raw_fd()))
        .collect();
    if let Some(fd) = events_fd {
        fds.push(("EVENTS".into(), fd));
    }
    let maps = obj.maps.clone();
    let mut with_defs = Vec::new();
    for (name, fd) in &fds {
        let def = maps
            .get(name)
            .ok_or_else(|| err(format!("map {name} is not in the object")))?;
        with_defs.push((name.as_str(), *fd, def));
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(with_defs.into_iter(), &text_sections)
        .map_err(|e| err(e.to_string()))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| err(e.to_string()))?;
    let prog = obj
        .programs
        .get(name)
        .ok_or_else(|| err(format!("program {name} missing")))?;
    Ok(Program {
        name: name.to_string(),
        insns: obj.functions[&prog.function_key()].instructions.clone(),
        license: prog.license.to_string_lossy().into_owned(),
    })
}

/// Loads one program as `BPF_TRACE_KPROBE_MULTI`; a verifier refusal is
/// reported with its key line.
pub(super) fn load(name: &str, insns: &[bpf_insn], license: &str) -> Result<OwnedFd, String> {
    let license = CString::new(license).map_err(|e| e.to_string())?;
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = zeroed_attr();
        // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
        let a = unsafe { &mut attr.__bindgen_anon_3 };
        a.prog_type = bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32;
        a.expected_attach_type = bpf_attach_type::BPF_TRACE_KPROBE_MULTI as u32;
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
        // Loaded again with a log only on failure: the log costs time.
        let mut buf = vec![0u8; 1 << 20];
        let again = attempt(Some(&mut buf));
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\0');
        match (again, crate::common::verifier::verifier_key_line(text)) {
            (Ok(fd), _) => Ok(fd),
            (Err(_), Some(line)) => Err(format!("the verifier refused {name} ({e}): {line}")),
            (Err(_), None) => Err(format!("loading {name} failed: {e}")),
        }
    })
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
    pub(super) fn load(program: &Program) -> Result<Self, String> {
        Ok(Self {
            name: program.name.clone(),
            prog: load(&program.name, &program.insns, &program.license)?,
            links: Vec::new(),
        })
    }

    /// Links the program to `functions` (each with the position of its skb
    /// argument) in one link; returns how many, or why kprobe-multi cannot
    /// take them.
    pub(super) fn link(&mut self, functions: &[(String, usize)]) -> Result<usize, String> {
        if functions.is_empty() {
            return Ok(0);
        }
        let name = &self.name;
        let l = link(&self.prog, functions).map_err(|e| match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => {
                "this kernel has no kprobe-multi links (EOPNOTSUPP: CONFIG_FPROBE off)".to_string()
            }
            Some(libc::EINVAL) => format!(
                "the kernel refused a kprobe-multi link for {name} (EINVAL; they exist from Linux 5.18)"
            ),
            Some(libc::ESRCH) => format!(
                "one of {} functions is not in kallsyms (ESRCH)",
                functions.len()
            ),
            _ => format!("linking {name} to {} functions: {e}", functions.len()),
        })?;
        self.links.push(l);
        Ok(functions.len())
    }
}

/// Whether this kernel loads and links a kprobe-multi program (to
/// `ip_rcv`) from the tracer `object`, for `pktfate doctor`: the same
/// path the backend takes.
pub fn probe(object: &[u8]) -> Result<(), String> {
    let ebpf = aya::EbpfLoader::new()
        .load(object)
        .map_err(|e| format!("{e:#}"))?;
    let program = instructions(object, &ebpf, None, crate::abi::KPROBE_MULTI_PROGRAM)
        .map_err(|e| e.to_string())?;
    Links::load(&program)?
        .link(&[("ip_rcv".to_string(), 0)])
        .map(drop)
}
