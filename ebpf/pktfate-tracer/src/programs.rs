//! The programs (built for the BPF target only).

use aya_ebpf::{
    EbpfContext,
    bindings::TC_ACT_UNSPEC,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{
            bpf_get_attach_cookie, bpf_get_func_ip, bpf_get_smp_processor_id, bpf_get_stack,
            bpf_ktime_get_ns, bpf_probe_read_kernel as bpf_probe_read_kernel_raw,
        },
    },
    macros::{classifier, fentry, kprobe, map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{FEntryContext, ProbeContext, RawTracePointContext, TcContext},
};
use pktfate_common::{
    CONFIG_FILTER_NETNS, CONFIG_STACKS, Event, FILTER_DADDR, FILTER_ICMP_ERROR, FILTER_REVERSE,
    FILTER_SADDR, MAX_BANKS, MAX_FILTERS, MAX_NETNS, MAX_STACK_DEPTH, MAX_TRACKED, PKT_CAPTURE,
    PacketFilter, REASON_UNKNOWN, RINGBUF_BYTES, TracerConfig, Tracked, Watch, hook, is_icmp_error,
    is_tunnel,
};

/// Set by userspace before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
static CONFIG: TracerConfig = TracerConfig {
    offsets: pktfate_common::Offsets {
        skb_len: 0,
        skb_mark: 0,
        skb_dev: 0,
        skb_sk: 0,
        skb_head: 0,
        skb_network_header: 0,
        skb_protocol: 0,
        dev_ifindex: 0,
        dev_nd_net: 0,
        net_ns_inum: 0,
        sock_net: 0,
        flowi4_saddr: 0,
        flowi4_daddr: 0,
        nhc_dev: 0,
        sock_num: 0,
        sock_dport: 0,
        flowi4_iif: 0,
        skb_iif: 0,
    },
    flags: 0,
};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

/// Events that did not fit in the ring buffer, per CPU.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Watched network namespaces, by inode: which run owns each, and that
/// run's filter bank.
#[map]
static NETNS: HashMap<u32, Watch> = HashMap::with_max_entries(MAX_NETNS * MAX_BANKS, 0);

/// Packet filters, [`MAX_FILTERS`] per bank; a bank's first
/// `BANK_FILTERS[bank]` are used.
#[map]
static FILTERS: Array<PacketFilter> = Array::with_max_entries(MAX_FILTERS * MAX_BANKS, 0);

/// Filters in use per bank; 0 tracks every IP skb of the bank's namespaces.
#[map]
static BANK_FILTERS: Array<u32> = Array::with_max_entries(MAX_BANKS, 0);

/// skb address -> what it carried at its last event.
#[map]
static TRACKED: LruHashMap<u64, Tracked> = LruHashMap::with_max_entries(MAX_TRACKED, 0);

/// Last tracked skb seen on this CPU, its netns and the task that handled
/// it, so that hooks that carry no skb (fib_table_lookup) can be attributed
/// to the packet being processed.
#[map]
static CURRENT: PerCpuArray<[u64; 3]> = PerCpuArray::with_max_entries(1, 0);

/// The latest tracked TCP skb flowing towards each socket, keyed by
/// [`flow_key`] of (netns, destination port, source port): a socket hook
/// finds the packet that moved it by its own tuple, whichever CPU and
/// whenever (a segment queued to a socket's backlog is processed later, in
/// the owner's context).
#[map]
static FLOWS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(MAX_TRACKED, 0);

#[inline(always)]
fn flow_key(netns: u32, dport: u16, sport: u16) -> u64 {
    ((netns as u64) << 32) | ((dport as u64) << 16) | sport as u64
}

/// Scratch space for building an event: it is too big for the 512-byte stack.
#[map]
static SCRATCH: PerCpuArray<Event> = PerCpuArray::with_max_entries(1, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// `skb->network_header` value meaning "not set".
const HEADER_UNSET: u16 = 0xffff;

#[inline(always)]
fn config() -> TracerConfig {
    // Volatile: the value is patched into .rodata at load time, so the
    // compiler must not constant-fold the zero initialiser.
    unsafe { core::ptr::read_volatile(&CONFIG) }
}

#[inline(always)]
fn read<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).ok() }
}

/// Namespace inode of a device, 0 when unknown.
#[inline(always)]
fn dev_netns(cfg: &TracerConfig, dev: u64) -> u32 {
    let net: u64 = read(dev, cfg.offsets.dev_nd_net).unwrap_or(0);
    read(net, cfg.offsets.net_ns_inum).unwrap_or(0)
}

