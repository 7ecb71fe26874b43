//! Raw shapes → model, collecting every located error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use marked_yaml::Spanned;

use super::error::ScenarioError;
use super::model::*;
use super::raw;
use crate::abi::{MAX_FILTERS, MAX_NETNS};

use attach::cni_node_devices;
pub(crate) use ctx::Ctx;
use ctx::*;
pub use ctx::{parse_kernel_version, parse_mac};
pub use expect::{StepError, parse_step};
use namespace::validate_ns;
use packet::validate_packet;

mod addressing;
mod attach;
mod conntrack;
mod ctx;
mod expect;
mod link;
mod namespace;
mod netfilter;
mod route;
mod packet;
mod programs;

pub(super) fn validate(cx: &mut Ctx, f: raw::File, path: &Path) -> Scenario {
    let name = f.name.as_ref().map_or_else(
        || {
            path.file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
        },
        |n| n.to_string(),
    );
    let (raw_ns, mut devs) = device_index(cx, f.namespaces, path);
    let ns_names: Vec<String> = raw_ns.iter().map(|(k, _)| k.to_string()).collect();
    let mut namespaces = vec![];
    for (n, ns) in raw_ns {
        namespaces.push(validate_ns(cx, &n, ns, &ns_names, &devs));
    }
    // The bridge a CNI plugin makes in the node can be named in steps.
    for ns in &namespaces {
        if let Some(c) = &ns.cni {
            if let Some(set) = devs.get_mut(&c.node) {
                set.extend(cni_node_devices(&c.conflist));
            }
        }
    }
    cx.programs = attached_programs(&namespaces);
    let raw_packets = packet_list(cx, f.inject, f.expect, f.packets, path);
    let packets = packets(cx, raw_packets, &namespaces, &devs);
    for p in &packets {
        netfilter::check_refs(cx, &p.expect, &namespaces);
        route::check_tables(cx, &p.expect, &namespaces);
    }
    Scenario {
        name,
        path: path.to_path_buf(),
        description: f.description.map(|d| d.to_string()),
        namespaces,
        packets,
        timeout: f
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, |t| Duration::from_millis(*t)),
        counters: counters(cx, f.counters, &devs),
        requires: requires(cx, f.requires),
    }
}

/// The namespaces in file order, checked, and the devices each will hold
/// (veth peers included), for reference checks.
fn device_index(
    cx: &mut Ctx,
    raw: Option<HashMap<raw::S, raw::Namespace>>,
    path: &Path,
) -> (Vec<(raw::S, raw::Namespace)>, DevIndex) {
    // Namespaces and the devices each will hold.
    let mut devs: DevIndex = BTreeMap::new();
    // File order, so creation order and messages follow what the user wrote.
    let mut raw_ns: Vec<(raw::S, raw::Namespace)> = raw.unwrap_or_default().into_iter().collect();
    raw_ns.sort_by_key(|(k, _)| span_pos(k));
    if raw_ns.is_empty() {
        cx.errors.push(ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: "no `namespaces`: a scenario builds its own namespaces".into(),
            hint: Some(
                "add `namespaces:` with at least one namespace; nothing runs in the root namespace"
                    .into(),
            ),
        });
    }
    if let Some((n, _)) = raw_ns.get(MAX_NETNS as usize) {
        cx.err(
            n,
            format!(
                "{} namespaces; a scenario has at most {MAX_NETNS} (the tracer watches that many)",
                raw_ns.len()
            ),
            Some("split the scenario, or share namespaces between roles".into()),
        );
    }
    for (n, ns) in &raw_ns {
        if !valid_nsname(n) {
            cx.err(
                n,
                format!("namespace name `{}` is not valid", n.as_str()),
                Some("use up to 24 letters, digits, - or _".into()),
            );
        }
        let set = devs.entry(n.to_string()).or_default();
        set.insert("lo".into());
        for l in &ns.links {
            set.insert(l.name.to_string());
        }
        if let Some(c) = &ns.cni {
            set.insert(c.ifname.as_ref().map_or("eth0", |i| i.as_str()).to_string());
        }
    }
    for (_, ns) in &raw_ns {
        for l in &ns.links {
            if let Some(p) = &l.peer {
                if let Some(set) = devs.get_mut(p.namespace.as_str()) {
                    if !set.insert(p.name.to_string()) {
                        cx.err(
                            &p.name,
                            format!(
                                "device `{}` already exists in namespace `{}`",
                                p.name.as_str(),
                                p.namespace.as_str()
                            ),
                            None,
                        );
                    }
                }
            }
        }
    }
    (raw_ns, devs)
}

