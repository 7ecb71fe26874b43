//! rtnetlink connections into a scenario's namespaces.
//!
//! A netlink socket belongs to the namespace it was created in, so each
//! connection is opened from a thread inside its scenario namespace (see
//! [`netns::run_in_scoped`]) and then driven from the caller's thread: every
//! request lands in that namespace and none can reach the root namespace.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as Info, LinkMessage, State,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{Handle, LinkUnspec};

use super::{NetnsHandle, TopologyError};
use crate::scenario::Location;
use crate::topology::netns;

/// One rtnetlink connection per scenario namespace, and the ifindex of
/// every device looked up so far.
pub(super) struct Rtnl {
    rt: tokio::runtime::Runtime,
    conns: HashMap<String, Conn>,
    next_ifindex: u32,
}

struct Conn {
    handle: Handle,
    /// Kept open for `IFLA_NET_NS_FD` (a veth peer created in it).
    ns_file: File,
    index: HashMap<String, u32>,
}

/// A device as the kernel lists it.
#[expect(
    clippy::struct_excessive_bools,
    reason = "the kernel's own link flags, read as they are"
)]
pub(super) struct LinkInfo {
    /// Its ifindex.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its MAC, for Ethernet-like devices.
    pub mac: Option<[u8; 6]>,
    /// Carrier on (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// Operational state up (RFC 2863), as linkwatch sets it.
    pub oper_up: bool,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// A veth or a bridge: devices whose carrier comes after they are up.
    pub pair_or_bridge: bool,
    /// A veth end.
    pub veth: bool,
    /// What the kernel says it is, when it does (`IFLA_INFO_KIND`).
    pub kind: Option<String>,
    /// Its bridge's ifindex (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// The ifindex it is linked to (`IFLA_LINK`): a veth's peer, in the
    /// peer's namespace.
    pub link: Option<u32>,
}

/// What a request was, for its error: the `ip` command it stands for, the
/// scenario namespace and the scenario line.
pub(super) struct What<'a> {
    /// The request as the equivalent `ip` command.
    pub cmd: String,
    /// Scenario namespace.
    pub ns: &'a str,
    /// Where the scenario asks for it.
    pub at: Option<&'a Location>,
}

impl<'a> What<'a> {
    /// A request of the harness's own (a query, a wait), which no scenario
    /// line asks for.
    fn unlocated(cmd: impl Into<String>, ns: &'a str) -> Self {
        What {
            cmd: cmd.into(),
            ns,
            at: None,
        }
    }

    /// The wait for `what` in `ns` gave up.
    fn timed_out(what: String, ns: &str) -> TopologyError {
        TopologyError::Netlink {
            cmd: what,
            ns: ns.to_string(),
            at: None,
            source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
        }
    }

    fn fail(self, e: rtnetlink::Error) -> TopologyError {
        let source = match e {
            rtnetlink::Error::NetlinkError(m) => std::io::Error::from(m),
            other => std::io::Error::other(other.to_string()),
        };
        TopologyError::Netlink {
            cmd: self.cmd,
            ns: self.ns.to_string(),
            at: self.at.cloned(),
            source,
        }
    }
}

/// The devices, (ifindex, name), of the namespace whose file is `ns`
/// (one pktfate did not make, or its own: `/proc/thread-self/ns/net`),
/// over a netlink socket opened inside it.
pub fn device_names(ns: &std::path::Path) -> Result<Vec<(u32, String)>, TopologyError> {
    let label = ns.display().to_string();
    let io = |what: &str| {
        let what = format!("{what} ({label})");
        move |source| TopologyError::Io { what, source }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(io("starting the netlink runtime"))?;
    let rth = rt.handle().clone();
    let (conn, handle, _) = netns::run_in_scoped(ns, move || {
        let _entered = rth.enter();
        rtnetlink::new_connection()
    })
    .and_then(|r| r)
    .map_err(io("opening a netlink socket"))?;
    rt.spawn(conn);
    let msgs: Vec<LinkMessage> = rt
        .block_on(async move { handle.link().get().execute().try_collect().await })
        .map_err(|e| What::unlocated("ip link show", &label).fail(e))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some((m.header.index, n)),
                _ => None,
            })
        })
        .collect())
}