/// Namespace inode of a socket, 0 when unknown.
#[inline(always)]
fn sock_netns(cfg: &TracerConfig, sk: u64) -> u32 {
    let net: u64 = read(sk, cfg.offsets.sock_net).unwrap_or(0);
    read(net, cfg.offsets.net_ns_inum).unwrap_or(0)
}

/// Where an skb is: (netns, ifindex). From its device; else its socket's
/// namespace, with the device it was last seen on or arrived on
/// (`skb_iif`, kept by clones); else, for a tracked skb, where it was last
/// seen. Sockets clear `skb->dev` when they take an skb (UDP reuses it as
/// `dev_scratch`), and those events still belong where the packet arrived.
#[inline(always)]
fn skb_place(cfg: &TracerConfig, skb: u64, dev: u64, known: Option<&Tracked>) -> (u32, u32) {
    let ns = dev_netns(cfg, dev);
    if ns != 0 {
        return (ns, read(dev, cfg.offsets.dev_ifindex).unwrap_or(0));
    }
    let ns = sock_netns(cfg, read(skb, cfg.offsets.skb_sk).unwrap_or(0));
    match known {
        Some(k) if (ns == 0 || ns == k.netns) && k.ifindex != 0 => (k.netns, k.ifindex),
        Some(k) if ns == 0 => (k.netns, read(skb, cfg.offsets.skb_iif).unwrap_or(0)),
        _ => (ns, read(skb, cfg.offsets.skb_iif).unwrap_or(0)),
    }
}

/// Which run watches `netns`, if any. A tracer filtering by no namespace
/// (`pktfate trace` without `--netns`) has one run, 0, on bank 0.
#[inline(always)]
fn watch_of(cfg: &TracerConfig, netns: u32) -> Option<Watch> {
    if cfg.flags & CONFIG_FILTER_NETNS == 0 {
        return Some(Watch { run: 0, bank: 0 });
    }
    unsafe { NETNS.get(netns) }.copied()
}

/// This CPU is handling an skb that is not ours: skb-less hooks that
/// follow must not be attributed to the last tracked one.
#[inline(always)]
fn forget_current() {
    if let Some(c) = CURRENT.get_ptr_mut(0) {
        unsafe { *c = [0, 0, 0] };
    }
}

/// Fills the L3/L4 fields of the event in `SCRATCH` from the packet data
/// of its skb (`ev.skb`: a global function takes scalars only, and a
/// tracepoint's skb pointer is not one). Global, so the protocol branches
/// do not multiply the states the caller's code is verified in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pktfate_parse() -> u32 {
    let cfg = config();
    if let Some(p) = SCRATCH.get_ptr_mut(0) {
        let ev = unsafe { &mut *p };
        parse_packet(&cfg, ev.skb, ev);
    }
    0
}

