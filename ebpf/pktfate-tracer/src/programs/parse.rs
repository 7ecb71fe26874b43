//! Packet parsing: the L3/L4 fields of an event from the skb's data,
//! behind one global function the verifier walks once per program.

use super::*;

/// Fills the L3/L4 fields of the event in `SCRATCH` from the packet data
/// of its skb (`ev.skb`: a global function takes scalars only, and a
/// tracepoint's skb pointer is not one). Global, so the protocol branches
/// do not multiply the states the caller's code is verified in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pktfate_parse() -> u32 {
    let cfg = config();
    if let Some(ev) = scratch() {
        parse_packet(cfg, ev.skb, ev);
    }
    0
}

/// The ethertypes of an 802.1Q and an 802.1ad tag.
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Fills the L3/L4 fields of the event in `SCRATCH` from an Ethernet
/// frame at kernel address `data` (an XDP program's frame, which has no
/// skb), past one VLAN tag. Global, as [`pktfate_parse`]: inlined, its
/// caller's frame came to 320 bytes.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pktfate_parse_frame(data: u64) -> u32 {
    let Some(ev) = scratch() else {
        return 0;
    };
    clear_packet(ev);
    let Some(eth) = read::<[u8; 14]>(data, 0) else {
        return 0;
    };
    let proto = u16::from_be_bytes([eth[12], eth[13]]);
    if let Some((proto, l3)) = past_vlan(proto, data + 14, ev) {
        parse_l3(proto, l3, ev);
    }
    0
}

/// Steps over an 802.1Q or 802.1ad tag at `l3` when `proto` says one is
/// there: the ethertype after it and where its packet starts. The tag
/// becomes the event's VLAN (an out-of-band one, read later, wins).
#[inline(always)]
fn past_vlan(proto: u16, l3: u64, ev: &mut Event) -> Option<(u16, u64)> {
    if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
        return Some((proto, l3));
    }
    let tag = read::<[u8; 4]>(l3, 0)?;
    ev.vlan_tci = u16::from_be_bytes([tag[0], tag[1]]);
    ev.skb_flags = SKB_VLAN_PRESENT;
    Some((u16::from_be_bytes([tag[2], tag[3]]), l3 + 4))
}

/// Clears the packet and route fields of `ev` (the per-CPU event keeps
/// the previous event's values otherwise).
#[inline(always)]
pub(crate) fn clear_packet(ev: &mut Event) {
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
    ev.flow_saddr = [0; 16];
    ev.flow_daddr = [0; 16];
    ev.gw = [0; 16];
    ev.gw_family = 0;
    ev.route_type = 0;
    ev.ip_len = 0;
    ev.pkt_len = 0;
    ev.vlan_tci = 0;
    ev.skb_flags = 0;
}

/// Fills the L3/L4 fields of `ev` from the skb's packet data.
#[inline(always)]
pub(crate) fn parse_packet(cfg: &TracerConfig, skb: u64, ev: &mut Event) {
    clear_packet(ev);
    let head: u64 = match read(skb, cfg.offsets.skb_head) {
        Some(h) => h,
        None => return,
    };
    let nh: u16 = read(skb, cfg.offsets.skb_network_header).unwrap_or(HEADER_UNSET);
    if head == 0 || nh == HEADER_UNSET {
        return;
    }
    let proto = u16::from_be(read::<u16>(skb, cfg.offsets.skb_protocol).unwrap_or(0));
    // A tag still in the data (before the receive path takes it out):
    // the network header is the tag's; the packet follows it.
    if let Some((proto, l3)) = past_vlan(proto, head + nh as u64, ev) {
        parse_l3(proto, l3, ev);
    }
}

/// Fills the L3/L4 fields of `ev` from a packet whose network header
/// (of ethertype `proto`) is at kernel address `l3`.
#[inline(always)]
pub(crate) fn parse_l3(proto: u16, l3: u64, ev: &mut Event) {
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
pub(crate) fn capture(l3: u64, ev: &mut Event) {
    let want = if ev.ip_len as usize > PKT_CAPTURE {
        PKT_CAPTURE as u32
    } else {
        ev.ip_len
    };
    // Straight into the scratch map value: 128 bytes do not fit the stack
    // budget next to everything else.
    // SAFETY: the helper writes at most PKT_CAPTURE bytes into `ev.pkt`, which holds that many,
    // and fails cleanly on a bad source.
    let rc = unsafe {
        bpf_probe_read_kernel_raw(
            ev.pkt.as_mut_ptr() as *mut core::ffi::c_void,
            PKT_CAPTURE as u32,
            l3 as *const core::ffi::c_void,
        )
    };
    ev.pkt_len = if rc == 0 { want } else { 0 };
}
