use super::*;

const GOOD: &str = r"
# A comment
name: sample
namespaces:
  host:
    links:
      - { name: tun0, kind: tun }
      - name: veth0
        kind: veth
        peer: { namespace: peer, name: veth1 }
    addresses:
      - { dev: tun0, addr: 172.30.0.10/32 }
      - { dev: veth0, addr: 203.0.113.1/24 }
    routes:
      - { to: default, via: 203.0.113.2, dev: veth0 }
    sysctls:
      net.ipv4.ip_forward: 1
  peer:
    addresses:
      - { dev: veth1, addr: 203.0.113.2/24 }
inject:
  via: host/tun0
  ipv4: { src: 172.30.0.1, dst: 192.0.2.8, checksum: bad }
  tcp: { sport: 41626, dport: 10001, flags: [syn], seq: 2148230009 }
expect:
  fate: dropped
  reason: SKB_DROP_REASON_IP_CSUM
  at: ip_rcv_core
  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]
";

fn parse(s: &str) -> Result<Scenario, Vec<ScenarioError>> {
    Scenario::parse(Path::new("t.yaml"), s)
}

fn first_err(s: &str) -> ScenarioError {
    parse(s).unwrap_err().remove(0)
}

#[test]
fn user_objects_must_be_elf_files_of_the_project_with_numeric_map_entries() {
    // A private directory (mkdtemp): tests write no predictable file.
    let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("pktfate.toml"), "").unwrap();
    std::fs::write(dir.join("prog.o"), b"\x7fELF\x02\x01\x01").unwrap();
    std::fs::write(dir.join("notes.txt"), "not an object").unwrap();
    let file = dir.join("s.yaml");
    let yaml = |xdp: &str| {
        format!(
            "namespaces:\n  a:\n    links:\n      - {{ name: v0, kind: veth, peer: {{ namespace: b, name: v1 }} }}\n  b:\n    xdp:\n      - {xdp}\ninject:\n  socket: {{ from: a, proto: udp, to: 192.0.2.9, port: 9 }}\nexpect:\n  fate: dropped\n"
        )
    };
    let s = Scenario::parse(
        &file,
        &yaml("{ dev: v1, object: prog.o, program: p, mode: skb, maps: { M: { 0x10: 7 } } }"),
    )
    .unwrap();
    let x = &s.namespace("b").unwrap().xdp[0];
    assert_eq!(x.mode, XdpMode::Skb);
    assert_eq!(x.object.maps, vec![("M".to_string(), vec![(16, 7)])]);
    assert_eq!(x.object.at.as_ref().map(|l| l.line), Some(7));
    for (xdp, want) in [
        (
            "{ dev: v1, object: notes.txt, program: p }",
            "not an ELF object",
        ),
        (
            "{ dev: v1, object: /etc/passwd, program: p }",
            "--allow-path",
        ),
        (
            "{ dev: v1, object: prog.o, program: p, maps: { M: { x: 1 } } }",
            "map key `x`",
        ),
        (
            "{ dev: v1, object: prog.o, program: p, mode: turbo }",
            "unknown XDP mode",
        ),
        ("{ dev: v9, object: prog.o, program: p }", "v9"),
    ] {
        let e = Scenario::parse(&file, &yaml(xdp)).unwrap_err().remove(0);
        let text = format!("{} {}", e.msg, e.hint.clone().unwrap_or_default());
        assert!(text.contains(want), "{xdp}: {text}");
        assert_eq!(e.loc.map(|l| l.line), Some(7), "{xdp}: {}", e.msg);
    }
}