/// Fills the L3/L4 fields of `ev` from the skb's packet data.
#[inline(always)]
fn parse_packet(cfg: &TracerConfig, skb: u64, ev: &mut Event) {
    ev.family = 0;
    ev.l4proto = 0;
    ev.tcp_flags = 0;
    ev.ttl = 0;
    ev.saddr = [0; 16];
    ev.daddr = [0; 16];
    ev.sport = 0;
    ev.dport = 0;
    ev.icmp_type = 0;
    ev.icmp_code = 0;
    ev.icmp_id = 0;
    ev.ip_csum = 0;
    ev.tcp_seq = 0;
    ev.flow_saddr = [0; 4];
    ev.flow_daddr = [0; 4];
    ev.ip_len = 0;
    ev.pkt_len = 0;
    let head: u64 = match read(skb, cfg.offsets.skb_head) {
        Some(h) => h,
        None => return,
    };
    let nh: u16 = read(skb, cfg.offsets.skb_network_header).unwrap_or(HEADER_UNSET);
    if head == 0 || nh == HEADER_UNSET {
        return;
    }
    let proto = u16::from_be(read::<u16>(skb, cfg.offsets.skb_protocol).unwrap_or(0));
    let l3 = head + nh as u64;
    let l4;
    if proto == ETH_P_IP {
        let hdr: [u8; 20] = match read(l3, 0) {
            Some(h) => h,
            None => return,
        };
        if hdr[0] >> 4 != 4 {
            return;
        }
        ev.family = 4;
        ev.ip_len = u16::from_be_bytes([hdr[2], hdr[3]]) as u32;
        ev.ttl = hdr[8];
        ev.l4proto = hdr[9];
        ev.ip_csum = u16::from_be_bytes([hdr[10], hdr[11]]);
        ev.saddr[0] = hdr[12];
        ev.saddr[1] = hdr[13];
        ev.saddr[2] = hdr[14];
        ev.saddr[3] = hdr[15];
        ev.daddr[0] = hdr[16];
        ev.daddr[1] = hdr[17];
        ev.daddr[2] = hdr[18];
        ev.daddr[3] = hdr[19];
        // Later fragments carry no L4 header.
        let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
        if frag_off != 0 {
            return;
        }
        l4 = l3 + ((hdr[0] & 0x0f) as u64) * 4;
    } else if proto == ETH_P_IPV6 {
        let hdr: [u8; 40] = match read(l3, 0) {
            Some(h) => h,
            None => return,
        };
        if hdr[0] >> 4 != 6 {
            return;
        }
        ev.family = 6;
        ev.ip_len = u16::from_be_bytes([hdr[4], hdr[5]]) as u32 + 40;
        ev.l4proto = hdr[6];
        ev.ttl = hdr[7];
        let mut i = 0;
        while i < 16 {
            ev.saddr[i] = hdr[8 + i];
            ev.daddr[i] = hdr[24 + i];
            i += 1;
        }
        l4 = l3 + 40;
    } else {
        return;
    }
    capture(l3, ev);
    match ev.l4proto {
        IPPROTO_TCP => {
            if let Some(t) = read::<[u8; 14]>(l4, 0) {
                ev.sport = u16::from_be_bytes([t[0], t[1]]);
                ev.dport = u16::from_be_bytes([t[2], t[3]]);
                ev.tcp_seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
                ev.tcp_flags = t[13];
            }
        }
        IPPROTO_UDP => {
            if let Some(u) = read::<[u8; 4]>(l4, 0) {
                ev.sport = u16::from_be_bytes([u[0], u[1]]);
                ev.dport = u16::from_be_bytes([u[2], u[3]]);
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if let Some(c) = read::<[u8; 6]>(l4, 0) {
                ev.icmp_type = c[0];
                ev.icmp_code = c[1];
                ev.icmp_id = u16::from_be_bytes([c[4], c[5]]);
            }
        }
        _ => {}
    }
}

/// Copies the start of the packet into the event for pcap output.
#[inline(always)]
fn capture(l3: u64, ev: &mut Event) {
    let want = if ev.ip_len as usize > PKT_CAPTURE {
        PKT_CAPTURE as u32
    } else {
        ev.ip_len
    };
    // Straight into the scratch map value: 128 bytes do not fit the stack
    // budget next to everything else.
    let rc = unsafe {
        bpf_probe_read_kernel_raw(
            ev.pkt.as_mut_ptr() as *mut core::ffi::c_void,
            PKT_CAPTURE as u32,
            l3 as *const core::ffi::c_void,
        )
    };
    ev.pkt_len = if rc == 0 { want } else { 0 };
}

#[inline(always)]
fn addr_eq(a: &[u8; 16], b: &[u8; 16], family: u8) -> bool {
    let n = if family == 4 { 4 } else { 16 };
    let mut i = 0;
    while i < n {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// All ones when `x` is not zero, else zero; no branch.
#[inline(always)]
fn mask_nz(x: u32) -> u32 {
    0u32.wrapping_sub((x | x.wrapping_neg()) >> 31)
}

/// Non-zero when the addresses differ in their first 4 bytes, or, when
/// `v6_mask` is all ones, in any of 16; no branch.
#[inline(always)]
fn addr_diff(a: &[u8; 16], b: &[u8; 16], v6_mask: u32) -> u32 {
    let w = |x: &[u8; 16], i: usize| u32::from_ne_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]);
    let head = w(a, 0) ^ w(b, 0);
    let tail = (w(a, 4) ^ w(b, 4)) | (w(a, 8) ^ w(b, 8)) | (w(a, 12) ^ w(b, 12));
    head | (tail & v6_mask)
}

/// Does the packet in `ev` match filter `f` in the given direction?
///
/// Arithmetic, not a branch per field: the verifier walks this for every
/// filter a bank might hold (the count is a map value it cannot know), and
/// branches multiply the states it explores.
#[inline(always)]
fn filter_matches(f: &PacketFilter, ev: &Event, reverse: bool) -> bool {
    if f.flags & FILTER_ICMP_ERROR != 0 {
        return !reverse
            && (f.family == 0 || f.family == ev.family)
            && is_icmp_error(ev.l4proto, ev.icmp_type)
            && (f.flags & FILTER_DADDR == 0 || addr_eq(&f.daddr, &ev.daddr, ev.family));
    }
    let (s, d, sp, dp) = if reverse {
        (&ev.daddr, &ev.saddr, ev.dport, ev.sport)
    } else {
        (&ev.saddr, &ev.daddr, ev.sport, ev.dport)
    };
    let v6 = mask_nz((ev.family ^ 4) as u32);
    let mut miss = mask_nz(f.family as u32) & (f.family ^ ev.family) as u32;
    miss |= mask_nz(f.l4proto as u32) & (f.l4proto ^ ev.l4proto) as u32;
    miss |= mask_nz((f.flags & FILTER_SADDR) as u32) & addr_diff(&f.saddr, s, v6);
    miss |= mask_nz((f.flags & FILTER_DADDR) as u32) & addr_diff(&f.daddr, d, v6);
    miss |= mask_nz(f.sport as u32) & (f.sport ^ sp) as u32;
    miss |= mask_nz(f.dport as u32) & (f.dport ^ dp) as u32;
    miss == 0
}

#[inline(always)]
fn packet_wanted(bank: u32) -> bool {
    if bank >= MAX_BANKS {
        return false;
    }
    let n = BANK_FILTERS.get(bank).copied().unwrap_or(0);
    if n == 0 {
        return true;
    }
    let mut i = 0u32;
    while i < MAX_FILTERS {
        if i >= n {
            break;
        }
        if pktfate_match(bank * MAX_FILTERS + i) != 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// Does the event in `SCRATCH` (an IP packet: [`pktfate_wanted`] checked)
/// match filter `idx`, either way it allows? Global, so the verifier
/// walks it once, not once per filter slot of the loop in
/// [`packet_wanted`].
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pktfate_match(idx: u32) -> u32 {
    let (Some(f), Some(ev)) = (FILTERS.get(idx), SCRATCH.get(0)) else {
        return 0;
    };
    let hit = filter_matches(f, ev, false)
        || (f.flags & FILTER_REVERSE != 0 && filter_matches(f, ev, true));
    hit as u32
}

/// [`packet_wanted`] for the event in `SCRATCH`. Global functions are
/// verified once per program with unknown arguments, instead of once for
/// every state that reaches the call: the filter loop inlined made each
/// program cost the verifier ~75,000 instructions.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pktfate_wanted(bank: u32) -> u32 {
    match SCRATCH.get(0) {
        Some(ev) => (ev.family != 0 && packet_wanted(bank)) as u32,
        None => 0,
    }
}

fn count_lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        unsafe { *p += 1 };
    }
}

