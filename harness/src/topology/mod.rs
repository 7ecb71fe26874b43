//! Stage 2: build a scenario's namespaces, links, addresses, routes and
//! sysctls, and tear them down again.
//!
//! Everything happens inside namespaces created here, by this process:
//! links, addresses, routes, rules and neighbours over rtnetlink sockets
//! opened inside each namespace (`rtnl`; one file per resource kind:
//! `link`, `addr`, `route`), sysctls written from a thread inside the
//! namespace, tun/tap devices opened there. nftables rulesets go to the
//! real `nft` on stdin; tc command lines and `run:` commands, which are the
//! user's own shell, go through `ip netns exec` so they see the namespace's
//! `/sys`. The root namespace is never touched. Teardown is `Drop`, so it
//! runs on pass, fail and panic.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

mod addr;
mod bpf;
pub(crate) mod cni;
mod commands;
mod deferred;
mod ends;
mod error;
pub mod kmod;
mod link;
pub mod netns;
mod route;
mod rtnl;
mod ruleset;
pub mod teardown;

use crate::common::Names;
use crate::scenario::{Link, LinkKind, Scenario, SockProto};
use rtnl::Rtnl;

pub use commands::PINNED_SYSCTLS;
use commands::{attach_tc, run, write_sysctls};
pub use deferred::DeferredDeletions;
pub use ends::unmap;
use ends::{open_listener, open_tap};
use error::io_err;
pub use error::{CniFailure, FillError, ObjectError, TopologyError};
pub use netns::NetnsHandle;
pub use rtnl::device_names;

pub use crate::common::config::DEFAULT_CNI_PATH;

/// A built topology. Dropping it deletes everything it created.
pub struct Topology {
    /// Namespaces, in scenario order.
    pub namespaces: Vec<NetnsHandle>,
    /// tun/tap fds, by (scenario namespace, device).
    taps: HashMap<(String, String), OwnedFd>,
    /// Kernel id → name maps.
    pub names: Names,
    /// MAC of each device, by (scenario namespace, device).
    pub macs: HashMap<(String, String), [u8; 6]>,
    /// The far end of each veth end, by (namespace, device).
    pub peers: HashMap<(String, String), (String, String)>,
    /// Listening sockets, by namespace.
    listeners: Vec<(String, SockProto, OwnedFd)>,
    /// Namespaces attached by CNI plugins (DEL at teardown).
    cni: cni::Cni,
    /// XDP attachments (`bpf_link` fds), closed at teardown.
    xdp_links: Vec<aya::programs::xdp::XdpLink>,
    /// The scenario's own tc and XDP programs, with their kernel ids.
    pub programs: Vec<(crate::scenario::ProgramRef, u32)>,
    torn_down: bool,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Topology {
    /// Builds the scenario's topology; CNI plugins are looked up in
    /// `cni_path` (colon-separated directories).
    pub fn build(s: &Scenario, cni_path: &str) -> Result<Self, TopologyError> {
        teardown::install_interrupt_handler();
        let mut topo = Topology {
            namespaces: vec![],
            taps: HashMap::new(),
            names: Names::default(),
            macs: HashMap::new(),
            peers: HashMap::new(),
            listeners: vec![],
            cni: cni::Cni::new(cni_path),
            xdp_links: vec![],
            programs: vec![],
            torn_down: false,
        };
        // On error, `topo` is dropped and removes what was made so far.
        topo.build_into(s)?;
        Ok(topo)
    }

    fn build_into(&mut self, s: &Scenario) -> Result<(), TopologyError> {
        self.create_namespaces(s)?;
        let mut rtnl = Rtnl::open(&self.namespaces)?;
        for h in self.namespaces.clone() {
            // Loopback has its carrier from the start: nothing to wait for.
            link::up(&mut rtnl, &h.name, "lo", None)?;
            write_sysctls(&h, PINNED_SYSCTLS)?;
        }
        let (to_up, masters) = self.create_links(&mut rtnl, s)?;
        for (ns, dev, master, l) in masters {
            link::set_master(&mut rtnl, ns, dev, master, l)?;
        }
        self.configure(&mut rtnl, s, to_up)?;
        self.attach_cni(&mut rtnl, s)?;
        for ns in &s.namespaces {
            self.finish_namespace(&mut rtnl, ns)?;
        }
        // Device names as the tracer will report them.
        for h in &self.namespaces {
            // Only CNI plugins assign addresses the scenario does not list:
            // read them back where plugins ran, for the report's drawing.
            let mut addresses = if self.cni.attached_in(&h.path()) {
                rtnl.addresses(&h.name)?
            } else {
                vec![]
            };
            for l in rtnl.links(&h.name, None)? {
                self.names.devs.insert((h.inode, l.index), l.name.clone());
                self.names.links.insert(
                    (h.inode, l.index),
                    crate::common::LinkMeta {
                        kind: l.kind.clone(),
                        master: l.master,
                        link: l.link,
                        addresses: addresses
                            .extract_if(.., |(i, _)| *i == l.index)
                            .map(|(_, a)| a)
                            .collect(),
                    },
                );
                if let Some(mac) = l.mac {
                    self.macs.insert((h.name.clone(), l.name), mac);
                }
            }
        }
        Ok(())
    }

    /// Creates every namespace, registered for teardown before it exists.
    fn create_namespaces(&mut self, s: &Scenario) -> Result<(), TopologyError> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        for ns in &s.namespaces {
            let real = format!("{}{pid}-{seq}-{}", teardown::PREFIX, ns.name);
            teardown::create(&real, || netns::create(&real))
                .ok_or(TopologyError::Interrupted)?
                .map_err(io_err(format!("creating namespace `{}` ({real})", ns.name)))?;
            let inode = match netns::inode(&netns::path_of(&real)) {
                Ok(i) => i,
                Err(e) => {
                    let _ = teardown::delete_netns(&real);
                    teardown::release(&real);
                    return Err(io_err(format!("reading namespace {real}"))(e));
                }
            };
            self.names.netns.insert(inode, ns.name.clone());
            self.namespaces.push(NetnsHandle {
                name: ns.name.clone(),
                real,
                inode,
            });
        }
        Ok(())
    }

