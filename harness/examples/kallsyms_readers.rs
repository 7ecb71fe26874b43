//! pktfate's kallsyms table against blazesym (the libbpf project's
//! symbolizer), on the running kernel: the time to read `/proc/kallsyms`
//! and answer the first lookups, the time of 10,000 more lookups (a
//! stack of each event is symbolized), and the process's peak memory.
//! The addresses are functions of the skb path plus an offset, and of a
//! loaded module when one has text symbols. Each reader runs in a child
//! process of its own, alternating, so peaks do not mix; medians printed.
//!
//! `cargo run --release -p pktfate --features compare-readers --example kallsyms_readers [ROUNDS]`

use std::process::Command;
use std::time::Instant;

/// Functions every kernel pktfate supports has, looked up at +0x10.
const FUNCTIONS: [&str; 5] = [
    "ip_rcv",
    "__netif_receive_skb_core",
    "nf_hook_slow",
    "tcp_v4_rcv",
    "dev_hard_start_xmit",
];

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Addresses to look up: [`FUNCTIONS`] and one module function, +0x10.
fn addresses() -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").expect("/proc/kallsyms (root)");
    let mut out = vec![];
    let mut module = None;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(addr), Some(kind), Some(name)) = (f.first(), f.get(1), f.get(2)) else {
            continue;
        };
        if !matches!(*kind, "t" | "T") {
            continue;
        }
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        if f.len() == 3 && FUNCTIONS.contains(name) {
            out.push(addr + 0x10);
        } else if f.len() == 4
            && module.is_none()
            && !f[3].starts_with("[__builtin")
            && f[3] != "[bpf]"
        {
            module = Some(addr + 0x10);
        }
    }
    out.extend(module);
    assert!(
        out.iter().all(|a| *a > 0x10),
        "addresses hidden: run as root"
    );
    out
}

/// Answers as `name+0xoff` each, `?` when not found.
type Answers = Vec<String>;

/// pktfate's table: (read and first lookups µs, 10,000 lookups µs, answers).
fn ours(addrs: &[u64]) -> (u128, u128, Answers) {
    use pktfate::tracer::kallsyms::Kallsyms;
    let t0 = Instant::now();
    // As the tracer reads it: the process-wide table, read on first use.
    let k = Kallsyms::kernel();
    let answers: Answers = addrs
        .iter()
        .map(|a| {
            k.lookup(*a)
                .map_or("?".into(), |(n, o)| format!("{n}+{o:#x}"))
        })
        .collect();
    let first = t0.elapsed().as_micros();
    let t1 = Instant::now();
    let mut found = 0;
    for i in 0..10_000 {
        found += usize::from(k.lookup(addrs[i % addrs.len()]).is_some());
    }
    assert!(found > 0);
    (first, t1.elapsed().as_micros(), answers)
}

/// blazesym: the same.
fn blazesym(addrs: &[u64]) -> (u128, u128, Answers) {
    use blazesym::MaybeDefault;
    use blazesym::symbolize::source::{Kernel, Source};
    use blazesym::symbolize::{Input, Symbolized, Symbolizer};
    let src = Source::Kernel(Kernel {
        vmlinux: MaybeDefault::None,
        debug_syms: false,
        ..Kernel::default()
    });
    let t0 = Instant::now();
    let s = Symbolizer::new();
    let syms = s
        .symbolize(&src, Input::AbsAddr(addrs))
        .expect("symbolized");
    let answers: Answers = syms
        .iter()
        .map(|r| match r {
            Symbolized::Sym(sym) => format!("{}+{:#x}", sym.name, sym.offset),
            Symbolized::Unknown(_) => "?".into(),
        })
        .collect();
    let first = t0.elapsed().as_micros();
    let many: Vec<u64> = (0..10_000).map(|i| addrs[i % addrs.len()]).collect();
    let t1 = Instant::now();
    let syms = s
        .symbolize(&src, Input::AbsAddr(&many))
        .expect("symbolized");
    assert!(syms.iter().any(|r| matches!(r, Symbolized::Sym(_))));
    (first, t1.elapsed().as_micros(), answers)
}

/// A reader's samples: read+first µs, 10k lookups µs, peak KiB, answers.
type Samples = (&'static str, Vec<u128>, Vec<u128>, Vec<u128>, String);

fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some(flag @ ("--child-ours" | "--child-blazesym")) = args.next().as_deref() {
        let addrs: Vec<u64> = args.filter_map(|a| a.parse().ok()).collect();
        let (first, many, answers) = if flag == "--child-ours" {
            ours(&addrs)
        } else {
            blazesym(&addrs)
        };
        println!("{first} {many} {} {}", peak_kib(), answers.join(","));
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    let addrs: Vec<String> = addresses().iter().map(u64::to_string).collect();
    let exe = std::env::current_exe().expect("this example");
    let mut results: Vec<Samples> = vec![
        ("pktfate", vec![], vec![], vec![], String::new()),
        ("blazesym", vec![], vec![], vec![], String::new()),
    ];
    for _ in 0..rounds {
        for (i, flag) in ["--child-ours", "--child-blazesym"].iter().enumerate() {
            let out = Command::new(&exe)
                .arg(flag)
                .args(&addrs)
                .output()
                .expect("a child");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut f = text.splitn(4, ' ');
            let mut num = || -> u128 { f.next().and_then(|x| x.parse().ok()).unwrap_or(0) };
            let (first, many, kib) = (num(), num(), num());
            results[i].1.push(first);
            results[i].2.push(many);
            results[i].3.push(kib);
            results[i].4 = f.next().unwrap_or("").trim().to_string();
        }
    }
    println!("{rounds} rounds, /proc/kallsyms, each reader in a process of its own");
    println!(
        "{:<9} {:>12} {:>14} {:>9}  answers",
        "reader", "read+first", "10k lookups", "peak RSS"
    );
    for (name, first, many, kib, answers) in results {
        println!(
            "{name:<9} {:>10.1}ms {:>12.2}ms {:>6.1}MiB  {answers}",
            median(first) as f64 / 1000.0,
            median(many) as f64 / 1000.0,
            median(kib) as f64 / 1024.0
        );
    }
}
