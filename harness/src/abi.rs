//! The event ABI shared by pktfate's eBPF tracer and its userspace loader.
//!
//! Every struct here is `#[repr(C)]` and built from fixed-size integers so that
//! the kernel side (`bpfel-unknown-none`) and the host agree byte for byte.
//! Nothing kernel-version specific lives here: struct field offsets arrive at
//! load time in [`TracerConfig`], resolved from the running kernel's BTF.
//!
//! This file is part of the `pktfate` crate (so the published crate is
//! whole) and is compiled into the `no_std` tracer too, by
//! `ebpf/pktfate-common`, which includes it by path: it must stay `core`-only.

/// Bytes of the packet, from its network header, captured per event.
pub const PKT_CAPTURE: usize = 128;

/// Frames of kernel stack captured per event.
pub const MAX_STACK_DEPTH: usize = 32;
/// Packet filters one scenario (one bank) can hold.
pub const MAX_FILTERS: u32 = 16;
/// Namespaces one scenario can have watched.
pub const MAX_NETNS: u32 = 64;
/// Scenarios one loaded tracer serves at once (`--jobs` workers), each
/// with a bank of [`MAX_FILTERS`] filters.
pub const MAX_BANKS: u32 = 16;
/// Distinct skbs tracked at once (LRU: the oldest are evicted first).
pub const MAX_TRACKED: u32 = 4096;
/// Ring buffer size in bytes.
pub const RINGBUF_BYTES: u32 = 4 << 20;

/// Where an event was observed. Values index [`HOOK_NAMES`].
pub mod hook {
    /// `net:netif_receive_skb`: an skb enters the protocol stack of a device.
    pub const NETIF_RECEIVE_SKB: u32 = 0;
    /// `net:netif_rx`: an skb is queued to a CPU backlog (veth peer, loopback).
    pub const NETIF_RX: u32 = 1;
    /// `net:net_dev_queue`: an skb is handed to a device's queue for transmit.
    pub const NET_DEV_QUEUE: u32 = 2;
    /// `net:net_dev_start_xmit`: the driver's xmit is about to run.
    pub const NET_DEV_START_XMIT: u32 = 3;
    /// `net:net_dev_xmit`: the driver's xmit returned (rc in `aux[0]`).
    pub const NET_DEV_XMIT: u32 = 4;
    /// `skb:kfree_skb`: the skb was dropped (reason and location set).
    pub const KFREE_SKB: u32 = 5;
    /// `skb:consume_skb`: the skb was freed after successful use.
    pub const CONSUME_SKB: u32 = 6;
    /// `skb:skb_copy_datagram_iovec`: a socket reader copied the data out.
    pub const SKB_COPY_DATAGRAM_IOVEC: u32 = 7;
    /// `icmp:icmp_send`: the kernel answers this skb with an ICMP error
    /// (type in `aux[0]`, code in `aux[1]`).
    pub const ICMP_SEND: u32 = 8;
    /// `fib:fib_table_lookup`: an IPv4 route lookup for this skb's flow
    /// (table in `aux[0]`, error in `aux[1]`, result device in `aux[2]`,
    /// the route's type in `route_type`, its gateway in `gw`, the flow in
    /// `flow_saddr`/`flow_daddr`).
    pub const FIB_TABLE_LOOKUP: u32 = 9;
    /// `tcp:tcp_send_reset`: the kernel answers this skb with a RST
    /// (`sk_rst_reason` in `reason`).
    pub const TCP_SEND_RESET: u32 = 10;
    /// `net:netif_receive_skb_entry`: entry of the `netif_receive_skb()` API.
    pub const NETIF_RECEIVE_SKB_ENTRY: u32 = 11;
    /// `net:napi_gro_receive_entry`: a driver passes the skb to GRO.
    pub const NAPI_GRO_RECEIVE_ENTRY: u32 = 12;
    /// `sock:inet_sock_set_state`: a socket whose ports match the tracked
    /// skb this CPU is processing changed TCP state because of it (old
    /// state in `aux[0]`, new in `aux[1]`).
    pub const INET_SOCK_SET_STATE: u32 = 13;
    /// Not a tracepoint: the harness's `tc_observer` classifier, attached
    /// ahead of a scenario's tc programs, saw the skb inside
    /// `tcf_classify` (before those programs ran).
    pub const TCF_CLASSIFY: u32 = 14;
    /// `fib6:fib6_table_lookup`: an IPv6 route lookup for this skb's flow
    /// (table in `aux[0]`, 0 in `aux[1]`, result device in `aux[2]`, the
    /// route's type in `route_type`, its gateway in `gw`, the flow in
    /// `flow_saddr`/`flow_daddr`).
    pub const FIB6_TABLE_LOOKUP: u32 = 15;
    /// Not a tracepoint: a kprobe on a kernel function that takes the
    /// tracked skb (the function-level backend); `location` holds the
    /// probed address, which names the function.
    pub const FUNCTION: u32 = 16;
    /// Not a tracepoint: an fexit program on one of the scenario's own tc
    /// or XDP programs saw it return (its return code in `aux[0]`, one of
    /// [`super::PROG_KIND_TC`]/[`super::PROG_KIND_XDP`] in `aux[1]`, the
    /// program's slot in `aux[2]`). An XDP program's run on a frame that
    /// has no skb yet (a native XDP driver) has `skb` 0.
    pub const PROG_RETURN: u32 = 17;
    /// Number of hooks.
    pub const COUNT: usize = 18;
}

