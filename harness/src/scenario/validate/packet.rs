//! `inject`: crafted frames and socket sends.

use super::ctx::*;
use super::expect::validate_expect;

pub(super) fn parse_devref(cx: &mut Ctx, s: &raw::S, devs: &DevIndex) -> Option<DeviceRef> {
    let Some((ns, dev)) = s.split_once('/') else {
        cx.err(
            s,
            format!("`{}` is not `namespace/device`", s.as_str()),
            Some("write e.g. `host/tun0`".into()),
        );
        return None;
    };
    let Some(set) = devs.get(ns) else {
        let near = did_you_mean(ns, devs.keys().map(String::as_str));
        cx.err(
            s,
            format!("no namespace `{ns}`"),
            near.map(|n| format!("did you mean `{n}`?")),
        );
        return None;
    };
    if !set.contains(dev) {
        let near = did_you_mean(dev, set.iter().map(String::as_str));
        cx.err(
            s,
            format!("no device `{dev}` in namespace `{ns}`"),
            near.map(|n| format!("did you mean `{n}`?")),
        );
        return None;
    }
    Some(DeviceRef {
        ns: ns.into(),
        dev: dev.into(),
    })
}

/// Validates one packet: a crafted frame written into a device, or a
/// send from a socket that the kernel builds.
pub(super) fn validate_packet(
    cx: &mut Ctx,
    name: String,
    p: raw::Packet,
    namespaces: &[Namespace],
    devs: &DevIndex,
) -> Option<Packet> {
    let i = p.inject;
    if let Some(sock) = &i.socket {
        return socket_packet(cx, name, &i, sock, p.expect, devs);
    }
    let Some(via_s) = i.via.clone() else {
        let e = ScenarioError {
            loc: None,
            file: cx.file.to_path_buf(),
            msg: format!("{name}: `inject` needs `via: namespace/device` or `socket:`"),
            hint: Some(
                "`via` writes a crafted packet into a device; `socket` lets the kernel build it"
                    .into(),
            ),
        };
        cx.errors.push(e);
        return None;
    };
    let (via, ethernet) = device(cx, &i, &via_s, namespaces, devs);
    let ip = ip_layer(cx, &i, &via_s);
    let v6 = matches!(ip, Some(IpLayer::V6 { .. }));
    let l4 = l4_layer(cx, &i, v6, &via_s);
    let payload = payload(cx, &i, ip.as_ref(), &l4);
    let expect = validate_expect(cx, p.expect, devs);
    let mark = i.mark.as_ref().and_then(|m| cx.mark(m));
    let into_tun = via.as_ref().is_some_and(|v| {
        let kind = namespaces
            .iter()
            .find(|n| n.name == v.ns)
            .and_then(|n| n.links.iter().find(|l| l.name == v.dev))
            .map(|l| &l.kind);
        matches!(kind, Some(LinkKind::Tun | LinkKind::Tap))
    });
    if let (Some(m), Some(v), true) = (&i.mark, &via, into_tun) {
        cx.err(
            m,
            format!("a write into `{}` carries no mark: the kernel builds an unmarked skb", v.dev),
            Some("send it from a `socket` with `mark`, or out of a veth (a packet socket's mark is the skb's); a ruleset can also set one (`meta mark set`)".into()),
        );
    }
    if let (Some(pr), Some(v), true) = (&i.priority, &via, into_tun) {
        cx.err(
            pr,
            format!("a write into `{}` carries no priority: the kernel builds the skb with 0", v.dev),
            Some("send it from a `socket` with `priority`, or out of a veth (a packet socket's priority is the skb's)".into()),
        );
    }
    Some(Packet {
        name,
        inject: Injection::Frame {
            via: via?,
            ethernet,
            spec: PacketSpec {
                ip: ip?,
                l4,
                payload,
            },
            mark,
            priority: i.priority.as_ref().map(|p| **p),
        },
        expect,
    })
}

