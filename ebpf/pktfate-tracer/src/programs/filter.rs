//! Packet filters: does an event match a run's flow filters, either way;
//! global functions, verified once, not once per filter slot.

use super::*;

#[inline(always)]
pub(crate) fn addr_eq(a: &[u8; 16], b: &[u8; 16], family: u8) -> bool {
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
pub(crate) fn mask_nz(x: u32) -> u32 {
    0u32.wrapping_sub((x | x.wrapping_neg()) >> 31)
}

/// Non-zero when the addresses differ in their first 4 bytes, or, when
/// `v6_mask` is all ones, in any of 16; no branch.
#[inline(always)]
pub(crate) fn addr_diff(a: &[u8; 16], b: &[u8; 16], v6_mask: u32) -> u32 {
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
pub(crate) fn filter_matches(f: &PacketFilter, ev: &Event, reverse: bool) -> bool {
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
pub(crate) fn packet_wanted(bank: u32) -> bool {
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
    let (Some(f), Some(ev)) = (FILTERS.get(idx), scratch()) else {
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
    match scratch() {
        Some(ev) => (ev.family != 0 && packet_wanted(bank)) as u32,
        None => 0,
    }
}
