//! The `pktfate` command line, run as a user would. Needs root and kernel
//! BTF like the scenario suite (and tshark for the pcap test).

mod support;

use std::path::{Path, PathBuf};

use std::process::{Command, Output};
use support::{Scratch, text};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pktfate"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn help_documents_every_command() {
    let o = run(&["--help"]);
    let t = text(&o);
    for c in ["run", "check", "reasons", "record", "trace"] {
        assert!(t.contains(c), "--help lacks {c}:\n{t}");
        let sub = text(&run(&[c, "--help"]));
        assert!(sub.contains("Usage: pktfate"), "{c} --help:\n{sub}");
    }
    assert!(text(&run(&["run", "--help"])).contains("--format <FORMAT>"));
}

#[test]
fn check_accepts_the_shipped_scenarios() {
    let o = run(&["check", "scenarios"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 with errors"));
}

/// Each file in tests/malformed says on its first line what `check` must
/// print (`# check: <file>:<line>:<col>: <message>`), and on its second,
/// if it starts `# hint: `, the hint that must follow.
#[test]
fn check_rejects_malformed_scenarios_with_precise_messages() {
    let dir = root().join("tests/malformed");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let file = std::fs::read_to_string(&p).unwrap();
        let mut lines = file.lines();
        let first = lines.next().unwrap_or("");
        let hint = lines.next().and_then(|l| l.strip_prefix("# hint: "));
        let want = first
            .strip_prefix("# check: ")
            .unwrap_or_else(|| panic!("{} lacks a `# check:` line", p.display()));
        let o = run(&["check", &p.to_string_lossy()]);
        assert!(!o.status.success(), "{} was accepted", p.display());
        let t = text(&o);
        let expected = format!("{}/{want}", dir.display());
        assert!(
            t.contains(&expected),
            "{}:\nwanted {expected:?}\ngot {t}",
            p.display()
        );
        if let Some(h) = hint {
            let expected = format!("{expected}\n  hint: {h}");
            assert!(
                t.contains(&expected),
                "{}:\nwanted {expected:?}\ngot {t}",
                p.display()
            );
        }
        n += 1;
    }
    assert!(n >= 8, "only {n} malformed scenarios");
}

#[test]
fn reasons_come_from_the_running_kernel() {
    let o = run(&["reasons"]);
    assert!(o.status.success());
    let t = text(&o);
    for r in ["NO_SOCKET", "IP_CSUM", "NETFILTER_DROP", "IP_RPFILTER"] {
        assert!(
            t.lines().any(|l| l.split_whitespace().nth(1) == Some(r)),
            "no {r}"
        );
    }
}

#[test]
fn run_reports_json_lines_and_junit() {
    let s = Scratch::new("formats");
    let broken = std::fs::read_to_string(root().join("scenarios/tun-syn/01-bad-ip-checksum.yaml"))
        .unwrap()
        .replace("reason: IP_CSUM", "reason: NO_SOCKET");
    std::fs::write(s.0.join("broken.yaml"), broken).unwrap();
    std::fs::copy(
        root().join("scenarios/tun-syn/04-no-socket.yaml"),
        s.0.join("good.yaml"),
    )
    .unwrap();
    let dir = s.0.to_string_lossy().into_owned();

    let o = run(&["run", &dir, "--format", "json", "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "broken");
    assert_eq!(lines[0]["status"], "fail");
    assert_eq!(lines[0]["packets"][0]["mismatches"][0]["what"], "reason");
    assert_eq!(lines[0]["packets"][0]["facts"]["reason"], "IP_CSUM");
    assert!(lines[0]["timeline"].as_array().unwrap().len() >= 2);
    assert_eq!(lines[1]["status"], "pass");
    assert!(lines[1]["timings_ms"]["attach"].as_f64().unwrap() > 0.0);

    let xml = s.0.join("report.xml");
    let o = run(&[
        "run",
        &dir,
        "--format",
        "junit",
        "--output",
        &xml.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let x = std::fs::read_to_string(&xml).unwrap();
    // Read back as a CI system would (quick-junit's own reader).
    let r = quick_junit::Report::deserialize_from_str(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
    assert_eq!(
        (r.tests, r.failures, r.errors, r.skipped),
        (2, 1, 0, 0),
        "{x}"
    );
    let cases = &r.test_suites[0].test_cases;
    let broken = cases
        .iter()
        .find(|c| c.name.as_str() == "broken")
        .expect(&x);
    let quick_junit::TestCaseStatus::NonSuccess {
        kind: quick_junit::NonSuccessKind::Failure,
        message,
        ty,
        ..
    } = &broken.status
    else {
        panic!("broken is not a failure: {x}");
    };
    assert_eq!(
        message.as_ref().map(|m| m.as_str()),
        Some("reason: expected NO_SOCKET, got IP_CSUM")
    );
    assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("expectation"));
    assert!(cases.iter().any(|c| c.name.as_str() == "good"
        && matches!(c.status, quick_junit::TestCaseStatus::Success { .. })));
    assert!(text(&o).contains("pktfate: 1 passed, 1 failed, 0 skipped"));
}

#[test]
fn pcap_is_readable_by_tshark() {
    if Command::new("tshark").arg("--version").output().is_err() {
        panic!("tshark is not installed (bash ci/setup.sh installs it)");
    }
    let s = Scratch::new("pcap");
    let pcap = s.0.join("trace.pcapng");
    let o = run(&[
        "run",
        "scenarios/tc/rewrite-then-nft-drop.yaml",
        "--pcap",
        &pcap.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = Command::new("tshark")
        .args([
            "-r",
            &pcap.to_string_lossy(),
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.dstport",
            "-e",
            "frame.comment",
        ])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let out = String::from_utf8_lossy(&t.stdout);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert!(rows.len() >= 4, "{out}");
    // Every packet is the client's SYN; the tc program rewrote the port
    // between two steps, and the last step is the netfilter drop.
    assert!(rows.iter().all(|r| r[0] == "198.51.100.10"), "{out}");
    assert!(
        rows.iter()
            .any(|r| r[1] == "80" && r[2].contains("netif_receive_skb@server/eth0")),
        "{out}"
    );
    let last = rows.last().unwrap();
    assert_eq!(last[1], "8080", "{out}");
    assert!(
        last[2].contains("kfree_skb@server/eth0")
            && last[2].contains("NETFILTER_DROP at nft_do_chain"),
        "{out}"
    );
}

#[test]
fn record_writes_expectations_and_check_detects_stale_ones() {
    let s = Scratch::new("record");
    let original =
        std::fs::read_to_string(root().join("scenarios/tun-syn/04-no-socket.yaml")).unwrap();
    let i = original.find("expect:").unwrap();
    let j = original.find("counters:").unwrap();
    let blank = format!("{}expect:\n{}", &original[..i], &original[j..]);
    let f = s.0.join("no-socket.yaml");
    std::fs::write(&f, &blank).unwrap();
    let fs = f.to_string_lossy().into_owned();

    let o = run(&["record", &fs, "--check"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an empty expect block is stale: {}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        blank,
        "--check writes nothing"
    );

    let o = run(&["record", &fs]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("+  19   fate: dropped") && t.contains("reason: NO_SOCKET"),
        "the diff is shown:\n{t}"
    );
    let recorded = std::fs::read_to_string(&f).unwrap();
    assert!(recorded.contains("  at: tcp_v4_rcv\n"), "{recorded}");
    assert!(
        recorded.contains("    - kfree_skb@host/tun0\n"),
        "{recorded}"
    );
    assert!(
        recorded.contains("counters:"),
        "the rest of the file is kept"
    );

    // The recorded file passes and is up to date.
    assert!(run(&["run", &fs]).status.success());
    let o = run(&["record", &fs, "--check"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("up to date"));

    // A hand edit makes it stale again.
    std::fs::write(&f, recorded.replace("reason: NO_SOCKET", "reason: IP_CSUM")).unwrap();
    assert_eq!(run(&["record", &fs, "--check"]).status.code(), Some(1));
}

/// A scenario stating another kernel's truth fails here; `record --kernel`
/// adds this kernel's version under `kernels:` with only what differs, and
/// the scenario passes, with its base expectation untouched.
#[test]
fn record_kernel_adds_an_override_for_this_kernel_only() {
    let s = Scratch::new("record-kernel");
    let original =
        std::fs::read_to_string(root().join("scenarios/tun-syn/01-bad-ip-checksum.yaml")).unwrap();
    // As a kernel that named this drop NOT_SPECIFIED would have it.
    let other = original.replace("reason: IP_CSUM", "reason: NOT_SPECIFIED");
    assert_ne!(other, original);
    let f = s.0.join("csum.yaml");
    std::fs::write(&f, &other).unwrap();
    let fs = f.to_string_lossy().into_owned();
    assert!(!run(&["run", &fs]).status.success(), "fails as written");

    let o = run(&["record", "--kernel", &fs]);
    assert!(o.status.success(), "{}", text(&o));
    let recorded = std::fs::read_to_string(&f).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release.trim().split(['.', '-']);
    let range = format!("{}.{}", v.next().unwrap(), v.next().unwrap());
    assert!(
        recorded.contains(&format!("  kernels:\n    \"{range}\": # recorded")),
        "{recorded}"
    );
    assert!(recorded.contains("\n      reason: IP_CSUM\n"), "{recorded}");
    assert!(
        recorded.contains("  reason: NOT_SPECIFIED"),
        "the base stays"
    );
    assert!(
        !recorded.contains("      at:"),
        "only what differs: {recorded}"
    );
    assert!(run(&["run", &fs]).status.success());
    let o = run(&["record", "--kernel", &fs]);
    assert!(text(&o).contains("up to date"), "{}", text(&o));
}

#[test]
fn trace_shows_a_drop_live() {
    let ns = format!("pf{}-cli-trace", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    let _ = Command::new("ip")
        .args(["-n", &ns, "link", "set", "lo", "up"])
        .status();
    let mut child = bin()
        .args([
            "trace",
            "--netns",
            &ns,
            "--proto",
            "tcp",
            "--dport",
            "9",
            "--count",
            "40",
            "--duration",
            "20",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the tracer says it is attached, then connect to a closed port.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0
        && !line.starts_with("# tracing")
    {
        line.clear();
    }
    assert!(line.starts_with("# tracing"), "trace never attached");
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9",
        ])
        .output();
    // The events arrive within milliseconds; then stop it as a user would.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Ctrl-C ends a trace cleanly: {:?}",
        out.status
    );
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["hook"] == "kfree_skb"
            && e["reason"] == "NO_SOCKET"
            && e["ns"] == ns.as_str()),
        "{stdout}"
    );
    // Every event that still carries headers is TCP (a tracked skb's last
    // free may come after its headers are gone).
    assert!(
        events
            .iter()
            .all(|e| e["packet"]["proto"] == 6 || e["packet"]["src"].is_null()),
        "{stdout}"
    );
}

/// A request the kernel refuses while building the topology names the
/// scenario line that asked for it, the `ip` command it stands for, the
/// kernel's error and a hint. Here the gateway 198.51.100.1 is on no
/// connected network, so the kernel answers ENETUNREACH.
#[test]
fn a_refused_route_names_its_scenario_line() {
    let dir = Scratch::new("cli");
    let file = dir.0.join("bad-gateway.yaml");
    std::fs::write(
        &file,
        "namespaces:\n  a:\n    links:\n      - name: v0\n        kind: veth\n        peer: { namespace: b, name: v1 }\n    addresses:\n      - { dev: v0, addr: 192.0.2.1/24 }\n    routes:\n      - { to: 203.0.113.0/24, via: 198.51.100.1 }\n  b: {}\ninject:\n  via: a/v0\n  ipv4: { src: 192.0.2.1, dst: 203.0.113.5 }\n  udp: { sport: 1, dport: 2 }\nexpect:\n  fate: dropped\n",
    )
    .unwrap();
    let o = run(&["run", file.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("bad-gateway.yaml:10:15: `ip route add 203.0.113.0/24 via 198.51.100.1`"),
        "no location or command:\n{t}"
    );
    assert!(t.contains("Network is unreachable"), "{t}");
    assert!(t.contains("hint: the gateway must be reachable"), "{t}");
    // JSON says whose mistake it is: the scenario's, not pktfate's.
    let o = run(&["run", "--format", "json", file.to_str().unwrap()]);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["status"], "error", "{line}");
    assert_eq!(line["error_kind"], "scenario", "{line}");
}

/// A user's object whose program name is wrong fails at set-up with the
/// scenario line, the object and a hint on how to list its programs.
#[test]
fn a_missing_program_in_a_user_object_names_its_scenario_line() {
    let dir = Scratch::new("cli");
    std::fs::write(dir.0.join("pktfate.toml"), "").unwrap();
    let obj = std::fs::read(root().join("harness/ebpf-objects/pktfate-tc-programs")).unwrap();
    std::fs::write(dir.0.join("filter.o"), obj).unwrap();
    let file = dir.0.join("xdp.yaml");
    std::fs::write(
        &file,
        "namespaces:\n  a:\n    links:\n      - { name: v0, kind: veth, peer: { namespace: b, name: v1 } }\n    addresses:\n      - { dev: v0, addr: 192.0.2.1/24 }\n  b:\n    addresses:\n      - { dev: v1, addr: 192.0.2.2/24 }\n    xdp:\n      - { dev: v1, object: filter.o, program: xdp_nope }\ninject:\n  socket: { from: a, proto: udp, to: 192.0.2.2, port: 9 }\nexpect:\n  fate: dropped\n",
    )
    .unwrap();
    let o = run(&["run", file.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("xdp.yaml:11:47: program `xdp_nope` of ")
            && t.contains("no program `xdp_nope` in the object"),
        "{t}"
    );
    assert!(t.contains("hint: names are the program functions"), "{t}");
}

#[test]
fn json_lines_carry_the_netfilter_rule_evaluations() {
    let file = root().join("scenarios/firewall/iptables-policy-or-rule.yaml");
    let o = run(&["run", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    let rules = line["rules"].as_array().expect("a rules array");
    // The telnet SYN (packet 0) dropped by the BLOCK chain's rule, the SSH
    // SYN (packet 1) by INPUT's policy: as the kernel traced them.
    let found = |packet: u64, kind: &str, chain: &str, verdict: &str| {
        rules.iter().any(|r| {
            r["packet_index"] == packet
                && r["kind"] == kind
                && r["chain"] == chain
                && r["verdict"] == verdict
                && r["ns"] == "server"
        })
    };
    assert!(found(0, "rule", "BLOCK", "drop"), "{rules:#?}");
    assert!(found(1, "policy", "INPUT", "drop"), "{rules:#?}");
    let telnet = rules
        .iter()
        .find(|r| r["packet_index"] == 0 && r["verdict"] == "drop")
        .unwrap();
    assert_eq!(telnet["rule"]["comment"], "no telnet");
    // Where it happened among the kernel events: the INPUT hook runs in
    // ip_local_deliver, after the route lookup chose local delivery, and
    // nf_hook_slow frees the SYN as soon as the rule says drop.
    assert_eq!(telnet["hook"], "input");
    let steps = line["timeline"].as_array().expect("a timeline");
    let at = telnet["before_step"].as_u64().expect("placed") as usize;
    let (prev, next) = (&steps[at - 1], &steps[at]);
    assert_eq!(
        (&prev["hook"], &prev["ns"], &prev["packet_index"]),
        (&"fib_table_lookup".into(), &"server".into(), &0.into()),
        "{steps:#?}"
    );
    assert_eq!(
        (&next["hook"], &next["reason"], &next["packet_index"]),
        (&"kfree_skb".into(), &"NETFILTER_DROP".into(), &0.into()),
        "{steps:#?}"
    );
}

/// `record` writes the deciding rule too, so a rule reordered later turns
/// `record --check` (and the run) red.
#[test]
fn record_writes_the_deciding_rule() {
    let s = Scratch::new("record-rule");
    let original =
        std::fs::read_to_string(root().join("scenarios/firewall/iptables-drop-ssh.yaml")).unwrap();
    let i = original.find("expect:").unwrap();
    let f = s.0.join("ssh.yaml");
    std::fs::write(&f, format!("{}expect:\n", &original[..i])).unwrap();
    let fs = f.to_string_lossy().into_owned();
    let o = run(&["record", &fs]);
    assert!(o.status.success(), "{}", text(&o));
    let recorded = std::fs::read_to_string(&f).unwrap();
    assert!(
        recorded.contains("  netfilter:\n    decided_by: { comment: \"no ssh\", ns: server }\n"),
        "{recorded}"
    );
    assert!(run(&["run", &fs]).status.success());
    // A broader rule above it: the same NETFILTER_DROP, another rule.
    let broader = recorded.replace(
        "      -A INPUT -p tcp --dport 22",
        "      -A INPUT -p tcp -j DROP\n      -A INPUT -p tcp --dport 22",
    );
    assert_ne!(broader, recorded);
    std::fs::write(&f, broader).unwrap();
    assert_eq!(run(&["record", &fs, "--check"]).status.code(), Some(1));
    let o = run(&["run", &fs]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("-A INPUT -p tcp -j DROP"), "{}", text(&o));
}

/// A rule named by text, policy or position that the rulesets do not
/// have is refused before anything is injected, at its line, listing the
/// chain's rules as the kernel prints them; iptables-save's rendering
/// (`-m tcp`, absent from the source) is what a text is checked against.
#[test]
fn unknown_rule_references_are_refused_before_anything_is_injected() {
    let s = Scratch::new("rule-refs");
    let original =
        std::fs::read_to_string(root().join("scenarios/firewall/iptables-drop-ssh.yaml")).unwrap();
    let with = |decided_by: &str, traversed: &str| {
        original
            .replace(
                "decided_by: { comment: \"no ssh\", ns: server }",
                &format!("decided_by: {decided_by}"),
            )
            .replace(
                "traversed: [ip filter INPUT]",
                &format!("traversed: [{traversed}]"),
            )
    };
    let f = s.0.join("refs.yaml");
    let fs = f.to_string_lossy().into_owned();
    let line_of = |text: &str, what: &str| text.lines().position(|l| l.contains(what)).unwrap() + 1;

    // As iptables-save prints it: accepted and matched.
    let ok = with(
        "{ rule: \"-p tcp -m tcp --dport 22\", ns: server }",
        "ip filter INPUT",
    );
    // So is the first rule of INPUT, by position.
    let first = with("{ chain: \"filter INPUT\", position: 1 }", "INPUT");
    for yaml in [ok, first] {
        std::fs::write(&f, &yaml).unwrap();
        let o = run(&["run", &fs]);
        assert!(o.status.success(), "{yaml}\n{}", text(&o));
    }

    // A port the rules do not have, a second rule that is not there and
    // a chain that is not: three errors, each at its line.
    let bad = with("{ rule: \"--dport 2222 -j DROP\" }", "ip filter INPUTT")
        .replace(
            "  no_unexpected_drops: true",
            "    not_matched: [{ chain: \"ip filter INPUT\", position: 2 }]\n  no_unexpected_drops: true",
        );
    std::fs::write(&f, &bad).unwrap();
    // Checked against the rule trace's listing, and without rule tracing
    // (PKTFATE_RULE_TRACE=0) against a listing of its own.
    let traced = run(&["run", &fs]);
    let untraced = bin()
        .args(["run", &fs])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env("PKTFATE_RULE_TRACE", "0")
        .output()
        .unwrap();
    for o in [traced, untraced] {
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        let at = |what: &str| format!("refs.yaml:{}:", line_of(&bad, what));
        for want in [
        at("--dport 2222"),
        "no rule of the scenario's rulesets reads `--dport 2222 -j DROP`".into(),
        // iptables-save makes the tcp match explicit (`-m tcp`).
        "rules of ip filter INPUT in server: 1. `-A INPUT -p tcp -m tcp --dport 22 -m comment --comment \"no ssh\" -j DROP`".into(),
        at("position: 2"),
        "chain ip filter INPUT in server has 1 rule, no rule 2".into(),
        at("INPUTT"),
        "did you mean `ip filter INPUT`?".into(),
    ] {
        assert!(t.contains(&want), "{want}: {t}");
    }
        // Refused once the rules were listed: nothing was injected or traced.
        assert!(!t.contains("actual:"), "{t}");
    }
}

/// A route assertion turns red when the policy rule is gone, though the
/// packet is still delivered (by the other uplink); the failure names the
/// lookup expected and the ones the kernel made, and JSON carries each
/// lookup with its result device by name.
#[test]
fn a_lost_policy_rule_fails_on_the_route_lookup() {
    let file = root().join("scenarios/routing/policy-table-gateway.yaml");
    let o = run(&["run", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    let steps = line["timeline"].as_array().expect("a timeline");
    let chosen = steps
        .iter()
        .find(|s| s["route"]["table"] == 100)
        .expect("the table-100 lookup");
    assert_eq!(chosen["route"]["result"], "unicast");
    assert_eq!(chosen["route"]["gateway"], "203.0.113.2");
    assert_eq!(chosen["route_dev"], "r-b");
    assert_eq!(chosen["ns"], "router");

    let s = Scratch::new("route-rule");
    let original = std::fs::read_to_string(&file).unwrap();
    let without = original.replace(
        "    rules:\n      - { from: 192.0.2.0/25, table: 100, priority: 100 }\n",
        "",
    );
    assert_ne!(without, original);
    // `transmitted` would fail too; the route is what this test is about.
    let without = without.replace("  transmitted: [router/r-b]\n", "");
    let f = s.0.join("no-rule.yaml");
    std::fs::write(&f, without).unwrap();
    let o = run(&["run", f.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // Without policy rules the kernel looks local and main up as one
    // table (main), and the main table's default goes via uplink A.
    assert!(
        out.contains("- expected: a route lookup: table 255 to 192.0.2.200 none in router"),
        "{out}"
    );
    assert!(
        out.contains("router: table 254 192.0.2.2->192.0.2.200: unicast via 198.51.100.2 dev r-a"),
        "{out}"
    );
}

#[test]
fn an_html_report_draws_each_namespace_and_marks_the_drop() {
    // The tc program on the server's ingress drops the SYN (TC_INGRESS):
    // the drawing has both namespaces, the packet's hops and the drop at
    // the server's eth0.
    let file = root().join("scenarios/tc/ingress-drop-port-80.yaml");
    let o = run(&["run", "--format", "html", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.starts_with("<!DOCTYPE html>"));
    for ns in ["client", "server"] {
        assert!(
            page.contains(&format!("<g class=\"ns\" data-ns=\"{ns}\">")),
            "{ns}"
        );
    }
    assert!(page.contains("<g class=\"path\" data-packet=\"0\">"));
    assert!(page.contains("<g class=\"drop\" data-packet=\"0\">"));
    assert!(
        page.contains("TC_INGRESS at __netif_receive_skb_core"),
        "{page}"
    );
    // Self-contained: nothing fetched.
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
}
