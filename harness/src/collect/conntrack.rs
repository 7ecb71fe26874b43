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

/// How a table was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtRead {
    /// Looked up by the tuples the scenario's packets had, the lookups
    /// accounting for every entry the namespace counts.
    Lookups,
    /// Dumped whole.
    Dump,
}

/// A connection one of the scenario's packets belongs to, as the packet
/// showed it in the namespace: a key the kernel can look its entry up by,
/// whichever direction the packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Ports, or an ICMP echo's (id, type, code).
    pub l4: (u16, u16, u8),
}

impl CtKey {
    /// The key of a packet with these headers, for the protocols whose
    /// entries a tuple names: TCP and UDP, ICMP and ICMP-for-IPv6 echoes.
    pub fn of(p: &crate::tracer::PacketInfo) -> Option<CtKey> {
        let (src, dst) = (p.src?, p.dst?);
        if src.is_ipv4() != dst.is_ipv4() {
            return None;
        }
        let l4 = match (p.proto, p.icmp_type) {
            (6 | 17, _) => (p.sport, p.dport, 0),
            // Echo request and reply (ICMP 8/0, ICMPv6 128/129): other
            // types have no entry of their own to look up.
            (1, 8 | 0) | (58, 128 | 129) => (p.icmp_id, u16::from(p.icmp_type), p.icmp_code),
            _ => return None,
        };
        Some(CtKey {
            src,
            dst,
            proto: p.proto,
            l4,
        })
    }

    /// An `IPCTNL_MSG_CT_GET` request for this key's entry.
    fn request(&self, seq: u32) -> Vec<u8> {
        use crate::common::nlattr::encode as nla;
        const NESTED: u16 = 0x8000;
        // CTA_IP_V4_SRC/DST, or CTA_IP_V6_SRC/DST.
        let (family, ip) = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (
                libc::AF_INET,
                [nla(1, &s.octets()), nla(2, &d.octets())].concat(),
            ),
            (IpAddr::V6(s), IpAddr::V6(d)) => (
                libc::AF_INET6,
                [nla(3, &s.octets()), nla(4, &d.octets())].concat(),
            ),
            _ => unreachable!("CtKey::of takes one family"),
        };
        let mut proto = nla(1, &[self.proto]);
        let (a, b, code) = self.l4;
        if matches!(self.proto, 1 | 58) {
            // CTA_PROTO_ICMP_{ID,TYPE,CODE}, or the ICMPv6 ones.
            let base = if self.proto == 1 { 4 } else { 7 };
            proto.extend(nla(base, &a.to_be_bytes()));
            proto.extend(nla(base + 1, &[b as u8]));
            proto.extend(nla(base + 2, &[code]));
        } else {
            proto.extend(nla(2, &a.to_be_bytes()));
            proto.extend(nla(3, &b.to_be_bytes()));
        }
        let mut tuple = nla(1 | NESTED, &ip);
        tuple.extend(nla(2 | NESTED, &proto));
        // CTA_TUPLE_ORIG: the kernel finds the entry by either direction.
        let attrs = nla(1 | NESTED, &tuple);
        // NLM_F_REQUEST | NLM_F_ACK: the entry, then an acknowledgement.
        let mut req = header(20 + attrs.len(), 0x1 | 0x4, seq, family as u8);
        req.extend(attrs);
        req
    }
}

/// An nlmsghdr and nfgenmsg for ctnetlink's `IPCTNL_MSG_CT_GET`.
fn header(len: usize, flags: u16, seq: u32, family: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
    h[4..6].copy_from_slice(&((1u16 << 8) | 1).to_ne_bytes());
    h[6..8].copy_from_slice(&flags.to_ne_bytes());
    h[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nfgen_family; version 0 (NFNETLINK_V0); res_id 0.
    h[16] = family;
    h
}

/// A bound on the lookups, one netlink round trip each: a scenario's
/// connections in a namespace are a handful; past this many, the table is
/// dumped instead.
const MOST_LOOKUPS: usize = 64;

/// The conntrack entries of the namespace at `ns`.
///
/// A dump walks the kernel's whole conntrack hash, shared by every
/// namespace and sized by the machine's memory (262,144 buckets with
/// 24 GiB), taking a lock per bucket: ~11 ms of CPU however few entries
/// the namespace has. So the entries of `keys` (the connections of the
/// scenario's packets) are looked up one by one first; when they are all
/// the namespace counts (`nf_conntrack_count`, read before and after),
/// they are the table. Otherwise (an entry no packet of the scenario
/// made, another zone, a protocol without a key) the table is dumped.
pub fn read(ns: &Path, keys: &[CtKey]) -> io::Result<(Vec<CtEntry>, CtRead)> {
    // Every event of a packet gives its key: one lookup each.
    let mut keys = keys.to_vec();
    keys.sort_unstable_by_key(|k| (k.src, k.dst, k.proto, k.l4));
    keys.dedup();
    crate::topology::netns::run_in(ns, move || -> io::Result<(Vec<CtEntry>, CtRead)> {
        if keys.len() <= MOST_LOOKUPS {
            if let Some(entries) = looked_up(&socket()?, &keys) {
                return Ok((entries, CtRead::Lookups));
            }
        }
        // A socket of its own: no late reply to a lookup is read as part
        // of the dump.
        Ok((dump_with(&socket()?)?, CtRead::Dump))
    })
    .and_then(|r| r)
}

fn socket() -> io::Result<netlink_sys::Socket> {
    use std::os::fd::AsRawFd;
    let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
    s.bind_auto()?;
    // A reply that never comes is an error, not a run that hangs.
    let wait = libc::timeval {
        tv_sec: 10,
        tv_usec: 0,
    };
    // SAFETY: a valid socket and a timeval of the size given.
    let set = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&wait).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}

