//! Stage 7: turn a run into text a person can act on.
//!
//! The timeline has pwru's columns (skb, cpu, process, netns, device, tuple,
//! function/hook, reason) plus time since the first event; a failure shows
//! expected vs actual for each broken expectation and the kernel stack at
//! the drop.

pub mod junit;
pub mod model;
mod outcome;
pub mod pcap;
mod topology;
pub mod html;
mod svg;

pub use outcome::{Outcome, Timings};
pub use topology::topology;

use std::fmt::Write;

use crate::collect::{Step, Timeline};
use crate::common::Hook;
use crate::evaluate::Verdict;

/// What the DETAIL column shows for an event.
fn detail(s: &Step) -> String {
    let e = &s.ev;
    match e.hook {
        Hook::KfreeSkb => format!(
            "{} at {}",
            e.reason.as_deref().unwrap_or("?"),
            e.at.as_deref().unwrap_or("?")
        ),
        Hook::ConsumeSkb => format!("at {}", e.at.as_deref().unwrap_or("?")),
        Hook::FibTableLookup | Hook::Fib6TableLookup => match &e.route {
            Some(r) => r.describe(s.route_dev.as_deref()),
            None => "?".into(),
        },
        Hook::IcmpSend => format!("icmp type {} code {}", e.aux[0], e.aux[1]),
        Hook::TcpSendReset => format!("rst reason {}", e.reason.as_deref().unwrap_or("?")),
        Hook::NetDevXmit => format!("rc {}", e.aux[0]),
        Hook::SkbCopyDatagramIovec => format!("{} bytes", e.aux[0]),
        Hook::SocketRead => "the harness's socket read it (not a tracepoint)".to_string(),
        Hook::InetSockSetState => {
            format!("socket {} -> {}", tcp_state(e.aux[0]), tcp_state(e.aux[1]))
        }
        Hook::ProgReturn => match &e.program {
            Some(r) if e.skb == 0 => format!("{} (on the driver's frame, no skb)", r.describe()),
            Some(r) => match &s.redirect_to {
                Some(to) => format!("{} (to {to})", r.describe()),
                None => r.describe(),
            },
            None => format!("a program returned {}", e.aux[0]),
        },
        _ => String::new(),
    }
}

/// TCP state names (`include/net/tcp_states.h`).
fn tcp_state(s: i32) -> String {
    const NAMES: [&str; 13] = [
        "?",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
    ];
    NAMES
        .get(s as usize)
        .map_or_else(|| s.to_string(), std::string::ToString::to_string)
}

