//! Stage 6: compare each packet's traced life with its expectations.
//!
//! The skb a packet is judged by is the first one seen carrying the packet in
//! its forward direction; its life runs from that event to its `kfree_skb`
//! or `consume_skb`. Replies (reverse direction) are in the timeline for the
//! reader but do not change the verdict.

use std::collections::HashSet;

use crate::collect::{Step, Timeline};
use crate::counters::Counters;
use crate::scenario::{Expectation, Fate, PathStep, Scenario, Seen};

/// Functions whose presence on the stack at `consume_skb` means a socket
/// took the packet (the transport layer's receive paths).
const SOCKET_RECEIVE: [&str; 10] = [
    "tcp_v4_do_rcv",
    "tcp_v6_do_rcv",
    "tcp_rcv_state_process",
    "tcp_rcv_established",
    "udp_queue_rcv_one_skb",
    "udpv6_queue_rcv_one_skb",
    "__udp_queue_rcv_skb",
    "__udpv6_queue_rcv_skb",
    "raw_rcv",
    "ping_rcv",
];

/// Receive hooks.
const RECEIVE: [&str; 2] = ["netif_receive_skb", "netif_rx"];

/// Transmit hooks.
const XMIT: [&str; 3] = ["net_dev_queue", "net_dev_start_xmit", "net_dev_xmit"];

/// One element of a packet's path: a stack frame or the hook itself,
/// with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Function or hook.
    pub func: String,
    /// Namespace (scenario name).
    pub ns: String,
    /// Device.
    pub dev: String,
    /// Whether this is the tracepoint itself (not a stack frame).
    pub is_hook: bool,
}

/// What the trace shows happened to one packet.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Facts {
    /// skb judged.
    pub skb: Option<u64>,
    /// Drop reason, when dropped.
    pub reason: Option<String>,
    /// Function that freed it.
    pub at: Option<String>,
    /// Freed with `kfree_skb`.
    pub dropped: bool,
    /// Freed with `consume_skb`.
    pub consumed: bool,
    /// Reached a socket.
    pub delivered: bool,
    /// Received by a namespace and then transmitted by that same namespace
    /// (routed or bridged through it).
    pub forwarded: bool,
    /// Devices it was transmitted on (`ns/dev`).
    pub transmitted: Vec<String>,
    /// Where it was last seen, when it never died.
    pub last_seen: Option<String>,
}

impl Facts {
    /// One-line summary of the fate.
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        if self.skb.is_none() {
            return "never seen by the tracer".into();
        }
        if self.forwarded {
            parts.push(format!("forwarded (out {})", self.transmitted.join(", ")));
        }
        if self.delivered {
            parts.push("delivered to a socket".into());
        }
        if self.dropped {
            parts.push(format!(
                "dropped ({}) at {}",
                self.reason.as_deref().unwrap_or("?"),
                self.at.as_deref().unwrap_or("?")
            ));
        } else if self.consumed && !self.delivered {
            parts.push(format!("consumed at {}", self.at.as_deref().unwrap_or("?")));
        }
        // A socket taking the packet is an end, even when its free is not
        // traced (TCP, UDP).
        if !self.dropped && !self.consumed && !self.delivered {
            match self.last_seen.as_deref() {
                Some(w) if w.starts_with("waiting") => parts.push(w.to_string()),
                w => parts.push(format!("no end seen (last at {})", w.unwrap_or("?"))),
            }
        }
        parts.join(", then ")
    }

    fn has(&self, f: Fate) -> bool {
        match f {
            Fate::Dropped => self.dropped,
            Fate::Consumed => self.consumed,
            Fate::Delivered => self.delivered,
            Fate::Forwarded => self.forwarded,
        }
    }
}

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// Which expectation (`fate`, `reason`, `at`, `path`).
    pub what: String,
    /// What the scenario says.
    pub expected: String,
    /// What the trace shows.
    pub actual: String,
}

/// The verdict on one packet.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PacketVerdict {
    /// Packet name.
    pub name: String,
    /// What happened.
    pub facts: Facts,
    /// Expectations that failed; empty means pass.
    pub mismatches: Vec<Mismatch>,
    /// The packet's path, compacted for reading.
    pub path: Vec<String>,
}

