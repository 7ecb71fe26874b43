//! The kernel tracer: what it watches, and the events it reports.
//!
//! A [`Tracer`] is started with a [`TraceSpec`] (namespaces and packet
//! filters) on a [`Backend`]: scenarios share one loaded tracer per process
//! ([`shared`]), `pktfate trace` loads its own. The one backend today is [`tp_btf::TpBtf`]:
//! BTF tracepoints on the skb lifecycle plus the kernel stack at each event.
//! A kprobe or fentry backend, where a kernel allows one, implements the same
//! trait and produces the same [`RawEvent`]s.

pub mod offsets;
pub mod reasons;
pub mod shared;
pub mod tp_btf;

use std::net::IpAddr;
use std::time::Duration;

use crate::abi::{Event, FILTER_DADDR, FILTER_REVERSE, FILTER_SADDR, PacketFilter, hook};

pub use reasons::DropReasons;

use crate::kallsyms::Kallsyms;

// The ABI file is core-only (the tracer compiles it too), so the aya
// marker impls for the structs that go into maps live here.
// SAFETY: plain-old-data: repr(C), integers and arrays of integers only.
unsafe impl aya::Pod for crate::abi::Event {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::abi::PacketFilter {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::abi::TracerConfig {}
// SAFETY: repr(C), two u32s, no padding.
unsafe impl aya::Pod for crate::abi::Watch {}

/// Errors starting or reading the tracer.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    /// Kernel BTF is needed to resolve offsets and attach tp_btf programs.
    #[error("kernel BTF is unavailable: {0}")]
    Btf(#[from] crate::btf::BtfError),
    /// The eBPF object failed to load (verifier, permissions).
    #[error("loading the eBPF tracer failed: {0}")]
    Load(String),
    /// A program failed to attach to its tracepoint (or kprobes).
    #[error("attaching the tracer to `{hook}` failed: {msg}")]
    Attach {
        /// The tracepoint.
        hook: String,
        /// Why.
        msg: String,
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
            Some(false)
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
    /// Also probe every kernel function that takes an `sk_buff` (the
    /// function-level backend; needs kprobes).
    pub functions: bool,
}

/// Which tracer backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Tracepoints, plus kprobes for scenarios that ask for functions
    /// (`requires: {functions: true}`) where the kernel has kprobes.
    #[default]
    Auto,
    /// Tracepoints only.
    Tracepoint,
    /// Tracepoints plus a kprobe on every function taking an `sk_buff`.
    Kprobe,
}

/// Whether this kernel lets kprobes attach (the perf kprobe PMU exists).
pub fn kprobes_available() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

/// A function name as a `&'static str`, for events' hook names. Bounded:
/// only functions the backend probes are ever interned.
fn intern(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
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
    /// Hook (tracepoint) name.
    pub hook: &'static str,
    /// The program variant that matched the kernel's prototype.
    pub program: &'static str,
}

/// An optional hook the tracer went without on this kernel, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedHook {
    /// Hook (tracepoint) name.
    pub hook: &'static str,
    /// Why: absent from this kernel, prototype too short, verifier refusal.
    pub why: String,
}

/// A source of tracer events for one [`TraceSpec`].
pub trait Backend: Send {
    /// Short name for reports (`tp_btf`).
    fn name(&self) -> &'static str;
    /// Hooks that are attached, with the program variant of each.
    fn attached(&self) -> Vec<AttachedHook>;
    /// Names of the hooks that are attached.
    fn hooks(&self) -> Vec<&'static str> {
        self.attached().iter().map(|a| a.hook).collect()
    }
    /// Optional hooks this kernel could not have, and why.
    fn skipped(&self) -> Vec<SkippedHook>;
    /// Kernel functions probed (function-level backend), 0 when none.
    fn functions(&self) -> usize {
        0
    }
    /// Waits up to `timeout` for events and returns those available.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, TracerError>;
    /// Events the kernel side could not deliver (ring buffer full).
    fn lost(&self) -> Result<u64, TracerError>;
}

/// A running tracer.
pub struct Tracer {
    backend: Box<dyn Backend>,
    reasons: DropReasons,
}

impl Tracer {
    /// Starts the default backend for this kernel.
    pub fn start(spec: &TraceSpec) -> Result<Self, TracerError> {
        let btf = crate::btf::Btf::kernel()?;
        let reasons = DropReasons::from_btf(btf)?;
        let backend = tp_btf::TpBtf::start(spec, btf)?;
        Ok(Self {
            backend: Box::new(backend),
            reasons,
        })
    }

