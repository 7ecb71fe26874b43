//! The maps the tracer shares with userspace, and the load-time config.

use super::*;

/// Set by userspace before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
pub(crate) static CONFIG: TracerConfig = TracerConfig {
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
        nhc_gw_family: 0,
        nhc_gw: 0,
        fib_nh_parent: 0,
        fib_info_type: 0,
        fib6_res_nh: 0,
        fib6_res_type: 0,
        fib6_res_f6i: 0,
        flowi4_proto: 0,
        flowi4_mark: 0,
        flowi4_sport: 0,
        flowi4_dport: 0,
        task_nsproxy: 0,
        nsproxy_net_ns: 0,
        inet_sport: 0,
        fib6_info_metric: 0,
        fib6_table_id: 0,
        flowi6_saddr: 0,
        flowi6_daddr: 0,
        xdp_buff_data: 0,
        xdp_buff_rxq: 0,
        xdp_buff_hard_start: 0,
        xdp_rxq_dev: 0,
        skb_priority: 0,
        skb_vlan_tci: 0,
        skb_vlan_proto: 0,
        skb_ip_summed: 0,
        skb_ip_summed_shift: 0,
        skb_vlan_present: 0,
        skb_vlan_present_shift: 0,
    },
    flags: 0,
};

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

/// Events that did not fit in the ring buffer, per CPU.
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Watched network namespaces, by inode: which run owns each, and that
/// run's filter bank.
#[map]
pub(crate) static NETNS: HashMap<u32, Watch> = HashMap::with_max_entries(MAX_NETNS * MAX_BANKS, 0);

/// Packet filters, [`MAX_FILTERS`] per bank; a bank's first
/// `BANK_FILTERS[bank]` are used.
#[map]
pub(crate) static FILTERS: Array<PacketFilter> =
    Array::with_max_entries(MAX_FILTERS * MAX_BANKS, 0);

/// Filters in use per bank; 0 tracks every IP skb of the bank's namespaces.
#[map]
pub(crate) static BANK_FILTERS: Array<u32> = Array::with_max_entries(MAX_BANKS, 0);

/// skb address -> what it carried at its last event.
#[map]
pub(crate) static TRACKED: LruHashMap<u64, Tracked> = LruHashMap::with_max_entries(MAX_TRACKED, 0);

/// Last tracked skb seen on this CPU, its netns and the task that handled
/// it, so that hooks that carry no skb (fib_table_lookup) can be attributed
/// to the packet being processed.
#[map]
pub(crate) static CURRENT: PerCpuArray<[u64; 3]> = PerCpuArray::with_max_entries(1, 0);

/// The latest tracked TCP skb flowing towards each socket, keyed by
/// [`flow_key`] of (netns, destination port, source port): a socket hook
/// finds the packet that moved it by its own tuple, whichever CPU and
/// whenever (a segment queued to a socket's backlog is processed later, in
/// the owner's context).
#[map]
pub(crate) static FLOWS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(MAX_TRACKED, 0);

#[inline(always)]
pub(crate) fn flow_key(netns: u32, dport: u16, sport: u16) -> u64 {
    ((netns as u64) << 32) | ((dport as u64) << 16) | sport as u64
}

/// Scratch space for building an event (too big for the 512-byte stack),
/// one slot per [`Level`]: a program building an event in task context can
/// be interrupted, and a softirq run on the interrupt's exit runs our
/// programs on the same CPU; sharing one slot, their event overwrote ours
/// half-built (the kernel keeps its own per-CPU buffers by nesting level,
/// `bpf_trace_nest_level`, for this reason).
#[map]
pub(crate) static SCRATCH: PerCpuArray<Event> = PerCpuArray::with_max_entries(NEST_LEVELS, 0);

/// Task, softirq, hard irq, NMI: how deep our programs can nest on a CPU.
pub(crate) const NEST_LEVELS: u32 = 4;

/// Per CPU: how many of our programs are running, nested (see [`SCRATCH`]).
#[map]
pub(crate) static NEST: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The nesting level a running program holds (its slot in [`SCRATCH`] and
/// `ARGS` is [`current_level`]). Dropping it gives the level back, on
/// every return; a program that tail-calls keeps it (the call does not
/// return) and the called program [`adopt`](Level::adopt)s it. Zero-sized:
/// a value kept across calls would cost the call chain's stack (512 bytes
/// on 5.10 and 6.1) a slot.
pub(crate) struct Level(());

impl Level {
    /// Takes the next level on this CPU; `None` (counted as lost) when all
    /// are taken.
    #[inline(always)]
    pub(crate) fn enter() -> Option<Level> {
        let n = NEST.get_ptr_mut(0)?;
        // SAFETY: this CPU's slot of a per-CPU array. A program that
        // interrupts this one between the read and the write gives back
        // what it took before this one goes on, so a plain read and write
        // cannot lose a level.
        let level = unsafe { *n };
        if level >= NEST_LEVELS {
            count_lost();
            return None;
        }
        // SAFETY: as above.
        unsafe { *n = level + 1 };
        Some(Level(()))
    }

    /// The level the program that tail-called this one took.
    #[inline(always)]
    pub(crate) fn adopt() -> Level {
        Level(())
    }
}

impl Drop for Level {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(n) = NEST.get_ptr_mut(0) {
            // SAFETY: this CPU's slot of a per-CPU array; programs that
            // interrupted this one have given their levels back.
            unsafe { *n = (*n).saturating_sub(1) };
        }
    }
}

/// The level of the program running on this CPU (0 outside any).
#[inline(always)]
pub(crate) fn current_level() -> u32 {
    match NEST.get(0) {
        Some(n) if *n > 0 => (*n - 1).min(NEST_LEVELS - 1),
        _ => 0,
    }
}

/// This level's event under construction.
#[inline(always)]
pub(crate) fn scratch() -> Option<&'static mut Event> {
    let p = SCRATCH.get_ptr_mut(current_level())?;
    // SAFETY: this CPU's slot of a per-CPU array, for this nesting level:
    // a program interrupting this one uses the next.
    Some(unsafe { &mut *p })
}

pub(crate) const ETH_P_IP: u16 = 0x0800;
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_ICMP: u8 = 1;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;
/// `skb->network_header` value meaning "not set".
pub(crate) const HEADER_UNSET: u16 = 0xffff;