/// The verdict on a scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// Per packet.
    pub packets: Vec<PacketVerdict>,
    /// Problems with the trace itself (lost events, timeout).
    pub trace_problems: Vec<String>,
    /// Counter deltas that did not hold.
    pub counters: Vec<Mismatch>,
}

impl Verdict {
    /// True when every expectation held and the trace is complete.
    pub fn passed(&self) -> bool {
        self.trace_problems.is_empty()
            && self.counters.is_empty()
            && self.packets.iter().all(|p| p.mismatches.is_empty())
    }
}

/// The judged skb's life: from its first forward event to its end.
pub fn life(tl: &Timeline, packet: usize) -> Vec<&Step> {
    life_of(tl, packet, false)
}

/// How soon after the packet's latest event a copy must appear.
const COPY_WINDOW_NS: u64 = 100_000_000;

/// What identifies one packet across skb copies: the headers that a copy
/// keeps (addresses, ports, TCP sequence and flags, ICMP type and id).
fn signature(
    s: &Step,
) -> (
    Option<std::net::IpAddr>,
    Option<std::net::IpAddr>,
    u8,
    u16,
    u16,
    u32,
    u8,
    u8,
    u16,
) {
    let p = &s.ev.packet;
    (
        p.src,
        p.dst,
        p.proto,
        p.sport,
        p.dport,
        p.tcp_seq,
        p.tcp_flags,
        p.icmp_type,
        p.icmp_id,
    )
}