#[test]
fn a_cni_entry_needs_another_scenario_namespace_and_a_conflist() {
    // A private directory (mkdtemp): tests write no predictable file.
    let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("pktfate.toml"), "").unwrap();
    std::fs::write(
        dir.join("ok.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","bridge":"br7"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("evil.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
    )
    .unwrap();
    let file = dir.join("s.yaml");
    let yaml = |cni: &str| {
        format!(
            "namespaces:\n  node: {{}}\n  pod:\n    cni: {cni}\ninject:\n  socket: {{ from: pod, proto: udp, to: 192.0.2.9, port: 9 }}\nexpect:\n  fate: dropped\n  path: [net_dev_start_xmit@node/br7, netif_receive_skb@pod/eth0]\n"
        )
    };
    let s = Scenario::parse(
        &file,
        &yaml("{ node: node, conflist: ok.conflist, args: { A: b } }"),
    )
    .unwrap();
    let c = s.namespace("pod").unwrap().cni.clone().unwrap();
    assert_eq!((c.node.as_str(), c.ifname.as_str()), ("node", "eth0"));
    assert_eq!(c.args, vec![("A".to_string(), "b".to_string())]);
    for (cni, want) in [
        (
            "{ node: pod, conflist: ok.conflist }",
            "not another namespace",
        ),
        (
            "{ node: nowhere, conflist: ok.conflist }",
            "not another namespace",
        ),
        (
            "{ node: node, conflist: evil.conflist }",
            "not a plain name",
        ),
        ("{ node: node, conflist: missing.conflist }", "no file"),
    ] {
        let e = Scenario::parse(&file, &yaml(cni)).unwrap_err().remove(0);
        assert!(e.msg.contains(want), "{cni}: {e}");
        assert_eq!(e.loc.map(|l| l.line), Some(4), "{cni}: {}", e.msg);
    }
}

#[test]
fn rules_are_typed_and_located_when_read() {
    let with_rules = |rules: &str| {
        GOOD.replace(
            "    sysctls:\n      net.ipv4.ip_forward: 1\n",
            &format!("    sysctls:\n      net.ipv4.ip_forward: 1\n    rules:\n{rules}"),
        )
    };
    let s = parse(&with_rules(
        "      - { from: 2001:db8::/32, fwmark: 0x10/0xff, table: 7 }\n      - { to: all, action: prohibit }\n",
    ))
    .unwrap();
    let r = &s.namespace("host").unwrap().rules;
    assert_eq!(r[0].from, Some(("2001:db8::".parse().unwrap(), 32)));
    assert!(r[0].v6);
    assert_eq!(r[0].fwmark, Some((0x10, Some(0xff))));
    assert_eq!(r[0].at.as_ref().map(|l| (l.line, l.col)), Some((19, 17)));
    assert_eq!((r[1].to, r[1].v6), (None, false), "`all` is no prefix");
    assert_eq!(r[1].action, Some(RuleAction::Prohibit));

    let e = first_err(&with_rules("      - { fwmark: 0x1g }\n"));
    assert!(e.msg.contains("fwmark `0x1g`"), "{e}");
    assert_eq!(e.loc.map(|l| l.line), Some(19));
    let e = first_err(&with_rules(
        "      - { from: 192.0.2.0/24, to: 2001:db8::/32 }\n",
    ));
    assert!(e.msg.contains("different IP families"), "{e}");
}

#[test]
fn parses_a_full_scenario() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "sample");
    assert_eq!(s.namespaces.len(), 2);
    let host = s.namespace("host").unwrap();
    assert_eq!(
        host.links[1].kind,
        LinkKind::Veth {
            peer_ns: "peer".into(),
            peer: "veth1".into(),
            peer_mac: None,
            peer_master: None,
        }
    );
    assert_eq!(host.routes[0].to, None);
    assert_eq!(
        host.sysctls,
        vec![("net.ipv4.ip_forward".to_string(), "1".to_string())]
    );
    let p = &s.packets[0];
    let Injection::Frame { via, spec, .. } = &p.inject else {
        panic!("a crafted packet")
    };
    assert_eq!(
        *via,
        DeviceRef {
            ns: "host".into(),
            dev: "tun0".into()
        }
    );
    assert!(matches!(
        spec.ip,
        IpLayer::V4 {
            checksum: Checksum::Bad,
            ttl: 64,
            ..
        }
    ));
    assert!(matches!(
        spec.l4,
        L4Layer::Tcp {
            flags: tcp_flag::SYN,
            seq: 2148230009,
            ..
        }
    ));
    assert_eq!(p.expect.fate, Some(Fate::Dropped));
    assert_eq!(p.expect.at.as_deref(), Some("ip_rcv_core"));
    assert_eq!(
        p.expect.path[1],
        PathStep {
            func: "netif_receive_skb".into(),
            ns: Some("host".into()),
            dev: Some("tun0".into()),
            kernel: None,
        }
    );
    assert_eq!(
        p.expect.reason_loc.as_ref().map(|l| (l.line, l.col)),
        Some((27, 11))
    );
}

