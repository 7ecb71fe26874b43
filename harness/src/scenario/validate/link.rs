//! `links:`: veth pairs, tun/tap, bridges, macvlan and vxlan.

use super::ctx::*;

/// The link kinds a scenario can declare.
const KINDS: [&str; 6] = ["veth", "tun", "tap", "bridge", "macvlan", "vxlan"];

/// `links:`, in file order.
pub(super) fn links(
    cx: &mut Ctx,
    here: &Here,
    raw: Vec<raw::Link>,
    ns_names: &[String],
) -> Vec<Link> {
    let mut links = vec![];
    let mut seen = BTreeSet::new();
    let bridges: BTreeSet<String> = raw
        .iter()
        .filter(|l| l.kind.as_str() == "bridge")
        .map(|l| l.name.to_string())
        .collect();
    for l in raw {
        check_names(cx, here, &l, &mut seen, &bridges);
        let Some(kind) = kind(cx, here, &l, ns_names) else {
            continue;
        };
        links.push(Link {
            name: l.name.to_string(),
            kind,
            mtu: l.mtu.map(|m| *m),
            up: l.up.is_none_or(|u| *u),
            mac: l.mac.map(|m| m.to_string()),
            master: l.master.map(|m| m.to_string()),
            at: cx.loc(&l.name),
        });
    }
    links
}

/// The link's own name, MAC and master: valid, unique, a declared bridge.
fn check_names(
    cx: &mut Ctx,
    here: &Here,
    l: &raw::Link,
    seen: &mut BTreeSet<String>,
    bridges: &BTreeSet<String>,
) {
    if !valid_ifname(&l.name) {
        cx.err(
            &l.name,
            format!("interface name `{}` is not valid", l.name.as_str()),
            Some("use 1-15 letters, digits, -, _ or .".into()),
        );
    }
    if !seen.insert(l.name.to_string()) || l.name.as_str() == "lo" {
        cx.err(
            &l.name,
            format!(
                "device `{}` is declared twice in namespace `{}`",
                l.name.as_str(),
                here.name.as_str()
            ),
            None,
        );
    }
    check_mac(cx, l.mac.as_ref());
    if let Some(m) = &l.master {
        if !bridges.contains(m.as_str()) {
            cx.err(
                m,
                format!(
                    "`{}` is not a bridge declared in namespace `{}`",
                    m.as_str(),
                    here.name.as_str()
                ),
                Some("declare `{ name: ..., kind: bridge }` in the same namespace".into()),
            );
        }
    }
}

/// Reports keys that belong to other link kinds.
fn no_extra(cx: &mut Ctx, kind: &str, l: &raw::Link) {
    for (present, key) in [
        (l.peer.is_some(), "peer"),
        (
            l.parent.is_some() && kind != "macvlan" && kind != "vxlan",
            "parent",
        ),
        (l.mode.is_some() && kind != "macvlan", "mode"),
        (l.vni.is_some() && kind != "vxlan", "vni"),
        (l.remote.is_some() && kind != "vxlan", "remote"),
        (l.local.is_some() && kind != "vxlan", "local"),
        (l.dstport.is_some() && kind != "vxlan", "dstport"),
    ] {
        if present && !(key == "peer" && kind == "veth") {
            cx.err(&l.kind, format!("a {kind} link has no `{key}`"), None);
        }
    }
}

/// The kind and its own keys, or `None` (reported) when unusable.
fn kind(cx: &mut Ctx, here: &Here, l: &raw::Link, ns_names: &[String]) -> Option<LinkKind> {
    match l.kind.as_str() {
        "veth" => veth(cx, l, ns_names),
        k @ ("tun" | "tap" | "bridge") => {
            no_extra(cx, k, l);
            Some(match k {
                "tun" => LinkKind::Tun,
                "tap" => LinkKind::Tap,
                _ => LinkKind::Bridge,
            })
        }
        "macvlan" => macvlan(cx, here, l),
        "vxlan" => vxlan(cx, here, l),
        other => {
            let near = did_you_mean(other, KINDS);
            cx.err(
                &l.kind,
                format!("unknown link kind `{other}`"),
                Some(near.map_or(format!("kinds: {}", KINDS.join(", ")), |n| {
                    format!("did you mean `{n}`?")
                })),
            );
            None
        }
    }
}

/// A veth pair: the peer lives in another of the scenario's namespaces.
fn veth(cx: &mut Ctx, l: &raw::Link, ns_names: &[String]) -> Option<LinkKind> {
    let Some(p) = &l.peer else {
        cx.err(&l.kind, "a veth needs a `peer: { namespace, name }`", None);
        return None;
    };
    no_extra(cx, "veth", l);
    if !ns_names.iter().any(|n| n == p.namespace.as_str()) {
        let near = did_you_mean(&p.namespace, ns_names.iter().map(String::as_str));
        cx.err(
            &p.namespace,
            format!(
                "veth peer namespace `{}` is not declared",
                p.namespace.as_str()
            ),
            Some(match near {
                Some(n) => {
                    format!("did you mean `{n}`? peers must be in the scenario's own namespaces")
                }
                None => {
                    "declare it under `namespaces:`; veths never reach the root namespace".into()
                }
            }),
        );
    }
    if !valid_ifname(&p.name) {
        cx.err(
            &p.name,
            format!("interface name `{}` is not valid", p.name.as_str()),
            Some("use 1-15 letters, digits, -, _ or .".into()),
        );
    }
    check_mac(cx, p.mac.as_ref());
    Some(LinkKind::Veth {
        peer_ns: p.namespace.to_string(),
        peer: p.name.to_string(),
        peer_mac: p.mac.as_ref().map(|m| m.to_string()),
        peer_master: p.master.as_ref().map(|m| m.to_string()),
    })
}

/// A macvlan on a parent device of the same namespace.
fn macvlan(cx: &mut Ctx, here: &Here, l: &raw::Link) -> Option<LinkKind> {
    no_extra(cx, "macvlan", l);
    let Some(parent) = &l.parent else {
        cx.err(&l.kind, "a macvlan needs a `parent` device", None);
        return None;
    };
    here.check_dev(cx, parent);
    let mode = l
        .mode
        .as_ref()
        .map_or("bridge".to_string(), |m| m.to_string());
    if !["bridge", "private", "vepa", "passthru"].contains(&mode.as_str()) {
        cx.err(
            l.mode.as_ref().unwrap(),
            format!("unknown macvlan mode `{mode}`"),
            Some("modes: bridge, private, vepa, passthru".into()),
        );
    }
    Some(LinkKind::Macvlan {
        parent: parent.to_string(),
        mode,
    })
}

/// A vxlan device.
fn vxlan(cx: &mut Ctx, here: &Here, l: &raw::Link) -> Option<LinkKind> {
    no_extra(cx, "vxlan", l);
    let Some(vni) = &l.vni else {
        cx.err(&l.kind, "a vxlan needs a `vni`", None);
        return None;
    };
    if let Some(p) = &l.parent {
        here.check_dev(cx, p);
    }
    Some(LinkKind::Vxlan {
        vni: **vni,
        remote: l.remote.as_ref().and_then(|r| cx.ip(r, "remote")),
        local: l.local.as_ref().and_then(|r| cx.ip(r, "local")),
        parent: l.parent.as_ref().map(|p| p.to_string()),
        dstport: l.dstport.as_ref().map_or(4789, |d| **d),
    })
}
