//! Stage 1: scenario file → validated [`Scenario`].
//!
//! Parsing keeps the YAML position of every value a user can get wrong, so
//! each error names `file:line:col` and, where there is an obvious fix, a hint.
//! Unknown keys are errors. Nothing here needs root or a kernel; checks that
//! do (drop-reason names) are in [`Scenario::check_against_kernel`].
//!
//! # Example
//!
//! ```
//! let yaml = r#"
//! namespaces:
//!   host:
//!     links:
//!       - { name: tun0, kind: tun }
//!     addresses:
//!       - { dev: tun0, addr: 192.0.2.1/24 }
//! inject:
//!   via: host/tun0
//!   ipv4: { src: 192.0.2.7, dst: 192.0.2.1, checksum: bad }
//!   tcp: { sport: 1000, dport: 80, flags: [syn] }
//! expect:
//!   fate: dropped
//!   reason: IP_CSUM
//! "#;
//! let s = pktfate::scenario::Scenario::parse("example.yaml".as_ref(), yaml).unwrap();
//! assert_eq!(s.packets.len(), 1);
//! assert_eq!(s.packets[0].expect.reason.as_deref(), Some("IP_CSUM"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::kernel_range::{KernelRange, Version};
use crate::tracer::SkippedHook;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::{LoaderOptions, Spanned};
use serde::Deserialize;

use crate::abi::{MAX_FILTERS, MAX_NETNS};
use crate::text::{clip, did_you_mean};
use crate::tracer::DropReasons;

/// A position in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A mistake in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// Where, when known.
    pub loc: Option<Location>,
    /// The file, always known.
    pub file: PathBuf,
    /// What is wrong.
    pub msg: String,
    /// How to fix it, when there is an obvious fix.
    pub hint: Option<String>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(l) => write!(f, "{l}: {}", self.msg)?,
            None => write!(f, "{}: {}", self.file.display(), self.msg)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Raw serde shapes, mirroring the YAML one to one.
mod raw {
    use super::*;

