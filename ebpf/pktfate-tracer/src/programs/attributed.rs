//! Hooks that carry no skb (route lookups, TCP state changes): their
//! events are attributed to the tracked skb they concern.

use super::*;

/// The tracked skb this CPU is processing, for hooks that carry no skb,
/// and whether the current task is the one that handled its last event.
#[inline(always)]
pub(crate) fn current_tracked() -> Option<(u64, Tracked, bool)> {
    let (skb, task) = match CURRENT.get(0) {
        Some(c) if c[0] != 0 => (c[0], c[2]),
        _ => return None,
    };
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    let now = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    unsafe { TRACKED.get(skb) }.map(|t| (skb, *t, task == now))
}

/// Fills an event of an skb-less hook, attributed to `skb`, placed where
/// that skb is.
#[inline(always)]
pub(crate) fn fill_attributed(
    cfg: &TracerConfig,
    ev: &mut Event,
    hook_id: u32,
    skb: u64,
    known: &Tracked,
    aux: [i32; 3],
) {
    let dev: u64 = read(skb, cfg.offsets.skb_dev).unwrap_or(0);
    let (netns, ifindex) = skb_place(cfg, skb, dev, Some(known));
    ev.hook = hook_id;
    ev.run = known.run;
    ev.skb = skb;
    ev.location = 0;
    ev.netns = netns;
    ev.ifindex = ifindex;
    skb_meta(cfg, skb, ev);
    ev.reason = 0;
    ev.aux = aux;
}

/// The loopback ifindex: `flowi4_iif` of every output route lookup.
pub(crate) const LOOPBACK_IFINDEX: u32 = 1;

/// IPv4 route lookups carry a flow, not an skb: attribute the lookup to the
/// tracked skb this CPU is processing, if the flow is that packet's (either
/// direction, so reverse-path checks in `fib_validate_source` count too)
/// and the lookup ran in that skb's namespace: the result's device is
/// there. Without a result device the flow names no namespace, so the
/// lookup must name the skb's input device or run in a task of the run's
/// namespaces (or ksoftirqd). Any untracked skb on this CPU also clears
/// the current one, so a foreign packet's lookups never inherit ours.
#[raw_tracepoint(tracepoint = "fib_table_lookup")]
pub fn fib_table_lookup(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    let tb_id = ctx.arg::<u64>(0) as i32;
    let flp = arg_u64(&ctx, 1);
    let nhc = arg_u64(&ctx, 2);
    let err = ctx.arg::<i64>(3) as i32;
    // Held over the tail call to `fib_local`, which adopts it.
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some((skb, known, same_task)) = current_tracked() else {
        return by_flow(&ctx);
    };
    let saddr: u32 = match read(flp, cfg.offsets.flowi4_saddr) {
        Some(v) => v,
        None => return 0,
    };
    let daddr: u32 = read(flp, cfg.offsets.flowi4_daddr).unwrap_or(0);
    let nh_dev: u64 = read(nhc, cfg.offsets.nhc_dev).unwrap_or(0);
    let oif = read(nh_dev, cfg.offsets.dev_ifindex).unwrap_or(0);
    let ours = if nh_dev != 0 {
        dev_netns(cfg, nh_dev) == known.netns
    } else {
        // No result device (an error, a blackhole): an input lookup names
        // the skb's device; an output or reverse-path one must run in the
        // context (task) that handled the skb's last event. A foreign
        // process asking the same route is another task, and foreign
        // softirq work starts with an skb event that cleared CURRENT.
        let iif: u32 = read(flp, cfg.offsets.flowi4_iif).unwrap_or(0);
        (iif != LOOPBACK_IFINDEX && iif != 0 && iif == known.ifindex) || same_task
    };
    if !ours {
        return by_flow(&ctx);
    }
    let Some(ev) = scratch() else {
        return 0;
    };
    // The packet's own addresses, to compare with the flow's.
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(cfg, skb, ev);
    if ev.family != 4 {
        return 0;
    }
    let ps = u32::from_ne_bytes([ev.saddr[0], ev.saddr[1], ev.saddr[2], ev.saddr[3]]);
    let pd = u32::from_ne_bytes([ev.daddr[0], ev.daddr[1], ev.daddr[2], ev.daddr[3]]);
    let same = (daddr == pd && (saddr == ps || saddr == 0))
        || (daddr == ps && (saddr == pd || saddr == 0));
    if !same {
        return by_flow(&ctx);
    }
    fill_attributed(
        cfg,
        ev,
        hook::FIB_TABLE_LOOKUP,
        skb,
        &known,
        [tb_id, err, oif],
    );
    // The packet's headers stay as parsed; the looked-up flow goes apart.
    ipv4_route(cfg, ev, saddr, daddr, nhc);
    finish_and_send(&ctx, ev);
    0
}

