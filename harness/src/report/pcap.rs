//! Writing traced packets as pcapng, one packet per timeline step, with the
//! step, namespace, device and skb in each packet's comment, so tshark and
//! Wireshark show where in the kernel each copy of the packet was.
//!
//! The capture starts at the network header (link type RAW: IPv4/IPv6) and
//! holds up to 128 bytes of each packet; the original length is kept.

use std::io::{self, Write};

use crate::collect::Step;

/// `LINKTYPE_RAW`: the packet begins with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u16 = 101;

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + pad4(body.len())) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&vec![0u8; pad4(body.len()) - body.len()])?;
    out.write_all(&total.to_le_bytes())
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.extend(std::iter::repeat_n(0u8, pad4(value.len()) - value.len()));
}

fn end_of_options(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[0, 0, 0, 0]);
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
    // Section header: byte-order magic, version 1.0, unknown section length.
    let mut shb = vec![];
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut shb, 4, b"pktfate"); // shb_userappl
    end_of_options(&mut shb);
    block(out, 0x0A0D_0D0A, &shb)?;
    // One interface: raw IP, nanosecond timestamps.
    let mut idb = vec![];
    idb.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    option(&mut idb, 2, b"pktfate trace"); // if_name
    option(&mut idb, 9, &[9]); // if_tsresol: 10^-9
    end_of_options(&mut idb);
    block(out, 1, &idb)?;
    let offset = monotonic_to_realtime();
    let mut n = 0;
    for (name, steps) in runs {
        for s in steps.iter().filter(|s| !s.ev.bytes.is_empty()) {
            let ts = (i128::from(s.ev.ts_ns) + offset).max(0) as u64;
            let data = &s.ev.bytes;
            let mut epb = vec![];
            epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(ts as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(s.ev.ip_len.max(data.len() as u32)).to_le_bytes());
            epb.extend_from_slice(data);
            epb.extend(std::iter::repeat_n(0u8, pad4(data.len()) - data.len()));
            option(&mut epb, 1, comment(name, s).as_bytes()); // opt_comment
            end_of_options(&mut epb);
            block(out, 6, &epb)?;
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
    fn blocks_are_well_formed() {
        let steps = vec![step(vec![0x45; 21]), step(vec![]), step(vec![0x60; 40])];
        let mut buf = vec![];
        let n = write(&mut buf, &[("demo", &steps)]).unwrap();
        assert_eq!(n, 2, "steps without bytes are left out");
        // Walk the blocks: each starts and ends with the same total length.
        let mut at = 0;
        let mut kinds = vec![];
        while at < buf.len() {
            let kind = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let tail = u32::from_le_bytes(buf[at + len - 4..at + len].try_into().unwrap()) as usize;
            assert_eq!(len, tail);
            kinds.push(kind);
            at += len;
        }
        assert_eq!(kinds, vec![0x0A0D_0D0A, 1, 6, 6]);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("demo: kfree_skb@host/tun0 skb 0xabc IP_CSUM at ip_rcv_core"));
    }
}