/// Fills the context fields common to every event and sends it.
#[inline(always)]
fn finish_and_send<C: EbpfContext>(ctx: &C, ev: &mut Event) {
    finish::<C, true>(ctx, ev)
}

/// Sends an event; `TRACING` programs also record the task and the stack
/// (helpers a tc classifier may not call).
#[inline(always)]
fn finish<C: EbpfContext, const TRACING: bool>(ctx: &C, ev: &mut Event) {
    let cfg = config();
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.cpu = unsafe { bpf_get_smp_processor_id() };
    ev.pid = 0;
    ev.comm = [0; 16];
    if TRACING {
        ev.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
    ev._pad = 0;
    ev.stack_bytes = 0;
    if TRACING && cfg.flags & CONFIG_STACKS != 0 {
        let size = (MAX_STACK_DEPTH * 8) as u32;
        ev.stack_bytes = unsafe {
            bpf_get_stack(
                ctx.as_ptr(),
                ev.stack.as_mut_ptr() as *mut core::ffi::c_void,
                size,
                0,
            )
        } as i32;
    }
    if EVENTS.output::<Event>(&*ev, 0).is_err() {
        count_lost();
    }
}

/// The common path of every skb-carrying tracepoint.
#[inline(always)]
fn on_skb<C: EbpfContext>(
    ctx: &C,
    hook_id: u32,
    skb: u64,
    dev_arg: u64,
    reason: u32,
    location: u64,
    aux: [i32; 3],
) -> u32 {
    on_skb_in::<C, true>(ctx, hook_id, skb, dev_arg, reason, location, aux)
}

/// [`on_skb`] for tracing programs (`TRACING`) and tc classifiers.
#[inline(always)]
fn on_skb_in<C: EbpfContext, const TRACING: bool>(
    ctx: &C,
    hook_id: u32,
    skb: u64,
    dev_arg: u64,
    reason: u32,
    location: u64,
    aux: [i32; 3],
) -> u32 {
    if skb == 0 {
        return 0;
    }
    let cfg = config();
    let dev = if dev_arg != 0 {
        dev_arg
    } else {
        read(skb, cfg.offsets.skb_dev).unwrap_or(0)
    };
    // A pointer into the map, not a copy: the 512-byte stack is tight on
    // older verifiers (5.10 counts it with the helpers' frames).
    let known: Option<&Tracked> = unsafe { TRACKED.get(skb) };
    let (netns, ifindex) = skb_place(&cfg, skb, dev, known);
    // Only watched namespaces, tracked skb or not: an address still in
    // TRACKED (its free had no tracepoint) may be reused by another
    // process's or the host's skb carrying the same addresses. And a skb
    // tracked for one run is not another run's.
    let Some(watch) = watch_of(&cfg, netns) else {
        if known.is_some() {
            let _ = TRACKED.remove(skb);
        }
        forget_current();
        return 0;
    };
    let known = match known {
        Some(k) if k.run != watch.run => {
            let _ = TRACKED.remove(skb);
            None
        }
        k => k,
    };
    let ev = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return 0,
    };
    ev.skb = skb;
    pktfate_parse();
    // A tracked address now carrying another protocol, or other addresses
    // on both ends (NAT rewrites one side at a time), is a new skb at a
    // reused address: its predecessor was freed without a tracepoint.
    let mut tracked = known.is_some();
    let tunnel = is_tunnel(ev.l4proto, ev.sport, ev.dport);
    if let Some(k) = known {
        let moved = ev.family != 0
            && k.tunnel == 0
            && !tunnel
            && (k.family != ev.family
                || k.l4proto != ev.l4proto
                || (!addr_eq(&k.saddr, &ev.saddr, ev.family)
                    && !addr_eq(&k.daddr, &ev.daddr, ev.family)));
        if moved {
            let _ = TRACKED.remove(skb);
            tracked = false;
        }
    }
    if !tracked && pktfate_wanted(watch.bank) == 0 {
        forget_current();
        return 0;
    }
    // Free events end tracking, so only the others start or refresh it.
    if hook_id != hook::KFREE_SKB && hook_id != hook::CONSUME_SKB && ev.family != 0 {
        let snap = Tracked {
            netns,
            family: ev.family,
            l4proto: ev.l4proto,
            tunnel: tunnel as u8,
            _pad: 0,
            run: watch.run,
            ifindex,
            saddr: ev.saddr,
            daddr: ev.daddr,
        };
        let _ = TRACKED.insert(skb, snap, 0);
    }
    ev.hook = hook_id;
    ev.run = watch.run;
    ev.skb = skb;
    ev.location = location;
    ev.netns = netns;
    ev.ifindex = ifindex;
    ev.mark = read(skb, cfg.offsets.skb_mark).unwrap_or(0);
    ev.len = read(skb, cfg.offsets.skb_len).unwrap_or(0);
    ev.reason = reason;
    ev.aux = aux;
    if hook_id == hook::KFREE_SKB || hook_id == hook::CONSUME_SKB {
        let _ = TRACKED.remove(skb);
        if let Some(c) = CURRENT.get_ptr_mut(0) {
            unsafe {
                if (*c)[0] == skb {
                    *c = [0, 0, 0];
                }
            }
        }
    } else {
        // A classifier may not ask for the task; the tracepoint before it
        // (netif_receive_skb, net_dev_queue) already set CURRENT.
        if TRACING {
            if let Some(c) = CURRENT.get_ptr_mut(0) {
                let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
                unsafe { *c = [skb, netns as u64, task] };
            }
        }
        if ev.l4proto == IPPROTO_TCP {
            let _ = FLOWS.insert(flow_key(netns, ev.dport, ev.sport), skb, 0);
        }
    }
    finish::<C, TRACING>(ctx, ev);
    0
}