/// Tracepoint names, indexed by the constants in [`hook`].
pub const HOOK_NAMES: [&str; hook::COUNT] = [
    "netif_receive_skb",
    "netif_rx",
    "net_dev_queue",
    "net_dev_start_xmit",
    "net_dev_xmit",
    "kfree_skb",
    "consume_skb",
    "skb_copy_datagram_iovec",
    "icmp_send",
    "fib_table_lookup",
    "tcp_send_reset",
    "netif_receive_skb_entry",
    "napi_gro_receive_entry",
    "inet_sock_set_state",
    "tcf_classify",
    "fib6_table_lookup",
    "function",
    "prog_return",
];

/// Kprobe programs of the function-level backend: `KPROBE_PROGRAMS[i]`
/// reads the skb from argument `i` (x86-64 passes five in registers).
pub const KPROBE_PROGRAMS: [&str; 5] = [
    "kprobe_skb_arg0",
    "kprobe_skb_arg1",
    "kprobe_skb_arg2",
    "kprobe_skb_arg3",
    "kprobe_skb_arg4",
];

/// The program of the kprobe-multi link: one over every function, each
/// with its skb argument's position as the link's cookie (the function's
/// address from `bpf_get_func_ip`, not the registers).
pub const KPROBE_MULTI_PROGRAM: &str = "kmulti_skb";

/// fentry programs of the function-level backend: `FENTRY_PROGRAMS[i]`
/// reads the skb from argument `i`; one copy is loaded per function.
pub const FENTRY_PROGRAMS: [&str; 5] = [
    "fentry_skb_arg0",
    "fentry_skb_arg1",
    "fentry_skb_arg2",
    "fentry_skb_arg3",
    "fentry_skb_arg4",
];

/// The fexit programs that report a scenario program's return code, one
/// per program type; one copy is loaded per scenario program, its slot
/// written into the instructions in place of [`PROG_SLOT_MAGIC`].
pub const PROG_RETURN_PROGRAMS: [&str; 2] = ["prog_return_tc", "prog_return_xdp"];

/// `aux[1]` of a [`hook::PROG_RETURN`] event: a tc classifier's return.
pub const PROG_KIND_TC: i32 = 0;
/// `aux[1]` of a [`hook::PROG_RETURN`] event: an XDP program's return.
pub const PROG_KIND_XDP: i32 = 1;