/// The timeline as a table; `only` limits it to one packet's skbs.
pub fn timeline_table(tl: &Timeline) -> String {
    let t0 = tl.steps.first().map_or(0, |s| s.ev.ts_ns);
    let header = [
        "TIME(us)", "SKB", "CPU", "PROCESS", "NETNS", "DEVICE", "TUPLE", "HOOK", "DETAIL",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
    // Rule evaluations go where they happened among the kernel events.
    let rule_row = |r: &crate::collect::RuleStep| {
        let mut tuple = r.eval.packet.tuple();
        if r.reverse {
            tuple.push_str(" [reply]");
        }
        let hook = r.eval.hook.map_or("?", |h| h.name());
        [
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            r.eval.ns.clone(),
            String::new(),
            tuple,
            format!("nft:{hook}"),
            r.eval.describe(),
        ]
    };
    let placed = |at: Option<usize>| {
        tl.rules
            .iter()
            .filter(move |r| r.packet.is_some() && r.before == at)
    };
    for (i, s) in tl.steps.iter().enumerate() {
        rows.extend(placed(Some(i)).map(rule_row));
        let e = &s.ev;
        let mut tuple = e.packet.tuple();
        if s.reverse {
            tuple.push_str(" [reply]");
        }
        rows.push([
            format!("{:.1}", (e.ts_ns.saturating_sub(t0)) as f64 / 1000.0),
            format!("{:#x}", e.skb),
            e.cpu.to_string(),
            format!("[{}]", e.comm),
            s.ns.clone(),
            s.dev.clone(),
            tuple,
            e.hook.to_string(),
            detail(s),
        ]);
    }
    rows.extend(placed(None).map(rule_row));
    let mut width = [0usize; 9];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 8 {
                line.push_str(c);
            } else {
                let _ = write!(line, "{:<w$}  ", c, w = width[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A one-line hint for drop reasons with a common cause.
pub fn reason_hint(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "IP_RPFILTER" => {
            "reverse-path filter: the route back to the source does not leave through the interface the packet came in on (check rp_filter and the routes to the source, blackholes included)"
        }
        "IP_LOCAL_SOURCE" | "IP_INVALID_SOURCE" => {
            "martian source: the source address is local or invalid on this interface (net.ipv4.conf.<if>.log_martians=1 logs it)"
        }
        "IP_CSUM" => {
            "bad IPv4 header checksum: the sender built the header wrong (a hand-made packet, or broken offload)"
        }
        "TCP_CSUM" | "UDP_CSUM" | "ICMP_CSUM" => {
            "bad transport checksum: the sender computed it over the wrong data or pseudo-header"
        }
        "NO_SOCKET" => "nothing listens on that address and port in this namespace",
        "NETFILTER_DROP" => {
            "a netfilter rule or chain policy dropped it: the timeline's `nft:` rows name it where the namespace's rules were traced (`netfilter: decided_by` asserts it)"
        }
        "IP_INNOROUTES" | "IP_OUTNOROUTES" => {
            "no route: check `ip route` and `ip rule` (policy tables) in that namespace"
        }
        "TC_INGRESS" | "TC_EGRESS" | "TCX_INGRESS" | "TCX_EGRESS" => {
            "a tc filter (often eBPF) returned TC_ACT_SHOT: `tc filter show dev <if> ingress|egress`"
        }
        "QDISC_DROP" => {
            "the qdisc refused it (queue full, or a limit of 0): `tc -s qdisc show dev <if>`"
        }
        "NEIGH_FAILED" | "NEIGH_QUEUEFULL" | "NEIGH_DEAD" => {
            "the next hop's MAC could not be resolved (ARP/ND); check the neighbour table"
        }
        "OTHERHOST" => "the frame's destination MAC is not this interface's",
        "PKT_TOO_SMALL" | "PKT_TOO_BIG" => "the length fields do not fit the packet or the MTU",
        "IP_INHDR" | "IP_INADDRERRORS" => "an invalid IP header or destination address",
        "NOT_SPECIFIED" => {
            "the kernel gave no reason here: the function and stack at the drop say where"
        }
        _ => return None,
    })
}

/// The scenario program whose drop code `free` (a `kfree_skb`) carries
/// out: the last program run on the same skb before it.
fn dropping_program(tl: &Timeline, free: usize) -> Option<&crate::tracer::ProgramRun> {
    let s = &tl.steps[free];
    tl.steps[..free]
        .iter()
        .rev()
        .find(|p| p.ev.skb == s.ev.skb && p.life == s.life && p.ev.hook == Hook::ProgReturn)
        .and_then(|p| p.ev.program.as_ref())
        .filter(|r| r.returned.drops())
}

/// Kernel stacks at every drop in the timeline.
pub fn drop_stacks(tl: &Timeline) -> String {
    let mut out = String::new();
    for (i, s) in tl.steps.iter().enumerate() {
        // An XDP program's drop of a frame no skb held has no stack of a
        // free: the program is the whole story.
        if let (Hook::ProgReturn, 0, Some(r)) = (s.ev.hook, s.ev.skb, &s.ev.program) {
            if r.returned.drops() {
                let _ = writeln!(
                    out,
                    "frame dropped in {}/{} before any skb was built:\n    dropped by: {}",
                    s.ns,
                    s.dev,
                    r.describe()
                );
            }
            continue;
        }
        if s.ev.hook != Hook::KfreeSkb {
            continue;
        }
        let frames: Vec<&str> = s.ev.stack.iter().map(String::as_str).collect();
        let reason = s.ev.reason.as_deref().unwrap_or("?");
        let _ = writeln!(
            out,
            "skb {:#x} dropped ({reason}) in {}/{}:\n    {}",
            s.ev.skb,
            s.ns,
            s.dev,
            frames.join(" <- ")
        );
        // The rule trace's drop placed right before this free decided it.
        let by = tl.rules.iter().find(|r| {
            r.before == Some(i)
                && r.packet == s.packet
                && r.eval.verdict == crate::tracer::nftrace::NfVerdict::Drop
        });
        if let Some(r) = by {
            let _ = writeln!(out, "    dropped by: {}", r.eval.describe());
        } else if let Some(p) = dropping_program(tl, i) {
            let _ = writeln!(out, "    dropped by: {}", p.describe());
        } else if let Some(h) = reason_hint(reason) {
            let _ = writeln!(out, "    hint: {h}");
        }
    }
    out
}

/// Expected vs actual, one block per packet that failed.
pub fn differences(v: &Verdict) -> String {
    let mut out = String::new();
    for p in v.packets.iter().filter(|p| !p.mismatches.is_empty()) {
        let _ = writeln!(out, "packet `{}`: {}", p.name, p.facts.summary());
        for m in &p.mismatches {
            let _ = writeln!(out, "  {}:", m.what);
            let _ = writeln!(out, "    - expected: {}", m.expected);
            let _ = writeln!(out, "    + actual:   {}", m.actual);
        }
    }
    for m in &v.counters {
        let _ = writeln!(out, "{}:", m.what);
        let _ = writeln!(out, "    - expected: {}", m.expected);
        let _ = writeln!(out, "    + actual:   {}", m.actual);
    }
    for t in &v.trace_problems {
        let _ = writeln!(out, "trace: {t}");
    }
    out
}

/// What the tracer ran on, and the optional hooks it went without.
pub fn tracer_line(o: &Outcome) -> String {
    let mut t = format!("tracer: {} on {} hooks", o.backend, o.hooks.len());
    if o.functions > 0 {
        t.push_str(&format!(
            " and {} kernel functions (probes attached in {:.0} ms; tracer ready in {:.0} ms)",
            o.functions,
            o.function_attach.as_secs_f64() * 1000.0,
            o.timings.attach.as_secs_f64() * 1000.0
        ));
    }
    let mut without: Vec<String> = o
        .skipped_hooks
        .iter()
        .map(|s| format!("{} ({})", s.hook, s.why))
        .collect();
    if let Some(why) = &o.function_fallback {
        without.push(format!("kprobe-multi ({why}; plain kprobes instead)"));
    }
    without.extend(
        o.function_problems
            .iter()
            .map(|p| format!("some functions ({p})")),
    );
    if !without.is_empty() {
        t.push_str(&format!("; without {}", without.join(", ")));
    }
    t.push('\n');
    t
}

/// The whole failure report for one scenario.
pub fn failure(o: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario `{}` ({}) failed\n",
        o.scenario.name,
        o.scenario.path.display()
    );
    out.push_str(&differences(&o.verdict));
    for t in &o.teardown_problems {
        let _ = writeln!(out, "teardown: {t}");
    }
    let _ = writeln!(
        out,
        "\ntimeline ({} events, tracer: {} on {} hooks):",
        o.timeline.steps.len(),
        o.backend,
        o.hooks.len()
    );
    if !o.skipped_hooks.is_empty() {
        out.push_str(&indent(&tracer_line(o), "  "));
    }
    out.push_str(&indent(&timeline_table(&o.timeline), "  "));
    if !o.timeline.rules_traced.is_empty() {
        let _ = writeln!(
            out,
            "  (nft:<hook> rows: netfilter rule evaluations, traced in {})",
            o.timeline.rules_traced.join(", ")
        );
    }
    let stacks = drop_stacks(&o.timeline);
    if !stacks.is_empty() {
        let _ = writeln!(out, "\nstack at drop:");
        out.push_str(&indent(&stacks, "  "));
    }
    out
}

/// One line per scenario, with its fate and timings.
pub fn summary(o: &Outcome) -> String {
    let status = if o.passed() { "PASS" } else { "FAIL" };
    let fates: Vec<String> = o
        .verdict
        .packets
        .iter()
        .map(|p| format!("{}: {}", p.name, p.facts.summary()))
        .collect();
    let mut line = format!(
        "{status} {} [{}] ({})",
        o.scenario.name,
        o.timings,
        fates.join("; ")
    );
    for u in &o.unchecked {
        line.push_str(&format!("\n  not checkable here: {u}"));
    }
    line
}

fn indent(s: &str, pad: &str) -> String {
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Colours a report's lines by their meaning (status words, expected,
/// actual, hints); the text itself is unchanged.
pub fn colourize(text: &str) -> String {
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    const YELLOW: &str = "\x1b[33m";
    const BOLD: &str = "\x1b[1m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let colour = if line.starts_with("PASS") {
            Some(GREEN)
        } else if line.starts_with("FAIL") || line.starts_with("ERROR") {
            Some(RED)
        } else if line.starts_with("SKIP") || t.starts_with("hint:") {
            Some(YELLOW)
        } else if t.starts_with("- expected:") {
            Some(RED)
        } else if t.starts_with("+ actual:") {
            Some(GREEN)
        } else if line.starts_with("packet `") || line.starts_with("scenario `") {
            Some(BOLD)
        } else {
            None
        };
        match colour {
            Some(c) => {
                let body = line.trim_end_matches('\n');
                out.push_str(c);
                out.push_str(body);
                out.push_str(RESET);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_marks_lines_without_changing_text() {
        let plain = "FAIL x\n    - expected: A\n    + actual:   B\nother\n";
        let c = colourize(plain);
        assert!(c.contains("\x1b[31mFAIL x\x1b[0m\n"));
        assert!(c.contains("\x1b[32m    + actual:   B\x1b[0m"));
        let stripped = c
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn common_reasons_have_hints() {
        for r in [
            "IP_RPFILTER",
            "IP_LOCAL_SOURCE",
            "IP_CSUM",
            "NETFILTER_DROP",
            "NO_SOCKET",
            "IP_INNOROUTES",
        ] {
            assert!(reason_hint(r).is_some(), "{r}");
        }
        assert!(reason_hint("SOMETHING_ELSE").is_none());
    }

    #[test]
    fn a_rule_evaluation_is_shown_where_it_was_placed_and_names_the_drop() {
        use crate::collect::{RuleStep, sample_step};
        use crate::tracer::nftrace::{EvalKind, NfHook, NfVerdict, RuleEval};
        let mut drop = sample_step(0x10, "kfree_skb", &[], "server", "eth0");
        drop.ev.reason = Some("NETFILTER_DROP".into());
        let tl = Timeline {
            steps: vec![
                sample_step(0x10, "fib_table_lookup", &[], "server", "eth0"),
                drop,
            ],
            rules: vec![RuleStep {
                eval: RuleEval {
                    ns: "server".into(),
                    family: "ip".into(),
                    table: "filter".into(),
                    chain: "INPUT".into(),
                    handle: None,
                    rule: None,
                    kind: EvalKind::Policy,
                    verdict: NfVerdict::Drop,
                    target: None,
                    hook: Some(NfHook::Input),
                    id: 1,
                    packet: crate::tracer::PacketInfo::default(),
                    ct_state: None,
                },
                packet: Some(0),
                reverse: false,
                before: Some(1),
            }],
            ..Timeline::default()
        };
        let table = timeline_table(&tl);
        let hooks: Vec<String> = table
            .lines()
            .skip(1)
            .map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("nft:") || w.contains('_'))
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(
            hooks,
            ["fib_table_lookup", "nft:input", "kfree_skb"],
            "{table}"
        );
        let stacks = drop_stacks(&tl);
        assert!(
            stacks.contains("dropped by: ip filter INPUT: policy -> drop"),
            "{stacks}"
        );
        assert!(!stacks.contains("hint:"), "{stacks}");
    }

    #[test]
    fn a_programs_drop_is_named_in_the_timeline_and_at_the_drop() {
        use crate::collect::{sample_prog_step, sample_step};
        use crate::scenario::ProgHook;
        let run = |skb: u64, hook: ProgHook, code: i32| {
            sample_prog_step(skb, "p<&>", ("server", "eth0"), hook, code)
        };
        // A native XDP drop: no skb, no free.
        let tl = Timeline {
            steps: vec![run(0, ProgHook::Xdp, 1)],
            ..Timeline::default()
        };
        let table = timeline_table(&tl);
        assert!(
            table.contains("program p<&> on server/eth0 (xdp) returned XDP_DROP (on the driver's frame, no skb)"),
            "{table}"
        );
        let stacks = drop_stacks(&tl);
        assert!(
            stacks.contains("dropped by: program p<&> on server/eth0 (xdp) returned XDP_DROP"),
            "{stacks}"
        );
        // A classifier's TC_ACT_SHOT, then the kernel's free of its skb.
        let mut free = sample_step(0x10, "kfree_skb", &[], "server", "eth0");
        free.ev.reason = Some("TC_INGRESS".into());
        let tl = Timeline {
            steps: vec![run(0x10, ProgHook::TcIngress, 2), free],
            ..Timeline::default()
        };
        let stacks = drop_stacks(&tl);
        assert!(
            stacks.contains(
                "dropped by: program p<&> on server/eth0 (tc ingress) returned TC_ACT_SHOT"
            ),
            "{stacks}"
        );
        assert!(!stacks.contains("hint:"), "the program says more: {stacks}");
        // TC_ACT_OK names no dropper.
        let mut free = sample_step(0x10, "kfree_skb", &[], "server", "eth0");
        free.ev.reason = Some("TC_INGRESS".into());
        let tl = Timeline {
            steps: vec![run(0x10, ProgHook::TcIngress, 0), free],
            ..Timeline::default()
        };
        assert!(!drop_stacks(&tl).contains("dropped by"));
    }
}
