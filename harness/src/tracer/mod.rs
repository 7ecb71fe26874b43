//! The kernel tracer: what it watches, and the events it reports.
//!
//! A [`Tracer`] is started with a [`TraceSpec`] (namespaces and packet
//! filters) on a [`Backend`]: scenarios share one loaded tracer per process
//! ([`shared`]), `pktfate trace` loads its own. The one backend today is
//! [`raw_tp::RawTp`]: raw tracepoints on the skb lifecycle plus the kernel
//! stack at each event. Kernel functions, when a scenario needs them, are
//! probed on top of it (`functions` picks them and the mechanism:
//! [`kprobe_multi`], [`kprobe`] or [`fentry`]), into the same maps and ring buffer, as the same [`RawEvent`]s.

mod backend;
pub mod btf;
pub mod kallsyms;
mod functions;
mod probe;
pub mod nftrace;
pub mod kprobe;
pub mod kprobe_multi;
pub mod fentry;
pub mod prog_return;
mod rawprog;
#[cfg(test)]
mod object_tests;
pub mod offsets;
pub mod reasons;
pub mod shared;
pub mod raw_tp;

use std::net::IpAddr;
use std::time::Duration;

use crate::abi::{Event, hook};
pub use crate::common::Hook;

pub use backend::*;
pub use fentry::FentryError;
pub use kprobe::KprobeError;
pub use kprobe_multi::KprobeMultiError;
pub use probe::ProbeMechanism;
pub use prog_return::{ProgReturnError, ProgTarget, WatchedProgram};
pub use rawprog::RawProgError;
pub use reasons::DropReasons;

use crate::tracer::kallsyms::Kallsyms;

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

/// A running tracer.
pub struct Tracer {
    backend: Box<dyn Backend>,
    reasons: DropReasons,
}

impl Tracer {
    /// Starts the default backend for this kernel.
    pub fn start(spec: &TraceSpec) -> Result<Self, TracerError> {
        let btf = crate::tracer::btf::Btf::kernel()?;
        let reasons = DropReasons::kernel()?;
        let backend = raw_tp::RawTp::start(spec, &btf)?;
        Ok(Self {
            backend: Box::new(backend),
            reasons,
        })
    }

    /// A scenario's view of the process's shared tracer (loaded by the
    /// first scenario, then only its maps change): events of `spec`'s
    /// namespaces only. `spec.netns` must not be empty.
    pub fn for_scenario(spec: &TraceSpec) -> Result<Self, TracerError> {
        let reasons = DropReasons::kernel()?;
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
        let programs = self.backend.programs();
        Ok(events
            .iter()
            .map(|e| {
                let mut ev = RawEvent::decode(e, &k, &self.reasons);
                ev.program = ProgramRun::of(e, &programs);
                ev
            })
            .collect())
    }

    /// Whether drops carry their reason (`kfree_skb`'s reason argument,
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

/// One route lookup in one table, as the fib tracepoints report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteLookup {
    /// The table consulted.
    pub table: u32,
    /// What it returned.
    pub result: crate::scenario::RouteResult,
    /// The result's gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The result's device (index in the lookup's namespace), 0 for none.
    pub oif: u32,
    /// The source looked up (unspecified for an output lookup that has
    /// not chosen one).
    pub src: IpAddr,
    /// The destination looked up.
    pub dst: IpAddr,
}

impl RouteLookup {
    /// As the timeline shows it: table, flow, result, gateway and the
    /// result's device, named by the caller.
    pub fn describe(&self, dev: Option<&str>) -> String {
        let via = self
            .gateway
            .map(|g| format!(" via {g}"))
            .unwrap_or_default();
        let dev = dev.map(|d| format!(" dev {d}")).unwrap_or_default();
        format!(
            "table {} {}->{}: {}{via}{dev}",
            self.table, self.src, self.dst, self.result
        )
    }

