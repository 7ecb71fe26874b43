//! Stage 6: compare each packet's traced life with its expectations.
//!
//! The skb a packet is judged by is the first one seen carrying the packet in
//! its forward direction; its life runs from that event to its `kfree_skb`
//! or `consume_skb`. Replies (reverse direction) are in the timeline for the
//! reader but do not change the verdict.

mod conntrack;
mod counters;
mod facts;
mod inner;
mod judge;
mod life;
mod netfilter;
mod program;
mod route;
#[cfg(test)]
mod tests;
mod verdict;

pub use counters::check_counters;
pub use facts::{Facts, Token, compact_path, facts, icmp_errors, strip_suffix, tokens};
pub use inner::{Tuple, inner};
pub use judge::match_path;
pub use life::{life, life_of};
pub use netfilter::{deciding, find as netfilter_find, packet_evals};
pub use route::packet_lookups;
pub use verdict::{Mismatch, PacketVerdict, Verdict};

use crate::collect::Timeline;
use crate::scenario::Scenario;
use judge::{judge, judge_icmp, judge_reply, unexpected_drops};

/// Judges every packet of the scenario against the timeline.
pub fn evaluate(s: &Scenario, tl: &Timeline) -> Verdict {
    let mut packets = vec![];
    for (i, p) in s.packets.iter().enumerate() {
        let l = life(tl, i);
        let (mut facts, mut mismatches, path) = judge(&p.expect, &l);
        if facts.dropped {
            facts.dropped_by_rule = netfilter::drop_rule(tl, i, false);
            facts.dropped_by_route = route::drop_route(tl, i, &l);
        }
        if let Some(want) = p.expect.icmp {
            mismatches.extend(judge_icmp(want, &icmp_errors(tl, i, &l)));
        }
        if p.expect.no_unexpected_drops {
            mismatches.extend(unexpected_drops(&p.expect, tl, i, &l, &facts));
        }
        mismatches.extend(conntrack::judge_conntrack(&p.expect.conntrack, tl));
        mismatches.extend(route::judge_routes(&p.expect.routes, tl, i, false));
        mismatches.extend(program::judge_programs(&p.expect.programs, tl, i, false));
        if let Some(n) = &p.expect.netfilter {
            let dropped = facts.dropped;
            mismatches.extend(netfilter::judge_netfilter(n, tl, i, false, dropped));
        }
        if let Some(reply) = &p.expect.reply {
            mismatches.extend(judge_reply(reply, tl, i));
            mismatches.extend(conntrack::judge_conntrack(&reply.conntrack, tl));
            mismatches.extend(route::judge_routes(&reply.routes, tl, i, true));
            mismatches.extend(program::judge_programs(&reply.programs, tl, i, true));
            if let Some(n) = &reply.netfilter {
                let (rf, _, _) = judge(reply, &life_of(tl, i, true));
                mismatches.extend(netfilter::judge_netfilter(n, tl, i, true, rf.dropped));
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
        trace_problems: trace_problems(tl),
        counters: vec![],
    }
}

/// Problems with the trace itself: lost events, a cap, a timeout.
fn trace_problems(tl: &Timeline) -> Vec<String> {
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
    trace_problems
}
