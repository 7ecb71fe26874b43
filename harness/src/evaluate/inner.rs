//! The inner packet of a tunnel packet (VXLAN, Geneve), read from the
//! bytes the tracer captured from the outer IP header on: what `seen`
//! checks with `inner:`.

use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

/// Addresses, protocol, ports of a packet, and the tunnel's VNI for an
/// inner one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (0 without one).
    pub sport: u16,
    /// Destination port (0 without one).
    pub dport: u16,
    /// The VNI of the tunnel that carried it (inner packets only).
    pub vni: Option<u32>,
}

impl std::fmt::Display for Tuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}:{} proto {}",
            self.src, self.sport, self.dst, self.dport, self.proto
        )?;
        if let Some(v) = self.vni {
            write!(f, " vni {v}")?;
        }
        Ok(())
    }
}

/// VXLAN's IANA port and Linux's old default; Geneve's.
const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const GENEVE_PORT: u16 = 6081;
/// Geneve's protocol type for an Ethernet frame.
const TRANS_ETHER_BRIDGING: u16 = 0x6558;

/// The tuple of a parsed packet (truncated captures allowed).
fn tuple(p: &LaxSlicedPacket<'_>) -> Option<Tuple> {
    let (src, dst, proto): (IpAddr, IpAddr, u8) = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.payload().ip_number.0,
        ),
        LaxNetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.payload().ip_number.0,
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let (sport, dport) = match &p.transport {
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        _ => (0, 0),
    };
    Some(Tuple {
        src,
        dst,
        proto,
        sport,
        dport,
        vni: None,
    })
}

/// The inner packet of `ip` (bytes from the outer IP header on), when it
/// is a VXLAN or Geneve packet carrying an IP packet in Ethernet.
pub fn inner(ip: &[u8]) -> Option<Tuple> {
    let outer = LaxSlicedPacket::from_ip(ip).ok()?;
    let Some(TransportSlice::Udp(udp)) = &outer.transport else {
        return None;
    };
    let body = udp.payload();
    let (vni, frame) = if VXLAN_PORTS.contains(&udp.destination_port()) {
        // flags(1) reserved(3) VNI(3) reserved(1)
        let h = body.get(..8)?;
        (u32::from_be_bytes([0, h[4], h[5], h[6]]), body.get(8..)?)
    } else if udp.destination_port() == GENEVE_PORT {
        // ver/opt len(1) flags(1) protocol(2) VNI(3) reserved(1) options
        let h = body.get(..8)?;
        if u16::from_be_bytes([h[2], h[3]]) != TRANS_ETHER_BRIDGING {
            return None;
        }
        let opts = usize::from(h[0] & 0x3f) * 4;
        (
            u32::from_be_bytes([0, h[4], h[5], h[6]]),
            body.get(8 + opts..)?,
        )
    } else {
        return None;
    };
    let mut t = tuple(&LaxSlicedPacket::from_ethernet(frame).ok()?)?;
    t.vni = Some(vni);
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// An Ethernet frame with a UDP packet from 192.0.2.1:5000 to
    /// 192.0.2.2:53.
    fn frame() -> Vec<u8> {
        let mut f = vec![];
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(5000, 53)
            .write(&mut f, b"query")
            .unwrap();
        f
    }

    fn outer(dport: u16, tunnel_header: &[u8], cut: usize) -> Vec<u8> {
        let mut body = tunnel_header.to_vec();
        body.extend(frame());
        let mut p = vec![];
        PacketBuilder::ipv4([203, 0, 113, 1], [203, 0, 113, 2], 64)
            .udp(40000, dport)
            .write(&mut p, &body)
            .unwrap();
        p.truncate(cut);
        p
    }

    #[test]
    fn the_inner_packet_of_vxlan_and_geneve_even_from_a_truncated_capture() {
        let want = Tuple {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            proto: 17,
            sport: 5000,
            dport: 53,
            vni: Some(42),
        };
        // The tracer captures 128 bytes; this packet has 20 + 8 + 8 + 47.
        let vxlan = outer(4789, &[0x08, 0, 0, 0, 0, 0, 42, 0], 128);
        assert_eq!(inner(&vxlan), Some(want.clone()));
        // Geneve with one 4-byte option (opt len 1).
        let geneve = outer(6081, &[0x01, 0, 0x65, 0x58, 0, 0, 42, 0, 1, 2, 3, 4], 128);
        assert_eq!(inner(&geneve), Some(want));
        // Not a tunnel port, or too short to hold the inner headers.
        assert_eq!(inner(&outer(5353, &[0; 8], 128)), None);
        assert_eq!(inner(&outer(4789, &[0x08, 0, 0, 0, 0, 0, 42, 0], 40)), None);
    }
}
