//! `expect`: fate, reason, path steps, kernel overrides.

use super::ctx::*;
use crate::scenario::kernel_range::{KernelRange, RangeError};

/// What is wrong with a path step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Its `(kernel ...)` range.
    #[error("in `{step}`: {source}")]
    Range {
        /// The step as written.
        step: String,
        /// What is wrong with the range.
        source: RangeError,
    },
    /// Not a function or hook name.
    #[error("`{0}` is not a function or hook name")]
    NotAName(String),
}

/// Parses `func`, `func@ns` or `func@ns/dev`.
pub fn parse_step(s: &str) -> Result<PathStep, StepError> {
    let (s, kernel) = match s
        .trim_end()
        .strip_suffix(')')
        .and_then(|x| x.rsplit_once("(kernel"))
    {
        Some((step, range)) => (
            step.trim_end(),
            Some(
                KernelRange::parse(range).map_err(|source| StepError::Range {
                    step: s.to_string(),
                    source,
                })?,
            ),
        ),
        None => (s, None),
    };
    let (func, qual) = match s.split_once('@') {
        Some((f, q)) => (f, Some(q)),
        None => (s, None),
    };
    let func = func.trim();
    if func.is_empty()
        || !func
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    {
        return Err(StepError::NotAName(s.to_string()));
    }
    let (ns, dev) = match qual {
        None => (None, None),
        Some(q) => match q.split_once('/') {
            Some((n, d)) => (Some(n.to_string()), Some(d.to_string())),
            None => (Some(q.to_string()), None),
        },
    };
    Ok(PathStep {
        func: func.to_string(),
        ns,
        dev,
        kernel,
    })
}

/// Parses a step and checks its namespace and device exist.
pub(super) fn step_checked(cx: &mut Ctx, s: &raw::S, devs: &DevIndex) -> Option<PathStep> {
    let step = match parse_step(s) {
        Ok(step) => step,
        Err(m) => {
            cx.err(
                s,
                m.to_string(),
                Some(
                    "write `function`, `function@namespace` or `function@namespace/device`, optionally followed by `(kernel >= 6.10)`".into(),
                ),
            );
            return None;
        }
    };
    if let Some(ns) = &step.ns {
        match devs.get(ns) {
            None => {
                cx.err(
                    s,
                    format!("step names namespace `{ns}`, which the scenario does not declare"),
                    None,
                );
                return None;
            }
            Some(set) => {
                if let Some(d) = step.dev.as_ref().filter(|d| !set.contains(*d)) {
                    let near = did_you_mean(d, set.iter().map(String::as_str));
                    cx.err(
                        s,
                        format!("step names device `{d}`, which namespace `{ns}` does not have"),
                        near.map(|n| format!("did you mean `{n}`?")),
                    );
                    return None;
                }
            }
        }
    }
    Some(step)
}

