//! Judges: each expectation kind compared with the facts of a life.

use super::facts::*;
use super::life::life_of;
use super::verdict::Mismatch;
use crate::collect::{Step, Timeline};
use crate::common::Hook;
use crate::scenario::{Expectation, Fate, IcmpError, PathStep, Seen};

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

/// Does a step's event (or one of its stack frames) match `step`?
fn event_matches(step: &PathStep, s: &Step) -> bool {
    let place = step.ns.as_ref().is_none_or(|n| *n == s.ns)
        && step.dev.as_ref().is_none_or(|d| *d == s.dev);
    place
        && (s.ev.hook.name() == step.func
            || s.ev.stack.iter().any(|f| strip_suffix(f) == step.func))
}

/// Whether a tunnel's inner packet is the one wanted.
fn inner_matches(w: &crate::scenario::InnerWant, t: &super::inner::Tuple) -> bool {
    let x = &w.tuple;
    x.src.is_none_or(|a| a == t.src)
        && x.dst.is_none_or(|a| a == t.dst)
        && x.sport.is_none_or(|p| p == t.sport)
        && x.dport.is_none_or(|p| p == t.dport)
        && x.proto.is_none_or(|p| p == t.proto)
        && w.vni.is_none_or(|v| Some(v) == t.vni)
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
            && want.mark.is_none_or(|v| s.ev.mark == v)
            && want.len.is_none_or(|v| s.ev.len == v)
            && want.priority.is_none_or(|v| s.ev.priority == v)
            && want.vlan.is_none_or(|v| v.holds(s.ev.vlan_tci))
            && want.ip_summed.is_none_or(|v| s.ev.ip_summed == Some(v))
            && want.inner.as_ref().is_none_or(|w| {
                super::inner::inner(&s.ev.bytes).is_some_and(|t| inner_matches(w, &t))
            })
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
    if let Some(v) = want.mark {
        expected.push(format!("mark {v:#x}"));
    }
    if let Some(v) = want.len {
        expected.push(format!("len {v}"));
    }
    if let Some(i) = &want.inner {
        expected.push(i.to_string());
    }
    if let Some(v) = want.priority {
        expected.push(format!("priority {v}"));
    }
    if let Some(v) = want.vlan {
        expected.push(v.to_string());
    }
    if let Some(v) = want.ip_summed {
        expected.push(format!("ip_summed {}", v.name()));
    }
    let actual = if at.is_empty() {
        format!("the packet never reached `{}`", want.at)
    } else {
        at.iter()
            .map(|s| {
                let inner = super::inner::inner(&s.ev.bytes)
                    .map(|t| format!(" inner {t}"))
                    .unwrap_or_default();
                let vlan =
                    s.ev.vlan_tci
                        .map_or_else(|| "no vlan".into(), |t| format!("vlan {}", t & 0xfff));
                let summed = s.ev.ip_summed.map_or("?", crate::scenario::IpSummed::name);
                format!(
                    "{} ttl {} mark {:#x} len {} priority {} {vlan} ip_summed {summed}{inner}",
                    s.ev.packet.tuple(),
                    s.ev.packet.ttl,
                    s.ev.mark,
                    s.ev.len,
                    s.ev.priority
                )
            })
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
pub(super) fn judge(e: &Expectation, life: &[&Step]) -> (Facts, Vec<Mismatch>, Vec<String>) {
    let f = facts(life);
    let toks = tokens(life);
    let path = compact_path(&toks);
    let mut mm = outcome(e, &f);
    mm.extend(path_order(e, &toks, &path));
    mm.extend(e.seen.iter().filter_map(|want| check_seen(want, life)));
    for step in &e.not_path {
        if let Some(t) = toks.iter().find(|t| step_matches(step, t)) {
            mm.push(Mismatch {
                what: "not_path".into(),
                expected: format!("no `{step}`"),
                actual: format!("`{}` at {}/{}", t.func, t.ns, t.dev),
            });
        }
    }
    mm.extend(transmitted(e, life));
    (f, mm, path)
}

/// `fate`, `reason` and `at`: how and where the skb ended.
fn outcome(e: &Expectation, f: &Facts) -> Vec<Mismatch> {
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
    mm
}

/// `path`: the steps in order, each found after the previous one.
fn path_order(e: &Expectation, toks: &[Token], path: &[String]) -> Option<Mismatch> {
    let n = match_path(&e.path, toks).err()?;
    let shown: Vec<String> = e.path.iter().map(ToString::to_string).collect();
    let after = if n == 0 {
        "from the start".to_string()
    } else {
        format!("after `{}`", shown[n - 1])
    };
    Some(Mismatch {
        what: "path".into(),
        expected: shown.join(" -> "),
        actual: format!(
            "`{}` not found {after}; the skb went: {}",
            shown[n],
            path.join(" -> ")
        ),
    })
}

/// `transmitted`: the namespaces or devices that sent the skb out.
fn transmitted(e: &Expectation, life: &[&Step]) -> Vec<Mismatch> {
    let mut mm = vec![];
    for want in &e.transmitted {
        let hit = life.iter().any(|s| {
            s.ev.hook.is_transmit() && s.ns == want.ns && (want.dev.is_empty() || s.dev == want.dev)
        });
        if !hit {
            let out: Vec<String> = life
                .iter()
                .filter(|s| s.ev.hook.is_transmit())
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
    mm
}

/// `icmp`: an ICMP error of that type (and code) about the packet.
pub(super) fn judge_icmp(want: IcmpError, got: &[(u8, u8, String)]) -> Option<Mismatch> {
    let ok = got
        .iter()
        .any(|(t, c, _)| *t == want.kind && want.code.is_none_or(|w| w == *c));
    if ok {
        return None;
    }
    Some(Mismatch {
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
    })
}

/// `no_unexpected_drops`: every drop of the packet's skbs, either way, is
/// the expected one or an allowed reason.
pub(super) fn unexpected_drops(
    expect: &Expectation,
    tl: &Timeline,
    i: usize,
    l: &[&Step],
    facts: &Facts,
) -> Vec<Mismatch> {
    let mut mismatches = vec![];
    // A sender that resends the
    // packet (a TCP SYN after its 1 s RTO, which a slow machine's
    // collection window can reach) has the copy dropped the same
    // way, at the same place: that is the fate again, not another drop.
    let judged = l.iter().rev().find(|x| x.ev.hook == Hook::KfreeSkb);
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
        .filter(|st| st.packet == Some(i) && st.ev.hook == Hook::KfreeSkb)
    {
        let r = st.ev.reason.clone().unwrap_or_default();
        let expected = expect.fate == Some(Fate::Dropped)
            && facts.skb.is_some()
            && expect.reason.as_deref().is_none_or(|w| w == r)
            && !st.reverse
            && (l.iter().any(|x| std::ptr::eq(*x, st)) || same_drop_again(st));
        if !expected && !expect.allow_drops.contains(&r) {
            mismatches.push(Mismatch {
                what: "no_unexpected_drops".into(),
                expected: if expect.allow_drops.is_empty() {
                    "no other drops".into()
                } else {
                    format!("only drops for {}", expect.allow_drops.join(", "))
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
    mismatches
}

/// `reply`: the packet flowing back, judged like the packet itself.
pub(super) fn judge_reply(reply: &Expectation, tl: &Timeline, i: usize) -> Vec<Mismatch> {
    let mut mismatches = vec![];
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
    mismatches
}
