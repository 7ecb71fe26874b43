//! Kernel address → function name, from `/proc/kallsyms`.

use std::sync::OnceLock;

/// A sorted table of kernel text symbols.
pub struct Kallsyms {
    /// (address, name), sorted by address.
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    /// Parses kallsyms text, keeping text (`t`/`T`) symbols.
    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable_by_key(|s| s.0);
        Self { syms }
    }

    /// The process-wide table for the running kernel (read once).
    pub fn kernel() -> &'static Kallsyms {
        static K: OnceLock<Kallsyms> = OnceLock::new();
        K.get_or_init(|| {
            Kallsyms::parse(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default())
        })
    }

    /// Whether real addresses are visible (root with kptr_restrict allowing it).
    pub fn usable(&self) -> bool {
        !self.syms.is_empty()
    }

    /// The function containing `addr`, with the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|s| s.0 <= addr);
        let (start, name) = self.syms.get(i.checked_sub(1)?)?;
        // Section markers end a region: an address after one is in memory
        // kallsyms does not describe (JIT images, trampolines).
        if is_marker(name) {
            return None;
        }
        Some((name.as_str(), addr - start))
    }

    /// The function name containing `addr`, or the hex address.
    pub fn name(&self, addr: u64) -> String {
        self.lookup(addr)
            .map_or_else(|| format!("{addr:#x}"), |(n, _)| n.to_string())
    }
}

/// Linker symbols that mark the end of a text region (nothing after them,
/// up to the next symbol, is code kallsyms knows).
fn is_marker(name: &str) -> bool {
    matches!(name, "_etext" | "_einittext" | "_end")
        || (name.starts_with("__") && name.ends_with("_text_end"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_enclosing_text_symbol() {
        let k = Kallsyms::parse(
            "ffffffff81000100 T ip_rcv_core\nffffffff81000200 t ip_rcv\nffffffff81000150 D some_data\n",
        );
        assert_eq!(k.lookup(0xffffffff81000100), Some(("ip_rcv_core", 0)));
        assert_eq!(k.lookup(0xffffffff810001ff), Some(("ip_rcv_core", 0xff)));
        assert_eq!(k.lookup(0xffffffff81000210), Some(("ip_rcv", 0x10)));
        assert_eq!(k.lookup(0xffffffff81000050), None);
        assert_eq!(k.name(0x10), "0x10");
        let k = Kallsyms::parse("ffffffff81000100 T ip_rcv\nffffffff83000000 T _einittext\n");
        assert_eq!(
            k.lookup(0xffffffff83000010),
            None,
            "past the end of kernel text"
        );
        assert_eq!(k.name(0xffffffff83000010), "0xffffffff83000010");
    }
}
