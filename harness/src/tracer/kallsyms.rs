//! Kernel address → function name, from `/proc/kallsyms`.
//!
//! Symbols carry no sizes, so a lookup finds the nearest symbol below an
//! address; that is only right inside a region kallsyms describes. The
//! regions are the kernel's text (`_stext`..`_etext`), its init text
//! (`_sinittext`..`_einittext`) and each module's (base and size from
//! `/proc/modules`). Anything else, such as a BPF JIT image or a
//! trampoline, is not named after whichever symbol happens to precede it.
//!
//! Modules load while a run goes on (a scenario's bridge, vxlan or
//! `nf_tables`), so the table is re-read whenever `/proc/modules` changes.
//!
//! Kept over blazesym 0.2 (the libbpf project's symbolizer, kallsyms
//! source), measured with `examples/kallsyms_readers.rs` (9 rounds, each
//! in a process of its own, Linux 6.18, 121,000 kallsyms lines): reading
//! and the first lookups take the same (75.9 ms ours, 76.3 ms blazesym;
//! ~45 ms of it is the kernel producing the file), peak memory 6.9 MiB
//! ours and 10.8 MiB blazesym, 10,000 lookups 0.38 ms ours and 2.17 ms
//! blazesym, same answers; blazesym also names addresses in trampolines
//! after the symbol before them, which this table refuses on purpose.
//! Since then lines are read as bytes through one buffer, not a `String`
//! each: `Kallsyms::kernel()` took 40-44 ms instead of ~45 ms (5 runs
//! each, Linux 6.18), ~13 ms of it in pktfate (`perf record`), the rest
//! the kernel writing the file.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Which modules are loaded where, from `/proc/modules` text: each one's
/// name, state and address. Reference counts and users are left out: they
/// change whenever a scenario makes or deletes a device or a rule of a
/// module (a bridge, an nftables table), which moves no symbol, and a
/// re-read of `/proc/kallsyms` costs tens of milliseconds.
fn loaded_modules(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        // name size refcount deps state address [taint]
        let f: Vec<&str> = l.split_whitespace().collect();
        if let (Some(name), Some(state), Some(addr)) = (f.first(), f.get(4), f.get(5)) {
            out.push_str(&format!("{name} {state} {addr}\n"));
        }
    }
    out
}

/// A table being read, line by line: what [`Kallsyms`] keeps of each.
#[derive(Default)]
struct Table {
    syms: Vec<(u64, u32, u32)>,
    names: String,
    stext: Option<u64>,
    etext: Option<u64>,
    sinit: Option<u64>,
    einit: Option<u64>,
}

impl Table {
    /// One line, `address type name [module]`, as bytes: the file is ~10
    /// MB of text, most of it not kept, so no `String` or UTF-8 check per
    /// line (see the module's notes for what that saved).
    fn line(&mut self, l: &[u8]) {
        let mut it = l.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty());
        let (Some(a), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
            return;
        };
        if !matches!(kind, b"t" | b"T") {
            return;
        }
        let Some(addr) = hex(a) else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        if addr == 0 {
            return;
        }
        match name {
            "_stext" => self.stext = Some(addr),
            "_etext" => self.etext = Some(addr),
            "_sinittext" => self.sinit = Some(addr),
            "_einittext" => self.einit = Some(addr),
            _ => {}
        }
        self.syms
            .push((addr, self.names.len() as u32, name.len() as u32));
        self.names.push_str(name);
    }

    /// The table, with the regions its markers and `modules` describe.
    fn finish(self, modules: &str) -> Kallsyms {
        let Table {
            mut syms,
            mut names,
            stext,
            etext,
            sinit,
            einit,
        } = self;
        syms.sort_unstable_by_key(|s| s.0);
        let mut regions = vec![];
        if let (Some(s), Some(e)) = (stext, etext) {
            regions.push((s, e));
            if let (Some(s), Some(e)) = (sinit, einit) {
                regions.push((s, e));
            }
            for l in modules.lines() {
                // name size refcount deps state address [taint]
                let f: Vec<&str> = l.split_whitespace().collect();
                let (Some(size), Some(base)) = (f.get(1), f.get(5)) else {
                    continue;
                };
                let base = u64::from_str_radix(base.trim_start_matches("0x"), 16).unwrap_or(0);
                if let (Ok(size), true) = (size.parse::<u64>(), base != 0) {
                    regions.push((base, base + size));
                }
            }
        }
        names.shrink_to_fit();
        syms.shrink_to_fit();
        Kallsyms {
            syms,
            names,
            regions,
            modules: loaded_modules(modules),
        }
    }
}

