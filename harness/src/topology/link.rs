//! Links over rtnetlink: veth pairs (the peer created straight in its own
//! namespace), bridges, macvlans and VXLANs; MTU, MAC, master and up.

use std::net::IpAddr;

use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, MacVlanMode,
};
use rtnetlink::{LinkBridge, LinkMacVlan, LinkUnspec, LinkVxlan};

use super::TopologyError;
use super::rtnl::{Rtnl, What};
use crate::scenario::{Link, LinkKind, parse_mac};

/// The queue counts of a veth end created with a single queue each way
/// (`numtxqueues 1 numrxqueues 1`).
fn one_queue_each_way() -> [LinkAttribute; 2] {
    [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]
}

// Long on purpose: one netlink message per link kind, side by side.
/// Creates a link (not a tun/tap: those are opened, not made over netlink),
/// with its MTU and MAC, and the peer of a veth with the peer's own.
pub(super) fn create(rtnl: &mut Rtnl, ns: &str, l: &Link) -> Result<(), TopologyError> {
    let at = l.at.as_ref();
    let (msg, cmd) = match &l.kind {
        LinkKind::Veth {
            peer_ns,
            peer,
            peer_mac,
            ..
        } => {
            let mut p = LinkUnspec::new_with_name(peer)
                .setns_by_fd(rtnl.ns_fd(peer_ns))
                .build();
            p.attributes.extend(extras(l.mtu, peer_mac.as_deref()));
            let mut msg = LinkUnspec::new_with_name(&l.name).build();
            // Each end gets an ifindex of its own, never its peer's: the
            // kernel's link watcher treats a device whose link (the peer)
            // has another index as urgent, so carrier changes are applied
            // (queue activated, operstate up, IPv6 addresses routed) at
            // once instead of up to a second later, as happens when both
            // ends are, say, ifindex 2 in their own namespaces.
            msg.header.index = rtnl.fresh_ifindex();
            p.header.index = rtnl.fresh_ifindex();
            // One queue each way, as veth sets up anyway when not told:
            // told, it need not shrink its per-CPU default after the fact,
            // which waits for an expedited RCU grace period while holding
            // RTNL (`veth_init_queues`), stalling every other netlink
            // request and namespace creation on the machine meanwhile.
            for m in [&mut msg, &mut p] {
                m.attributes.extend(one_queue_each_way());
            }
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
            ]));
            let cmd = format!(
                "ip link add {} type veth peer name {peer} netns {peer_ns}",
                l.name
            );
            (msg, cmd)
        }
        LinkKind::Bridge => (
            LinkBridge::new(&l.name).build(),
            format!("ip link add {} type bridge", l.name),
        ),
        LinkKind::Macvlan { parent, mode } => {
            let pidx = rtnl.index(ns, parent, at)?;
            let m = match mode.as_str() {
                "private" => MacVlanMode::Private,
                "vepa" => MacVlanMode::Vepa,
                "passthru" => MacVlanMode::Passthrough,
                _ => MacVlanMode::Bridge,
            };
            let b = LinkMacVlan::new(&l.name, pidx, m).build();
            let cmd = format!(
                "ip link add {} link {parent} type macvlan mode {mode}",
                l.name
            );
            (b, cmd)
        }
        LinkKind::Vxlan {
            vni,
            remote,
            local,
            parent,
            dstport,
        } => {
            let mut b = LinkVxlan::new(&l.name, *vni).port(*dstport);
            match remote {
                Some(IpAddr::V4(a)) => b = b.remote(*a),
                Some(IpAddr::V6(a)) => b = b.remote6(*a),
                None => {}
            }
            match local {
                Some(IpAddr::V4(a)) => b = b.local(*a),
                Some(IpAddr::V6(a)) => b = b.local6(*a),
                None => {}
            }
            if let Some(p) = parent {
                b = b.dev(rtnl.index(ns, p, at)?);
            }
            let cmd = format!("ip link add {} type vxlan id {vni}", l.name);
            (b.build(), cmd)
        }
        LinkKind::Tun | LinkKind::Tap => return Ok(()),
    };
    let mut msg = msg;
    msg.attributes.extend(extras(l.mtu, l.mac.as_deref()));
    let handle = rtnl.handle(ns);
    rtnl.run(What { cmd, ns, at }, handle.link().add(msg).execute())
}

/// The MTU and MAC attributes of a new device (`ip link add ... mtu M address A`).
fn extras(mtu: Option<u32>, mac: Option<&str>) -> Vec<LinkAttribute> {
    let mac = mac.and_then(parse_mac);
    mtu.map(LinkAttribute::Mtu)
        .into_iter()
        .chain(mac.map(|m| LinkAttribute::Address(m.to_vec())))
        .collect()
}

/// Enslaves `dev` to the bridge `master` (`ip link set dev master br`).
pub(super) fn set_master(
    rtnl: &mut Rtnl,
    ns: &str,
    dev: &str,
    master: &str,
    l: &Link,
) -> Result<(), TopologyError> {
    let at = l.at.as_ref();
    let idx = rtnl.index(ns, dev, at)?;
    let midx = rtnl.index(ns, master, at)?;
    let msg = LinkUnspec::new_with_index(idx).controller(midx).build();
    let handle = rtnl.handle(ns);
    let cmd = format!("ip link set {dev} master {master}");
    rtnl.run(What { cmd, ns, at }, handle.link().set(msg).execute())
}

/// Brings `dev` up (`ip link set dev up`). Returns its ifindex if it had
/// no carrier right after (its queue is activated later, by the kernel)
/// or is a veth end (IPv6 routes its addresses only once the kernel has
/// set the operational state up). A veth end is known to be one without
/// asking the kernel: every request queues behind RTNL, which a busy
/// machine's namespace clean-up holds for long.
pub(super) fn set_up(
    rtnl: &mut Rtnl,
    ns: &str,
    dev: &str,
    veth: bool,
    at: Option<&crate::scenario::Location>,
) -> Result<Option<u32>, TopologyError> {
    let idx = up(rtnl, ns, dev, at)?;
    if veth {
        return Ok(Some(idx));
    }
    let now = rtnl.links(ns, Some(idx))?;
    let settled = now.first().is_some_and(|l| l.lower_up && !l.veth);
    Ok((!settled).then_some(idx))
}

/// Brings `dev` up; its ifindex.
pub(super) fn up(
    rtnl: &mut Rtnl,
    ns: &str,
    dev: &str,
    at: Option<&crate::scenario::Location>,
) -> Result<u32, TopologyError> {
    let idx = rtnl.index(ns, dev, at)?;
    let msg = LinkUnspec::new_with_index(idx).up().build();
    let handle = rtnl.handle(ns);
    let cmd = format!("ip link set {dev} up");
    rtnl.run(What { cmd, ns, at }, handle.link().set(msg).execute())?;
    Ok(idx)
}

/// Sets the MTU and MAC of a tun/tap device, which is opened, not created
/// over netlink (`ip link set dev mtu M address A`).
pub(super) fn configure_tap(rtnl: &mut Rtnl, ns: &str, l: &Link) -> Result<(), TopologyError> {
    let attrs = extras(l.mtu, l.mac.as_deref());
    if attrs.is_empty() {
        return Ok(());
    }
    let at = l.at.as_ref();
    let mut msg = LinkUnspec::new_with_index(rtnl.index(ns, &l.name, at)?).build();
    msg.attributes.extend(attrs);
    let handle = rtnl.handle(ns);
    let cmd = format!("ip link set {} (mtu/address)", l.name);
    rtnl.run(What { cmd, ns, at }, handle.link().set(msg).execute())
}
