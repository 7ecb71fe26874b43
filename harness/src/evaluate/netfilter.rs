//! `netfilter:` expectations against the rule evaluations traced for a
//! packet: the deciding rule or policy, the chains, rules not matched.

use crate::collect::Timeline;
use crate::scenario::{CtState, NetfilterExpect, RuleMatch, RuleRef, names_chain};
use crate::tracer::nftrace::{EvalKind, NfVerdict, RuleEval, Ruleset};

use super::Mismatch;

/// Collapses runs of whitespace, so a rule reads the same however it was
/// written.
fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether two evaluations saw the same packet: the same protocol, TCP
/// flags and sequence, ICMP type and id, and one side of the tuple (a NAT
/// rewrites the other: a DNAT the destination, an SNAT the source); the
/// TTL aside, which forwarding lowers.
fn same_packet(a: &crate::tracer::PacketInfo, b: &crate::tracer::PacketInfo) -> bool {
    (a.proto, a.tcp_flags, a.tcp_seq, a.icmp_type, a.icmp_id)
        == (b.proto, b.tcp_flags, b.tcp_seq, b.icmp_type, b.icmp_id)
        && ((a.src, a.sport) == (b.src, b.sport) || (a.dst, a.dport) == (b.dst, b.dport))
}

/// The rule at `position` (1-based) of `e`'s chain, in `e`'s namespace.
fn rule_at<'a>(
    rulesets: &'a [(String, Ruleset)],
    e: &RuleEval,
    position: usize,
) -> Option<&'a crate::tracer::nftrace::RuleText> {
    let (_, r) = rulesets.iter().find(|(ns, _)| *ns == e.ns)?;
    r.get(&(e.family.clone(), e.table.clone(), e.chain.clone()))?
        .rules
        .get(position.checked_sub(1)?)
}

/// Whether `e` is the rule or policy `m` names (`rulesets`: the traced
/// rules, for positions).
fn matches(m: &RuleMatch, e: &RuleEval, rulesets: &[(String, Ruleset)]) -> bool {
    if m.ns.as_ref().is_some_and(|n| *n != e.ns) {
        return false;
    }
    (match (&m.rule, e.kind) {
        (RuleRef::Comment(c), EvalKind::Rule) => {
            e.rule.as_ref().and_then(|r| r.comment.as_ref()) == Some(c)
        }
        (RuleRef::Text(t), EvalKind::Rule) => e.rule.as_ref().is_some_and(|r| has_text(r, t)),
        (RuleRef::Policy(c), EvalKind::Policy) => names_chain(c, &e.family, &e.table, &e.chain),
        (RuleRef::Position { chain, position }, EvalKind::Rule) => {
            names_chain(chain, &e.family, &e.table, &e.chain)
                && rule_at(rulesets, e, *position).is_some_and(|r| Some(r.handle) == e.handle)
        }
        _ => false,
    }) && m.ct_state.is_none_or(|want| ct_state(e) == want)
}

/// The conntrack state the kernel reported at `e`'s hook: none reported
/// is `invalid` (the kernel leaves it out for an invalid packet; a
/// scenario asks only where conntrack runs, on a kernel that reports it).
fn ct_state(e: &RuleEval) -> CtState {
    e.ct_state.unwrap_or(CtState::Invalid)
}

/// Whether a rule's text, as nft or iptables-save prints it, contains
/// `t` (whitespace collapsed).
fn has_text(r: &crate::tracer::nftrace::RuleText, t: &str) -> bool {
    norm(&r.nft).contains(t) || r.iptables.as_deref().is_some_and(|i| norm(i).contains(t))
}

/// An evaluation as a failure names it: chain, rule (its comment), verdict,
/// namespace.
fn described(e: &RuleEval) -> String {
    let comment = e
        .rule
        .as_ref()
        .and_then(|r| r.comment.as_ref())
        .map(|c| format!(" (comment \"{c}\")"))
        .unwrap_or_default();
    let ct = e
        .ct_state
        .map(|s| format!(", ct state {}", s.name()))
        .unwrap_or_default();
    format!("{}{comment} in {}{ct}", e.describe(), e.ns)
}