#[test]
fn unknown_key_points_at_it_with_a_suggestion() {
    let e = first_err(&GOOD.replace("  fate: dropped", "  fait: dropped"));
    assert_eq!(e.loc.as_ref().map(|l| (l.line, l.col)), Some((26, 3)));
    assert_eq!(e.msg, "unknown key `fait`");
    assert!(e.hint.unwrap().starts_with("did you mean `fate`?"));
}

#[test]
fn bad_values_carry_file_line_col() {
    let e = first_err(&GOOD.replace("fate: dropped", "fate: droped"));
    assert_eq!(
        e.to_string(),
        "t.yaml:26:9: unknown fate `droped`\n  hint: did you mean `dropped`?"
    );
    let e = first_err(&GOOD.replace("203.0.113.2, dev", "203.0.113.x, dev"));
    assert_eq!(
        (e.loc.unwrap().line, e.msg.as_str()),
        (15, "gateway `203.0.113.x` is not an IP address")
    );
    let e = first_err(&GOOD.replace("sport: 41626", "sport: 99999"));
    assert_eq!(e.loc.unwrap().line, 24);
    let e = first_err(&GOOD.replace("{ namespace: peer,", "{ namespace: pear,"));
    assert!(e.hint.unwrap().contains("did you mean `peer`"));
}

