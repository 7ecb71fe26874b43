//! Facts extracted from a life: fate, drop reason and function, the path
//! as tokens, ICMP errors generated about the packet.

use std::collections::HashSet;

use crate::collect::{Step, Timeline};
use crate::common::Hook;
use crate::scenario::Fate;

/// Functions whose presence on the stack at `consume_skb` means a socket
/// took the packet (the transport layer's receive paths).
pub(super) const SOCKET_RECEIVE: [&str; 10] = [
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
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the fates are not exclusive: a packet can be forwarded, then dropped"
)]
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
    /// How its protocol frees what it took without a tracepoint (TCP's
    /// `__kfree_skb`, UDP's `skb_consume_udp`): where its end could be.
    pub untraced_end: Option<String>,
    /// The scenario program whose return code dropped it (`XDP_DROP`,
    /// `TC_ACT_SHOT`), as the timeline writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_by: Option<String>,
    /// The netfilter rule or chain policy whose verdict dropped it, as
    /// [`crate::tracer::nftrace::RuleEval::describe`] words it with its
    /// namespace, where the scenario's rules were traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_by_rule: Option<String>,
    /// The route lookup that decided its drop (an unreachable, blackhole
    /// or prohibit route; `rp_filter`'s reverse route), as
    /// [`crate::tracer::RouteLookup::describe`] words it with its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_by_route: Option<String>,
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
            // A program's return code, else the netfilter rule or the route
            // that dropped.
            let by = self
                .dropped_by
                .as_deref()
                .or(self.dropped_by_rule.as_deref())
                .or(self.dropped_by_route.as_deref());
            parts.push(match (&self.reason, &self.at, by) {
                // An XDP program dropped a frame no skb held: no free.
                (None, None, Some(by)) => format!("dropped by {by}"),
                (reason, at, by) => format!(
                    "dropped ({}) at {}{}",
                    reason.as_deref().unwrap_or("?"),
                    at.as_deref().unwrap_or("?"),
                    by.map(|b| format!(", by {b}")).unwrap_or_default()
                ),
            });
        } else if self.consumed && !self.delivered {
            parts.push(format!("consumed at {}", self.at.as_deref().unwrap_or("?")));
        }
        // A socket taking the packet is an end, even when its free is not
        // traced (TCP, UDP).
        if !self.dropped && !self.consumed && !self.delivered {
            match self.last_seen.as_deref() {
                Some(w) if w.starts_with("waiting") => parts.push(w.to_string()),
                w => parts.push(match &self.untraced_end {
                    Some(f) => format!(
                        "no end seen (last at {}; {f}, which has no tracepoint: a probe there would show this end)",
                        w.unwrap_or("?")
                    ),
                    None => format!("no end seen (last at {})", w.unwrap_or("?")),
                }),
            }
        }
        parts.join(", then ")
    }

    pub(super) fn has(&self, f: Fate) -> bool {
        match f {
            Fate::Dropped => self.dropped,
            Fate::Consumed => self.consumed,
            Fate::Delivered => self.delivered,
            Fate::Forwarded => self.forwarded,
        }
    }
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
            func: s.ev.hook.name().to_string(),
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
        if s.ev.hook.is_receive() && !received_in.contains(&s.ns.as_str()) {
            received_in.push(&s.ns);
        }
        if s.ev.hook.is_transmit() && received_in.contains(&s.ns.as_str()) {
            f.forwarded = true;
            let place = format!("{}/{}", s.ns, s.dev);
            if !f.transmitted.contains(&place) {
                f.transmitted.push(place);
            }
        }
        match s.ev.hook {
            // The last end in time is the packet's fate; an earlier one
            // belongs to a copy the packet left behind.
            Hook::KfreeSkb => {
                f.dropped = true;
                f.consumed = false;
                f.reason = s.ev.reason.clone();
                f.at = s.ev.at.as_deref().map(|a| strip_suffix(a).to_string());
            }
            Hook::ConsumeSkb => {
                f.consumed = true;
                f.dropped = false;
                f.dropped_by = None;
                f.reason = None;
                f.at = s.ev.at.as_deref().map(|a| strip_suffix(a).to_string());
                if frames.iter().any(|x| SOCKET_RECEIVE.contains(x)) {
                    f.delivered = true;
                }
            }
            // A socket read it, or changed state because of it.
            h if h.is_socket() => {
                f.delivered = true;
            }
            Hook::ProgReturn => {
                if let Some(run) = s.ev.program.as_ref().filter(|r| r.returned.drops()) {
                    f.dropped_by = Some(run.describe());
                    // No skb: the program's return is the end itself.
                    if s.ev.skb == 0 {
                        f.dropped = true;
                        f.consumed = false;
                        f.reason = None;
                        f.at = None;
                    }
                }
            }
            _ => {}
        }
    }
    // A consume in __neigh_event_send that ends the trace is the packet (or
    // its copy) being queued until ARP/ND resolves the next hop: not an end.
    if let Some(last) = life.last() {
        if f.consumed
            && last.ev.hook == Hook::ConsumeSkb
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
        // Where a protocol frees what it took without a tracepoint.
        f.untraced_end = life
            .last()
            .and_then(|s| match s.ev.packet.proto {
                6 => Some("TCP frees what it took with __kfree_skb"),
                17 => Some("UDP frees what it took with skb_consume_udp"),
                _ => None,
            })
            .map(String::from);
    }
    f
}

/// ICMP errors the kernel generated about packet `i`: `icmp_send` events on
/// its life (IPv4) and ICMP/ICMPv6 error packets flowing back.
pub fn icmp_errors(tl: &Timeline, packet: usize, life: &[&Step]) -> Vec<(u8, u8, String)> {
    let mut out = vec![];
    for s in life.iter().filter(|s| s.ev.hook == Hook::IcmpSend) {
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