/// The rule or policy of `rulesets` that `m` names, as a failure shows it
/// beside the one that decided; `None` when no rule is (a renamed
/// comment, a rule no longer loaded). Also what a scenario's references
/// are checked against before anything is built.
pub fn find(m: &RuleMatch, rulesets: &[(String, Ruleset)]) -> Option<String> {
    rulesets
        .iter()
        .filter(|(ns, _)| m.ns.as_ref().is_none_or(|n| n == ns))
        .find_map(|(ns, r)| {
            r.iter().find_map(|((family, table, chain), c)| {
                let at = format!("{family} {table} {chain} in {ns}");
                let text = |r: &crate::tracer::nftrace::RuleText| {
                    format!("`{}`, {at}", r.iptables.as_deref().unwrap_or(&r.nft))
                };
                match &m.rule {
                    RuleRef::Comment(want) => c
                        .rules
                        .iter()
                        .find(|r| r.comment.as_ref() == Some(want))
                        .map(text),
                    RuleRef::Text(t) => c.rules.iter().find(|r| has_text(r, t)).map(text),
                    RuleRef::Policy(p) => c
                        .policy
                        .as_ref()
                        .filter(|_| names_chain(p, family, table, chain))
                        .map(|pol| format!("policy {pol}, {at}")),
                    RuleRef::Position {
                        chain: want,
                        position,
                    } => position
                        .checked_sub(1)
                        .and_then(|i| c.rules.get(i))
                        .filter(|_| names_chain(want, family, table, chain))
                        .map(text),
                }
            })
        })
}

/// The evaluations of packet `i`'s own headers (its reply's when
/// `reverse`): not later segments of its flow (a TCP handshake's ACK), and
/// the TTL aside, which forwarding lowers.
pub fn packet_evals(tl: &Timeline, i: usize, reverse: bool) -> Vec<&RuleEval> {
    let flow: Vec<&RuleEval> = tl
        .rules
        .iter()
        .filter(|r| r.packet == Some(i) && r.reverse == reverse)
        .map(|r| &r.eval)
        .collect();
    flow.iter()
        .filter(|e| {
            flow.first()
                .is_some_and(|f| same_packet(&f.packet, &e.packet))
        })
        .copied()
        .collect()
}

/// The evaluations that decided the packet: its netfilter drop when it was
/// dropped there, else the final verdict of each hook it crossed.
pub fn deciding<'a>(evals: &[&'a RuleEval], dropped: bool) -> Vec<&'a RuleEval> {
    // (A packet something else dropped, rp_filter say, was decided by
    // netfilter like one it delivered.)
    match evals.iter().find(|e| e.verdict == NfVerdict::Drop) {
        Some(d) if dropped => vec![*d],
        _ => evals
            .iter()
            .filter(|e| e.verdict.is_final())
            .copied()
            .collect(),
    }
}

/// The rule or policy that dropped packet `i` (its reply when `reverse`),
/// as a drawing names it: `None` when netfilter did not drop it.
pub fn drop_rule(tl: &Timeline, i: usize, reverse: bool) -> Option<String> {
    packet_evals(tl, i, reverse)
        .into_iter()
        .find(|e| e.verdict == NfVerdict::Drop)
        .map(|e| format!("{} in {}", e.describe(), e.ns))
}

/// What the rule trace saw when no evaluation is the packet's, and why
/// that may be.
fn nothing_evaluated(tl: &Timeline) -> String {
    if tl.rules_traced.is_empty() {
        return "no namespace's rules were traced".into();
    }
    format!(
        "no rule of {} evaluated it (traced: {}){}",
        tl.rules_traced.join(", "),
        if tl.rules_lost.is_empty() {
            "nothing lost".to_string()
        } else {
            format!("messages lost in {}", tl.rules_lost.join(", "))
        },
        if tl.iptables_legacy {
            format!(
                "; the `iptables` on PATH is iptables-legacy, whose rules (a CNI plugin's, a \
                 `run:` command's) are not traced: switch to iptables-nft (`{}`)",
                crate::common::TO_IPTABLES_NFT
            )
        } else {
            String::new()
        }
    )
}