impl Rtnl {
    /// Opens a connection inside each namespace.
    pub fn open(namespaces: &[NetnsHandle]) -> Result<Self, TopologyError> {
        let io = |what: &str, ns: &NetnsHandle| {
            let what = format!("{what} in namespace `{}`", ns.name);
            move |source| TopologyError::Io { what, source }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| TopologyError::Io {
                what: "starting the netlink runtime".into(),
                source,
            })?;
        let mut conns = HashMap::new();
        for h in namespaces {
            let rth = rt.handle().clone();
            let (conn, handle, _) = netns::run_in_scoped(&h.path(), move || {
                // The socket registers with the runtime's reactor here.
                let _entered = rth.enter();
                rtnetlink::new_connection()
            })
            .and_then(|r| r)
            .map_err(io("opening a netlink socket", h))?;
            rt.spawn(conn);
            let ns_file = File::open(h.path()).map_err(io("opening the namespace file", h))?;
            conns.insert(
                h.name.clone(),
                Conn {
                    handle,
                    ns_file,
                    index: HashMap::new(),
                },
            );
        }
        Ok(Rtnl {
            rt,
            conns,
            // Above what the kernel hands out to a new namespace's first
            // devices; unique across the topology, so in each namespace.
            next_ifindex: 1000,
        })
    }

    fn conn(&self, ns: &str) -> &Conn {
        // Scenario namespaces are validated; every one has a connection.
        self.conns
            .get(ns)
            .expect("a connection per scenario namespace")
    }

    /// An ifindex no other device of this topology has.
    pub fn fresh_ifindex(&mut self) -> u32 {
        self.next_ifindex += 1;
        self.next_ifindex
    }

    /// The request handle of a namespace.
    pub fn handle(&self, ns: &str) -> Handle {
        self.conn(ns).handle.clone()
    }

    /// An fd of a namespace, for moving or creating a device in it.
    pub fn ns_fd(&self, ns: &str) -> RawFd {
        self.conn(ns).ns_file.as_raw_fd()
    }