/// The immediate the fexit programs carry in place of their slot: each
/// loaded copy gets the instructions holding it rewritten to its own slot
/// (an fexit program has no attach cookie before 6.0, and globals would be
/// one map for every copy).
pub const PROG_SLOT_MAGIC: i32 = 0x5eed_5107;

/// `Event::reason` when the kernel's tracepoint passes none (`kfree_skb`
/// before 5.17, `tcp_send_reset` before 6.10).
pub const REASON_UNKNOWN: u32 = u32::MAX;

/// A tracer program: the hook it reports as, its name in the object, and
/// how many tracepoint arguments it reads. A hook may have several, richest
/// first; the loader takes the first whose `args` the running kernel's
/// prototype (`btf_trace_<hook>` in BTF) provides, since the kernel refuses
/// to attach a raw tracepoint program that reads past the last argument.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// One of [`hook`].
    pub hook: u32,
    /// The program's symbol in the tracer object.
    pub name: &'static str,
    /// Tracepoint arguments it reads.
    pub args: usize,
}

const fn prog(hook: u32, name: &'static str, args: usize) -> Program {
    Program { hook, name, args }
}

/// Every tracepoint program, grouped by hook, richest variant first.
pub const PROGRAMS: [Program; 18] = [
    prog(hook::NETIF_RECEIVE_SKB, "netif_receive_skb", 1),
    prog(hook::NETIF_RX, "netif_rx", 1),
    prog(hook::NET_DEV_QUEUE, "net_dev_queue", 1),
    prog(hook::NET_DEV_START_XMIT, "net_dev_start_xmit", 2),
    prog(hook::NET_DEV_XMIT, "net_dev_xmit", 3),
    // (skb, location, reason[, rx_sk]) from 5.17; (skb, location) before.
    prog(hook::KFREE_SKB, "kfree_skb", 3),
    prog(hook::KFREE_SKB, "kfree_skb_noreason", 2),
    // (skb, location) from 6.3; (skb) before.
    prog(hook::CONSUME_SKB, "consume_skb", 2),
    prog(hook::CONSUME_SKB, "consume_skb_noloc", 1),
    prog(hook::SKB_COPY_DATAGRAM_IOVEC, "skb_copy_datagram_iovec", 2),
    prog(hook::ICMP_SEND, "icmp_send", 3),
    prog(hook::FIB_TABLE_LOOKUP, "fib_table_lookup", 4),
    // (net, res, table, flp) from 5.2.
    prog(hook::FIB6_TABLE_LOOKUP, "fib6_table_lookup", 4),
    // (sk, skb, reason) from 6.10; (sk, skb) before.
    prog(hook::TCP_SEND_RESET, "tcp_send_reset", 3),
    prog(hook::TCP_SEND_RESET, "tcp_send_reset_noreason", 2),
    prog(hook::NETIF_RECEIVE_SKB_ENTRY, "netif_receive_skb_entry", 1),
    prog(hook::NAPI_GRO_RECEIVE_ENTRY, "napi_gro_receive_entry", 1),
    prog(hook::INET_SOCK_SET_STATE, "inet_sock_set_state", 3),
];