    /// Creates the links, in an order where what a link needs exists
    /// first; returns the links to bring up and the bridge ports to enslave.
    #[expect(
        clippy::type_complexity,
        reason = "two lists of borrowed names, used once by the caller"
    )]
    fn create_links<'s>(
        &mut self,
        rtnl: &mut Rtnl,
        s: &'s Scenario,
    ) -> Result<
        (
            Vec<(&'s str, &'s str, &'s Link)>,
            Vec<(&'s str, &'s str, &'s str, &'s Link)>,
        ),
        TopologyError,
    > {
        // Links: bridges first (others may join them), then veths and
        // tun/taps, then devices that sit on another (macvlan, vxlan).
        let rank = |k: &LinkKind| match k {
            LinkKind::Bridge => 0,
            LinkKind::Veth { .. } | LinkKind::Tun | LinkKind::Tap => 1,
            LinkKind::Macvlan { .. } | LinkKind::Vxlan { .. } => 2,
        };
        let mut to_up: Vec<(&str, &str, &Link)> = vec![];
        let mut masters: Vec<(&str, &str, &str, &Link)> = vec![];
        for pass in 0..3 {
            for ns in &s.namespaces {
                for l in ns.links.iter().filter(|l| rank(&l.kind) == pass) {
                    match &l.kind {
                        LinkKind::Veth {
                            peer_ns,
                            peer,
                            peer_master,
                            ..
                        } => {
                            self.peers.insert(
                                (ns.name.clone(), l.name.clone()),
                                (peer_ns.clone(), peer.clone()),
                            );
                            self.peers.insert(
                                (peer_ns.clone(), peer.clone()),
                                (ns.name.clone(), l.name.clone()),
                            );
                            if l.up {
                                to_up.push((peer_ns, peer, l));
                            }
                            if let Some(m) = peer_master {
                                masters.push((peer_ns, peer, m, l));
                            }
                        }
                        LinkKind::Tun | LinkKind::Tap => {
                            let h = self.handle(&ns.name).clone();
                            let fd = open_tap(&h, &l.name, l.kind == LinkKind::Tap)?;
                            self.taps.insert((ns.name.clone(), l.name.clone()), fd);
                            link::configure_tap(rtnl, &ns.name, l)?;
                        }
                        _ => {}
                    }
                    link::create(rtnl, &ns.name, l)?;
                    if let Some(m) = &l.master {
                        masters.push((&ns.name, &l.name, m, l));
                    }
                    if l.up {
                        to_up.push((&ns.name, &l.name, l));
                    }
                }
            }
        }

        Ok((to_up, masters))
    }

    /// Sysctls, addresses, links up (waiting for late carriers), routes.
    fn configure<'s>(
        &mut self,
        rtnl: &mut Rtnl,
        s: &'s Scenario,
        to_up: Vec<(&'s str, &'s str, &'s Link)>,
    ) -> Result<(), TopologyError> {
        // Per-interface sysctls need the interfaces; addresses and routes
        // may depend on sysctls (forwarding), so they come next.
        for ns in &s.namespaces {
            let h = self.handle(&ns.name).clone();
            write_sysctls(&h, ns.sysctls.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        }
        for ns in &s.namespaces {
            for a in &ns.addresses {
                addr::add(rtnl, &ns.name, a)?;
            }
        }
        let mut late: HashMap<&str, Vec<u32>> = HashMap::new();
        for (ns, dev, l) in to_up {
            let veth = matches!(l.kind, LinkKind::Veth { .. });
            if let Some(i) = link::set_up(rtnl, ns, dev, veth, l.at.as_ref())? {
                late.entry(ns).or_default().push(i);
            }
        }
        for (ns, idx) in &late {
            rtnl.wait_carrier_work(ns, idx)?;
        }
        for ns in &s.namespaces {
            for r in &ns.routes {
                route::add(rtnl, &ns.name, r)?;
            }
        }
        for ns in &s.namespaces {
            if ns.addresses.iter().any(|a| a.addr.is_ipv6()) {
                rtnl.wait_ipv6_usable(&ns.name)?;
            }
        }

        Ok(())
    }

    /// Runs the CNI plugins of every pod namespace.
    fn attach_cni(&mut self, rtnl: &mut Rtnl, s: &Scenario) -> Result<(), TopologyError> {
        // CNI plugins attach pods once the node's own links are up, as on
        // a real node; the scenario's rulesets and listeners come after.
        let mut cni_made: Vec<(&str, Vec<u32>)> = vec![];
        for ns in &s.namespaces {
            if let Some(c) = &ns.cni {
                let node = self.handle(&c.node).clone();
                let pod = self.handle(&ns.name).clone();
                for n in [c.node.as_str(), ns.name.as_str()] {
                    if !cni_made.iter().any(|(m, _)| *m == n) {
                        let had = rtnl.links(n, None)?.iter().map(|l| l.index).collect();
                        cni_made.push((n, had));
                    }
                }
                self.cni.add(&node, &pod, c)?;
            }
        }
        // The plugins bring veth ends up one after the other, like us: wait
        // for the kernel to activate those that got their carrier late.
        for (ns, had) in cni_made {
            let late: Vec<u32> = rtnl
                .links(ns, None)?
                .into_iter()
                .filter(|l| !had.contains(&l.index) && l.pair_or_bridge && l.lower_up)
                .map(|l| l.index)
                .collect();
            rtnl.wait_carrier_work(ns, &late)?;
        }

        Ok(())
    }

    /// What a namespace gets once its links and addresses exist: rules,
    /// neighbours, rulesets, tc and XDP programs, listeners, commands.
    fn finish_namespace(
        &mut self,
        rtnl: &mut Rtnl,
        ns: &crate::scenario::Namespace,
    ) -> Result<(), TopologyError> {
        let h = self.handle(&ns.name).clone();
        for r in &ns.rules {
            route::add_rule(rtnl, &ns.name, r)?;
        }
        for n in &ns.neighbors {
            addr::neighbour(rtnl, &ns.name, n)?;
        }
        if let Some(rs) = &ns.nft {
            ruleset::apply_nft(&h, rs)?;
        }
        if let Some(rs) = &ns.iptables {
            ruleset::apply_iptables(&h, rs, false)?;
        }
        if let Some(rs) = &ns.ip6tables {
            ruleset::apply_iptables(&h, rs, true)?;
        }
        for t in &ns.tc {
            if let Some(p) = attach_tc(&h, t)? {
                self.programs.push(p);
            }
        }
        for x in &ns.xdp {
            let (link, id) = bpf::attach_object_xdp(&h, &x.dev, x.mode, &x.object)?;
            self.xdp_links.push(link);
            let at = crate::scenario::ProgramRef {
                program: x.object.program.clone(),
                ns: ns.name.clone(),
                dev: x.dev.clone(),
                hook: crate::scenario::ProgHook::Xdp,
            };
            self.programs.push((at, id));
        }
        for l in &ns.listen {
            let fd = open_listener(&h, l)?;
            self.listeners.push((ns.name.clone(), l.proto, fd));
        }
        for cmd in &ns.run {
            run("ip", &["netns", "exec", &h.real, "sh", "-c", cmd]).map_err(|e| match e {
                TopologyError::Command { stderr, .. } => TopologyError::Command {
                    cmd: format!("`{cmd}` (run in namespace {})", h.name),
                    stderr,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// A shell in each namespace, to look around a kept topology.
    pub fn explore_commands(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|h| {
                format!(
                    "{}: ip netns exec {} bash   (or: nsenter --net={} bash)",
                    h.name,
                    h.real,
                    h.path().display()
                )
            })
            .collect()
    }

    /// Leaves the namespaces up when this process exits (tun/tap devices
    /// and listening sockets close with it); the next `pktfate run` or
    /// `cargo test` of pktfate scenarios removes them, as it removes those
    /// of a run that died.
    pub fn leave_up(mut self) {
        for h in &self.namespaces {
            teardown::release(&h.real);
        }
        self.torn_down = true;
    }

    /// The handle of a scenario namespace (validated names only).
    pub fn handle(&self, name: &str) -> &NetnsHandle {
        self.namespaces
            .iter()
            .find(|h| h.name == name)
            .expect("scenario namespaces are validated before build")
    }

    /// The fd of a tun/tap device the topology created.
    pub fn tap_fd(&self, ns: &str, dev: &str) -> Option<&OwnedFd> {
        self.taps.get(&(ns.to_string(), dev.to_string()))
    }

    /// Reads and discards whatever the kernel sent out of the tun/tap
    /// devices and into UDP listeners, as the programs owning them would;
    /// the kernel then frees those skbs. Returns the datagrams the UDP
    /// listeners read (the tracer cannot see those reads).
    pub fn drain(&self) -> Vec<crate::common::Observation> {
        use std::os::fd::AsRawFd;
        if !self.taps.is_empty() {
            // Left uninitialised: the frames are thrown away unread, and
            // zeroing 64 KiB on every poll of every scenario showed in the
            // suite's profile (~9 ms of CPU in 31 scenarios).
            let mut buf: Vec<u8> = Vec::with_capacity(65536);
            let spare = buf.spare_capacity_mut();
            for fd in self.taps.values() {
                // SAFETY: the kernel writes at most `spare.len()` bytes into
                // memory we own, which is never read.
                while unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) }
                    > 0
                {}
            }
        }
        let mut seen = vec![];
        for (ns, proto, fd) in &self.listeners {
            if *proto != SockProto::Udp {
                continue;
            }
            let sock = socket2::SockRef::from(fd);
            let local_port = sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map_or(0, |a| a.port());
            let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
            while let Ok((_, from)) = sock.recv_from(&mut b) {
                if let Some(peer) = from.as_socket() {
                    seen.push(crate::common::Observation {
                        ns: ns.clone(),
                        local_port,
                        peer: unmap(peer),
                    });
                }
            }
        }
        seen
    }

    /// Inodes of every scenario namespace.
    pub fn inodes(&self) -> Vec<u32> {
        self.namespaces.iter().map(|h| h.inode).collect()
    }

    /// Deletes everything; returns the problems met, if any.
    pub fn teardown(&mut self) -> Vec<String> {
        self.teardown_deferring(None)
    }

    /// [`Self::teardown`], with the namespaces themselves handed to `later`
    /// (when given) to be deleted with others.
    pub fn teardown_deferring(&mut self, later: Option<&DeferredDeletions>) -> Vec<String> {
        if self.torn_down {
            return vec![];
        }
        self.torn_down = true;
        // CNI DEL while the namespaces still exist.
        let mut problems = self.cni.del_all();
        self.xdp_links.clear();
        self.listeners.clear();
        let taps = std::mem::take(&mut self.taps);
        let before = problems.len();
        for h in self.namespaces.iter().rev() {
            if let Some(later) = later {
                later.hold(&h.real);
                continue;
            }
            match teardown::delete_netns(&h.real) {
                Ok(()) => teardown::release(&h.real),
                Err(e) => problems.push(format!("deleting namespace {}: {e}", h.real)),
            }
        }
        // Held namespaces count as gone: their deletion is under way.
        let gone = problems.len() == before;
        close_later(taps, gone);
        problems
    }
}

/// Closes tun/tap fds on a thread of their own, once their namespaces are
/// `gone` (unmounted) after making each device persistent.
///
/// The kernel unregisters a tun device when its last fd closes, and waits
/// for an RCU barrier after (20-40 ms here, more at the end of a suite,
/// when namespaces are being freed). A process that exits waits for that
/// too. A persistent device is not unregistered on close: it goes with its
/// namespace, which the kernel frees in its own work item once nothing
/// holds it, as it frees every veth. Should a namespace still be mounted,
/// the devices are not made persistent, so they go with the fds as before.
fn close_later(fds: HashMap<(String, String), OwnedFd>, gone: bool) {
    if fds.is_empty() {
        return;
    }
    // Both take RTNL, which the caller need not wait for. Should the
    // thread not start, the fds are closed here, as before.
    let _ = std::thread::Builder::new()
        .name("pktfate-tun-close".into())
        .spawn(move || {
            if gone {
                fds.values().for_each(persist);
            }
            drop(fds);
        });
}

/// Makes the tun/tap device of `fd` outlive its fds (`TUNSETPERSIST`); on
/// failure it is unregistered at close, as without this.
fn persist(fd: &OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: TUNSETPERSIST takes its argument by value; the fd is ours.
    unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for p in self.teardown() {
            teardown::report(&format!("teardown: {p}"));
        }
    }
}
