//! The tc eBPF programs scenarios can attach (`fixtures/tc-programs`),
//! embedded in the binary like the tracer.

/// The fixture object, built by `build.rs`.
pub static TC_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktfate-tc-programs"));

/// A selectable tc program.
#[derive(Debug)]
pub struct TcProgram {
    /// Program (function) name.
    pub name: &'static str,
    /// Config keys, in `CONFIG` map index order.
    pub config: &'static [&'static str],
    /// What it does.
    pub about: &'static str,
}

/// Every fixture tc program.
pub const TC_PROGRAMS: &[TcProgram] = &[
    TcProgram {
        name: "drop_tcp_dport",
        config: &["port"],
        about: "drops TCP segments to destination port `port` (TC_ACT_SHOT)",
    },
    TcProgram {
        name: "rewrite_tcp_dport",
        config: &["from", "to"],
        about: "rewrites TCP destination port `from` to `to`, fixing the checksum",
    },
];

/// Index of a config key in a program's `CONFIG` map.
pub fn config_index(program: &str, key: &str) -> Option<u32> {
    let p = TC_PROGRAMS.iter().find(|p| p.name == program)?;
    p.config.iter().position(|k| *k == key).map(|i| i as u32)
}
