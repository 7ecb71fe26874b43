use super::*;
use crate::collect::Step;
use crate::scenario::{PathStep, parse_step};

use crate::collect::sample_step as step;

fn path(p: &[&str]) -> Vec<PathStep> {
    p.iter().map(|s| parse_step(s).unwrap()).collect()
}

#[test]
fn path_is_an_ordered_subsequence_with_qualifiers() {
    let tl = Timeline {
        steps: vec![
            step(
                1,
                "netif_receive_skb",
                &[
                    "tun_get_user",
                    "netif_receive_skb",
                    "__netif_receive_skb_core.constprop.0",
                ],
                "host",
                "tun0",
            ),
            step(
                1,
                "kfree_skb",
                &["tun_get_user", "ip_rcv", "tcp_v4_rcv", "sk_skb_reason_drop"],
                "host",
                "tun0",
            ),
        ],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    let t = tokens(&l);
    assert_eq!(
        match_path(&path(&["tun_get_user", "ip_rcv", "kfree_skb"]), &t),
        Ok(())
    );
    assert_eq!(
        match_path(&path(&["netif_receive_skb@host/tun0", "tcp_v4_rcv"]), &t),
        Ok(())
    );
    assert_eq!(
        match_path(&path(&["__netif_receive_skb_core"]), &t),
        Ok(()),
        "clone suffixes are ignored"
    );
    assert_eq!(
        match_path(&path(&["ip_rcv", "netif_receive_skb@host/tun0"]), &t),
        Err(1),
        "order matters"
    );
    assert_eq!(
        match_path(&path(&["netif_receive_skb@peer"]), &t),
        Err(0),
        "namespace qualifier"
    );
    assert_eq!(
        match_path(&path(&["netif_receive_skb@host/veth0"]), &t),
        Err(0),
        "device qualifier"
    );
    let f = facts(&l);
    assert!(f.dropped && !f.forwarded && !f.delivered);
    assert_eq!(f.reason.as_deref(), Some("NO_SOCKET"));
    assert_eq!(compact_path(&t)[0], "tun_get_user");
}

#[test]
fn forwarded_means_received_then_transmitted_by_one_namespace() {
    // As traced on 6.18: the xmit happens from the ARP reply's context.
    let routed = [
        step(
            2,
            "netif_receive_skb",
            &["tun_get_user", "netif_receive_skb"],
            "host",
            "tun0",
        ),
        step(
            2,
            "net_dev_queue",
            &["arp_process", "__neigh_update", "__dev_queue_xmit"],
            "host",
            "veth0",
        ),
        step(2, "netif_rx", &["veth_xmit", "__netif_rx"], "peer", "veth1"),
        step(
            2,
            "kfree_skb",
            &["process_backlog", "tcp_v4_rcv"],
            "peer",
            "veth1",
        ),
    ];
    let l: Vec<&Step> = routed.iter().collect();
    let f = facts(&l);
    assert!(f.forwarded && f.dropped);
    assert_eq!(f.transmitted, vec!["host/veth0".to_string()]);
    // A locally generated packet is transmitted but not forwarded, even
    // when the peer namespace then receives it.
    let local = [
        step(
            3,
            "net_dev_queue",
            &["tcp_connect", "__dev_queue_xmit"],
            "host",
            "veth0",
        ),
        step(3, "netif_rx", &["veth_xmit"], "peer", "veth1"),
    ];
    let l: Vec<&Step> = local.iter().collect();
    assert!(!facts(&l).forwarded);
}

#[test]
fn a_packet_is_followed_into_a_copy() {
    // As traced on 6.18: the SYN waiting for ARP is consumed in
    // __neigh_event_send and goes on as another skb.
    let mut a = step(
        1,
        "consume_skb",
        &["ip_finish_output2", "__neigh_event_send"],
        "client",
        "eth0",
    );
    a.ev.at = Some("__neigh_event_send".into());
    let b1 = step(
        2,
        "net_dev_queue",
        &["arp_process", "__dev_queue_xmit"],
        "client",
        "eth0",
    );
    let b2 = step(
        2,
        "consume_skb",
        &["tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_state_process"],
        "server",
        "eth0",
    );
    // A different packet of the same flow (other TCP flags) is not taken in.
    let mut other = step(3, "net_dev_queue", &[], "client", "eth0");
    other.ev.packet.tcp_flags = 0x10;
    let tl = Timeline {
        steps: vec![a, b1, other, b2],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert_eq!(
        l.iter().map(|s| s.ev.skb).collect::<Vec<_>>(),
        vec![1, 2, 2]
    );
    let f = facts(&l);
    assert!(f.delivered && f.consumed && !f.dropped);
    assert_eq!(f.at.as_deref(), Some("tcp_v4_rcv"));
}

#[test]
fn a_late_copy_joins_the_packet_within_the_scaled_window() {
    // As traced in an emulated 6.18 guest: the ICMP echo reply is dropped
    // by ping_rcv (no ping socket) while its clone waits on the raw
    // socket, whose reader copies it out 167 ms later.
    let mut dropped = step(1, "kfree_skb", &["icmp_rcv", "ping_rcv"], "host", "docker0");
    dropped.ev.ts_ns = 1_000_000_000;
    dropped.ev.reason = Some("NO_SOCKET".into());
    let mut read = step(
        2,
        "skb_copy_datagram_iovec",
        &["raw_recvmsg"],
        "host",
        "docker0",
    );
    read.ev.ts_ns = 1_167_000_000;
    let tl = Timeline {
        steps: vec![dropped, read],
        settled: true,
        ..Default::default()
    };
    let native = life::life_within(&tl, 0, false, 100_000_000);
    assert!(
        !facts(&native).delivered,
        "natively, 167 ms is another packet"
    );
    let emulated = life::life_within(&tl, 0, false, 4 * 100_000_000);
    assert!(
        facts(&emulated).delivered,
        "x4 in a guest: the same packet's copy"
    );
    // The window comes from the run's scale, recorded in the timeline.
    assert!(!facts(&life::life(&tl, 0)).delivered);
    let mut tl = tl;
    tl.timeout_scale = 4;
    assert!(facts(&life::life(&tl, 0)).delivered);
}

#[test]
fn a_resent_copy_dropped_the_same_way_is_not_an_unexpected_drop() {
    let s = Scenario::parse(
        std::path::Path::new("t.yaml"),
        "namespaces:\n  server: {}\ninject:\n  socket: { from: server, proto: tcp, to: 192.0.2.1, port: 22 }\nexpect:\n  fate: dropped\n  reason: NO_SOCKET\n  no_unexpected_drops: true\n",
    )
    .unwrap();
    let owned = |skb, hook, ns, life, ts| {
        let mut st = step(skb, hook, &[], ns, "eth0");
        st.packet = Some(0);
        st.life = life;
        st.ev.ts_ns = ts;
        st
    };
    // The SYN dropped, then its retransmission a second later, dropped
    // the same way (reason, function, place).
    let first = [
        owned(1, "netif_receive_skb", "server", 1, 0),
        owned(1, "kfree_skb", "server", 1, 10),
    ];
    let again = [
        owned(2, "netif_receive_skb", "server", 2, 1_000_000_000),
        owned(2, "kfree_skb", "server", 2, 1_000_000_010),
    ];
    let tl = |extra: Vec<Step>| Timeline {
        steps: first.iter().cloned().chain(extra).collect(),
        settled: true,
        ..Default::default()
    };
    let v = evaluate(&s, &tl(again.to_vec()));
    assert!(v.passed(), "{:?}", v.packets[0].mismatches);
    // Dropped somewhere else, or for another reason: unexpected.
    let mut elsewhere = again.to_vec();
    elsewhere[1].dev = "eth1".into();
    let mut other_reason = again.to_vec();
    other_reason[1].ev.reason = Some("NETFILTER_DROP".into());
    for extra in [elsewhere, other_reason] {
        let v = evaluate(&s, &tl(extra));
        assert!(
            v.packets[0]
                .mismatches
                .iter()
                .any(|m| m.what == "no_unexpected_drops"),
            "{:?}",
            v.packets[0].mismatches
        );
    }
}

#[test]
fn a_packet_left_in_the_neighbour_queue_is_not_consumed() {
    let a = step(1, "netif_receive_skb", &["tun_get_user"], "host", "tun0");
    let mut b = step(
        2,
        "consume_skb",
        &["ip6_finish_output2", "__neigh_event_send"],
        "host",
        "veth0",
    );
    b.ev.at = Some("__neigh_event_send".into());
    let l = [&a, &b];
    let f = facts(&l);
    assert!(!f.consumed && !f.dropped);
    assert_eq!(
        f.summary(),
        "waiting for neighbour resolution (ARP/ND) on host/veth0"
    );
}

#[test]
fn life_ignores_other_skbs_and_ends_at_the_free() {
    let mut reply = step(9, "net_dev_queue", &[], "host", "lo");
    reply.reverse = true;
    // Same address and headers a second later: a new skb life (as
    // collect numbers it), a retransmission rather than a copy.
    let mut late_resend = step(1, "netif_receive_skb", &[], "host", "tun0");
    late_resend.life = 100;
    late_resend.ev.ts_ns = 1_000_000_000;
    let tl = Timeline {
        steps: vec![
            reply.clone(),
            step(1, "netif_receive_skb", &[], "host", "tun0"),
            reply,
            step(
                1,
                "consume_skb",
                &["tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_state_process"],
                "host",
                "tun0",
            ),
            late_resend,
        ],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert_eq!(l.len(), 2);
    let f = facts(&l);
    assert!(f.consumed && f.delivered && !f.dropped);
}

#[test]
fn route_expectations_are_an_ordered_subsequence_of_the_packets_lookups() {
    use crate::scenario::{RouteResult, RouteWant};
    use crate::tracer::RouteLookup;
    let lookup = |table, result, gateway: Option<&str>, dev: Option<&str>| {
        let mut s = step(1, "fib_table_lookup", &[], "router", "r-client");
        s.ev.route = Some(RouteLookup {
            table,
            result,
            gateway: gateway.map(|g| g.parse().unwrap()),
            oif: u32::from(dev.is_some()),
            src: "192.0.2.2".parse().unwrap(),
            dst: "192.0.2.200".parse().unwrap(),
        });
        s.route_dev = dev.map(String::from);
        s
    };
    let tl = Timeline {
        steps: vec![
            lookup(255, RouteResult::NoRoute, None, None),
            lookup(100, RouteResult::Unicast, Some("203.0.113.2"), Some("r-b")),
        ],
        ..Default::default()
    };
    let want = |table, result, via: Option<&str>, dev: Option<&str>| RouteWant {
        ns: Some("router".into()),
        table: Some(table),
        to: Some("192.0.2.200".parse().unwrap()),
        result: Some(result),
        via: via.map(|g| g.parse().unwrap()),
        dev: dev.map(String::from),
        at: None,
    };
    let none = want(255, RouteResult::NoRoute, None, None);
    let b = want(100, RouteResult::Unicast, Some("203.0.113.2"), Some("r-b"));
    assert!(route::judge_routes(&[none.clone(), b.clone()], &tl, 0, false).is_empty());
    // Out of order: the table-100 lookup came second.
    let m = route::judge_routes(&[b.clone(), none.clone()], &tl, 0, false);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].expected.ends_with("(after the lookups before it)"),
        "{m:?}"
    );
    // The gateway of uplink A is not what the lookup chose; the failure
    // lists every lookup of the packet.
    let a = want(100, RouteResult::Unicast, Some("198.51.100.2"), Some("r-b"));
    let m = route::judge_routes(&[a], &tl, 0, false);
    assert_eq!(
        m[0].expected,
        "a route lookup: table 100 to 192.0.2.200 unicast via 198.51.100.2 dev r-b in router"
    );
    assert_eq!(
        m[0].actual,
        "router: table 255 192.0.2.2->192.0.2.200: none; router: table 100 192.0.2.2->192.0.2.200: unicast via 203.0.113.2 dev r-b"
    );
    // The reply had no lookups of its own.
    let m = route::judge_routes(&[none], &tl, 0, true);
    assert_eq!(m[0].what, "reply routes");
    assert_eq!(m[0].actual, "no route lookup traced for this packet");
}

#[test]
fn seen_checks_the_skbs_mark_and_length() {
    use crate::scenario::{Expectation, Seen};
    let mut sent = step(1, "net_dev_start_xmit", &[], "client", "eth1");
    sent.ev.mark = 0x10;
    sent.ev.len = 47;
    let tl = Timeline {
        steps: vec![sent, step(1, "consume_skb", &[], "client", "eth1")],
        settled: true,
        ..Default::default()
    };
    let want = |mark, len| Expectation {
        seen: vec![Seen {
            at: parse_step("net_dev_start_xmit@client/eth1").unwrap(),
            src: None,
            dst: None,
            sport: None,
            dport: None,
            ttl: None,
            mark,
            len,
            inner: None,
            priority: None,
            vlan: None,
            ip_summed: None,
        }],
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert!(judge::judge(&want(Some(0x10), Some(47)), &l).1.is_empty());
    let (_, mm, _) = judge::judge(&want(Some(0x20), None), &l);
    assert_eq!(mm[0].expected, "mark 0x20");
    assert!(
        mm[0].actual.contains("mark 0x10 len 47 "),
        "{}",
        mm[0].actual
    );
    let (_, mm, _) = judge::judge(&want(None, Some(33)), &l);
    assert_eq!(mm[0].expected, "len 33");
}

#[test]
fn seen_checks_the_skbs_priority_vlan_tag_and_checksum_state() {
    use crate::scenario::{Expectation, IpSummed, Seen, VlanWant};
    let mut rx = step(1, "netif_receive_skb", &[], "vm", "tap0");
    rx.ev.priority = 5;
    // PCP 5, id 10: the id is the tag's low 12 bits.
    rx.ev.vlan_tci = Some((5 << 13) | 0xa);
    rx.ev.ip_summed = Some(IpSummed::None);
    let tl = Timeline {
        steps: vec![rx],
        settled: true,
        ..Default::default()
    };
    let want = |priority, vlan, ip_summed| Expectation {
        seen: vec![Seen {
            at: parse_step("netif_receive_skb@vm/tap0").unwrap(),
            src: None,
            dst: None,
            sport: None,
            dport: None,
            ttl: None,
            mark: None,
            len: None,
            inner: None,
            priority,
            vlan,
            ip_summed,
        }],
        ..Default::default()
    };
    let l = life(&tl, 0);
    let ok = want(Some(5), Some(VlanWant::Id(10)), Some(IpSummed::None));
    assert!(judge::judge(&ok, &l).1.is_empty());
    let (_, mm, _) = judge::judge(&want(None, Some(VlanWant::Untagged), None), &l);
    assert_eq!(mm[0].expected, "no vlan");
    assert!(
        mm[0].actual.ends_with("priority 5 vlan 10 ip_summed none"),
        "{}",
        mm[0].actual
    );
    let (_, mm, _) = judge::judge(&want(None, None, Some(IpSummed::Partial)), &l);
    assert_eq!(mm[0].expected, "ip_summed partial");
    let (_, mm, _) = judge::judge(&want(Some(6), None, None), &l);
    assert_eq!(mm[0].expected, "priority 6");
}

#[test]
fn an_unseen_end_names_the_untraced_free_that_would_show_it() {
    // A TCP segment last seen at its route lookup: TCP frees what it took
    // with __kfree_skb, which no tracepoint reports.
    let mut last = step(1, "fib_table_lookup", &[], "client", "eth0");
    last.ev.packet.proto = 6;
    let tl = Timeline {
        steps: vec![step(1, "netif_receive_skb", &[], "client", "eth0"), last],
        settled: true,
        ..Default::default()
    };
    let f = facts(&life(&tl, 0));
    assert_eq!(
        f.summary(),
        "no end seen (last at fib_table_lookup@client/eth0; TCP frees what it took with __kfree_skb, which has no tracepoint: a probe there would show this end)"
    );
    // Another protocol: no function to name.
    let mut tl = tl;
    tl.steps[1].ev.packet.proto = 47;
    assert_eq!(
        facts(&life(&tl, 0)).summary(),
        "no end seen (last at fib_table_lookup@client/eth0)"
    );
}

#[test]
fn a_lookup_without_an_skb_is_not_part_of_the_packets_life() {
    // A socket's own route lookup comes first (skb 0, life 0), then the
    // skb the packet is judged by.
    let mut lookup = step(0, "fib_table_lookup", &[], "client", "eth1");
    lookup.life = 0;
    let tl = Timeline {
        steps: vec![
            lookup,
            step(0x10, "net_dev_start_xmit", &[], "client", "eth1"),
        ],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].ev.skb, 0x10);
}

/// A program-return step: `skb` 0 for an XDP program's run on a bare frame.
fn prog_step(skb: u64, hook: crate::scenario::ProgHook, code: i32, life: u64) -> Step {
    let mut s =
        crate::collect::sample_prog_step(skb, "xdp_drop_udp_ports", ("vm", "tap0"), hook, code);
    s.life = life;
    s
}

#[test]
fn an_xdp_drop_of_a_bare_frame_is_the_packets_end_by_that_program() {
    use crate::scenario::{ProgHook, ProgramWant, ReturnCode};
    // XDP_DROP (1) in a native driver: no skb before or after.
    let tl = Timeline {
        steps: vec![prog_step(0, ProgHook::Xdp, 1, 1)],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert_eq!(l.len(), 1, "the frame's run is the packet's life");
    let f = facts(&l);
    assert!(f.dropped && f.reason.is_none() && f.at.is_none());
    assert_eq!(
        f.summary(),
        "dropped by program xdp_drop_udp_ports on vm/tap0 (xdp) returned XDP_DROP"
    );
    let want = |code| ProgramWant {
        program: "xdp_drop_udp_ports".into(),
        ns: Some("vm".into()),
        dev: None,
        returned: Some(ReturnCode {
            hook: ProgHook::Xdp,
            code,
        }),
        at: None,
    };
    assert!(program::judge_programs(&[want(1)], &tl, 0, false).is_empty());
    let m = program::judge_programs(&[want(2)], &tl, 0, false);
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].expected,
        "program xdp_drop_udp_ports in vm returning XDP_PASS"
    );
    assert_eq!(
        m[0].actual,
        "program xdp_drop_udp_ports on vm/tap0 (xdp) returned XDP_DROP"
    );
    // XDP_PASS: the skb built from the frame joins its life, and the
    // program's pass is no end.
    let mut built = step(0x10, "netif_receive_skb", &[], "vm", "tap0");
    built.life = 2;
    let tl = Timeline {
        steps: vec![prog_step(0, ProgHook::Xdp, 2, 1), built],
        settled: true,
        ..Default::default()
    };
    let l = life(&tl, 0);
    assert_eq!(l.len(), 2);
    assert!(!facts(&l).dropped);
}

