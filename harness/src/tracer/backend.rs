//! What every backend shares: the trace request (namespaces, flow
//! filters, tc hooks), the `Backend` trait, what was attached or skipped,
//! and the tracer's errors.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::abi::{Event, FILTER_DADDR, FILTER_REVERSE, FILTER_SADDR, PacketFilter};

/// Errors starting or reading the tracer.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    /// Kernel BTF is needed to resolve offsets and choose the tracepoint programs.
    #[error("kernel BTF is unavailable: {0}")]
    Btf(#[from] crate::tracer::btf::BtfError),
    /// The eBPF object failed to load (verifier, permissions).
    #[error("loading the eBPF tracer failed: {msg}")]
    Load {
        /// What failed, and the kernel's words.
        msg: String,
        /// The system's refusal underneath, when there was one (EPERM
        /// without `CAP_BPF`).
        #[source]
        os: Option<std::io::Error>,
    },
    /// A program failed to attach to its tracepoint (or kprobes).
    #[error("attaching the tracer to `{hook}` failed: {source}")]
    Attach {
        /// The tracepoint.
        hook: String,
        /// Why.
        source: HookError,
    },
    /// A map could not be set up or read.
    #[error("tracer map `{map}`: {msg}")]
    Map {
        /// The map.
        map: String,
        /// Why.
        msg: String,
    },
    /// Too many filters or namespaces for one tracer.
    #[error("{0}")]
    Limit(String),
    /// Polling the ring buffer failed.
    #[error("reading tracer events: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a tracer program is not on its hook. Cloned into every scenario's
/// report of skipped hooks, so aya's and the OS errors are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// The kernel's BTF has no such tracepoint.
    #[error("this kernel has no such BTF tracepoint")]
    NoTracepoint,
    /// The tracepoint's prototype is shorter than every program variant.
    #[error("the tracepoint passes {0} arguments, fewer than any program reads")]
    FewerArguments(usize),
    /// The tracer object could not be parsed.
    #[error("the tracer object: {0}")]
    Object(Arc<aya::EbpfError>),
    /// The tracer object lacks the program (a build error of ours).
    #[error("program {0} missing from the tracer object")]
    MissingProgram(String),
    /// The program is not of the type its hook needs (ours too).
    #[error("program {program} has the wrong type: {source}")]
    WrongType {
        /// The program.
        program: String,
        /// aya's error.
        source: Arc<aya::programs::ProgramError>,
    },
    /// The kernel refused to load it (the verifier's line says why).
    #[error("{}", crate::common::verifier::describe(.0))]
    Refused(Arc<aya::programs::ProgramError>),
    /// The kernel refused to attach it.
    #[error("{}", crate::common::verifier::describe(.0))]
    NotAttached(Arc<aya::programs::ProgramError>),
    /// A function-probe mechanism failed.
    #[error(transparent)]
    Probe(Arc<super::FunctionProbeError>),
    /// No function taking an `sk_buff` could be probed.
    #[error("no function taking an sk_buff could be probed")]
    NoFunction,
    /// The thread inside a scenario namespace could not be started.
    #[error("entering the namespace: {0}")]
    Netns(Arc<std::io::Error>),
}

/// Why a function-probe mechanism failed: each mechanism's own error.
#[derive(Debug, thiserror::Error)]
pub enum FunctionProbeError {
    /// Plain kprobes.
    #[error(transparent)]
    Kprobe(#[from] super::kprobe::KprobeError),
    /// kprobe-multi.
    #[error(transparent)]
    KprobeMulti(#[from] super::kprobe_multi::KprobeMultiError),
    /// fentry.
    #[error(transparent)]
    Fentry(#[from] super::fentry::FentryError),
}

impl HookError {
    /// Loading failed (the verifier or a refused `bpf(2)`).
    pub fn refused(e: aya::programs::ProgramError) -> Self {
        HookError::Refused(Arc::new(e))
    }

    /// Attaching failed.
    pub fn not_attached(e: aya::programs::ProgramError) -> Self {
        HookError::NotAttached(Arc::new(e))
    }
}

impl TracerError {
    /// A load failure with no OS error underneath (a missing program or map).
    pub fn load(msg: impl Into<String>) -> Self {
        TracerError::Load {
            msg: msg.into(),
            os: None,
        }
    }

    /// A load failure caused by `err`, keeping the OS error its chain holds.
    pub fn load_from(msg: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Self {
        TracerError::Load {
            msg: msg.into(),
            os: os_error_in(err),
        }
    }

    /// The kernel refused for lack of privilege (EPERM, EACCES): root (or
    /// `CAP_BPF` and `CAP_PERFMON`) is what is missing.
    pub fn denied(&self) -> bool {
        matches!(self, TracerError::Load { os: Some(e), .. }
            if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)))
    }
}

/// The first OS error down `err`'s chain of sources (aya keeps the
/// `bpf(2)` error as the source of its own), as a new `io::Error` with the
/// same errno.
pub fn os_error_in(err: &(dyn std::error::Error + 'static)) -> Option<std::io::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(std::io::Error::from_raw_os_error(code));
        }
        cur = e.source();
    }
    None
}

/// What one packet filter selects. `None`/0 fields are wildcards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowFilter {
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// Also track packets flowing the other way (replies).
    pub reverse: bool,
    /// Instead of the 5-tuple, match ICMP/ICMPv6 errors sent to `dst` (the
    /// packet's source); they count as flowing back.
    pub icmp_error: bool,
    /// A match is a reply whatever its direction: one half of a reversed
    /// tuple, for replies a NAT has not put back yet (see
    /// [`FlowFilter::nat_replies`]).
    pub nat_reply: bool,
}