/// A packet the kernel builds from a socket: the frame keys do not apply.
fn socket_packet(
    cx: &mut Ctx,
    name: String,
    i: &raw::Inject,
    sock: &raw::Socket,
    expect: raw::Expect,
    devs: &DevIndex,
) -> Option<Packet> {
    if let Some(v) = &i.via {
        cx.err(
            v,
            "a packet is sent `via` a device or from a `socket`, not both",
            None,
        );
    }
    for (present, key) in [
        (i.ipv4.is_some(), "ipv4"),
        (i.ipv6.is_some(), "ipv6"),
        (i.tcp.is_some(), "tcp"),
        (i.udp.is_some(), "udp"),
        (i.icmp.is_some(), "icmp"),
        (i.ethernet.is_some(), "ethernet"),
    ] {
        if present {
            cx.err(
                &sock.from,
                format!("with `socket`, the kernel builds the packet: drop `{key}`"),
                None,
            );
        }
    }
    if let Some(m) = &i.mark {
        cx.err(
            m,
            "with `socket`, the mark is the socket's",
            Some("write it inside: `socket: { ..., mark: 16 }`".into()),
        );
    }
    if let Some(p) = &i.priority {
        cx.err(
            p,
            "with `socket`, the priority is the socket's",
            Some("write it inside: `socket: { ..., priority: 5 }`".into()),
        );
    }
    let expect = validate_expect(cx, expect, devs);
    validate_socket(cx, sock, devs).map(|inject| Packet {
        name,
        inject,
        expect,
    })
}

/// An 802.1Q tag: an id of 1-4094 (0 is a priority tag, 4095 reserved)
/// and a priority code point of 0-7.
fn vlan_tag(cx: &mut Ctx, v: &Spanned<raw::VlanTag>) -> Option<VlanTag> {
    let id = *v.id;
    if !(1..=4094).contains(&id) {
        cx.err(
            &v.id,
            format!("VLAN id {id} is out of range"),
            Some("802.1Q ids run from 1 to 4094".into()),
        );
        return None;
    }
    let pcp = v.pcp.as_ref().map_or(0, |p| **p);
    if pcp > 7 {
        if let Some(p) = &v.pcp {
            cx.err(p, format!("priority code point {pcp} is over 7"), None);
        }
        return None;
    }
    Some(VlanTag { id, pcp })
}

/// The device written into, and the Ethernet addresses for L2 devices.
fn device(
    cx: &mut Ctx,
    i: &raw::Inject,
    via_s: &raw::S,
    namespaces: &[Namespace],
    devs: &DevIndex,
) -> (Option<DeviceRef>, Ethernet) {
    let via = parse_devref(cx, via_s, devs);
    let mut mac = |m: Option<&raw::S>| {
        let m = m?;
        let v = parse_mac(m);
        if v.is_none() {
            cx.err(m, format!("`{}` is not a MAC address", m.as_str()), None);
        }
        v
    };
    let e = i.ethernet.as_ref();
    let src = mac(e.and_then(|e| e.src.as_ref()));
    let dst = mac(e.and_then(|e| e.dst.as_ref()));
    let ethernet = Ethernet {
        src,
        dst,
        vlan: e
            .and_then(|e| e.vlan.as_ref())
            .and_then(|v| vlan_tag(cx, v)),
    };
    let is_tun = via.as_ref().is_some_and(|v| {
        namespaces
            .iter()
            .find(|n| n.name == v.ns)
            .and_then(|n| n.links.iter().find(|l| l.name == v.dev))
            .is_some_and(|l| l.kind == LinkKind::Tun)
    });
    if is_tun {
        if let Some(e) = &i.ethernet {
            let at = e.src.as_ref().or(e.dst.as_ref()).unwrap_or(via_s);
            cx.err(
                at,
                "a tun device carries IP packets: no `ethernet` header",
                Some("use a tap device or a veth for L2 injection".into()),
            );
        }
    }
    if via.as_ref().is_some_and(|v| v.dev == "lo") {
        cx.err(
            via_s,
            "cannot inject through `lo`",
            Some("use a tun, tap or veth device".into()),
        );
    }
    (via, ethernet)
}

