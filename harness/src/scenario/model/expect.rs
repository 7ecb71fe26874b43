//! What a packet should do: fate, reason, path, and per-kernel overrides.

use std::fmt;
use std::net::IpAddr;

use super::*;
use crate::scenario::Location;
use crate::scenario::kernel_range::{KernelRange, Version};

/// What the packet should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// Freed with a drop reason (`kfree_skb`).
    Dropped,
    /// Taken by a socket.
    Delivered,
    /// Routed through `ip_forward`/`ip6_forward` and transmitted.
    Forwarded,
    /// Freed as consumed (`consume_skb`).
    Consumed,
}

impl Fate {
    /// All fates, for messages.
    pub const ALL: [&'static str; 4] = ["dropped", "delivered", "forwarded", "consumed"];

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "dropped" => Fate::Dropped,
            "delivered" => Fate::Delivered,
            "forwarded" => Fate::Forwarded,
            "consumed" => Fate::Consumed,
            _ => return None,
        })
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fate::Dropped => "dropped",
            Fate::Delivered => "delivered",
            Fate::Forwarded => "forwarded",
            Fate::Consumed => "consumed",
        })
    }
}

/// One step of an expected path: a function or hook, optionally only in a
/// namespace and on a device (`netif_receive_skb@router/veth1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    /// Function or hook name.
    pub func: String,
    /// Namespace qualifier.
    pub ns: Option<String>,
    /// Device qualifier.
    pub dev: Option<String>,
    /// Kernels the step applies to (`... (kernel >= 6.10)`); all when absent.
    pub kernel: Option<KernelRange>,
}

impl fmt::Display for PathStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.func)?;
        match (&self.ns, &self.dev) {
            (Some(n), Some(d)) => write!(f, "@{n}/{d}")?,
            (Some(n), None) => write!(f, "@{n}")?,
            _ => {}
        }
        match &self.kernel {
            Some(k) => write!(f, " (kernel {k})"),
            None => Ok(()),
        }
    }
}

/// Keys of an `expect` block replaced, on kernels in `range`, by the
/// values an entry of its `kernels:` map gives.
#[derive(Debug, Clone)]
pub struct KernelOverride {
    /// The kernels it applies to.
    pub range: KernelRange,
    /// The replacement values; only the keys in `keys` are used.
    pub expect: Expectation,
    /// The keys the entry sets.
    pub keys: Vec<&'static str>,
}

/// Expectations about one packet.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// Fate.
    pub fate: Option<Fate>,
    /// Drop reason, canonical short name once checked against the kernel.
    pub reason: Option<String>,
    /// Where `reason` was written.
    pub reason_loc: Option<Location>,
    /// Function that freed the skb.
    pub at: Option<String>,
    /// Ordered subsequence of steps.
    pub path: Vec<PathStep>,
    /// Header fields the packet carries at given steps.
    pub seen: Vec<Seen>,
    /// Expectations on the first packet flowing back (the kernel's reply).
    pub reply: Option<Box<Expectation>>,
    /// Steps that must not appear in the packet's path.
    pub not_path: Vec<PathStep>,
    /// An ICMP/ICMPv6 error the kernel must have generated for the packet.
    pub icmp: Option<IcmpError>,
    /// Devices (`ns/dev`, or `ns`) the packet must have been transmitted on.
    pub transmitted: Vec<DeviceRef>,
    /// Fail on any drop of a scenario packet not expected or allowed.
    pub no_unexpected_drops: bool,
    /// Drop reasons `no_unexpected_drops` tolerates.
    pub allow_drops: Vec<String>,
    /// Netfilter decisions: the deciding rule, chains, rules not matched.
    pub netfilter: Option<NetfilterExpect>,
    /// Conntrack entries namespaces must hold at the end of the run.
    pub conntrack: Vec<CtWant>,
    /// Route lookups the packet must have caused, in this order (others
    /// may come between).
    pub routes: Vec<RouteWant>,
    /// Runs of the scenario's own tc/XDP programs the packet must have
    /// had, with what they returned, in this order (others may come
    /// between).
    pub programs: Vec<ProgramWant>,
    /// Per-kernel replacements, in file order (a later match wins).
    pub kernels: Vec<KernelOverride>,
}

