//! Raw serde shapes, mirroring the YAML one to one, every value spanned.

use std::collections::HashMap;

use marked_yaml::Spanned;
use serde::Deserialize;

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
    pub mark: Option<S>,
    pub priority: Option<Spanned<u32>>,
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
    pub mark: Option<S>,
    pub priority: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ethernet {
    pub src: Option<S>,
    pub dst: Option<S>,
    pub vlan: Option<Spanned<VlanTag>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanTag {
    pub id: Spanned<u16>,
    pub pcp: Option<Spanned<u8>>,
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
    pub netfilter: Option<Spanned<NetfilterExpect>>,
    pub conntrack: Option<Vec<Spanned<CtExpect>>>,
    pub routes: Option<Vec<Spanned<RouteExpect>>>,
    pub programs: Option<Vec<Spanned<ProgramExpect>>>,
    pub kernels: Option<HashMap<S, Expect>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramExpect {
    pub program: S,
    pub ns: Option<S>,
    pub dev: Option<S>,
    pub returned: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteExpect {
    pub ns: Option<S>,
    pub table: Option<Spanned<u32>>,
    pub to: Option<S>,
    pub result: Option<S>,
    pub via: Option<S>,
    pub dev: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtExpect {
    pub ns: S,
    pub orig: Option<CtTuple>,
    pub reply: Option<CtTuple>,
    pub state: Option<S>,
    pub status: Option<Vec<S>>,
    pub mark: Option<S>,
    pub zone: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtTuple {
    pub src: Option<S>,
    pub dst: Option<S>,
    pub sport: Option<Spanned<u16>>,
    pub dport: Option<Spanned<u16>>,
    pub proto: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetfilterExpect {
    pub decided_by: Option<Spanned<RuleRef>>,
    pub traversed: Option<Vec<S>>,
    pub not_matched: Option<Vec<Spanned<RuleRef>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRef {
    pub comment: Option<S>,
    pub rule: Option<S>,
    pub policy: Option<S>,
    pub chain: Option<S>,
    pub position: Option<Spanned<usize>>,
    pub ns: Option<S>,
    pub ct_state: Option<S>,
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
    pub program_returns: Option<Spanned<bool>>,
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
    pub mark: Option<S>,
    pub len: Option<Spanned<u32>>,
    pub inner: Option<Spanned<InnerTuple>>,
    pub priority: Option<Spanned<u32>>,
    pub vlan: Option<S>,
    pub ip_summed: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnerTuple {
    pub src: Option<S>,
    pub dst: Option<S>,
    pub sport: Option<Spanned<u16>>,
    pub dport: Option<Spanned<u16>>,
    pub proto: Option<S>,
    pub vni: Option<Spanned<u32>>,
}