/// What a hook program hands to [`skb_common`]: the tracepoint's
/// arguments, in the order [`on_skb`] takes them.
#[repr(C)]
#[derive(Clone, Copy)]
struct HookArgs {
    skb: u64,
    dev: u64,
    location: u64,
    hook: u32,
    reason: u32,
    aux: [i32; 3],
    _pad: u32,
}

/// Per CPU: the arguments of the hook program that is tail-calling
/// [`skb_common`].
#[map]
static ARGS: PerCpuArray<HookArgs> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0 holds [`skb_common`]; the loader fills it before it attaches any
/// hook program.
#[map]
static SKB_PROGS: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The body every skb tracepoint shares, as a program of its own that the
/// hook programs tail-call: the verifier walks it once, not once per hook.
/// (A `tp_btf` program could not be shared: each is verified against its
/// own tracepoint's prototype. Raw tracepoints all share one context type,
/// so one program serves them all.)
#[raw_tracepoint]
pub fn skb_common(ctx: RawTracePointContext) -> i32 {
    let Some(a) = ARGS.get(0).copied() else {
        return 0;
    };
    on_skb(&ctx, a.hook, a.skb, a.dev, a.reason, a.location, a.aux);
    0
}

/// Records a hook's arguments and jumps to [`skb_common`].
#[inline(always)]
fn hand_over(
    ctx: &RawTracePointContext,
    hook_id: u32,
    skb: u64,
    dev: u64,
    reason: u32,
    location: u64,
    aux: [i32; 3],
) -> i32 {
    if skb == 0 {
        return 0;
    }
    let Some(a) = ARGS.get_ptr_mut(0) else {
        return 0;
    };
    unsafe {
        *a = HookArgs {
            skb,
            dev,
            location,
            hook: hook_id,
            reason,
            aux,
            _pad: 0,
        };
        SKB_PROGS.tail_call(ctx, 0);
    }
    // Only reached if the slot is empty, which the loader rules out while
    // the hooks are attached: counted as lost, so a run says so instead of
    // seeing nothing.
    count_lost();
    0
}