#[test]
fn references_must_resolve() {
    let e = first_err(&GOOD.replace("via: host/tun0", "via: host/tun9"));
    assert_eq!(e.msg, "no device `tun9` in namespace `host`");
    let e = first_err(&GOOD.replace("via: host/tun0", "via: host/lo"));
    assert!(e.msg.contains("cannot inject through `lo`"), "{}", e.msg);
    let e = first_err(&GOOD.replace("netif_receive_skb@host/tun0", "netif_receive_skb@nowhere"));
    assert!(e.msg.contains("namespace `nowhere`"));
    let e = first_err(&GOOD.replace("{ dev: veth1,", "{ dev: veth2,"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `veth1`?"));
}

#[test]
fn only_namespace_sysctls_are_allowed() {
    let e = first_err(&GOOD.replace("net.ipv4.ip_forward: 1", "kernel.panic: 1"));
    assert!(e.msg.contains("not a per-namespace"));
    let e = first_err(&GOOD.replace("net.ipv4.ip_forward: 1", "net.ipv4/../../kernel/panic: 1"));
    assert!(e.msg.contains("not a per-namespace"));
}

#[test]
fn syntax_and_duplicate_key_errors_are_located() {
    let e = first_err("namespaces:\n  a: [\n");
    assert!(e.msg.starts_with("invalid YAML"), "{}", e.msg);
    assert!(e.loc.is_some());
    let e = first_err("namespaces:\n  a: {}\n  a: {}\n");
    assert!(e.msg.contains("Duplicate key"), "{}", e.msg);
    assert_eq!(e.loc.unwrap().line, 3);
    assert!(e.hint.unwrap().contains("merge"), "a duplicate key's hint");
}

fn ns_with(links: &str, extra: &str) -> String {
    format!(
        "namespaces:\n  a:\n    links:\n{links}\n{extra}\n  b: {{}}\ninject:\n  socket: {{ from: a, proto: tcp, to: 192.0.2.9, port: 80 }}\n"
    )
}

#[test]
fn new_link_kinds_and_their_checks() {
    let ok = ns_with(
        "      - { name: br0, kind: bridge }\n      - { name: v0, kind: veth, master: br0, mac: 02:00:00:00:00:01, peer: { namespace: b, name: v1 } }\n      - { name: mv0, kind: macvlan, parent: v0 }\n      - { name: vx0, kind: vxlan, vni: 7, remote: 192.0.2.2, parent: v0 }",
        "",
    );
    let s = parse(&ok).unwrap();
    let a = s.namespace("a").unwrap();
    assert_eq!(a.links[1].master.as_deref(), Some("br0"));
    assert_eq!(
        a.links[2].kind,
        LinkKind::Macvlan {
            parent: "v0".into(),
            mode: "bridge".into()
        }
    );
    assert!(matches!(
        a.links[3].kind,
        LinkKind::Vxlan {
            vni: 7,
            dstport: 4789,
            ..
        }
    ));
    let e = first_err(&ns_with(
        "      - { name: v0, kind: veth, master: nobr, peer: { namespace: b, name: v1 } }",
        "",
    ));
    assert!(e.msg.contains("`nobr` is not a bridge"), "{}", e.msg);
    let e = first_err(&ns_with("      - { name: mv0, kind: macvlan }", ""));
    assert_eq!(e.msg, "a macvlan needs a `parent` device");
    let e = first_err(&ns_with("      - { name: t0, kind: tun, vni: 3 }", ""));
    assert_eq!(e.msg, "a tun link has no `vni`");
    let e = first_err(&ns_with(
        "      - { name: t0, kind: tun, mac: 02:zz:00:00:00:01 }",
        "",
    ));
    assert!(e.msg.contains("not a MAC address"));
    let e = first_err(&ns_with("      - { name: g0, kind: gre }", ""));
    assert!(
        e.hint
            .unwrap()
            .contains("kinds: veth, tun, tap, bridge, macvlan, vxlan")
    );
}

#[test]
fn tc_rules_nft_and_listeners_are_checked() {
    let base = "      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }";
    let ok = ns_with(
        base,
        "    tc:\n      - { dev: v0, program: drop_tcp_dport, config: { port: 80 } }\n      - { command: qdisc replace dev v0 root pfifo }\n    rules:\n      - { from: 192.0.2.0/24, table: 100, priority: 10 }\n    listen:\n      - { proto: udp, port: 53 }\n    nft: table inet t {}",
    );
    let s = parse(&ok).unwrap();
    let a = s.namespace("a").unwrap();
    assert_eq!(a.tc.len(), 2);
    assert!(
        matches!(&a.tc[0], TcSpec::Program { ingress: true, config, .. } if config == &vec![("port".to_string(), 80)])
    );
    assert_eq!(a.rules[0].table, Some(100));
    assert_eq!(
        a.listen[0],
        Listener {
            proto: SockProto::Udp,
            port: 53,
            addr: None
        }
    );
    assert_eq!(a.nft.as_ref().unwrap().first_line, 12);
    let e = first_err(&ns_with(
        base,
        "    tc:\n      - { dev: v0, program: drop_tcp_port }",
    ));
    assert_eq!(e.hint.as_deref(), Some("did you mean `drop_tcp_dport`?"));
    let e = first_err(&ns_with(
        base,
        "    tc:\n      - { dev: v0, program: drop_tcp_dport, config: { prt: 1 } }",
    ));
    assert!(e.msg.contains("takes no config key `prt`"), "{}", e.msg);
    let e = first_err(&ns_with(base, "    tc:\n      - { dev: v0 }"));
    assert!(e.msg.contains("either `program`"), "{}", e.msg);
    let e = first_err(&ns_with(base, "    nft_file: no/such/file.nft"));
    assert!(e.msg.contains("no file `no/such/file.nft`"), "{}", e.msg);
    let e = first_err(&ns_with(
        base,
        "    listen:\n      - { proto: sctp, port: 1 }",
    ));
    assert!(e.msg.contains("cannot listen on `sctp`"));
}

#[test]
fn socket_injection_is_checked() {
    let base = "      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }";
    let s = parse(&ns_with(base, "")).unwrap();
    assert!(matches!(
        s.packets[0].inject,
        Injection::Socket {
            proto: SockProto::Tcp,
            port: 80,
            ..
        }
    ));
    let t = ns_with(base, "").replace(
        "proto: tcp, to: 192.0.2.9, port: 80",
        "proto: tcp, to: 192.0.2.9",
    );
    assert!(first_err(&t).msg.contains("needs a destination `port`"));
    let t = ns_with(base, "").replace("proto: tcp", "proto: sctp");
    assert!(first_err(&t).msg.contains("unknown socket protocol"));
    let t = ns_with(base, "").replace(
        "  socket:",
        "  ipv4: { src: 192.0.2.1, dst: 192.0.2.9 }\n  socket:",
    );
    assert!(first_err(&t).msg.contains("the kernel builds the packet"));
}

#[test]
fn steps_on_hooks_the_kernel_lacks_are_reported_not_checked() {
    let text = GOOD.replace(
        "  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]\n",
        "  path: [tun_get_user, icmp_send@host/tun0, ip_rcv_core]\n  not_path: [icmp_send]\n",
    );
    let mut s = parse(&text).unwrap();
    let absent = MissingHook {
        hook: "icmp_send",
        why: "this kernel has no such BTF tracepoint",
    };
    let notes = s.drop_steps_on_hooks(&[absent]);
    assert_eq!(
        notes,
        vec![
            "packet 1: path step icmp_send@host/tun0 not checked (icmp_send: this kernel has no such BTF tracepoint)",
            "packet 1: not_path step icmp_send not checked (icmp_send: this kernel has no such BTF tracepoint)",
        ]
    );
    let e = &s.packets[0].expect;
    assert_eq!(e.path.len(), 2);
    assert!(e.not_path.is_empty());
    assert!(s.drop_steps_on_hooks(&[]).is_empty());
}

/// A scenario's truth on each kernel: the base, `kernels:` entries in
/// range, and steps qualified by kernel.
#[test]
fn kernel_dependent_expectations_resolve_per_kernel() {
    let text = GOOD.replace(
        "  path: [tun_get_user, netif_receive_skb@host/tun0, ip_rcv_core]\n",
        "  path: [tun_get_user, \"tcp_send_reset (kernel >= 6.10)\", ip_rcv_core]\n  kernels:\n    \"< 6.13\": { reason: NOT_SPECIFIED }\n    \"6.1\": { at: ip_rcv_finish_core, reply: { fate: delivered } }\n",
    );
    let s = parse(&text).unwrap();
    let base = &s.packets[0].expect;
    let on = |v| base.for_kernel(v);
    let k618 = on((6, 18, 0));
    assert_eq!(k618.reason.as_deref(), Some("SKB_DROP_REASON_IP_CSUM"));
    assert_eq!(k618.path.len(), 3);
    let k612 = on((6, 12, 117));
    assert_eq!(k612.reason.as_deref(), Some("NOT_SPECIFIED"));
    assert_eq!(
        k612.at.as_deref(),
        Some("ip_rcv_core"),
        "only keys set are replaced"
    );
    let k61 = on((6, 1, 192));
    assert_eq!(k61.reason.as_deref(), Some("NOT_SPECIFIED"));
    assert_eq!(k61.at.as_deref(), Some("ip_rcv_finish_core"));
    assert_eq!(k61.path.len(), 2, "the 6.10 step is gone");
    assert_eq!(k61.reply.unwrap().fate, Some(Fate::Delivered));
    let e = first_err(&GOOD.replace(
        "  at: ip_rcv_core\n",
        "  at: ip_rcv_core\n  kernels:\n    \"newest\": { at: x }\n",
    ));
    assert!(
        e.msg
            .contains("`newest` is not a kernel version comparison"),
        "{}",
        e.msg
    );
    assert!(e.loc.is_some());
}

#[test]
fn steps() {
    assert_eq!(
        parse_step("ip_rcv").unwrap(),
        PathStep {
            func: "ip_rcv".into(),
            ns: None,
            dev: None,
            kernel: None,
        }
    );
    let q = parse_step("tcp_send_reset@host/tun0 (kernel >= 6.10)").unwrap();
    assert_eq!(
        (q.func.as_str(), q.dev.as_deref()),
        ("tcp_send_reset", Some("tun0"))
    );
    let k = q.kernel.unwrap();
    assert!(k.contains((6, 10, 0)) && !k.contains((6, 9, 12)));
    assert!(matches!(
        parse_step("ip_rcv (kernel soon)"),
        Err(StepError::Range { .. })
    ));
    assert_eq!(
        parse_step("net_dev_xmit@r").unwrap().ns.as_deref(),
        Some("r")
    );
    assert_eq!(parse_step("a b"), Err(StepError::NotAName("a b".into())));
    assert_eq!(parse_step("x@n/d").unwrap().to_string(), "x@n/d");
}

#[test]
fn addresses_with_prefixes_and_macs_read_as_ip_writes_them() {
    let s = parse(GOOD).unwrap();
    let host = &s.namespaces[0];
    // Host bits stay: this is the interface's address, not its network.
    assert_eq!(
        (host.addresses[1].addr, host.addresses[1].prefix),
        ("203.0.113.1".parse().unwrap(), 24)
    );
    let e = first_err(&GOOD.replace("203.0.113.1/24", "203.0.113.1/33"));
    assert_eq!(e.msg, "address `203.0.113.1/33` has a bad prefix length");
    assert_eq!(e.hint.as_deref(), Some("the prefix is 0..=32"));
    let e = first_err(&GOOD.replace("203.0.113.1/24", "2001:db8::1/129"));
    assert_eq!(e.hint.as_deref(), Some("the prefix is 0..=128"));
    let e = first_err(&GOOD.replace("203.0.113.1/24", "203.0.113/24"));
    assert_eq!(
        e.msg,
        "address `203.0.113/24` is not an address with prefix"
    );
    assert_eq!(parse_mac("02:00:00:00:06:0a"), Some([2, 0, 0, 0, 6, 10]));
    for not_as_ip_writes_it in [
        "02-00-00-00-06-0a",
        "0200.0000.060a",
        "2:0:0:0:6:a",
        "02:00:00:00:06",
    ] {
        assert_eq!(
            parse_mac(not_as_ip_writes_it),
            None,
            "{not_as_ip_writes_it}"
        );
    }
}

#[test]
fn ethernet_addresses_of_an_injected_frame_must_parse() {
    let yaml = "namespaces:\n  a:\n    links:\n      - { name: t0, kind: tap }\ninject:\n  via: a/t0\n  ethernet: { src: 02:00:00:00:00:01, dst: 02:00:00:00:zz:02 }\n  ipv4: { src: 192.0.2.7, dst: 192.0.2.1 }\n";
    let e = first_err(yaml);
    assert_eq!(e.msg, "`02:00:00:00:zz:02` is not a MAC address");
    // `  ethernet: { src: 02:00:00:00:00:01, dst: ` is 43 columns: the value starts at 44.
    assert_eq!((e.loc.as_ref().unwrap().line, e.loc.unwrap().col), (7, 44));
    let s = parse(&yaml.replace("zz", "00")).unwrap();
    let Injection::Frame { ethernet, .. } = &s.packets[0].inject else {
        panic!("a frame");
    };
    assert_eq!(ethernet.src, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(ethernet.dst, Some([2, 0, 0, 0, 0, 2]));
}

#[test]
fn an_inline_ruleset_knows_where_its_text_is_in_the_file() {
    let with = |nft: &str| {
        let yaml = format!(
            "namespaces:\n  a:\n    nft: {nft}\ninject:\n  socket: {{ from: a, proto: udp, to: 192.0.2.9, port: 9 }}\n"
        );
        let s = parse(&yaml).unwrap();
        let rs = s.namespace("a").unwrap().nft.clone().unwrap();
        (rs.first_line, rs.first_col, rs.lines_match)
    };
    // A block scalar: its content starts on the next line, indented six.
    assert_eq!(
        with("|\n      table inet t {\n        chain c { }\n      }"),
        (4, 7, true)
    );
    // A plain one-line scalar: where it stands (`    nft: ` is 9 columns).
    assert_eq!(with("flush ruleset"), (3, 10, true));
    // Quoted on one line: after the quote.
    assert_eq!(with("\"flush ruleset\""), (3, 11, true));
    // Quoted with `\n` escapes: lines the file does not have.
    assert_eq!(with("\"table inet t {\\n}\""), (3, 11, false));
}

#[test]
fn each_load_has_its_own_file_policy() {
    // Two runs in one process (a test binary, a library user) may want
    // different policies: a refusal under one must not leak into the other.
    let text = GOOD.replace(
        "    sysctls:\n      net.ipv4.ip_forward: 1\n",
        "    sysctls:\n      net.ipv4.ip_forward: 1\n    run:\n      - tc qdisc show\n",
    );
    assert_ne!(text, GOOD);
    let strict = FilePolicy {
        no_commands: true,
        ..FilePolicy::default()
    };
    let errs = Scenario::parse_with(Path::new("t.yaml"), &text, &strict).unwrap_err();
    assert!(errs[0].msg.contains("--no-commands"), "{}", errs[0].msg);
    assert!(parse(&text).is_ok(), "the default policy runs commands");
    assert!(Scenario::parse_with(Path::new("t.yaml"), &text, &strict).is_err());
}

#[test]
fn a_tc_command_line_splits_as_a_shell_would() {
    let base = "      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }";
    let quoted = ns_with(
        base,
        "    tc:\n      - command: \"filter add dev v0 ingress matchall action pedit ex munge ip dst set '192.0.2.9' pipe\"",
    );
    let s = parse(&quoted).unwrap();
    let TcSpec::Command { args, .. } = &s.namespace("a").unwrap().tc[0] else {
        panic!("not a command");
    };
    assert_eq!(args[0], "filter");
    // The quoted address is one word, without its quotes (split by
    // whitespace it kept them, and tc read `'192.0.2.9'`).
    assert!(args.iter().any(|a| a == "192.0.2.9"), "{args:?}");
    let e = first_err(&ns_with(
        base,
        "    tc:\n      - command: \"qdisc replace dev v0 root 'pfifo\"",
    ));
    assert!(e.msg.contains("does not split into words"), "{}", e.msg);
    // namespaces, a, links, the veth, tc, then the command: line 6.
    assert_eq!(e.loc.map(|l| l.line), Some(6));
}

#[test]
fn netfilter_references_are_checked_against_the_rulesets_at_load() {
    let base = "namespaces:\n  a:\n    links:\n      - { name: eth0, kind: veth, peer: { namespace: b, name: eth0 } }\n    addresses: [{ dev: eth0, addr: 198.51.100.1/24 }]\n  b:\n    addresses: [{ dev: eth0, addr: 198.51.100.2/24 }]\n    nft: |\n      table inet fw {\n        chain input { type filter hook input priority 0; policy accept; tcp dport 22 drop comment \"no ssh\"; }\n      }\ninject:\n  socket: { from: a, proto: tcp, to: 198.51.100.2, port: 22 }\nexpect:\n  fate: dropped\n  netfilter:\n";
    let parse = |tail: &str| Scenario::parse(Path::new("t.yaml"), &format!("{base}{tail}"));
    assert!(parse("    decided_by: { comment: no ssh }\n").is_ok());
    // A comment no ruleset has: refused at its line, with the ones there are.
    let e = parse("    decided_by: { comment: no shh }\n").unwrap_err();
    let text = e
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(
            "t.yaml:17:17: no rule of the scenario's rulesets has the comment \"no shh\""
        ),
        "{text}"
    );
    assert!(text.contains("did you mean \"no ssh\"?"), "{text}");
    // A namespace without rules.
    let e = parse("    decided_by: { comment: no ssh, ns: a }\n").unwrap_err();
    assert!(
        e[0].msg.contains("namespace `a` has no netfilter rules"),
        "{}",
        e[0]
    );
    // Two kinds of reference at once.
    let e = parse("    decided_by: { comment: no ssh, rule: drop }\n").unwrap_err();
    assert!(e[0].msg.contains("exactly one of"), "{}", e[0]);
    // Nothing to check.
    let e = parse("    traversed: []\n").unwrap_err();
    assert!(e[0].msg.contains("says nothing to check"), "{}", e[0]);
    // With the conntrack state the packet had there.
    let ok = parse("    decided_by: { comment: no ssh, ct_state: New }\n").unwrap();
    let want = ok.packets[0].expect.netfilter.as_ref().unwrap();
    assert_eq!(
        want.decided_by.as_ref().unwrap().ct_state,
        Some(CtState::New)
    );
    // On a kernel whose traces lack it, the state is reported unchecked,
    // the rule still checked.
    let mut older = ok.clone();
    let unchecked = older.ct_state_checks("no NFTA_TRACE_CT_STATE here");
    assert_eq!(
        unchecked,
        [
            "packet 1: ct state new of the rule with comment \"no ssh\" not checked (no NFTA_TRACE_CT_STATE here)"
        ]
    );
    let left = older.packets[0].expect.netfilter.as_ref().unwrap();
    assert_eq!(left.decided_by.as_ref().unwrap().ct_state, None);
    assert!(left.decided_by.is_some());
    // A rule by its chain and position (1-based).
    let ok = parse("    decided_by: { chain: inet fw input, position: 1 }\n").unwrap();
    let want = ok.packets[0].expect.netfilter.as_ref().unwrap();
    assert_eq!(
        want.decided_by.as_ref().unwrap().rule,
        RuleRef::Position {
            chain: "inet fw input".into(),
            position: 1
        }
    );
    for (tail, msg) in [
        (
            "    decided_by: { chain: input, position: 0 }\n",
            "positions start at 1",
        ),
        ("    decided_by: { chain: input }\n", "needs its `position`"),
        (
            "    decided_by: { comment: no ssh, chain: input, position: 1 }\n",
            "exactly one of",
        ),
        (
            "    decided_by: { chain: a b c d, position: 1 }\n",
            "not a chain name",
        ),
        ("    traversed: [a b c d]\n", "not a chain name"),
        (
            "    decided_by: { comment: no ssh, ct_state: establishd }\n",
            "not a conntrack state",
        ),
    ] {
        let e = parse(tail).unwrap_err();
        assert!(e[0].msg.contains(msg), "{tail}: {}", e[0]);
        assert!(e[0].loc.is_some(), "{tail}: located");
    }
}

#[test]
fn conntrack_expectations_are_checked_at_load() {
    let base = "namespaces:\n  a:\n    links: [{ name: tun0, kind: tun }]\ninject:\n  via: a/tun0\n  ipv4: { src: 192.0.2.1, dst: 192.0.2.2 }\n  udp: { sport: 1, dport: 2 }\nexpect:\n  conntrack:\n";
    let parse = |tail: &str| Scenario::parse(Path::new("t.yaml"), &format!("{base}{tail}"));
    let ok = parse("    - { ns: a, orig: { src: 192.0.2.1, proto: udp }, status: [seen_reply], state: established }\n").unwrap();
    let c = &ok.packets[0].expect.conntrack[0];
    assert_eq!(c.status, ["SEEN_REPLY"]);
    assert_eq!(c.orig.as_ref().unwrap().proto, Some(17));
    for (tail, msg) in [
        (
            "    - { ns: b, orig: { proto: udp } }\n",
            "no namespace `b`",
        ),
        (
            "    - { ns: a, orig: { proto: udp }, status: [DST_NATT] }\n",
            "not a conntrack status bit",
        ),
        (
            "    - { ns: a, orig: { proto: udp }, state: ESTABLISH }\n",
            "not a conntrack TCP state",
        ),
        (
            "    - { ns: a, orig: { proto: tcpp } }\n",
            "unknown protocol",
        ),
        ("    - { ns: a, mark: 1 }\n", "needs `orig` or `reply`"),
    ] {
        let e = parse(tail).unwrap_err();
        assert!(e[0].msg.contains(msg), "{tail}: {}", e[0]);
        assert!(e[0].loc.is_some(), "{tail}: located");
    }
}
