//! Writing traced packets as pcapng, one packet per timeline step, with the
//! step, namespace, device and skb in each packet's comment, so tshark and
//! Wireshark show where in the kernel each copy of the packet was.
//!
//! The capture starts at the network header (link type RAW: IPv4/IPv6) and
//! holds up to 128 bytes of each packet; the original length is kept.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness, PcapError};

use crate::collect::Step;

/// pcap-file's error as an I/O error: the writer's own where it was one.
fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::other(other),
    }
}

/// Nanoseconds to add to `CLOCK_MONOTONIC` to get wall-clock time.
fn monotonic_to_realtime() -> i128 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec for the call.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// The comment a step gets in the capture.
pub fn comment(scenario: &str, s: &Step) -> String {
    let mut c = format!(
        "{scenario}: {}@{}/{} skb {:#x}",
        s.ev.hook, s.ns, s.dev, s.ev.skb
    );
    if let Some(r) = &s.ev.reason {
        c.push_str(&format!(" {r}"));
    }
    if let Some(a) = &s.ev.at {
        c.push_str(&format!(" at {a}"));
    }
    if s.reverse {
        c.push_str(" [reply]");
    }
    c
}

/// Writes a pcapng file of every step that carries packet bytes.
/// `runs` pairs a scenario name with its steps. Returns packets written.
pub fn write(out: &mut impl Write, runs: &[(&str, &[Step])]) -> io::Result<usize> {
    let section = SectionHeaderBlock {
        endianness: Endianness::Little,
        major_version: 1,
        minor_version: 0,
        section_length: -1,
        options: vec![SectionHeaderOption::UserApplication("pktfate".into())],
    };
    let mut w = PcapNgWriter::with_section_header(out, section).map_err(io_error)?;
    // One interface: raw IP (the capture starts at the network header),
    // nanosecond timestamps (pcap-file writes the EPB's in nanoseconds).
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName("pktfate trace".into()),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    })
    .map_err(io_error)?;
    let offset = monotonic_to_realtime();
    let mut n = 0;
    for (name, steps) in runs {
        for s in steps.iter().filter(|s| !s.ev.bytes.is_empty()) {
            let ts = (i128::from(s.ev.ts_ns) + offset).max(0) as u64;
            let data = &s.ev.bytes;
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(ts),
                original_len: s.ev.ip_len.max(data.len() as u32),
                data: Cow::Borrowed(data),
                options: vec![EnhancedPacketOption::Comment(comment(name, s).into())],
            })
            .map_err(io_error)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(bytes: Vec<u8>) -> Step {
        let mut s = crate::collect::sample_step(0xabc, "kfree_skb", &[], "host", "tun0");
        s.ev.ts_ns = 5;
        s.ev.reason = Some("IP_CSUM".into());
        s.ev.at = Some("ip_rcv_core".into());
        s.ev.ip_len = bytes.len() as u32 + 100;
        s.ev.bytes = bytes;
        s
    }

    #[test]
    fn a_capture_reads_back_with_its_packets_times_and_comments() {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let steps = vec![step(vec![0x45; 21]), step(vec![]), step(vec![0x60; 40])];
        let mut buf = vec![];
        let n = write(&mut buf, &[("demo", &steps)]).unwrap();
        assert_eq!(n, 2, "steps without bytes are left out");
        let mut r = PcapNgReader::new(buf.as_slice()).unwrap();
        let mut packets = vec![];
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => {
                    assert_eq!(i.linktype, DataLink::RAW);
                    assert!(
                        i.options
                            .contains(&InterfaceDescriptionOption::IfTsResol(9))
                    );
                }
                Block::EnhancedPacket(p) => packets.push(p.into_owned()),
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(packets.len(), 2);
        let first = &packets[0];
        assert_eq!(first.data.as_ref(), &[0x45; 21][..]);
        assert_eq!(
            first.original_len, 121,
            "the IP length, not the captured part"
        );
        // ts_ns 5 on the monotonic clock, moved onto the wall clock.
        let expected = (5 + monotonic_to_realtime()) as u128;
        assert!(first.timestamp.as_nanos().abs_diff(expected) < 1_000_000);
        assert_eq!(
            first.options,
            vec![EnhancedPacketOption::Comment(
                "demo: kfree_skb@host/tun0 skb 0xabc IP_CSUM at ip_rcv_core".into()
            )]
        );
        assert_eq!(packets[1].data.len(), 40);
    }
}