impl FlowFilter {
    /// The kernel-side representation.
    pub fn to_kernel(&self) -> PacketFilter {
        let mut f = PacketFilter {
            family: 0,
            l4proto: self.proto.unwrap_or(0),
            flags: 0,
            _pad: 0,
            sport: self.sport.unwrap_or(0),
            dport: self.dport.unwrap_or(0),
            saddr: [0; 16],
            daddr: [0; 16],
        };
        if let Some(a) = self.src {
            f.family = family(&a);
            f.saddr = addr16(&a);
            f.flags |= FILTER_SADDR;
        }
        if let Some(a) = self.dst {
            f.family = family(&a);
            f.daddr = addr16(&a);
            f.flags |= FILTER_DADDR;
        }
        if self.reverse {
            f.flags |= FILTER_REVERSE;
        }
        if self.icmp_error {
            f.flags |= crate::abi::FILTER_ICMP_ERROR;
        }
        f
    }

    /// The filter for ICMP errors about packets this filter selects.
    pub fn icmp_errors(&self) -> FlowFilter {
        FlowFilter {
            dst: self.src,
            icmp_error: true,
            ..Default::default()
        }
    }

    /// Filters for the replies of this flow where a NAT rewrote it: the
    /// packets going back to its source (address and port: a DNAT's reply,
    /// from the new destination, before the node reverses it) and those
    /// coming from its destination (an SNAT's reply, to the new source).
    /// Each is half of the reversed tuple; the other half is what the NAT
    /// changed.
    pub fn nat_replies(&self) -> [FlowFilter; 2] {
        [
            FlowFilter {
                proto: self.proto,
                dst: self.src,
                dport: self.sport,
                nat_reply: true,
                ..Default::default()
            },
            FlowFilter {
                proto: self.proto,
                src: self.dst,
                sport: self.dport,
                nat_reply: true,
                ..Default::default()
            },
        ]
    }

    /// Does a packet match, and in which direction? `Some(false)` forward,
    /// `Some(true)` reverse.
    pub fn direction(&self, p: &PacketInfo) -> Option<bool> {
        if self.icmp_error {
            let ok = crate::abi::is_icmp_error(p.proto, p.icmp_type)
                && self.dst.is_none_or(|a| Some(a) == p.dst);
            return ok.then_some(true);
        }
        let fits = |s: Option<IpAddr>, d: Option<IpAddr>, sp: u16, dp: u16| {
            self.proto.is_none_or(|x| x == p.proto)
                && self.src.is_none_or(|a| Some(a) == s)
                && self.dst.is_none_or(|a| Some(a) == d)
                && self.sport.is_none_or(|x| x == sp)
                && self.dport.is_none_or(|x| x == dp)
        };
        if fits(p.src, p.dst, p.sport, p.dport) {
            Some(self.nat_reply)
        } else if self.reverse && fits(p.dst, p.src, p.dport, p.sport) {
            Some(true)
        } else {
            None
        }
    }
}

fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() { 4 } else { 6 }
}

fn addr16(a: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// What to trace.
#[derive(Debug, Clone, Default)]
pub struct TraceSpec {
    /// Network namespace inodes to watch; empty watches every namespace.
    pub netns: Vec<u32>,
    /// Packets to start tracking; empty tracks every IP packet.
    pub filters: Vec<FlowFilter>,
    /// Capture the kernel stack at each event.
    pub stacks: bool,
    /// Where scenario tc programs are attached: the tracer puts its
    /// observer classifier ahead of them.
    pub tc_hooks: Vec<TcHook>,
    /// Also probe the kernel functions that take an `sk_buff` (the
    /// function-level backend), and by which mechanism.
    pub functions: Option<FunctionProbes>,
    /// Which functions, a regular expression (`PKTFATE_FUNCTIONS`);
    /// `None`: the mechanism's own set.
    pub function_pattern: Option<String>,
    /// The scenario's own tc and XDP programs, whose return codes are
    /// watched (fexit on each).
    pub programs: Vec<super::ProgTarget>,
}

/// How kernel functions are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionProbes {
    /// kprobe-multi links where the kernel has them, else plain kprobes.
    Kprobes,
    /// One fentry program per function (BPF trampolines; for kernels
    /// without kprobes).
    Fentry,
}

use crate::common::Hook;
pub use crate::common::config::BackendChoice;

/// Whether this kernel lets kprobes attach (the perf kprobe PMU exists).
pub fn kprobes_available() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

