//! Stage 7: turn a run into text a person can act on.
//!
//! The timeline has pwru's columns (skb, cpu, process, netns, device, tuple,
//! function/hook, reason) plus time since the first event; a failure shows
//! expected vs actual for each broken expectation and the kernel stack at
//! the drop.

use std::fmt::Write;

use crate::collect::{Step, Timeline};
use crate::evaluate::Verdict;
use crate::runner::Outcome;
use crate::tracer::tcp_flags;

/// What the DETAIL column shows for an event.
fn detail(s: &Step) -> String {
    let e = &s.ev;
    match e.hook {
        "kfree_skb" => format!(
            "{} at {}",
            e.reason.as_deref().unwrap_or("?"),
            e.at.as_deref().unwrap_or("?")
        ),
        "consume_skb" => format!("at {}", e.at.as_deref().unwrap_or("?")),
        "fib_table_lookup" => {
            let (table, err, oif) = (e.aux[0], e.aux[1], e.aux[2]);
            let flow = match e.flow {
                Some((s, d)) => format!("{s}->{d}"),
                None => "?".into(),
            };
            if err == 0 {
                format!("table {table} {flow}: ok, oif {oif}")
            } else {
                format!("table {table} {flow}: err {err}")
            }
        }
        "icmp_send" => format!("icmp type {} code {}", e.aux[0], e.aux[1]),
        "tcp_send_reset" => format!("rst reason {}", e.reason.as_deref().unwrap_or("?")),
        "net_dev_xmit" => format!("rc {}", e.aux[0]),
        "skb_copy_datagram_iovec" => format!("{} bytes", e.aux[0]),
        crate::collect::SOCKET_READ => {
            "the harness's socket read it (not a tracepoint)".to_string()
        }
        "inet_sock_set_state" => {
            format!("socket {} -> {}", tcp_state(e.aux[0]), tcp_state(e.aux[1]))
        }
        _ => String::new(),
    }
}

/// TCP state names (include/net/tcp_states.h).
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
        .map_or_else(|| s.to_string(), |n| n.to_string())
}

/// The timeline as a table; `only` limits it to one packet's skbs.
pub fn timeline_table(tl: &Timeline) -> String {
    let t0 = tl.steps.first().map_or(0, |s| s.ev.ts_ns);
    let header = [
        "TIME(us)", "SKB", "CPU", "PROCESS", "NETNS", "DEVICE", "TUPLE", "HOOK", "DETAIL",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
    for s in &tl.steps {
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

/// Kernel stacks at every drop in the timeline.
pub fn drop_stacks(tl: &Timeline) -> String {
    let mut out = String::new();
    for s in tl.steps.iter().filter(|s| s.ev.hook == "kfree_skb") {
        let frames: Vec<&str> = s.ev.stack.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "skb {:#x} dropped ({}) in {}/{}:\n    {}",
            s.ev.skb,
            s.ev.reason.as_deref().unwrap_or("?"),
            s.ns,
            s.dev,
            frames.join(" <- ")
        );
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
    let _ = writeln!(
        out,
        "\ntimeline ({} events, tracer: {}):",
        o.timeline.steps.len(),
        o.backend
    );
    out.push_str(&indent(&timeline_table(&o.timeline), "  "));
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
    format!(
        "{status} {} [{}] ({})",
        o.scenario.name,
        o.timings,
        fates.join("; ")
    )
}

fn indent(s: &str, pad: &str) -> String {
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// TCP flags for display (re-exported for the CLI).
pub fn flags(f: u8) -> String {
    tcp_flags(f)
}