    pub type S = Spanned<String>;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub name: Option<S>,
        pub description: Option<S>,
        pub namespaces: Option<HashMap<S, Namespace>>,
        pub inject: Option<Inject>,
        pub expect: Option<Expect>,
        pub packets: Option<Vec<Packet>>,
        pub timeout_ms: Option<Spanned<u64>>,
        pub counters: Option<HashMap<S, HashMap<S, S>>>,
        pub requires: Option<Requires>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Namespace {
        #[serde(default)]
        pub links: Vec<Link>,
        #[serde(default)]
        pub addresses: Vec<Address>,
        #[serde(default)]
        pub routes: Vec<Route>,
        #[serde(default)]
        pub sysctls: HashMap<S, S>,
        #[serde(default)]
        pub rules: Vec<Rule>,
        #[serde(default)]
        pub neighbors: Vec<Neighbor>,
        pub nft: Option<S>,
        pub nft_file: Option<S>,
        pub iptables: Option<S>,
        pub iptables_file: Option<S>,
        pub ip6tables: Option<S>,
        pub ip6tables_file: Option<S>,
        pub cni: Option<Cni>,
        #[serde(default)]
        pub tc: Vec<Tc>,
        #[serde(default)]
        pub xdp: Vec<Xdp>,
        #[serde(default)]
        pub listen: Vec<Listen>,
        #[serde(default)]
        pub run: Vec<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rule {
        pub from: Option<S>,
        pub to: Option<S>,
        pub iif: Option<S>,
        pub oif: Option<S>,
        pub fwmark: Option<S>,
        pub table: Option<Spanned<u32>>,
        pub priority: Option<Spanned<u32>>,
        pub action: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cni {
        pub node: S,
        pub conflist: S,
        pub ifname: Option<S>,
        #[serde(default)]
        pub args: HashMap<S, S>,
        pub capabilities: Option<serde_json::Value>,
        pub check: Option<Spanned<bool>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Neighbor {
        pub dev: S,
        pub addr: S,
        pub lladdr: S,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tc {
        pub dev: Option<S>,
        pub direction: Option<S>,
        pub program: Option<S>,
        #[serde(default)]
        pub config: HashMap<S, Spanned<u32>>,
        pub command: Option<S>,
        pub object: Option<S>,
        pub maps: Option<HashMap<S, HashMap<S, S>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Xdp {
        pub dev: S,
        pub object: S,
        pub program: S,
        pub mode: Option<S>,
        pub maps: Option<HashMap<S, HashMap<S, S>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listen {
        pub proto: S,
        pub port: Spanned<u16>,
        pub addr: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Link {
        pub name: S,
        pub kind: S,
        pub peer: Option<Peer>,
        pub mtu: Option<Spanned<u32>>,
        pub up: Option<Spanned<bool>>,
        pub mac: Option<S>,
        pub master: Option<S>,
        pub parent: Option<S>,
        pub mode: Option<S>,
        pub vni: Option<Spanned<u32>>,
        pub remote: Option<S>,
        pub local: Option<S>,
        pub dstport: Option<Spanned<u16>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Peer {
        pub namespace: S,
        pub name: S,
        pub mac: Option<S>,
        pub master: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Address {
        pub dev: S,
        pub addr: S,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Route {
        pub to: S,
        pub via: Option<S>,
        pub dev: Option<S>,
        pub src: Option<S>,
        pub metric: Option<Spanned<u32>>,
        pub table: Option<Spanned<u32>>,
        #[serde(rename = "type")]
        pub kind: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Packet {
        pub name: Option<S>,
        pub inject: Inject,
        pub expect: Expect,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Inject {
        pub via: Option<S>,
        pub socket: Option<Socket>,
        pub ethernet: Option<Ethernet>,
        pub ipv4: Option<Ipv4>,
        pub ipv6: Option<Ipv6>,
        pub tcp: Option<Tcp>,
        pub udp: Option<Udp>,
        pub icmp: Option<Icmp>,
        pub payload: Option<S>,
        pub payload_hex: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Socket {
        pub from: S,
        pub proto: S,
        pub to: S,
        pub port: Option<Spanned<u16>>,
        pub sport: Option<Spanned<u16>>,
        pub payload: Option<S>,
        pub id: Option<Spanned<u16>>,
        pub seq: Option<Spanned<u16>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ethernet {
        pub src: Option<S>,
        pub dst: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ipv4 {
        pub src: S,
        pub dst: S,
        pub ttl: Option<Spanned<u8>>,
        pub id: Option<Spanned<u16>>,
        pub tos: Option<Spanned<u8>>,
        pub df: Option<Spanned<bool>>,
        pub checksum: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ipv6 {
        pub src: S,
        pub dst: S,
        pub hop_limit: Option<Spanned<u8>>,
        pub traffic_class: Option<Spanned<u8>>,
        pub flow_label: Option<Spanned<u32>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tcp {
        pub sport: Spanned<u16>,
        pub dport: Spanned<u16>,
        pub flags: Option<Vec<S>>,
        pub seq: Option<Spanned<u32>>,
        pub ack: Option<Spanned<u32>>,
        pub window: Option<Spanned<u16>>,
        pub checksum: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Udp {
        pub sport: Spanned<u16>,
        pub dport: Spanned<u16>,
        pub checksum: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Icmp {
        #[serde(rename = "type")]
        pub kind: S,
        pub code: Option<Spanned<u8>>,
        pub id: Option<Spanned<u16>>,
        pub seq: Option<Spanned<u16>>,
        pub checksum: Option<S>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Expect {
        pub fate: Option<S>,
        pub reason: Option<S>,
        pub at: Option<S>,
        pub path: Option<Vec<S>>,
        pub seen: Option<Vec<Seen>>,
        pub reply: Option<Box<Expect>>,
        pub not_path: Option<Vec<S>>,
        pub icmp: Option<IcmpExpect>,
        pub transmitted: Option<Vec<S>>,
        pub no_unexpected_drops: Option<Spanned<bool>>,
        pub allow_drops: Option<Vec<S>>,
        pub kernels: Option<HashMap<S, Expect>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct IcmpExpect {
        #[serde(rename = "type")]
        pub kind: Spanned<u8>,
        pub code: Option<Spanned<u8>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Requires {
        pub kernel: Option<S>,
        pub reasons: Option<Vec<S>>,
        pub tools: Option<Vec<S>>,
        pub functions: Option<Spanned<bool>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Seen {
        pub at: S,
        pub src: Option<S>,
        pub dst: Option<S>,
        pub sport: Option<Spanned<u16>>,
        pub dport: Option<Spanned<u16>>,
        pub ttl: Option<Spanned<u8>>,
    }
}

/// A validated scenario, ready to build.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name (the file stem unless `name:` is given).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// Namespaces, in file order of their names.
    pub namespaces: Vec<Namespace>,
    /// Packets to inject, each with its expectations.
    pub packets: Vec<Packet>,
    /// How long to wait for every tracked skb to die.
    pub timeout: Duration,
    /// Counter deltas across the injection.
    pub counters: Vec<CounterCheck>,
    /// What the machine must have.
    pub requires: Requires,
}

/// A network namespace the scenario creates.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// Scenario-local name (`host`, `router`, ...).
    pub name: String,
    /// Links created in this namespace.
    pub links: Vec<Link>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Routes.
    pub routes: Vec<Route>,
    /// `net.*` sysctls, key with dots, applied after links exist.
    pub sysctls: Vec<(String, String)>,
    /// Policy routing rules.
    pub rules: Vec<Rule>,
    /// Static neighbour entries.
    pub neighbors: Vec<Neighbor>,
    /// nftables ruleset, applied with `nft -f` inside the namespace.
    pub nft: Option<Ruleset>,
    /// IPv4 rules in `iptables-save` format, applied with
    /// `iptables-restore` inside the namespace (after `nft`).
    pub iptables: Option<Ruleset>,
    /// IPv6 rules in `ip6tables-save` format (`ip6tables-restore`).
    pub ip6tables: Option<Ruleset>,
    /// Set up by CNI plugins, as a pod of a scenario node namespace.
    pub cni: Option<CniAttachment>,
    /// tc programs and commands.
    pub tc: Vec<TcSpec>,
    /// XDP programs from the user's objects.
    pub xdp: Vec<XdpSpec>,
    /// Sockets the harness listens on.
    pub listen: Vec<Listener>,
    /// Shell commands run inside the namespace after everything else.
    pub run: Vec<String>,
}

/// A policy routing rule (`ip rule add`).
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Source prefix (`None`: all).
    pub from: Option<(IpAddr, u8)>,
    /// Destination prefix (`None`: all).
    pub to: Option<(IpAddr, u8)>,
    /// True for an IPv6 rule (a prefix is IPv6).
    pub v6: bool,
    /// Input interface.
    pub iif: Option<String>,
    /// Output interface.
    pub oif: Option<String>,
    /// fwmark and mask (`0x10` or `0x10/0xff`).
    pub fwmark: Option<(u32, Option<u32>)>,
    /// Table to look up.
    pub table: Option<u32>,
    /// Priority.
    pub priority: Option<u32>,
    /// Action other than lookup.
    pub action: Option<RuleAction>,
    /// Where the rule is written.
    pub at: Option<Location>,
}

/// What a rule does other than looking up a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
    /// Drop with ICMP prohibited.
    Prohibit,
}

/// A permanent neighbour entry.
#[derive(Debug, Clone)]
pub struct Neighbor {
    /// Device.
    pub dev: String,
    /// IP address.
    pub addr: IpAddr,
    /// Link-layer address.
    pub lladdr: String,
    /// Where the entry is written.
    pub at: Option<Location>,
}

/// A namespace attached to a network by CNI plugins (spec 1.0), as a
/// container runtime would: the plugins run inside the `node` namespace
/// with `CNI_NETNS` pointing at this one.
#[derive(Debug, Clone)]
pub struct CniAttachment {
    /// The scenario namespace the plugins run in (the "host" side).
    pub node: String,
    /// The configuration list (`cniVersion`, `name`, `plugins`).
    pub conflist: serde_json::Value,
    /// The file it was read from.
    pub conflist_file: PathBuf,
    /// `CNI_IFNAME` (default `eth0`).
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// `runtimeConfig`, given to each plugin for the capabilities it declares.
    pub capabilities: serde_json::Map<String, serde_json::Value>,
    /// Run CHECK after ADD.
    pub check: bool,
    /// Where the `cni:` entry is written.
    pub at: Option<Location>,
}

/// A ruleset (nft, iptables-save format) and where its text came from,
/// so the tool's error lines map back to the scenario or the file.
#[derive(Debug, Clone)]
pub struct Ruleset {
    /// The ruleset.
    pub text: String,
    /// The file the text is in.
    pub file: PathBuf,
    /// Line of `file` where `text` starts (1-based).
    pub first_line: usize,
}

/// A tc attachment.
#[derive(Debug, Clone, PartialEq)]
pub enum TcSpec {
    /// A fixture eBPF classifier on clsact.
    Program {
        /// Device.
        dev: String,
        /// Ingress (true) or egress.
        ingress: bool,
        /// Fixture program name.
        program: String,
        /// Config map values by key name.
        config: Vec<(String, u32)>,
    },
    /// A program of the user's own compiled object, on clsact.
    Object {
        /// Device.
        dev: String,
        /// Ingress (true) or egress.
        ingress: bool,
        /// The object and what to set in its maps.
        object: BpfObject,
    },
    /// A `tc` command line run in the namespace.
    Command(String),
}

/// A program in a compiled eBPF object (ELF) of the user's project.
#[derive(Debug, Clone, PartialEq)]
pub struct BpfObject {
    /// The object file.
    pub path: PathBuf,
    /// The program (function / section) to load.
    pub program: String,
    /// Map entries set before attaching: map name, then (key, value).
    pub maps: Vec<(String, Vec<(u64, u64)>)>,
    /// Where the entry is written.
    pub at: Option<Location>,
}

/// How an XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// The kernel picks (native if the driver has it).
    Auto,
    /// Generic XDP, on the skb (`skb`): any device.
    Skb,
    /// The driver's native XDP (`drv`).
    Drv,
    /// Offloaded to the NIC (`hw`).
    Hw,
}

/// An XDP program of the user's own object on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct XdpSpec {
    /// Device.
    pub dev: String,
    /// Attach mode.
    pub mode: XdpMode,
    /// The object and what to set in its maps.
    pub object: BpfObject,
}

/// A harness-owned listening socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// TCP or UDP.
    pub proto: SockProto,
    /// Port.
    pub port: u16,
    /// Address to bind (any when absent).
    pub addr: Option<IpAddr>,
}

/// Socket protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP / ICMPv6 echo.
    Icmp,
}

/// Kinds of links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A veth pair; the peer end lives in `peer_ns` as `peer`.
    Veth {
        /// Namespace of the peer end.
        peer_ns: String,
        /// Name of the peer end.
        peer: String,
        /// MAC of the peer end.
        peer_mac: Option<String>,
        /// Bridge the peer end is enslaved to (in `peer_ns`).
        peer_master: Option<String>,
    },
    /// A bridge.
    Bridge,
    /// A macvlan on `parent`.
    Macvlan {
        /// Lower device.
        parent: String,
        /// bridge, private, vepa, passthru.
        mode: String,
    },
    /// A VXLAN device.
    Vxlan {
        /// VXLAN network identifier.
        vni: u32,
        /// Remote VTEP.
        remote: Option<IpAddr>,
        /// Local VTEP address.
        local: Option<IpAddr>,
        /// Underlay device.
        parent: Option<String>,
        /// UDP port.
        dstport: u16,
    },
    /// A layer-3 tun device (IFF_TUN | IFF_NO_PI), owned by the harness.
    Tun,
    /// A layer-2 tap device (IFF_TAP | IFF_NO_PI), owned by the harness.
    Tap,
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// What it is.
    pub kind: LinkKind,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// Brought up (default true).
    pub up: bool,
    /// MAC address.
    pub mac: Option<String>,
    /// Bridge this link is enslaved to.
    pub master: Option<String>,
    /// Where the link is written.
    pub at: Option<Location>,
}

/// An interface address.
#[derive(Debug, Clone)]
pub struct Address {
    /// Device.
    pub dev: String,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Where the address is written.
    pub at: Option<Location>,
}

/// Route types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// A normal route.
    Unicast,
    /// Silently discard.
    Blackhole,
    /// Discard with ICMP unreachable.
    Unreachable,
    /// Discard with ICMP prohibited.
    Prohibit,
}

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Destination; `None` is the default route.
    pub to: Option<(IpAddr, u8)>,
    /// True for IPv6.
    pub v6: bool,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output device.
    pub dev: Option<String>,
    /// Preferred source.
    pub src: Option<IpAddr>,
    /// Metric.
    pub metric: Option<u32>,
    /// Table id.
    pub table: Option<u32>,
    /// Type.
    pub kind: RouteType,
    /// Where the route is written.
    pub at: Option<Location>,
}

/// A device in a namespace, written `ns/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Namespace.
    pub ns: String,
    /// Device.
    pub dev: String,
}

/// A checksum field: computed, deliberately wrong, or a fixed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Computed correctly.
    #[default]
    Auto,
    /// Computed, then made wrong.
    Bad,
    /// This exact value.
    Value(u16),
}

/// IP layer of a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum IpLayer {
    /// IPv4.
    V4 {
        /// Source.
        src: std::net::Ipv4Addr,
        /// Destination.
        dst: std::net::Ipv4Addr,
        /// TTL.
        ttl: u8,
        /// Identification.
        id: u16,
        /// TOS byte.
        tos: u8,
        /// Don't-fragment bit.
        df: bool,
        /// Header checksum.
        checksum: Checksum,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: std::net::Ipv6Addr,
        /// Destination.
        dst: std::net::Ipv6Addr,
        /// Hop limit.
        hop_limit: u8,
        /// Traffic class.
        traffic_class: u8,
        /// Flow label (20 bits).
        flow_label: u32,
    },
}

/// TCP flag bits, as on the wire.
pub mod tcp_flag {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
}

/// Transport layer of a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum L4Layer {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flag bits ([`tcp_flag`]).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Window.
        window: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// ICMP (over IPv4) or ICMPv6 (over IPv6).
    Icmp {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Identifier (echo).
        id: u16,
        /// Sequence (echo).
        seq: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// No transport header.
    None,
}

impl L4Layer {
    /// IP protocol number.
    pub fn proto(&self, v6: bool) -> Option<u8> {
        match self {
            L4Layer::Tcp { .. } => Some(6),
            L4Layer::Udp { .. } => Some(17),
            L4Layer::Icmp { .. } => Some(if v6 { 58 } else { 1 }),
            L4Layer::None => None,
        }
    }
}

/// A packet to build and inject.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketSpec {
    /// IP header.
    pub ip: IpLayer,
    /// Transport header.
    pub l4: L4Layer,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

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

    fn parse(s: &str) -> Option<Self> {
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
    /// ICMP type (ICMPv6 type for IPv6 packets).
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
}

/// Ethernet addresses for an L2 injection; absent fields are filled from
/// the topology (the sending device's MAC, the receiving end's MAC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ethernet {
    /// Source MAC.
    pub src: Option<[u8; 6]>,
    /// Destination MAC.
    pub dst: Option<[u8; 6]>,
}

/// How a packet enters the kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// A crafted packet: written into a tun (L3) or tap (L2) device, or sent
    /// out of any other device through an AF_PACKET socket (L2).
    Frame {
        /// The device.
        via: DeviceRef,
        /// Ethernet header fields, for L2 injection.
        ethernet: Ethernet,
        /// Headers and payload.
        spec: PacketSpec,
    },
    /// A real socket in a namespace; the kernel builds the packet.
    Socket {
        /// Namespace the socket lives in.
        from: String,
        /// Protocol: TCP connect, UDP send, ICMP echo request.
        proto: SockProto,
        /// Destination address.
        to: IpAddr,
        /// Destination port (TCP/UDP).
        port: u16,
        /// Source port; chosen by the kernel before the trace starts if absent.
        sport: Option<u16>,
        /// Payload (UDP, ICMP).
        payload: Vec<u8>,
        /// ICMP echo id.
        id: u16,
        /// ICMP echo sequence.
        seq: u16,
    },
}

/// One injected packet with its expectations.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Name (`packet 1` unless given).
    pub name: String,
    /// How it is sent.
    pub inject: Injection,
    /// What should happen.
    pub expect: Expectation,
}

impl Packet {
    /// Whether the packet is ICMP (its flow needs one tracer filter, not
    /// two: ICMP errors about ICMP are not sent).
    pub fn is_icmp(&self) -> bool {
        match &self.inject {
            Injection::Frame { spec, .. } => matches!(spec.l4, L4Layer::Icmp { .. }),
            Injection::Socket { proto, .. } => *proto == SockProto::Icmp,
        }
    }
}

/// Longest error message, values quoted in it included.
const MAX_MESSAGE_CHARS: usize = 400;

/// Default time to wait for every tracked skb's fate.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The devices CNI plugins of `conflist` make in the node that a scenario
/// can name: the bridge plugin's bridge (`cni0` unless set).
fn cni_node_devices(conflist: &serde_json::Value) -> Vec<String> {
    conflist["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "bridge")
        .map(|p| p["bridge"].as_str().unwrap_or("cni0").to_string())
        .collect()
}

/// YAML scalars reach serde as strings; `runtimeConfig` wants JSON
/// numbers and booleans where they look like them (`hostPort: 8080`).
fn json_scalars(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    match v {
        V::String(s) => match (s.parse::<i64>(), s.as_str()) {
            (Ok(n), _) => V::from(n),
            (_, "true") => V::Bool(true),
            (_, "false") => V::Bool(false),
            _ => V::String(s),
        },
        V::Array(a) => V::Array(a.into_iter().map(json_scalars).collect()),
        V::Object(o) => V::Object(o.into_iter().map(|(k, v)| (k, json_scalars(v))).collect()),
        other => other,
    }
}

/// Validates a `cni:` entry: the node is another scenario namespace, the
/// conflist a project file holding a CNI configuration list whose plugin
/// types are plain names (they are looked up in `CNI_PATH`).
fn cni_attachment(
    cx: &mut Ctx,
    pod: &raw::S,
    c: raw::Cni,
    ns_names: &[String],
) -> Option<CniAttachment> {
    if !ns_names.iter().any(|n| n == c.node.as_str()) || c.node.as_str() == pod.as_str() {
        cx.err(
            &c.node,
            format!(
                "CNI node `{}` is not another namespace of the scenario",
                c.node.as_str()
            ),
            Some("the plugins run in a scenario namespace, never in the root namespace".into()),
        );
    }
    let rs = ruleset(cx, None, Some(c.conflist.clone()), "conflist")?;
    let conflist: serde_json::Value = match serde_json::from_str(&rs.text) {
        Ok(v) => v,
        Err(e) => {
            cx.err(
                &c.conflist,
                format!("`{}` is not JSON: {e}", c.conflist.as_str()),
                Some("a CNI configuration list, as in /etc/cni/net.d/*.conflist".into()),
            );
            return None;
        }
    };
    let plugins = conflist["plugins"].as_array().cloned().unwrap_or_default();
    let plain = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let problem = if !conflist["cniVersion"].is_string() || !conflist["name"].is_string() {
        Some("has no `cniVersion` or `name`".to_string())
    } else if plugins.is_empty() {
        Some("has no `plugins`".to_string())
    } else {
        plugins
            .iter()
            .find(|p| !p["type"].as_str().is_some_and(plain))
            .map(|p| {
                format!(
                    "has a plugin whose `type` is not a plain name: {}",
                    p["type"]
                )
            })
    };
    if let Some(p) = problem {
        cx.err(
            &c.conflist,
            format!("CNI configuration list `{}` {p}", c.conflist.as_str()),
            Some("see the CNI spec's network configuration list format".into()),
        );
        return None;
    }
    let capabilities = match c.capabilities.map(json_scalars) {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => {
            cx.err(
                &c.conflist,
                "`capabilities` must be a mapping (runtimeConfig)",
                None,
            );
            serde_json::Map::new()
        }
    };
    let mut args: Vec<(String, String)> = c
        .args
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    args.sort();
    Some(CniAttachment {
        node: c.node.to_string(),
        conflist,
        conflist_file: rs.file,
        ifname: c.ifname.map_or_else(|| "eth0".into(), |i| i.to_string()),
        args,
        capabilities,
        check: c.check.is_some_and(|b| *b),
        at: cx.loc(&c.node),
    })
}

/// Compiled objects may be bigger than text files (debug info, BTF).
const MAX_OBJECT_BYTES: u64 = 16 << 20;

/// A user's compiled eBPF object: a project file that is an ELF object,
/// a program name, and map entries (`maps: {NAME: {key: value}}`, numbers
/// in decimal or 0x hex).
fn bpf_object(
    cx: &mut Ctx,
    object: &raw::S,
    program: &raw::S,
    maps: Option<HashMap<raw::S, HashMap<raw::S, raw::S>>>,
) -> Option<BpfObject> {
    let path = match crate::project::resolve(cx.file, object) {
        Ok(p) => p,
        Err(refusal) => {
            let (msg, hint) = file_refusal(object, &refusal);
            cx.err(object, msg, Some(hint));
            return None;
        }
    };
    match crate::project::read_bytes(&path, MAX_OBJECT_BYTES) {
        Ok(b) if b.starts_with(b"\x7fELF") => {}
        Ok(_) => {
            cx.err(
                object,
                format!("`{}` is not an ELF object", clip(object, 120)),
                Some("give the .o your eBPF build writes (clang -target bpf, or an aya crate's output)".into()),
            );
            return None;
        }
        Err(e) => {
            cx.err(
                object,
                format!("cannot read `{}`: {e}", clip(object, 120)),
                None,
            );
            return None;
        }
    }
    if program.is_empty() {
        cx.err(program, "a program name is needed", None);
    }
    let num = |t: &str| match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    let mut out = vec![];
    let mut names: Vec<_> = maps.unwrap_or_default().into_iter().collect();
    names.sort_by_key(|(k, _)| span_pos(k));
    for (name, entries) in names {
        let mut kv: Vec<_> = entries.into_iter().collect();
        kv.sort_by_key(|(k, _)| span_pos(k));
        let mut parsed = vec![];
        for (k, v) in kv {
            match (num(&k), num(&v)) {
                (Some(k), Some(v)) => parsed.push((k, v)),
                (None, _) => cx.err(
                    &k,
                    format!("map key `{}` is not a number", clip(&k, 40)),
                    None,
                ),
                (_, None) => cx.err(
                    &v,
                    format!("map value `{}` is not a number", clip(&v, 40)),
                    None,
                ),
            }
        }
        out.push((name.to_string(), parsed));
    }
    Some(BpfObject {
        path,
        program: program.to_string(),
        maps: out,
        at: cx.loc(program),
    })
}

/// A ruleset given inline (`key: |`) or by file (`key_file:`), not both.
fn ruleset(
    cx: &mut Ctx,
    inline: Option<raw::S>,
    file: Option<raw::S>,
    key: &str,
) -> Option<Ruleset> {
    match (inline, file) {
        (Some(text), None) => {
            // marked-yaml places a block scalar (`nft: |`) at its first content
            // line, and a plain one at its own line: either way, line 1 of
            // the ruleset.
            let src_line = cx.loc(&text).map_or(1, |l| l.line);
            Some(Ruleset {
                text: text.to_string(),
                file: cx.file.to_path_buf(),
                first_line: src_line,
            })
        }
        (None, Some(f)) => match crate::project::resolve(cx.file, &f) {
            Ok(path) => match crate::project::read_text(&path) {
                Ok(text) => Some(Ruleset {
                    text,
                    file: path,
                    first_line: 1,
                }),
                Err(e) => {
                    cx.err(&f, format!("cannot read `{}`: {e}", clip(&f, 120)), None);
                    None
                }
            },
            Err(refusal) => {
                let (msg, hint) = file_refusal(&f, &refusal);
                cx.err(&f, msg, Some(hint));
                None
            }
        },
        (Some(t), Some(_)) => {
            cx.err(
                &t,
                format!("give `{key}` (inline) or `{key}_file`, not both"),
                None,
            );
            None
        }
        (None, None) => None,
    }
}

/// `0x10`, `16` or `0x10/0xff`, as `ip rule ... fwmark` takes it.
fn parse_fwmark(s: &str) -> Option<(u32, Option<u32>)> {
    let num = |t: &str| match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    match s.split_once('/') {
        Some((v, m)) => Some((num(v)?, Some(num(m)?))),
        None => Some((num(s)?, None)),
    }
}

struct Ctx<'a> {
    file: &'a Path,
    errors: Vec<ScenarioError>,
}

impl Ctx<'_> {
    fn loc<T>(&self, s: &Spanned<T>) -> Option<Location> {
        s.span().start().map(|m| Location {
            file: self.file.to_path_buf(),
            line: m.line(),
            col: m.column(),
        })
    }

    fn err<T>(&mut self, at: &Spanned<T>, msg: impl Into<String>, hint: Option<String>) {
        let loc = self.loc(at);
        self.errors.push(ScenarioError {
            loc,
            file: self.file.to_path_buf(),
            // Messages quote values; a 10 MiB one stays readable.
            msg: clip(&msg.into(), MAX_MESSAGE_CHARS),
            hint,
        });
    }

    fn ip(&mut self, s: &raw::S, what: &str) -> Option<IpAddr> {
        match s.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    s,
                    format!("{what} `{}` is not an IP address", s.as_str()),
                    Some("write e.g. 192.0.2.1 or 2001:db8::1".into()),
                );
                None
            }
        }
    }

    fn cidr(&mut self, s: &raw::S, what: &str) -> Option<(IpAddr, u8)> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.as_str(), None),
        };
        let addr: IpAddr = match a.parse() {
            Ok(a) => a,
            Err(_) => {
                self.err(
                    s,
                    format!("{what} `{}` is not an address with prefix", s.as_str()),
                    Some("write e.g. 192.0.2.1/24 or 2001:db8::1/64".into()),
                );
                return None;
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p.map(str::parse::<u8>) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => {
                self.err(
                    s,
                    format!("{what} `{}` has a bad prefix length", s.as_str()),
                    Some(format!("the prefix is 0..={max}")),
                );
                return None;
            }
        };
        Some((addr, prefix))
    }

