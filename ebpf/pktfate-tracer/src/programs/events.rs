//! Events: tracking an skb by address, filling the event common to every
//! hook and sending it to the ring buffer.

use super::*;

pub(crate) fn count_lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array. A program interrupting
        // this one between the read and the write can cost one count.
        unsafe { *p += 1 };
    }
}

/// The skb's own state: mark, length, priority, VLAN tag and checksum
/// state (`ip_summed`, a bitfield: its byte and shift come from BTF).
/// Runs after the parser, whose tag found in the data it keeps.
#[inline(always)]
pub(crate) fn skb_meta(cfg: &TracerConfig, skb: u64, ev: &mut Event) {
    let o = &cfg.offsets;
    ev.mark = read(skb, o.skb_mark).unwrap_or(0);
    ev.len = read(skb, o.skb_len).unwrap_or(0);
    ev.priority = read_opt(skb, o.skb_priority).unwrap_or(0);
    // A tag the parser found in the data stays unless one is out of band.
    let mut flags = ev.skb_flags & SKB_VLAN_PRESENT;
    if let Some(b) = read_opt::<u8>(skb, o.skb_ip_summed) {
        flags |= SKB_SUMMED_KNOWN | ((b >> (o.skb_ip_summed_shift & 7)) & 3);
    }
    // Before 6.1 a bit says whether the tag is there; from 6.1 a tag is
    // there exactly when its protocol is set.
    let tagged = if o.skb_vlan_present != NO_OFFSET {
        read::<u8>(skb, o.skb_vlan_present).unwrap_or(0) >> (o.skb_vlan_present_shift & 7) & 1
    } else {
        (read_opt::<u16>(skb, o.skb_vlan_proto).unwrap_or(0) != 0) as u8
    };
    if tagged != 0 {
        ev.vlan_tci = read_opt(skb, o.skb_vlan_tci).unwrap_or(0);
        flags |= SKB_VLAN_PRESENT;
    }
    ev.skb_flags = flags;
}

/// [`skb_meta`] for an event without an skb.
#[inline(always)]
pub(crate) fn no_skb_meta(ev: &mut Event) {
    ev.mark = 0;
    ev.len = 0;
    ev.priority = 0;
    ev.vlan_tci = 0;
    ev.skb_flags = 0;
}

/// Fills the context fields common to every event and sends it.
#[inline(always)]
pub(crate) fn finish_and_send<C: EbpfContext>(ctx: &C, ev: &mut Event) {
    finish::<C, true>(ctx, ev)
}

/// Sends an event; `TRACING` programs also record the task and the stack
/// (helpers a tc classifier may not call).
#[inline(always)]
pub(crate) fn finish<C: EbpfContext, const TRACING: bool>(ctx: &C, ev: &mut Event) {
    let flags = config_flags();
    // SAFETY: a helper without arguments.
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a helper without arguments.
    ev.cpu = unsafe { bpf_get_smp_processor_id() };
    ev.pid = 0;
    ev.comm = [0; 16];
    if TRACING {
        ev.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        ev.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
    ev.stack_bytes = 0;
    if TRACING && flags & CONFIG_STACKS != 0 {
        let size = (MAX_STACK_DEPTH * 8) as u32;
        // SAFETY: the buffer is `ev.stack`, MAX_STACK_DEPTH u64s: `size` bytes.
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
pub(crate) fn on_skb<C: EbpfContext>(
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
pub(crate) fn on_skb_in<C: EbpfContext, const TRACING: bool>(
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
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    let known: Option<&Tracked> = unsafe { TRACKED.get(skb) };
    let (netns, ifindex) = skb_place(cfg, skb, dev, known);
    // Only watched namespaces, tracked skb or not: an address still in
    // TRACKED (its free had no tracepoint) may be reused by another
    // process's or the host's skb carrying the same addresses. And a skb
    // tracked for one run is not another run's.
    let Some(watch) = watch_of(cfg, netns) else {
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
    let Some(ev) = scratch() else {
        return 0;
    };
    ev.skb = skb;
    pktfate_parse();
    // A tracked address now carrying another protocol, or other addresses
    // on both ends (NAT rewrites one side at a time), is a new skb at a
    // reused address: its predecessor was freed without a tracepoint. So
    // is one carrying no IP packet at all (a netlink message: an IP skb
    // keeps its protocol and network header to its end), which must not
    // be taken for the tracked packet's end.
    let mut tracked = known.is_some();
    let tunnel = is_tunnel(ev.l4proto, ev.sport, ev.dport);
    if let Some(k) = known {
        let moved = (ev.family == 0 && k.family != 0)
            || (ev.family != 0
                && k.tunnel == 0
                && !tunnel
                && (k.family != ev.family
                    || k.l4proto != ev.l4proto
                    || (!addr_eq(&k.saddr, &ev.saddr, ev.family)
                        && !addr_eq(&k.daddr, &ev.daddr, ev.family))));
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
    skb_meta(cfg, skb, ev);
    ev.reason = reason;
    ev.aux = aux;
    if hook_id == hook::KFREE_SKB || hook_id == hook::CONSUME_SKB {
        let _ = TRACKED.remove(skb);
        if let Some(c) = CURRENT.get_ptr_mut(0) {
            // SAFETY: this CPU's slot of a per-CPU array: the CPU's latest
            // skb, whichever nesting level saw it.
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
                // SAFETY: a helper without arguments.
                let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() };
                // SAFETY: this CPU's slot of a per-CPU array: the CPU's latest
                // skb, whichever nesting level saw it.
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