/// An IPv4 lookup's flow and result: gateway, and the route's type, its
/// fib_info's, the nexthop's parent (a `fib_nh` starts with its
/// `fib_nh_common`; nexthop objects have none).
#[inline(always)]
fn ipv4_route(cfg: &TracerConfig, ev: &mut Event, saddr: u32, daddr: u32, nhc: u64) {
    ev.flow_saddr = v4(saddr);
    ev.flow_daddr = v4(daddr);
    nexthop(cfg, ev, nhc);
    let fi: u64 = read_opt(nhc, cfg.offsets.fib_nh_parent).unwrap_or(0);
    ev.route_type = read_opt(fi, cfg.offsets.fib_info_type).unwrap_or(0);
}

/// A lookup that is not the current skb's (none, or another flow): maybe
/// a socket's own lookup, made before its first skb exists (the last skb
/// tracked on this CPU may still be current). A program of its own (with
/// its own 512 bytes of stack) judges it by the flow.
#[inline(always)]
fn by_flow(ctx: &RawTracePointContext) -> i32 {
    // SAFETY: a tail call with this program's own context.
    unsafe {
        SKB_PROGS.tail_call(ctx, 1);
    }
    0
}

/// An IPv4 route lookup that is not the current skb's:
/// a socket's output lookup (connect, sendmsg) comes before its first
/// skb. Attributed by its flow as a packet would be (the protocol,
/// addresses and ports the socket will send with, against the run's
/// filters), in the namespace of its result device, or, with none, of
/// the task that asked (a process of that namespace; pktfate's own
/// sockets are used from a thread outside it, so their lookups without a
/// result device go unseen); only output lookups (`flowi4_iif` is loopback),
/// so a packet received from elsewhere is never taken for one. The event
/// has no skb (0).
#[raw_tracepoint]
pub fn fib_local(ctx: RawTracePointContext) -> i32 {
    let _level = Level::adopt();
    let cfg = config();
    let tb_id = ctx.arg::<u64>(0) as i32;
    let flp = arg_u64(&ctx, 1);
    let nhc = arg_u64(&ctx, 2);
    let err = ctx.arg::<i64>(3) as i32;
    if read_opt::<u32>(flp, cfg.offsets.flowi4_iif) != Some(LOOPBACK_IFINDEX) {
        return 0;
    }
    let nh_dev: u64 = read(nhc, cfg.offsets.nhc_dev).unwrap_or(0);
    let netns = if nh_dev != 0 {
        dev_netns(cfg, nh_dev)
    } else {
        // SAFETY: a helper without arguments.
        let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
        let nsproxy: u64 = read_opt(task, cfg.offsets.task_nsproxy).unwrap_or(0);
        let net: u64 = read_opt(nsproxy, cfg.offsets.nsproxy_net_ns).unwrap_or(0);
        read(net, cfg.offsets.net_ns_inum).unwrap_or(0)
    };
    let Some(watch) = watch_of(cfg, netns) else {
        return 0;
    };
    let Some(ev) = scratch() else {
        return 0;
    };
    let saddr: u32 = read(flp, cfg.offsets.flowi4_saddr).unwrap_or(0);
    let daddr: u32 = read(flp, cfg.offsets.flowi4_daddr).unwrap_or(0);
    clear_packet(ev);
    ev.family = 4;
    ev.l4proto = read_opt(flp, cfg.offsets.flowi4_proto).unwrap_or(0);
    ev.saddr = v4(saddr);
    ev.daddr = v4(daddr);
    ev.sport = u16::from_be(read_opt(flp, cfg.offsets.flowi4_sport).unwrap_or(0));
    ev.dport = u16::from_be(read_opt(flp, cfg.offsets.flowi4_dport).unwrap_or(0));
    if pktfate_wanted(watch.bank) == 0 {
        return 0;
    }
    let oif: i32 = read(nh_dev, cfg.offsets.dev_ifindex).unwrap_or(0);
    ev.hook = hook::FIB_TABLE_LOOKUP;
    ev.run = watch.run;
    ev.skb = 0;
    ev.location = 0;
    ev.netns = netns;
    ev.ifindex = oif as u32;
    no_skb_meta(ev);
    // The lookup's mark: what `fwmark` rules matched.
    ev.mark = read_opt(flp, cfg.offsets.flowi4_mark).unwrap_or(0);
    ev.reason = 0;
    ev.aux = [tb_id, err, oif];
    ipv4_route(cfg, ev, saddr, daddr, nhc);
    finish_and_send(&ctx, ev);
    0
}

