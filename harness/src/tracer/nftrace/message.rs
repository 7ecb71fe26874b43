//! `NFT_MSG_TRACE` messages (nfnetlink, `NFNL_SUBSYS_NFTABLES`): one per
//! rule evaluation of a packet whose `nftrace` bit is set, as
//! `net/netfilter/nf_tables_trace.c` builds them (Linux 4.6+; attribute
//! numbers from `include/uapi/linux/netfilter/nf_tables.h`).

use std::net::IpAddr;

use crate::common::nlattr::{attributes, be_u32, text};
use crate::scenario::CtState;
use crate::tracer::PacketInfo;

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_TRACE`.
pub(super) const TRACE_MSG_TYPE: u16 = (10 << 8) | 0x11;
/// The multicast group trace messages go to.
pub(super) const NFNLGRP_NFTRACE: u32 = 9;

/// What an evaluation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalKind {
    /// A rule matched (its verdict follows, `continue` for one that only
    /// acted).
    Rule,
    /// The end of a chain reached without a verdict: back to the caller.
    Return,
    /// The end of a base chain: its policy decided.
    Policy,
}

/// An nftables verdict (`enum nft_verdicts` and the `NF_*` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfVerdict {
    /// `NF_DROP`.
    Drop,
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_STOLEN`.
    Stolen,
    /// `NF_QUEUE`.
    Queue,
    /// `NF_REPEAT`.
    Repeat,
    /// `NF_STOP`.
    Stop,
    /// `NFT_CONTINUE`: the next rule.
    Continue,
    /// `NFT_BREAK`.
    Break,
    /// `NFT_JUMP` to a chain.
    Jump,
    /// `NFT_GOTO` a chain.
    Goto,
    /// `NFT_RETURN`.
    Return,
    /// A code this reader does not know.
    Other,
}

impl NfVerdict {
    fn from_code(code: i32) -> Self {
        // NF_* in the low byte; NF_QUEUE carries its queue number above.
        match code {
            -1 => Self::Continue,
            -2 => Self::Break,
            -3 => Self::Jump,
            -4 => Self::Goto,
            -5 => Self::Return,
            c if c >= 0 => match c & 0xff {
                0 => Self::Drop,
                1 => Self::Accept,
                2 => Self::Stolen,
                3 => Self::Queue,
                4 => Self::Repeat,
                5 => Self::Stop,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// Whether the packet's fate at this hook is settled by it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Drop | Self::Accept | Self::Stolen | Self::Queue | Self::Stop
        )
    }

    /// As nft prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Accept => "accept",
            Self::Stolen => "stolen",
            Self::Queue => "queue",
            Self::Repeat => "repeat",
            Self::Stop => "stop",
            Self::Continue => "continue",
            Self::Break => "break",
            Self::Jump => "jump",
            Self::Goto => "goto",
            Self::Return => "return",
            Self::Other => "?",
        }
    }
}

/// One trace message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TraceMsg {
    /// `NFPROTO_*` of the table.
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    pub kind: Option<EvalKind>,
    pub verdict: Option<NfVerdict>,
    /// The chain of a jump or goto.
    pub target: Option<String>,
    pub id: u32,
    pub packet: PacketInfo,
    pub mark: Option<u32>,
    /// `NFTA_TRACE_CT_STATE` (Linux 6.16+), with the packet's headers.
    pub ct_state: Option<CtState>,
}

/// The family's name as nft writes it.
pub(super) fn family_name(nfproto: u8) -> &'static str {
    match nfproto {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "?",
    }
}

/// Addresses and protocol from an IP header, ports from the transport
/// header.
fn packet(network: &[u8], transport: &[u8]) -> PacketInfo {
    let mut p = PacketInfo::default();
    match network.first().map(|b| b >> 4) {
        Some(4) if network.len() >= 20 => {
            p.proto = network[9];
            p.ttl = network[8];
            let a = |i: usize| {
                IpAddr::from(<[u8; 4]>::try_from(&network[i..i + 4]).unwrap_or_default())
            };
            p.src = Some(a(12));
            p.dst = Some(a(16));
        }
        Some(6) if network.len() >= 40 => {
            p.proto = network[6];
            p.ttl = network[7];
            let a = |i: usize| {
                IpAddr::from(<[u8; 16]>::try_from(&network[i..i + 16]).unwrap_or_default())
            };
            p.src = Some(a(8));
            p.dst = Some(a(24));
        }
        _ => return p,
    }
    match p.proto {
        6 | 17 if transport.len() >= 4 => {
            p.sport = u16::from_be_bytes([transport[0], transport[1]]);
            p.dport = u16::from_be_bytes([transport[2], transport[3]]);
            if p.proto == 6 && transport.len() >= 14 {
                p.tcp_flags = transport[13];
                p.tcp_seq =
                    u32::from_be_bytes([transport[4], transport[5], transport[6], transport[7]]);
            }
        }
        1 | 58 if transport.len() >= 2 => {
            p.icmp_type = transport[0];
            p.icmp_code = transport[1];
            if transport.len() >= 6 {
                p.icmp_id = u16::from_be_bytes([transport[4], transport[5]]);
            }
        }
        _ => {}
    }
    p
}