/// `ipv4` or `ipv6`: exactly one, with addresses of its family.
fn ip_layer(cx: &mut Ctx, i: &raw::Inject, via_s: &raw::S) -> Option<IpLayer> {
    match (&i.ipv4, &i.ipv6) {
        (Some(v4), None) => {
            let src = cx.ip(&v4.src, "source");
            let dst = cx.ip(&v4.dst, "destination");
            let checksum = cx.checksum(v4.checksum.as_ref());
            match (src, dst) {
                (Some(IpAddr::V4(src)), Some(IpAddr::V4(dst))) => Some(IpLayer::V4 {
                    src,
                    dst,
                    ttl: v4.ttl.as_ref().map_or(64, |t| **t),
                    id: v4.id.as_ref().map_or(0, |t| **t),
                    tos: v4.tos.as_ref().map_or(0, |t| **t),
                    df: v4.df.as_ref().is_none_or(|t| **t),
                    checksum,
                }),
                (Some(_), Some(_)) => {
                    cx.err(
                        &v4.src,
                        "`ipv4` needs IPv4 addresses",
                        Some("use `ipv6:` for IPv6 packets".into()),
                    );
                    None
                }
                _ => None,
            }
        }
        (None, Some(v6)) => {
            let src = cx.ip(&v6.src, "source");
            let dst = cx.ip(&v6.dst, "destination");
            match (src, dst) {
                (Some(IpAddr::V6(src)), Some(IpAddr::V6(dst))) => Some(IpLayer::V6 {
                    src,
                    dst,
                    hop_limit: v6.hop_limit.as_ref().map_or(64, |t| **t),
                    traffic_class: v6.traffic_class.as_ref().map_or(0, |t| **t),
                    flow_label: v6.flow_label.as_ref().map_or(0, |t| **t & 0xfffff),
                }),
                (Some(_), Some(_)) => {
                    cx.err(
                        &v6.src,
                        "`ipv6` needs IPv6 addresses",
                        Some("use `ipv4:` for IPv4 packets".into()),
                    );
                    None
                }
                _ => None,
            }
        }
        (Some(v4), Some(_)) => {
            cx.err(&v4.src, "a packet has `ipv4` or `ipv6`, not both", None);
            None
        }
        (None, None) => {
            cx.err(
                via_s,
                "the packet has no IP layer",
                Some("add `ipv4: { src, dst }` or `ipv6: { src, dst }`".into()),
            );
            None
        }
    }
}