#[inline(always)]
fn arg_u64(ctx: &RawTracePointContext, n: usize) -> u64 {
    ctx.arg::<u64>(n)
}

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RECEIVE_SKB, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "netif_rx")]
pub fn netif_rx(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RX, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn net_dev_queue(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NET_DEV_QUEUE, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_start_xmit")]
pub fn net_dev_start_xmit(ctx: RawTracePointContext) -> i32 {
    let (skb, dev) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(&ctx, hook::NET_DEV_START_XMIT, skb, dev, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_xmit")]
pub fn net_dev_xmit(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let rc = ctx.arg::<i64>(1) as i32;
    let dev = arg_u64(&ctx, 2);
    hand_over(&ctx, hook::NET_DEV_XMIT, skb, dev, 0, 0, [rc, 0, 0])
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    let reason = ctx.arg::<u64>(2) as u32;
    hand_over(&ctx, hook::KFREE_SKB, skb, 0, reason, location, [0; 3])
}

/// `kfree_skb(skb, location)`: kernels before 5.17 give no drop reason.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_noreason(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(
        &ctx,
        hook::KFREE_SKB,
        skb,
        0,
        REASON_UNKNOWN,
        location,
        [0; 3],
    )
}

#[raw_tracepoint(tracepoint = "consume_skb")]
pub fn consume_skb(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(&ctx, hook::CONSUME_SKB, skb, 0, 0, location, [0; 3])
}

/// `consume_skb(skb)`: kernels before 6.3 give no location.
#[raw_tracepoint(tracepoint = "consume_skb")]
pub fn consume_skb_noloc(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::CONSUME_SKB, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let len = ctx.arg::<i64>(1) as i32;
    hand_over(
        &ctx,
        hook::SKB_COPY_DATAGRAM_IOVEC,
        skb,
        0,
        0,
        0,
        [len, 0, 0],
    )
}

#[raw_tracepoint(tracepoint = "icmp_send")]
pub fn icmp_send(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let ty = ctx.arg::<i64>(1) as i32;
    let code = ctx.arg::<i64>(2) as i32;
    hand_over(&ctx, hook::ICMP_SEND, skb, 0, 0, 0, [ty, code, 0])
}

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 1);
    let reason = ctx.arg::<u64>(2) as u32;
    hand_over(&ctx, hook::TCP_SEND_RESET, skb, 0, reason, 0, [0; 3])
}

/// `tcp_send_reset(sk, skb)`: kernels before 6.10 give no reset reason.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset_noreason(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 1);
    hand_over(
        &ctx,
        hook::TCP_SEND_RESET,
        skb,
        0,
        REASON_UNKNOWN,
        0,
        [0; 3],
    )
}

#[raw_tracepoint(tracepoint = "netif_receive_skb_entry")]
pub fn netif_receive_skb_entry(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RECEIVE_SKB_ENTRY, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "napi_gro_receive_entry")]
pub fn napi_gro_receive_entry(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NAPI_GRO_RECEIVE_ENTRY, skb, 0, 0, 0, [0; 3])
}

/// The tracked skb this CPU is processing, for hooks that carry no skb,
/// and whether the current task is the one that handled its last event.
#[inline(always)]
fn current_tracked() -> Option<(u64, Tracked, bool)> {
    let (skb, task) = match CURRENT.get(0) {
        Some(c) if c[0] != 0 => (c[0], c[2]),
        _ => return None,
    };
    let now = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
    unsafe { TRACKED.get(skb) }.map(|t| (skb, *t, task == now))
}