/// How many entries the calling thread's namespace counts, its own
/// (`net->ct.count`): `None` without conntrack loaded.
fn counted() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The entries of `keys` (distinct), when they are every entry the
/// namespace counts.
fn looked_up(s: &netlink_sys::Socket, keys: &[CtKey]) -> Option<Vec<CtEntry>> {
    let before = counted()?;
    let mut found: Vec<CtEntry> = vec![];
    if before > 0 {
        for (seq, k) in keys.iter().enumerate() {
            for e in lookup(s, k, seq as u32 + 1).ok()? {
                // Both directions of a connection find its one entry.
                if !found.contains(&e) {
                    found.push(e);
                }
            }
        }
    }
    // An entry made or gone meanwhile shows in one count or the other.
    (found.len() == before && counted()? == before).then_some(found)
}

/// The entry `k` belongs to, if the kernel has one (none: `ENOENT`).
fn lookup(s: &netlink_sys::Socket, k: &CtKey, seq: u32) -> io::Result<Vec<CtEntry>> {
    s.send(&k.request(seq), 0)?;
    replies(s)
}

/// Reads replies until the request's end (an error message, or
/// `NLMSG_DONE` after a dump); `ENOENT` is no entry, not an error.
fn replies(s: &netlink_sys::Socket) -> io::Result<Vec<CtEntry>> {
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
                    if code != 0 && code != -libc::ENOENT {
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
}

/// The whole table of the calling thread's namespace.
fn dump_with(s: &netlink_sys::Socket) -> io::Result<Vec<CtEntry>> {
    // NLM_F_REQUEST | NLM_F_DUMP; AF_UNSPEC: every family.
    s.send(&header(20, 0x1 | 0x300, 1, 0), 0)?;
    replies(s)
}

/// The conntrack entries of the namespace at `ns`, dumped whole.
pub fn dump(ns: &Path) -> io::Result<Vec<CtEntry>> {
    crate::topology::netns::run_in(ns, || dump_with(&socket()?)).and_then(|r| r)
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

    /// A namespace of the test's own, deleted however the test ends.
    struct Ns(String);

    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = crate::topology::netns::delete(&self.0);
        }
    }

    /// Two UDP flows over the namespace's loopback, conntrack on: their
    /// (source port, destination port).
    fn two_udp_flows(path: &Path) -> [(u16, u16); 2] {
        crate::topology::netns::run_in(path, || {
            let run = |tool: &str, args: &[&str], stdin: &[u8]| {
                let out = crate::common::process::fed(
                    std::process::Command::new(tool).args(args),
                    stdin,
                )
                .unwrap();
                assert!(out.status.success(), "{tool} {args:?}: {out:?}");
            };
            run("ip", &["link", "set", "lo", "up"], b"");
            // A rule that needs conntrack: the namespace then tracks.
            run(
                "nft",
                &["-f", "-"],
                b"table ip t {\n chain o {\n  type filter hook output priority 0\n  ct state new accept\n }\n}\n",
            );
            [9u16, 10].map(|dport| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.send_to(b"x", ("127.0.0.1", dport)).unwrap();
                (s.local_addr().unwrap().port(), dport)
            })
        })
        .unwrap()
    }

    #[test]
    fn lookups_give_the_whole_table_or_the_table_is_dumped() {
        // Run, or fail saying why: never a silent pass.
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root (it creates a network namespace): run the tests as root, as ci/test does"
        );
        let ns = Ns(format!("pf{}-ct-unit", std::process::id()));
        crate::topology::netns::create(&ns.0).expect("creating a namespace");
        let path = crate::topology::netns::path_of(&ns.0);
        let [a, b] = two_udp_flows(&path);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let key = |(sport, dport): (u16, u16)| CtKey {
            src: lo,
            dst: lo,
            proto: 17,
            l4: (sport, dport, 0),
        };
        // The reply direction's tuple finds the same entry.
        let reply = |(sport, dport): (u16, u16)| key((dport, sport));
        let sorted = |mut v: Vec<CtEntry>| {
            v.sort_by_key(|e| (e.orig.sport, e.orig.dport));
            v
        };
        let whole = sorted(dump(&path).unwrap());
        assert_eq!(whole.len(), 2, "one entry per flow: {whole:?}");
        assert_eq!(
            whole[0].orig.sport.min(whole[1].orig.sport),
            Some(a.0.min(b.0))
        );

        let (got, how) = read(&path, &[key(a), reply(b), key(a)]).unwrap();
        assert_eq!(how, CtRead::Lookups);
        assert_eq!(sorted(got), whole);
        // A flow no key names: the lookups fall short, so it is dumped.
        let (got, how) = read(&path, &[key(a)]).unwrap();
        assert_eq!(how, CtRead::Dump);
        assert_eq!(sorted(got), whole);
        // Every event of a flow gives its key again: repeats are one lookup,
        // not a count over the lookups' limit.
        let repeated: Vec<CtKey> = std::iter::repeat_n([key(a), key(b)], MOST_LOOKUPS)
            .flatten()
            .collect();
        assert_eq!(read(&path, &repeated).unwrap().1, CtRead::Lookups);
        // A key of no entry finds nothing, and is no error.
        let (got, how) = read(&path, &[key(a), key(b), key((1, 2))]).unwrap();
        assert_eq!((sorted(got), how), (whole, CtRead::Lookups));
    }
}