/// At most one of `tcp`, `udp`, `icmp`.
fn l4_layer(cx: &mut Ctx, i: &raw::Inject, v6: bool, via_s: &raw::S) -> L4Layer {
    let n_l4 = [i.tcp.is_some(), i.udp.is_some(), i.icmp.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n_l4 > 1 {
        cx.err(
            via_s,
            "a packet has at most one of `tcp`, `udp`, `icmp`",
            None,
        );
    }
    if let Some(t) = &i.tcp {
        tcp(cx, t)
    } else if let Some(u) = &i.udp {
        L4Layer::Udp {
            sport: *u.sport,
            dport: *u.dport,
            checksum: cx.checksum(u.checksum.as_ref()),
        }
    } else if let Some(c) = &i.icmp {
        icmp(cx, c, v6)
    } else {
        L4Layer::None
    }
}

/// A TCP header; flags default to SYN.
fn tcp(cx: &mut Ctx, t: &raw::Tcp) -> L4Layer {
    let mut flags = 0u8;
    for f in t.flags.iter().flatten() {
        flags |= match f.to_ascii_lowercase().as_str() {
            "syn" => tcp_flag::SYN,
            "ack" => tcp_flag::ACK,
            "fin" => tcp_flag::FIN,
            "rst" => tcp_flag::RST,
            "psh" => tcp_flag::PSH,
            "urg" => tcp_flag::URG,
            other => {
                cx.err(
                    f,
                    format!("unknown TCP flag `{other}`"),
                    Some("flags: syn, ack, fin, rst, psh, urg".into()),
                );
                0
            }
        };
    }
    if t.flags.is_none() {
        flags = tcp_flag::SYN;
    }
    L4Layer::Tcp {
        sport: *t.sport,
        dport: *t.dport,
        flags,
        seq: t.seq.as_ref().map_or(1, |s| **s),
        ack: t.ack.as_ref().map_or(0, |s| **s),
        window: t.window.as_ref().map_or(64240, |s| **s),
        checksum: cx.checksum(t.checksum.as_ref()),
    }
}

/// An ICMP or `ICMPv6` header; echo types by name, others by number.
fn icmp(cx: &mut Ctx, c: &raw::Icmp, v6: bool) -> L4Layer {
    let kind = match (c.kind.as_str(), v6) {
        ("echo-request", false) => Some(8),
        ("echo-reply", false) => Some(0),
        ("echo-request", true) => Some(128),
        ("echo-reply", true) => Some(129),
        (n, _) => n.parse::<u8>().ok(),
    };
    if let Some(kind) = kind {
        L4Layer::Icmp {
            kind,
            code: c.code.as_ref().map_or(0, |v| **v),
            id: c.id.as_ref().map_or(1, |v| **v),
            seq: c.seq.as_ref().map_or(1, |v| **v),
            checksum: cx.checksum(c.checksum.as_ref()),
        }
    } else {
        cx.err(
            &c.kind,
            format!("unknown ICMP type `{}`", c.kind.as_str()),
            Some("use echo-request, echo-reply or a number".into()),
        );
        L4Layer::None
    }
}

/// `payload` (text) or `payload_hex`, checked to fit the IP packet.
fn payload(cx: &mut Ctx, i: &raw::Inject, ip: Option<&IpLayer>, l4: &L4Layer) -> Vec<u8> {
    let payload = match (&i.payload, &i.payload_hex) {
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => {
            if let Some(b) = decode_hex(h) {
                b
            } else {
                cx.err(h, "`payload_hex` is not an even number of hex digits", None);
                vec![]
            }
        }
        (Some(t), Some(_)) => {
            cx.err(t, "give `payload` or `payload_hex`, not both", None);
            vec![]
        }
        (None, None) => vec![],
    };
    if let (Some(ip), Some(at)) = (ip, i.payload.as_ref().or(i.payload_hex.as_ref())) {
        let l4_len = match l4 {
            L4Layer::Tcp { .. } => 20,
            L4Layer::Udp { .. } | L4Layer::Icmp { .. } => 8,
            L4Layer::None => 0,
        };
        // IPv4's total length counts its header; IPv6's payload length not.
        let room = match ip {
            IpLayer::V4 { .. } => 65535 - 20 - l4_len,
            IpLayer::V6 { .. } => 65535 - l4_len,
        };
        if payload.len() > room {
            cx.err(
                at,
                format!(
                    "a payload of {} bytes; this packet holds at most {room}",
                    payload.len()
                ),
                Some("an IP packet is at most 65,535 bytes, headers included".into()),
            );
        }
    }

    payload
}

pub(super) fn validate_socket(cx: &mut Ctx, s: &raw::Socket, devs: &DevIndex) -> Option<Injection> {
    if !devs.contains_key(s.from.as_str()) {
        let near = did_you_mean(&s.from, devs.keys().map(String::as_str));
        cx.err(
            &s.from,
            format!("no namespace `{}` to send from", s.from.as_str()),
            Some(near.map_or(
                "sockets live in the scenario's own namespaces".into(),
                |n| format!("did you mean `{n}`?"),
            )),
        );
        return None;
    }
    let proto = match s.proto.as_str() {
        "tcp" => SockProto::Tcp,
        "udp" => SockProto::Udp,
        "icmp" | "ping" => SockProto::Icmp,
        other => {
            cx.err(
                &s.proto,
                format!("unknown socket protocol `{other}`"),
                Some("tcp (connect), udp (send) or icmp (echo request)".into()),
            );
            return None;
        }
    };
    let to = cx.ip(&s.to, "destination")?;
    let port = match (&s.port, proto) {
        (Some(p), SockProto::Tcp | SockProto::Udp) => **p,
        (None, SockProto::Tcp | SockProto::Udp) => {
            cx.err(
                &s.proto,
                "a tcp or udp socket needs a destination `port`",
                None,
            );
            return None;
        }
        (Some(p), SockProto::Icmp) => {
            cx.err(p, "an icmp echo has no port", None);
            0
        }
        (None, SockProto::Icmp) => 0,
    };
    Some(Injection::Socket {
        from: s.from.to_string(),
        proto,
        to,
        port,
        sport: s.sport.as_ref().map(|p| **p),
        payload: s
            .payload
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        id: s.id.as_ref().map_or(0x7066, |v| **v),
        seq: s.seq.as_ref().map_or(1, |v| **v),
        mark: s.mark.as_ref().and_then(|v| cx.mark(v)),
        priority: s.priority.as_ref().map(|p| **p),
    })
}

pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Injection, Scenario, ScenarioError};

    const FILE: &str = "namespaces:
  a:
    links:
      - { name: tun0, kind: tun }
      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }
  b: {}