/// The packets: either top-level `inject`/`expect` or a `packets:` list.
fn packet_list(
    cx: &mut Ctx,
    inject: Option<raw::Inject>,
    expect: Option<raw::Expect>,
    list: Option<Vec<raw::Packet>>,
    path: &Path,
) -> Vec<raw::Packet> {
    // Packets: either top-level inject/expect or a `packets:` list.
    let mut raw_packets = vec![];
    match (inject, expect, list) {
        (Some(i), e, None) => raw_packets.push(raw::Packet {
            name: None,
            inject: i,
            expect: e.unwrap_or(raw::Expect {
                fate: None,
                reason: None,
                at: None,
                path: None,
                seen: None,
                reply: None,
                not_path: None,
                icmp: None,
                transmitted: None,
                no_unexpected_drops: None,
                allow_drops: None,
                netfilter: None,
                conntrack: None,
                routes: None,
                programs: None,
                kernels: None,
            }),
        }),
        (None, None, Some(list)) => raw_packets = list,
        (None, Some(e), _) => cx.err(
            e.fate
                .as_ref()
                .or(e.reason.as_ref())
                .unwrap_or(&Spanned::new(marked_yaml::Span::new_blank(), String::new())),
            "`expect` without `inject`",
            Some("add an `inject:` block describing the packet".into()),
        ),
        (Some(i), _, Some(_)) => cx.err(
            i.via
                .as_ref()
                .or(i.socket.as_ref().map(|s| &s.from))
                .unwrap_or(&Spanned::new(marked_yaml::Span::new_blank(), String::new())),
            "both `inject` and `packets` given",
            Some(
                "use `packets:` for several packets, or top-level `inject`/`expect` for one".into(),
            ),
        ),
        (None, None, None) => cx.errors.push(ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: "nothing to inject".into(),
            hint: Some("add `inject:` and `expect:` (or a `packets:` list)".into()),
        }),
    }
    raw_packets
}

/// Validates each packet and checks they fit the tracer's flow filters.
fn packets(
    cx: &mut Ctx,
    raw: Vec<raw::Packet>,
    namespaces: &[Namespace],
    devs: &DevIndex,
) -> Vec<Packet> {
    let mut packets = vec![];
    let mut n_filters = 0;
    for (i, p) in raw.into_iter().enumerate() {
        let pname = p
            .name
            .as_ref()
            .map_or_else(|| format!("packet {}", i + 1), |n| n.to_string());
        let at = p
            .inject
            .via
            .clone()
            .or_else(|| p.inject.socket.as_ref().map(|s| s.from.clone()));
        if let Some(pk) = validate_packet(cx, pname, p, namespaces, devs) {
            // The runner watches each packet's flow both ways, plus the
            // ICMP errors about it (one filter for ICMP itself).
            n_filters += if pk.is_icmp() { 1 } else { 2 };
            if n_filters > MAX_FILTERS as usize {
                if let Some(at) = &at {
                    cx.err(
                        at,
                        format!(
                            "too many packets: the tracer holds {MAX_FILTERS} flow filters, two per TCP/UDP packet and one per ICMP packet"
                        ),
                        Some("split the scenario into several files".into()),
                    );
                }
            }
            packets.push(pk);
        }
    }
    packets
}

/// `counters:` deltas, per namespace, in file order.
fn counters(
    cx: &mut Ctx,
    raw: Option<HashMap<raw::S, HashMap<raw::S, raw::S>>>,
    devs: &DevIndex,
) -> Vec<CounterCheck> {
    let mut counters = vec![];
    let mut raw_counters: Vec<_> = raw.unwrap_or_default().into_iter().collect();
    raw_counters.sort_by_key(|(k, _)| span_pos(k));
    for (ns, map) in raw_counters {
        if !devs.contains_key(ns.as_str()) {
            cx.err(
                &ns,
                format!(
                    "counters for `{}`, which the scenario does not declare",
                    ns.as_str()
                ),
                None,
            );
            continue;
        }
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by_key(|(k, _)| span_pos(k));
        for (name, d) in entries {
            let t = d.trim();
            let parsed = if let Some(r) = t.strip_prefix(">=") {
                r.trim().parse::<i64>().ok().map(Delta::AtLeast)
            } else {
                t.parse::<i64>().ok().map(Delta::Exactly)
            };
            match parsed {
                Some(delta) if name.chars().all(|c| c.is_ascii_alphanumeric()) => counters.push(CounterCheck {
                    ns: ns.to_string(),
                    name: name.to_string(),
                    delta,
                }),
                Some(_) => cx.err(&name, format!("`{}` is not a counter name", name.as_str()), Some("names as nstat prints them, e.g. IpExtInNoRoutes, TcpExtListenDrops, Ip6InNoRoutes".into())),
                None => cx.err(&d, format!("`{t}` is not a counter change"), Some("write +1, 0, -2 or >=1".into())),
            }
        }
    }
    counters
}

/// `requires:`: what the machine must have.
fn requires(cx: &mut Ctx, raw: Option<raw::Requires>) -> Requires {
    let mut requires = Requires::default();
    if let Some(r) = raw {
        if let Some(k) = r.kernel {
            match parse_kernel_version(k.trim_start_matches(">=").trim()) {
                Some(v) => requires.kernel = Some(v),
                None => cx.err(
                    &k,
                    format!("`{}` is not a kernel version", k.as_str()),
                    Some("write e.g. 6.8 or >=5.17".into()),
                ),
            }
        }
        requires.reasons = r
            .reasons
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_string())
            .collect();
        requires.tools = r
            .tools
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_string())
            .collect();
        requires.functions = r.functions.is_some_and(|b| *b);
        requires.program_returns = r.program_returns.is_some_and(|b| *b);
    }
    requires
}
