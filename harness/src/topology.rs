//! Stage 2: build a scenario's namespaces, links, addresses, routes and
//! sysctls, and tear them down again.
//!
//! Everything happens inside namespaces created here: every `ip` command is
//! given `-n <scenario namespace>`, sysctls are written from a thread inside
//! the namespace, and tun/tap devices are opened there. The root namespace is
//! never touched. Teardown is `Drop`, so it runs on pass, fail and panic.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns;
use crate::scenario::{LinkKind, Listener, NftRuleset, RouteType, Scenario, SockProto, TcSpec};
use crate::teardown;

/// Errors building a topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// What it printed.
        stderr: String,
    },
    /// A tool is missing.
    #[error("`{0}` is not installed")]
    MissingTool(String),
    /// nft rejected a ruleset; the location is in the scenario or fixture.
    #[error("{file}:{line}:{col}: nft: {msg}")]
    Nft {
        /// File holding the ruleset text.
        file: String,
        /// Line in that file.
        line: usize,
        /// Column.
        col: usize,
        /// nft's own message.
        msg: String,
    },
    /// A tc program could not be loaded or attached.
    #[error("tc program `{program}` on {ns}/{dev}: {msg}")]
    TcProgram {
        /// Program.
        program: String,
        /// Namespace.
        ns: String,
        /// Device.
        dev: String,
        /// Why.
        msg: String,
    },
    /// A signal arrived while building; the handler removes what exists.
    #[error("interrupted while building the topology")]
    Interrupted,
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl TopologyError {
    /// A hint for the user, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            TopologyError::MissingTool(t) if t == "ip" || t == "tc" => {
                Some("install iproute2 (bash ci/setup.sh does)".into())
            }
            TopologyError::MissingTool(t) if t == "nft" => {
                Some("install nftables (bash ci/setup.sh does)".into())
            }
            TopologyError::Nft { .. } => {
                Some("the position is where nft stopped reading; see nft(8) for the syntax".into())
            }
            TopologyError::TcProgram { msg, .. } if msg.contains("verifier") => {
                Some("the fixture program was rejected by this kernel's verifier".into())
            }
            TopologyError::Command { stderr, .. } if stderr.contains("Operation not permitted") => {
                Some("run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN are needed)".into())
            }
            TopologyError::Command { stderr, .. } if stderr.contains("File exists") => {
                Some("two routes or addresses collide; check the scenario for duplicates".into())
            }
            TopologyError::Command { stderr, .. }
                if stderr.contains("Nexthop has invalid gateway") =>
            {
                Some(
                    "the gateway must be reachable through a connected route on an up device"
                        .into(),
                )
            }
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Io { what, source }
}

/// A namespace created for a scenario.
#[derive(Debug, Clone)]
pub struct NetnsHandle {
    /// Scenario-local name.
    pub name: String,
    /// Name under /run/netns.
    pub real: String,
    /// Inode (what the tracer sees).
    pub inode: u32,
}

impl NetnsHandle {
    /// Path of the namespace file.
    pub fn path(&self) -> PathBuf {
        netns::path_of(&self.real)
    }
}

/// Resolves kernel ids to the names a scenario uses.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// netns inode → scenario name.
    pub netns: HashMap<u32, String>,
    /// (netns inode, ifindex) → device name.
    pub devs: HashMap<(u32, u32), String>,
}

impl Names {
    /// Scenario name of a namespace, or its inode.
    pub fn netns(&self, inode: u32) -> String {
        self.netns.get(&inode).cloned().unwrap_or_else(|| {
            if inode == 0 {
                "-".into()
            } else {
                format!("ns:{inode}")
            }
        })
    }

    /// Device name, or its ifindex.
    pub fn dev(&self, inode: u32, ifindex: u32) -> String {
        if ifindex == 0 {
            return "-".into();
        }
        self.devs
            .get(&(inode, ifindex))
            .cloned()
            .unwrap_or_else(|| format!("if{ifindex}"))
    }
}

/// IPv4 settings a new namespace inherits from the host (with the default
/// `net.core.devconf_inherit_init_net=0`). They are reset to the kernel's
/// own defaults so a scenario behaves the same on every host.
pub const PINNED_SYSCTLS: [(&str, &str); 8] = [
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.forwarding", "0"),
    ("net.ipv4.conf.default.forwarding", "0"),
    ("net.ipv4.conf.all.accept_local", "0"),
    ("net.ipv4.conf.default.accept_local", "0"),
    ("net.ipv4.conf.all.log_martians", "0"),
    ("net.ipv4.conf.default.log_martians", "0"),
];

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
    torn_down: bool,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `ip -n <ns> args...`.