/// Validates an `expect` block (and its `reply` and `kernels` entries).
pub(super) fn validate_expect(cx: &mut Ctx, e: raw::Expect, devs: &DevIndex) -> Expectation {
    // In file-key order, so errors come in the order they always did.
    let fate = fate(cx, &e);
    let seen = seen(cx, e.seen.as_deref(), devs);
    let reply = e.reply.map(|r| Box::new(validate_expect(cx, *r, devs)));
    let steps = |cx: &mut Ctx, list: &Option<Vec<raw::S>>| -> Vec<PathStep> {
        list.iter()
            .flatten()
            .filter_map(|s| step_checked(cx, s, devs))
            .collect()
    };
    let not_path = steps(cx, &e.not_path);
    let transmitted = transmitted(cx, e.transmitted.as_deref(), devs);
    let icmp = e.icmp.map(|i| IcmpError {
        kind: *i.kind,
        code: i.code.map(|c| *c),
    });
    let allow_drops: Vec<String> = e
        .allow_drops
        .iter()
        .flatten()
        .map(|r| r.trim().to_string())
        .collect();
    if !allow_drops.is_empty() && !e.no_unexpected_drops.as_ref().is_some_and(|b| **b) {
        if let Some(first) = e.allow_drops.as_ref().and_then(|v| v.first()) {
            cx.err(
                first,
                "`allow_drops` only applies with `no_unexpected_drops: true`",
                None,
            );
        }
    }
    let path = steps(cx, &e.path);
    let netfilter = e
        .netfilter
        .as_ref()
        .map(|n| super::netfilter::netfilter_expect(cx, n));
    let ns_names: Vec<String> = devs.keys().cloned().collect();
    let conntrack = super::conntrack::conntrack(cx, e.conntrack.as_deref(), &ns_names);
    let routes = super::route::routes(cx, e.routes.as_deref(), devs);
    let programs = super::programs::program_wants(cx, e.programs.as_deref());
    let kernels = kernel_overrides(cx, e.kernels, devs);
    Expectation {
        kernels,
        fate: fate.or(e.reason.as_ref().map(|_| Fate::Dropped)),
        reason_loc: e.reason.as_ref().and_then(|r| cx.loc(r)),
        reason: e.reason.map(|r| r.trim().to_string()),
        at: e.at.map(|a| a.trim().to_string()),
        path,
        seen,
        reply,
        not_path,
        icmp,
        transmitted,
        no_unexpected_drops: e.no_unexpected_drops.is_some_and(|b| *b),
        allow_drops,
        netfilter,
        conntrack,
        routes,
        programs,
    }
}

/// `fate`, and that a `reason` goes with `dropped`.
fn fate(cx: &mut Ctx, e: &raw::Expect) -> Option<Fate> {
    let fate = e.fate.as_ref().and_then(|f| {
        if let Some(x) = Fate::parse(f) {
            Some(x)
        } else {
            let near = did_you_mean(f, Fate::ALL);
            cx.err(
                f,
                format!("unknown fate `{}`", f.as_str()),
                Some(
                    near.map_or(format!("fates: {}", Fate::ALL.join(", ")), |n| {
                        format!("did you mean `{n}`?")
                    }),
                ),
            );
            None
        }
    });
    if let (Some(r), Some(f)) = (&e.reason, fate) {
        if f != Fate::Dropped {
            cx.err(
                r,
                format!("`reason` only applies to dropped packets, but fate is `{f}`"),
                None,
            );
        }
    }
    fate
}

/// `seen:` steps with the header fields expected there.
fn seen(cx: &mut Ctx, raw: Option<&[raw::Seen]>, devs: &DevIndex) -> Vec<Seen> {
    let mut seen = vec![];
    for x in raw.into_iter().flatten() {
        let Some(step) = step_checked(cx, &x.at, devs) else {
            continue;
        };
        seen.push(Seen {
            at: step,
            src: x.src.as_ref().and_then(|a| cx.ip(a, "source")),
            dst: x.dst.as_ref().and_then(|a| cx.ip(a, "destination")),
            sport: x.sport.as_ref().map(|v| **v),
            dport: x.dport.as_ref().map(|v| **v),
            ttl: x.ttl.as_ref().map(|v| **v),
            mark: x.mark.as_ref().and_then(|v| cx.mark(v)),
            len: x.len.as_ref().map(|v| **v),
            inner: x.inner.as_ref().map(|i| InnerWant {
                tuple: CtTupleWant {
                    src: i.src.as_ref().and_then(|a| cx.ip(a, "inner source")),
                    dst: i.dst.as_ref().and_then(|a| cx.ip(a, "inner destination")),
                    sport: i.sport.as_ref().map(|p| **p),
                    dport: i.dport.as_ref().map(|p| **p),
                    proto: i
                        .proto
                        .as_ref()
                        .and_then(|p| super::conntrack::proto(cx, p)),
                },
                vni: i.vni.as_ref().map(|v| **v),
            }),
            priority: x.priority.as_ref().map(|p| **p),
            vlan: x.vlan.as_ref().and_then(|v| seen_vlan(cx, v)),
            ip_summed: x.ip_summed.as_ref().and_then(|v| {
                let found = IpSummed::parse(v);
                if found.is_none() {
                    let names = IpSummed::ALL.map(IpSummed::name);
                    let near = did_you_mean(&v.to_ascii_lowercase(), names.iter().copied());
                    cx.err(
                        v,
                        format!("unknown checksum state `{}`", v.as_str()),
                        Some(near.map_or_else(
                            || format!("states: {}", names.join(", ")),
                            |n| format!("did you mean `{n}`?"),
                        )),
                    );
                }
                found
            }),
        });
    }
    seen
}

