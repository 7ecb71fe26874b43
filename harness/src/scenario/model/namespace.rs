//! Namespaces and what they hold: links, addresses, routes, rules, rulesets, programs.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::scenario::Location;

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
    /// Column of `file` where each line of `text` starts (1-based): the
    /// block scalar's indentation plus one, or after a quote.
    pub first_col: usize,
    /// Whether line N of `text` is line `first_line + N - 1` of `file`:
    /// false for a quoted scalar whose escapes (`\n`) make lines the file
    /// does not have, whose errors all point at the scalar.
    pub lines_match: bool,
}

impl Ruleset {
    /// Where (line, column) of the text is in `file`.
    pub fn position(&self, line: usize, col: usize) -> (usize, usize) {
        if self.lines_match {
            (
                self.first_line + line.max(1) - 1,
                self.first_col + col.max(1) - 1,
            )
        } else {
            (self.first_line, self.first_col)
        }
    }
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
    Command {
        /// As written.
        line: String,
        /// Its words, split as a shell would (quotes kept together).
        args: Vec<String>,
    },
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
    /// ICMP / `ICMPv6` echo.
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
    /// A layer-3 tun device (`IFF_TUN` | `IFF_NO_PI`), owned by the harness.
    Tun,
    /// A layer-2 tap device (`IFF_TAP` | `IFF_NO_PI`), owned by the harness.
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
