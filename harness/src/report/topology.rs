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
    // plugin's), by ifindex.
    let mut listed: Vec<(&u32, &u32, &String)> = names
        .devs
        .iter()
        .map(|((inode, ifindex), dev)| (inode, ifindex, dev))
        .collect();
    listed.sort();
    for (inode, _, dev) in listed {
        if dev == "lo" {
            continue;
        }
        if let Some(ns) = names.netns.get(inode) {
            add(
                ns,
                DevReport {
                    name: dev.clone(),
                    kind: "device".into(),
                    addresses: vec![],
                    peer: None,
                    master: None,
                    lower: None,
                },
            );
        }
    }
    for n in &s.namespaces {
        for a in &n.addresses {
            if let Some(d) = out
                .iter_mut()
                .find(|x| x.name == n.name)
                .and_then(|x| x.devices.iter_mut().find(|d| d.name == a.dev))
            {
                d.addresses.push(format!("{}/{}", a.addr, a.prefix));
            }
        }
    }
    out
}
