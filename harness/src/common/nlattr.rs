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

/// One attribute as the kernel writes it, padded to 4 bytes: requests,
/// and the messages the readers' tests build.
pub fn encode(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    v.extend(kind.to_ne_bytes());
    v.extend(payload);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_back_what_was_written_padding_skipped() {
        // A 3-byte payload is padded to 8 bytes: the next one must still
        // be found, and a nested flag (0x8000) is not part of the type.
        let mut b = encode(1, b"abc");
        assert_eq!(b.len(), 8);
        b.extend(encode(2 | 0x8000, &7u32.to_be_bytes()));
        let got: Vec<(u16, Vec<u8>)> = attributes(&b).map(|(k, p)| (k, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![(1, b"abc".to_vec()), (2, 7u32.to_be_bytes().to_vec())]
        );
        // A length past the end stops the stream.
        let mut bad = encode(3, b"x");
        bad[0] = 200;
        assert_eq!(attributes(&bad).count(), 0);
    }
}