/// Judges `want` for packet `i` (its reply when `reverse`); `dropped`:
/// the packet's fate was a drop, so the drop is what decided.
pub(super) fn judge_netfilter(
    want: &NetfilterExpect,
    tl: &Timeline,
    i: usize,
    reverse: bool,
    dropped: bool,
) -> Vec<Mismatch> {
    let mut mm = vec![];
    let evals = packet_evals(tl, i, reverse);
    if evals.is_empty() {
        mm.push(Mismatch {
            what: "netfilter".into(),
            expected: "rule evaluations of this packet".into(),
            actual: nothing_evaluated(tl),
        });
        return mm;
    }
    if let Some(m) = &want.decided_by {
        // A dropped packet: the drop decided. Any other: each hook it
        // crossed had its own final verdict (prerouting's NAT, forward's
        // filter, ...); the rule named must be one of them.
        let finals = deciding(&evals, dropped);
        if !finals.iter().any(|d| matches(m, d, &tl.rulesets)) {
            let named = find(m, &tl.rulesets)
                .unwrap_or_else(|| "no such rule in the namespaces' rules".into());
            mm.push(Mismatch {
                what: "netfilter decided_by".into(),
                expected: format!(
                    "{} ({named}){}",
                    m.rule,
                    m.ct_state
                        .map(|s| format!(", ct state {}", s.name()))
                        .unwrap_or_default()
                ),
                actual: if finals.is_empty() {
                    "no rule or policy gave a final verdict".into()
                } else {
                    finals
                        .iter()
                        .map(|d| described(d))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            });
        }
    }
    if !want.traversed.is_empty() {
        let mut chains: Vec<&RuleEval> = vec![];
        for e in &evals {
            if chains
                .last()
                .is_none_or(|l| l.chain_name() != e.chain_name() || l.ns != e.ns)
            {
                chains.push(e);
            }
        }
        let mut next = 0;
        for e in &chains {
            if next < want.traversed.len()
                && names_chain(&want.traversed[next].name, &e.family, &e.table, &e.chain)
            {
                next += 1;
            }
        }
        if next < want.traversed.len() {
            mm.push(Mismatch {
                what: "netfilter traversed".into(),
                expected: want
                    .traversed
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" -> "),
                actual: chains
                    .iter()
                    .map(|e| e.chain_name())
                    .collect::<Vec<_>>()
                    .join(" -> "),
            });
        }
    }
    for m in &want.not_matched {
        if let Some(e) = evals.iter().find(|e| matches(m, e, &tl.rulesets)) {
            mm.push(Mismatch {
                what: "netfilter not_matched".into(),
                expected: format!("{} not matching", m.rule),
                actual: described(e),
            });
        }
    }
    if reverse {
        for m in &mut mm {
            m.what = format!("reply {}", m.what);
        }
    }
    mm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::RuleStep;
    use crate::scenario::Scenario;
    use crate::tracer::PacketInfo;
    use crate::tracer::nftrace::RuleText;

    const FILE: &str = "namespaces:\n  client:\n    links:\n      - { name: eth0, kind: veth, peer: { namespace: server, name: eth0 } }\n    addresses: [{ dev: eth0, addr: 198.51.100.30/24 }]\n  server:\n    addresses: [{ dev: eth0, addr: 198.51.100.31/24 }]\n    iptables: |\n      *filter\n      :INPUT DROP [0:0]\n      :BLOCK - [0:0]\n      -A INPUT -p tcp -j BLOCK\n      -A BLOCK -p tcp --dport 23 -m comment --comment \"no telnet\" -j DROP\n      COMMIT\ninject:\n  socket: { from: client, proto: tcp, to: 198.51.100.31, port: 22 }\nexpect:\n  fate: dropped\n  netfilter:\n    decided_by: { policy: ip filter INPUT }\n    traversed: [INPUT, BLOCK, INPUT]\n    not_matched: [{ comment: no telnet }]\n";

    fn eval(
        chain: &str,
        kind: EvalKind,
        verdict: NfVerdict,
        rule: Option<(u64, &str)>,
    ) -> RuleStep {
        RuleStep {
            eval: RuleEval {
                ns: "server".into(),
                family: "ip".into(),
                table: "filter".into(),
                chain: chain.into(),
                handle: rule.map(|r| r.0),
                rule: rule.map(|(handle, comment)| RuleText {
                    handle,
                    nft: format!("rule {handle}"),
                    comment: (!comment.is_empty()).then(|| comment.to_string()),
                    iptables: None,
                }),
                kind,
                verdict,
                target: None,
                hook: None,
                id: 1,
                packet: PacketInfo {
                    dport: 22,
                    ..PacketInfo::default()
                },
                ct_state: None,
            },
            packet: Some(0),
            reverse: false,
            before: None,
        }
    }

    fn judged(rules: Vec<RuleStep>) -> Vec<Mismatch> {
        let s = Scenario::parse(std::path::Path::new("t.yaml"), FILE).unwrap();
        let want = s.packets[0].expect.netfilter.clone().unwrap();
        let tl = Timeline {
            rules,
            rules_traced: vec!["server".into()],
            ..Default::default()
        };
        judge_netfilter(&want, &tl, 0, false, true)
    }

    #[test]
    fn the_drop_rule_is_the_evaluation_that_dropped_not_the_one_before() {
        // ssh: INPUT jumps to BLOCK, BLOCK's end returns, INPUT's policy
        // drops. The reply's evaluations (none here) are not this packet's.
        let tl = Timeline {
            rules: vec![
                eval("INPUT", EvalKind::Rule, NfVerdict::Jump, Some((4, ""))),
                eval("BLOCK", EvalKind::Return, NfVerdict::Continue, None),
                eval("INPUT", EvalKind::Policy, NfVerdict::Drop, None),
            ],
            ..Default::default()
        };
        assert_eq!(
            drop_rule(&tl, 0, false).as_deref(),
            Some("ip filter INPUT: policy -> drop in server")
        );
        assert_eq!(drop_rule(&tl, 0, true), None);
        // Accepted: nothing dropped it.
        let accepted = Timeline {
            rules: vec![eval(
                "INPUT",
                EvalKind::Rule,
                NfVerdict::Accept,
                Some((5, "")),
            )],
            ..Default::default()
        };
        assert_eq!(drop_rule(&accepted, 0, false), None);
    }

    #[test]
    fn a_position_names_the_rule_at_that_place_of_its_chain_now() {
        let rule = |handle| RuleText {
            handle,
            nft: format!("rule {handle}"),
            comment: None,
            iptables: None,
        };
        let mut r = Ruleset::new();
        // Handles are not positions: a rule inserted first gets a higher one.
        r.insert(
            ("ip".into(), "filter".into(), "INPUT".into()),
            crate::tracer::nftrace::rules::ChainRules {
                rules: vec![rule(9), rule(4)],
                policy: Some("accept".into()),
                hook: None,
            },
        );
        let rulesets = vec![("server".to_string(), r)];
        let second = RuleMatch {
            rule: RuleRef::Position {
                chain: "filter INPUT".into(),
                position: 2,
            },
            ns: None,
            ct_state: None,
            at: None,
        };
        let by = |handle| eval("INPUT", EvalKind::Rule, NfVerdict::Drop, Some((handle, ""))).eval;
        assert!(matches(&second, &by(4), &rulesets));
        assert!(!matches(&second, &by(9), &rulesets));
        // In another chain, or past the chain's end: no rule.
        let mut other = by(4);
        other.chain = "FORWARD".into();
        assert!(!matches(&second, &other, &rulesets));
        let third = RuleMatch {
            rule: RuleRef::Position {
                chain: "INPUT".into(),
                position: 3,
            },
            ..second.clone()
        };
        assert!(find(&third, &rulesets).is_none());
        assert_eq!(
            find(&second, &rulesets).as_deref(),
            Some("`rule 4`, ip filter INPUT in server")
        );
    }

    #[test]
    fn the_ct_state_is_the_one_at_the_deciding_rule() {
        let mut drop = eval("INPUT", EvalKind::Rule, NfVerdict::Drop, Some((5, "x"))).eval;
        let want = |ct_state| RuleMatch {
            rule: RuleRef::Comment("x".into()),
            ns: None,
            ct_state,
            at: None,
        };
        drop.ct_state = Some(CtState::New);
        assert!(matches(&want(Some(CtState::New)), &drop, &[]));
        assert!(!matches(&want(Some(CtState::Established)), &drop, &[]));
        assert!(matches(&want(None), &drop, &[]));
        assert!(
            described(&drop).ends_with("ct state new"),
            "{}",
            described(&drop)
        );
        // The kernel leaves the state out for an invalid packet.
        drop.ct_state = None;
        assert!(matches(&want(Some(CtState::Invalid)), &drop, &[]));
        assert!(!matches(&want(Some(CtState::New)), &drop, &[]));
    }

    #[test]
    fn a_packet_is_followed_across_its_nat_but_not_into_later_segments() {
        let syn = |dst: &str, dport: u16| PacketInfo {
            src: Some("198.51.100.2".parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            proto: 6,
            sport: 40000,
            dport,
            tcp_flags: 0x02,
            tcp_seq: 7,
            ..PacketInfo::default()
        };
        let before = syn("198.51.100.1", 8080);
        // After portmap's DNAT: the destination is the pod's.
        assert!(same_packet(&before, &syn("192.0.2.2", 80)));
        // The handshake's ACK, same tuple: another packet.
        let ack = PacketInfo {
            tcp_flags: 0x10,
            tcp_seq: 8,
            ..before.clone()
        };
        assert!(!same_packet(&before, &ack));
        // Both sides rewritten, nothing in common: not judged as it.
        let other = PacketInfo {
            src: Some("203.0.113.1".parse().unwrap()),
            sport: 1,
            ..syn("192.0.2.2", 80)
        };
        assert!(!same_packet(&before, &other));
    }

    #[test]
    fn the_policy_is_told_from_a_rule_with_the_same_drop() {
        use EvalKind::{Policy, Rule};
        use NfVerdict::{Continue, Drop, Jump};
        let end = EvalKind::Return;
        // The kernel's sequence for the SSH SYN: a jump, BLOCK's end, the
        // policy of INPUT.
        let by_policy = vec![
            eval("INPUT", Rule, Jump, Some((4, ""))),
            eval("BLOCK", end, Continue, None),
            eval("INPUT", end, Continue, None),
            eval("INPUT", Policy, Drop, None),
        ];
        assert_eq!(judged(by_policy), vec![]);
        // The same NETFILTER_DROP from the telnet rule: decided_by,
        // traversed (never back in INPUT) and not_matched all fail.
        let by_rule = vec![
            eval("INPUT", Rule, Jump, Some((4, ""))),
            eval("BLOCK", Rule, Drop, Some((5, "no telnet"))),
        ];
        let mm = judged(by_rule);
        let what: Vec<&str> = mm.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "netfilter decided_by",
                "netfilter traversed",
                "netfilter not_matched"
            ]
        );
        assert!(
            mm[0].actual.contains("comment \"no telnet\""),
            "{}",
            mm[0].actual
        );
        // A packet something else dropped (rp_filter at the next hop) was
        // let through by netfilter: its accepts are what decided.
        let accepted = [
            eval("INPUT", Rule, Jump, Some((4, ""))),
            eval("BLOCK", Rule, NfVerdict::Accept, Some((6, "web"))),
        ];
        let evals: Vec<&RuleEval> = accepted.iter().map(|r| &r.eval).collect();
        let d = deciding(&evals, true);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].handle, Some(6));
        // No evaluation at all is a failure, not a pass.
        let none = judged(vec![]);
        assert_eq!(none.len(), 1);
        assert!(
            none[0].actual.contains("no rule of server evaluated it"),
            "{}",
            none[0].actual
        );
        assert!(!none[0].actual.contains("iptables-legacy"));
    }

    #[test]
    fn nothing_traced_under_iptables_legacy_says_why() {
        let s = Scenario::parse(std::path::Path::new("t.yaml"), FILE).unwrap();
        let want = s.packets[0].expect.netfilter.clone().unwrap();
        let tl = Timeline {
            rules_traced: vec!["server".into()],
            iptables_legacy: true,
            ..Default::default()
        };
        let mm = judge_netfilter(&want, &tl, 0, false, true);
        assert_eq!(mm.len(), 1);
        assert!(
            mm[0].actual.contains("iptables-legacy") && mm[0].actual.contains("iptables-nft"),
            "{}",
            mm[0].actual
        );
    }
}
