//! Which events are one packet's life: the skb it is judged by, followed
//! across the copies the kernel makes of it.

use std::collections::HashSet;

use crate::collect::{Step, Timeline};

/// The judged skb's life: from its first forward event to its end.
pub fn life(tl: &Timeline, packet: usize) -> Vec<&Step> {
    life_of(tl, packet, false)
}

/// How soon after the packet's latest event a copy must appear, natively.
const COPY_WINDOW_NS: u64 = 100_000_000;

/// [`COPY_WINDOW_NS`] times the run's timeout scale: in an emulated guest
/// a raw socket's reader took 167 ms to copy out the reply it was given.
fn copy_window(tl: &Timeline) -> u64 {
    COPY_WINDOW_NS * u64::from(tl.timeout_scale.max(1))
}

/// What identifies one packet across skb copies: the headers that a copy
/// keeps (addresses, ports, TCP sequence and flags, ICMP type and id).
fn signature(
    s: &Step,
) -> (
    Option<std::net::IpAddr>,
    Option<std::net::IpAddr>,
    u8,
    u16,
    u16,
    u32,
    u8,
    u8,
    u16,
) {
    let p = &s.ev.packet;
    (
        p.src,
        p.dst,
        p.proto,
        p.sport,
        p.dport,
        p.tcp_seq,
        p.tcp_flags,
        p.icmp_type,
        p.icmp_id,
    )
}

/// Like [`life`], for the first packet flowing back (`reverse`) or forward.
///
/// A packet can change skbs on its way: on 6.18, a packet that waits for
/// ARP is queued as a copy and the original is consumed in
/// `__neigh_event_send`. So the life starts with the first skb carrying
/// the packet and takes in every later skb whose first event carries the
/// same packet (by `signature`, as of any event so far, so NAT and
/// rewrites are followed). Events come in time order.
pub fn life_of(tl: &Timeline, packet: usize, reverse: bool) -> Vec<&Step> {
    life_within(tl, packet, reverse, copy_window(tl))
}

/// [`life_of`] with copies taken in up to `window_ns` after the latest event.
pub(super) fn life_within(
    tl: &Timeline,
    packet: usize,
    reverse: bool,
    window_ns: u64,
) -> Vec<&Step> {
    let cands: Vec<&Step> = tl
        .steps
        .iter()
        // A socket's own route lookup comes before its skb (skb 0): not
        // part of any skb's life. An XDP program's run on a bare frame
        // (skb 0 too) is the packet before any skb.
        .filter(|s| {
            s.packet == Some(packet)
                && s.reverse == reverse
                && (s.ev.skb != 0 || s.ev.hook == crate::common::Hook::ProgReturn)
        })
        .collect();
    let Some(first) = cands.first() else {
        return vec![];
    };
    // First event of each skb life, in time order.
    let mut starts: Vec<&Step> = vec![];
    let mut seen_lives = HashSet::new();
    for s in &cands {
        if seen_lives.insert(s.life) {
            starts.push(s);
        }
    }
    let mut chain = HashSet::from([first.life]);
    let mut sigs: HashSet<_> = cands
        .iter()
        .filter(|s| s.life == first.life)
        .map(|s| signature(s))
        .collect();
    let last_ts = |chain: &HashSet<u64>| {
        cands
            .iter()
            .filter(|c| chain.contains(&c.life))
            .map(|c| c.ev.ts_ns)
            .max()
            .unwrap_or(0)
    };
    loop {
        let mut grew = false;
        for s in &starts {
            // A copy starts at once; the same headers much later are a new
            // send (a retransmission), not this packet.
            let near = s.ev.ts_ns <= last_ts(&chain) + window_ns;
            if !chain.contains(&s.life) && near && sigs.contains(&signature(s)) {
                chain.insert(s.life);
                sigs.extend(
                    cands
                        .iter()
                        .filter(|c| c.life == s.life)
                        .map(|c| signature(c)),
                );
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    cands
        .into_iter()
        .filter(|s| chain.contains(&s.life))
        .collect()
}
