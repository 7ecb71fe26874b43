//! `conntrack:` expectations against the tables read at the end of the run.

use crate::collect::Timeline;
use crate::collect::conntrack::{CtEntry, CtTuple};
use crate::scenario::{CtTupleWant, CtWant};

use super::Mismatch;

fn tuple_matches(w: &CtTupleWant, t: &CtTuple) -> bool {
    w.src.is_none_or(|a| Some(a) == t.src)
        && w.dst.is_none_or(|a| Some(a) == t.dst)
        && w.sport.is_none_or(|p| Some(p) == t.sport)
        && w.dport.is_none_or(|p| Some(p) == t.dport)
        && w.proto.is_none_or(|p| p == t.proto)
}

/// Whether `e` is the entry `w` describes.
fn matches(w: &CtWant, e: &CtEntry) -> bool {
    w.orig.as_ref().is_none_or(|o| tuple_matches(o, &e.orig))
        && w.reply.as_ref().is_none_or(|r| tuple_matches(r, &e.reply))
        && w.state.as_deref().is_none_or(|s| e.tcp_state == Some(s))
        && w.status.iter().all(|s| e.status.contains(&s.as_str()))
        && w.mark.is_none_or(|m| m == e.mark)
        && w.zone.is_none_or(|z| z == e.zone)
}

/// An entry as a failure lists it.
pub fn describe(e: &CtEntry) -> String {
    let side = |t: &CtTuple| {
        let a = |x: Option<std::net::IpAddr>, p: Option<u16>| {
            format!(
                "{}{}",
                x.map_or("?".into(), |x| x.to_string()),
                p.map_or(String::new(), |p| format!(":{p}"))
            )
        };
        format!("{} -> {}", a(t.src, t.sport), a(t.dst, t.dport))
    };
    format!(
        "proto {} orig {} reply {}{} [{}] mark {} zone {}",
        e.orig.proto,
        side(&e.orig),
        side(&e.reply),
        e.tcp_state.map(|s| format!(" {s}")).unwrap_or_default(),
        e.status.join("|"),
        e.mark,
        e.zone
    )
}

/// Judges each wanted entry against its namespace's table.
pub(super) fn judge_conntrack(want: &[CtWant], tl: &Timeline) -> Vec<Mismatch> {
    let mut mm = vec![];
    for w in want {
        let table = tl.conntrack.iter().find(|t| t.ns == w.ns);
        let actual = match table {
            None => "its table was not read".to_string(),
            Some(t) if t.unreadable.is_some() => {
                format!(
                    "reading it failed: {}",
                    t.unreadable.as_deref().unwrap_or("")
                )
            }
            Some(t) if t.entries.iter().any(|e| matches(w, e)) => continue,
            Some(t) if t.entries.is_empty() => format!("{} has no conntrack entries", w.ns),
            Some(t) => t
                .entries
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join("; "),
        };
        mm.push(Mismatch {
            what: "conntrack".into(),
            expected: w.to_string(),
            actual,
        });
    }
    mm
}
