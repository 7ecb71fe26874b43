//! Netfilter rule evaluations, attributed to the scenario's packets.

use super::step::Step;
use crate::common::hook::Hook;
use crate::tracer::FlowFilter;
use crate::tracer::nftrace::{NfHook, RuleEval};

/// A rule evaluation and the scenario packet it belongs to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleStep {
    /// The evaluation.
    #[serde(flatten)]
    pub eval: RuleEval,
    /// The scenario packet (`packet_index` in JSON, as for kernel events).
    #[serde(rename = "packet_index")]
    pub packet: Option<usize>,
    /// True when the packet flows the other way (a reply).
    pub reverse: bool,
    /// Where it happened among the kernel events: the index of the first
    /// timeline step that came after it (none: after the last).
    #[serde(rename = "before_step", skip_serializing_if = "Option::is_none")]
    pub before: Option<usize>,
}

/// The headers that identify a packet's evaluations.
type Tuple = (
    Option<std::net::IpAddr>,
    Option<std::net::IpAddr>,
    u8,
    u16,
    u16,
);

fn tuple(p: &crate::tracer::PacketInfo) -> Tuple {
    (p.src, p.dst, p.proto, p.sport, p.dport)
}

/// Each evaluation with the packet it belongs to: first by the headers
/// the tracer saw that packet's skbs carry (`seen`: packet index, reply
/// or not, headers; after a tc rewrite or a DNAT too, which the flow
/// filters no longer match), then by the filters that attribute kernel
/// events (forward or back).
pub fn attribute_rules<'a>(
    evals: Vec<RuleEval>,
    filters: &[(usize, FlowFilter)],
    seen: impl IntoIterator<Item = (usize, bool, &'a crate::tracer::PacketInfo)>,
) -> Vec<RuleStep> {
    let mut by_headers: std::collections::HashMap<Tuple, (usize, bool)> =
        std::collections::HashMap::new();
    for (i, reverse, p) in seen {
        if p.src.is_some() {
            by_headers.entry(tuple(p)).or_insert((i, reverse));
        }
    }
    evals
        .into_iter()
        .map(|eval| {
            let (packet, reverse) = by_headers
                .get(&tuple(&eval.packet))
                .map(|&(i, r)| (Some(i), r))
                .or_else(|| {
                    filters
                        .iter()
                        .find_map(|(i, f)| f.direction(&eval.packet).map(|r| (Some(*i), r)))
                })
                .unwrap_or((None, false));
            RuleStep {
                eval,
                packet,
                reverse,
                before: None,
            }
        })
        .collect()
}

/// Where a kernel event happens in a packet's crossing of a namespace,
/// by stage: received, routed, delivered locally, transmitted. `None`
/// for events that say nothing of the stage (a drop, a probed function).
/// A route lookup made past the input or forward hook (a SYN's answer
/// routed while the SYN is delivered, or inside a hook) is told by its
/// stack: frames of the local-delivery or forward path, or of a hook,
/// above it, below the receive that started this crossing.
fn stage(s: &Step) -> Option<u8> {
    // `nf_hook_slow`: made inside a hook (a REJECT's RST routed while its
    // rule runs), so after that hook's evaluations began.
    const PAST_HOOK: [&str; 5] = [
        "ip_local_deliver_finish",
        "ip6_input_finish",
        "ip_forward_finish",
        "ip6_forward_finish",
        "nf_hook_slow",
    ];
    let past_hook = || {
        s.ev.stack
            .iter()
            .take_while(|f| !f.starts_with("__netif_receive_skb") && *f != "process_backlog")
            .any(|f| PAST_HOOK.contains(&f.as_str()))
    };
    match hook_stage_of(s.ev.hook) {
        Some(b) if b < 4 && past_hook() => Some(4),
        b => b,
    }
}

/// [`stage`] by the hook alone.
fn hook_stage_of(h: Hook) -> Option<u8> {
    Some(match h {
        Hook::NetifReceiveSkb
        | Hook::NetifRx
        | Hook::NetifReceiveSkbEntry
        | Hook::NapiGroReceiveEntry
        | Hook::TcfClassify => 0,
        Hook::FibTableLookup | Hook::Fib6TableLookup => 2,
        Hook::ConsumeSkb
        | Hook::SkbCopyDatagramIovec
        | Hook::InetSockSetState
        | Hook::TcpSendReset
        | Hook::IcmpSend
        | Hook::SocketRead => 4,
        Hook::NetDevQueue | Hook::NetDevStartXmit | Hook::NetDevXmit => 6,
        Hook::KfreeSkb | Hook::Function(_) | Hook::Functions | Hook::ProgReturn => return None,
    })
}