/// Decodes one netlink message (header included); `None` for any other
/// message.
pub(super) fn decode(msg: &[u8]) -> Option<TraceMsg> {
    let kind = u16::from_ne_bytes([*msg.get(4)?, *msg.get(5)?]);
    if kind != TRACE_MSG_TYPE {
        return None;
    }
    // nlmsghdr (16 bytes), then nfgenmsg: family, version, res_id.
    let family = *msg.get(16)?;
    let mut m = TraceMsg {
        family,
        table: String::new(),
        chain: String::new(),
        handle: None,
        kind: None,
        verdict: None,
        target: None,
        id: 0,
        packet: PacketInfo::default(),
        mark: None,
        ct_state: None,
    };
    let (mut network, mut transport): (&[u8], &[u8]) = (&[], &[]);
    for (t, p) in attributes(msg.get(20..)?) {
        match t {
            1 => m.table = text(p),
            2 => m.chain = text(p),
            3 => {
                m.handle = p
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes);
            }
            4 => {
                m.kind = match be_u32(p) {
                    Some(1) => Some(EvalKind::Policy),
                    Some(2) => Some(EvalKind::Return),
                    Some(3) => Some(EvalKind::Rule),
                    _ => None,
                }
            }
            5 => {
                for (vt, vp) in attributes(p) {
                    match vt {
                        1 => m.verdict = be_u32(vp).map(|c| NfVerdict::from_code(c as i32)),
                        2 => m.target = Some(text(vp)),
                        _ => {}
                    }
                }
            }
            6 => m.id = be_u32(p).unwrap_or(0),
            8 => network = p,
            9 => transport = p,
            14 => m.mark = be_u32(p),
            // NFTA_TRACE_CT_STATE: absent for an invalid packet, one
            // conntrack has not seen, and before Linux 6.16.
            21 => m.ct_state = be_u32(p).and_then(CtState::from_bits),
            // A policy event carries the policy as its own attribute.
            16 if m.verdict.is_none() => {
                m.verdict = be_u32(p).map(|c| NfVerdict::from_code(c as i32));
            }
            _ => {}
        }
    }
    m.packet = packet(network, transport);
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::common::nlattr::encode as nla;

    #[test]
    fn decodes_a_rule_drop_as_the_kernel_builds_it() {
        // The SSH SYN of firewall/iptables-drop-ssh, dropped by a rule of
        // `ip filter INPUT` (handle 4): what nf_tables_trace.c sends.
        let ip = [
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 20, 198, 51, 100, 21,
        ];
        let tcp = [0xb7, 0x98, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
        let mut verdict = nla(1, &0u32.to_be_bytes());
        verdict.extend(nla(2, b"ignored\0"));
        let mut attrs = vec![];
        attrs.extend(nla(1, b"filter\0"));
        attrs.extend(nla(2, b"INPUT\0"));
        attrs.extend(nla(3, &4u64.to_be_bytes()));
        attrs.extend(nla(4, &3u32.to_be_bytes()));
        attrs.extend(nla(5 | 0x8000, &verdict));
        attrs.extend(nla(6, &0xa062_c926u32.to_be_bytes()));
        attrs.extend(nla(8, &ip));
        attrs.extend(nla(9, &tcp));
        let mut msg = vec![0u8; 16];
        msg[..4].copy_from_slice(&((20 + attrs.len()) as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&TRACE_MSG_TYPE.to_ne_bytes());
        msg.extend([2, 0, 0, 0]); // NFPROTO_IPV4
        msg.extend(attrs);
        let m = decode(&msg).expect("a trace message");
        assert_eq!(family_name(m.family), "ip");
        assert_eq!((m.table.as_str(), m.chain.as_str()), ("filter", "INPUT"));
        assert_eq!(m.handle, Some(4));
        assert_eq!(m.kind, Some(EvalKind::Rule));
        assert_eq!(m.verdict, Some(NfVerdict::Drop));
        assert_eq!(m.id, 0xa062_c926);
        assert_eq!(m.packet.dport, 22);
        assert_eq!(m.packet.src, Some("198.51.100.20".parse().unwrap()));
        assert_eq!(m.packet.tcp_flags, 0x02);
        assert_eq!(m.ct_state, None);
        // Linux 6.16+ adds the conntrack view to the packet's dump: a NEW
        // packet of the original direction (NF_CT_STATE_BIT(IP_CT_NEW)).
        let mut with_ct = msg.clone();
        with_ct.extend(nla(18, &7u32.to_be_bytes()));
        with_ct.extend(nla(19, &[0]));
        with_ct.extend(nla(21, &8u32.to_be_bytes()));
        let len = with_ct.len() as u32;
        with_ct[..4].copy_from_slice(&len.to_ne_bytes());
        let m = decode(&with_ct).expect("a trace message");
        assert_eq!(m.ct_state, Some(CtState::New));
        // Any other nfnetlink message is not a trace.
        msg[4..6].copy_from_slice(&((10u16 << 8) | 16).to_ne_bytes());
        assert_eq!(decode(&msg), None);
    }

    #[test]
    fn verdict_codes() {
        assert_eq!(NfVerdict::from_code(-3), NfVerdict::Jump);
        assert_eq!(NfVerdict::from_code(1), NfVerdict::Accept);
        // NF_QUEUE with queue number 5 in the high bits.
        assert_eq!(NfVerdict::from_code(5 << 16 | 3), NfVerdict::Queue);
        assert!(NfVerdict::Drop.is_final() && !NfVerdict::Jump.is_final());
    }
}