    /// The lookup an event reports, for the fib hooks.
    fn decode(e: &Event) -> Option<Self> {
        use crate::scenario::RouteResult;
        let v4 = |b: &[u8; 16]| IpAddr::from([b[0], b[1], b[2], b[3]]);
        let (src, dst, result) = match e.hook {
            hook::FIB_TABLE_LOOKUP => (
                v4(&e.flow_saddr),
                v4(&e.flow_daddr),
                RouteResult::from_ipv4(e.aux[1], e.route_type),
            ),
            hook::FIB6_TABLE_LOOKUP => (
                IpAddr::from(e.flow_saddr),
                IpAddr::from(e.flow_daddr),
                RouteResult::from_rtn(e.route_type).unwrap_or(RouteResult::Error),
            ),
            _ => return None,
        };
        // AF_INET, AF_INET6.
        let gateway = match e.gw_family {
            2 => Some(v4(&e.gw)),
            10 => Some(IpAddr::from(e.gw)),
            _ => None,
        };
        // No route here: the device and gateway are the null entry's.
        let none = result == RouteResult::NoRoute;
        Some(Self {
            table: e.aux[0] as u32,
            result,
            gateway: gateway.filter(|_| !none),
            oif: if none { 0 } else { e.aux[2] as u32 },
            src,
            dst,
        })
    }
}

/// One run of a scenario's own tc or XDP program on the packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProgramRun {
    /// The program, as the scenario attached it.
    #[serde(flatten)]
    pub at: crate::scenario::ProgramRef,
    /// What it returned.
    pub returned: crate::scenario::ReturnCode,
}

impl ProgramRun {
    /// The run a `prog_return` event reports, by its slot among the run's
    /// watched programs.
    fn of(e: &Event, watched: &[WatchedProgram]) -> Option<Self> {
        if e.hook != hook::PROG_RETURN {
            return None;
        }
        let slot = e.aux[2] as u32;
        let w = watched.iter().find(|w| w.slot == slot)?;
        Some(Self {
            at: w.at.clone(),
            returned: crate::scenario::ReturnCode {
                hook: w.at.hook,
                code: e.aux[0],
            },
        })
    }

    /// As the timeline shows it.
    pub fn describe(&self) -> String {
        format!("{} returned {}", self.at, self.returned)
    }
}

/// An event decoded from the kernel ABI, with symbols resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RawEvent {
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// skb address.
    pub skb: u64,
    /// Where it was observed.
    pub hook: Hook,
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
    /// skb priority.
    pub priority: u32,
    /// The VLAN tag the skb carries out of band (`vlan_tci`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_tci: Option<u16>,
    /// The skb's checksum state, where the kernel's BTF locates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_summed: Option<crate::scenario::IpSummed>,
    /// Drop reason name (`kfree_skb`), reset reason number (`tcp_send_reset`).
    pub reason: Option<String>,
    /// Function that dropped or consumed the skb (`kfree_skb/consume_skb`).
    pub at: Option<String>,
    /// Hook-specific values (see [`crate::abi::hook`]).
    pub aux: [i32; 3],
    /// Packet headers at this point.
    pub packet: PacketInfo,
    /// Route lookups (`fib_table_lookup`, `fib6_table_lookup`): what was
    /// looked up and what it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteLookup>,
    /// A scenario program's return (`prog_return`): which program, what
    /// it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramRun>,
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
            hook: Hook::from_abi(e.hook, || backend::intern(k.name(e.location)))
                .unwrap_or(Hook::Function("?")),
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
            priority: e.priority,
            vlan_tci: (e.skb_flags & crate::abi::SKB_VLAN_PRESENT != 0).then_some(e.vlan_tci),
            ip_summed: (e.skb_flags & crate::abi::SKB_SUMMED_KNOWN != 0)
                .then(|| crate::scenario::IpSummed::from_bits(e.skb_flags)),
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
            route: RouteLookup::decode(e),
            program: None,
            stack,
            bytes: e.pkt[..(e.pkt_len as usize).min(e.pkt.len())].to_vec(),
            ip_len: e.ip_len,
        }
    }

    /// Whether this event ends the skb's life.
    pub fn is_terminal(&self) -> bool {
        self.hook.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{FILTER_DADDR, FILTER_REVERSE, FILTER_SADDR, PacketFilter};

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
            nat_reply: false,
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
        // A DNAT's reply, still from the pod (192.0.2.9:8080), and an
        // SNAT's, to the node's new source: replies by their halves only.
        let [to_source, from_destination] = f.nat_replies();
        assert_eq!(
            to_source.direction(&pkt("192.0.2.9", "192.0.2.1", 8080, 1000)),
            Some(true)
        );
        assert_eq!(
            from_destination.direction(&pkt("198.51.100.1", "203.0.113.7", 80, 40000)),
            Some(true)
        );
        // The forward packet matches neither half.
        assert_eq!(
            to_source.direction(&pkt("192.0.2.1", "198.51.100.1", 1000, 80)),
            None
        );
        assert_eq!(
            from_destination.direction(&pkt("192.0.2.1", "198.51.100.1", 1000, 80)),
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
