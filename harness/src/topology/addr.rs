//! Addresses and neighbour entries over rtnetlink.

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::neighbour::NeighbourState;

use super::TopologyError;
use super::rtnl::{Rtnl, What};
use crate::scenario::{Address, Neighbor, parse_mac};

/// Adds an address as `ip addr add A/P dev D` does: no broadcast address
/// unless asked for, and IPv6 without duplicate address detection
/// (`nodad`), so the address is usable at once.
pub(super) fn add(rtnl: &mut Rtnl, ns: &str, a: &Address) -> Result<(), TopologyError> {
    let at = a.at.as_ref();
    let idx = rtnl.index(ns, &a.dev, at)?;
    let handle = rtnl.handle(ns);
    let mut req = handle.address().add(idx, a.addr, a.prefix);
    let msg = req.message_mut();
    msg.attributes
        .retain(|x| !matches!(x, AddressAttribute::Broadcast(_)));
    let mut cmd = format!("ip addr add {}/{} dev {}", a.addr, a.prefix, a.dev);
    if a.addr.is_ipv6() {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        cmd.push_str(" nodad");
    }
    rtnl.run(What { cmd, ns, at }, req.execute())
}

/// Sets a permanent neighbour entry (`ip neigh replace ... nud permanent`).
pub(super) fn neighbour(rtnl: &mut Rtnl, ns: &str, n: &Neighbor) -> Result<(), TopologyError> {
    let at = n.at.as_ref();
    let idx = rtnl.index(ns, &n.dev, at)?;
    // Validated as a MAC when the scenario was read.
    let lladdr = parse_mac(&n.lladdr).unwrap_or_default();
    let handle = rtnl.handle(ns);
    let req = handle
        .neighbours()
        .add(idx, n.addr)
        .link_layer_address(&lladdr)
        .state(NeighbourState::Permanent)
        .replace();
    let cmd = format!(
        "ip neigh replace {} lladdr {} dev {} nud permanent",
        n.addr, n.lladdr, n.dev
    );
    rtnl.run(What { cmd, ns, at }, req.execute())
}