/// `vlan:` in `seen`: an id of 1-4094, or `none` for no tag.
fn seen_vlan(cx: &mut Ctx, v: &raw::S) -> Option<VlanWant> {
    if v.trim() == "none" {
        return Some(VlanWant::Untagged);
    }
    match v.trim().parse::<u16>() {
        Ok(id) if (1..=4094).contains(&id) => Some(VlanWant::Id(id)),
        _ => {
            cx.err(
                v,
                format!("`{}` is not a VLAN id", v.as_str()),
                Some("write an id from 1 to 4094, or `none` for an untagged skb".into()),
            );
            None
        }
    }
}

/// `transmitted:` namespaces or devices.
fn transmitted(cx: &mut Ctx, raw: Option<&[raw::S]>, devs: &DevIndex) -> Vec<DeviceRef> {
    let mut transmitted = vec![];
    for t in raw.into_iter().flatten() {
        let (ns, dev) = t.split_once('/').unwrap_or((t.as_str(), ""));
        match devs.get(ns) {
            None => cx.err(t, format!("no namespace `{ns}`"), None),
            Some(set) if !dev.is_empty() && !set.contains(dev) => {
                cx.err(t, format!("no device `{dev}` in namespace `{ns}`"), None);
            }
            Some(_) => transmitted.push(DeviceRef {
                ns: ns.into(),
                dev: dev.into(),
            }),
        }
    }
    transmitted
}

/// `kernels:` overrides, in file order, each for a kernel version range.
fn kernel_overrides(
    cx: &mut Ctx,
    raw: Option<HashMap<raw::S, raw::Expect>>,
    devs: &DevIndex,
) -> Vec<KernelOverride> {
    let mut kernels = vec![];
    let mut entries: Vec<_> = raw.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| span_pos(k));
    for (range_s, x) in entries {
        let range = match KernelRange::parse(&range_s) {
            Ok(r) => r,
            Err(m) => {
                cx.err(
                    &range_s,
                    m.to_string(),
                    Some("write e.g. \"< 6.13\" or \">=5.17, <6.10\"".into()),
                );
                continue;
            }
        };
        if let Some(k) = x.kernels.as_ref().and_then(|m| m.keys().next()) {
            cx.err(k, "`kernels` entries cannot nest", None);
            continue;
        }
        let set = [
            ("fate", x.fate.is_some()),
            ("reason", x.reason.is_some()),
            ("at", x.at.is_some()),
            ("path", x.path.is_some()),
            ("seen", x.seen.is_some()),
            ("reply", x.reply.is_some()),
            ("not_path", x.not_path.is_some()),
            ("icmp", x.icmp.is_some()),
            ("netfilter", x.netfilter.is_some()),
            ("conntrack", x.conntrack.is_some()),
            ("routes", x.routes.is_some()),
            ("programs", x.programs.is_some()),
            ("transmitted", x.transmitted.is_some()),
            ("no_unexpected_drops", x.no_unexpected_drops.is_some()),
            ("allow_drops", x.allow_drops.is_some()),
        ];
        let keys = set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
        kernels.push(KernelOverride {
            range,
            expect: validate_expect(cx, x, devs),
            keys,
        });
    }
    kernels
}
