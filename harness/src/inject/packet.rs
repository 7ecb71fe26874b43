//! Building the bytes of a packet from a [`PacketSpec`] with etherparse.
//!
//! Checksums are computed unless the scenario overrides them: `bad` computes
//! the right value and then makes it wrong in a way no receiver can accept.

use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header,
    Ipv6Header, TcpHeader, UdpHeader,
};

use crate::scenario::{Checksum, IpLayer, L4Layer, PacketSpec, tcp_flag};

/// Errors building a packet.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The packet does not fit in an IP datagram.
    #[error("packet too large: {0}")]
    TooLarge(String),
}

/// Applies a checksum override to a correctly computed value.
pub fn apply_checksum(correct: u16, how: Checksum) -> u16 {
    match how {
        Checksum::Auto => correct,
        // Flipping only the low byte never lands on the other one's-complement
        // encoding of the same sum (0x0000 vs 0xffff), so it is always wrong.
        Checksum::Bad => correct ^ 0x00ff,
        Checksum::Value(v) => v,
    }
}

/// The L3 packet (starting at the IP header), as written into a tun device.
pub fn build(spec: &PacketSpec) -> Result<Vec<u8>, PacketError> {
    let v6 = matches!(spec.ip, IpLayer::V6 { .. });
    let (l4_bytes, proto) = transport(spec, v6)?;
    let mut out = vec![];
    match &spec.ip {
        IpLayer::V4 {
            src,
            dst,
            ttl,
            id,
            tos,
            df,
            checksum,
        } => {
            let mut h = Ipv4Header::new(0, *ttl, IpNumber(proto), src.octets(), dst.octets())
                .map_err(|e| PacketError::TooLarge(e.to_string()))?;
            h.set_payload_len(l4_bytes.len())
                .map_err(|e| PacketError::TooLarge(e.to_string()))?;
            h.identification = *id;
            h.dont_fragment = *df;
            h.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap_or_default();
            h.ecn = etherparse::IpEcn::try_new(tos & 3).unwrap_or_default();
            h.header_checksum = apply_checksum(h.calc_header_checksum(), *checksum);
            out.extend_from_slice(&h.to_bytes());
        }
        IpLayer::V6 {
            src,
            dst,
            hop_limit,
            traffic_class,
            flow_label,
        } => {
            let h = Ipv6Header {
                traffic_class: *traffic_class,
                flow_label: etherparse::Ipv6FlowLabel::try_new(*flow_label).unwrap_or_default(),
                payload_length: u16::try_from(l4_bytes.len()).map_err(|_| {
                    PacketError::TooLarge(format!("{} byte IPv6 payload", l4_bytes.len()))
                })?,
                next_header: IpNumber(proto),
                hop_limit: *hop_limit,
                source: src.octets(),
                destination: dst.octets(),
            };
            out.extend_from_slice(&h.to_bytes());
        }
    }
    out.extend_from_slice(&l4_bytes);
    Ok(out)
}

/// Transport header + payload, with the IP protocol number.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per transport (TCP, UDP, ICMP, ICMPv6, none), each building and checksumming its header"
)]
fn transport(spec: &PacketSpec, v6: bool) -> Result<(Vec<u8>, u8), PacketError> {
    let payload = &spec.payload;
    let (src6, dst6, src4, dst4) = match &spec.ip {
        IpLayer::V4 { src, dst, .. } => ([0; 16], [0; 16], src.octets(), dst.octets()),
        IpLayer::V6 { src, dst, .. } => (src.octets(), dst.octets(), [0; 4], [0; 4]),
    };
    let too_large =
        |e: etherparse::err::ValueTooBigError<usize>| PacketError::TooLarge(e.to_string());
    let mut out = vec![];
    let proto = match &spec.l4 {
        L4Layer::Tcp {
            sport,
            dport,
            flags,
            seq,
            ack,
            window,
            checksum,
        } => {
            let mut t = TcpHeader::new(*sport, *dport, *seq, *window);
            t.acknowledgment_number = *ack;
            t.syn = flags & tcp_flag::SYN != 0;
            t.ack = flags & tcp_flag::ACK != 0;
            t.fin = flags & tcp_flag::FIN != 0;
            t.rst = flags & tcp_flag::RST != 0;
            t.psh = flags & tcp_flag::PSH != 0;
            t.urg = flags & tcp_flag::URG != 0;
            let correct = if v6 {
                t.calc_checksum_ipv6_raw(src6, dst6, payload)
                    .map_err(too_large)?
            } else {
                t.calc_checksum_ipv4_raw(src4, dst4, payload)
                    .map_err(too_large)?
            };
            t.checksum = apply_checksum(correct, *checksum);
            out.extend_from_slice(&t.to_bytes());
            6
        }
        L4Layer::Udp {
            sport,
            dport,
            checksum,
        } => {
            let mut u = if v6 {
                UdpHeader::with_ipv6_checksum(
                    *sport,
                    *dport,
                    &Ipv6Header {
                        source: src6,
                        destination: dst6,
                        ..Default::default()
                    },
                    payload,
                )
                .map_err(too_large)?
            } else {
                UdpHeader::with_ipv4_checksum(
                    *sport,
                    *dport,
                    &Ipv4Header {
                        source: src4,
                        destination: dst4,
                        ..Default::default()
                    },
                    payload,
                )
                .map_err(too_large)?
            };
            u.checksum = apply_checksum(u.checksum, *checksum);
            out.extend_from_slice(&u.to_bytes());
            17
        }
        L4Layer::Icmp {
            kind,
            code,
            id,
            seq,
            checksum,
        } => {
            if v6 {
                let ty = match (*kind, *code) {
                    (128, 0) => Icmpv6Type::EchoRequest(IcmpEchoHeader { id: *id, seq: *seq }),
                    (129, 0) => Icmpv6Type::EchoReply(IcmpEchoHeader { id: *id, seq: *seq }),
                    (k, c) => Icmpv6Type::Unknown {
                        type_u8: k,
                        code_u8: c,
                        bytes5to8: echo_bytes(*id, *seq),
                    },
                };
                let mut h =
                    Icmpv6Header::with_checksum(ty, src6, dst6, payload).map_err(too_large)?;
                h.checksum = apply_checksum(h.checksum, *checksum);
                out.extend_from_slice(&h.to_bytes());
                58
            } else {
                let ty = match (*kind, *code) {
                    (8, 0) => Icmpv4Type::EchoRequest(IcmpEchoHeader { id: *id, seq: *seq }),
                    (0, 0) => Icmpv4Type::EchoReply(IcmpEchoHeader { id: *id, seq: *seq }),
                    (k, c) => Icmpv4Type::Unknown {
                        type_u8: k,
                        code_u8: c,
                        bytes5to8: echo_bytes(*id, *seq),
                    },
                };
                let mut h = Icmpv4Header::with_checksum(ty, payload);
                h.checksum = apply_checksum(h.checksum, *checksum);
                out.extend_from_slice(&h.to_bytes());
                1
            }
        }
        L4Layer::None => 253, // RFC 3692 experimental: "no transport header"
    };
    out.extend_from_slice(payload);
    Ok((out, proto))
}