/// A hexadecimal address; `None` for anything else.
fn hex(a: &[u8]) -> Option<u64> {
    if a.is_empty() || a.len() > 16 {
        return None;
    }
    a.iter().try_fold(0u64, |v, &c| {
        let d = (c as char).to_digit(16)?;
        Some(v << 4 | u64::from(d))
    })
}

/// A sorted table of kernel text symbols and the regions they describe.
pub struct Kallsyms {
    /// (address, name's start and length in `names`), sorted by address:
    /// ~200,000 text symbols, so no `String` each.
    syms: Vec<(u64, u32, u32)>,
    /// Every kept name, back to back.
    names: String,
    /// Address ranges `[start, end)` where the nearest symbol below is the
    /// enclosing function; empty when unknown (then every lookup is trusted).
    regions: Vec<(u64, u64)>,
    /// The modules the table was read with (see [`loaded_modules`]).
    modules: String,
}

impl Kallsyms {
    /// Parses kallsyms text, keeping text (`t`/`T`) symbols; `modules` is
    /// `/proc/modules` text (may be empty).
    pub fn parse_with_modules(text: &str, modules: &str) -> Self {
        Self::parse_lines(text.lines(), modules)
    }

    fn parse_lines<L: AsRef<str>>(lines: impl Iterator<Item = L>, modules: &str) -> Self {
        let mut table = Table::default();
        for l in lines {
            table.line(l.as_ref().as_bytes());
        }
        table.finish(modules)
    }

    /// Parses kallsyms text alone (no region bounds beyond its markers).
    pub fn parse(text: &str) -> Self {
        Self::parse_with_modules(text, "")
    }

    fn read() -> Self {
        use std::io::BufRead;
        let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        // Streamed through one line buffer: the file is ~10 MB of text,
        // most of it not kept.
        let mut table = Table::default();
        if let Ok(f) = std::fs::File::open("/proc/kallsyms") {
            let mut r = std::io::BufReader::with_capacity(1 << 16, f);
            let mut line = Vec::with_capacity(256);
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                table.line(&line);
                line.clear();
            }
        }
        table.finish(&modules)
    }

    /// The process-wide table for the running kernel, read on first use and
    /// again after modules change (see [`Kallsyms::refresh`]).
    pub fn kernel() -> Arc<Kallsyms> {
        if let Some(k) = shared()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return k.clone();
        }
        let mut guard = shared()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.get_or_insert_with(|| Arc::new(Self::read())).clone()
    }

    /// Re-reads the table if `/proc/modules` differs from the snapshot's
    /// (a module was loaded or removed); returns whether it did. Cheap when
    /// nothing changed: one read of `/proc/modules`.
    pub fn refresh() -> bool {
        // One re-read at a time: scenarios building in parallel all see
        // the same new module, and two tables read at once double the peak.
        static ONE: Mutex<()> = Mutex::new(());
        let _one = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        if Self::kernel().modules == loaded_modules(&now) {
            return false;
        }
        let fresh = Arc::new(Self::read());
        *shared()
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh);
        true
    }

    /// Like [`Kallsyms::refresh`], at most every `interval`: for lookups
    /// that miss, which may be many.
    pub fn refresh_at_most_every(interval: Duration) -> bool {
        static LAST: Mutex<Option<Instant>> = Mutex::new(None);
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        drop(last);
        Self::refresh()
    }

    /// Whether real addresses are visible (root with `kptr_restrict` allowing it).
    pub fn usable(&self) -> bool {
        !self.syms.is_empty()
    }

    fn in_regions(&self, addr: u64) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|(s, e)| (*s..*e).contains(&addr))
    }

    /// The function containing `addr`, with the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        if !self.in_regions(addr) {
            return None;
        }
        let i = self.syms.partition_point(|s| s.0 <= addr);
        let &(start, at, len) = self.syms.get(i.checked_sub(1)?)?;
        let name = &self.names[at as usize..(at + len) as usize];
        // Section markers end a region: an address after one is in memory
        // kallsyms does not describe (JIT images, trampolines).
        if is_marker(name) {
            return None;
        }
        Some((name, addr - start))
    }

    /// The function name containing `addr`, or the hex address.
    pub fn name(&self, addr: u64) -> String {
        self.lookup(addr)
            .map_or_else(|| format!("{addr:#x}"), |(n, _)| n.to_string())
    }
}

fn shared() -> &'static RwLock<Option<Arc<Kallsyms>>> {
    static K: RwLock<Option<Arc<Kallsyms>>> = RwLock::new(None);
    &K
}

