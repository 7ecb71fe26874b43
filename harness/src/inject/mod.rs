//! Stage 4: send each scenario packet into the kernel.
//!
//! Injection is split in two. [`prepare`] builds the bytes or opens and binds
//! the socket (inside the sending namespace), so the full 5-tuple, including
//! a kernel-chosen source port, is known before the tracer is attached and
//! can be used as its in-kernel filter. [`Prepared::fire`] then sends.
//!
//! - into a tun device: an L3 packet, as if it arrived on a wire
//!   (`tun_get_user` → `netif_receive_skb`);
//! - into a tap device: an Ethernet frame, likewise;
//! - out of any other device: an Ethernet frame through an `AF_PACKET` socket;
//! - from a real socket: TCP connect, UDP send, ICMP echo — the kernel
//!   builds the packet.

pub mod packet;

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::scenario::{
    DeviceRef, Ethernet, Injection, IpLayer, L4Layer, LinkKind, Packet, PacketSpec, Scenario,
    SockProto, VlanTag,
};
use crate::topology::Topology;
use crate::topology::netns;
use crate::tracer::FlowFilter;
use packet::PacketError;

/// Errors injecting a packet.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The packet could not be built.
    #[error("building {name}: {source}")]
    Build {
        /// Packet name.
        name: String,
        /// Why.
        source: PacketError,
    },
    /// The device is not one the topology owns.
    #[error("{0} is not a device of this scenario")]
    NoDevice(String),
    /// A socket operation failed.
    #[error("{name}: {what}: {source}")]
    Io {
        /// Packet name.
        name: String,
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Locally administered MAC used as the sender of frames written into a tap.
const TAP_PEER_MAC: [u8; 6] = [0x02, 0x70, 0x66, 0x00, 0x00, 0x01];

enum Armed {
    /// Bytes to write into a tun/tap fd.
    Device { fd: File, bytes: Vec<u8> },
    /// A frame to send out of `ifindex` through an `AF_PACKET` socket.
    Raw {
        sock: Socket,
        ifindex: u32,
        dst: [u8; 6],
        frame: Vec<u8>,
    },
    /// A bound TCP socket to connect.
    Tcp { sock: Socket, to: SocketAddr },
    /// A bound UDP socket to send from.
    Udp {
        sock: Socket,
        to: SocketAddr,
        payload: Vec<u8>,
    },
    /// A raw ICMP socket and the echo request to send.
    Icmp {
        sock: Socket,
        to: SocketAddr,
        message: Vec<u8>,
    },
}

/// A packet ready to send, with the filter that selects it and its replies.
pub struct Prepared {
    /// Packet name.
    pub name: String,
    /// Tracer filter.
    pub filter: FlowFilter,
    /// Namespace of the sending socket, for socket packets.
    from: Option<String>,
    armed: Armed,
}

fn io(name: &str, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InjectError + '_ {
    let what = what.into();
    move |source| InjectError::Io {
        name: name.to_string(),
        what,
        source,
    }
}

/// The tracer filter for a crafted packet: its 5-tuple, replies included.
pub fn frame_filter(spec: &PacketSpec) -> FlowFilter {
    let (src, dst, v6) = match spec.ip {
        IpLayer::V4 { src, dst, .. } => (src.into(), dst.into(), false),
        IpLayer::V6 { src, dst, .. } => (src.into(), dst.into(), true),
    };
    let (sport, dport) = match spec.l4 {
        L4Layer::Tcp { sport, dport, .. } | L4Layer::Udp { sport, dport, .. } => {
            (Some(sport), Some(dport))
        }
        _ => (None, None),
    };
    FlowFilter {
        proto: spec.l4.proto(v6),
        src: Some(src),
        dst: Some(dst),
        sport,
        dport,
        reverse: true,
        icmp_error: false,
        nat_reply: false,
    }
}

/// Builds every packet of a scenario, in order.
pub fn prepare_all(s: &Scenario, topo: &Topology) -> Result<Vec<Prepared>, InjectError> {
    s.packets.iter().map(|p| prepare(s, topo, p)).collect()
}

/// Builds the bytes or opens the socket for one packet.
pub fn prepare(s: &Scenario, topo: &Topology, p: &Packet) -> Result<Prepared, InjectError> {
    match &p.inject {
        Injection::Frame {
            via,
            ethernet,
            spec,
            mark,
            priority,
        } => prepare_frame(
            s,
            topo,
            p,
            via,
            ethernet,
            spec,
            SockOpts::new(*mark, *priority),
        ),
        Injection::Socket {
            from,
            proto,
            to,
            port,
            sport,
            payload,
            id,
            seq,
            mark,
            priority,
        } => {
            let (proto, to, port, sport, payload, id, seq) =
                (*proto, *to, *port, *sport, payload.clone(), *id, *seq);
            let opts = SockOpts::new(*mark, *priority);
            let (sock, local_port) = open_socket(topo, &p.name, from, proto, to, sport, opts)?;
            let v6 = to.is_ipv6();
            let filter = socket_filter(proto, to, local_port, port);
            let to_sa = SocketAddr::new(to, port);
            let armed = match proto {
                SockProto::Tcp => Armed::Tcp { sock, to: to_sa },
                SockProto::Udp => Armed::Udp {
                    sock,
                    to: to_sa,
                    payload,
                },
                SockProto::Icmp => Armed::Icmp {
                    sock,
                    to: to_sa,
                    message: echo_request(v6, id, seq, &payload),
                },
            };
            Ok(Prepared {
                name: p.name.clone(),
                filter,
                from: Some(from.clone()),
                armed,
            })
        }
    }
}

/// A crafted frame: written into a tun/tap, or sent out of any other
/// device through a packet socket.
fn prepare_frame(
    s: &Scenario,
    topo: &Topology,
    p: &Packet,
    via: &DeviceRef,
    ethernet: &Ethernet,
    spec: &PacketSpec,
    opts: SockOpts,
) -> Result<Prepared, InjectError> {
    let l3 = packet::build(spec).map_err(|source| InjectError::Build {
        name: p.name.clone(),
        source,
    })?;
    let kind = s
        .namespace(&via.ns)
        .and_then(|n| n.links.iter().find(|l| l.name == via.dev))
        .map(|l| l.kind.clone());
    let filter = frame_filter(spec);
    let v6 = matches!(spec.ip, IpLayer::V6 { .. });
    let armed = if let Some(LinkKind::Tun | LinkKind::Tap) = kind {
        let fd = topo
            .tap_fd(&via.ns, &via.dev)
            .ok_or_else(|| InjectError::NoDevice(format!("{}/{}", via.ns, via.dev)))?;
        let fd = File::from(
            fd.try_clone()
                .map_err(io(&p.name, "duplicating the tun fd"))?,
        );
        let bytes = if kind == Some(LinkKind::Tun) {
            l3
        } else {
            // Into a tap: the frame is received by the tap device.
            let own = topo.macs.get(&(via.ns.clone(), via.dev.clone())).copied();
            let dst = ethernet.dst.or(own).unwrap_or([0xff; 6]);
            frame(
                ethernet.src.unwrap_or(TAP_PEER_MAC),
                dst,
                ethernet.vlan,
                v6,
                &l3,
            )
        };
        Armed::Device { fd, bytes }
    } else {
        // Out of any other device: the far end (a veth peer) receives it.
        let own = topo.macs.get(&(via.ns.clone(), via.dev.clone())).copied();
        let far = topo
            .peers
            .get(&(via.ns.clone(), via.dev.clone()))
            .and_then(|peer| topo.macs.get(peer))
            .copied();
        let dst = ethernet.dst.or(far).unwrap_or([0xff; 6]);
        let src = ethernet.src.or(own).unwrap_or(TAP_PEER_MAC);
        let (sock, ifindex) = open_packet_socket(topo, &p.name, via, opts)?;
        Armed::Raw {
            sock,
            ifindex,
            dst,
            frame: frame(src, dst, ethernet.vlan, v6, &l3),
        }
    };
    Ok(Prepared {
        name: p.name.clone(),
        filter,
        from: None,
        armed,
    })
}

/// What a sending socket gives its skbs: `SO_MARK`, `SO_PRIORITY`.
#[derive(Debug, Clone, Copy)]
struct SockOpts {
    mark: Option<u32>,
    priority: Option<u32>,
}

impl SockOpts {
    fn new(mark: Option<u32>, priority: Option<u32>) -> Self {
        Self { mark, priority }
    }

    /// Sets them on `sock` (both need `CAP_NET_ADMIN` for most values).
    fn apply(self, sock: &Socket) -> std::io::Result<()> {
        if let Some(m) = self.mark {
            sock.set_mark(m)?;
        }
        if let Some(p) = self.priority {
            sock.set_priority(p)?;
        }
        Ok(())
    }
}

/// A packet socket on `via`, opened in its namespace, and the device's ifindex.
fn open_packet_socket(
    topo: &Topology,
    name: &str,
    via: &DeviceRef,
    opts: SockOpts,
) -> Result<(Socket, u32), InjectError> {
    let dev = via.dev.clone();
    netns::run_in(
        &topo.handle(&via.ns).path(),
        move || -> std::io::Result<(Socket, u32)> {
            let sock = Socket::new(Domain::PACKET, Type::RAW, None)?;
            // packet_snd gives the skb the socket's mark and priority.
            opts.apply(&sock)?;
            let cname = std::ffi::CString::new(dev).map_err(std::io::Error::other)?;
            // SAFETY: a valid C string.
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if ifindex == 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok((sock, ifindex))
        },
    )
    .and_then(|r| r)
    .map_err(io(
        name,
        format!("opening a packet socket on {}/{}", via.ns, via.dev),
    ))
}

/// A socket of `proto` in namespace `from`, bound to `sport` (or any).
fn open_socket(
    topo: &Topology,
    name: &str,
    from: &str,
    proto: SockProto,
    to: IpAddr,
    sport: Option<u16>,
    opts: SockOpts,
) -> Result<(Socket, u16), InjectError> {
    netns::run_in(
        &topo.handle(from).path(),
        move || -> std::io::Result<(Socket, u16)> {
            let domain = if to.is_ipv4() {
                Domain::IPV4
            } else {
                Domain::IPV6
            };
            let sock = match proto {
                SockProto::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
                SockProto::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
                SockProto::Icmp if to.is_ipv4() => {
                    Socket::new(domain, Type::RAW, Some(Protocol::ICMPV4))?
                }
                SockProto::Icmp => Socket::new(domain, Type::RAW, Some(Protocol::ICMPV6))?,
            };
            sock.set_nonblocking(true)?;
            // The skbs it sends carry them; their route lookups match
            // `fwmark` rules with the mark (flowi4_mark).
            opts.apply(&sock)?;
            if proto == SockProto::Icmp {
                return Ok((sock, 0));
            }
            let any: IpAddr = if to.is_ipv4() {
                [0u8; 4].into()
            } else {
                [0u8; 16].into()
            };
            sock.bind(&SocketAddr::new(any, sport.unwrap_or(0)).into())?;
            let local = sock.local_addr()?.as_socket().map_or(0, |a| a.port());
            Ok((sock, local))
        },
    )
    .and_then(|r| r)
    .map_err(io(
        name,
        format!("opening a {proto:?} socket in namespace `{from}`"),
    ))
}

/// The flow a socket send makes: to `to`, from the port the kernel gave.
fn socket_filter(proto: SockProto, to: IpAddr, local_port: u16, port: u16) -> FlowFilter {
    let v6 = to.is_ipv6();
    FlowFilter {
        proto: Some(match proto {
            SockProto::Tcp => 6,
            SockProto::Udp => 17,
            SockProto::Icmp if v6 => 58,
            SockProto::Icmp => 1,
        }),
        src: None,
        dst: Some(to),
        sport: (proto != SockProto::Icmp).then_some(local_port),
        dport: (proto != SockProto::Icmp).then_some(port),
        reverse: true,
        icmp_error: false,
        nat_reply: false,
    }
}

/// An Ethernet frame around an IP packet.
fn frame(src: [u8; 6], dst: [u8; 6], vlan: Option<VlanTag>, v6: bool, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + l3.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(t) = vlan {
        // 802.1Q: TPID, then PCP (3 bits), DEI (0) and the id (12 bits).
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&((u16::from(t.pcp) << 13) | t.id).to_be_bytes());
    }
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(l3);
    f
}

