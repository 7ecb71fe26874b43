//! `routes:` expectations against the route lookups traced for a packet.

use super::verdict::Mismatch;
use crate::collect::{Step, Timeline};
use crate::scenario::RouteWant;

/// Whether lookup `s` is what `w` asks for.
fn matches(w: &RouteWant, s: &Step) -> bool {
    let Some(r) = &s.ev.route else {
        return false;
    };
    w.ns.as_ref().is_none_or(|n| *n == s.ns)
        && w.table.is_none_or(|t| t == r.table)
        && w.to.is_none_or(|a| a == r.dst)
        && w.result.is_none_or(|x| x == r.result)
        && w.via.is_none_or(|g| Some(g) == r.gateway)
        && w.dev
            .as_ref()
            .is_none_or(|d| s.route_dev.as_deref() == Some(d.as_str()))
}

/// A lookup as a failure shows it: where, and what it returned.
fn described(s: &Step) -> String {
    let r =
        s.ev.route
            .as_ref()
            .map_or_else(String::new, |r| r.describe(s.route_dev.as_deref()));
    format!("{}: {r}", s.ns)
}

/// The route lookups of packet `i` (its replies when `reverse`), in order.
pub fn packet_lookups(tl: &Timeline, i: usize, reverse: bool) -> Vec<&Step> {
    tl.steps
        .iter()
        .filter(|s| s.packet == Some(i) && s.reverse == reverse && s.ev.route.is_some())
        .collect()
}

/// Judges `want` (in order, others between) against the packet's lookups.
pub fn judge_routes(want: &[RouteWant], tl: &Timeline, i: usize, reverse: bool) -> Vec<Mismatch> {
    if want.is_empty() {
        return vec![];
    }
    let lookups = packet_lookups(tl, i, reverse);
    let what = if reverse { "reply routes" } else { "routes" };
    let mut rest = lookups.iter();
    for w in want {
        if !rest.any(|s| matches(w, s)) {
            let earlier = lookups.iter().any(|s| matches(w, s));
            let actual = if lookups.is_empty() {
                "no route lookup traced for this packet".to_string()
            } else {
                lookups
                    .iter()
                    .map(|s| described(s))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return vec![Mismatch {
                what: what.into(),
                expected: if earlier {
                    format!("{w} (after the lookups before it)")
                } else {
                    w.to_string()
                },
                actual,
            }];
        }
    }
    vec![]
}