#[test]
fn a_classifiers_shot_names_the_program_beside_the_free() {
    use crate::scenario::ProgHook;
    let mut free = step(0x10, "kfree_skb", &[], "vm", "tap0");
    free.ev.reason = Some("TC_INGRESS".into());
    free.ev.at = Some("__netif_receive_skb_core".into());
    let tl = Timeline {
        steps: vec![prog_step(0x10, ProgHook::TcIngress, 2, 0x10), free],
        settled: true,
        ..Default::default()
    };
    assert_eq!(
        facts(&life(&tl, 0)).summary(),
        "dropped (TC_INGRESS) at __netif_receive_skb_core, by program xdp_drop_udp_ports on vm/tap0 (tc ingress) returned TC_ACT_SHOT"
    );
}

#[test]
fn a_drop_is_put_down_to_the_route_lookup_that_left_no_way_on() {
    use crate::scenario::RouteResult as R;
    use crate::tracer::RouteLookup;
    let (client, server) = ("192.0.2.2", "198.51.100.2");
    let mut ts = 0;
    let mut lookup = |ns: &str, table, result, src: &str, dst: &str, dev: Option<&str>| {
        ts += 10;
        let mut s = step(1, "fib_table_lookup", &[], ns, "r-client");
        s.ev.ts_ns = ts;
        s.ev.route = Some(RouteLookup {
            table,
            result,
            gateway: None,
            oif: u32::from(dev.is_some()),
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        });
        s.route_dev = dev.map(String::from);
        s
    };
    let drop = |ns: &str, reason: &str, ts| {
        let mut s = step(1, "kfree_skb", &[], ns, "r-client");
        s.ev.ts_ns = ts;
        s.ev.reason = Some(reason.into());
        s.ev.packet.src = Some(client.parse().unwrap());
        s.ev.packet.dst = Some(server.parse().unwrap());
        s
    };
    let decided = |steps: Vec<Step>| {
        let mut tl = Timeline {
            steps,
            ..Default::default()
        };
        for s in &mut tl.steps {
            s.packet = Some(0);
        }
        let life: Vec<&Step> = tl.steps.iter().collect();
        route::drop_route(&tl, 0, &life)
    };
    let (r, any) = ("router", "0.0.0.0");
    let cases = [
        // A policy rule's table ends in `unreachable`: ip_error drops it
        // (NOT_SPECIFIED) after icmp_send has looked up its own routes back
        // to the client, which found one; the decision is still the packet's.
        (
            vec![
                lookup(r, 255, R::NoRoute, client, server, None),
                lookup(r, 100, R::Unreachable, client, server, None),
                lookup(r, 255, R::NoRoute, any, client, None),
                lookup(r, 254, R::Unicast, any, client, Some("r-client")),
                drop(r, "NOT_SPECIFIED", 1000),
            ],
            Some("route table 100 192.0.2.2->198.51.100.2: unreachable in router"),
        ),
        // Strict rp_filter: the reverse route exists but leaves by another
        // device, so only the reason says the lookup decided.
        (
            vec![
                lookup(r, 254, R::Local, client, server, None),
                lookup(r, 254, R::Unicast, server, client, Some("r-other")),
                drop(r, "IP_RPFILTER", 1000),
            ],
            Some("route table 254 198.51.100.2->192.0.2.2: unicast dev r-other in router"),
        ),
        // Routed fine, then netfilter dropped it; a failed lookup of another
        // flow, another namespace's, or one after the drop decided nothing.
        (
            vec![
                lookup(r, 254, R::Local, client, server, None),
                lookup(r, 100, R::Blackhole, client, "192.0.2.99", None),
                lookup("client", 100, R::Prohibit, client, server, None),
                drop(r, "NETFILTER_DROP", 95),
                lookup(r, 100, R::Prohibit, client, server, None),
            ],
            None,
        ),
        // IPv6 reports a table without the route as `unreachable` (its
        // null entry) and goes on: the local table's miss, then main's
        // route, then a netfilter drop. The miss decided nothing.
        (
            vec![
                lookup(r, 255, R::Unreachable, client, server, None),
                lookup(r, 254, R::Unicast, client, server, Some("r-server")),
                drop(r, "NETFILTER_DROP", 1000),
            ],
            None,
        ),
    ];
    for (steps, want) in cases {
        assert_eq!(decided(steps).as_deref(), want);
    }
}
