//! Checks on the shipped tracer object itself: what the verifier of the
//! oldest supported kernel will count, and that the skb hooks stay small.

use super::raw_tp::TRACER_OBJ;
use crate::abi::{HOOK_NAMES, PROGRAMS};

/// A function of an eBPF ELF object: where it sits, how much stack it
/// uses, and whom it calls.
struct Function {
    name: String,
    section: String,
    /// Instruction slots.
    size: usize,
    /// Deepest offset below r10 it touches.
    stack: usize,
    /// (section index, byte offset) of each function it calls.
    calls: Vec<(usize, usize)>,
    key: (usize, usize),
}

/// The functions of an eBPF ELF object (little-endian, 64-bit).
fn functions(obj: &[u8]) -> Vec<Function> {
    let u16_at = |o: usize| u16::from_le_bytes([obj[o], obj[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(obj[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(obj[o..o + 8].try_into().unwrap()) as usize;
    let cstr = |o: usize| {
        let end = o + obj[o..].iter().position(|b| *b == 0).unwrap();
        String::from_utf8_lossy(&obj[o..end]).into_owned()
    };
    // Section headers: (name, type, offset, size, link, info).
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let sh = |i: usize| shoff + i * shentsize;
    let names_at = u64_at(sh(shstrndx) + 0x18);
    let sections: Vec<_> = (0..shnum)
        .map(|i| {
            let h = sh(i);
            (
                cstr(names_at + u32_at(h)),
                u32_at(h + 4),
                u64_at(h + 0x18),
                u64_at(h + 0x20),
                u32_at(h + 0x28),
                u32_at(h + 0x2c),
            )
        })
        .collect();
    const SHT_SYMTAB: usize = 2;
    const SHT_REL: usize = 9;
    const STT_FUNC: u8 = 2;
    let symtab = sections.iter().find(|s| s.1 == SHT_SYMTAB).unwrap();
    let strtab = sections[symtab.4].2;
    // Symbols: (name, type, section, value, size).
    let symbols: Vec<_> = (symtab.2..symtab.2 + symtab.3)
        .step_by(24)
        .map(|o| {
            (
                cstr(strtab + u32_at(o)),
                obj[o + 4] & 0x0f,
                u16_at(o + 6),
                u64_at(o + 8),
                u64_at(o + 16),
            )
        })
        .collect();
    // Calls into another section go through a relocation naming the
    // callee (or its section, with the offset in the instruction).
    let mut relocs = std::collections::HashMap::new();
    for s in sections.iter().filter(|s| s.1 == SHT_REL) {
        for o in (s.2..s.2 + s.3).step_by(16) {
            relocs.insert((s.5, u64_at(o)), &symbols[u64_at(o + 8) >> 32]);
        }
    }
    let mut out = vec![];
    for (name, kind, sec, value, size) in &symbols {
        if *kind != STT_FUNC {
            continue;
        }
        let base = sections[*sec].2;
        let (mut stack, mut calls) = (0usize, vec![]);
        let mut pc = *value;
        while pc + 8 <= value + size {
            let (op, regs) = (obj[base + pc], obj[base + pc + 1]);
            let disp = i16::from_le_bytes([obj[base + pc + 2], obj[base + pc + 3]]);
            let imm = i32::from_le_bytes(obj[base + pc + 4..base + pc + 8].try_into().unwrap());
            // LDX reads from src; ST/STX write to dst.
            let reg = match op & 7 {
                1 => regs >> 4,
                2 | 3 => regs & 0x0f,
                _ => 0,
            };
            if reg == 10 && disp < 0 {
                stack = stack.max(disp.unsigned_abs() as usize);
            }
            // A call with src_reg 1 is a call to a BPF function.
            if op == 0x85 && regs >> 4 == 1 {
                let next = (pc + 8) as i64;
                calls.push(match relocs.get(&(*sec, pc)) {
                    Some(s) if s.1 == STT_FUNC => (s.2, s.3),
                    Some(s) => (s.2, (s.3 as i64 + next + i64::from(imm) * 8) as usize),
                    None => (*sec, (next + i64::from(imm) * 8) as usize),
                });
            }
            // lddw takes two slots.
            pc += if op == 0x18 { 16 } else { 8 };
        }
        out.push(Function {
            name: name.clone(),
            section: sections[*sec].0.clone(),
            size: size / 8,
            stack,
            calls,
            key: (*sec, *value),
        });
    }
    out
}

/// The stack a call chain from `f` takes as the verifier counts it:
/// every frame rounded up to 32 bytes (at least 32), summed down the
/// deepest chain.
fn chain_stack(f: &Function, all: &[Function], depth: usize) -> usize {
    let own = f.stack.max(1).div_ceil(32) * 32;
    let deepest = f
        .calls
        .iter()
        .filter(|_| depth < 8)
        .filter_map(|k| all.iter().find(|g| g.key == *k))
        .map(|g| chain_stack(g, all, depth + 1))
        .max()
        .unwrap_or(0);
    own + deepest
}

#[test]
fn every_call_chain_fits_the_verifiers_512_bytes() {
    // The verifier sums the frames of a call chain, each rounded up to 32,
    // against 512 bytes. 5.10 and 6.1 also count the frame of a called
    // memset/memcpy: fib_table_lookup calling the global packet parser
    // came to "combined stack size of 3 calls is 544" there (224 + 288 +
    // 32), and was refused; 488 bytes in one program made 5.10 refuse
    // them all.
    let all = functions(TRACER_OBJ);
    let programs: Vec<_> = all.iter().filter(|f| f.section != ".text").collect();
    assert!(programs.len() > 10, "no programs found");
    assert!(
        all.iter().any(|f| f.name == "pktfate_parse"),
        "the global parser is missing: the model no longer sees the calls"
    );
    for f in programs {
        let total = chain_stack(f, &all, 0);
        assert!(
            total <= 512,
            "{}: its call chain needs {total} bytes of stack; 5.10 and 6.1 refuse more than 512",
            f.name
        );
    }
}

#[test]
fn skb_hooks_share_one_body() {
    // The verifier walks every instruction of every program it loads: a
    // hook program that carried the filter and event logic itself (~1,500
    // instructions, ~75,000 verified) made loading take 0.4 s. Each must
    // only hand its arguments over to skb_common.
    let all = functions(TRACER_OBJ);
    let common = all.iter().find(|f| f.name == "skb_common");
    assert!(
        common.is_some_and(|f| f.size > 500),
        "no shared skb_common body"
    );
    let mut hooks = 0;
    for p in PROGRAMS {
        if matches!(p.name, "fib_table_lookup" | "inet_sock_set_state") {
            continue; // skb-less hooks: their own logic
        }
        let f = all.iter().find(|f| f.name == p.name);
        let f = f.unwrap_or_else(|| panic!("{} is not in the object", p.name));
        assert_eq!(f.section, format!("raw_tp/{}", HOOK_NAMES[p.hook as usize]));
        assert!(
            f.size < 150,
            "{}: {} instructions; hand over to skb_common",
            p.name,
            f.size
        );
        hooks += 1;
    }
    assert!(hooks >= 12, "{hooks}");
}

/// The program aya cannot load comes out of the object linked, with every
/// map reference pointing at a map aya created, and this kernel's verifier
/// passes it as a kprobe-multi program (a load needs no kprobes; linking
/// does, and is exercised in the 6.12 and 6.18 guests of the kernel matrix).
#[test]
fn the_kprobe_multi_program_loads_with_the_tracers_maps() {
    use super::rawprog::{instructions, load};
    let ebpf = aya::EbpfLoader::new()
        .load(TRACER_OBJ)
        .expect("tracer object loads");
    let p =
        instructions(TRACER_OBJ, &ebpf, None, crate::abi::KPROBE_MULTI_PROGRAM).expect("relocated");
    assert_eq!(p.license, "GPL", "the helpers need a GPL licence");
    load(&p, super::kprobe_multi::KPROBE_MULTI).unwrap_or_else(|e| panic!("{e}"));
}