fn ip(real: &str, args: &[&str]) -> Result<String, TopologyError> {
    let mut full = vec!["-n", real];
    full.extend_from_slice(args);
    run("ip", &full)
}

fn run(tool: &str, args: &[&str]) -> Result<String, TopologyError> {
    let out = Command::new(tool).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TopologyError::MissingTool(tool.into())
        } else {
            TopologyError::Io {
                what: format!("running {tool}"),
                source: e,
            }
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TopologyError::Command {
            cmd: format!("{tool} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Writes a `net.*` sysctl from a thread inside the namespace.
fn write_sysctl(ns: &NetnsHandle, key: &str, value: &str) -> Result<(), TopologyError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    let p2 = path.clone();
    netns::run_in(&ns.path(), move || std::fs::write(&p2, value))
        .and_then(|r| r)
        .map_err(io_err(format!(
            "setting sysctl {key} in namespace `{}` ({path})",
            ns.name
        )))
}

/// Creates a tun/tap device inside the namespace; the fd owns the device.
fn open_tap(ns: &NetnsHandle, name: &str, tap: bool) -> Result<OwnedFd, TopologyError> {
    let ifname = name.to_string();
    netns::run_in(&ns.path(), move || -> std::io::Result<OwnedFd> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open("/dev/net/tun")?;
        #[repr(C)]
        struct IfReq {
            name: [u8; libc::IFNAMSIZ],
            flags: libc::c_short,
            _pad: [u8; 22],
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (if tap { libc::IFF_TAP } else { libc::IFF_TUN } | libc::IFF_NO_PI)
                as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        use std::os::fd::AsRawFd;
        // SAFETY: TUNSETIFF reads a struct ifreq, which IfReq lays out.
        if unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f.into())
    })
    .and_then(|r| r)
    .map_err(io_err(format!(
        "creating {} `{name}` in namespace `{}`",
        if tap { "tap" } else { "tun" },
        ns.name
    )))
}

/// Applies an nftables ruleset inside the namespace with the real `nft`,
/// fed on stdin: no file is written, so nothing can be swapped or
/// followed. Every location in nft's errors is rewritten to point into the
/// scenario or ruleset file.
fn apply_nft(ns: &NetnsHandle, rs: &NftRuleset) -> Result<(), TopologyError> {
    use std::io::Write;
    let text = rs.text.clone();
    // nft runs as a child of a thread inside the namespace: it inherits
    // that thread's namespace (no `ip netns exec`, no /sys remount).
    let out = netns::run_in(
        &ns.path(),
        move || -> std::io::Result<std::process::Output> {
            let mut child = Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                // A ruleset nft stops reading early still gets its verdict.
                let _ = stdin.write_all(text.as_bytes());
            }
            child.wait_with_output()
        },
    )
    .and_then(|r| r)
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TopologyError::MissingTool("nft".into())
        } else {
            TopologyError::Io {
                what: format!("running nft in namespace `{}`", ns.name),
                source: e,
            }
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(nft_error(rs, &stderr))
}

