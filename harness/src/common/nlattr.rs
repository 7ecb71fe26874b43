//! Netlink attributes (`struct nlattr` streams), for the netfilter
//! messages the tracer and collection read: nftables traces and
//! conntrack entries.

/// The attributes of a stream: (type without the nested and byte-order
/// flags, payload). Stops at the first malformed one.
pub fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((kind, payload))
    })
}

/// The netlink messages of a datagram: each with its header.
pub fn messages(mut b: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if b.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            return None;
        }
        let m = &b[..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some(m)
    })
}

/// A big-endian u32 payload.
pub fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// A big-endian u16 payload.
pub fn be_u16(p: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(p.get(..2)?.try_into().ok()?))
}

/// A NUL-terminated string payload.
pub fn text(p: &[u8]) -> String {
    String::from_utf8_lossy(p.split(|&c| c == 0).next().unwrap_or_default()).into_owned()
}