/// Linker symbols that mark the end of a text region (nothing after them,
/// up to the next symbol, is code kallsyms knows).
fn is_marker(name: &str) -> bool {
    matches!(
        name,
        "_etext" | "_einittext" | "_end" | "__init_end" | "__exitcall_end"
    ) || (name.starts_with("__") && name.ends_with("_text_end"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_the_kernel_writes_them() {
        let k = Kallsyms::parse(
            "ffffffffc0a01000 t nft_do_chain\t[nf_tables]\n\
             ffffffffc0a02000 T nft_trace_notify\t[nf_tables]\n\
             FFFFFFFF81000000 T ip_rcv\n\
             0000000000000000 T hidden\n\
             ffffffff81000400 D some_data\n\
             not-hex T broken\n\
             ffffffff81000500 T\n",
        );
        // A module's symbol ends at the tab before its module's name.
        assert_eq!(k.lookup(0xffffffffc0a01010), Some(("nft_do_chain", 0x10)));
        assert_eq!(k.lookup(0xffffffffc0a02000), Some(("nft_trace_notify", 0)));
        assert_eq!(k.lookup(0xffffffff81000004), Some(("ip_rcv", 4)));
        // Data, zero addresses, bad addresses and cut lines are skipped.
        assert_eq!(k.lookup(0xffffffff81000404), Some(("ip_rcv", 0x404)));
        assert_eq!(k.syms.len(), 3);
    }

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

    /// The layout of a 6.12 kernel with modules: core text, init text with
    /// `.exit.text` functions at its end, a module, and a BPF JIT image in
    /// module space that belongs to no module.
    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000100 T ip_rcv
ffffffff82000000 T _etext
ffffffff83000000 T _sinittext
ffffffff83000100 t mpls_gso_init
ffffffff83100000 T _einittext
ffffffff83100200 t mpls_gso_exit
ffffffffc0a00000 t nft_do_chain\t[nf_tables]
ffffffffc0a00400 t nft_trace_init\t[nf_tables]
ffffffffc0c00000 t bpf_prog_6deef7357e7b4530_kfree_skb\t[bpf]
";
    const MODULES: &str = "nf_tables 344064 0 - Live 0xffffffffc0a00000\n";

    #[test]
    fn addresses_outside_every_region_stay_unnamed() {
        let k = Kallsyms::parse_with_modules(KALLSYMS, MODULES);
        assert_eq!(k.name(0xffffffff81000110), "ip_rcv");
        assert_eq!(k.name(0xffffffffc0a00010), "nft_do_chain");
        // Past the init text: not the last .exit.text function.
        assert_eq!(k.name(0xffffffff83100300), "0xffffffff83100300");
        // A JIT image after the last module: not that module's function.
        assert_eq!(k.name(0xffffffffc0b00000), "0xffffffffc0b00000");
    }

    #[test]
    fn a_module_loaded_after_the_snapshot_is_unnamed_until_reread() {
        // Snapshot taken before nf_tables was loaded: its addresses must not
        // be given to the symbol before them.
        let before = "ffffffff81000000 T _stext\nffffffff81000100 T tun_cleanup\nffffffff82000000 T _etext\n";
        let k = Kallsyms::parse_with_modules(before, "");
        assert_eq!(k.name(0xffffffffc0a00010), "0xffffffffc0a00010");
        let k = Kallsyms::parse_with_modules(KALLSYMS, MODULES);
        assert_eq!(k.name(0xffffffffc0a00010), "nft_do_chain");
    }

    #[test]
    fn only_a_module_loaded_moved_or_unloaded_calls_for_a_reread() {
        let before = "nf_tables 344064 3 nft_chain_nat, Live 0xffffffffc0a00000\n\
                      bridge 421888 0 - Live 0xffffffffc0c00000\n";
        // A scenario made an nftables table and a bridge: counts and users
        // change, no symbol moves.
        let used = "nf_tables 344064 5 nft_chain_nat,nft_ct, Live 0xffffffffc0a00000\n\
                    bridge 421888 2 - Live 0xffffffffc0c00000\n";
        assert_eq!(loaded_modules(before), loaded_modules(used));
        let loaded = format!("{used}vxlan 155648 0 - Live 0xffffffffc0e00000\n");
        assert_ne!(loaded_modules(used), loaded_modules(&loaded));
        let moved = used.replace("0xffffffffc0c00000", "0xffffffffc0d00000");
        assert_ne!(loaded_modules(used), loaded_modules(&moved));
        let unloaded = "nf_tables 344064 5 nft_chain_nat,nft_ct, Live 0xffffffffc0a00000\n";
        assert_ne!(loaded_modules(used), loaded_modules(unloaded));
        let loading = used.replace("bridge 421888 2 - Live", "bridge 421888 2 - Loading");
        assert_ne!(loaded_modules(used), loaded_modules(&loading));
    }
}