/// One observation of a tracked skb at a hook.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// `bpf_ktime_get_ns()`: `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    /// Kernel address of the `struct sk_buff`.
    pub skb: u64,
    /// `kfree_skb/consume_skb`: the address the free was called from.
    pub location: u64,
    /// One of [`hook`].
    pub hook: u32,
    /// CPU the event fired on.
    pub cpu: u32,
    /// Thread group id of the current task.
    pub pid: u32,
    /// Inode of the network namespace of the skb's device (or socket).
    pub netns: u32,
    /// `skb->dev->ifindex` (or the hook's device), 0 when none.
    pub ifindex: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->len`.
    pub len: u32,
    /// `skb->priority`.
    pub priority: u32,
    /// `kfree_skb`: `enum skb_drop_reason`; `tcp_send_reset`: `enum sk_rst_reason`.
    pub reason: u32,
    /// Hook-specific values, see [`hook`].
    pub aux: [i32; 3],
    /// 4, 6, or 0 when the packet is not IP.
    pub family: u8,
    /// IP protocol / IPv6 next header.
    pub l4proto: u8,
    /// TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 ...).
    pub tcp_flags: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// Source address (IPv4 in the first 4 bytes), network order.
    pub saddr: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes), network order.
    pub daddr: [u8; 16],
    /// TCP/UDP source port, host order.
    pub sport: u16,
    /// TCP/UDP destination port, host order.
    pub dport: u16,
    /// ICMP/ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// ICMP echo identifier, host order.
    pub icmp_id: u16,
    /// IPv4 header checksum as carried, host order.
    pub ip_csum: u16,
    /// `skb->vlan_tci` (meaningful with [`SKB_VLAN_PRESENT`]).
    pub vlan_tci: u16,
    /// The run (scenario registration) the event belongs to: userspace
    /// routes events by it. 0 for a tracer serving one watcher.
    pub run: u32,
    /// TCP sequence number, host order.
    pub tcp_seq: u32,
    /// Route lookups: the looked-up flow's source, network order (IPv4 in
    /// the first 4 bytes).
    pub flow_saddr: [u8; 16],
    /// Route lookups: the looked-up flow's destination.
    pub flow_daddr: [u8; 16],
    /// Route lookups: the result's gateway (`gw_family` says which).
    pub gw: [u8; 16],
    /// Route lookups: `AF_INET`, `AF_INET6`, or 0 for no gateway.
    pub gw_family: u8,
    /// Route lookups: the route's `RTN_*` type, 0 when not known.
    pub route_type: u8,
    /// The skb's state: `ip_summed` in the low two bits with
    /// [`SKB_SUMMED_KNOWN`], and [`SKB_VLAN_PRESENT`].
    pub skb_flags: u8,
    /// Padding, always zero.
    pub _pad2: u8,
    /// Bytes of `stack` filled by `bpf_get_stack`, or a negative errno.
    pub stack_bytes: i32,
    /// `comm` of the current task.
    pub comm: [u8; 16],
    /// Length of the IP packet (from its header), 0 when not IP.
    pub ip_len: u32,
    /// Bytes of `pkt` that hold packet data.
    pub pkt_len: u32,
    /// The packet from its network header (IPv4/IPv6), for pcap output.
    pub pkt: [u8; PKT_CAPTURE],
    /// Kernel return addresses, innermost first.
    pub stack: [u64; MAX_STACK_DEPTH],
}

/// `Event::skb_flags` bit: the low two bits hold `skb->ip_summed`.
pub const SKB_SUMMED_KNOWN: u8 = 4;
/// `Event::skb_flags` bit: the skb carries a VLAN tag out of band
/// (`vlan_tci` holds it).
pub const SKB_VLAN_PRESENT: u8 = 8;

/// `PacketFilter::flags` bit: `saddr` must match.
pub const FILTER_SADDR: u8 = 1;
/// `PacketFilter::flags` bit: `daddr` must match.
pub const FILTER_DADDR: u8 = 2;
/// `PacketFilter::flags` bit: also match the reverse direction (replies).
pub const FILTER_REVERSE: u8 = 4;

/// `PacketFilter::flags` bit: match ICMP/ICMPv6 *errors* (destination
/// unreachable, time exceeded, parameter problem, packet too big) sent to
/// `daddr`, instead of a 5-tuple.
pub const FILTER_ICMP_ERROR: u8 = 8;

/// Whether an ICMP (proto 1) or `ICMPv6` (proto 58) type is an error message.
#[inline(always)]
pub fn is_icmp_error(l4proto: u8, icmp_type: u8) -> bool {
    match l4proto {
        1 => icmp_type == 3 || icmp_type == 11 || icmp_type == 12,
        58 => (1..=4).contains(&icmp_type),
        _ => false,
    }
}

/// Selects the packets to start tracking. Zero fields are wildcards.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PacketFilter {
    /// 4 or 6; 0 matches both.
    pub family: u8,
    /// IP protocol; 0 matches any.
    pub l4proto: u8,
    /// `FILTER_*` bits.
    pub flags: u8,
    /// Padding, always zero.
    pub _pad: u8,
    /// Source port, host order; 0 matches any.
    pub sport: u16,
    /// Destination port, host order; 0 matches any.
    pub dport: u16,
    /// Source address, network order (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Destination address, network order (IPv4 in the first 4 bytes).
    pub daddr: [u8; 16],
}

/// Kernel struct field offsets, in bytes, read from the running kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Offsets {
    /// `sk_buff.len`
    pub skb_len: u32,
    /// `sk_buff.mark`
    pub skb_mark: u32,
    /// `sk_buff.dev`
    pub skb_dev: u32,
    /// `sk_buff.sk`
    pub skb_sk: u32,
    /// `sk_buff.head`
    pub skb_head: u32,
    /// `sk_buff.network_header`
    pub skb_network_header: u32,
    /// `sk_buff.protocol`
    pub skb_protocol: u32,
    /// `net_device.ifindex`
    pub dev_ifindex: u32,
    /// `net_device.nd_net` (a `possible_net_t` whose first member is the pointer)
    pub dev_nd_net: u32,
    /// `net.ns.inum`
    pub net_ns_inum: u32,
    /// `sock.__sk_common.skc_net`
    pub sock_net: u32,
    /// `flowi4.saddr`
    pub flowi4_saddr: u32,
    /// `flowi4.daddr`
    pub flowi4_daddr: u32,
    /// `fib_nh_common.nhc_dev`
    pub nhc_dev: u32,
    /// `sock.__sk_common.skc_num` (local port, host order)
    pub sock_num: u32,
    /// `sock.__sk_common.skc_dport` (remote port, network order)
    pub sock_dport: u32,
    /// `flowi4.__fl_common.flowic_iif` (input ifindex; 1 for output lookups)
    pub flowi4_iif: u32,
    /// `sk_buff.skb_iif` (the device it arrived on; kept by clones)
    pub skb_iif: u32,
    /// `fib_nh_common.nhc_gw_family` ([`NO_OFFSET`] when not in BTF, for
    /// this and the route fields below)
    pub nhc_gw_family: u32,
    /// `fib_nh_common.nhc_gw`
    pub nhc_gw: u32,
    /// `fib_nh.nh_parent` (a `fib_nh` starts with its `fib_nh_common`)
    pub fib_nh_parent: u32,
    /// `fib_info.fib_type`
    pub fib_info_type: u32,
    /// `fib6_result.nh`
    pub fib6_res_nh: u32,
    /// `fib6_result.fib6_type`
    pub fib6_res_type: u32,
    /// `fib6_result.f6i`
    pub fib6_res_f6i: u32,
    /// `flowi4.__fl_common.flowic_proto`
    pub flowi4_proto: u32,
    /// `flowi4.__fl_common.flowic_mark`
    pub flowi4_mark: u32,
    /// `flowi4.uli.ports.sport`
    pub flowi4_sport: u32,
    /// `flowi4.uli.ports.dport`
    pub flowi4_dport: u32,
    /// `task_struct.nsproxy`
    pub task_nsproxy: u32,
    /// `nsproxy.net_ns`
    pub nsproxy_net_ns: u32,
    /// `inet_sock.inet_sport` (the source port, network order; kept when
    /// closing clears `skc_num`)
    pub inet_sport: u32,
    /// `fib6_info.fib6_metric`
    pub fib6_info_metric: u32,
    /// `fib6_table.tb6_id`
    pub fib6_table_id: u32,
    /// `flowi6.saddr`
    pub flowi6_saddr: u32,
    /// `flowi6.daddr`
    pub flowi6_daddr: u32,
    /// `xdp_buff.data` ([`NO_OFFSET`] when not in BTF, for these three)
    pub xdp_buff_data: u32,
    /// `xdp_buff.rxq`
    pub xdp_buff_rxq: u32,
    /// `xdp_buff.data_hard_start` (generic XDP: the skb's head)
    pub xdp_buff_hard_start: u32,
    /// `xdp_rxq_info.dev`
    pub xdp_rxq_dev: u32,
    /// `sk_buff.priority` ([`NO_OFFSET`] when not in BTF, for these)
    pub skb_priority: u32,
    /// `sk_buff.vlan_tci`
    pub skb_vlan_tci: u32,
    /// `sk_buff.vlan_proto` (non-zero exactly when a tag is present, from
    /// 6.1, which dropped `vlan_present`)
    pub skb_vlan_proto: u32,
    /// The byte of `sk_buff.ip_summed` (a bitfield)
    pub skb_ip_summed: u32,
    /// Its shift within that byte
    pub skb_ip_summed_shift: u32,
    /// The byte of `sk_buff.vlan_present` (a bitfield; before 6.1)
    pub skb_vlan_present: u32,
    /// Its shift within that byte
    pub skb_vlan_present_shift: u32,
}

/// An [`Offsets`] field the running kernel's BTF does not have: the
/// programs skip what it would read.
pub const NO_OFFSET: u32 = u32::MAX;

/// A watched namespace's owner: the value of the NETNS map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The run (a scenario's registration; never reused in a process).
    pub run: u32,
    /// Its filter bank: FILTERS entries `bank * MAX_FILTERS ..`, and the
    /// count in `BANK_FILTERS[bank]` (0 tracks every IP skb).
    pub bank: u32,
}

/// What the tracer remembers about a tracked skb, to notice when its
/// address has been reused by an unrelated packet (some frees have no
/// tracepoint, e.g. TCP's `__kfree_skb`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tracked {
    /// Namespace of the last event.
    pub netns: u32,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol.
    pub l4proto: u8,
    /// 1 when the last event saw a tunnel packet (see [`is_tunnel`]).
    pub tunnel: u8,
    /// Padding, always zero.
    pub _pad: u8,
    /// The run that tracks it (see [`Watch`]).
    pub run: u32,
    /// Device of the last event that had one: TCP, raw and UDP sockets
    /// clear `skb->dev` once they own the skb, and later events still
    /// belong where the packet arrived.
    pub ifindex: u32,
    /// Source address at the last event.
    pub saddr: [u8; 16],
    /// Destination address at the last event.
    pub daddr: [u8; 16],
}

/// Whether a packet is a tunnel's outer packet: encapsulation and
/// decapsulation change an skb's protocol and addresses without making it
/// another skb. UDP ports of VXLAN (4789, 8472), Geneve (6081), VXLAN-GPE
/// (4790); IP protocols IPIP (4), IPv6-in-IPv4 (41), GRE (47).
#[inline(always)]
pub fn is_tunnel(l4proto: u8, sport: u16, dport: u16) -> bool {
    const PORTS: [u16; 4] = [4789, 8472, 6081, 4790];
    match l4proto {
        4 | 41 | 47 => true,
        17 => PORTS.contains(&dport) || PORTS.contains(&sport),
        _ => false,
    }
}

/// `TracerConfig::flags` bit: only trace skbs whose netns is in the NETNS map.
pub const CONFIG_FILTER_NETNS: u32 = 1;
/// `TracerConfig::flags` bit: capture the kernel stack at each event.
pub const CONFIG_STACKS: u32 = 2;

/// Read-only configuration of one tracer instance, set before load.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TracerConfig {
    /// Field offsets for this kernel.
    pub offsets: Offsets,
    /// `CONFIG_*` bits.
    pub flags: u32,
}