/// Fills an event of an skb-less hook, attributed to `skb`, placed where
/// that skb is.
#[inline(always)]
fn fill_attributed(
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
    ev.mark = read(skb, cfg.offsets.skb_mark).unwrap_or(0);
    ev.len = read(skb, cfg.offsets.skb_len).unwrap_or(0);
    ev.reason = 0;
    ev.aux = aux;
}

/// The loopback ifindex: `flowi4_iif` of every output route lookup.
const LOOPBACK_IFINDEX: u32 = 1;

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
    let Some((skb, known, same_task)) = current_tracked() else {
        return 0;
    };
    let saddr: u32 = match read(flp, cfg.offsets.flowi4_saddr) {
        Some(v) => v,
        None => return 0,
    };
    let daddr: u32 = read(flp, cfg.offsets.flowi4_daddr).unwrap_or(0);
    let nh_dev: u64 = read(nhc, cfg.offsets.nhc_dev).unwrap_or(0);
    let oif = read(nh_dev, cfg.offsets.dev_ifindex).unwrap_or(0);
    let ours = if nh_dev != 0 {
        dev_netns(&cfg, nh_dev) == known.netns
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
        return 0;
    }
    let ev = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return 0,
    };
    // The packet's own addresses, to compare with the flow's.
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(&cfg, skb, ev);
    if ev.family != 4 {
        return 0;
    }
    let ps = u32::from_ne_bytes([ev.saddr[0], ev.saddr[1], ev.saddr[2], ev.saddr[3]]);
    let pd = u32::from_ne_bytes([ev.daddr[0], ev.daddr[1], ev.daddr[2], ev.daddr[3]]);
    let same = (daddr == pd && (saddr == ps || saddr == 0))
        || (daddr == ps && (saddr == pd || saddr == 0));
    if !same {
        return 0;
    }
    fill_attributed(
        &cfg,
        ev,
        hook::FIB_TABLE_LOOKUP,
        skb,
        &known,
        [tb_id, err, oif],
    );
    // The packet's headers stay as parsed; the looked-up flow goes apart.
    ev.flow_saddr = saddr.to_ne_bytes();
    ev.flow_daddr = daddr.to_ne_bytes();
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
    let sk_ns = sock_netns(&cfg, sk);
    let Some(watch) = watch_of(&cfg, sk_ns) else {
        return 0;
    };
    if sk_ns == 0 {
        return 0;
    }
    let num: u16 = read(sk, cfg.offsets.sock_num).unwrap_or(0);
    let dport = u16::from_be(read::<u16>(sk, cfg.offsets.sock_dport).unwrap_or(0));
    let by_flow = unsafe { FLOWS.get(flow_key(sk_ns, num, dport)) }
        .copied()
        .and_then(|skb| unsafe { TRACKED.get(skb) }.map(|t| (skb, *t)));
    let Some((skb, known)) = by_flow.or_else(|| current_tracked().map(|(s, t, _)| (s, t))) else {
        return 0;
    };
    if known.netns != sk_ns || known.run != watch.run {
        return 0;
    }
    let ev = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return 0,
    };
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(&cfg, skb, ev);
    let ours = (ev.dport == num && ev.sport == dport) || (ev.sport == num && ev.dport == dport);
    if !ours || num == 0 {
        return 0;
    }
    fill_attributed(
        &cfg,
        ev,
        hook::INET_SOCK_SET_STATE,
        skb,
        &known,
        [old, new, 0],
    );
    finish_and_send(&ctx, ev);
    0
}

/// A classifier the harness attaches ahead of a scenario's own tc
/// programs (lower priority number, so it runs first). It runs inside
/// `tcf_classify`, records the skb as it is before the scenario's programs
/// see it, and lets classification go on (`TC_ACT_UNSPEC`).
#[classifier]
pub fn tc_observer(ctx: TcContext) -> i32 {
    // The context of a tc program is the kernel's `struct sk_buff`.
    let skb = ctx.as_ptr() as u64;
    on_skb_in::<TcContext, false>(&ctx, hook::TCF_CLASSIFY, skb, 0, 0, 0, [0; 3]);
    TC_ACT_UNSPEC
}