/// An ICMP(v6) echo request; the kernel fills the `ICMPv6` checksum itself.
fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    if !v6 {
        let c = packet::internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

impl Prepared {
    /// Sends the packet.
    pub fn fire(&mut self) -> Result<(), InjectError> {
        let name = self.name.clone();
        match &mut self.armed {
            // One write is one packet on a tun/tap device.
            Armed::Device { fd, bytes } => fd
                .write_all(bytes)
                .map_err(io(&name, "writing into the device")),
            Armed::Raw {
                sock,
                ifindex,
                dst,
                frame,
            } => {
                // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = *ifindex as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(dst);
                // SAFETY: valid buffer and address for the duration of the call.
                let rc = unsafe {
                    libc::sendto(
                        sock.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const sll).cast(),
                        size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if rc < 0 {
                    return Err(io(&name, "sending the frame")(
                        std::io::Error::last_os_error(),
                    ));
                }
                Ok(())
            }
            Armed::Tcp { sock, to } => match sock.connect(&SockAddr::from(*to)) {
                Ok(()) => Ok(()),
                // Non-blocking: the SYN is on its way.
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
                Err(e) => Err(io(&name, format!("connecting to {to}"))(e)),
            },
            Armed::Udp { sock, to, payload } => sock
                .send_to(payload, &SockAddr::from(*to))
                .map(|_| ())
                .map_err(io(&name, format!("sending to {to}"))),
            Armed::Icmp { sock, to, message } => sock
                .send_to(message, &SockAddr::from(*to))
                .map(|_| ())
                .map_err(io(&name, format!("sending an echo request to {}", to.ip()))),
        }
    }

    /// Reads and discards what arrived on the packet's socket, as the
    /// application would, so those skbs are freed. Returns the UDP reads
    /// (which the tracer cannot see; raw ICMP reads it can).
    pub fn drain(&self, ns: &str) -> Vec<crate::common::Observation> {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
        match &self.armed {
            Armed::Icmp { sock, .. } => {
                while sock.recv(&mut buf).is_ok() {}
                vec![]
            }
            Armed::Udp { sock, .. } => {
                let local_port = sock
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .map_or(0, |a| a.port());
                let mut seen = vec![];
                while let Ok((_, from)) = sock.recv_from(&mut buf) {
                    if let Some(peer) = from.as_socket() {
                        seen.push(crate::common::Observation {
                            ns: ns.to_string(),
                            local_port,
                            peer: crate::topology::unmap(peer),
                        });
                    }
                }
                seen
            }
            _ => vec![],
        }
    }

    /// Namespace a socket packet is sent from.
    pub fn from_ns(&self) -> Option<&str> {
        self.from.as_deref()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_vlan_tag_goes_between_the_macs_and_the_ethertype() {
        let l3 = [0x45u8, 0];
        let tag = super::VlanTag { id: 10, pcp: 5 };
        let f = super::frame([1; 6], [2; 6], Some(tag), false, &l3);
        // TPID 0x8100; TCI: PCP 5 in the top 3 bits, DEI 0, id 10.
        assert_eq!(&f[12..18], &[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00]);
        assert_eq!(&f[18..], &l3);
        let plain = super::frame([1; 6], [2; 6], None, true, &l3);
        assert_eq!(&plain[12..14], &[0x86, 0xdd]);
        assert_eq!(plain.len(), 16);
    }
}
