//! Packets to inject: crafted frames or socket sends.

use std::net::IpAddr;

use super::*;

/// A checksum field: computed, deliberately wrong, or a fixed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Computed correctly.
    #[default]
    Auto,
    /// Computed, then made wrong.
    Bad,
    /// This exact value.
    Value(u16),
}

/// IP layer of a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum IpLayer {
    /// IPv4.
    V4 {
        /// Source.
        src: std::net::Ipv4Addr,
        /// Destination.
        dst: std::net::Ipv4Addr,
        /// TTL.
        ttl: u8,
        /// Identification.
        id: u16,
        /// TOS byte.
        tos: u8,
        /// Don't-fragment bit.
        df: bool,
        /// Header checksum.
        checksum: Checksum,
    },
    /// IPv6.
    V6 {
        /// Source.
        src: std::net::Ipv6Addr,
        /// Destination.
        dst: std::net::Ipv6Addr,
        /// Hop limit.
        hop_limit: u8,
        /// Traffic class.
        traffic_class: u8,
        /// Flow label (20 bits).
        flow_label: u32,
    },
}

/// TCP flag bits, as on the wire.
pub mod tcp_flag {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
}

/// Transport layer of a packet.
#[derive(Debug, Clone, PartialEq)]
pub enum L4Layer {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flag bits ([`tcp_flag`]).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Window.
        window: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// ICMP (over IPv4) or `ICMPv6` (over IPv6).
    Icmp {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Identifier (echo).
        id: u16,
        /// Sequence (echo).
        seq: u16,
        /// Checksum.
        checksum: Checksum,
    },
    /// No transport header.
    None,
}

impl L4Layer {
    /// IP protocol number.
    pub fn proto(&self, v6: bool) -> Option<u8> {
        match self {
            L4Layer::Tcp { .. } => Some(6),
            L4Layer::Udp { .. } => Some(17),
            L4Layer::Icmp { .. } => Some(if v6 { 58 } else { 1 }),
            L4Layer::None => None,
        }
    }
}

/// A packet to build and inject.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketSpec {
    /// IP header.
    pub ip: IpLayer,
    /// Transport header.
    pub l4: L4Layer,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Ethernet addresses for an L2 injection; absent fields are filled from
/// the topology (the sending device's MAC, the receiving end's MAC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ethernet {
    /// Source MAC.
    pub src: Option<[u8; 6]>,
    /// Destination MAC.
    pub dst: Option<[u8; 6]>,
    /// An 802.1Q tag after the MACs.
    pub vlan: Option<VlanTag>,
}

/// How a packet enters the kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// A crafted packet: written into a tun (L3) or tap (L2) device, or sent
    /// out of any other device through an `AF_PACKET` socket (L2).
    Frame {
        /// The device.
        via: DeviceRef,
        /// Ethernet header fields, for L2 injection.
        ethernet: Ethernet,
        /// Headers and payload.
        spec: PacketSpec,
        /// The skb mark (`SO_MARK` of the packet socket; not through a
        /// tun or tap, whose writes the kernel turns into unmarked skbs).
        mark: Option<u32>,
        /// The skb priority (`SO_PRIORITY` of the packet socket; not
        /// through a tun or tap either).
        priority: Option<u32>,
    },
    /// A real socket in a namespace; the kernel builds the packet.
    Socket {
        /// Namespace the socket lives in.
        from: String,
        /// Protocol: TCP connect, UDP send, ICMP echo request.
        proto: SockProto,
        /// Destination address.
        to: IpAddr,
        /// Destination port (TCP/UDP).
        port: u16,
        /// Source port; chosen by the kernel before the trace starts if absent.
        sport: Option<u16>,
        /// Payload (UDP, ICMP).
        payload: Vec<u8>,
        /// ICMP echo id.
        id: u16,
        /// ICMP echo sequence.
        seq: u16,
        /// The socket's mark (`SO_MARK`): its packets' skb mark, and the
        /// mark their route lookups match policy rules with.
        mark: Option<u32>,
        /// The socket's priority (`SO_PRIORITY`): its packets' skb
        /// priority, which qdiscs and egress VLAN maps classify by.
        priority: Option<u32>,
    },
}

/// One injected packet with its expectations.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Name (`packet 1` unless given).
    pub name: String,
    /// How it is sent.
    pub inject: Injection,
    /// What should happen.
    pub expect: Expectation,
}

impl Packet {
    /// Whether the packet is ICMP (its flow needs one tracer filter, not
    /// two: ICMP errors about ICMP are not sent).
    pub fn is_icmp(&self) -> bool {
        match &self.inject {
            Injection::Frame { spec, .. } => matches!(spec.l4, L4Layer::Icmp { .. }),
            Injection::Socket { proto, .. } => *proto == SockProto::Icmp,
        }
    }
}

/// An skb's checksum state (`skb->ip_summed`, `include/linux/skbuff.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpSummed {
    /// `CHECKSUM_NONE`: nobody checked it (software will).
    None,
    /// `CHECKSUM_UNNECESSARY`: a device or the kernel found it good.
    Unnecessary,
    /// `CHECKSUM_COMPLETE`: the device summed the packet (`skb->csum`).
    Complete,
    /// `CHECKSUM_PARTIAL`: to be filled in on transmit (by the device or
    /// software).
    Partial,
}

impl IpSummed {
    /// Every state, in the kernel's numbering.
    pub const ALL: [IpSummed; 4] = [
        IpSummed::None,
        IpSummed::Unnecessary,
        IpSummed::Complete,
        IpSummed::Partial,
    ];

    /// The state of value `v` (its two bits).
    pub fn from_bits(v: u8) -> Self {
        Self::ALL[usize::from(v & 3)]
    }

    /// As scenarios write it.
    pub fn name(self) -> &'static str {
        match self {
            IpSummed::None => "none",
            IpSummed::Unnecessary => "unnecessary",
            IpSummed::Complete => "complete",
            IpSummed::Partial => "partial",
        }
    }

    /// The state called `name` (`partial`, or `CHECKSUM_PARTIAL`).
    pub fn parse(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_prefix("checksum_").unwrap_or(&n);
        Self::ALL.into_iter().find(|s| s.name() == n)
    }
}

/// A VLAN tag a frame carries (802.1Q): id and priority code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// The VLAN id (1-4094).
    pub id: u16,
    /// The priority code point (0-7).
    pub pcp: u8,
}