    fn checksum(&mut self, s: &Option<raw::S>) -> Checksum {
        let Some(s) = s else { return Checksum::Auto };
        let v = s.trim();
        if v == "auto" {
            return Checksum::Auto;
        }
        if v == "bad" {
            return Checksum::Bad;
        }
        let parsed = if let Some(h) = v.strip_prefix("0x") {
            u16::from_str_radix(h, 16).ok()
        } else {
            v.parse::<u16>().ok()
        };
        match parsed {
            Some(n) => Checksum::Value(n),
            None => {
                self.err(
                    s,
                    format!("checksum `{v}` is not `auto`, `bad` or a 16-bit number"),
                    Some("write `checksum: bad` to send a wrong checksum, or e.g. `checksum: 0xf77b`".into()),
                );
                Checksum::Auto
            }
        }
    }
}

/// Which links (by name) each namespace will have, for reference checks.
type DevIndex = BTreeMap<String, BTreeSet<String>>;

fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_nsname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 24
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, Vec<ScenarioError>> {
        let text = crate::project::read_text(path).map_err(|e| {
            vec![ScenarioError {
                loc: None,
                file: path.to_path_buf(),
                msg: format!("cannot read scenario: {e}"),
                hint: Some(format!(
                    "a scenario is a YAML text file of at most {} KiB",
                    crate::project::MAX_FILE_BYTES / 1024
                )),
            }]
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<ScenarioError>> {
        let opts = LoaderOptions::default().error_on_duplicate_keys(true);
        let file: raw::File = marked_yaml::from_yaml_with_options(0, text, opts)
            .map_err(|e| vec![yaml_error(path, text, &e)])?;
        let mut cx = Ctx {
            file: path,
            errors: vec![],
        };
        let s = validate(&mut cx, file, path);
        if cx.errors.is_empty() {
            Ok(s)
        } else {
            Err(cx.errors)
        }
    }

    /// Resolves kernel-dependent expectations for kernel `v` (see
    /// [`Expectation::for_kernel`]).
    pub fn resolve_for_kernel(&mut self, v: Version) {
        for p in &mut self.packets {
            p.expect = p.expect.for_kernel(v);
        }
    }

    /// Drops `reason` expectations, for a kernel whose tracer sees no drop
    /// reasons; returns what was not checked, to be reported as such.
    pub fn drop_reason_checks(&mut self, why: &str) -> Vec<String> {
        fn strip(e: &mut Expectation, packet: &str, why: &str, out: &mut Vec<String>) {
            if let Some(r) = e.reason.take() {
                out.push(format!("{packet}: reason {r} not checked ({why})"));
            }
            if let Some(reply) = e.reply.as_deref_mut() {
                strip(reply, &format!("{packet} reply"), why, out);
            }
        }
        let mut out = vec![];
        for p in &mut self.packets {
            strip(&mut p.expect, &p.name, why, &mut out);
        }
        out
    }

    /// Drops path, not_path and seen steps that name a hook the tracer
    /// could not attach on this kernel; returns what was not checked, and
    /// why, to be reported as such.
    pub fn drop_steps_on_hooks(&mut self, hooks: &[SkippedHook]) -> Vec<String> {
        fn strip(e: &mut Expectation, packet: &str, hooks: &[SkippedHook], out: &mut Vec<String>) {
            let why = |st: &PathStep| hooks.iter().find(|h| h.hook == st.func).map(|h| &h.why);
            let missing = |st: &PathStep| why(st).is_some();
            for (what, steps) in [("path", &mut e.path), ("not_path", &mut e.not_path)] {
                for st in steps.iter() {
                    if let Some(w) = why(st) {
                        out.push(format!(
                            "{packet}: {what} step {st} not checked ({}: {w})",
                            st.func
                        ));
                    }
                }
                steps.retain(|st| !missing(st));
            }
            for x in &e.seen {
                if let Some(w) = why(&x.at) {
                    out.push(format!(
                        "{packet}: seen at {} not checked ({}: {w})",
                        x.at, x.at.func
                    ));
                }
            }
            e.seen.retain(|x| !missing(&x.at));
            if let Some(reply) = e.reply.as_deref_mut() {
                strip(reply, &format!("{packet} reply"), hooks, out);
            }
        }
        let mut out = vec![];
        if hooks.is_empty() {
            return out;
        }
        for p in &mut self.packets {
            strip(&mut p.expect, &p.name, hooks, &mut out);
        }
        out
    }

    /// Checks what needs the running kernel: drop reason names exist (and
    /// are rewritten to their canonical short form). A kernel without
    /// drop reasons (before 5.17) has nothing to check them against.
    pub fn check_against_kernel(
        &mut self,
        reasons: &DropReasons,
    ) -> Result<(), Vec<ScenarioError>> {
        fn check(
            e: &mut Expectation,
            reasons: &DropReasons,
            file: &Path,
            errors: &mut Vec<ScenarioError>,
        ) {
            if reasons.is_empty() {
                return;
            }
            if let Some(r) = e.reason.clone() {
                match reasons.resolve(&r) {
                    Some(canon) => e.reason = Some(canon.to_string()),
                    None => {
                        let sugg = reasons.suggest(&r);
                        let hint = if sugg.is_empty() {
                            "`pktfate reasons` lists this kernel's drop reasons; if another kernel has it, give this one its own under `kernels:` (e.g. `\"< 6.13\": { reason: NOT_SPECIFIED }`)".to_string()
                        } else {
                            format!(
                                "did you mean {}? (`pktfate reasons` lists them all)",
                                sugg.join(", ")
                            )
                        };
                        errors.push(ScenarioError {
                            loc: e.reason_loc.clone(),
                            file: file.to_path_buf(),
                            msg: format!("unknown drop reason `{r}` on this kernel"),
                            hint: Some(hint),
                        });
                    }
                }
            }
            for a in &mut e.allow_drops {
                match reasons.resolve(a) {
                    Some(c) => *a = c.to_string(),
                    None => errors.push(ScenarioError {
                        loc: None,
                        file: file.to_path_buf(),
                        msg: format!("unknown drop reason `{a}` in allow_drops on this kernel"),
                        hint: reasons
                            .suggest(a)
                            .first()
                            .map(|s| format!("did you mean {s}?")),
                    }),
                }
            }
            if let Some(reply) = e.reply.as_deref_mut() {
                check(reply, reasons, file, errors);
            }
        }
        let mut errors = vec![];
        for p in &mut self.packets {
            check(&mut p.expect, reasons, &self.path, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The namespace with this scenario-local name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.name == name)
    }
}

/// (line, column) of a spanned value, for keeping file order.
fn span_pos<T>(s: &Spanned<T>) -> (usize, usize) {
    s.span().start().map_or((0, 0), |m| (m.line(), m.column()))
}

fn yaml_error(path: &Path, text: &str, e: &marked_yaml::FromYamlError) -> ScenarioError {
    use marked_yaml::FromYamlError as F;
    let (mark, msg, hint) = match e {
        F::ParseYaml(le) => {
            let text = le.to_string();
            // LoadError's text starts with "source:line:col: "; keep the message only.
            let msg = text
                .split_once(": ")
                .map(|x| x.1)
                .unwrap_or(&text)
                .to_string();
            let mark = load_error_mark(le).map(|m| (m.line(), m.column()));
            (mark, format!("invalid YAML: {msg}"), None)
        }
        F::FromNode(ne) => {
            let inner: &marked_yaml::Error = ne;
            let hint = match inner {
                marked_yaml::Error::UnknownFieldError(f, expected, _) => {
                    let near = did_you_mean(f, expected.iter().copied());
                    Some(match near {
                        Some(n) => format!(
                            "did you mean `{n}`? known keys here: {}",
                            expected.join(", ")
                        ),
                        None => format!("known keys here: {}", expected.join(", ")),
                    })
                }
                marked_yaml::Error::NotBoolean(_) => Some("write true or false".into()),
                marked_yaml::Error::IntegerParseFailure(..) => {
                    Some("this field takes a whole number in range".into())
                }
                _ => None,
            };
            let msg = match inner {
                marked_yaml::Error::UnknownFieldError(f, _, _) => format!("unknown key `{f}`"),
                marked_yaml::Error::NotBoolean(_) => "expected true or false".into(),
                marked_yaml::Error::IntegerParseFailure(e, _) => format!("not a valid number: {e}"),
                other => other.to_string(),
            };
            let mut loc = ne.start_mark().map(|m| (m.line(), m.column()));
            // marked-yaml gives unknown keys no position: find the key itself.
            if let (None, marked_yaml::Error::UnknownFieldError(f, _, _)) = (loc, inner) {
                loc = find_key(text, f);
            }
            // Type errors may have no position either: find the deepest key
            // of the error's path (`expect.path[2]` -> `path`).
            if loc.is_none() {
                loc = ne.path().and_then(|p| path_location(text, p));
            }
            (loc, msg, hint)
        }
    };
    ScenarioError {
        loc: mark.map(|(line, col)| Location {
            file: path.to_path_buf(),
            line,
            col,
        }),
        file: path.to_path_buf(),
        msg,
        hint,
    }
}

/// Position of a serde path like `namespaces.a.links[0].mtu`: each key is
/// searched after the previous one, so the right `mtu` is found.
fn path_location(text: &str, path: &str) -> Option<(usize, usize)> {
    let keys: Vec<&str> = path
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .filter(|k| !k.is_empty() && *k != "?")
        .collect();
    let mut from = 0usize;
    let mut found = None;
    for k in keys {
        let rest: String = text.lines().skip(from).collect::<Vec<_>>().join("\n");
        if let Some((l, c)) = find_key(&rest, k) {
            from += l - 1;
            found = Some((from + 1, c));
        }
    }
    found
}

/// 1-based (line, column) of the first `key:` in the text.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let re = regex::Regex::new(&format!(r"(^|[\s{{,\-])({})\s*:", regex::escape(key))).ok()?;
    text.lines().enumerate().find_map(|(i, l)| {
        let code = l.split(" #").next().unwrap_or(l);
        re.captures(code)
            .map(|c| (i + 1, c.get(2).map_or(0, |m| m.start()) + 1))
    })
}

fn load_error_mark(e: &marked_yaml::LoadError) -> Option<marked_yaml::Marker> {
    use marked_yaml::LoadError as L;
    match e {
        L::TopLevelMustBeMapping(m)
        | L::TopLevelMustBeSequence(m)
        | L::UnexpectedAnchor(m)
        | L::MappingKeyMustBeScalar(m)
        | L::UnexpectedTag(m)
        | L::ScanError(m, _) => Some(*m),
        L::DuplicateKey(inner) => inner.key.span().start().copied(),
    }
}

fn validate(cx: &mut Ctx, f: raw::File, path: &Path) -> Scenario {
    let name = f.name.as_ref().map(|n| n.to_string()).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });

    // Namespaces and the devices each will hold.
    let mut devs: DevIndex = BTreeMap::new();
    // File order, so creation order and messages follow what the user wrote.
    let mut raw_ns: Vec<(raw::S, raw::Namespace)> =
        f.namespaces.unwrap_or_default().into_iter().collect();
    raw_ns.sort_by_key(|(k, _)| span_pos(k));
    if raw_ns.is_empty() {
        cx.errors.push(ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: "no `namespaces`: a scenario builds its own namespaces".into(),
            hint: Some(
                "add `namespaces:` with at least one namespace; nothing runs in the root namespace"
                    .into(),
            ),
        });
    }
    if let Some((n, _)) = raw_ns.get(MAX_NETNS as usize) {
        cx.err(
            n,
            format!(
                "{} namespaces; a scenario has at most {MAX_NETNS} (the tracer watches that many)",
                raw_ns.len()
            ),
            Some("split the scenario, or share namespaces between roles".into()),
        );
    }
    for (n, ns) in &raw_ns {
        if !valid_nsname(n) {
            cx.err(
                n,
                format!("namespace name `{}` is not valid", n.as_str()),
                Some("use up to 24 letters, digits, - or _".into()),
            );
        }
        let set = devs.entry(n.to_string()).or_default();
        set.insert("lo".into());
        for l in &ns.links {
            set.insert(l.name.to_string());
        }
        if let Some(c) = &ns.cni {
            set.insert(c.ifname.as_ref().map_or("eth0", |i| i.as_str()).to_string());
        }
    }
    for (_, ns) in &raw_ns {
        for l in &ns.links {
            if let Some(p) = &l.peer {
                if let Some(set) = devs.get_mut(p.namespace.as_str()) {
                    if !set.insert(p.name.to_string()) {
                        cx.err(
                            &p.name,
                            format!(
                                "device `{}` already exists in namespace `{}`",
                                p.name.as_str(),
                                p.namespace.as_str()
                            ),
                            None,
                        );
                    }
                }
            }
        }
    }

    let ns_names: Vec<String> = raw_ns.iter().map(|(k, _)| k.to_string()).collect();
    let mut namespaces = vec![];
    for (n, ns) in raw_ns {
        namespaces.push(validate_ns(cx, &n, ns, &ns_names, &devs));
    }
    // The bridge a CNI plugin makes in the node can be named in steps.
    for ns in &namespaces {
        if let Some(c) = &ns.cni {
            if let Some(set) = devs.get_mut(&c.node) {
                set.extend(cni_node_devices(&c.conflist));
            }
        }
    }

    // Packets: either top-level inject/expect or a `packets:` list.
    let mut raw_packets = vec![];
    match (f.inject, f.expect, f.packets) {
        (Some(i), e, None) => raw_packets.push(raw::Packet {
            name: None,
            inject: i,
            expect: e.unwrap_or(raw::Expect {
                fate: None,
                reason: None,
                at: None,
                path: None,
                seen: None,
                reply: None,
                not_path: None,
                icmp: None,
                transmitted: None,
                no_unexpected_drops: None,
                allow_drops: None,
                kernels: None,
            }),
        }),
        (None, None, Some(list)) => raw_packets = list,
        (None, Some(e), _) => cx.err(
            e.fate
                .as_ref()
                .or(e.reason.as_ref())
                .unwrap_or(&Spanned::new(marked_yaml::Span::new_blank(), String::new())),
            "`expect` without `inject`",
            Some("add an `inject:` block describing the packet".into()),
        ),
        (Some(i), _, Some(_)) => cx.err(
            i.via
                .as_ref()
                .or(i.socket.as_ref().map(|s| &s.from))
                .unwrap_or(&Spanned::new(marked_yaml::Span::new_blank(), String::new())),
            "both `inject` and `packets` given",
            Some(
                "use `packets:` for several packets, or top-level `inject`/`expect` for one".into(),
            ),
        ),
        (None, None, None) => cx.errors.push(ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: "nothing to inject".into(),
            hint: Some("add `inject:` and `expect:` (or a `packets:` list)".into()),
        }),
    }
    let mut packets = vec![];
    let mut n_filters = 0;
    for (i, p) in raw_packets.into_iter().enumerate() {
        let pname = p
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("packet {}", i + 1));
        let at = p
            .inject
            .via
            .clone()
            .or_else(|| p.inject.socket.as_ref().map(|s| s.from.clone()));
        if let Some(pk) = validate_packet(cx, pname, p, &namespaces, &devs) {
            // The runner watches each packet's flow both ways, plus the
            // ICMP errors about it (one filter for ICMP itself).
            n_filters += if pk.is_icmp() { 1 } else { 2 };
            if n_filters > MAX_FILTERS as usize {
                if let Some(at) = &at {
                    cx.err(
                        at,
                        format!(
                            "too many packets: the tracer holds {MAX_FILTERS} flow filters, two per TCP/UDP packet and one per ICMP packet"
                        ),
                        Some("split the scenario into several files".into()),
                    );
                }
            }
            packets.push(pk);
        }
    }

    let timeout = f
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_millis(*t));
    let mut counters = vec![];
    let mut raw_counters: Vec<_> = f.counters.unwrap_or_default().into_iter().collect();
    raw_counters.sort_by_key(|(k, _)| span_pos(k));
    for (ns, map) in raw_counters {
        if !devs.contains_key(ns.as_str()) {
            cx.err(
                &ns,
                format!(
                    "counters for `{}`, which the scenario does not declare",
                    ns.as_str()
                ),
                None,
            );
            continue;
        }
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by_key(|(k, _)| span_pos(k));
        for (name, d) in entries {
            let t = d.trim();
            let parsed = if let Some(r) = t.strip_prefix(">=") {
                r.trim().parse::<i64>().ok().map(Delta::AtLeast)
            } else {
                t.parse::<i64>().ok().map(Delta::Exactly)
            };
            match parsed {
                Some(delta) if name.chars().all(|c| c.is_ascii_alphanumeric()) => counters.push(CounterCheck {
                    ns: ns.to_string(),
                    name: name.to_string(),
                    delta,
                }),
                Some(_) => cx.err(&name, format!("`{}` is not a counter name", name.as_str()), Some("names as nstat prints them, e.g. IpExtInNoRoutes, TcpExtListenDrops, Ip6InNoRoutes".into())),
                None => cx.err(&d, format!("`{t}` is not a counter change"), Some("write +1, 0, -2 or >=1".into())),
            }
        }
    }
    let mut requires = Requires::default();
    if let Some(r) = f.requires {
        if let Some(k) = r.kernel {
            match parse_kernel_version(k.trim_start_matches(">=").trim()) {
                Some(v) => requires.kernel = Some(v),
                None => cx.err(
                    &k,
                    format!("`{}` is not a kernel version", k.as_str()),
                    Some("write e.g. 6.8 or >=5.17".into()),
                ),
            }
        }
        requires.reasons = r
            .reasons
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_string())
            .collect();
        requires.tools = r
            .tools
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_string())
            .collect();
        requires.functions = r.functions.is_some_and(|b| *b);
    }
    Scenario {
        name,
        path: path.to_path_buf(),
        description: f.description.map(|d| d.to_string()),
        namespaces,
        packets,
        timeout,
        counters,
        requires,
    }
}

