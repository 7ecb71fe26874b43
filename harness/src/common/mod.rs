//! Types and helpers every stage may use: the names of what a scenario
//! made (kernel ids → scenario names), what the harness itself observed,
//! private directories, text helpers and the built-in programs. Nothing
//! here imports a stage.

pub mod config;
pub mod ebpf_loader;
pub mod fixtures;
pub mod hook;
pub mod nlattr;
pub mod parallel;
pub mod process;
pub mod text;
pub mod verifier;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Resolves kernel ids to the names a scenario uses.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// netns inode → scenario name.
    pub netns: HashMap<u32, String>,
    /// (netns inode, ifindex) → device name.
    pub devs: HashMap<(u32, u32), String>,
    /// (netns inode, ifindex) → what the kernel says the device is (for
    /// drawing the devices a CNI plugin made).
    pub links: HashMap<(u32, u32), LinkMeta>,
}

/// A device as the kernel lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkMeta {
    /// `IFLA_INFO_KIND` (`veth`, `bridge` ...).
    pub kind: Option<String>,
    /// The bridge's ifindex, in the same namespace.
    pub master: Option<u32>,
    /// The ifindex linked to: a veth's peer, in the peer's namespace.
    pub link: Option<u32>,
    /// Its addresses (`addr/prefix`) once built, where something other
    /// than the scenario may have assigned them (a CNI plugin's IPAM).
    pub addresses: Vec<String>,
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

/// A datagram the harness itself read from one of its UDP sockets.
///
/// The tracer cannot see this: UDP copies a linear skb out with
/// `copy_linear_skb` and frees it with `skb_consume_udp`, neither of which
/// has a tracepoint. The harness owns the socket, so it knows; the timeline
/// shows such reads as the `socket_read` step, marked as the harness's.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Namespace of the socket.
    pub ns: String,
    /// The socket's local port.
    pub local_port: u16,
    /// Who sent the datagram.
    pub peer: std::net::SocketAddr,
}

pub use hook::{Hook, SOCKET_READ};

/// The command that makes `iptables` iptables-nft on Debian and Ubuntu,
/// for every message about iptables-legacy.
pub const TO_IPTABLES_NFT: &str = "update-alternatives --set iptables /usr/sbin/iptables-nft";

/// The first file `name` in the `:`-separated directories of `path` (PATH,
/// a CNI path), as a command is looked up there.
pub fn first_on_path(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Creates a directory only this user can enter (0700), with a name
/// nobody can predict (`<parent>/<prefix>` and random characters), that
/// stays until removed.
pub fn mkdtemp(parent: &std::path::Path, prefix: &str) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(parent)?;
    Ok(tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(parent)?
        .keep())
}

/// A directory only this user can enter, with a name nobody can predict;
/// removed with everything in it when dropped (on every way out).
#[derive(Debug)]
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    /// Makes one under `parent`.
    pub fn new(parent: &Path) -> std::io::Result<Self> {
        mkdtemp(parent, "run-").map(Self)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Who can fix an error: what the report says next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The scenario is wrong, or asks for what the kernel refuses: the
    /// message names its `file:line:col` and gives a hint.
    Scenario,
    /// The machine lacks something (root, BTF, a module, a tool).
    Machine,
    /// pktfate itself failed: a bug to report.
    Internal,
}
