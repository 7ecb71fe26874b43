//! Routes and policy rules over rtnetlink, with the defaults `ip route add`
//! and `ip rule add` would give them (protocol boot; link scope for a
//! gatewayless unicast route; a rule looks up `main` unless told).

use std::net::IpAddr;

use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope, RouteType as NlRouteType};
use rtnetlink::packet_route::rule::{RuleAction as NlRuleAction, RuleAttribute};

use super::TopologyError;
use super::rtnl::{Rtnl, What};
use crate::scenario::{Route, RouteType, Rule, RuleAction};

/// Adds a route (`ip route add ...`).
pub(super) fn add(rtnl: &mut Rtnl, ns: &str, r: &Route) -> Result<(), TopologyError> {
    let at = r.at.as_ref();
    let cmd = route_cmd(r);
    let invalid = |e: String| TopologyError::Netlink {
        cmd: cmd.clone(),
        ns: ns.to_string(),
        at: at.cloned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    };
    let unspecified: IpAddr = if r.v6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let (dst, plen) = r.to.unwrap_or((unspecified, 0));
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst, plen)
        .map_err(|e| invalid(e.to_string()))?
        .protocol(RouteProtocol::Boot)
        .kind(match r.kind {
            RouteType::Unicast => NlRouteType::Unicast,
            RouteType::Blackhole => NlRouteType::BlackHole,
            RouteType::Unreachable => NlRouteType::Unreachable,
            RouteType::Prohibit => NlRouteType::Prohibit,
        });
    if let Some(v) = r.via {
        b = b.gateway(v).map_err(|e| invalid(e.to_string()))?;
    } else if r.kind == RouteType::Unicast {
        b = b.scope(RouteScope::Link);
    }
    if let Some(s) = r.src {
        b = b.pref_source(s).map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(d) = &r.dev {
        b = b.output_interface(rtnl.index(ns, d, at)?);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    if let Some(t) = r.table {
        b = b.table_id(t);
    }
    let handle = rtnl.handle(ns);
    rtnl.run(
        What { cmd, ns, at },
        handle.route().add(b.build()).execute(),
    )
}

/// The `ip` command a route stands for, for error messages.
fn route_cmd(r: &Route) -> String {
    let mut c = format!("ip {}route add", if r.v6 { "-6 " } else { "" });
    match r.kind {
        RouteType::Unicast => {}
        RouteType::Blackhole => c.push_str(" blackhole"),
        RouteType::Unreachable => c.push_str(" unreachable"),
        RouteType::Prohibit => c.push_str(" prohibit"),
    }
    match r.to {
        None => c.push_str(" default"),
        Some((a, p)) => c.push_str(&format!(" {a}/{p}")),
    }
    let opt = [
        ("via", r.via.map(|v| v.to_string())),
        ("dev", r.dev.clone()),
        ("src", r.src.map(|s| s.to_string())),
        ("metric", r.metric.map(|m| m.to_string())),
        ("table", r.table.map(|t| t.to_string())),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            c.push_str(&format!(" {k} {v}"));
        }
    }
    c
}

/// Adds a policy rule (`ip rule add ...`).
pub(super) fn add_rule(rtnl: &mut Rtnl, ns: &str, r: &Rule) -> Result<(), TopologyError> {
    let at = r.at.as_ref();
    let handle = rtnl.handle(ns);
    let mut req = handle.rule().add();
    {
        let m = req.message_mut();
        m.header.family = if r.v6 {
            rtnetlink::packet_route::AddressFamily::Inet6
        } else {
            rtnetlink::packet_route::AddressFamily::Inet
        };
        m.header.action = match r.action {
            None => NlRuleAction::ToTable,
            Some(RuleAction::Blackhole) => NlRuleAction::Blackhole,
            Some(RuleAction::Unreachable) => NlRuleAction::Unreachable,
            Some(RuleAction::Prohibit) => NlRuleAction::Prohibit,
        };
        if r.action.is_some() {
            // Only a lookup names a table.
            m.header.table = 0;
        }
        for (prefix, is_src) in [(r.from, true), (r.to, false)] {
            let Some((a, p)) = prefix else { continue };
            if is_src {
                m.header.src_len = p;
                m.attributes.push(RuleAttribute::Source(a));
            } else {
                m.header.dst_len = p;
                m.attributes.push(RuleAttribute::Destination(a));
            }
        }
        if let Some((mark, mask)) = r.fwmark {
            m.attributes.push(RuleAttribute::FwMark(mark));
            if let Some(mask) = mask {
                m.attributes.push(RuleAttribute::FwMask(mask));
            }
        }
    }
    if let Some(i) = &r.iif {
        req = req.input_interface(i.clone());
    }
    if let Some(o) = &r.oif {
        req = req.output_interface(o.clone());
    }
    if let Some(p) = r.priority {
        req = req.priority(p);
    }
    if let (None, Some(t)) = (r.action, r.table) {
        req = req.table_id(t);
    }
    rtnl.run(
        What {
            cmd: rule_cmd(r),
            ns,
            at,
        },
        req.execute(),
    )
}

/// The `ip` command a rule stands for, for error messages.
fn rule_cmd(r: &Rule) -> String {
    let mut c = format!("ip {}rule add", if r.v6 { "-6 " } else { "" });
    for (k, v) in [("from", r.from), ("to", r.to)] {
        if let Some((a, p)) = v {
            c.push_str(&format!(" {k} {a}/{p}"));
        }
    }
    for (k, v) in [("iif", &r.iif), ("oif", &r.oif)] {
        if let Some(v) = v {
            c.push_str(&format!(" {k} {v}"));
        }
    }
    if let Some((m, mask)) = r.fwmark {
        c.push_str(&format!(" fwmark {m:#x}"));
        if let Some(mask) = mask {
            c.push_str(&format!("/{mask:#x}"));
        }
    }
    if let Some(p) = r.priority {
        c.push_str(&format!(" priority {p}"));
    }
    match (r.action, r.table) {
        (Some(a), _) => c.push_str(&format!(" {}", format!("{a:?}").to_lowercase())),
        (None, Some(t)) => c.push_str(&format!(" table {t}")),
        (None, None) => {}
    }
    c
}
