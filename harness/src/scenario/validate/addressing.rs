//! Addresses, routes, policy rules and static neighbours of a namespace.

use super::ctx::*;

/// `addresses:`.
pub(super) fn addresses(cx: &mut Ctx, here: &Here, raw: Vec<raw::Address>) -> Vec<Address> {
    let mut addresses = vec![];
    for a in raw {
        here.check_dev(cx, &a.dev);
        if let Some((addr, prefix)) = cx.cidr(&a.addr, "address") {
            addresses.push(Address {
                dev: a.dev.to_string(),
                addr,
                prefix,
                at: cx.loc(&a.addr),
            });
        }
    }
    addresses
}

/// `routes:`: unicast (with a gateway or a device) and the typed kinds.
pub(super) fn routes(cx: &mut Ctx, here: &Here, raw: Vec<raw::Route>) -> Vec<Route> {
    let mut routes = vec![];
    for r in raw {
        let to = if r.to.as_str() == "default" {
            None
        } else {
            cx.cidr(&r.to, "route destination")
        };
        let via = r.via.as_ref().and_then(|v| cx.ip(v, "gateway"));
        let src = r.src.as_ref().and_then(|v| cx.ip(v, "source"));
        if let Some(d) = &r.dev {
            here.check_dev(cx, d);
        }
        let kind = match r.kind.as_ref().map(|k| k.as_str()) {
            None | Some("unicast") => RouteType::Unicast,
            Some("blackhole") => RouteType::Blackhole,
            Some("unreachable") => RouteType::Unreachable,
            Some("prohibit") => RouteType::Prohibit,
            Some(other) => {
                cx.err(
                    r.kind.as_ref().unwrap(),
                    format!("unknown route type `{other}`"),
                    Some("types: unicast, blackhole, unreachable, prohibit".into()),
                );
                RouteType::Unicast
            }
        };
        if kind == RouteType::Unicast && via.is_none() && r.dev.is_none() {
            cx.err(&r.to, "a route needs `via` or `dev`", None);
        }
        let v6 = to
            .map(|(a, _)| a.is_ipv6())
            .or(via.map(|a| a.is_ipv6()))
            .unwrap_or(false);
        if let (Some((t, _)), Some(v)) = (to, via) {
            if t.is_ipv4() != v.is_ipv4() {
                cx.err(
                    r.via.as_ref().unwrap(),
                    "gateway and destination are of different IP families",
                    None,
                );
            }
        }
        routes.push(Route {
            to,
            v6,
            via,
            dev: r.dev.map(|d| d.to_string()),
            src,
            metric: r.metric.map(|m| *m),
            table: r.table.map(|t| *t),
            kind,
            at: cx.loc(&r.to),
        });
    }
    routes
}

/// `0x10`, `16` or `0x10/0xff`, as `ip rule ... fwmark` takes it.
fn parse_fwmark(s: &str) -> Option<(u32, Option<u32>)> {
    let num = |t: &str| match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    match s.split_once('/') {
        Some((v, m)) => Some((num(v)?, Some(num(m)?))),
        None => Some((num(s)?, None)),
    }
}

/// `rules:`: policy routing rules.
pub(super) fn rules(cx: &mut Ctx, here: &Here, raw: Vec<raw::Rule>) -> Vec<Rule> {
    let mut rules = vec![];
    for r in raw {
        for d in [&r.iif, &r.oif].into_iter().flatten() {
            here.check_dev(cx, d);
        }
        let prefix = |a: &Option<raw::S>, cx: &mut Ctx| match a {
            Some(a) if a.as_str() != "all" => cx.cidr(a, "rule prefix"),
            _ => None,
        };
        let (from, to) = (prefix(&r.from, cx), prefix(&r.to, cx));
        if let (Some((f, _)), Some((t, _))) = (from, to) {
            if f.is_ipv4() != t.is_ipv4() {
                cx.err(
                    r.to.as_ref().unwrap(),
                    "`from` and `to` are of different IP families",
                    None,
                );
            }
        }
        let fwmark = r.fwmark.as_ref().and_then(|m| {
            let parsed = parse_fwmark(m);
            if parsed.is_none() {
                cx.err(
                    m,
                    format!("fwmark `{}` is not a number or number/mask", m.as_str()),
                    Some("write e.g. 0x10, 16 or 0x10/0xff".into()),
                );
            }
            parsed
        });
        let action = match r.action.as_ref().map(|a| (a, a.as_str())) {
            None | Some((_, "lookup")) => None,
            Some((_, "blackhole")) => Some(RuleAction::Blackhole),
            Some((_, "unreachable")) => Some(RuleAction::Unreachable),
            Some((_, "prohibit")) => Some(RuleAction::Prohibit),
            Some((a, other)) => {
                cx.err(
                    a,
                    format!("unknown rule action `{other}`"),
                    Some("actions: lookup (with table), blackhole, unreachable, prohibit".into()),
                );
                None
            }
        };
        let first: Option<Option<Location>> =
            [&r.from, &r.to, &r.iif, &r.oif, &r.fwmark, &r.action]
                .into_iter()
                .flatten()
                .next()
                .map(|s| cx.loc(s));
        let at = first
            .or_else(|| r.table.as_ref().map(|t| cx.loc(t)))
            .or_else(|| r.priority.as_ref().map(|p| cx.loc(p)))
            .flatten();
        rules.push(Rule {
            v6: [from, to].into_iter().flatten().any(|(a, _)| a.is_ipv6()),
            from,
            to,
            iif: r.iif.map(|x| x.to_string()),
            oif: r.oif.map(|x| x.to_string()),
            fwmark,
            table: r.table.map(|t| *t),
            priority: r.priority.map(|t| *t),
            action,
            at,
        });
    }
    rules
}

/// `neighbors:`: static neighbour entries.
pub(super) fn neighbors(cx: &mut Ctx, here: &Here, raw: Vec<raw::Neighbor>) -> Vec<Neighbor> {
    let mut neighbors = vec![];
    for n in raw {
        here.check_dev(cx, &n.dev);
        if !valid_mac(&n.lladdr) {
            cx.err(
                &n.lladdr,
                format!("`{}` is not a MAC address", n.lladdr.as_str()),
                None,
            );
        }
        if let Some(addr) = cx.ip(&n.addr, "neighbour address") {
            neighbors.push(Neighbor {
                dev: n.dev.to_string(),
                addr,
                lladdr: n.lladdr.to_string(),
                at: cx.loc(&n.addr),
            });
        }
    }
    neighbors
}
