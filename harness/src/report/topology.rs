//! The namespaces and devices of a run as the report model holds them:
//! what the scenario made (links, their veth peer ends, addresses) and
//! what the kernel had there once built (a CNI plugin's devices).

use crate::common::Names;
use crate::scenario::{LinkKind, Scenario};

use super::model::{DevReport, NsReport};

/// The topology of `s` as built: each namespace's devices, in the
/// scenario's order, then the ones only the kernel listed (`names`).
pub fn topology(s: &Scenario, names: &Names) -> Vec<NsReport> {
    let mut out: Vec<NsReport> = s
        .namespaces
        .iter()
        .map(|n| NsReport {
            name: n.name.clone(),
            devices: vec![],
        })
        .collect();
    let mut add = |ns: &str, d: DevReport| {
        if let Some(n) = out.iter_mut().find(|n| n.name == ns) {
            if !n.devices.iter().any(|x| x.name == d.name) {
                n.devices.push(d);
            }
        }
    };
    for n in &s.namespaces {
        for l in &n.links {
            let (kind, peer, lower) = match &l.kind {
                LinkKind::Veth { peer_ns, peer, .. } => {
                    ("veth", Some(format!("{peer_ns}/{peer}")), None)
                }
                LinkKind::Bridge => ("bridge", None, None),
                LinkKind::Macvlan { parent, .. } => ("macvlan", None, Some(parent.clone())),
                LinkKind::Vxlan { parent, .. } => ("vxlan", None, parent.clone()),
                LinkKind::Tun => ("tun", None, None),
                LinkKind::Tap => ("tap", None, None),
            };
            add(
                &n.name,
                DevReport {
                    name: l.name.clone(),
                    kind: kind.into(),
                    addresses: vec![],
                    peer,
                    master: l.master.clone(),
                    lower,
                },
            );
            if let LinkKind::Veth {
                peer_ns,
                peer,
                peer_master,
                ..
            } = &l.kind
            {
                add(
                    peer_ns,
                    DevReport {
                        name: peer.clone(),
                        kind: "veth".into(),
                        addresses: vec![],
                        peer: Some(format!("{}/{}", n.name, l.name)),
                        master: peer_master.clone(),
                        lower: None,
                    },
                );
            }
        }
    }
    // Devices the kernel had that the scenario did not make (a CNI
    // plugin's).
    for (ns, d) in kernel_devices(names) {
        add(&ns, d);
    }
    for n in &s.namespaces {
        for a in &n.addresses {
            if let Some(d) = out
                .iter_mut()
                .find(|x| x.name == n.name)
                .and_then(|x| x.devices.iter_mut().find(|d| d.name == a.dev))
            {
                let a = format!("{}/{}", a.addr, a.prefix);
                if !d.addresses.contains(&a) {
                    d.addresses.push(a);
                }
            }
        }
    }
    // Addresses the kernel listed on devices the scenario made (a CNI
    // plugin's IPAM on a scenario's bridge).
    for (ns, dev, addresses) in kernel_addresses(names) {
        if let Some(d) = out
            .iter_mut()
            .find(|x| x.name == ns)
            .and_then(|x| x.devices.iter_mut().find(|d| d.name == dev))
        {
            for a in addresses {
                if !d.addresses.contains(&a) {
                    d.addresses.push(a);
                }
            }
        }
    }
    out
}

/// The addresses the kernel listed, per (namespace, device).
fn kernel_addresses(names: &Names) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = names
        .links
        .iter()
        .filter(|(_, m)| !m.addresses.is_empty())
        .filter_map(|((inode, ifindex), m)| {
            Some((
                names.netns.get(inode)?.clone(),
                names.devs.get(&(*inode, *ifindex))?.clone(),
                m.addresses.clone(),
            ))
        })
        .collect();
    out.sort();
    out
}

/// The devices the kernel listed in the run's namespaces, by ifindex,
/// with the namespace each is in.
fn kernel_devices(names: &Names) -> Vec<(String, DevReport)> {
    let mut listed: Vec<(&u32, &u32, &String)> = names
        .devs
        .iter()
        .map(|((inode, ifindex), dev)| (inode, ifindex, dev))
        .collect();
    listed.sort();
    let mut out = vec![];
    for &(inode, ifindex, dev) in &listed {
        let Some(ns) = names.netns.get(inode).filter(|_| dev != "lo") else {
            continue;
        };
        let meta = names
            .links
            .get(&(*inode, *ifindex))
            .cloned()
            .unwrap_or_default();
        let name_in = |index: u32| names.devs.get(&(*inode, index)).cloned();
        out.push((
            ns.clone(),
            DevReport {
                name: dev.clone(),
                kind: meta.kind.clone().unwrap_or_else(|| "device".into()),
                addresses: vec![],
                peer: peer_of(names, &listed, *inode, *ifindex, &meta),
                master: meta.master.and_then(name_in),
                lower: None,
            },
        ));
    }
    out
}