/// A function name as a `&'static str`, for events' hook names. Bounded:
/// only functions the backend probes are ever interned.
pub(super) fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    leaked
}

/// A clsact hook with a scenario tc program on it.
#[derive(Debug, Clone)]
pub struct TcHook {
    /// The namespace file.
    pub netns: std::path::PathBuf,
    /// Device.
    pub dev: String,
    /// Ingress (true) or egress.
    pub ingress: bool,
}

/// A hook the tracer attached, and the program variant it chose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttachedHook {
    /// The hook.
    pub hook: Hook,
    /// The program variant that matched the kernel's prototype.
    pub program: &'static str,
}

/// An optional hook the tracer went without on this kernel, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedHook {
    /// The hook.
    pub hook: Hook,
    /// Why: absent from this kernel, prototype too short, verifier refusal.
    #[serde(serialize_with = "as_text")]
    pub why: HookError,
}

/// An error in a report: its message.
fn as_text<S: serde::Serializer>(e: &HookError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

/// A source of tracer events for one [`TraceSpec`].
pub trait Backend: Send {
    /// Short name for reports (`raw_tp`).
    fn name(&self) -> &'static str;
    /// Hooks that are attached, with the program variant of each.
    fn attached(&self) -> Vec<AttachedHook>;
    /// Names of the hooks that are attached.
    fn hooks(&self) -> Vec<&'static str> {
        self.attached().iter().map(|a| a.hook.name()).collect()
    }
    /// Optional hooks this kernel could not have, and why.
    fn skipped(&self) -> Vec<SkippedHook>;
    /// Kernel functions probed (function-level backend), 0 when none.
    fn functions(&self) -> usize {
        0
    }
    /// By which mechanism they were probed, when they were.
    fn function_mechanism(&self) -> Option<super::ProbeMechanism> {
        None
    }
    /// Why kprobe-multi was not the mechanism, on a kernel with kprobes.
    fn function_fallback(&self) -> Option<String> {
        None
    }
    /// Functions that could not be probed (a module's), and why.
    fn function_problems(&self) -> Vec<String> {
        vec![]
    }
    /// How long attaching the function-level probes took (zero when none).
    fn function_attach(&self) -> Duration {
        Duration::ZERO
    }
    /// The scenario programs whose returns this backend watches (or tried
    /// to), by slot.
    fn programs(&self) -> Vec<super::WatchedProgram> {
        vec![]
    }
    /// Waits up to `timeout` for events; returns those available.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, TracerError>;
    /// Events the kernel side could not deliver (ring buffer full).
    fn lost(&self) -> Result<u64, TracerError>;
}

/// L3/L4 facts about the packet at an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PacketInfo {
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// IP protocol.
    pub proto: u8,
    /// TCP/UDP source port.
    pub sport: u16,
    /// TCP/UDP destination port.
    pub dport: u16,
    /// TCP flags byte.
    pub tcp_flags: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// ICMP echo id.
    pub icmp_id: u16,
    /// TCP sequence number.
    pub tcp_seq: u32,
}

impl PacketInfo {
    /// Compact tuple text, pwru-style: `10.0.0.1:1234->10.0.0.2:80(tcp S)`.
    pub fn tuple(&self) -> String {
        let (Some(s), Some(d)) = (self.src, self.dst) else {
            return "-".into();
        };
        let addr = |a: IpAddr, p: u16| match (a, p) {
            (IpAddr::V6(_), 0) => format!("[{a}]"),
            (IpAddr::V6(_), p) => format!("[{a}]:{p}"),
            (_, 0) => a.to_string(),
            (_, p) => format!("{a}:{p}"),
        };
        match self.proto {
            6 => format!(
                "{}->{}(tcp {})",
                addr(s, self.sport),
                addr(d, self.dport),
                tcp_flags(self.tcp_flags)
            ),
            17 => format!("{}->{}(udp)", addr(s, self.sport), addr(d, self.dport)),
            1 | 58 => format!(
                "{}->{}(icmp{} {}/{} id {})",
                addr(s, 0),
                addr(d, 0),
                if self.proto == 58 { "6" } else { "" },
                self.icmp_type,
                self.icmp_code,
                self.icmp_id
            ),
            p => format!("{}->{}(proto {p})", addr(s, 0), addr(d, 0)),
        }
    }
}

/// TCP flags as letters: `S`, `SA`, `R`, `F`, `P`, `.` for ACK alone.
pub fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, 'A'),
        (0x20, 'U'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { "-".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_refusal_keeps_its_os_error_under_its_words() {
        let e = crate::tracer::FunctionProbeError::from(crate::tracer::FentryError::Target {
            function: "br_forward".into(),
            source: Box::new(crate::tracer::FentryError::Attach(
                std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            )),
        });
        assert_eq!(
            e.to_string(),
            format!(
                "br_forward: attaching: {}",
                std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)
            )
        );
        // The errno is found by type, down the chain, not in the words.
        let os = os_error_in(&e).unwrap();
        assert_eq!(os.raw_os_error(), Some(libc::EOPNOTSUPP));
    }
}
