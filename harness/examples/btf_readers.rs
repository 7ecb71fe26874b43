//! pktfate's own BTF reader against btf-rs, on the running kernel's BTF:
//! the time to parse `/sys/kernel/btf/vmlinux` and the process's peak
//! memory after answering the tracer's questions (an offset in `sk_buff`,
//! the drop reasons, a tracepoint's arity). Each reader runs in a child
//! process of its own, alternating, so peaks do not mix; medians printed.
//!
//! `cargo run --release -p pktfate --features compare-readers --example btf_readers [ROUNDS]`

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// pktfate's reader: (parse µs, answers).
fn ours() -> (u128, (u32, usize, Option<usize>)) {
    let t0 = Instant::now();
    let b = pktfate::tracer::btf::Btf::from_file(Path::new(VMLINUX)).expect("kernel BTF");
    let parse = t0.elapsed().as_micros();
    let answers = (
        b.member_offset("sk_buff", "len").expect("sk_buff.len"),
        b.enum_values("skb_drop_reason").map_or(0, |v| v.len()),
        b.tracepoint_arity("kfree_skb"),
    );
    (parse, answers)
}

/// btf-rs: (parse µs, the same answers).
fn btf_rs() -> (u128, (u32, usize, Option<usize>)) {
    use btf_rs::Type;
    let t0 = Instant::now();
    let b = btf_rs::Btf::from_file(VMLINUX).expect("kernel BTF");
    let parse = t0.elapsed().as_micros();
    let len = b
        .resolve_types_by_name("sk_buff")
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) => s
                .members
                .iter()
                .find(|m| b.resolve_name(*m).is_ok_and(|n| n == "len"))
                .map(|m| m.bit_offset() / 8),
            _ => None,
        })
        .expect("sk_buff.len");
    let reasons = b
        .resolve_types_by_name("skb_drop_reason")
        .unwrap_or_default()
        .into_iter()
        .find_map(|t| match t {
            Type::Enum(e) => Some(e.members.len()),
            _ => None,
        })
        .unwrap_or(0);
    let arity = b
        .resolve_types_by_name("btf_trace_kfree_skb")
        .ok()
        .and_then(|v| v.into_iter().next())
        .and_then(|t| match t {
            Type::Typedef(td) => b.resolve_chained_type(&td).ok(),
            _ => None,
        })
        .and_then(|t| match t {
            Type::Ptr(p) => b.resolve_chained_type(&p).ok(),
            _ => None,
        })
        .and_then(|t| match t {
            Type::FuncProto(f) => Some(f.parameters.len().saturating_sub(1)),
            _ => None,
        });
    (parse, (len, reasons, arity))
}

fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--child-ours") => {
            let (us, a) = ours();
            println!("{us} {} {a:?}", peak_kib());
            return;
        }
        Some("--child-btf-rs") => {
            let (us, a) = btf_rs();
            println!("{us} {} {a:?}", peak_kib());
            return;
        }
        _ => {}
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    let exe = std::env::current_exe().expect("this example");
    let mut results: Vec<(&str, Vec<u128>, Vec<u128>, String)> = vec![
        ("pktfate btf", vec![], vec![], String::new()),
        ("btf-rs", vec![], vec![], String::new()),
    ];
    for _ in 0..rounds {
        for (i, flag) in ["--child-ours", "--child-btf-rs"].iter().enumerate() {
            let out = Command::new(&exe).arg(flag).output().expect("a child");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut f = text.splitn(3, ' ');
            let us: u128 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            let kib: u128 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            results[i].1.push(us);
            results[i].2.push(kib);
            results[i].3 = f.next().unwrap_or("").trim().to_string();
        }
    }
    println!("{rounds} rounds, {VMLINUX}, each reader in a process of its own");
    println!(
        "{:<12} {:>10} {:>10}  answers (sk_buff.len byte offset, drop reasons, kfree_skb arity)",
        "reader", "parse", "peak RSS"
    );
    for (name, us, kib, answers) in results {
        println!(
            "{name:<12} {:>8.1}ms {:>7.1}MiB  {answers}",
            median(us) as f64 / 1000.0,
            median(kib) as f64 / 1024.0
        );
    }
}
