//! Stage 4: send each scenario packet into the kernel.
//!
//! A packet written to a tun device enters the stack exactly as if it had
//! arrived on a wire (`tun_get_user` → `netif_receive_skb`), in the writer's
//! context, which is what the seed incident did.

use std::io::Write;
use std::time::Instant;

use crate::packet::{self, PacketError};
use crate::scenario::Packet;
use crate::topology::Topology;

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
    #[error("{0} is not a tun device of this scenario")]
    NoDevice(String),
    /// The write failed.
    #[error("writing {name} into {dev}: {source}")]
    Write {
        /// Packet name.
        name: String,
        /// Device.
        dev: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What was sent.
#[derive(Debug, Clone)]
pub struct Injected {
    /// Index into the scenario's packets.
    pub index: usize,
    /// Bytes written.
    pub bytes: Vec<u8>,
    /// When the write returned.
    pub at: Instant,
}

/// Writes one packet into its tun device.
pub fn inject(topo: &Topology, index: usize, p: &Packet) -> Result<Injected, InjectError> {
    let bytes = packet::build(&p.spec).map_err(|source| InjectError::Build {
        name: p.name.clone(),
        source,
    })?;
    let fd = topo
        .tap_fd(&p.via.ns, &p.via.dev)
        .ok_or_else(|| InjectError::NoDevice(format!("{}/{}", p.via.ns, p.via.dev)))?;
    let mut f = std::fs::File::from(fd.try_clone().map_err(|source| InjectError::Write {
        name: p.name.clone(),
        dev: p.via.dev.clone(),
        source,
    })?);
    // One write is one packet on a tun device.
    f.write_all(&bytes).map_err(|source| InjectError::Write {
        name: p.name.clone(),
        dev: format!("{}/{}", p.via.ns, p.via.dev),
        source,
    })?;
    Ok(Injected {
        index,
        bytes,
        at: Instant::now(),
    })
}
