//! Counter deltas across the injection.

use std::collections::BTreeMap;

use super::verdict::Mismatch;
use crate::collect::counters::Counters;
use crate::scenario::{Delta, Scenario};

/// Checks counter deltas; `before`/`after` are per namespace.
pub fn check_counters(
    s: &Scenario,
    before: &BTreeMap<String, Counters>,
    after: &BTreeMap<String, Counters>,
) -> Vec<Mismatch> {
    let mut out = vec![];
    for c in &s.counters {
        let get =
            |m: &BTreeMap<String, Counters>| m.get(&c.ns).and_then(|x| x.get(&c.name)).copied();
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
            Delta::Exactly(n) => d == n,
            Delta::AtLeast(n) => d >= n,
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