impl Expectation {
    /// These expectations as they stand on kernel `v`: `kernels:` entries
    /// whose range holds `v` applied in order, and path steps qualified
    /// with another kernel range dropped.
    pub fn for_kernel(&self, v: Version) -> Expectation {
        let mut e = self.clone();
        for o in &self.kernels {
            if !o.range.contains(v) {
                continue;
            }
            let x = o.expect.clone();
            for key in &o.keys {
                match *key {
                    "fate" => e.fate = x.fate,
                    "reason" => {
                        e.reason = x.reason.clone();
                        e.reason_loc = x.reason_loc.clone();
                    }
                    "at" => e.at = x.at.clone(),
                    "path" => e.path = x.path.clone(),
                    "seen" => e.seen = x.seen.clone(),
                    "reply" => e.reply = x.reply.clone(),
                    "not_path" => e.not_path = x.not_path.clone(),
                    "icmp" => e.icmp = x.icmp,
                    "transmitted" => e.transmitted = x.transmitted.clone(),
                    "no_unexpected_drops" => e.no_unexpected_drops = x.no_unexpected_drops,
                    "allow_drops" => e.allow_drops = x.allow_drops.clone(),
                    "netfilter" => e.netfilter = x.netfilter.clone(),
                    "conntrack" => e.conntrack = x.conntrack.clone(),
                    "routes" => e.routes = x.routes.clone(),
                    "programs" => e.programs = x.programs.clone(),
                    _ => {}
                }
            }
        }
        e.kernels.clear();
        let applies = |s: &PathStep| s.kernel.as_ref().is_none_or(|k| k.contains(v));
        e.path.retain(applies);
        e.not_path.retain(applies);
        e.seen.retain(|s| applies(&s.at));
        e.reply = e.reply.map(|r| Box::new(r.for_kernel(v)));
        e
    }
}

/// An expected ICMP error (type, and code when given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// ICMP type (`ICMPv6` type for IPv6 packets).
    pub kind: u8,
    /// Code.
    pub code: Option<u8>,
}

/// A counter delta to check, e.g. `IpExtInNoRoutes: +1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    /// Namespace.
    pub ns: String,
    /// Counter name as nstat spells it (`IpExtInNoRoutes`, `Ip6OutNoRoutes`).
    pub name: String,
    /// How it must change.
    pub delta: Delta,
}

/// A counter change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// Exactly this much.
    Exactly(i64),
    /// At least this much.
    AtLeast(i64),
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delta::Exactly(n) => write!(f, "{n:+}"),
            Delta::AtLeast(n) => write!(f, ">={n:+}"),
        }
    }
}

/// What a scenario needs of the machine; when absent it is skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requires {
    /// Minimum kernel version (`6.8`, `5.17.0`).
    pub kernel: Option<(u32, u32, u32)>,
    /// Drop reasons the kernel must know.
    pub reasons: Vec<String>,
    /// Programs that must be on PATH.
    pub tools: Vec<String>,
    /// Function-level tracing (kprobes on functions taking an skb), for
    /// paths through functions no tracepoint stack shows.
    pub functions: bool,
    /// What its own eBPF programs return (fexit on BPF programs), for a
    /// packet only a program's return shows (a native XDP drop).
    pub program_returns: bool,
}

/// Header fields expected at a step; absent fields are not checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The step (function or hook, optionally `@ns/dev`).
    pub at: PathStep,
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// TTL / hop limit.
    pub ttl: Option<u8>,
    /// The skb's mark.
    pub mark: Option<u32>,
    /// The skb's length (`skb->len`: from the MAC header while it is being
    /// sent, from the network header once received).
    pub len: Option<u32>,
    /// The packet a VXLAN or Geneve packet carries, and the tunnel's VNI.
    pub inner: Option<InnerWant>,
    /// The skb's priority.
    pub priority: Option<u32>,
    /// The VLAN tag the packet carries (in the data, or out of band in
    /// `skb->vlan_tci`).
    pub vlan: Option<VlanWant>,
    /// The skb's checksum state.
    pub ip_summed: Option<IpSummed>,
}

/// The VLAN tag a packet must carry at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanWant {
    /// No tag.
    Untagged,
    /// A tag with this VLAN id.
    Id(u16),
}

impl VlanWant {
    /// Whether a packet with tag `tci` (none: `None`) is what this asks.
    pub fn holds(self, tci: Option<u16>) -> bool {
        match self {
            VlanWant::Untagged => tci.is_none(),
            VlanWant::Id(id) => tci.map(|t| t & 0xfff) == Some(id),
        }
    }
}

impl fmt::Display for VlanWant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanWant::Untagged => f.write_str("no vlan"),
            VlanWant::Id(id) => write!(f, "vlan {id}"),
        }
    }
}

/// The inner packet a tunnel packet must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerWant {
    /// Its addresses, ports and protocol.
    pub tuple: CtTupleWant,
    /// The tunnel's VNI.
    pub vni: Option<u32>,
}

impl fmt::Display for InnerWant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inner {}", self.tuple)?;
        if let Some(v) = self.vni {
            write!(f, " vni {v}")?;
        }
        Ok(())
    }
}