    /// A scenario's view of the process's shared tracer (loaded by the
    /// first scenario, then only its maps change): events of `spec`'s
    /// namespaces only. `spec.netns` must not be empty.
    pub fn for_scenario(spec: &TraceSpec) -> Result<Self, TracerError> {
        let btf = crate::btf::Btf::kernel()?;
        let reasons = DropReasons::from_btf(btf)?;
        let run = shared::register(spec)?;
        Ok(Self {
            backend: Box::new(run),
            reasons,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Waits up to `timeout` and decodes the events available.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<RawEvent>, TracerError> {
        let events = self.backend.poll(timeout)?;
        let mut k = Kallsyms::kernel();
        // An address no region holds may be in a module loaded since the
        // table was read: re-read it (when /proc/modules changed) first.
        // The tracer's own JIT frame is always unnamed, so this costs one
        // read of /proc/modules per 200 ms of polling.
        let unnamed = |k: &Kallsyms| {
            events.iter().any(|e| {
                e.location != 0 && k.lookup(e.location).is_none()
                    || e.stack
                        .iter()
                        .take(e.stack_bytes.max(0) as usize / 8)
                        .any(|a| *a >= KERNEL_SPACE && k.lookup(*a).is_none())
            })
        };
        if unnamed(&k) && Kallsyms::refresh_at_most_every(Duration::from_millis(200)) {
            k = Kallsyms::kernel();
        }
        Ok(events
            .iter()
            .map(|e| RawEvent::decode(e, &k, &self.reasons))
            .collect())
    }

    /// Whether drops carry their reason (kfree_skb's reason argument,
    /// from 5.17).
    pub fn drop_reasons_traced(&self) -> bool {
        !self.reasons.is_empty()
            && self
                .backend
                .attached()
                .iter()
                .any(|a| a.program == "kfree_skb")
    }

    /// Events lost in the kernel so far.
    pub fn lost(&self) -> Result<u64, TracerError> {
        self.backend.lost()
    }
}

/// The start of the kernel half of the x86-64 address space.
const KERNEL_SPACE: u64 = 0xffff_8000_0000_0000;

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

/// Frames that belong to the tracing machinery, not to the packet's path.
fn is_tracing_frame(name: &str) -> bool {
    name.starts_with("bpf_prog_")
        || name.starts_with("bpf_trace_run")
        || name.starts_with("__bpf_trace_")
        || name.starts_with("__traceiter_")
        || name.starts_with("bpf_get_stack")
        || name.starts_with("__bpf_get_stack")
        // Unsymbolised addresses at the top of a tracepoint stack are the
        // BPF trampoline/JIT image; kernel code always has a symbol.
        || name.starts_with("0x")
}

/// Functions that free skbs on behalf of their caller.
const FREE_FUNCTIONS: [&str; 12] = [
    "consume_skb",
    "kfree_skb",
    "kfree_skb_reason",
    "sk_skb_reason_drop",
    "__kfree_skb",
    "kfree_skb_list_reason",
    "kfree_skbmem",
    "napi_consume_skb",
    "skb_release_data",
    "__dev_kfree_skb_any",
    "dev_kfree_skb_any_reason",
    "__napi_kfree_skb",
];

/// The function that freed an skb, from the stack at the free: the first
/// frame past the free functions. For kernels whose tracepoint gives no
/// location (`consume_skb` before 6.3).
fn caller_of_free(stack: &[String]) -> Option<String> {
    let mut frames = stack.iter().skip_while(|f| {
        let base = f.split('.').next().unwrap_or(f);
        FREE_FUNCTIONS.contains(&base)
    });
    // Only when the stack started at a free function: otherwise it is not
    // the free's stack and the first frame proves nothing.
    let started_at_free = stack
        .first()
        .is_some_and(|f| FREE_FUNCTIONS.contains(&f.split('.').next().unwrap_or(f)));
    started_at_free.then(|| frames.next().cloned()).flatten()
}

/// An event decoded from the kernel ABI, with symbols resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RawEvent {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// skb address.
    pub skb: u64,
    /// Tracepoint name.
    pub hook: &'static str,
    /// Hook id ([`crate::abi::hook`]).
    #[serde(skip)]
    pub hook_id: u32,
    /// CPU.
    pub cpu: u32,
    /// Process id.
    pub pid: u32,
    /// Process name.
    pub comm: String,
    /// Network namespace inode.
    pub netns: u32,
    /// Device index (in `netns`).
    pub ifindex: u32,
    /// skb mark.
    pub mark: u32,
    /// skb length.
    pub len: u32,
    /// Drop reason name (kfree_skb), reset reason number (tcp_send_reset).
    pub reason: Option<String>,
    /// Function that dropped or consumed the skb (kfree_skb/consume_skb).
    pub at: Option<String>,
    /// Hook-specific values (see [`crate::abi::hook`]).
    pub aux: [i32; 3],
    /// Packet headers at this point.
    pub packet: PacketInfo,
    /// fib_table_lookup: the (source, destination) that was looked up.
    pub flow: Option<(IpAddr, IpAddr)>,
    /// Kernel functions on the stack, innermost first, tracing frames removed.
    pub stack: Vec<String>,
    /// The start of the IP packet (up to 128 bytes), for pcap output.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// The IP packet's full length, from its header.
    #[serde(skip)]
    pub ip_len: u32,
}

impl RawEvent {
    /// Decodes a kernel [`Event`].
    pub fn decode(e: &Event, k: &Kallsyms, reasons: &DropReasons) -> Self {
        let addr = |b: &[u8; 16]| -> Option<IpAddr> {
            match e.family {
                4 => Some(IpAddr::from([b[0], b[1], b[2], b[3]])),
                6 => Some(IpAddr::from(*b)),
                _ => None,
            }
        };
        let n = (e.stack_bytes.max(0) as usize / 8).min(e.stack.len());
        let stack: Vec<String> = e.stack[..n]
            .iter()
            .map(|a| k.name(*a))
            .filter(|f| !is_tracing_frame(f))
            .collect();
        let comm_len = e.comm.iter().position(|&c| c == 0).unwrap_or(e.comm.len());
        let terminal = e.hook == hook::KFREE_SKB || e.hook == hook::CONSUME_SKB;
        Self {
            ts_ns: e.ts_ns,
            skb: e.skb,
            // A probed function's event is named after the function.
            hook: if e.hook == hook::FUNCTION {
                intern(k.name(e.location))
            } else {
                crate::abi::HOOK_NAMES
                    .get(e.hook as usize)
                    .copied()
                    .unwrap_or("?")
            },
            hook_id: e.hook,
            cpu: e.cpu,
            pid: e.pid,
            // tc classifiers cannot see the task: shown as `-`.
            comm: if comm_len == 0 {
                "-".to_string()
            } else {
                String::from_utf8_lossy(&e.comm[..comm_len]).into_owned()
            },
            netns: e.netns,
            ifindex: e.ifindex,
            mark: e.mark,
            len: e.len,
            reason: match e.hook {
                // The kernel's tracepoint passes no reason (before 5.17).
                _ if e.reason == crate::abi::REASON_UNKNOWN => None,
                hook::KFREE_SKB => Some(reasons.display(e.reason)),
                // enum sk_rst_reason: shown by number.
                hook::TCP_SEND_RESET => Some(format!("#{}", e.reason)),
                _ => None,
            },
            at: match (terminal, e.location) {
                _ if e.hook == hook::FUNCTION => None,
                (false, _) => None,
                (true, 0) => caller_of_free(&stack),
                (true, loc) => Some(k.name(loc)),
            },
            aux: e.aux,
            packet: PacketInfo {
                src: addr(&e.saddr),
                dst: addr(&e.daddr),
                proto: e.l4proto,
                sport: e.sport,
                dport: e.dport,
                tcp_flags: e.tcp_flags,
                ttl: e.ttl,
                icmp_type: e.icmp_type,
                icmp_code: e.icmp_code,
                icmp_id: e.icmp_id,
                tcp_seq: e.tcp_seq,
            },
            flow: (e.hook == hook::FIB_TABLE_LOOKUP)
                .then(|| (IpAddr::from(e.flow_saddr), IpAddr::from(e.flow_daddr))),
            stack,
            bytes: e.pkt[..(e.pkt_len as usize).min(e.pkt.len())].to_vec(),
            ip_len: e.ip_len,
        }
    }

    /// Whether this event ends the skb's life.
    pub fn is_terminal(&self) -> bool {
        self.hook_id == hook::KFREE_SKB || self.hook_id == hook::CONSUME_SKB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(src: &str, dst: &str, sport: u16, dport: u16) -> PacketInfo {
        PacketInfo {
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            proto: 6,
            sport,
            dport,
            ..Default::default()
        }
    }

    #[test]
    fn flow_filter_directions() {
        let f = FlowFilter {
            proto: Some(6),
            src: Some("192.0.2.1".parse().unwrap()),
            dst: Some("198.51.100.1".parse().unwrap()),
            sport: Some(1000),
            dport: Some(80),
            reverse: true,
            icmp_error: false,
        };
        let errors = f.icmp_errors();
        let unreach = PacketInfo {
            src: Some("203.0.113.1".parse().unwrap()),
            dst: Some("192.0.2.1".parse().unwrap()),
            proto: 1,
            icmp_type: 3,
            icmp_code: 1,
            ..Default::default()
        };
        assert_eq!(errors.direction(&unreach), Some(true));
        let echo = PacketInfo {
            icmp_type: 8,
            ..unreach.clone()
        };
        assert_eq!(errors.direction(&echo), None, "an echo is no error");
        let elsewhere = PacketInfo {
            dst: Some("192.0.2.9".parse().unwrap()),
            ..unreach
        };
        assert_eq!(errors.direction(&elsewhere), None);
        assert!(errors.to_kernel().flags & crate::abi::FILTER_ICMP_ERROR != 0);
        assert_eq!(
            f.direction(&pkt("192.0.2.1", "198.51.100.1", 1000, 80)),
            Some(false)
        );
        assert_eq!(
            f.direction(&pkt("198.51.100.1", "192.0.2.1", 80, 1000)),
            Some(true)
        );
        assert_eq!(
            f.direction(&pkt("198.51.100.1", "192.0.2.1", 81, 1000)),
            None
        );
        let one_way = FlowFilter {
            reverse: false,
            ..f.clone()
        };
        assert_eq!(
            one_way.direction(&pkt("198.51.100.1", "192.0.2.1", 80, 1000)),
            None
        );
        let k = f.to_kernel();
        assert_eq!(k.family, 4);
        assert_eq!(&k.saddr[..4], &[192, 0, 2, 1]);
        assert_eq!(k.flags, FILTER_SADDR | FILTER_DADDR | FILTER_REVERSE);
        assert_eq!((k.sport, k.dport, k.l4proto), (1000, 80, 6));
    }

    #[test]
    fn tuple_text() {
        let mut p = pkt("192.0.2.1", "198.51.100.1", 1000, 80);
        p.tcp_flags = 0x12;
        assert_eq!(p.tuple(), "192.0.2.1:1000->198.51.100.1:80(tcp SA)");
        let v6 = PacketInfo {
            src: Some("2001:db8::1".parse().unwrap()),
            dst: Some("2001:db8::2".parse().unwrap()),
            proto: 17,
            sport: 53,
            dport: 5353,
            ..Default::default()
        };
        assert_eq!(v6.tuple(), "[2001:db8::1]:53->[2001:db8::2]:5353(udp)");
    }

    #[test]
    fn the_freeing_function_comes_from_the_stack_without_a_location() {
        let frames = |f: &[&str]| f.iter().map(ToString::to_string).collect::<Vec<_>>();
        // consume_skb(skb) on 6.1: the tracepoint fires inside consume_skb,
        // called by icmp_rcv.
        let s = frames(&["consume_skb", "icmp_rcv", "ip_protocol_deliver_rcu"]);
        assert_eq!(caller_of_free(&s).as_deref(), Some("icmp_rcv"));
        let s = frames(&["kfree_skb_reason", "kfree_skb", "tcp_v4_rcv"]);
        assert_eq!(caller_of_free(&s).as_deref(), Some("tcp_v4_rcv"));
        // No stack, or one that does not start at a free: unknown.
        assert_eq!(caller_of_free(&[]), None);
        assert_eq!(caller_of_free(&frames(&["icmp_rcv"])), None);
    }

    #[test]
    fn abi_is_eight_byte_multiple_for_the_ring_buffer() {
        assert_eq!(std::mem::size_of::<Event>() % 8, 0);
        assert_eq!(std::mem::size_of::<PacketFilter>(), 40);
    }
}