/// RFC 1071 internet checksum of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_bytes(id: u16, seq: u16) -> [u8; 4] {
    let (i, s) = (id.to_be_bytes(), seq.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn syn(checksum: Checksum) -> PacketSpec {
        PacketSpec {
            ip: IpLayer::V4 {
                src: "172.30.0.1".parse().unwrap(),
                dst: "192.0.2.8".parse().unwrap(),
                ttl: 63,
                id: 0xd86f,
                tos: 0,
                df: true,
                checksum,
            },
            l4: L4Layer::Tcp {
                sport: 41626,
                dport: 10001,
                flags: tcp_flag::SYN,
                seq: 7,
                ack: 0,
                window: 64240,
                checksum: Checksum::Auto,
            },
            payload: vec![],
        }
    }

    /// RFC 1071: the one's-complement sum over a valid header is 0xffff.
    fn header_sums_to_ffff(h: &[u8]) -> bool {
        let mut sum: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn ipv4_tcp_syn_parses_back() {
        let b = build(&syn(Checksum::Auto)).unwrap();
        assert_eq!(b.len(), 40);
        assert!(header_sums_to_ffff(&b[..20]));
        let p = SlicedPacket::from_ip(&b).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().ttl(), 63);
        assert_eq!(ip.header().identification(), 0xd86f);
        assert!(ip.header().dont_fragment());
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not tcp")
        };
        assert!(t.syn() && !t.ack());
        assert_eq!(
            (t.source_port(), t.destination_port(), t.sequence_number()),
            (41626, 10001, 7)
        );
        let src = [172, 30, 0, 1];
        let dst = [192, 0, 2, 8];
        assert_eq!(t.calc_checksum_ipv4(src, dst).unwrap(), t.checksum());
    }

    #[test]
    fn bad_ip_checksum_is_never_valid() {
        let b = build(&syn(Checksum::Bad)).unwrap();
        assert!(!header_sums_to_ffff(&b[..20]));
        for c in [0u16, 0xffff, 0x00ff, 0xff00, 0x1234] {
            let bad = apply_checksum(c, Checksum::Bad);
            assert_ne!(bad, c);
            let zero_ffff = [0u16, 0xffff];
            assert!(!(zero_ffff.contains(&c) && zero_ffff.contains(&bad)));
        }
        let b = build(&syn(Checksum::Value(0xf77b))).unwrap();
        assert_eq!(&b[10..12], &[0xf7, 0x7b]);
    }

    #[test]
    fn internet_checksum_matches_etherparse() {
        let spec = syn(Checksum::Auto);
        let b = build(&spec).unwrap();
        let mut hdr = b[..20].to_vec();
        let stored = u16::from_be_bytes([hdr[10], hdr[11]]);
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(internet_checksum(&hdr), stored);
        // Odd length pads with a zero byte.
        assert_eq!(internet_checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn ipv6_udp_and_icmp() {
        let spec = PacketSpec {
            ip: IpLayer::V6 {
                src: "2001:db8::1".parse().unwrap(),
                dst: "2001:db8::2".parse().unwrap(),
                hop_limit: 9,
                traffic_class: 0,
                flow_label: 5,
            },
            l4: L4Layer::Udp {
                sport: 5000,
                dport: 53,
                checksum: Checksum::Auto,
            },
            payload: b"hi".to_vec(),
        };
        let b = build(&spec).unwrap();
        let p = SlicedPacket::from_ip(&b).unwrap();
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!("not udp")
        };
        assert_eq!(u.destination_port(), 53);
        assert_eq!(u.payload(), b"hi");
        let spec = PacketSpec {
            l4: L4Layer::Icmp {
                kind: 128,
                code: 0,
                id: 7,
                seq: 3,
                checksum: Checksum::Auto,
            },
            ..spec
        };
        let b = build(&spec).unwrap();
        assert_eq!(b[6], 58);
        assert_eq!(b[40], 128);
    }
}
