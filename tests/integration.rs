//! Integration tests: the promises pktfate makes beyond single scenarios.
//!
//! These need root and kernel BTF, like the scenario suite. Tests that must
//! observe a process end (Ctrl-C, dropping root) re-run this test binary as
//! a child with `PKTFATE_CHILD` set, so the child's fate cannot take the
//! test runner with it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Conclusion, Trial};
use pktfate::runner::{self, RunError};
use pktfate::scenario::Scenario;
use pktfate::topology::Topology;

mod shared;
use shared::*;

#[test]
fn breaking_an_expectation_fails_that_trial_with_timeline_and_difference() {
    let _serial = serial();
    let dir = TempDir::new("broken");
    let good = read("tun-syn/01-bad-ip-checksum.yaml");
    let broken = good.replace("reason: IP_CSUM", "reason: NO_SOCKET");
    assert_ne!(good, broken, "the shipped scenario asserts IP_CSUM");
    std::fs::write(dir.0.join("broken.yaml"), &broken).unwrap();
    std::fs::write(dir.0.join("good.yaml"), &good).unwrap();

    // Through the same trial machinery `cargo test` uses: exactly one fails.
    // It runs in a child so its own "test result: FAILED" line does not end
    // up in this suite's output.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "run_trials_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PKTFATE_CHILD", "trials")
        .env("PKTFATE_TRIAL_DIR", &dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let concl = stdout
        .lines()
        .find_map(|l| l.find("CONCLUSION ").map(|i| l[i + 11..].to_string()))
        .unwrap_or_else(|| panic!("no conclusion from the child:\n{stdout}"));
    assert_eq!(concl.trim(), "passed=1 failed=1 broken=failed good=ok");

    // And the report says what differs and shows the timeline.
    let o = runner::run_file(&dir.0.join("broken.yaml"), &cfg()).unwrap();
    assert!(!o.passed());
    let text = pktfate::report::failure(&o);
    for needle in [
        "reason:",
        "- expected: NO_SOCKET",
        "+ actual:   IP_CSUM",
        "TIME(us)",
        "NETNS",
        "kfree_skb",
        "IP_CSUM at ip_rcv_core",
        "stack at drop:",
        "sk_skb_reason_drop <- ip_rcv_core",
    ] {
        assert!(text.contains(needle), "report lacks {needle:?}:\n{text}");
    }
    // Only the broken expectation is reported.
    assert_eq!(o.verdict.packets[0].mismatches.len(), 1, "{text}");
}

#[test]
fn the_host_is_untouched_and_nothing_is_left_on_pass_or_fail() {
    let _serial = serial();
    let before = root_state();
    let dir = TempDir::new("leak");
    let wrong_path =
        read("tun-syn/03-forwarded.yaml").replace("ip_route_input_slow", "ip_rcv_core_missing_fn");
    std::fs::write(dir.0.join("fail.yaml"), wrong_path).unwrap();
    let pass = runner::run_file(&shipped("tun-syn/03-forwarded.yaml"), &cfg()).unwrap();
    assert!(pass.passed());
    let fail = runner::run_file(&dir.0.join("fail.yaml"), &cfg()).unwrap();
    assert!(!fail.passed());
    assert_eq!(our_namespaces(), Vec::<String>::new());
    assert_eq!(before, root_state());
}

/// A keep prompt that holds a failed scenario's teardown until the
/// namespaces of another scenario of this process appear (or 30 s pass).
#[derive(Default)]
struct HeldTeardown {
    released_by_next: std::sync::atomic::AtomicBool,
}

impl runner::KeepPrompt for HeldTeardown {
    fn kept(&self, _scenario: &str, _commands: &[String]) -> bool {
        // Names are pf<pid>-<seq>-<name>: one seq per topology.
        let topologies = || {
            let mut seqs: Vec<String> = our_namespaces()
                .iter()
                .filter_map(|n| n.split('-').nth(1).map(str::to_string))
                .collect();
            seqs.sort();
            seqs.dedup();
            seqs.len()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if topologies() >= 2 {
                self.released_by_next
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

#[test]
fn a_suite_builds_the_next_scenario_while_the_last_one_is_torn_down() {
    let _serial = serial();
    let dir = TempDir::new("pipeline");
    let fail = dir.0.join("a-fail.yaml");
    std::fs::write(
        &fail,
        read("tun-syn/03-forwarded.yaml").replace("ip_route_input_slow", "ip_rcv_core_missing_fn"),
    )
    .unwrap();
    let prompt = std::sync::Arc::new(HeldTeardown::default());
    let mut c = cfg();
    c.keep = Some(prompt.clone());
    // One worker: the second scenario can only be built while the first
    // one's teardown is held if teardowns are off the worker's path.
    let files = [fail, shipped("tun-syn/04-no-socket.yaml")];
    let results = runner::suite::run_all(&files, 1, &c, |_| {});
    assert!(
        prompt
            .released_by_next
            .load(std::sync::atomic::Ordering::SeqCst),
        "the second scenario waited for the first one's teardown"
    );
    let statuses: Vec<_> = results.iter().map(|r| r.status()).collect();
    use pktfate::report::model::Status;
    assert_eq!(statuses, vec![Status::Fail, Status::Pass], "in file order");
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn unknown_drop_reason_is_rejected_before_anything_is_built() {
    let _serial = serial();
    let dir = TempDir::new("reason");
    let text =
        read("tun-syn/01-bad-ip-checksum.yaml").replace("reason: IP_CSUM", "reason: IP_CHECKSUM");
    let f = dir.0.join("typo.yaml");
    std::fs::write(&f, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("IP_CHECKSUM"))
        .unwrap()
        + 1;
    let Err(RunError::Scenario(errs)) = runner::run_file(&f, &cfg()) else {
        panic!("an unknown reason must be a scenario error");
    };
    let msg = errs[0].to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:{line}:11: unknown drop reason `IP_CHECKSUM`",
            f.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("did you mean IP_CSUM"), "{msg}");
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn every_shipped_scenario_validates_and_says_what_it_reproduces() {
    let files = runner::discover(&[pktfate_tests::scenario_dir()]).unwrap();
    assert!(files.len() >= 4);
    let reasons = runner::kernel_reasons().unwrap();
    for f in files {
        let mut s = Scenario::load(&f).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        s.check_against_kernel(&reasons).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("# "),
            "{} must open with a comment on what it reproduces",
            f.display()
        );
    }
}

/// Child mode: what the parent test asked for, in a process of its own.
fn child_mode() -> Option<String> {
    std::env::var("PKTFATE_CHILD").ok()
}

fn spawn_child(test: &str, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("PKTFATE_CHILD", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_removes_the_namespaces_of_a_running_scenario() {
    if child_mode().as_deref() == Some("hold") {
        // The library prints nothing; what its signal handler did goes to
        // the reporter the program set.
        pktfate::topology::teardown::set_reporter(|m| println!("REPORTED {m}"));
        let s = Scenario::load(&shipped("tun-syn/03-forwarded.yaml")).unwrap();
        let topo = Topology::build(&s, &cfg().cni_path).unwrap();
        let names: Vec<String> = topo.namespaces.iter().map(|h| h.real.clone()).collect();
        println!("READY {}", names.join(" "));
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let mut child = spawn_child(
        "ctrl_c_removes_the_namespaces_of_a_running_scenario",
        "hold",
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut names = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline && out.read_line(&mut line).unwrap() > 0 {
        // libtest prints `test <name> ... ` before the child's own output.
        if let Some(i) = line.find("READY ") {
            names = line[i + 6..].split_whitespace().map(String::from).collect();
            break;
        }
        line.clear();
    }
    assert_eq!(names.len(), 2, "child never built its topology");
    for n in &names {
        assert!(Path::new("/run/netns").join(n).exists());
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for n in &names {
        assert!(
            !Path::new("/run/netns").join(n).exists(),
            "{n} survived Ctrl-C"
        );
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(
        rest.contains("REPORTED interrupted (SIGINT); removed 2 namespace(s)"),
        "{rest}"
    );
}

#[test]
fn without_root_the_error_says_what_is_missing() {
    if child_mode().as_deref() == Some("nobody") {
        // Read while still root: the checkout may be in a directory
        // `nobody` cannot enter (a 0700 home or temporary directory).
        let scenario = Scenario::load(&shipped("tun-syn/01-bad-ip-checksum.yaml")).unwrap();
        // SAFETY: dropping privileges in a process of our own.
        unsafe {
            assert_eq!(libc::setgid(65534), 0);
            assert_eq!(libc::setuid(65534), 0);
        }
        let e = runner::run(scenario, &cfg()).err().expect("must refuse");
        println!("MESSAGE {}", e.render().replace('\n', " | "));
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let out = spawn_child("without_root_the_error_says_what_is_missing", "nobody")
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = stdout
        .lines()
        .find_map(|l| l.find("MESSAGE ").map(|i| &l[i + 8..]))
        .expect("child printed its error");
    assert!(msg.contains("pktfate needs root"), "{msg}");
    assert!(msg.contains("hint: run as root"), "{msg}");
}

/// Child of the test above: runs a directory's scenarios as trials.
#[test]
fn run_trials_child() {
    if child_mode().as_deref() != Some("trials") {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("PKTFATE_TRIAL_DIR").unwrap());
    let trials: Vec<Trial> =
        pktfate_tests::scenario_trials(&dir, &std::sync::Arc::new(cfg())).unwrap();
    let names: Vec<String> = trials.iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["broken", "good"]);
    let mut verdicts = vec![];
    for name in &names {
        let args = Arguments {
            filter: Some(name.clone()),
            exact: true,
            quiet: true,
            ..Arguments::default()
        };
        let c: Conclusion = libtest_mimic::run(
            &args,
            pktfate_tests::scenario_trials(&dir, &std::sync::Arc::new(cfg())).unwrap(),
        );
        verdicts.push(format!(
            "{name}={}",
            if c.num_failed == 0 { "ok" } else { "failed" }
        ));
    }
    let all: Conclusion = libtest_mimic::run(
        &Arguments {
            quiet: true,
            ..Arguments::default()
        },
        pktfate_tests::scenario_trials(&dir, &std::sync::Arc::new(cfg())).unwrap(),
    );
    println!(
        "\nCONCLUSION passed={} failed={} {}",
        all.num_passed,
        all.num_failed,
        verdicts.join(" ")
    );
}

#[test]
fn a_bad_inline_nft_ruleset_fails_with_nfts_message_at_the_scenario_line() {
    let _serial = serial();
    let text = r#"# nft syntax error test
namespaces:
  a:
    links:
      - { name: tun0, kind: tun }
    addresses:
      - { dev: tun0, addr: 192.0.2.1/24 }
    nft: |
      table inet filter {
        chain input {
          type filter hook input priority filter;
          tcp dport 90 rejekt
        }
      }
inject:
  via: a/tun0
  ipv4: { src: 192.0.2.2, dst: 192.0.2.1 }
  tcp: { sport: 1, dport: 90 }
expect:
  fate: dropped
"#;
    let dir = TempDir::new("nft");
    let f = dir.0.join("bad-nft.yaml");
    std::fs::write(&f, text).unwrap();
    let err = runner::run_file(&f, &cfg())
        .err()
        .expect("nft must refuse the ruleset");
    let msg = err.render();
    // `rejekt` is on line 12 of the scenario file.
    assert!(msg.contains(&format!("{}:12:", f.display())), "{msg}");
    assert!(msg.contains("nft:") && msg.contains("rejekt"), "{msg}");
    assert!(msg.contains("hint:"), "{msg}");
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn the_same_scenario_runs_twice_at_once_in_isolation() {
    let _serial = serial();
    // A crafted packet with a fixed 5-tuple: the two runs send identical
    // packets, so only the namespace filter keeps their traces apart.
    let f = shipped("tun-syn/03-forwarded.yaml");
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || runner::run_file(&f, &cfg()))
        })
        .collect();
    let mut inodes = vec![];
    for h in handles {
        let o = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{}", e.render()));
        assert!(o.passed(), "{}", pktfate::report::failure(&o));
        assert!(!o.timeline.steps.is_empty());
        // Both runs use the same names and addresses; only their namespace
        // inodes differ. Each run must see events of its own namespaces only
        // (0: an skb with neither device nor socket left at its free).
        let own: Vec<u32> = o.names.netns.keys().copied().collect();
        for st in &o.timeline.steps {
            assert!(
                st.ev.netns == 0 || own.contains(&st.ev.netns),
                "event from another run: {st:?}"
            );
        }
        inodes.push(own);
    }
    assert!(
        inodes[0].iter().all(|i| !inodes[1].contains(i)),
        "the runs shared a namespace"
    );
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

/// Runs a shipped scenario with one expectation changed and returns the
/// failure report.
fn report_with(rel: &str, from: &str, to: &str) -> String {
    let text = read(rel);
    assert!(text.contains(from), "{rel} no longer contains {from:?}");
    // The copy is a project of its own, with the rulesets it names.
    let dir = TempDir::new("mut").with_nft_fixtures();
    let f = dir.0.join("mutated.yaml");
    std::fs::write(&f, text.replacen(from, to, 1)).unwrap();
    let o = runner::run_file(&f, &cfg()).unwrap_or_else(|e| panic!("{}", e.render()));
    assert!(!o.passed(), "{rel} with {to:?} must fail");
    pktfate::report::failure(&o)
}

#[test]
fn each_assertion_kind_fails_with_a_precise_report() {
    let _serial = serial();
    let cases: [(&str, &str, &str, &[&str]); 12] = [
        (
            "tun-syn/03-forwarded.yaml",
            "fate: forwarded",
            "fate: delivered",
            &[
                "fate:",
                "- expected: delivered",
                "+ actual:   forwarded (out host/veth0), then dropped (NO_SOCKET) at tcp_v4_rcv",
            ],
        ),
        (
            "tun-syn/01-bad-ip-checksum.yaml",
            "at: ip_rcv_core",
            "at: ip_rcv",
            &["at:", "- expected: ip_rcv", "+ actual:   ip_rcv_core"],
        ),
        (
            "tun-syn/01-bad-ip-checksum.yaml",
            "    - ip_rcv_core\n",
            "    - ip_rcv_core\n    - tcp_v4_rcv\n",
            &[
                "path:",
                "+ actual:   `tcp_v4_rcv` not found after `ip_rcv_core`; the skb went: ",
            ],
        ),
        (
            "firewall/nft-reject-port-90.yaml",
            "icmp: { type: 3, code: 13 }",
            "icmp: { type: 3, code: 3 }",
            &[
                "icmp:",
                "- expected: type 3 code 3",
                "+ actual:   type 3 code 13",
            ],
        ),
        (
            "routing/tcp-through-router.yaml",
            "not_path: [kfree_skb]",
            "not_path: [tcp_v4_rcv]",
            &[
                "not_path:",
                "- expected: no `tcp_v4_rcv`",
                "+ actual:   `tcp_v4_rcv` at server/",
            ],
        ),
        (
            "routing/tcp-through-router.yaml",
            "transmitted: [client/eth0, router/r-server]",
            "transmitted: [server/eth0]",
            &[
                "transmitted:",
                "- expected: server/eth0",
                "+ actual:   transmitted on client/eth0, router/r-server",
            ],
        ),
        (
            "tun-syn/04-no-socket.yaml",
            "TcpOutRsts: +1",
            "TcpOutRsts: +2",
            &[
                "counter host/TcpOutRsts:",
                "- expected: +2",
                "+ actual:   +1 (",
            ],
        ),
        (
            "tun-syn/03-forwarded.yaml",
            "  fate: forwarded\n",
            "  fate: forwarded\n  no_unexpected_drops: true\n",
            &[
                "no_unexpected_drops:",
                "dropped (NO_SOCKET) at tcp_v4_rcv in upstream/veth1",
            ],
        ),
        (
            "nat/masquerade-link-local-uplink.yaml",
            "src: 192.0.2.77",
            "src: 203.0.113.10",
            &[
                "seen at net_dev_start_xmit@node/eth0:",
                "- expected: src 203.0.113.10",
                "+ actual:   192.0.2.77:",
            ],
        ),
        (
            "routing/tcp-through-router.yaml",
            "  reply:\n    fate: delivered",
            "  reply:\n    fate: dropped",
            &[
                "reply fate:",
                "- expected: dropped",
                "delivered to a socket",
            ],
        ),
        (
            "tc/rewrite-then-nft-drop.yaml",
            "{ at: kfree_skb@server/eth0, dport: 8080 }",
            "{ at: kfree_skb@server/eth0, dport: 80 }",
            &[
                "seen at kfree_skb@server/eth0:",
                "- expected: dport 80",
                ":8080(tcp S)",
            ],
        ),
        (
            // Strict rp_filter looks up the route back to the client's
            // source in the server: the scenario's /32 blackhole in main.
            "routing/rp-filter-blackhole.yaml",
            "  fate: dropped\n  reason: IP_RPFILTER\n",
            "  fate: delivered\n",
            &[
                "+ actual:   dropped (IP_RPFILTER) at ip_rcv_finish_core",
                "packet `packet 1`: dropped (IP_RPFILTER) at ip_rcv_finish_core, by route table 254 198.51.100.11->198.51.100.10: blackhole in server",
            ],
        ),
    ];
    for (rel, from, to, needles) in cases {
        let text = report_with(rel, from, to);
        for n in needles {
            assert!(
                text.contains(n),
                "{rel} with {to:?}: report lacks {n:?}:\n{text}"
            );
        }
    }
}

#[test]
fn unmet_requirements_skip_with_the_reason() {
    let dir = TempDir::new("requires");
    let text = read("tun-syn/01-bad-ip-checksum.yaml").replacen(
        "description:",
        "requires: { kernel: \">=99.1\", reasons: [NO_SUCH_REASON_AT_ALL], tools: [no-such-tool-pktfate] }\ndescription:",
        1,
    );
    let f = dir.0.join("future.yaml");
    std::fs::write(&f, text).unwrap();
    match runner::run_file(&f, &cfg()) {
        Err(RunError::Skipped(why)) => {
            assert!(
                matches!(
                    why,
                    runner::Unmet::Kernel {
                        want: (99, 1, 0),
                        ..
                    }
                ),
                "{why}"
            );
            assert!(
                why.to_string()
                    .starts_with("needs kernel >= 99.1.0, this is "),
                "{why}"
            );
        }
        other => panic!("expected a skip, got {:?}", other.map(|o| o.passed())),
    }
    // The same file as a trial is ignored, with the reason as its kind.
    assert!(pktfate_tests::skip_reason(&f, &cfg()).is_some());
    let only_reason = read("tun-syn/01-bad-ip-checksum.yaml").replacen(
        "description:",
        "requires: { reasons: [NO_SUCH_REASON_AT_ALL] }\ndescription:",
        1,
    );
    std::fs::write(&f, only_reason).unwrap();
    let why = pktfate_tests::skip_reason(&f, &cfg()).expect("skipped");
    assert!(
        matches!(&why, runner::Unmet::NoReasons(r) if r == &["NO_SUCH_REASON_AT_ALL"]),
        "{why}"
    );
    assert_eq!(
        why.to_string(),
        "this kernel has no drop reason NO_SUCH_REASON_AT_ALL"
    );
}

/// A PATH holding only `ip` (or nothing), for the missing-tool tests.
fn path_with(tools: &[&str], dir: &Path) -> String {
    for t in tools {
        let real = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        std::os::unix::fs::symlink(real, dir.join(t)).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn a_missing_tool_is_named_with_a_hint_and_nothing_is_left() {
    match child_mode().as_deref() {
        Some("no-nft") | Some("no-ip") => {
            let mode = child_mode().unwrap();
            let dir = TempDir::new(&mode);
            let tools: &[&str] = if mode == "no-nft" { &["ip"] } else { &[] };
            let path = path_with(tools, &dir.0);
            // SAFETY: this child process runs one test on one thread.
            unsafe { std::env::set_var("PATH", path) };
            let e = runner::run_file(&shipped("firewall/nft-reject-port-90.yaml"), &cfg())
                .err()
                .expect("must fail without the tool");
            println!("MESSAGE {}", e.render().replace('\n', " | "));
            println!("LEFT {}", our_namespaces().len());
            return;
        }
        Some(_) => return,
        None => {}
    }
    for (mode, want, hint) in [
        ("no-nft", "`nft` is not installed", "hint: install nftables"),
        ("no-ip", "`ip` not found on PATH", "hint: install iproute2"),
    ] {
        let out = spawn_child(
            "a_missing_tool_is_named_with_a_hint_and_nothing_is_left",
            mode,
        )
        .wait_with_output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let msg = stdout
            .lines()
            .find_map(|l| l.find("MESSAGE ").map(|i| &l[i + 8..]))
            .expect("child message");
        assert!(msg.contains(want) && msg.contains(hint), "{mode}: {msg}");
        let left = stdout
            .lines()
            .find_map(|l| l.find("LEFT ").map(|i| l[i + 5..].trim().to_string()));
        assert_eq!(left.as_deref(), Some("0"), "{mode}: namespaces left behind");
    }
}

#[test]
fn scenarios_in_one_process_share_one_tracer_and_see_only_their_own_runs() {
    let _serial = serial();
    // The same scenario four times at once: the same addresses and ports
    // in four sets of namespaces, one loaded tracer.
    let file = shipped("routing/tcp-through-router.yaml");
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| runner::run_file(&file, &cfg())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in outcomes {
        let o = o.unwrap_or_else(|e| panic!("{}", e.render()));
        assert!(o.passed(), "{}", pktfate::report::failure(&o));
        let foreign: Vec<_> = o
            .timeline
            .steps
            .iter()
            .filter(|s| s.ns.starts_with("ns:") || s.ns == "-")
            .map(|s| format!("{} in {}", s.ev.hook, s.ns))
            .collect();
        assert!(foreign.is_empty(), "another run's events: {foreign:?}");
    }
    let again = runner::run_file(&shipped("tun-syn/04-no-socket.yaml"), &cfg()).unwrap();
    assert!(again.passed());
    assert_eq!(
        pktfate::tracer::shared::loads(),
        1,
        "the tracer is loaded once per process"
    );
}

#[test]
fn a_scenario_asserting_rules_parses_the_kernel_btf_once_for_its_tracer() {
    if child_mode().as_deref() == Some("btf") {
        // A process of its own: no other test's parse counts. The drop
        // reasons are read first (a run reads them before it builds,
        // sharing the tracer's parse only when the two overlap).
        pktfate::tracer::DropReasons::kernel().unwrap();
        let before = pktfate::tracer::btf::Btf::kernel_parses();
        let o = runner::run_file(&shipped("firewall/nft-reject-port-90.yaml"), &cfg())
            .unwrap_or_else(|e| panic!("{}", e.render()));
        assert!(o.passed(), "{}", pktfate::report::failure(&o));
        println!(
            "PARSES {}",
            pktfate::tracer::btf::Btf::kernel_parses() - before
        );
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let _serial = serial();
    let out = spawn_child(
        "a_scenario_asserting_rules_parses_the_kernel_btf_once_for_its_tracer",
        "btf",
    )
    .wait_with_output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parses = stdout
        .lines()
        .find_map(|l| l.find("PARSES ").map(|i| l[i + 7..].trim().to_string()));
    // The tracer's offsets and whether rule traces carry conntrack state
    // (asked after the tracer loaded) come from one parse.
    assert_eq!(
        parses.as_deref(),
        Some("1"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tcp_scenarios_end_when_the_socket_took_the_segments_not_after_an_idle_wait() {
    let _serial = serial();
    // The SYN-ACK and the last ACK are freed by TCP with the untraced
    // __kfree_skb; their socket's state change says the socket took them,
    // so nothing is left to wait for (the 200 ms idle rule is not needed).
    for rel in [
        "routing/tcp-through-router.yaml",
        "ipv6/tcp-connect-through-router.yaml",
    ] {
        let o =
            runner::run_file(&shipped(rel), &cfg()).unwrap_or_else(|e| panic!("{}", e.render()));
        assert!(o.passed(), "{}", pktfate::report::failure(&o));
        assert_eq!(
            o.timeline.unfinished, 0,
            "{rel}: skbs left waiting for an end that never comes"
        );
    }
}