/// Where a netfilter hook runs on the same scale as [`stage`]: ingress
/// and prerouting after the receive, before the route lookup; input and
/// forward after it (a locally generated packet's output too: its route
/// is looked up first); postrouting and egress before the transmit.
fn hook_stage(h: NfHook) -> u8 {
    match h {
        NfHook::Ingress | NfHook::Prerouting => 1,
        NfHook::Input | NfHook::Forward | NfHook::Output => 3,
        NfHook::Postrouting | NfHook::Egress => 5,
    }
}

/// Places each attributed evaluation among the kernel events (sets
/// [`RuleStep::before`]). Rule traces carry no time, so the place comes
/// from where the kernel runs each hook: among the same packet's events
/// in the same namespace, an evaluation goes after the events of stages
/// up to its hook's (the receive before prerouting, the route lookup
/// before input or forward) and before the rest (the transmit after
/// postrouting, the drop of a packet a rule dropped). A namespace's
/// evaluations keep their kernel order. A new trace id is a new skb (the
/// next segment of a connection): its evaluations go with the next skb
/// of the packet's events there; none left, they stay unplaced.
pub fn place_rules(rules: &mut [RuleStep], steps: &[Step]) {
    use std::collections::{HashMap, HashSet};
    /// How far into a packet's events in a namespace placement has got.
    struct Cursor {
        at: usize,
        reached: u8,
        id: u32,
        /// The skbs (address, life) of the events passed.
        passed: HashSet<(u64, u64)>,
    }
    let mut cursors: HashMap<(String, usize, bool), Cursor> = HashMap::new();
    for r in rules.iter_mut() {
        let (Some(p), Some(h)) = (r.packet, r.eval.hook) else {
            continue;
        };
        let mine: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.packet == Some(p) && s.reverse == r.reverse && s.ns == r.eval.ns)
            .map(|(i, _)| i)
            .collect();
        let skb = |at: usize| (steps[mine[at]].ev.skb, steps[mine[at]].life);
        let want = hook_stage(h);
        let c = cursors
            .entry((r.eval.ns.clone(), p, r.reverse))
            .or_insert(Cursor {
                at: 0,
                reached: 0,
                id: r.eval.id,
                passed: HashSet::new(),
            });
        if c.id != r.eval.id {
            // Another skb: past the events of those already placed.
            while c.at < mine.len() && c.passed.contains(&skb(c.at)) {
                c.at += 1;
            }
            if c.at == mine.len() {
                continue;
            }
            c.id = r.eval.id;
            c.reached = 0;
        } else if want < c.reached {
            // The same skb at an earlier hook: its next crossing of this
            // namespace, past the transmit of this one.
            while c.at < mine.len() && stage(&steps[mine[c.at]]) != Some(0) {
                c.passed.insert(skb(c.at));
                c.at += 1;
            }
            c.reached = 0;
        }
        let start = c.at;
        let fresh = c.reached == 0;
        while c.at < mine.len() {
            match stage(&steps[mine[c.at]]) {
                Some(s) if s > want => break,
                Some(s) => c.reached = c.reached.max(s),
                // A drop ends the packet here: what a rule decided came
                // before it.
                None if steps[mine[c.at]].ev.hook == Hook::KfreeSkb => break,
                None => {}
            }
            c.passed.insert(skb(c.at));
            c.at += 1;
        }
        c.reached = c.reached.max(want);
        // Right after the last event it follows (the one the previous
        // evaluation of this crossing followed, when it passed none); at
        // a crossing's start, before its first event.
        r.before = match mine.get(c.at) {
            Some(&next) if c.at == start && (fresh || c.at == 0) => Some(next),
            _ if c.at > 0 => Some(mine[c.at - 1] + 1).filter(|&n| n < steps.len()),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::nftrace::{EvalKind, NfVerdict};

    fn step(hook: &'static str, ns: &str) -> Step {
        let mut s = super::super::step::sample_step(0x10, hook, &[], ns, "eth0");
        s.packet = Some(0);
        s
    }

    fn eval(ns: &str, chain: &str, hook: NfHook, verdict: NfVerdict) -> RuleStep {
        RuleStep {
            eval: RuleEval {
                ns: ns.into(),
                family: "inet".into(),
                table: "t".into(),
                chain: chain.into(),
                handle: None,
                rule: None,
                kind: EvalKind::Policy,
                verdict,
                target: None,
                hook: Some(hook),
                id: 7,
                packet: crate::tracer::PacketInfo::default(),
                ct_state: None,
            },
            packet: Some(0),
            reverse: false,
            before: None,
        }
    }

    #[test]
    fn evaluations_go_where_the_kernel_runs_their_hooks() {
        // A packet forwarded by `router` (received, routed, sent), then
        // dropped by a rule at `server`'s input hook, after its route
        // lookup chose local delivery.
        let steps = vec![
            step("net_dev_start_xmit", "client"), // 0
            step("netif_receive_skb", "router"),  // 1
            step("fib_table_lookup", "router"),   // 2
            step("net_dev_start_xmit", "router"), // 3
            step("netif_receive_skb", "server"),  // 4
            step("fib_table_lookup", "server"),   // 5
            step("kfree_skb", "server"),          // 6
        ];
        let accept = NfVerdict::Accept;
        let mut rules = vec![
            eval("router", "pre", NfHook::Prerouting, accept),
            eval("router", "fwd", NfHook::Forward, accept),
            eval("router", "post", NfHook::Postrouting, accept),
            eval("server", "in", NfHook::Input, accept),
            eval("server", "in2", NfHook::Input, NfVerdict::Drop),
        ];
        place_rules(&mut rules, &steps);
        let at: Vec<Option<usize>> = rules.iter().map(|r| r.before).collect();
        assert_eq!(at, [Some(2), Some(3), Some(3), Some(6), Some(6)]);
    }

    #[test]
    fn a_second_crossing_and_an_unplaceable_evaluation() {
        // The packet crosses `router` twice (hairpin); its second
        // prerouting evaluation belongs to the second crossing. Another
        // packet's evaluation, or one without a hook, is not placed.
        let steps = vec![
            step("netif_receive_skb", "router"), // 0
            step("fib_table_lookup", "router"),  // 1
            step("net_dev_xmit", "router"),      // 2
            step("netif_receive_skb", "router"), // 3
            step("fib_table_lookup", "router"),  // 4
            step("consume_skb", "router"),       // 5
        ];
        let accept = NfVerdict::Accept;
        let mut rules = vec![
            eval("router", "pre", NfHook::Prerouting, accept),
            eval("router", "post", NfHook::Postrouting, accept),
            eval("router", "pre", NfHook::Prerouting, accept),
            eval("router", "in", NfHook::Input, accept),
            eval("router", "x", NfHook::Input, accept),
            eval("router", "y", NfHook::Input, accept),
        ];
        rules[4].packet = Some(1);
        rules[5].eval.hook = None;
        place_rules(&mut rules, &steps);
        let at: Vec<Option<usize>> = rules.iter().map(|r| r.before).collect();
        assert_eq!(at, [Some(1), Some(2), Some(4), Some(5), None, None]);
    }

    #[test]
    fn a_new_trace_id_is_the_next_skb_of_the_packet() {
        // A connection to the server: the SYN is accepted at input and
        // answered (the SYN-ACK, a reply, goes out before the SYN is
        // freed); then the handshake's ACK, another skb with another
        // trace id, is accepted at input too. A third skb traced but not
        // in the timeline stays unplaced.
        let mut syn_ack = step("net_dev_xmit", "server");
        syn_ack.reverse = true;
        let ack = |hook| {
            let mut s = step(hook, "server");
            s.ev.skb = 0x20;
            s
        };
        let steps = vec![
            step("netif_receive_skb", "server"), // 0
            step("fib_table_lookup", "server"),  // 1
            syn_ack,                             // 2
            step("consume_skb", "server"),       // 3
            ack("netif_receive_skb"),            // 4
            ack("fib_table_lookup"),             // 5
            ack("inet_sock_set_state"),          // 6
        ];
        let accept = NfVerdict::Accept;
        let mut rules = vec![
            eval("server", "in", NfHook::Input, accept),
            eval("server", "in", NfHook::Input, accept),
            eval("server", "in", NfHook::Input, accept),
        ];
        rules[1].eval.id = 8;
        rules[2].eval.id = 9;
        place_rules(&mut rules, &steps);
        let at: Vec<Option<usize>> = rules.iter().map(|r| r.before).collect();
        assert_eq!(at, [Some(2), Some(6), None]);
    }

    #[test]
    fn a_route_lookup_made_inside_a_hook_comes_after_its_evaluations() {
        // REJECT routes its RST while the input hook runs: that lookup's
        // stack has nf_hook_slow above it, below the receive.
        let inside = {
            let mut s = step("fib_table_lookup", "server");
            s.ev.stack = [
                "fib_table_lookup",
                "nf_send_reset",
                "nft_do_chain",
                "nf_hook_slow",
            ]
            .iter()
            .chain(["ip_local_deliver", "__netif_receive_skb_one_core"].iter())
            .map(std::string::ToString::to_string)
            .collect();
            s
        };
        let steps = vec![
            step("netif_receive_skb", "server"), // 0
            step("fib_table_lookup", "server"),  // 1
            inside,                              // 2
            step("kfree_skb", "server"),         // 3
        ];
        let mut rules = vec![eval("server", "in", NfHook::Input, NfVerdict::Drop)];
        place_rules(&mut rules, &steps);
        assert_eq!(rules[0].before, Some(2));
    }
}