    /// Runs one request to its acknowledgement.
    pub fn run<T>(
        &self,
        what: What<'_>,
        req: impl Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, TopologyError> {
        self.rt.block_on(req).map_err(|e| what.fail(e))
    }

    /// The ifindex of `dev` in `ns`; names the scenario line if it is missing.
    pub fn index(
        &mut self,
        ns: &str,
        dev: &str,
        at: Option<&Location>,
    ) -> Result<u32, TopologyError> {
        if let Some(i) = self.conn(ns).index.get(dev) {
            return Ok(*i);
        }
        let handle = self.handle(ns);
        let what = What {
            cmd: format!("ip link show {dev}"),
            ns,
            at,
        };
        let msg = self.run(what, async move {
            handle
                .link()
                .get()
                .match_name(dev.to_string())
                .execute()
                .try_next()
                .await
        })?;
        let index = msg.map_or(0, |m| m.header.index);
        if index == 0 {
            return Err(TopologyError::Netlink {
                cmd: format!("ip link show {dev}"),
                ns: ns.to_string(),
                at: at.cloned(),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            });
        }
        if let Some(c) = self.conns.get_mut(ns) {
            c.index.insert(dev.to_string(), index);
        }
        Ok(index)
    }

    /// Every device of a namespace, or the one with ifindex `only`.
    pub fn links(&self, ns: &str, only: Option<u32>) -> Result<Vec<LinkInfo>, TopologyError> {
        let handle = self.handle(ns);
        let what = What::unlocated("ip link show", ns);
        let msgs: Vec<LinkMessage> = self.run(what, async move {
            let mut req = handle.link().get();
            if let Some(i) = only {
                req = req.match_index(i);
            }
            req.execute().try_collect().await
        })?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                let mut name = None;
                let mut mac = None;
                let mut oper_up = false;
                let mut pair_or_bridge = false;
                let mut veth = false;
                let mut kind = None;
                let mut master = None;
                let mut link = None;
                for a in m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n),
                        LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a).ok(),
                        LinkAttribute::OperState(s) => oper_up = s == State::Up,
                        LinkAttribute::Controller(i) => master = Some(i),
                        LinkAttribute::Link(i) => link = Some(i),
                        LinkAttribute::LinkInfo(i) => {
                            kind = i.iter().find_map(|i| match i {
                                Info::Kind(k) => Some(k.to_string()),
                                _ => None,
                            });
                            veth = i.iter().any(|i| matches!(i, Info::Kind(InfoKind::Veth)));
                            pair_or_bridge =
                                veth || i.iter().any(|i| matches!(i, Info::Kind(InfoKind::Bridge)));
                        }
                        _ => {}
                    }
                }
                Some(LinkInfo {
                    index: m.header.index,
                    name: name?,
                    mac,
                    lower_up: m.header.flags.contains(LinkFlags::LowerUp),
                    oper_up,
                    up: m.header.flags.contains(LinkFlags::Up),
                    pair_or_bridge,
                    veth,
                    kind,
                    master,
                    link,
                })
            })
            .collect())
    }

    /// Waits until the devices in `late` (brought up without carrier) that
    /// have a carrier now can transmit.
    ///
    /// A veth end brought up before its peer (a bridge before its ports)
    /// gets its carrier later, and the kernel activates its transmit queue
    /// from a work item (linkwatch) after that; until then what it sends is
    /// dropped at `noop`, which loses a scenario's first ARP reply or ICMP
    /// error. Linkwatch sets the operational state to up, then activates
    /// the queue, all under RTNL: so once the state is up, one RTNL-locked
    /// request (setting `lo` up again) returns only after the activation.
    pub fn wait_carrier_work(&self, ns: &str, late: &[u32]) -> Result<(), TopologyError> {
        if late.is_empty() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let pending: Vec<String> = self
                .links(ns, None)?
                .into_iter()
                .filter(|l| late.contains(&l.index) && l.lower_up && !l.oper_up)
                .map(|l| l.name)
                .collect();
            if pending.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(What::timed_out(
                    format!("waiting for {} to transmit", pending.join(", ")),
                    ns,
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        self.after_rtnl_holders(ns)
    }

    /// Returns once whoever holds RTNL now (a kernel work item making a
    /// device usable) has let go: one RTNL-locked request, setting `lo` up
    /// again, which changes nothing.
    fn after_rtnl_holders(&self, ns: &str) -> Result<(), TopologyError> {
        let handle = self.handle(ns);
        let lo = LinkUnspec::new_with_index(1).up().build();
        let what = What::unlocated("ip link set lo up", ns);
        self.run(what, handle.link().set(lo).execute())
    }

    /// Waits until the IPv6 addresses added to devices of `ns` that are up
    /// and have a carrier are usable: each has its local route.
    ///
    /// Even without duplicate address detection (`nodad`), the kernel
    /// makes an address usable from a work item, once its device runs: it
    /// clears the tentative flag, then installs the local route. Until
    /// then a packet to the address is not the host's (`ip6_forward`,
    /// `IP_INADDRERRORS`). The flag alone does not tell: an address added
    /// while its device is down starts without it, and gets it only when
    /// that work item first runs and finds the device not ready. Under
    /// load (parallel scenarios, namespaces being deleted) the item runs
    /// late, and later still on a device whose operational state linkwatch
    /// has not set yet; so the wait is for the route itself. Addresses
    /// with real DAD (link-local ones) are not waited for, nor those of a
    /// device without carrier (they wait for it).
    pub fn wait_ipv6_usable(&self, ns: &str) -> Result<(), TopologyError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let running: Vec<u32> = self
                .links(ns, None)?
                .into_iter()
                .filter(|l| l.up && l.lower_up)
                .map(|l| l.index)
                .collect();
            let nodad = self.nodad_ipv6(ns)?;
            if !nodad.iter().any(|a| running.contains(&a.index)) {
                return Ok(());
            }
            let pending = not_usable_yet(&nodad, &running, &self.ipv6_locals(ns)?);
            if pending.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let pending: Vec<String> = pending.iter().map(ToString::to_string).collect();
                return Err(What::timed_out(
                    format!("waiting for {} to become usable", pending.join(", ")),
                    ns,
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }

    /// The destinations of the IPv6 local routes of `ns` (`ip -6 route show
    /// table local type local`).
    fn ipv6_locals(&self, ns: &str) -> Result<Vec<std::net::IpAddr>, TopologyError> {
        let handle = self.handle(ns);
        let what = What::unlocated("ip -6 route show table local type local", ns);
        let routes: Vec<RouteMessage> = self.run(what, async move {
            let req = handle
                .route()
                .get(rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new().build());
            req.execute().try_collect().await
        })?;
        Ok(local_destinations(&routes))
    }

    /// The addresses on the devices of `ns`, as (ifindex, `addr/prefix`),
    /// except IPv6 link-local ones (see [`assigned`]).
    pub fn addresses(&self, ns: &str) -> Result<Vec<(u32, String)>, TopologyError> {
        Ok(assigned(&self.address_dump(ns, "ip addr show")?))
    }

    /// Every address of `ns` (`cmd`: the `ip` command it stands for).
    fn address_dump(&self, ns: &str, cmd: &str) -> Result<Vec<AddressMessage>, TopologyError> {
        let handle = self.handle(ns);
        let what = What::unlocated(cmd, ns);
        self.run(what, async move {
            handle.address().get().execute().try_collect().await
        })
    }

    /// The IPv6 addresses of `ns` added without DAD (see [`nodad_ipv6`]).
    fn nodad_ipv6(&self, ns: &str) -> Result<Vec<Nodad>, TopologyError> {
        Ok(nodad_ipv6(&self.address_dump(ns, "ip -6 addr show")?))
    }
}

/// An IPv6 address added without DAD: its device, itself, and whether the
/// kernel still holds it tentative.
#[derive(Debug, PartialEq)]
struct Nodad {
    index: u32,
    addr: std::net::IpAddr,
    tentative: bool,
}

/// The IPv6 addresses added without DAD, of an address dump. The header
/// holds only the low 8 flag bits, `IFA_FLAGS` all of them.
fn nodad_ipv6(msgs: &[AddressMessage]) -> Vec<Nodad> {
    msgs.iter()
        .filter(|m| m.header.family == AddressFamily::Inet6)
        .filter_map(|m| {
            let mut addr = None;
            let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
            for a in &m.attributes {
                match a {
                    AddressAttribute::Address(a) => addr = Some(*a),
                    AddressAttribute::Flags(f) => flags |= *f,
                    _ => {}
                }
            }
            flags.contains(AddressFlags::Nodad).then_some(Nodad {
                index: m.header.index,
                addr: addr?,
                tentative: flags.contains(AddressFlags::Tentative),
            })
        })
        .collect()
}

/// The addresses of an address dump as (ifindex, `addr/prefix`). An IPv4
/// address is `IFA_LOCAL` (`IFA_ADDRESS` is the peer's on a point-to-point
/// device). Left out, as made by the kernel and not by whoever configured
/// the namespace: IPv6 link-local addresses (every device has one) and
/// host-scope ones (loopback's).
fn assigned(msgs: &[AddressMessage]) -> Vec<(u32, String)> {
    msgs.iter()
        .filter(|m| m.header.scope != AddressScope::Host)
        .filter_map(|m| {
            let mut local = None;
            let mut addr = None;
            for a in &m.attributes {
                match a {
                    AddressAttribute::Local(a) => local = Some(*a),
                    AddressAttribute::Address(a) => addr = Some(*a),
                    _ => {}
                }
            }
            let ip = local.or(addr)?;
            let link_local = matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
            (!link_local).then(|| (m.header.index, format!("{ip}/{}", m.header.prefix_len)))
        })
        .collect()
}

/// Of the addresses on the devices in `running`, those not usable yet:
/// tentative, or without a local route (`locals`).
fn not_usable_yet(
    addrs: &[Nodad],
    running: &[u32],
    locals: &[std::net::IpAddr],
) -> Vec<std::net::IpAddr> {
    addrs
        .iter()
        .filter(|a| running.contains(&a.index))
        .filter(|a| a.tentative || !locals.contains(&a.addr))
        .map(|a| a.addr)
        .collect()
}

/// The destinations of the local routes (`RTN_LOCAL`) of a route dump.
fn local_destinations(routes: &[RouteMessage]) -> Vec<std::net::IpAddr> {
    routes
        .iter()
        .filter(|r| r.header.kind == RouteType::Local)
        .filter_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some((*v6).into()),
                RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some((*v4).into()),
                _ => None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressHeaderFlags;

    fn msg(
        index: u32,
        addr: &str,
        header: AddressHeaderFlags,
        flags: Option<AddressFlags>,
    ) -> AddressMessage {
        let mut m = AddressMessage::default();
        let addr: std::net::IpAddr = addr.parse().unwrap();
        m.header.family = if addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        m.header.index = index;
        m.header.flags = header;
        m.attributes.push(AddressAttribute::Address(addr));
        if let Some(f) = flags {
            m.attributes.push(AddressAttribute::Flags(f));
        }
        m
    }

    #[test]
    fn addresses_are_the_local_ones_without_ipv6_link_local() {
        let mut p2p = msg(5, "198.51.100.9", AddressHeaderFlags::empty(), None);
        // A point-to-point device: IFA_ADDRESS is the peer, IFA_LOCAL ours.
        p2p.attributes
            .push(AddressAttribute::Local("198.51.100.1".parse().unwrap()));
        p2p.header.prefix_len = 32;
        let mut v4 = msg(2, "192.0.2.5", AddressHeaderFlags::empty(), None);
        v4.header.prefix_len = 24;
        let mut v6 = msg(2, "2001:db8::5", AddressHeaderFlags::empty(), None);
        v6.header.prefix_len = 64;
        let mut ll = msg(2, "fe80::1", AddressHeaderFlags::empty(), None);
        ll.header.prefix_len = 64;
        let mut lo = msg(1, "127.0.0.1", AddressHeaderFlags::empty(), None);
        lo.header.prefix_len = 8;
        lo.header.scope = AddressScope::Host;
        assert_eq!(
            assigned(&[lo, p2p, v4, ll, v6]),
            [
                (5, "198.51.100.1/32".to_string()),
                (2, "192.0.2.5/24".to_string()),
                (2, "2001:db8::5/64".to_string()),
            ]
        );
    }

    #[test]
    fn only_tentative_addresses_added_without_dad_on_running_devices_are_waited_for() {
        let msgs = [
            // Ours, still tentative (the flag in the header's 8 bits).
            msg(
                2,
                "2001:db8:1::1",
                AddressHeaderFlags::Tentative,
                Some(AddressFlags::Nodad),
            ),
            // Ours, usable.
            msg(
                3,
                "2001:db8:2::1",
                AddressHeaderFlags::empty(),
                Some(AddressFlags::Nodad),
            ),
            // A link-local one doing real DAD: never waited for.
            msg(2, "fe80::1", AddressHeaderFlags::Tentative, None),
            // IPv4: nothing to wait for.
            msg(2, "192.0.2.1", AddressHeaderFlags::empty(), None),
            // Ours, on a device without carrier.
            msg(
                4,
                "2001:db8:3::1",
                AddressHeaderFlags::empty(),
                Some(AddressFlags::Nodad | AddressFlags::Tentative),
            ),
        ];
        let found = nodad_ipv6(&msgs);
        assert_eq!(
            found
                .iter()
                .map(|n| (n.index, n.tentative))
                .collect::<Vec<_>>(),
            [(2, true), (3, false), (4, true)]
        );
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let locals = [ip("2001:db8:2::1"), ip("2001:db8:3::1")];
        assert_eq!(
            not_usable_yet(&found, &[1, 2, 3], &locals),
            [ip("2001:db8:1::1")]
        );
        assert!(not_usable_yet(&found, &[3], &locals).is_empty());
        assert_eq!(
            not_usable_yet(&found, &[3], &[]),
            [ip("2001:db8:2::1")],
            "not tentative, but no local route yet: added while its device \
             was down, before the kernel's work item first ran"
        );
        assert!(
            not_usable_yet(&found, &[1], &[]).is_empty(),
            "none on running devices"
        );
    }

    #[test]
    fn local_routes_are_told_from_the_others() {
        let route = |kind: RouteType, dst: &str| {
            let mut m = RouteMessage::default();
            m.header.kind = kind;
            m.attributes.push(RouteAttribute::Destination(
                match dst.parse::<std::net::IpAddr>().unwrap() {
                    std::net::IpAddr::V6(a) => RouteAddress::Inet6(a),
                    std::net::IpAddr::V4(a) => RouteAddress::Inet(a),
                },
            ));
            m
        };
        let dump = [
            route(RouteType::Unicast, "2001:db8:1::"),
            route(RouteType::Local, "2001:db8:1::1"),
            route(RouteType::Multicast, "ff00::"),
            route(RouteType::Local, "2001:db8:2::1"),
        ];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            local_destinations(&dump),
            [ip("2001:db8:1::1"), ip("2001:db8:2::1")]
        );
    }
}
