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
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as Info, LinkMessage, State,
};
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
    /// A veth or a bridge: devices whose carrier comes after they are up.
    pub pair_or_bridge: bool,
    /// A veth end.
    pub veth: bool,
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

impl What<'_> {
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
        let what = What {
            cmd: "ip link show".into(),
            ns,
            at: None,
        };
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
                for a in m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n),
                        LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a).ok(),
                        LinkAttribute::OperState(s) => oper_up = s == State::Up,
                        LinkAttribute::LinkInfo(i) => {
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
                    pair_or_bridge,
                    veth,
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
                return Err(TopologyError::Netlink {
                    cmd: format!("waiting for {} to transmit", pending.join(", ")),
                    ns: ns.to_string(),
                    at: None,
                    source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
                });
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        let handle = self.handle(ns);
        let lo = LinkUnspec::new_with_index(1).up().build();
        let what = What {
            cmd: "ip link set lo up".into(),
            ns,
            at: None,
        };
        self.run(what, handle.link().set(lo).execute())
    }
}