/// nft's complaint about `rs`, each `<input>:<line>:<from>-<to>:` of it
/// rewritten as the ruleset's own file:line:col; the first is the error's
/// location.
fn nft_error(rs: &NftRuleset, stderr: &str) -> TopologyError {
    let re = regex::Regex::new(r"(?m)^(?:/dev/stdin|-|<cmdline>):(\d+):(\d+)(?:-\d+)?: ")
        .expect("valid regex");
    let file = rs.file.display().to_string();
    let at = |c: &regex::Captures| {
        let line = c[1].parse::<usize>().unwrap_or(1);
        (
            rs.first_line + line.max(1) - 1,
            c[2].parse::<usize>().unwrap_or(1),
        )
    };
    let first = re.captures(stderr).map(|c| at(&c));
    let mut msg = String::new();
    let mut last = 0;
    for (i, c) in re.captures_iter(stderr).enumerate() {
        let m = c.get(0).expect("whole match");
        msg.push_str(&stderr[last..m.start()]);
        // The first location is already the error's own prefix.
        if i > 0 {
            let (line, col) = at(&c);
            msg.push_str(&format!("{file}:{line}:{col}: "));
        }
        last = m.end();
    }
    msg.push_str(&stderr[last..]);
    let (line, col) = first.unwrap_or((rs.first_line, 1));
    TopologyError::Nft {
        file,
        line,
        col,
        msg: crate::text::clip(msg.trim(), 4000),
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: dual-stack sockets report IPv4 peers
/// in mapped form.
pub fn unmap(a: std::net::SocketAddr) -> std::net::SocketAddr {
    match a {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        a => a,
    }
}

/// Opens a listening TCP socket or a bound UDP socket inside the namespace.
fn open_listener(ns: &NetnsHandle, l: &Listener) -> Result<OwnedFd, TopologyError> {
    let l2 = l.clone();
    netns::run_in(&ns.path(), move || -> std::io::Result<OwnedFd> {
        use std::net::{SocketAddr, TcpListener, UdpSocket};
        let addr = SocketAddr::new(l2.addr.unwrap_or(IpAddr::from([0u8; 16])), l2.port);
        Ok(match l2.proto {
            SockProto::Tcp => TcpListener::bind(addr)?.into(),
            SockProto::Udp => {
                let u = UdpSocket::bind(addr)?;
                u.set_nonblocking(true)?;
                u.into()
            }
            SockProto::Icmp => return Err(std::io::Error::other("cannot listen on icmp")),
        })
    })
    .and_then(|r| r)
    .map_err(io_err(format!(
        "listening on {:?} port {} in namespace `{}`",
        l.proto, l.port, ns.name
    )))
}

impl Topology {
    /// Builds the scenario's topology.
    pub fn build(s: &Scenario) -> Result<Self, TopologyError> {
        teardown::install_interrupt_handler();
        let mut topo = Topology {
            namespaces: vec![],
            taps: HashMap::new(),
            names: Names::default(),
            macs: HashMap::new(),
            peers: HashMap::new(),
            listeners: vec![],
            torn_down: false,
        };
        // On error, `topo` is dropped and removes what was made so far.
        topo.build_into(s)?;
        Ok(topo)
    }

    fn build_into(&mut self, s: &Scenario) -> Result<(), TopologyError> {
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
        for h in self.namespaces.clone() {
            ip(&h.real, &["link", "set", "lo", "up"])?;
            for (k, v) in PINNED_SYSCTLS {
                write_sysctl(&h, k, v)?;
            }
        }

        // Links: bridges first (others may join them), then veths and
        // tun/taps, then devices that sit on another (macvlan, vxlan).
        let rank = |k: &LinkKind| match k {
            LinkKind::Bridge => 0,
            LinkKind::Veth { .. } | LinkKind::Tun | LinkKind::Tap => 1,
            LinkKind::Macvlan { .. } | LinkKind::Vxlan { .. } => 2,
        };
        let mut to_up: Vec<(String, String)> = vec![];
        let mut masters: Vec<(String, String, String)> = vec![];
        let mut macs: Vec<(String, String, String)> = vec![];
        for pass in 0..3 {
            for ns in &s.namespaces {
                let h = self.handle(&ns.name).clone();
                for l in ns.links.iter().filter(|l| rank(&l.kind) == pass) {
                    match &l.kind {
                        LinkKind::Veth {
                            peer_ns,
                            peer,
                            peer_mac,
                            peer_master,
                        } => {
                            let peer_real = self.handle(peer_ns).real.clone();
                            ip(
                                &h.real,
                                &[
                                    "link", "add", &l.name, "type", "veth", "peer", "name", peer,
                                    "netns", &peer_real,
                                ],
                            )?;
                            self.peers.insert(
                                (ns.name.clone(), l.name.clone()),
                                (peer_ns.clone(), peer.clone()),
                            );
                            self.peers.insert(
                                (peer_ns.clone(), peer.clone()),
                                (ns.name.clone(), l.name.clone()),
                            );
                            if l.up {
                                to_up.push((peer_ns.clone(), peer.clone()));
                            }
                            if let Some(mtu) = l.mtu {
                                ip(&peer_real, &["link", "set", peer, "mtu", &mtu.to_string()])?;
                            }
                            if let Some(m) = peer_mac {
                                macs.push((peer_ns.clone(), peer.clone(), m.clone()));
                            }
                            if let Some(m) = peer_master {
                                masters.push((peer_ns.clone(), peer.clone(), m.clone()));
                            }
                        }
                        LinkKind::Tun | LinkKind::Tap => {
                            let fd = open_tap(&h, &l.name, l.kind == LinkKind::Tap)?;
                            self.taps.insert((ns.name.clone(), l.name.clone()), fd);
                        }
                        LinkKind::Bridge => {
                            ip(&h.real, &["link", "add", &l.name, "type", "bridge"])?;
                        }
                        LinkKind::Macvlan { parent, mode } => {
                            ip(
                                &h.real,
                                &[
                                    "link", "add", &l.name, "link", parent, "type", "macvlan",
                                    "mode", mode,
                                ],
                            )?;
                        }
                        LinkKind::Vxlan {
                            vni,
                            remote,
                            local,
                            parent,
                            dstport,
                        } => {
                            let mut args: Vec<String> =
                                ["link", "add", &l.name, "type", "vxlan", "id"]
                                    .map(String::from)
                                    .to_vec();
                            args.push(vni.to_string());
                            if let Some(r) = remote {
                                args.extend(["remote".into(), r.to_string()]);
                            }
                            if let Some(a) = local {
                                args.extend(["local".into(), a.to_string()]);
                            }
                            if let Some(p) = parent {
                                args.extend(["dev".into(), p.clone()]);
                            }
                            args.extend(["dstport".into(), dstport.to_string()]);
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            ip(&h.real, &refs)?;
                        }
                    }
                    if let Some(mtu) = l.mtu {
                        ip(&h.real, &["link", "set", &l.name, "mtu", &mtu.to_string()])?;
                    }
                    if let Some(m) = &l.mac {
                        macs.push((ns.name.clone(), l.name.clone(), m.clone()));
                    }
                    if let Some(m) = &l.master {
                        masters.push((ns.name.clone(), l.name.clone(), m.clone()));
                    }
                    if l.up {
                        to_up.push((ns.name.clone(), l.name.clone()));
                    }
                }
            }
        }
        for (ns, dev, mac) in &macs {
            let real = self.handle(ns).real.clone();
            ip(&real, &["link", "set", dev, "address", mac])?;
        }
        for (ns, dev, master) in &masters {
            let real = self.handle(ns).real.clone();
            ip(&real, &["link", "set", dev, "master", master])?;
        }

        // Per-interface sysctls need the interfaces; addresses and routes
        // may depend on sysctls (forwarding), so they come next.
        for ns in &s.namespaces {
            let h = self.handle(&ns.name).clone();
            for (k, v) in &ns.sysctls {
                write_sysctl(&h, k, v)?;
            }
        }
        for ns in &s.namespaces {
            let real = self.handle(&ns.name).real.clone();
            for a in &ns.addresses {
                let cidr = format!("{}/{}", a.addr, a.prefix);
                let mut args = vec!["addr", "add", &cidr, "dev", &a.dev];
                if a.addr.is_ipv6() {
                    // No duplicate address detection: the address is usable at once.
                    args.push("nodad");
                }
                ip(&real, &args)?;
            }
        }
        for (ns, dev) in &to_up {
            let real = self.handle(ns).real.clone();
            ip(&real, &["link", "set", dev, "up"])?;
        }
        for ns in &s.namespaces {
            let real = self.handle(&ns.name).real.clone();
            for r in &ns.routes {
                let mut args: Vec<String> = vec![];
                if r.v6 {
                    args.push("-6".into());
                }
                args.extend(["route".into(), "add".into()]);
                match r.kind {
                    RouteType::Unicast => {}
                    RouteType::Blackhole => args.push("blackhole".into()),
                    RouteType::Unreachable => args.push("unreachable".into()),
                    RouteType::Prohibit => args.push("prohibit".into()),
                }
                args.push(match r.to {
                    None => "default".into(),
                    Some((a, p)) => format!("{a}/{p}"),
                });
                if let Some(v) = r.via {
                    args.extend(["via".into(), v.to_string()]);
                }
                if let Some(d) = &r.dev {
                    args.extend(["dev".into(), d.clone()]);
                }
                if let Some(s) = r.src {
                    args.extend(["src".into(), s.to_string()]);
                }
                if let Some(m) = r.metric {
                    args.extend(["metric".into(), m.to_string()]);
                }
                if let Some(t) = r.table {
                    args.extend(["table".into(), t.to_string()]);
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                ip(&real, &refs)?;
            }
        }

        for ns in &s.namespaces {
            let h = self.handle(&ns.name).clone();
            for r in &ns.rules {
                let v6 = [&r.from, &r.to]
                    .into_iter()
                    .flatten()
                    .any(|a| a.contains(':'));
                let mut args: Vec<String> = vec![];
                if v6 {
                    args.push("-6".into());
                }
                args.extend(["rule".into(), "add".into()]);
                for (k, v) in [
                    ("from", &r.from),
                    ("to", &r.to),
                    ("iif", &r.iif),
                    ("oif", &r.oif),
                    ("fwmark", &r.fwmark),
                ] {
                    if let Some(v) = v {
                        args.extend([k.to_string(), v.clone()]);
                    }
                }
                if let Some(p) = r.priority {
                    args.extend(["priority".into(), p.to_string()]);
                }
                match (&r.action, r.table) {
                    (Some(a), _) => args.push(a.clone()),
                    (None, Some(t)) => args.extend(["table".into(), t.to_string()]),
                    (None, None) => {}
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                ip(&h.real, &refs)?;
            }
            for n in &ns.neighbors {
                ip(
                    &h.real,
                    &[
                        "neigh",
                        "replace",
                        &n.addr.to_string(),
                        "lladdr",
                        &n.lladdr,
                        "dev",
                        &n.dev,
                        "nud",
                        "permanent",
                    ],
                )?;
            }
            if let Some(rs) = &ns.nft {
                apply_nft(&h, rs)?;
            }
            for t in &ns.tc {
                match t {
                    TcSpec::Command(c) => {
                        let words: Vec<&str> = c.split_whitespace().collect();
                        let mut args = vec!["netns", "exec", h.real.as_str(), "tc"];
                        args.extend(words);
                        run("ip", &args).map_err(|e| match e {
                            TopologyError::Command { stderr, .. } => TopologyError::Command {
                                cmd: format!("tc {c} (in namespace {})", h.name),
                                stderr,
                            },
                            other => other,
                        })?;
                    }
                    TcSpec::Program {
                        dev,
                        ingress,
                        program,
                        config,
                    } => {
                        crate::tc::attach(&h, dev, *ingress, program, config)?;
                    }
                }
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
        }

        // Device names as the tracer will report them.
        for h in &self.namespaces {
            let json = ip(&h.real, &["-j", "link", "show"])?;
            let links: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
            for l in links {
                if let (Some(i), Some(n)) = (l["ifindex"].as_u64(), l["ifname"].as_str()) {
                    self.names.devs.insert((h.inode, i as u32), n.to_string());
                    if let Some(mac) = l["address"].as_str().and_then(crate::scenario::parse_mac) {
                        self.macs.insert((h.name.clone(), n.to_string()), mac);
                    }
                }
            }
        }
        Ok(())
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
    pub fn drain(&self) -> Vec<crate::collect::Observation> {
        use std::os::fd::AsRawFd;
        let mut buf = vec![0u8; 65536];
        for fd in self.taps.values() {
            // SAFETY: reading into a buffer we own, from an fd we own.
            while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
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
                    seen.push(crate::collect::Observation {
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
        if self.torn_down {
            return vec![];
        }
        self.torn_down = true;
        // Close tun/tap and socket fds first: they hold references to their
        // namespace.
        self.taps.clear();
        self.listeners.clear();
        let mut problems = vec![];
        for h in self.namespaces.iter().rev() {
            match teardown::delete_netns(&h.real) {
                Ok(()) => teardown::release(&h.real),
                Err(e) => problems.push(format!("deleting namespace {}: {e}", h.real)),
            }
        }
        problems
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for p in self.teardown() {
            eprintln!("pktfate: teardown: {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nft_error_names_the_scenario_line() {
        let rs = NftRuleset {
            text: String::new(),
            file: PathBuf::from("scenarios/fw.yaml"),
            first_line: 20,
        };
        let stderr = "/dev/stdin:4:21-21: Error: syntax error, unexpected newline\n  tcp dport 80 dropx\n                    ^\n/dev/stdin:3:3-5: Error: No symbol type information\n  foo bar\n  ^^^";
        let TopologyError::Nft {
            file,
            line,
            col,
            msg,
        } = nft_error(&rs, stderr)
        else {
            panic!("not an nft error");
        };
        assert_eq!((file.as_str(), line, col), ("scenarios/fw.yaml", 23, 21));
        assert!(msg.starts_with("Error: syntax error"), "{msg}");
        assert!(
            msg.contains("scenarios/fw.yaml:22:3: Error: No symbol"),
            "{msg}"
        );
        assert!(!msg.contains("/dev/stdin"), "{msg}");
    }
}