/// Parses `6`, `6.8` or `6.8.0` (anything after a `-` is ignored).
pub fn parse_kernel_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.split(['-', '+']).next()?;
    let mut it = v.split('.').map(|p| p.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next().transpose().ok()?.unwrap_or(0);
    let patch = it.next().transpose().ok()?.unwrap_or(0);
    Some((major, minor, patch))
}

fn valid_mac(m: &str) -> bool {
    parse_mac(m).is_some()
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(m: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        out[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// Why a `net.*` sysctl is not the scenario's to set, if it is not: keys
/// the kernel keeps once for the whole host (a namespace either lacks them,
/// so writing fails at run time, or would change the host).
fn host_wide_sysctl(key: &str) -> Option<&'static str> {
    // optmem_max is per namespace only from 6.9: not on every kernel run.
    const PER_NETNS_CORE: [&str; 3] = ["net.core.somaxconn", "net.core.txrehash", "net.core.xfrm_"];
    const HOST_WIDE: [&str; 3] = ["net.ipv4.tcp_mem", "net.ipv4.udp_mem", "net.ipv4.route.gc_"];
    if key.starts_with("net.core.") && !PER_NETNS_CORE.iter().any(|p| key.starts_with(p)) {
        return Some("host-wide (net.core.* keys but a few are shared by every namespace)");
    }
    if HOST_WIDE.iter().any(|p| key.starts_with(p)) {
        return Some("host-wide: every namespace shares it");
    }
    None
}

/// The message and hint for a file reference [`crate::project::resolve`]
/// refused. The file's content is never part of it.
fn file_refusal(f: &str, r: &crate::project::Refusal) -> (String, String) {
    use crate::project::Refusal;
    let name = clip(f, 120);
    let widen = "files outside the project need `--allow-path DIR`";
    match r {
        Refusal::Absolute => (
            format!("`{name}` is an absolute path; a scenario names files of its own project"),
            format!("write a path relative to the scenario, e.g. fixtures/nft/rules.nft ({widen})"),
        ),
        Refusal::Escapes(p) => (
            format!(
                "`{name}` leads out of the scenario's project (to {})",
                clip(&p.display().to_string(), 120)
            ),
            format!(
                "the project is the nearest directory with Cargo.toml, .git or pktfate.toml; {widen}"
            ),
        ),
        Refusal::Missing => (
            format!(
                "no file `{name}` next to the scenario or in a parent directory of its project"
            ),
            "rulesets usually live in fixtures/nft/".into(),
        ),
    }
}

fn validate_ns(
    cx: &mut Ctx,
    name: &raw::S,
    ns: raw::Namespace,
    ns_names: &[String],
    devs: &DevIndex,
) -> Namespace {
    let here = &devs[name.as_str()];
    let check_dev = |cx: &mut Ctx, d: &raw::S| {
        if !here.contains(d.as_str()) {
            let near = did_you_mean(d, here.iter().map(String::as_str));
            cx.err(
                d,
                format!(
                    "no device `{}` in namespace `{}`",
                    d.as_str(),
                    name.as_str()
                ),
                Some(match near {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!(
                        "devices here: {}",
                        here.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }),
            );
        }
    };
    let check_mac = |cx: &mut Ctx, m: &Option<raw::S>| {
        if let Some(m) = m {
            if !valid_mac(m) {
                cx.err(
                    m,
                    format!("`{}` is not a MAC address", m.as_str()),
                    Some("write six hex pairs, e.g. 02:00:00:00:00:01".into()),
                );
            }
        }
    };
    let mut links = vec![];
    let mut seen = BTreeSet::new();
    let bridges: BTreeSet<String> = ns
        .links
        .iter()
        .filter(|l| l.kind.as_str() == "bridge")
        .map(|l| l.name.to_string())
        .collect();
    for l in ns.links {
        if !valid_ifname(&l.name) {
            cx.err(
                &l.name,
                format!("interface name `{}` is not valid", l.name.as_str()),
                Some("use 1-15 letters, digits, -, _ or .".into()),
            );
        }
        if !seen.insert(l.name.to_string()) || l.name.as_str() == "lo" {
            cx.err(
                &l.name,
                format!(
                    "device `{}` is declared twice in namespace `{}`",
                    l.name.as_str(),
                    name.as_str()
                ),
                None,
            );
        }
        check_mac(cx, &l.mac);
        if let Some(m) = &l.master {
            if !bridges.contains(m.as_str()) {
                cx.err(
                    m,
                    format!(
                        "`{}` is not a bridge declared in namespace `{}`",
                        m.as_str(),
                        name.as_str()
                    ),
                    Some("declare `{ name: ..., kind: bridge }` in the same namespace".into()),
                );
            }
        }
        let no_extra = |cx: &mut Ctx, kind: &str, l: &raw::Link| {
            for (present, key) in [
                (l.peer.is_some(), "peer"),
                (
                    l.parent.is_some() && kind != "macvlan" && kind != "vxlan",
                    "parent",
                ),
                (l.mode.is_some() && kind != "macvlan", "mode"),
                (l.vni.is_some() && kind != "vxlan", "vni"),
                (l.remote.is_some() && kind != "vxlan", "remote"),
                (l.local.is_some() && kind != "vxlan", "local"),
                (l.dstport.is_some() && kind != "vxlan", "dstport"),
            ] {
                if present && !(key == "peer" && kind == "veth") {
                    cx.err(&l.kind, format!("a {kind} link has no `{key}`"), None);
                }
            }
        };
        let kind = match l.kind.as_str() {
            "veth" => {
                let Some(p) = &l.peer else {
                    cx.err(&l.kind, "a veth needs a `peer: { namespace, name }`", None);
                    continue;
                };
                no_extra(cx, "veth", &l);
                if !ns_names.iter().any(|n| n == p.namespace.as_str()) {
                    let near = did_you_mean(&p.namespace, ns_names.iter().map(String::as_str));
                    cx.err(
                        &p.namespace,
                        format!("veth peer namespace `{}` is not declared", p.namespace.as_str()),
                        Some(match near {
                            Some(n) => format!("did you mean `{n}`? peers must be in the scenario's own namespaces"),
                            None => "declare it under `namespaces:`; veths never reach the root namespace".into(),
                        }),
                    );
                }
                if !valid_ifname(&p.name) {
                    cx.err(
                        &p.name,
                        format!("interface name `{}` is not valid", p.name.as_str()),
                        Some("use 1-15 letters, digits, -, _ or .".into()),
                    );
                }
                check_mac(cx, &p.mac);
                LinkKind::Veth {
                    peer_ns: p.namespace.to_string(),
                    peer: p.name.to_string(),
                    peer_mac: p.mac.as_ref().map(|m| m.to_string()),
                    peer_master: p.master.as_ref().map(|m| m.to_string()),
                }
            }
            k @ ("tun" | "tap" | "bridge") => {
                no_extra(cx, k, &l);
                match k {
                    "tun" => LinkKind::Tun,
                    "tap" => LinkKind::Tap,
                    _ => LinkKind::Bridge,
                }
            }
            "macvlan" => {
                no_extra(cx, "macvlan", &l);
                let Some(parent) = &l.parent else {
                    cx.err(&l.kind, "a macvlan needs a `parent` device", None);
                    continue;
                };
                check_dev(cx, parent);
                let mode = l
                    .mode
                    .as_ref()
                    .map_or("bridge".to_string(), |m| m.to_string());
                if !["bridge", "private", "vepa", "passthru"].contains(&mode.as_str()) {
                    cx.err(
                        l.mode.as_ref().unwrap(),
                        format!("unknown macvlan mode `{mode}`"),
                        Some("modes: bridge, private, vepa, passthru".into()),
                    );
                }
                LinkKind::Macvlan {
                    parent: parent.to_string(),
                    mode,
                }
            }
            "vxlan" => {
                no_extra(cx, "vxlan", &l);
                let Some(vni) = &l.vni else {
                    cx.err(&l.kind, "a vxlan needs a `vni`", None);
                    continue;
                };
                if let Some(p) = &l.parent {
                    check_dev(cx, p);
                }
                LinkKind::Vxlan {
                    vni: **vni,
                    remote: l.remote.as_ref().and_then(|r| cx.ip(r, "remote")),
                    local: l.local.as_ref().and_then(|r| cx.ip(r, "local")),
                    parent: l.parent.as_ref().map(|p| p.to_string()),
                    dstport: l.dstport.as_ref().map_or(4789, |d| **d),
                }
            }
            other => {
                let kinds = ["veth", "tun", "tap", "bridge", "macvlan", "vxlan"];
                let near = did_you_mean(other, kinds);
                cx.err(
                    &l.kind,
                    format!("unknown link kind `{other}`"),
                    Some(near.map_or(format!("kinds: {}", kinds.join(", ")), |n| {
                        format!("did you mean `{n}`?")
                    })),
                );
                continue;
            }
        };
        links.push(Link {
            name: l.name.to_string(),
            kind,
            mtu: l.mtu.map(|m| *m),
            up: l.up.is_none_or(|u| *u),
            mac: l.mac.map(|m| m.to_string()),
            master: l.master.map(|m| m.to_string()),
            at: cx.loc(&l.name),
        });
    }

    let mut addresses = vec![];
    for a in ns.addresses {
        check_dev(cx, &a.dev);
        if let Some((addr, prefix)) = cx.cidr(&a.addr, "address") {
            addresses.push(Address {
                dev: a.dev.to_string(),
                addr,
                prefix,
                at: cx.loc(&a.addr),
            });
        }
    }

    let mut routes = vec![];
    for r in ns.routes {
        let to = if r.to.as_str() == "default" {
            None
        } else {
            cx.cidr(&r.to, "route destination")
        };
        let via = r.via.as_ref().and_then(|v| cx.ip(v, "gateway"));
        let src = r.src.as_ref().and_then(|v| cx.ip(v, "source"));
        if let Some(d) = &r.dev {
            check_dev(cx, d);
        }
        let kind = match r.kind.as_ref().map(|k| k.as_str()) {
            None | Some("unicast") => RouteType::Unicast,
            Some("blackhole") => RouteType::Blackhole,
            Some("unreachable") => RouteType::Unreachable,
            Some("prohibit") => RouteType::Prohibit,
            Some(other) => {
                cx.err(
                    r.kind.as_ref().unwrap(),
                    format!("unknown route type `{other}`"),
                    Some("types: unicast, blackhole, unreachable, prohibit".into()),
                );
                RouteType::Unicast
            }
        };
        if kind == RouteType::Unicast && via.is_none() && r.dev.is_none() {
            cx.err(&r.to, "a route needs `via` or `dev`", None);
        }
        let v6 = to
            .map(|(a, _)| a.is_ipv6())
            .or(via.map(|a| a.is_ipv6()))
            .unwrap_or(false);
        if let (Some((t, _)), Some(v)) = (to, via) {
            if t.is_ipv4() != v.is_ipv4() {
                cx.err(
                    r.via.as_ref().unwrap(),
                    "gateway and destination are of different IP families",
                    None,
                );
            }
        }
        routes.push(Route {
            to,
            v6,
            via,
            dev: r.dev.map(|d| d.to_string()),
            src,
            metric: r.metric.map(|m| *m),
            table: r.table.map(|t| *t),
            kind,
            at: cx.loc(&r.to),
        });
    }

    let mut sysctls = vec![];
    let mut raw_sysctls: Vec<_> = ns.sysctls.into_iter().collect();
    raw_sysctls.sort_by_key(|(k, _)| span_pos(k));
    for (k, v) in raw_sysctls {
        // Only per-namespace sysctls: anything else would change the host.
        let ok_chars = k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !k.starts_with("net.") || !ok_chars || k.contains("..") {
            cx.err(
                &k,
                format!("sysctl `{}` is not a per-namespace `net.*` key", k.as_str()),
                Some(
                    "only net.* sysctls are allowed: they are private to the scenario's namespace"
                        .into(),
                ),
            );
            continue;
        }
        if let Some(why) = host_wide_sysctl(&k) {
            cx.err(
                &k,
                format!("sysctl `{}` is {why}", k.as_str()),
                Some("a scenario may set only sysctls each namespace has its own copy of (net.ipv4.*, net.ipv6.*, net.netfilter.*, net.core.somaxconn ...)".into()),
            );
            continue;
        }
        if v.len() > 4096 {
            cx.err(&v, "a sysctl value of more than 4096 bytes", None);
            continue;
        }
        sysctls.push((k.to_string(), v.to_string()));
    }

    let mut rules = vec![];
    for r in ns.rules {
        for d in [&r.iif, &r.oif].into_iter().flatten() {
            check_dev(cx, d);
        }
        let prefix = |a: &Option<raw::S>, cx: &mut Ctx| match a {
            Some(a) if a.as_str() != "all" => cx.cidr(a, "rule prefix"),
            _ => None,
        };
        let (from, to) = (prefix(&r.from, cx), prefix(&r.to, cx));
        if let (Some((f, _)), Some((t, _))) = (from, to) {
            if f.is_ipv4() != t.is_ipv4() {
                cx.err(
                    r.to.as_ref().unwrap(),
                    "`from` and `to` are of different IP families",
                    None,
                );
            }
        }
        let fwmark = r.fwmark.as_ref().and_then(|m| {
            let parsed = parse_fwmark(m);
            if parsed.is_none() {
                cx.err(
                    m,
                    format!("fwmark `{}` is not a number or number/mask", m.as_str()),
                    Some("write e.g. 0x10, 16 or 0x10/0xff".into()),
                );
            }
            parsed
        });
        let action = match r.action.as_ref().map(|a| (a, a.as_str())) {
            None | Some((_, "lookup")) => None,
            Some((_, "blackhole")) => Some(RuleAction::Blackhole),
            Some((_, "unreachable")) => Some(RuleAction::Unreachable),
            Some((_, "prohibit")) => Some(RuleAction::Prohibit),
            Some((a, other)) => {
                cx.err(
                    a,
                    format!("unknown rule action `{other}`"),
                    Some("actions: lookup (with table), blackhole, unreachable, prohibit".into()),
                );
                None
            }
        };
        let first: Option<Option<Location>> =
            [&r.from, &r.to, &r.iif, &r.oif, &r.fwmark, &r.action]
                .into_iter()
                .flatten()
                .next()
                .map(|s| cx.loc(s));
        let at = first
            .or_else(|| r.table.as_ref().map(|t| cx.loc(t)))
            .or_else(|| r.priority.as_ref().map(|p| cx.loc(p)))
            .flatten();
        rules.push(Rule {
            v6: [from, to].into_iter().flatten().any(|(a, _)| a.is_ipv6()),
            from,
            to,
            iif: r.iif.map(|x| x.to_string()),
            oif: r.oif.map(|x| x.to_string()),
            fwmark,
            table: r.table.map(|t| *t),
            priority: r.priority.map(|t| *t),
            action,
            at,
        });
    }

    let mut neighbors = vec![];
    for n in ns.neighbors {
        check_dev(cx, &n.dev);
        if !valid_mac(&n.lladdr) {
            cx.err(
                &n.lladdr,
                format!("`{}` is not a MAC address", n.lladdr.as_str()),
                None,
            );
        }
        if let Some(addr) = cx.ip(&n.addr, "neighbour address") {
            neighbors.push(Neighbor {
                dev: n.dev.to_string(),
                addr,
                lladdr: n.lladdr.to_string(),
                at: cx.loc(&n.addr),
            });
        }
    }

    let cni = ns.cni.and_then(|c| cni_attachment(cx, name, c, ns_names));
    let nft = ruleset(cx, ns.nft, ns.nft_file, "nft");
    let iptables = ruleset(cx, ns.iptables, ns.iptables_file, "iptables");
    let ip6tables = ruleset(cx, ns.ip6tables, ns.ip6tables_file, "ip6tables");

    let mut tc = vec![];
    for t in ns.tc {
        match (&t.command, &t.program) {
            (Some(c), None) => {
                if t.dev.is_some() || t.direction.is_some() || !t.config.is_empty() {
                    cx.err(
                        c,
                        "a tc `command` takes no `dev`, `direction` or `config`",
                        Some(
                            "write the whole command line, e.g. `filter add dev veth0 ingress ...`"
                                .into(),
                        ),
                    );
                }
                let words: Vec<&str> = c.split_whitespace().collect();
                // tc's `-b[atch] FILE` reads (and echoes) a host file, and
                // `-n[etns] NAME` leaves the scenario's namespace.
                if words.iter().any(|w| w.starts_with("-b")) {
                    cx.err(
                        c,
                        "a tc `command` may not read a batch file (`-batch`)",
                        Some("write each tc command as its own `command` entry".into()),
                    );
                }
                if words.iter().any(|w| *w == "-n" || w.starts_with("-net")) {
                    cx.err(
                        c,
                        "a tc `command` runs in its own namespace; `-netns` is refused",
                        Some("put the tc entry under the namespace it is for".into()),
                    );
                }
                if crate::project::no_commands() {
                    cx.err(
                        c,
                        "this scenario runs a tc command line as root on the host; refused by --no-commands",
                        Some("review the scenario, then run it without --no-commands".into()),
                    );
                }
                tc.push(TcSpec::Command(c.to_string()));
            }
            (None, Some(p)) => {
                let Some(dev) = &t.dev else {
                    cx.err(p, "a tc program needs a `dev`", None);
                    continue;
                };
                check_dev(cx, dev);
                let ingress = match t.direction.as_ref().map(|d| d.as_str()) {
                    None | Some("ingress") => true,
                    Some("egress") => false,
                    Some(other) => {
                        cx.err(
                            t.direction.as_ref().unwrap(),
                            format!("unknown direction `{other}`"),
                            Some("ingress or egress".into()),
                        );
                        true
                    }
                };
                if let Some(o) = &t.object {
                    if !t.config.is_empty() {
                        cx.err(
                            o,
                            "`config` is for the built-in programs; set your object's maps with `maps`",
                            None,
                        );
                    }
                    if let Some(object) = bpf_object(cx, o, p, t.maps.clone()) {
                        tc.push(TcSpec::Object {
                            dev: dev.to_string(),
                            ingress,
                            object,
                        });
                    }
                    continue;
                }
                if let Some(m) = t.maps.as_ref().and_then(|m| m.keys().next()) {
                    cx.err(m, "`maps` needs your own `object`", None);
                }
                let known = crate::fixtures::TC_PROGRAMS;
                match known.iter().find(|k| k.name == p.as_str()) {
                    None => {
                        let near = did_you_mean(p, known.iter().map(|k| k.name));
                        let names: Vec<&str> = known.iter().map(|k| k.name).collect();
                        cx.err(
                            p,
                            format!("unknown tc program `{}`", p.as_str()),
                            Some(near.map_or(format!("programs: {}", names.join(", ")), |n| {
                                format!("did you mean `{n}`?")
                            })),
                        );
                    }
                    Some(k) => {
                        let mut config = vec![];
                        let mut keys: Vec<_> = t.config.iter().collect();
                        keys.sort_by_key(|(k, _)| span_pos(k));
                        for (key, v) in keys {
                            if !k.config.contains(&key.as_str()) {
                                cx.err(
                                    key,
                                    format!("`{}` takes no config key `{}`", k.name, key.as_str()),
                                    Some(format!("its keys: {}", k.config.join(", "))),
                                );
                            }
                            config.push((key.to_string(), **v));
                        }
                        tc.push(TcSpec::Program {
                            dev: dev.to_string(),
                            ingress,
                            program: p.to_string(),
                            config,
                        });
                    }
                }
            }
            _ => {
                let at = t.command.as_ref().or(t.program.as_ref()).or(t.dev.as_ref());
                let msg = "a tc entry has either `program` (with `dev`, `direction`, `config`) or `command`";
                match at {
                    Some(a) => cx.err(a, msg, None),
                    None => cx.errors.push(ScenarioError {
                        loc: None,
                        file: cx.file.to_path_buf(),
                        msg: msg.into(),
                        hint: None,
                    }),
                }
            }
        }
    }

    let mut xdp = vec![];
    for x in ns.xdp {
        check_dev(cx, &x.dev);
        let mode = match x.mode.as_ref().map(|m| m.as_str()) {
            None | Some("auto") => XdpMode::Auto,
            Some("skb") | Some("generic") => XdpMode::Skb,
            Some("drv") | Some("native") => XdpMode::Drv,
            Some("hw") | Some("offload") => XdpMode::Hw,
            Some(other) => {
                cx.err(
                    x.mode.as_ref().unwrap(),
                    format!("unknown XDP mode `{other}`"),
                    Some("auto, skb (generic), drv (native) or hw (offload)".into()),
                );
                XdpMode::Auto
            }
        };
        if let Some(object) = bpf_object(cx, &x.object, &x.program, x.maps) {
            xdp.push(XdpSpec {
                dev: x.dev.to_string(),
                mode,
                object,
            });
        }
    }

    let mut listen = vec![];
    for l in ns.listen {
        let proto = match l.proto.as_str() {
            "tcp" => SockProto::Tcp,
            "udp" => SockProto::Udp,
            other => {
                cx.err(
                    &l.proto,
                    format!("cannot listen on `{other}`"),
                    Some("tcp or udp".into()),
                );
                continue;
            }
        };
        listen.push(Listener {
            proto,
            port: *l.port,
            addr: l.addr.as_ref().and_then(|a| cx.ip(a, "listen address")),
        });
    }

    Namespace {
        name: name.to_string(),
        links,
        addresses,
        routes,
        sysctls,
        rules,
        neighbors,
        nft,
        iptables,
        ip6tables,
        cni,
        tc,
        xdp,
        listen,
        run: ns
            .run
            .into_iter()
            .inspect(|r| {
                if crate::project::no_commands() {
                    cx.err(
                        r,
                        "this scenario runs a shell command as root on the host (`run:`); refused by --no-commands",
                        Some("review the scenario, then run it without --no-commands".into()),
                    );
                }
            })
            .map(|r| r.to_string())
            .collect(),
    }
}

fn parse_devref(cx: &mut Ctx, s: &raw::S, devs: &DevIndex) -> Option<DeviceRef> {
    let Some((ns, dev)) = s.split_once('/') else {
        cx.err(
            s,
            format!("`{}` is not `namespace/device`", s.as_str()),
            Some("write e.g. `host/tun0`".into()),
        );
        return None;
    };
    let Some(set) = devs.get(ns) else {
        let near = did_you_mean(ns, devs.keys().map(String::as_str));
        cx.err(
            s,
            format!("no namespace `{ns}`"),
            near.map(|n| format!("did you mean `{n}`?")),
        );
        return None;
    };
    if !set.contains(dev) {
        let near = did_you_mean(dev, set.iter().map(String::as_str));
        cx.err(
            s,
            format!("no device `{dev}` in namespace `{ns}`"),
            near.map(|n| format!("did you mean `{n}`?")),
        );
        return None;
    }
    Some(DeviceRef {
        ns: ns.into(),
        dev: dev.into(),
    })
}

fn validate_packet(
    cx: &mut Ctx,
    name: String,
    p: raw::Packet,
    _namespaces: &[Namespace],
    devs: &DevIndex,
) -> Option<Packet> {
    let i = p.inject;
    if let Some(sock) = &i.socket {
        if let Some(v) = &i.via {
            cx.err(
                v,
                "a packet is sent `via` a device or from a `socket`, not both",
                None,
            );
        }
        for (present, key) in [
            (i.ipv4.is_some(), "ipv4"),
            (i.ipv6.is_some(), "ipv6"),
            (i.tcp.is_some(), "tcp"),
            (i.udp.is_some(), "udp"),
            (i.icmp.is_some(), "icmp"),
            (i.ethernet.is_some(), "ethernet"),
        ] {
            if present {
                cx.err(
                    &sock.from,
                    format!("with `socket`, the kernel builds the packet: drop `{key}`"),
                    None,
                );
            }
        }
        let expect = validate_expect(cx, p.expect, devs);
        return validate_socket(cx, sock, devs).map(|inject| Packet {
            name,
            inject,
            expect,
        });
    }
    let Some(via_s) = i.via.clone() else {
        let e = ScenarioError {
            loc: None,
            file: cx.file.to_path_buf(),
            msg: format!("{name}: `inject` needs `via: namespace/device` or `socket:`"),
            hint: Some(
                "`via` writes a crafted packet into a device; `socket` lets the kernel build it"
                    .into(),
            ),
        };
        cx.errors.push(e);
        return None;
    };
    let via = parse_devref(cx, &via_s, devs);
    let ethernet = Ethernet {
        src: i
            .ethernet
            .as_ref()
            .and_then(|e| e.src.as_ref())
            .and_then(|m| {
                let v = parse_mac(m);
                if v.is_none() {
                    cx.err(m, format!("`{}` is not a MAC address", m.as_str()), None);
                }
                v
            }),
        dst: i
            .ethernet
            .as_ref()
            .and_then(|e| e.dst.as_ref())
            .and_then(|m| {
                let v = parse_mac(m);
                if v.is_none() {
                    cx.err(m, format!("`{}` is not a MAC address", m.as_str()), None);
                }
                v
            }),
    };
    let is_tun = via.as_ref().is_some_and(|v| {
        _namespaces
            .iter()
            .find(|n| n.name == v.ns)
            .and_then(|n| n.links.iter().find(|l| l.name == v.dev))
            .is_some_and(|l| l.kind == LinkKind::Tun)
    });
    if is_tun {
        if let Some(e) = &i.ethernet {
            let at = e.src.as_ref().or(e.dst.as_ref()).unwrap_or(&via_s);
            cx.err(
                at,
                "a tun device carries IP packets: no `ethernet` header",
                Some("use a tap device or a veth for L2 injection".into()),
            );
        }
    }
    if via.as_ref().is_some_and(|v| v.dev == "lo") {
        cx.err(
            &via_s,
            "cannot inject through `lo`",
            Some("use a tun, tap or veth device".into()),
        );
    }

    let ip = match (&i.ipv4, &i.ipv6) {
        (Some(v4), None) => {
            let src = cx.ip(&v4.src, "source");
            let dst = cx.ip(&v4.dst, "destination");
            let checksum = cx.checksum(&v4.checksum);
            match (src, dst) {
                (Some(IpAddr::V4(src)), Some(IpAddr::V4(dst))) => Some(IpLayer::V4 {
                    src,
                    dst,
                    ttl: v4.ttl.as_ref().map_or(64, |t| **t),
                    id: v4.id.as_ref().map_or(0, |t| **t),
                    tos: v4.tos.as_ref().map_or(0, |t| **t),
                    df: v4.df.as_ref().is_none_or(|t| **t),
                    checksum,
                }),
                (Some(_), Some(_)) => {
                    cx.err(
                        &v4.src,
                        "`ipv4` needs IPv4 addresses",
                        Some("use `ipv6:` for IPv6 packets".into()),
                    );
                    None
                }
                _ => None,
            }
        }
        (None, Some(v6)) => {
            let src = cx.ip(&v6.src, "source");
            let dst = cx.ip(&v6.dst, "destination");
            match (src, dst) {
                (Some(IpAddr::V6(src)), Some(IpAddr::V6(dst))) => Some(IpLayer::V6 {
                    src,
                    dst,
                    hop_limit: v6.hop_limit.as_ref().map_or(64, |t| **t),
                    traffic_class: v6.traffic_class.as_ref().map_or(0, |t| **t),
                    flow_label: v6.flow_label.as_ref().map_or(0, |t| **t & 0xfffff),
                }),
                (Some(_), Some(_)) => {
                    cx.err(
                        &v6.src,
                        "`ipv6` needs IPv6 addresses",
                        Some("use `ipv4:` for IPv4 packets".into()),
                    );
                    None
                }
                _ => None,
            }
        }
        (Some(v4), Some(_)) => {
            cx.err(&v4.src, "a packet has `ipv4` or `ipv6`, not both", None);
            None
        }
        (None, None) => {
            cx.err(
                &via_s,
                "the packet has no IP layer",
                Some("add `ipv4: { src, dst }` or `ipv6: { src, dst }`".into()),
            );
            None
        }
    };
    let v6 = matches!(ip, Some(IpLayer::V6 { .. }));

    let n_l4 = [i.tcp.is_some(), i.udp.is_some(), i.icmp.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n_l4 > 1 {
        cx.err(
            &via_s,
            "a packet has at most one of `tcp`, `udp`, `icmp`",
            None,
        );
    }
    let l4 = if let Some(t) = &i.tcp {
        let mut flags = 0u8;
        for f in t.flags.iter().flatten() {
            flags |= match f.to_ascii_lowercase().as_str() {
                "syn" => tcp_flag::SYN,
                "ack" => tcp_flag::ACK,
                "fin" => tcp_flag::FIN,
                "rst" => tcp_flag::RST,
                "psh" => tcp_flag::PSH,
                "urg" => tcp_flag::URG,
                other => {
                    cx.err(
                        f,
                        format!("unknown TCP flag `{other}`"),
                        Some("flags: syn, ack, fin, rst, psh, urg".into()),
                    );
                    0
                }
            };
        }
        if t.flags.is_none() {
            flags = tcp_flag::SYN;
        }
        L4Layer::Tcp {
            sport: *t.sport,
            dport: *t.dport,
            flags,
            seq: t.seq.as_ref().map_or(1, |s| **s),
            ack: t.ack.as_ref().map_or(0, |s| **s),
            window: t.window.as_ref().map_or(64240, |s| **s),
            checksum: cx.checksum(&t.checksum),
        }
    } else if let Some(u) = &i.udp {
        L4Layer::Udp {
            sport: *u.sport,
            dport: *u.dport,
            checksum: cx.checksum(&u.checksum),
        }
    } else if let Some(c) = &i.icmp {
        let kind = match (c.kind.as_str(), v6) {
            ("echo-request", false) => Some(8),
            ("echo-reply", false) => Some(0),
            ("echo-request", true) => Some(128),
            ("echo-reply", true) => Some(129),
            (n, _) => n.parse::<u8>().ok(),
        };
        match kind {
            Some(kind) => L4Layer::Icmp {
                kind,
                code: c.code.as_ref().map_or(0, |v| **v),
                id: c.id.as_ref().map_or(1, |v| **v),
                seq: c.seq.as_ref().map_or(1, |v| **v),
                checksum: cx.checksum(&c.checksum),
            },
            None => {
                cx.err(
                    &c.kind,
                    format!("unknown ICMP type `{}`", c.kind.as_str()),
                    Some("use echo-request, echo-reply or a number".into()),
                );
                L4Layer::None
            }
        }
    } else {
        L4Layer::None
    };

    let payload = match (&i.payload, &i.payload_hex) {
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => match decode_hex(h) {
            Some(b) => b,
            None => {
                cx.err(h, "`payload_hex` is not an even number of hex digits", None);
                vec![]
            }
        },
        (Some(t), Some(_)) => {
            cx.err(t, "give `payload` or `payload_hex`, not both", None);
            vec![]
        }
        (None, None) => vec![],
    };
    if let (Some(ip), Some(at)) = (&ip, i.payload.as_ref().or(i.payload_hex.as_ref())) {
        let l4_len = match &l4 {
            L4Layer::Tcp { .. } => 20,
            L4Layer::Udp { .. } | L4Layer::Icmp { .. } => 8,
            L4Layer::None => 0,
        };
        // IPv4's total length counts its header; IPv6's payload length not.
        let room = match ip {
            IpLayer::V4 { .. } => 65535 - 20 - l4_len,
            IpLayer::V6 { .. } => 65535 - l4_len,
        };
        if payload.len() > room {
            cx.err(
                at,
                format!(
                    "a payload of {} bytes; this packet holds at most {room}",
                    payload.len()
                ),
                Some("an IP packet is at most 65,535 bytes, headers included".into()),
            );
        }
    }

    let expect = validate_expect(cx, p.expect, devs);
    Some(Packet {
        name,
        inject: Injection::Frame {
            via: via?,
            ethernet,
            spec: PacketSpec {
                ip: ip?,
                l4,
                payload,
            },
        },
        expect,
    })
}

fn validate_socket(cx: &mut Ctx, s: &raw::Socket, devs: &DevIndex) -> Option<Injection> {
    if !devs.contains_key(s.from.as_str()) {
        let near = did_you_mean(&s.from, devs.keys().map(String::as_str));
        cx.err(
            &s.from,
            format!("no namespace `{}` to send from", s.from.as_str()),
            Some(near.map_or(
                "sockets live in the scenario's own namespaces".into(),
                |n| format!("did you mean `{n}`?"),
            )),
        );
        return None;
    }
    let proto = match s.proto.as_str() {
        "tcp" => SockProto::Tcp,
        "udp" => SockProto::Udp,
        "icmp" | "ping" => SockProto::Icmp,
        other => {
            cx.err(
                &s.proto,
                format!("unknown socket protocol `{other}`"),
                Some("tcp (connect), udp (send) or icmp (echo request)".into()),
            );
            return None;
        }
    };
    let to = cx.ip(&s.to, "destination")?;
    let port = match (&s.port, proto) {
        (Some(p), SockProto::Tcp | SockProto::Udp) => **p,
        (None, SockProto::Tcp | SockProto::Udp) => {
            cx.err(
                &s.proto,
                "a tcp or udp socket needs a destination `port`",
                None,
            );
            return None;
        }
        (Some(p), SockProto::Icmp) => {
            cx.err(p, "an icmp echo has no port", None);
            0
        }
        (None, SockProto::Icmp) => 0,
    };
    Some(Injection::Socket {
        from: s.from.to_string(),
        proto,
        to,
        port,
        sport: s.sport.as_ref().map(|p| **p),
        payload: s
            .payload
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        id: s.id.as_ref().map_or(0x7066, |v| **v),
        seq: s.seq.as_ref().map_or(1, |v| **v),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Parses `func`, `func@ns` or `func@ns/dev`.
pub fn parse_step(s: &str) -> Result<PathStep, String> {
    let (s, kernel) = match s
        .trim_end()
        .strip_suffix(')')
        .and_then(|x| x.rsplit_once("(kernel"))
    {
        Some((step, range)) => (
            step.trim_end(),
            Some(KernelRange::parse(range).map_err(|e| format!("in `{s}`: {e}"))?),
        ),
        None => (s, None),
    };
    let (func, qual) = match s.split_once('@') {
        Some((f, q)) => (f, Some(q)),
        None => (s, None),
    };
    let func = func.trim();
    if func.is_empty()
        || !func
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    {
        return Err(format!("`{s}` is not a function or hook name"));
    }
    let (ns, dev) = match qual {
        None => (None, None),
        Some(q) => match q.split_once('/') {
            Some((n, d)) => (Some(n.to_string()), Some(d.to_string())),
            None => (Some(q.to_string()), None),
        },
    };
    Ok(PathStep {
        func: func.to_string(),
        ns,
        dev,
        kernel,
    })
}

/// Parses a step and checks its namespace and device exist.
fn step_checked(cx: &mut Ctx, s: &raw::S, devs: &DevIndex) -> Option<PathStep> {
    let step = match parse_step(s) {
        Ok(step) => step,
        Err(m) => {
            cx.err(
                s,
                m,
                Some(
                    "write `function`, `function@namespace` or `function@namespace/device`, optionally followed by `(kernel >= 6.10)`".into(),
                ),
            );
            return None;
        }
    };
    if let Some(ns) = &step.ns {
        match devs.get(ns) {
            None => {
                cx.err(
                    s,
                    format!("step names namespace `{ns}`, which the scenario does not declare"),
                    None,
                );
                return None;
            }
            Some(set) => {
                if let Some(d) = step.dev.as_ref().filter(|d| !set.contains(*d)) {
                    let near = did_you_mean(d, set.iter().map(String::as_str));
                    cx.err(
                        s,
                        format!("step names device `{d}`, which namespace `{ns}` does not have"),
                        near.map(|n| format!("did you mean `{n}`?")),
                    );
                    return None;
                }
            }
        }
    }
    Some(step)
}

fn validate_expect(cx: &mut Ctx, e: raw::Expect, devs: &DevIndex) -> Expectation {
    let fate = e.fate.as_ref().and_then(|f| match Fate::parse(f) {
        Some(x) => Some(x),
        None => {
            let near = did_you_mean(f, Fate::ALL);
            cx.err(
                f,
                format!("unknown fate `{}`", f.as_str()),
                Some(
                    near.map_or(format!("fates: {}", Fate::ALL.join(", ")), |n| {
                        format!("did you mean `{n}`?")
                    }),
                ),
            );
            None
        }
    });
    if let (Some(r), Some(f)) = (&e.reason, fate) {
        if f != Fate::Dropped {
            cx.err(
                r,
                format!("`reason` only applies to dropped packets, but fate is `{f}`"),
                None,
            );
        }
    }
    let mut seen = vec![];
    for x in e.seen.iter().flatten() {
        let Some(step) = step_checked(cx, &x.at, devs) else {
            continue;
        };
        seen.push(Seen {
            at: step,
            src: x.src.as_ref().and_then(|a| cx.ip(a, "source")),
            dst: x.dst.as_ref().and_then(|a| cx.ip(a, "destination")),
            sport: x.sport.as_ref().map(|v| **v),
            dport: x.dport.as_ref().map(|v| **v),
            ttl: x.ttl.as_ref().map(|v| **v),
        });
    }
    let reply = e.reply.map(|r| Box::new(validate_expect(cx, *r, devs)));
    let mut not_path = vec![];
    for st in e.not_path.iter().flatten() {
        if let Some(x) = step_checked(cx, st, devs) {
            not_path.push(x);
        }
    }
    let mut transmitted = vec![];
    for t in e.transmitted.iter().flatten() {
        let (ns, dev) = t.split_once('/').unwrap_or((t.as_str(), ""));
        match devs.get(ns) {
            None => cx.err(t, format!("no namespace `{ns}`"), None),
            Some(set) if !dev.is_empty() && !set.contains(dev) => {
                cx.err(t, format!("no device `{dev}` in namespace `{ns}`"), None)
            }
            Some(_) => transmitted.push(DeviceRef {
                ns: ns.into(),
                dev: dev.into(),
            }),
        }
    }
    let icmp = e.icmp.map(|i| IcmpError {
        kind: *i.kind,
        code: i.code.map(|c| *c),
    });
    let allow_drops: Vec<String> = e
        .allow_drops
        .iter()
        .flatten()
        .map(|r| r.trim().to_string())
        .collect();
    if !allow_drops.is_empty() && !e.no_unexpected_drops.as_ref().is_some_and(|b| **b) {
        if let Some(first) = e.allow_drops.as_ref().and_then(|v| v.first()) {
            cx.err(
                first,
                "`allow_drops` only applies with `no_unexpected_drops: true`",
                None,
            );
        }
    }
    let mut path = vec![];
    for s in e.path.iter().flatten() {
        if let Some(step) = step_checked(cx, s, devs) {
            path.push(step);
        }
    }
    let mut kernels = vec![];
    let mut entries: Vec<_> = e.kernels.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| span_pos(k));
    for (range_s, x) in entries {
        let range = match KernelRange::parse(&range_s) {
            Ok(r) => r,
            Err(m) => {
                cx.err(
                    &range_s,
                    m,
                    Some("write e.g. \"< 6.13\" or \">=5.17, <6.10\"".into()),
                );
                continue;
            }
        };
        if let Some(k) = x.kernels.as_ref().and_then(|m| m.keys().next()) {
            cx.err(k, "`kernels` entries cannot nest", None);
            continue;
        }
        let set = [
            ("fate", x.fate.is_some()),
            ("reason", x.reason.is_some()),
            ("at", x.at.is_some()),
            ("path", x.path.is_some()),
            ("seen", x.seen.is_some()),
            ("reply", x.reply.is_some()),
            ("not_path", x.not_path.is_some()),
            ("icmp", x.icmp.is_some()),
            ("transmitted", x.transmitted.is_some()),
            ("no_unexpected_drops", x.no_unexpected_drops.is_some()),
            ("allow_drops", x.allow_drops.is_some()),
        ];
        let keys = set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
        kernels.push(KernelOverride {
            range,
            expect: validate_expect(cx, x, devs),
            keys,
        });
    }
    Expectation {
        kernels,
        fate: fate.or(e.reason.as_ref().map(|_| Fate::Dropped)),
        reason_loc: e.reason.as_ref().and_then(|r| cx.loc(r)),
        reason: e.reason.map(|r| r.trim().to_string()),
        at: e.at.map(|a| a.trim().to_string()),
        path,
        seen,
        reply,
        not_path,
        icmp,
        transmitted,
        no_unexpected_drops: e.no_unexpected_drops.is_some_and(|b| *b),
        allow_drops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
# A comment
name: sample
namespaces:
  host:
    links:
      - { name: tun0, kind: tun }
      - name: veth0
        kind: veth
        peer: { namespace: peer, name: veth1 }
    addresses:
      - { dev: tun0, addr: 172.30.0.10/32 }
      - { dev: veth0, addr: 203.0.113.1/24 }
    routes:
      - { to: default, via: 203.0.113.2, dev: veth0 }
    sysctls:
      net.ipv4.ip_forward: 1
  peer:
    addresses:
      - { dev: veth1, addr: 203.0.113.2/24 }
inject:
  via: host/tun0
  ipv4: { src: 172.30.0.1, dst: 192.0.2.8, checksum: bad }
  tcp: { sport: 41626, dport: 10001, flags: [syn], seq: 2148230009 }
expect:
  fate: dropped
  reason: SKB_DROP_REASON_IP_CSUM
  at: ip_rcv_core
  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]
"#;

    fn parse(s: &str) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::parse(Path::new("t.yaml"), s)
    }

    fn first_err(s: &str) -> ScenarioError {
        parse(s).unwrap_err().remove(0)
    }

    #[test]
    fn user_objects_must_be_elf_files_of_the_project_with_numeric_map_entries() {
        let dir = std::env::temp_dir().join(format!("pf-obj-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pktfate.toml"), "").unwrap();
        std::fs::write(dir.join("prog.o"), b"\x7fELF\x02\x01\x01").unwrap();
        std::fs::write(dir.join("notes.txt"), "not an object").unwrap();
        let file = dir.join("s.yaml");
        let yaml = |xdp: &str| {
            format!(
                "namespaces:\n  a:\n    links:\n      - {{ name: v0, kind: veth, peer: {{ namespace: b, name: v1 }} }}\n  b:\n    xdp:\n      - {xdp}\ninject:\n  socket: {{ from: a, proto: udp, to: 192.0.2.9, port: 9 }}\nexpect:\n  fate: dropped\n"
            )
        };
        let s = Scenario::parse(
            &file,
            &yaml("{ dev: v1, object: prog.o, program: p, mode: skb, maps: { M: { 0x10: 7 } } }"),
        )
        .unwrap();
        let x = &s.namespace("b").unwrap().xdp[0];
        assert_eq!(x.mode, XdpMode::Skb);
        assert_eq!(x.object.maps, vec![("M".to_string(), vec![(16, 7)])]);
        assert_eq!(x.object.at.as_ref().map(|l| l.line), Some(7));
        for (xdp, want) in [
            (
                "{ dev: v1, object: notes.txt, program: p }",
                "not an ELF object",
            ),
            (
                "{ dev: v1, object: /etc/passwd, program: p }",
                "--allow-path",
            ),
            (
                "{ dev: v1, object: prog.o, program: p, maps: { M: { x: 1 } } }",
                "map key `x`",
            ),
            (
                "{ dev: v1, object: prog.o, program: p, mode: turbo }",
                "unknown XDP mode",
            ),
            ("{ dev: v9, object: prog.o, program: p }", "v9"),
        ] {
            let e = Scenario::parse(&file, &yaml(xdp)).unwrap_err().remove(0);
            let text = format!("{} {}", e.msg, e.hint.clone().unwrap_or_default());
            assert!(text.contains(want), "{xdp}: {text}");
            assert_eq!(e.loc.map(|l| l.line), Some(7), "{xdp}: {}", e.msg);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cni_entry_needs_another_scenario_namespace_and_a_conflist() {
        let dir = std::env::temp_dir().join(format!("pf-cni-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pktfate.toml"), "").unwrap();
        std::fs::write(
            dir.join("ok.conflist"),
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","bridge":"br7"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("evil.conflist"),
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
        )
        .unwrap();
        let file = dir.join("s.yaml");
        let yaml = |cni: &str| {
            format!(
                "namespaces:\n  node: {{}}\n  pod:\n    cni: {cni}\ninject:\n  socket: {{ from: pod, proto: udp, to: 192.0.2.9, port: 9 }}\nexpect:\n  fate: dropped\n  path: [net_dev_start_xmit@node/br7, netif_receive_skb@pod/eth0]\n"
            )
        };
        let s = Scenario::parse(
            &file,
            &yaml("{ node: node, conflist: ok.conflist, args: { A: b } }"),
        )
        .unwrap();
        let c = s.namespace("pod").unwrap().cni.clone().unwrap();
        assert_eq!((c.node.as_str(), c.ifname.as_str()), ("node", "eth0"));
        assert_eq!(c.args, vec![("A".to_string(), "b".to_string())]);
        for (cni, want) in [
            (
                "{ node: pod, conflist: ok.conflist }",
                "not another namespace",
            ),
            (
                "{ node: nowhere, conflist: ok.conflist }",
                "not another namespace",
            ),
            (
                "{ node: node, conflist: evil.conflist }",
                "not a plain name",
            ),
            ("{ node: node, conflist: missing.conflist }", "no file"),
        ] {
            let e = Scenario::parse(&file, &yaml(cni)).unwrap_err().remove(0);
            assert!(e.msg.contains(want), "{cni}: {e}");
            assert_eq!(e.loc.map(|l| l.line), Some(4), "{cni}: {}", e.msg);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rules_are_typed_and_located_when_read() {
        let with_rules = |rules: &str| {
            GOOD.replace(
                "    sysctls:\n      net.ipv4.ip_forward: 1\n",
                &format!("    sysctls:\n      net.ipv4.ip_forward: 1\n    rules:\n{rules}"),
            )
        };
        let s = parse(&with_rules(
            "      - { from: 2001:db8::/32, fwmark: 0x10/0xff, table: 7 }\n      - { to: all, action: prohibit }\n",
        ))
        .unwrap();
        let r = &s.namespace("host").unwrap().rules;
        assert_eq!(r[0].from, Some(("2001:db8::".parse().unwrap(), 32)));
        assert!(r[0].v6);
        assert_eq!(r[0].fwmark, Some((0x10, Some(0xff))));
        assert_eq!(r[0].at.as_ref().map(|l| (l.line, l.col)), Some((19, 17)));
        assert_eq!((r[1].to, r[1].v6), (None, false), "`all` is no prefix");
        assert_eq!(r[1].action, Some(RuleAction::Prohibit));

        let e = first_err(&with_rules("      - { fwmark: 0x1g }\n"));
        assert!(e.msg.contains("fwmark `0x1g`"), "{e}");
        assert_eq!(e.loc.map(|l| l.line), Some(19));
        let e = first_err(&with_rules(
            "      - { from: 192.0.2.0/24, to: 2001:db8::/32 }\n",
        ));
        assert!(e.msg.contains("different IP families"), "{e}");
    }

    #[test]
    fn parses_a_full_scenario() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "sample");
        assert_eq!(s.namespaces.len(), 2);
        let host = s.namespace("host").unwrap();
        assert_eq!(
            host.links[1].kind,
            LinkKind::Veth {
                peer_ns: "peer".into(),
                peer: "veth1".into(),
                peer_mac: None,
                peer_master: None,
            }
        );
        assert_eq!(host.routes[0].to, None);
        assert_eq!(
            host.sysctls,
            vec![("net.ipv4.ip_forward".to_string(), "1".to_string())]
        );
        let p = &s.packets[0];
        let Injection::Frame { via, spec, .. } = &p.inject else {
            panic!("a crafted packet")
        };
        assert_eq!(
            *via,
            DeviceRef {
                ns: "host".into(),
                dev: "tun0".into()
            }
        );
        assert!(matches!(
            spec.ip,
            IpLayer::V4 {
                checksum: Checksum::Bad,
                ttl: 64,
                ..
            }
        ));
        assert!(matches!(
            spec.l4,
            L4Layer::Tcp {
                flags: tcp_flag::SYN,
                seq: 2148230009,
                ..
            }
        ));
        assert_eq!(p.expect.fate, Some(Fate::Dropped));
        assert_eq!(p.expect.at.as_deref(), Some("ip_rcv_core"));
        assert_eq!(
            p.expect.path[1],
            PathStep {
                func: "netif_receive_skb".into(),
                ns: Some("host".into()),
                dev: Some("tun0".into()),
                kernel: None,
            }
        );
        assert_eq!(
            p.expect.reason_loc.as_ref().map(|l| (l.line, l.col)),
            Some((27, 11))
        );
    }

    #[test]
    fn unknown_key_points_at_it_with_a_suggestion() {
        let e = first_err(&GOOD.replace("  fate: dropped", "  fait: dropped"));
        assert_eq!(e.loc.as_ref().map(|l| (l.line, l.col)), Some((26, 3)));
        assert_eq!(e.msg, "unknown key `fait`");
        assert!(e.hint.unwrap().starts_with("did you mean `fate`?"));
    }

    #[test]
    fn bad_values_carry_file_line_col() {
        let e = first_err(&GOOD.replace("fate: dropped", "fate: droped"));
        assert_eq!(
            e.to_string(),
            "t.yaml:26:9: unknown fate `droped`\n  hint: did you mean `dropped`?"
        );
        let e = first_err(&GOOD.replace("203.0.113.2, dev", "203.0.113.x, dev"));
        assert_eq!(
            (e.loc.unwrap().line, e.msg.as_str()),
            (15, "gateway `203.0.113.x` is not an IP address")
        );
        let e = first_err(&GOOD.replace("sport: 41626", "sport: 99999"));
        assert_eq!(e.loc.unwrap().line, 24);
        let e = first_err(&GOOD.replace("{ namespace: peer,", "{ namespace: pear,"));
        assert!(e.hint.unwrap().contains("did you mean `peer`"));
    }

    #[test]
    fn references_must_resolve() {
        let e = first_err(&GOOD.replace("via: host/tun0", "via: host/tun9"));
        assert_eq!(e.msg, "no device `tun9` in namespace `host`");
        let e = first_err(&GOOD.replace("via: host/tun0", "via: host/lo"));
        assert!(e.msg.contains("cannot inject through `lo`"), "{}", e.msg);
        let e =
            first_err(&GOOD.replace("netif_receive_skb@host/tun0", "netif_receive_skb@nowhere"));
        assert!(e.msg.contains("namespace `nowhere`"));
        let e = first_err(&GOOD.replace("{ dev: veth1,", "{ dev: veth2,"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `veth1`?"));
    }

    #[test]
    fn only_namespace_sysctls_are_allowed() {
        let e = first_err(&GOOD.replace("net.ipv4.ip_forward: 1", "kernel.panic: 1"));
        assert!(e.msg.contains("not a per-namespace"));
        let e =
            first_err(&GOOD.replace("net.ipv4.ip_forward: 1", "net.ipv4/../../kernel/panic: 1"));
        assert!(e.msg.contains("not a per-namespace"));
    }

    #[test]
    fn syntax_and_duplicate_key_errors_are_located() {
        let e = first_err("namespaces:\n  a: [\n");
        assert!(e.msg.starts_with("invalid YAML"), "{}", e.msg);
        assert!(e.loc.is_some());
        let e = first_err("namespaces:\n  a: {}\n  a: {}\n");
        assert!(e.msg.contains("Duplicate key"), "{}", e.msg);
        assert_eq!(e.loc.unwrap().line, 3);
    }

    #[test]
    fn reasons_are_checked_against_the_kernel_table() {
        let reasons = DropReasons::from_pairs([
            ("SKB_DROP_REASON_IP_CSUM".to_string(), 5),
            ("SKB_DROP_REASON_NO_SOCKET".to_string(), 6),
        ]);
        let mut s = parse(GOOD).unwrap();
        s.check_against_kernel(&reasons).unwrap();
        assert_eq!(s.packets[0].expect.reason.as_deref(), Some("IP_CSUM"));
        let mut s = parse(&GOOD.replace("SKB_DROP_REASON_IP_CSUM", "IP_CSUMM")).unwrap();
        let e = s.check_against_kernel(&reasons).unwrap_err().remove(0);
        assert_eq!(e.msg, "unknown drop reason `IP_CSUMM` on this kernel");
        assert!(e.hint.unwrap().contains("did you mean IP_CSUM"));
        assert_eq!(e.loc.unwrap().line, 27);
    }

    fn ns_with(links: &str, extra: &str) -> String {
        format!(
            "namespaces:\n  a:\n    links:\n{links}\n{extra}\n  b: {{}}\ninject:\n  socket: {{ from: a, proto: tcp, to: 192.0.2.9, port: 80 }}\n"
        )
    }

    #[test]
    fn new_link_kinds_and_their_checks() {
        let ok = ns_with(
            "      - { name: br0, kind: bridge }\n      - { name: v0, kind: veth, master: br0, mac: 02:00:00:00:00:01, peer: { namespace: b, name: v1 } }\n      - { name: mv0, kind: macvlan, parent: v0 }\n      - { name: vx0, kind: vxlan, vni: 7, remote: 192.0.2.2, parent: v0 }",
            "",
        );
        let s = parse(&ok).unwrap();
        let a = s.namespace("a").unwrap();
        assert_eq!(a.links[1].master.as_deref(), Some("br0"));
        assert_eq!(
            a.links[2].kind,
            LinkKind::Macvlan {
                parent: "v0".into(),
                mode: "bridge".into()
            }
        );
        assert!(matches!(
            a.links[3].kind,
            LinkKind::Vxlan {
                vni: 7,
                dstport: 4789,
                ..
            }
        ));
        let e = first_err(&ns_with(
            "      - { name: v0, kind: veth, master: nobr, peer: { namespace: b, name: v1 } }",
            "",
        ));
        assert!(e.msg.contains("`nobr` is not a bridge"), "{}", e.msg);
        let e = first_err(&ns_with("      - { name: mv0, kind: macvlan }", ""));
        assert_eq!(e.msg, "a macvlan needs a `parent` device");
        let e = first_err(&ns_with("      - { name: t0, kind: tun, vni: 3 }", ""));
        assert_eq!(e.msg, "a tun link has no `vni`");
        let e = first_err(&ns_with(
            "      - { name: t0, kind: tun, mac: 02:zz:00:00:00:01 }",
            "",
        ));
        assert!(e.msg.contains("not a MAC address"));
        let e = first_err(&ns_with("      - { name: g0, kind: gre }", ""));
        assert!(
            e.hint
                .unwrap()
                .contains("kinds: veth, tun, tap, bridge, macvlan, vxlan")
        );
    }

    #[test]
    fn tc_rules_nft_and_listeners_are_checked() {
        let base = "      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }";
        let ok = ns_with(
            base,
            "    tc:\n      - { dev: v0, program: drop_tcp_dport, config: { port: 80 } }\n      - { command: qdisc replace dev v0 root pfifo }\n    rules:\n      - { from: 192.0.2.0/24, table: 100, priority: 10 }\n    listen:\n      - { proto: udp, port: 53 }\n    nft: table inet t {}",
        );
        let s = parse(&ok).unwrap();
        let a = s.namespace("a").unwrap();
        assert_eq!(a.tc.len(), 2);
        assert!(
            matches!(&a.tc[0], TcSpec::Program { ingress: true, config, .. } if config == &vec![("port".to_string(), 80)])
        );
        assert_eq!(a.rules[0].table, Some(100));
        assert_eq!(
            a.listen[0],
            Listener {
                proto: SockProto::Udp,
                port: 53,
                addr: None
            }
        );
        assert_eq!(a.nft.as_ref().unwrap().first_line, 12);
        let e = first_err(&ns_with(
            base,
            "    tc:\n      - { dev: v0, program: drop_tcp_port }",
        ));
        assert_eq!(e.hint.as_deref(), Some("did you mean `drop_tcp_dport`?"));
        let e = first_err(&ns_with(
            base,
            "    tc:\n      - { dev: v0, program: drop_tcp_dport, config: { prt: 1 } }",
        ));
        assert!(e.msg.contains("takes no config key `prt`"), "{}", e.msg);
        let e = first_err(&ns_with(base, "    tc:\n      - { dev: v0 }"));
        assert!(e.msg.contains("either `program`"), "{}", e.msg);
        let e = first_err(&ns_with(base, "    nft_file: no/such/file.nft"));
        assert!(e.msg.contains("no file `no/such/file.nft`"), "{}", e.msg);
        let e = first_err(&ns_with(
            base,
            "    listen:\n      - { proto: sctp, port: 1 }",
        ));
        assert!(e.msg.contains("cannot listen on `sctp`"));
    }

    #[test]
    fn socket_injection_is_checked() {
        let base = "      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }";
        let s = parse(&ns_with(base, "")).unwrap();
        assert!(matches!(
            s.packets[0].inject,
            Injection::Socket {
                proto: SockProto::Tcp,
                port: 80,
                ..
            }
        ));
        let t = ns_with(base, "").replace(
            "proto: tcp, to: 192.0.2.9, port: 80",
            "proto: tcp, to: 192.0.2.9",
        );
        assert!(first_err(&t).msg.contains("needs a destination `port`"));
        let t = ns_with(base, "").replace("proto: tcp", "proto: sctp");
        assert!(first_err(&t).msg.contains("unknown socket protocol"));
        let t = ns_with(base, "").replace(
            "  socket:",
            "  ipv4: { src: 192.0.2.1, dst: 192.0.2.9 }\n  socket:",
        );
        assert!(first_err(&t).msg.contains("the kernel builds the packet"));
    }

    #[test]
    fn steps_on_hooks_the_kernel_lacks_are_reported_not_checked() {
        let text = GOOD.replace(
            "  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]\n",
            "  path: [tun_get_user, icmp_send@host/tun0, ip_rcv_core]\n  not_path: [icmp_send]\n",
        );
        let mut s = parse(&text).unwrap();
        let absent = crate::tracer::SkippedHook {
            hook: "icmp_send",
            why: "this kernel has no such BTF tracepoint".into(),
        };
        let notes = s.drop_steps_on_hooks(&[absent]);
        assert_eq!(
            notes,
            vec![
                "packet 1: path step icmp_send@host/tun0 not checked (icmp_send: this kernel has no such BTF tracepoint)",
                "packet 1: not_path step icmp_send not checked (icmp_send: this kernel has no such BTF tracepoint)",
            ]
        );
        let e = &s.packets[0].expect;
        assert_eq!(e.path.len(), 2);
        assert!(e.not_path.is_empty());
        assert!(s.drop_steps_on_hooks(&[]).is_empty());
    }

    /// A scenario's truth on each kernel: the base, `kernels:` entries in
    /// range, and steps qualified by kernel.
    #[test]
    fn kernel_dependent_expectations_resolve_per_kernel() {
        let text = GOOD.replace(
            "  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]\n",
            "  path: [tun_get_user, \"tcp_send_reset (kernel >= 6.10)\", ip_rcv_core]\n  kernels:\n    \"< 6.13\": { reason: NOT_SPECIFIED }\n    \"6.1\": { at: ip_rcv_finish_core, reply: { fate: delivered } }\n",
        );
        let s = parse(&text).unwrap();
        let base = &s.packets[0].expect;
        let on = |v| base.for_kernel(v);
        let k618 = on((6, 18, 0));
        assert_eq!(k618.reason.as_deref(), Some("SKB_DROP_REASON_IP_CSUM"));
        assert_eq!(k618.path.len(), 3);
        let k612 = on((6, 12, 117));
        assert_eq!(k612.reason.as_deref(), Some("NOT_SPECIFIED"));
        assert_eq!(
            k612.at.as_deref(),
            Some("ip_rcv_core"),
            "only keys set are replaced"
        );
        let k61 = on((6, 1, 192));
        assert_eq!(k61.reason.as_deref(), Some("NOT_SPECIFIED"));
        assert_eq!(k61.at.as_deref(), Some("ip_rcv_finish_core"));
        assert_eq!(k61.path.len(), 2, "the 6.10 step is gone");
        assert_eq!(k61.reply.unwrap().fate, Some(Fate::Delivered));
        let e = first_err(&GOOD.replace(
            "  at: ip_rcv_core\n",
            "  at: ip_rcv_core\n  kernels:\n    \"newest\": { at: x }\n",
        ));
        assert!(
            e.msg
                .contains("`newest` is not a kernel version comparison"),
            "{}",
            e.msg
        );
        assert!(e.loc.is_some());
    }

    #[test]
    fn steps() {
        assert_eq!(
            parse_step("ip_rcv").unwrap(),
            PathStep {
                func: "ip_rcv".into(),
                ns: None,
                dev: None,
                kernel: None,
            }
        );
        let q = parse_step("tcp_send_reset@host/tun0 (kernel >= 6.10)").unwrap();
        assert_eq!(
            (q.func.as_str(), q.dev.as_deref()),
            ("tcp_send_reset", Some("tun0"))
        );
        let k = q.kernel.unwrap();
        assert!(k.contains((6, 10, 0)) && !k.contains((6, 9, 12)));
        assert!(parse_step("ip_rcv (kernel soon)").is_err());
        assert_eq!(
            parse_step("net_dev_xmit@r").unwrap().ns.as_deref(),
            Some("r")
        );
        assert!(parse_step("a b").is_err());
        assert_eq!(parse_step("x@n/d").unwrap().to_string(), "x@n/d");
    }
}