/// Like [`life`], for the first packet flowing back (`reverse`) or forward.
///
/// A packet can change skbs on its way: on 6.18, a packet that waits for
/// ARP is queued as a copy and the original is consumed in
/// `__neigh_event_send`. So the life starts with the first skb carrying
/// the packet and takes in every later skb whose first event carries the
/// same packet (by [`signature`], as of any event so far, so NAT and
/// rewrites are followed). Events come in time order.
pub fn life_of(tl: &Timeline, packet: usize, reverse: bool) -> Vec<&Step> {
    let cands: Vec<&Step> = tl
        .steps
        .iter()
        .filter(|s| s.packet == Some(packet) && s.reverse == reverse)
        .collect();
    let Some(first) = cands.first() else {
        return vec![];
    };
    // First event of each skb life, in time order.
    let mut starts: Vec<&Step> = vec![];
    let mut seen_lives = HashSet::new();
    for s in &cands {
        if seen_lives.insert(s.life) {
            starts.push(s);
        }
    }
    let mut chain = HashSet::from([first.life]);
    let mut sigs: HashSet<_> = cands
        .iter()
        .filter(|s| s.life == first.life)
        .map(|s| signature(s))
        .collect();
    let last_ts = |chain: &HashSet<u64>| {
        cands
            .iter()
            .filter(|c| chain.contains(&c.life))
            .map(|c| c.ev.ts_ns)
            .max()
            .unwrap_or(0)
    };
    loop {
        let mut grew = false;
        for s in &starts {
            // A copy starts at once; the same headers much later are a new
            // send (a retransmission), not this packet.
            let near = s.ev.ts_ns <= last_ts(&chain) + COPY_WINDOW_NS;
            if !chain.contains(&s.life) && near && sigs.contains(&signature(s)) {
                chain.insert(s.life);
                sigs.extend(
                    cands
                        .iter()
                        .filter(|c| c.life == s.life)
                        .map(|c| signature(c)),
                );
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    cands
        .into_iter()
        .filter(|s| chain.contains(&s.life))
        .collect()
}

/// Flattens a life into tokens: each event's stack, outermost frame first,
/// then the hook.
pub fn tokens(life: &[&Step]) -> Vec<Token> {
    let mut out = vec![];
    for s in life {
        for f in s.ev.stack.iter().rev() {
            out.push(Token {
                func: strip_suffix(f).to_string(),
                ns: s.ns.clone(),
                dev: s.dev.clone(),
                is_hook: false,
            });
        }
        out.push(Token {
            func: s.ev.hook.to_string(),
            ns: s.ns.clone(),
            dev: s.dev.clone(),
            is_hook: true,
        });
    }
    out
}

/// `__netif_receive_skb_core.constprop.0` → `__netif_receive_skb_core`:
/// compiler clones keep their function's name for matching.
pub fn strip_suffix(f: &str) -> &str {
    f.split_once('.').map_or(f, |(a, _)| a)
}

fn step_matches(step: &PathStep, t: &Token) -> bool {
    step.func == t.func
        && step.ns.as_ref().is_none_or(|n| *n == t.ns)
        && step.dev.as_ref().is_none_or(|d| *d == t.dev)
}

/// Matches `path` as an ordered subsequence of `tokens`. On failure returns
/// the index of the first step that could not be found.
pub fn match_path(path: &[PathStep], tokens: &[Token]) -> Result<(), usize> {
    let mut i = 0;
    for (n, step) in path.iter().enumerate() {
        match tokens[i..].iter().position(|t| step_matches(step, t)) {
            Some(p) => i += p + 1,
            None => return Err(n),
        }
    }
    Ok(())
}

/// Frames that say nothing about the packet's path (syscall entry).
fn is_entry_frame(f: &str) -> bool {
    f.starts_with("entry_SYSCALL")
        || f == "do_syscall_64"
        || f == "x64_sys_call"
        || f.starts_with("__x64_sys_")
        || f.starts_with("__do_sys_")
        || f == "ret_from_fork"
        || f == "ret_from_fork_asm"
        || f == "kthread"
}

/// A readable path: functions in order of first appearance, entry frames
/// dropped, hooks marked with their place (`hook@ns/dev`).
pub fn compact_path(tokens: &[Token]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    for t in tokens {
        if is_entry_frame(&t.func) {
            continue;
        }
        let text = if t.is_hook {
            format!("{}@{}/{}", t.func, t.ns, t.dev)
        } else {
            t.func.clone()
        };
        if seen.insert(text.clone()) {
            out.push(text);
        }
    }
    out
}

/// What the trace says about one packet.
pub fn facts(life: &[&Step]) -> Facts {
    let mut f = Facts {
        skb: life.first().map(|s| s.ev.skb),
        ..Default::default()
    };
    // Namespaces the skb was received in. `ip_forward` itself is rarely on
    // a stack (tail calls; a packet waiting for ARP leaves from the ARP
    // reply's context), so forwarding is judged by behaviour: received by a
    // namespace, then transmitted by that namespace.
    let mut received_in: Vec<&str> = vec![];
    for s in life {
        let frames: Vec<&str> = s.ev.stack.iter().map(|x| strip_suffix(x)).collect();
        if RECEIVE.contains(&s.ev.hook) && !received_in.contains(&s.ns.as_str()) {
            received_in.push(&s.ns);
        }
        if XMIT.contains(&s.ev.hook) && received_in.contains(&s.ns.as_str()) {
            f.forwarded = true;
            let place = format!("{}/{}", s.ns, s.dev);
            if !f.transmitted.contains(&place) {
                f.transmitted.push(place);
            }
        }
        match s.ev.hook {
            // The last end in time is the packet's fate; an earlier one
            // belongs to a copy the packet left behind.
            "kfree_skb" => {
                f.dropped = true;
                f.consumed = false;
                f.reason = s.ev.reason.clone();
                f.at = s.ev.at.as_deref().map(|a| strip_suffix(a).to_string());
            }
            "consume_skb" => {
                f.consumed = true;
                f.dropped = false;
                f.reason = None;
                f.at = s.ev.at.as_deref().map(|a| strip_suffix(a).to_string());
                if frames.iter().any(|x| SOCKET_RECEIVE.contains(x)) {
                    f.delivered = true;
                }
            }
            // A socket read it, or changed state because of it.
            "skb_copy_datagram_iovec" | "inet_sock_set_state" | crate::collect::SOCKET_READ => {
                f.delivered = true
            }
            _ => {}
        }
    }
    // A consume in __neigh_event_send that ends the trace is the packet (or
    // its copy) being queued until ARP/ND resolves the next hop: not an end.
    if let Some(last) = life.last() {
        if f.consumed
            && last.ev.hook == "consume_skb"
            && f.at.as_deref() == Some("__neigh_event_send")
        {
            f.consumed = false;
            f.at = None;
            f.last_seen = Some(format!(
                "waiting for neighbour resolution (ARP/ND) on {}/{}",
                last.ns, last.dev
            ));
        }
    }
    if !f.dropped && !f.consumed && f.last_seen.is_none() {
        f.last_seen = life
            .last()
            .map(|s| format!("{}@{}/{}", s.ev.hook, s.ns, s.dev));
    }
    f
}

/// Does a step's event (or one of its stack frames) match `step`?
fn event_matches(step: &PathStep, s: &Step) -> bool {
    let place = step.ns.as_ref().is_none_or(|n| *n == s.ns)
        && step.dev.as_ref().is_none_or(|d| *d == s.dev);
    place && (s.ev.hook == step.func || s.ev.stack.iter().any(|f| strip_suffix(f) == step.func))
}

/// Checks one `seen` entry against a life; `None` when it holds.
fn check_seen(want: &Seen, life: &[&Step]) -> Option<Mismatch> {
    let at: Vec<&&Step> = life.iter().filter(|s| event_matches(&want.at, s)).collect();
    let fits = |s: &Step| {
        let p = &s.ev.packet;
        want.src.is_none_or(|a| p.src == Some(a))
            && want.dst.is_none_or(|a| p.dst == Some(a))
            && want.sport.is_none_or(|v| p.sport == v)
            && want.dport.is_none_or(|v| p.dport == v)
            && want.ttl.is_none_or(|v| p.ttl == v)
    };
    if at.iter().any(|s| fits(s)) {
        return None;
    }
    let mut expected = vec![];
    if let Some(a) = want.src {
        expected.push(format!("src {a}"));
    }
    if let Some(a) = want.dst {
        expected.push(format!("dst {a}"));
    }
    if let Some(v) = want.sport {
        expected.push(format!("sport {v}"));
    }
    if let Some(v) = want.dport {
        expected.push(format!("dport {v}"));
    }
    if let Some(v) = want.ttl {
        expected.push(format!("ttl {v}"));
    }
    let actual = if at.is_empty() {
        format!("the packet never reached `{}`", want.at)
    } else {
        at.iter()
            .map(|s| format!("{} ttl {}", s.ev.packet.tuple(), s.ev.packet.ttl))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(Mismatch {
        what: format!("seen at {}", want.at),
        expected: expected.join(", "),
        actual,
    })
}

/// Compares one skb's life with expectations.
fn judge(e: &Expectation, life: &[&Step]) -> (Facts, Vec<Mismatch>, Vec<String>) {
    let f = facts(life);
    let toks = tokens(life);
    let path = compact_path(&toks);
    let mut mm = vec![];
    let actual = f.summary();
    if let Some(want) = e.fate {
        if !f.has(want) {
            mm.push(Mismatch {
                what: "fate".into(),
                expected: want.to_string(),
                actual: actual.clone(),
            });
        }
    }
    if let Some(want) = &e.reason {
        if f.reason.as_deref() != Some(want.as_str()) || !f.dropped {
            mm.push(Mismatch {
                what: "reason".into(),
                expected: want.clone(),
                actual: if f.dropped {
                    f.reason.clone().unwrap_or_else(|| "?".into())
                } else {
                    format!("not dropped: {actual}")
                },
            });
        }
    }
    if let Some(want) = &e.at {
        if f.at.as_deref() != Some(want.as_str()) {
            mm.push(Mismatch {
                what: "at".into(),
                expected: want.clone(),
                actual: f
                    .at
                    .clone()
                    .unwrap_or_else(|| format!("no free seen: {actual}")),
            });
        }
    }
    if let Err(n) = match_path(&e.path, &toks) {
        let shown: Vec<String> = e.path.iter().map(ToString::to_string).collect();
        let after = if n == 0 {
            "from the start".to_string()
        } else {
            format!("after `{}`", shown[n - 1])
        };
        mm.push(Mismatch {
            what: "path".into(),
            expected: shown.join(" -> "),
            actual: format!(
                "`{}` not found {after}; the skb went: {}",
                shown[n],
                path.join(" -> ")
            ),
        });
    }
    for want in &e.seen {
        if let Some(m) = check_seen(want, life) {
            mm.push(m);
        }
    }
    for step in &e.not_path {
        if let Some(t) = toks.iter().find(|t| step_matches(step, t)) {
            mm.push(Mismatch {
                what: "not_path".into(),
                expected: format!("no `{step}`"),
                actual: format!("`{}` at {}/{}", t.func, t.ns, t.dev),
            });
        }
    }
    for want in &e.transmitted {
        let hit = life.iter().any(|s| {
            XMIT.contains(&s.ev.hook)
                && s.ns == want.ns
                && (want.dev.is_empty() || s.dev == want.dev)
        });
        if !hit {
            let out: Vec<String> = life
                .iter()
                .filter(|s| XMIT.contains(&s.ev.hook))
                .map(|s| format!("{}/{}", s.ns, s.dev))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            mm.push(Mismatch {
                what: "transmitted".into(),
                expected: if want.dev.is_empty() {
                    want.ns.clone()
                } else {
                    format!("{}/{}", want.ns, want.dev)
                },
                actual: if out.is_empty() {
                    "never transmitted".into()
                } else {
                    format!("transmitted on {}", out.join(", "))
                },
            });
        }
    }
    (f, mm, path)
}

/// ICMP errors the kernel generated about packet `i`: `icmp_send` events on
/// its life (IPv4) and ICMP/ICMPv6 error packets flowing back.
pub fn icmp_errors(tl: &Timeline, packet: usize, life: &[&Step]) -> Vec<(u8, u8, String)> {
    let mut out = vec![];
    for s in life.iter().filter(|s| s.ev.hook == "icmp_send") {
        out.push((
            s.ev.aux[0] as u8,
            s.ev.aux[1] as u8,
            format!("icmp_send@{}/{}", s.ns, s.dev),
        ));
    }
    let mut lives = HashSet::new();
    for s in tl
        .steps
        .iter()
        .filter(|s| s.packet == Some(packet) && s.reverse)
    {
        let p = &s.ev.packet;
        if crate::abi::is_icmp_error(p.proto, p.icmp_type) && lives.insert(s.life) {
            out.push((
                p.icmp_type,
                p.icmp_code,
                format!(
                    "{} from {}",
                    if p.proto == 58 { "ICMPv6" } else { "ICMP" },
                    s.ns
                ),
            ));
        }
    }
    out
}

/// Checks counter deltas; `before`/`after` are per namespace.
pub fn check_counters(
    s: &Scenario,
    before: &std::collections::BTreeMap<String, Counters>,
    after: &std::collections::BTreeMap<String, Counters>,
) -> Vec<Mismatch> {
    let mut out = vec![];
    for c in &s.counters {
        let get = |m: &std::collections::BTreeMap<String, Counters>| {
            m.get(&c.ns).and_then(|x| x.get(&c.name)).copied()
        };
        let (Some(b), Some(a)) = (get(before), get(after)) else {
            out.push(Mismatch {
                what: format!("counter {}/{}", c.ns, c.name),
                expected: c.delta.to_string(),
                actual: "no such counter in /proc/net/{snmp,netstat,snmp6}".into(),
            });
            continue;
        };
        let d = a - b;
        let ok = match c.delta {
            crate::scenario::Delta::Exactly(n) => d == n,
            crate::scenario::Delta::AtLeast(n) => d >= n,
        };
        if !ok {
            // What did move there, to point at the right counter.
            let moved: Vec<String> = match (before.get(&c.ns), after.get(&c.ns)) {
                (Some(b), Some(a)) => a
                    .iter()
                    .filter_map(|(k, v)| {
                        let d = v - b.get(k).copied().unwrap_or(0);
                        (d != 0).then(|| format!("{k} {d:+}"))
                    })
                    .collect(),
                _ => vec![],
            };
            out.push(Mismatch {
                what: format!("counter {}/{}", c.ns, c.name),
                expected: c.delta.to_string(),
                actual: if moved.is_empty() {
                    format!("{d:+} ({b} -> {a}); no counter changed in `{}`", c.ns)
                } else {
                    format!(
                        "{d:+} ({b} -> {a}); changed in `{}`: {}",
                        c.ns,
                        moved.join(", ")
                    )
                },
            });
        }
    }
    out
}

/// Judges every packet of the scenario against the timeline.
pub fn evaluate(s: &Scenario, tl: &Timeline) -> Verdict {
    let mut trace_problems = vec![];
    if tl.lost > 0 {
        trace_problems.push(format!(
            "{} tracer event(s) were lost in the kernel (ring buffer full); the trace is incomplete",
            tl.lost
        ));
    }
    if let Some(cap) = tl.capped {
        trace_problems.push(format!(
            "more than {cap} events for this scenario: collection stopped there. A scenario's own packets make far fewer; set --max-events (or PKTFATE_MAX_EVENTS) higher if this traffic is expected"
        ));
    } else if !tl.settled {
        trace_problems.push(format!(
            "timed out after {} ms before every injected packet was seen and every tracked skb was freed",
            tl.waited.as_millis()
        ));
    }
    let mut packets = vec![];
    for (i, p) in s.packets.iter().enumerate() {
        let l = life(tl, i);
        let (facts, mut mismatches, path) = judge(&p.expect, &l);
        if let Some(want) = p.expect.icmp {
            let got = icmp_errors(tl, i, &l);
            let ok = got
                .iter()
                .any(|(t, c, _)| *t == want.kind && want.code.is_none_or(|w| w == *c));
            if !ok {
                mismatches.push(Mismatch {
                    what: "icmp".into(),
                    expected: match want.code {
                        Some(c) => format!("type {} code {c}", want.kind),
                        None => format!("type {}", want.kind),
                    },
                    actual: if got.is_empty() {
                        "no ICMP error was generated".into()
                    } else {
                        got.iter()
                            .map(|(t, c, w)| format!("type {t} code {c} ({w})"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                });
            }
        }
        if p.expect.no_unexpected_drops {
            // Every drop of this packet's skbs, either way, must be the
            // expected one or an allowed reason. A sender that resends the
            // packet (a TCP SYN after its 1 s RTO, which a slow machine's
            // collection window can reach) has the copy dropped the same
            // way, at the same place: that is the fate again, not another drop.
            let judged = l.iter().rev().find(|x| x.ev.hook == "kfree_skb");
            let same_drop_again = |st: &Step| {
                judged.is_some_and(|d| {
                    !st.reverse
                        && d.ev.reason == st.ev.reason
                        && d.ev.at == st.ev.at
                        && (d.ns.as_str(), d.dev.as_str()) == (st.ns.as_str(), st.dev.as_str())
                })
            };
            for st in tl
                .steps
                .iter()
                .filter(|st| st.packet == Some(i) && st.ev.hook == "kfree_skb")
            {
                let r = st.ev.reason.clone().unwrap_or_default();
                let expected = p.expect.fate == Some(Fate::Dropped)
                    && facts.skb.is_some()
                    && p.expect.reason.as_deref().is_none_or(|w| w == r)
                    && !st.reverse
                    && (l.iter().any(|x| std::ptr::eq(*x, st)) || same_drop_again(st));
                if !expected && !p.expect.allow_drops.contains(&r) {
                    mismatches.push(Mismatch {
                        what: "no_unexpected_drops".into(),
                        expected: if p.expect.allow_drops.is_empty() {
                            "no other drops".into()
                        } else {
                            format!("only drops for {}", p.expect.allow_drops.join(", "))
                        },
                        actual: format!(
                            "{} dropped ({r}) at {} in {}/{}",
                            st.ev.packet.tuple(),
                            st.ev.at.as_deref().unwrap_or("?"),
                            st.ns,
                            st.dev
                        ),
                    });
                }
            }
        }
        if let Some(reply) = &p.expect.reply {
            let rl = life_of(tl, i, true);
            let (rf, rm, _) = judge(reply, &rl);
            if rf.skb.is_none() {
                mismatches.push(Mismatch {
                    what: "reply".into(),
                    expected: "a packet flowing back".into(),
                    actual: "no reply was traced".into(),
                });
            }
            for mut m in rm {
                m.what = format!("reply {}", m.what);
                mismatches.push(m);
            }
        }
        packets.push(PacketVerdict {
            name: p.name.clone(),
            facts,
            mismatches,
            path,
        });
    }
    Verdict {
        packets,
        trace_problems,
        counters: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_step;

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
}
