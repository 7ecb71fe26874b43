//! `routes:` expectations against the route lookups traced for a packet.

use super::verdict::Mismatch;
use crate::collect::{Step, Timeline};
use crate::common::hook::Hook;
use crate::scenario::{RouteResult, RouteWant};

/// Drop reasons of a route check, which decides whatever its lookup
/// returned: `rp_filter`'s reverse route out of another device, no route in
/// any table (IPv4 and IPv6 alike).
const ROUTE_REASONS: [&str; 3] = ["IP_RPFILTER", "IP_INNOROUTES", "IP_OUTNOROUTES"];

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

/// The route lookup that decided packet `i`'s drop, as a drawing names
/// it: the last lookup before the drop, in the namespace that dropped it,
/// of the dropped headers' flow or its reverse (`rp_filter`'s), when it
/// returned no way on (blackhole, unreachable, prohibit, an error) or the
/// drop reason is a route check's. Only the last: a lookup that failed
/// and was followed by another of the flow did not end it (IPv6 reports
/// each table without the route as `unreachable` and goes on to the
/// next). `None` when no lookup decided (say, a route was found and
/// netfilter dropped).
pub fn drop_route(tl: &Timeline, i: usize, life: &[&Step]) -> Option<String> {
    let drop = life.iter().rev().find(|s| s.ev.hook == Hook::KfreeSkb)?;
    let (src, dst) = (drop.ev.packet.src?, drop.ev.packet.dst?);
    let by_reason = drop
        .ev
        .reason
        .as_deref()
        .is_some_and(|r| ROUTE_REASONS.contains(&r));
    let (s, r) = packet_lookups(tl, i, false)
        .into_iter()
        .filter(|s| s.ns == drop.ns && s.ev.ts_ns <= drop.ev.ts_ns)
        .filter_map(|s| Some((s, s.ev.route.as_ref()?)))
        .rfind(|(_, r)| {
            // An output lookup may not have chosen its source yet.
            let forward = r.dst == dst && (r.src == src || r.src.is_unspecified());
            forward || (r.dst == src && r.src == dst)
        })?;
    let failed = matches!(
        r.result,
        RouteResult::Blackhole
            | RouteResult::Unreachable
            | RouteResult::Prohibit
            | RouteResult::Error
    );
    (by_reason || failed)
        .then(|| format!("route {} in {}", r.describe(s.route_dev.as_deref()), s.ns))
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
