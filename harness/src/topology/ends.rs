//! The harness's own ends inside a namespace: tun/tap file descriptors
//! (writing into one injects a packet) and listening sockets.

use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use super::error::{TopologyError, io_err};
use super::netns::{self, NetnsHandle};
use crate::scenario::{Listener, SockProto};

/// Creates a tun/tap device inside the namespace; the fd owns the device.
pub(super) fn open_tap(ns: &NetnsHandle, name: &str, tap: bool) -> Result<OwnedFd, TopologyError> {
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

/// `::ffff:a.b.c.d` as `a.b.c.d`: dual-stack sockets report IPv4 peers
/// in mapped form.
pub fn unmap(a: std::net::SocketAddr) -> std::net::SocketAddr {
    match a {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        std::net::SocketAddr::V4(_) => a,
    }
}

/// Opens a listening TCP socket or a bound UDP socket inside the namespace.
pub(super) fn open_listener(ns: &NetnsHandle, l: &Listener) -> Result<OwnedFd, TopologyError> {
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
