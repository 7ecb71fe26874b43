//! A namespace's conntrack table, read over ctnetlink inside it
//! (`IPCTNL_MSG_CT_GET` dump; attributes from
//! `include/uapi/linux/netfilter/nfnetlink_conntrack.h`), not from a
//! `conntrack` binary.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use crate::common::nlattr::{attributes, be_u16, be_u32, messages};
use crate::scenario::{CT_STATUS_BITS as STATUS_BITS, CT_TCP_STATES as TCP_STATES};

/// One direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CtTuple {
    /// Source address.
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP).
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
}

/// A conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CtEntry {
    /// The original direction (as the first packet went).
    pub orig: CtTuple,
    /// The reply direction (what a reply must look like, NAT applied).
    pub reply: CtTuple,
    /// Status bits by name (`SEEN_REPLY`, `ASSURED`, `DST_NAT`, ...).
    pub status: Vec<&'static str>,
    /// TCP state, for TCP.
    pub tcp_state: Option<&'static str>,
    /// The connection mark.
    pub mark: u32,
    /// The zone.
    pub zone: u16,
}

fn tuple(p: &[u8]) -> CtTuple {
    let mut t = CtTuple {
        src: None,
        dst: None,
        proto: 0,
        sport: None,
        dport: None,
    };
    for (k, v) in attributes(p) {
        match k {
            // CTA_TUPLE_IP
            1 => {
                for (a, x) in attributes(v) {
                    let ip = match x.len() {
                        4 => <[u8; 4]>::try_from(x).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(x).ok().map(IpAddr::from),
                        _ => None,
                    };
                    match a {
                        1 | 3 => t.src = ip,
                        2 | 4 => t.dst = ip,
                        _ => {}
                    }
                }
            }
            // CTA_TUPLE_PROTO
            2 => {
                for (a, x) in attributes(v) {
                    match a {
                        1 => t.proto = x.first().copied().unwrap_or(0),
                        2 => t.sport = be_u16(x),
                        3 => t.dport = be_u16(x),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    t
}

/// Decodes one `IPCTNL_MSG_CT_NEW` message (header included).
pub(super) fn decode(msg: &[u8]) -> Option<CtEntry> {
    let kind = u16::from_ne_bytes([*msg.get(4)?, *msg.get(5)?]);
    // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW
    if kind != 1 << 8 {
        return None;
    }
    let mut e = CtEntry {
        orig: tuple(&[]),
        reply: tuple(&[]),
        status: vec![],
        tcp_state: None,
        mark: 0,
        zone: 0,
    };
    for (k, v) in attributes(msg.get(20..)?) {
        match k {
            1 => e.orig = tuple(v),
            2 => e.reply = tuple(v),
            3 => {
                let bits = be_u32(v).unwrap_or(0);
                e.status = (0..16)
                    .filter(|b| bits & (1 << b) != 0)
                    .map(|b| STATUS_BITS[b])
                    .collect();
            }
            // CTA_PROTOINFO { CTA_PROTOINFO_TCP { CTA_PROTOINFO_TCP_STATE } }
            4 => {
                for (_, tcp) in attributes(v).filter(|(a, _)| *a == 1) {
                    for (_, s) in attributes(tcp).filter(|(a, _)| *a == 1) {
                        e.tcp_state = s.first().and_then(|s| TCP_STATES.get(*s as usize)).copied();
                    }
                }
            }
            8 => e.mark = be_u32(v).unwrap_or(0),
            18 => e.zone = be_u16(v).unwrap_or(0),
            _ => {}
        }
    }
    Some(e)
}

/// A namespace's table as read at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CtTable {
    /// The scenario's name for the namespace.
    pub ns: String,
    /// Its entries.
    pub entries: Vec<CtEntry>,
    /// Why it could not be read, when it could not.
    pub unreadable: Option<String>,
}

/// The conntrack entries of the namespace at `ns`.
pub fn dump(ns: &Path) -> io::Result<Vec<CtEntry>> {
    crate::topology::netns::run_in(ns, || -> io::Result<Vec<CtEntry>> {
        let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
        s.bind_auto()?;
        // nlmsghdr + nfgenmsg (AF_UNSPEC: every family).
        let mut req = vec![0u8; 20];
        req[..4].copy_from_slice(&20u32.to_ne_bytes());
        req[4..6].copy_from_slice(&((1u16 << 8) | 1).to_ne_bytes());
        // NLM_F_REQUEST | NLM_F_DUMP
        req[6..8].copy_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        s.send(&req, 0)?;
        let mut out = vec![];
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = s.recv(&mut &mut buf[..], 0)?;
            let mut done = n == 0;
            for m in messages(&buf[..n]) {
                match u16::from_ne_bytes([m[4], m[5]]) {
                    // NLMSG_DONE
                    3 => done = true,
                    // NLMSG_ERROR: the error code follows the header.
                    2 => {
                        let code = i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        done = true;
                    }
                    _ => out.extend(decode(m)),
                }
            }
            if done {
                return Ok(out);
            }
        }
    })
    .and_then(|r| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::common::nlattr::encode as nla;

    fn tuple(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut ip = nla(1, &src);
        ip.extend(nla(2, &dst));
        let mut proto = nla(1, &[6]);
        proto.extend(nla(2, &sport.to_be_bytes()));
        proto.extend(nla(3, &dport.to_be_bytes()));
        let mut t = nla(1 | 0x8000, &ip);
        t.extend(nla(2 | 0x8000, &proto));
        t
    }

    #[test]
    fn decodes_a_dnat_entry_as_ctnetlink_sends_it() {
        // portmap's hostPort: 198.51.100.2:40000 -> node:8080, reply from
        // the pod's 192.0.2.2:80; SEEN_REPLY | ASSURED | CONFIRMED |
        // DST_NAT, TCP established, mark 7.
        let mut attrs = nla(
            1 | 0x8000,
            &tuple([198, 51, 100, 2], [198, 51, 100, 1], 40000, 8080),
        );
        attrs.extend(nla(
            2 | 0x8000,
            &tuple([192, 0, 2, 2], [198, 51, 100, 2], 80, 40000),
        ));
        attrs.extend(nla(3, &(0b10_1110u32).to_be_bytes()));
        attrs.extend(nla(4 | 0x8000, &nla(1 | 0x8000, &nla(1, &[3]))));
        attrs.extend(nla(8, &7u32.to_be_bytes()));
        let mut msg = vec![0u8; 16];
        msg[..4].copy_from_slice(&((20 + attrs.len()) as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&(1u16 << 8).to_ne_bytes());
        msg.extend([2, 0, 0, 0]);
        msg.extend(attrs);
        let e = decode(&msg).expect("a conntrack entry");
        assert_eq!(e.orig.dport, Some(8080));
        assert_eq!(e.reply.src, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(e.reply.sport, Some(80));
        assert_eq!(e.status, ["SEEN_REPLY", "ASSURED", "CONFIRMED", "DST_NAT"]);
        assert_eq!(e.tcp_state, Some("ESTABLISHED"));
        assert_eq!((e.mark, e.zone), (7, 0));
        // A deletion event (IPCTNL_MSG_CT_DELETE) is not a dump entry.
        msg[4..6].copy_from_slice(&((1u16 << 8) | 2).to_ne_bytes());
        assert_eq!(decode(&msg), None);
    }
}