/// A veth's peer as `namespace/device`: the one device of the run whose
/// `IFLA_LINK` names this one back (ifindexes repeat across namespaces,
/// so a link alone is not enough).
fn peer_of(
    names: &Names,
    listed: &[(&u32, &u32, &String)],
    inode: u32,
    ifindex: u32,
    meta: &crate::common::LinkMeta,
) -> Option<String> {
    if meta.kind.as_deref() != Some("veth") {
        return None;
    }
    let mut found = listed.iter().filter(|&&(i, x, _)| {
        (*i, *x) != (inode, ifindex)
            && meta.link == Some(*x)
            && names
                .links
                .get(&(*i, *x))
                .is_some_and(|m| m.link == Some(ifindex))
    });
    let (i, _, dev) = found.next()?;
    // Two candidates: the drawing would guess; it draws none.
    if found.next().is_some() {
        return None;
    }
    Some(format!("{}/{dev}", names.netns.get(i)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::LinkMeta;

    #[test]
    fn a_cni_plugins_devices_are_drawn_with_their_kind_bridge_and_peer() {
        // The bridge plugin's work, as the kernel lists it: node has cni0
        // (ifindex 3) and a veth end (4) on it, linked to pod's eth0 (2),
        // which links back. `other` has an ifindex 2 too, linked to 9: an
        // ifindex alone must not make it the peer.
        let s = Scenario::parse(
            std::path::Path::new("t.yaml"),
            "namespaces:\n  node: {}\n  pod: {}\n  other: {}\ninject: {socket: {from: pod, proto: udp, to: 192.0.2.1, port: 9}}\n",
        )
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        let mut names = Names::default();
        for (inode, ns) in [(1, "node"), (2, "pod"), (3, "other")] {
            names.netns.insert(inode, ns.into());
        }
        let mut dev = |inode: u32, index: u32, name: &str, kind: &str, master, link| {
            names.devs.insert((inode, index), name.into());
            let kind = Some(kind.into());
            let addresses = vec![];
            names.links.insert(
                (inode, index),
                LinkMeta {
                    kind,
                    master,
                    link,
                    addresses,
                },
            );
        };
        dev(1, 3, "cni0", "bridge", None, None);
        dev(1, 4, "veth1234", "veth", Some(3), Some(2));
        dev(2, 2, "eth0", "veth", None, Some(4));
        dev(3, 2, "eth0", "veth", None, Some(9));
        let t = topology(&s, &names);
        let get = |ns: &str, d: &str| {
            t.iter()
                .find(|n| n.name == ns)
                .and_then(|n| n.devices.iter().find(|x| x.name == d))
                .cloned()
                .unwrap()
        };
        assert_eq!(get("node", "cni0").kind, "bridge");
        let v = get("node", "veth1234");
        assert_eq!(
            (v.kind.as_str(), v.master.as_deref()),
            ("veth", Some("cni0"))
        );
        assert_eq!(v.peer.as_deref(), Some("pod/eth0"));
        assert_eq!(get("pod", "eth0").peer.as_deref(), Some("node/veth1234"));
        assert_eq!(get("other", "eth0").peer, None);
    }

    #[test]
    fn addresses_a_plugin_assigned_are_drawn_with_the_scenarios_own() {
        // node has a scenario-made bridge br0 with 192.0.2.1/24; host-local
        // gave pod's eth0 (made by the plugin) 192.0.2.2/24 and put the
        // gateway 192.0.2.1/24 on br0 again (listed by the kernel too).
        let s = Scenario::parse(
            std::path::Path::new("t.yaml"),
            "namespaces:\n  node:\n    links: [{name: br0, kind: bridge}]\n    addresses: [{dev: br0, addr: 192.0.2.1/24}]\n  pod: {}\ninject: {socket: {from: pod, proto: udp, to: 192.0.2.1, port: 9}}\n",
        )
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        let mut names = Names::default();
        names.netns.insert(1, "node".into());
        names.netns.insert(2, "pod".into());
        for (inode, index, dev, addresses) in [
            (1, 3, "br0", vec!["192.0.2.1/24", "2001:db8::1/64"]),
            (2, 2, "eth0", vec!["192.0.2.2/24"]),
        ] {
            names.devs.insert((inode, index), dev.into());
            let addresses = addresses.into_iter().map(String::from).collect();
            names.links.insert(
                (inode, index),
                LinkMeta {
                    addresses,
                    ..LinkMeta::default()
                },
            );
        }
        let t = topology(&s, &names);
        let addrs = |ns: &str, d: &str| {
            t.iter()
                .find(|n| n.name == ns)
                .and_then(|n| n.devices.iter().find(|x| x.name == d))
                .map(|d| d.addresses.clone())
                .unwrap()
        };
        assert_eq!(addrs("node", "br0"), ["192.0.2.1/24", "2001:db8::1/64"]);
        assert_eq!(addrs("pod", "eth0"), ["192.0.2.2/24"]);
    }
}