/// An IPv4 address in the event's 16-byte form.
#[inline(always)]
fn v4(a: u32) -> [u8; 16] {
    let b = a.to_ne_bytes();
    [b[0], b[1], b[2], b[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// The gateway of a lookup's result nexthop (none without one), read
/// straight into the event (no copy on the program's stack).
#[inline(always)]
fn nexthop(cfg: &TracerConfig, ev: &mut Event, nhc: u64) {
    ev.gw_family = read_opt(nhc, cfg.offsets.nhc_gw_family).unwrap_or(0);
    ev.gw = [0; 16];
    read_buf(nhc, cfg.offsets.nhc_gw, &mut ev.gw);
    ev._pad2 = 0;
}

/// Reads 16 bytes at `base + off` into `out` (left as is when the offset
/// is unknown or the read fails).
#[inline(always)]
fn read_buf(base: u64, off: u32, out: &mut [u8; 16]) -> bool {
    if base == 0 || off == NO_OFFSET {
        return false;
    }
    // SAFETY: the helper reads kernel memory and fails cleanly on a bad address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_buf((base + off as u64) as *const u8, out) }
        .is_ok()
}

/// `RTN_THROW` (`include/uapi/linux/rtnetlink.h`).
const RTN_THROW: u8 = 9;

/// IPv6 route lookups, one per table consulted: attributed like IPv4's
/// to the tracked skb this CPU is processing, when the flow is that
/// packet's (either way); the lookup names its namespace, which must be
/// the skb's. The result is the route's type, its nexthop's device and
/// gateway (a table without a route gives the kernel's null entry,
/// reported as a throw: no route here).
#[raw_tracepoint(tracepoint = "fib6_table_lookup")]
pub fn fib6_table_lookup(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    let net = arg_u64(&ctx, 0);
    let res = arg_u64(&ctx, 1);
    let table = arg_u64(&ctx, 2);
    let flp = arg_u64(&ctx, 3);
    if cfg.offsets.flowi6_daddr == NO_OFFSET {
        return 0;
    }
    let Some((skb, known, _)) = current_tracked() else {
        return 0;
    };
    let ns: u32 = read(net, cfg.offsets.net_ns_inum).unwrap_or(0);
    if ns != known.netns {
        return 0;
    }
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some(ev) = scratch() else {
        return 0;
    };
    // Inline, as for IPv4 (old verifiers count the parser's frame).
    parse_packet(cfg, skb, ev);
    if ev.family != 6 {
        return 0;
    }
    // The flow goes straight into the event: 16-byte copies on this
    // program's stack would pass the 512 bytes it may use.
    if !read_buf(flp, cfg.offsets.flowi6_daddr, &mut ev.flow_daddr) {
        return 0;
    }
    read_buf(flp, cfg.offsets.flowi6_saddr, &mut ev.flow_saddr);
    let unset = addr_diff(&ev.flow_saddr, &[0; 16], u32::MAX) == 0;
    let fwd = addr_diff(&ev.flow_daddr, &ev.daddr, u32::MAX) == 0
        && (unset || addr_diff(&ev.flow_saddr, &ev.saddr, u32::MAX) == 0);
    let back = addr_diff(&ev.flow_daddr, &ev.saddr, u32::MAX) == 0
        && (unset || addr_diff(&ev.flow_saddr, &ev.daddr, u32::MAX) == 0);
    if !(fwd || back) {
        return 0;
    }
    let tb_id: u32 = read_opt(table, cfg.offsets.fib6_table_id).unwrap_or(0);
    // A `fib6_nh` starts with its `fib_nh_common`.
    let nh: u64 = read_opt(res, cfg.offsets.fib6_res_nh).unwrap_or(0);
    let nh_dev: u64 = read(nh, cfg.offsets.nhc_dev).unwrap_or(0);
    let oif: u32 = read(nh_dev, cfg.offsets.dev_ifindex).unwrap_or(0);
    ev.route_type = read_opt(res, cfg.offsets.fib6_res_type).unwrap_or(0);
    // A table without a route returns the namespace's null entry (an
    // `unreachable` with metric ~0, which no configured route has): the
    // rules go on to the next table, as IPv4's -EAGAIN. Told as RTN_THROW.
    let f6i: u64 = read_opt(res, cfg.offsets.fib6_res_f6i).unwrap_or(0);
    if read_opt::<u32>(f6i, cfg.offsets.fib6_info_metric) == Some(u32::MAX) {
        ev.route_type = RTN_THROW;
    }
    fill_attributed(
        cfg,
        ev,
        hook::FIB6_TABLE_LOOKUP,
        skb,
        &known,
        [tb_id as i32, 0, oif as i32],
    );
    nexthop(cfg, ev, nh);
    finish_and_send(&ctx, ev);
    0
}

/// TCP state changes carry a socket, not an skb: attribute the change to
/// the latest tracked skb of the socket's own tuple in the socket's own
/// namespace (else the one this CPU is processing, if it is in that
/// namespace), so a packet taken by a socket is seen even when its free is
/// not traced (TCP frees with `__kfree_skb`). Sockets of namespaces the run
/// did not create are never looked at.
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let cfg = config();
    let sk = arg_u64(&ctx, 0);
    let old = ctx.arg::<i64>(1) as i32;
    let new = ctx.arg::<i64>(2) as i32;
    let sk_ns = sock_netns(cfg, sk);
    let Some(watch) = watch_of(cfg, sk_ns) else {
        return 0;
    };
    if sk_ns == 0 {
        return 0;
    }
    // A socket closing (a connect answered by a RST) has given its port
    // back before the state change is traced, which zeroes `skc_num`;
    // the source port it sent from is still there.
    let num: u16 = match read(sk, cfg.offsets.sock_num).unwrap_or(0) {
        0 => u16::from_be(read_opt(sk, cfg.offsets.inet_sport).unwrap_or(0)),
        n => n,
    };
    let dport = u16::from_be(read::<u16>(sk, cfg.offsets.sock_dport).unwrap_or(0));
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    let by_flow = unsafe { FLOWS.get(flow_key(sk_ns, num, dport)) }
        .copied()
        // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only
        // make it newer.
        .and_then(|skb| unsafe { TRACKED.get(skb) }.map(|t| (skb, *t)));
    let Some((skb, known)) = by_flow.or_else(|| current_tracked().map(|(s, t, _)| (s, t))) else {
        return 0;
    };
    if known.netns != sk_ns || known.run != watch.run {
        return 0;
    }
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some(ev) = scratch() else {
        return 0;
    };
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(cfg, skb, ev);
    let ours = (ev.dport == num && ev.sport == dport) || (ev.sport == num && ev.dport == dport);
    if !ours || num == 0 {
        return 0;
    }
    fill_attributed(
        cfg,
        ev,
        hook::INET_SOCK_SET_STATE,
        skb,
        &known,
        [old, new, 0],
    );
    finish_and_send(&ctx, ev);
    0
}