packets:
  - inject:
      socket: { from: a, proto: udp, to: 192.0.2.9, port: 53, mark: \"0x10\" }
    expect:
      seen: [{ at: net_dev_start_xmit@a/v0, mark: 16, len: 47 }]
  - inject:
      via: a/v0
      ipv4: { src: 192.0.2.1, dst: 192.0.2.9 }
      udp: { sport: 1, dport: 2 }
      mark: 7
    expect: { fate: delivered }
";

    fn parse(text: &str) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::parse(std::path::Path::new("t.yaml"), text)
    }

    #[test]
    fn marks_read_in_hex_or_decimal_on_sockets_packet_sockets_and_seen() {
        let s = parse(FILE).unwrap();
        assert!(matches!(
            s.packets[0].inject,
            Injection::Socket { mark: Some(16), .. }
        ));
        assert!(matches!(
            s.packets[1].inject,
            Injection::Frame { mark: Some(7), .. }
        ));
        let seen = &s.packets[0].expect.seen[0];
        assert_eq!((seen.mark, seen.len), (Some(16), Some(47)));
    }

    #[test]
    fn a_mark_out_of_range_or_on_a_tun_write_is_refused_at_its_line() {
        let e = parse(&FILE.replace("mark: \"0x10\"", "mark: \"0x100000000\""))
            .unwrap_err()
            .remove(0);
        assert_eq!(e.msg, "mark `0x100000000` is not a 32-bit number");
        assert_eq!(e.loc.unwrap().line, 9);
        let e = parse(&FILE.replace("mark: 16,", "mark: sixteen,"))
            .unwrap_err()
            .remove(0);
        assert_eq!(e.msg, "mark `sixteen` is not a 32-bit number");
        // The kernel builds an unmarked skb from a tun write.
        let e = parse(&FILE.replace("via: a/v0", "via: a/tun0"))
            .unwrap_err()
            .remove(0);
        assert!(
            e.msg.starts_with("a write into `tun0` carries no mark"),
            "{}",
            e.msg
        );
        assert_eq!(e.loc.unwrap().line, 16);
        // Beside a socket, not in it.
        let e = parse(&FILE.replace(
            "port: 53, mark: \"0x10\" }\n",
            "port: 53 }\n      mark: 16\n",
        ))
        .unwrap_err()
        .remove(0);
        assert_eq!(e.msg, "with `socket`, the mark is the socket's");
        assert_eq!(e.loc.unwrap().line, 10);
    }

    #[test]
    fn priorities_vlan_tags_and_checksum_states_read_and_are_refused_at_their_line() {
        let text = FILE
            .replace("mark: \"0x10\" }", "mark: \"0x10\", priority: 5 }")
            .replace(
                "seen: [{ at: net_dev_start_xmit@a/v0, mark: 16, len: 47 }]",
                "seen: [{ at: net_dev_start_xmit@a/v0, priority: 5, vlan: none, ip_summed: CHECKSUM_PARTIAL }]",
            )
            .replace("      mark: 7\n", "      ethernet: { vlan: { id: 10, pcp: 5 } }\n      priority: 3\n");
        let s = parse(&text).unwrap();
        assert!(matches!(
            s.packets[0].inject,
            Injection::Socket {
                priority: Some(5),
                ..
            }
        ));
        let Injection::Frame {
            ethernet, priority, ..
        } = &s.packets[1].inject
        else {
            panic!("a frame")
        };
        assert_eq!(*priority, Some(3));
        assert_eq!(
            ethernet.vlan,
            Some(crate::scenario::VlanTag { id: 10, pcp: 5 })
        );
        let seen = &s.packets[0].expect.seen[0];
        assert_eq!(seen.priority, Some(5));
        assert_eq!(seen.vlan, Some(crate::scenario::VlanWant::Untagged));
        assert_eq!(seen.ip_summed, Some(crate::scenario::IpSummed::Partial));
        let first = |t: String| parse(&t).unwrap_err().remove(0);
        let e = first(text.replace("vlan: none", "vlan: 4095"));
        assert_eq!(e.msg, "`4095` is not a VLAN id");
        assert_eq!(e.loc.unwrap().line, 11);
        let e = first(text.replace("CHECKSUM_PARTIAL", "partal"));
        assert_eq!(e.msg, "unknown checksum state `partal`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `partial`?"));
        let e = first(text.replace("id: 10,", "id: 0,"));
        assert_eq!(e.msg, "VLAN id 0 is out of range");
        let e = first(text.replace("pcp: 5", "pcp: 8"));
        assert_eq!(e.msg, "priority code point 8 is over 7");
        // A tun write has no priority (and no Ethernet header for a tag).
        let e = first(
            text.replace("via: a/v0", "via: a/tun0")
                .replace("      ethernet: { vlan: { id: 10, pcp: 5 } }\n", ""),
        );
        assert!(
            e.msg.starts_with("a write into `tun0` carries no priority"),
            "{}",
            e.msg
        );
    }
}