/// A kernel function took a tracked skb (the function-level backend).
/// Only skbs the tracepoints already track are reported, and tracking is
/// neither started nor refreshed here: functions that run after the free
/// (`skb_release_data`, `kfree_skbmem`) must not revive a dead skb.
/// `location` gives the function's address, read only for tracked skbs.
#[inline(always)]
fn on_function<C: EbpfContext>(ctx: &C, skb: u64, location: impl FnOnce() -> u64) -> u32 {
    if skb == 0 {
        return 0;
    }
    let Some(known) = (unsafe { TRACKED.get(skb) }).copied() else {
        return 0;
    };
    let cfg = config();
    let dev: u64 = read(skb, cfg.offsets.skb_dev).unwrap_or(0);
    let (netns, ifindex) = skb_place(&cfg, skb, dev, Some(&known));
    match watch_of(&cfg, netns) {
        Some(w) if w.run == known.run => {}
        _ => return 0,
    }
    let ev = match SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return 0,
    };
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(&cfg, skb, ev);
    ev.hook = hook::FUNCTION;
    ev.run = known.run;
    ev.skb = skb;
    ev.location = location();
    ev.netns = netns;
    ev.ifindex = ifindex;
    ev.mark = read(skb, cfg.offsets.skb_mark).unwrap_or(0);
    ev.len = read(skb, cfg.offsets.skb_len).unwrap_or(0);
    ev.reason = 0;
    ev.aux = [0; 3];
    finish_and_send(ctx, ev);
    0
}

/// One kprobe program per argument position the skb may take (x86-64
/// passes five in registers).
macro_rules! skb_arg_probes {
    ($($name:ident = $arg:literal),*) => {$(
        #[kprobe]
        pub fn $name(ctx: ProbeContext) -> u32 {
            // With an int3 or ftrace kprobe, ip is just past the probed
            // address.
            on_function(&ctx, ctx.arg::<u64>($arg).unwrap_or(0), || {
                unsafe { (*ctx.regs).rip }.saturating_sub(1)
            })
        }
    )*};
}

skb_arg_probes!(
    kprobe_skb_arg0 = 0,
    kprobe_skb_arg1 = 1,
    kprobe_skb_arg2 = 2,
    kprobe_skb_arg3 = 3,
    kprobe_skb_arg4 = 4
);

/// The same for one kprobe-multi link over every function: the link gives
/// each function a cookie, the position of its skb argument. One program
/// and one link instead of five: each link costs the kernel a walk over
/// kallsyms. aya 0.14 cannot give a program the kprobe-multi attach
/// type, so the harness loads this one itself.
#[kprobe]
pub fn kmulti_skb(ctx: ProbeContext) -> u32 {
    // Every register read at its constant offset first, then one picked:
    // a register chosen by the cookie would be a variable offset into the
    // context, which the verifier refuses.
    let args: [u64; 5] = [
        ctx.arg(0).unwrap_or(0),
        ctx.arg(1).unwrap_or(0),
        ctx.arg(2).unwrap_or(0),
        ctx.arg(3).unwrap_or(0),
        ctx.arg(4).unwrap_or(0),
    ];
    let skb = match unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } {
        0 => args[0],
        1 => args[1],
        2 => args[2],
        3 => args[3],
        4 => args[4],
        _ => 0,
    };
    // A kprobe-multi link's registers are not those of the probed call.
    on_function(&ctx, skb, || unsafe { bpf_get_func_ip(ctx.as_ptr()) })
}

/// One fentry program per argument position (fentry passes the arguments
/// as an array; 5.15+ for `bpf_get_func_ip`). The harness loads one copy
/// per function, with that function as its attach target: the section's
/// `ip_rcv` is only a placeholder.
macro_rules! skb_arg_fentries {
    ($($name:ident = $arg:literal),*) => {$(
        #[fentry(function = "ip_rcv")]
        pub fn $name(ctx: FEntryContext) -> i32 {
            on_function(&ctx, ctx.arg::<u64>($arg), || unsafe {
                bpf_get_func_ip(ctx.as_ptr())
            }) as i32
        }
    )*};
}

skb_arg_fentries!(
    fentry_skb_arg0 = 0,
    fentry_skb_arg1 = 1,
    fentry_skb_arg2 = 2,
    fentry_skb_arg3 = 3,
    fentry_skb_arg4 = 4
);

/// Loaded by `pktfate doctor` only, to learn whether this kernel lets a
/// kprobe attach (the function-level backend needs it). Does nothing.
#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// Loaded by `pktfate doctor` and the fentry backend's check, to learn
/// whether this kernel accepts fentry programs (BPF trampolines) that call
/// `bpf_get_func_ip` (5.15+), as the backend's do. Does nothing with it.
#[fentry(function = "ip_rcv")]
pub fn probe_fentry(ctx: FEntryContext) -> i32 {
    let mut ip = 0u64;
    // Volatile, so the call is kept; fentry programs must return 0.
    unsafe { core::ptr::write_volatile(&mut ip, bpf_get_func_ip(ctx.as_ptr())) };
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
