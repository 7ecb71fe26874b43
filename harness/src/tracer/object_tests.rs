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

/// The functions of an eBPF ELF object, read with the `object` crate;
/// only the instructions are decoded here.
fn functions(obj: &[u8]) -> Vec<Function> {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SymbolKind};
    let file = object::File::parse(obj).expect("an ELF object");
    // A call into another section goes through a relocation naming the
    // callee (or its section, with the offset in the instruction), by
    // (section, offset of the call).
    let mut relocs = std::collections::HashMap::new();
    for section in file.sections() {
        for (at, r) in section.relocations() {
            if let RelocationTarget::Symbol(i) = r.target() {
                let target = file.symbol_by_index(i).expect("a relocation's symbol");
                relocs.insert((section.index().0, at as usize), target);
            }
        }
    }
    let place = |s: &object::Symbol| (s.section_index().map_or(0, |i| i.0), s.address() as usize);
    let mut out = vec![];
    for sym in file.symbols().filter(|s| s.kind() == SymbolKind::Text) {
        let Some(sec) = sym.section_index() else {
            continue;
        };
        let section = file.section_by_index(sec).expect("the symbol's section");
        let code = section.data().expect("section bytes");
        let (value, size) = (sym.address() as usize, sym.size() as usize);
        let (mut stack, mut calls) = (0usize, vec![]);
        let mut pc = value;
        while pc + 8 <= value + size {
            let (op, regs) = (code[pc], code[pc + 1]);
            let disp = i16::from_le_bytes([code[pc + 2], code[pc + 3]]);
            let imm = i32::from_le_bytes(code[pc + 4..pc + 8].try_into().unwrap());
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
                calls.push(match relocs.get(&(sec.0, pc)) {
                    Some(t) if t.kind() == SymbolKind::Text => place(t),
                    // Against a section's symbol, the callee is at
                    // `(imm + 1)` slots from the section's start (as
                    // libbpf reads it), not relative to the call.
                    Some(t) => {
                        let (s, base) = place(t);
                        (s, (base as i64 + (i64::from(imm) + 1) * 8) as usize)
                    }
                    None => (sec.0, (next + i64::from(imm) * 8) as usize),
                });
            }
            // lddw takes two slots.
            pc += if op == 0x18 { 16 } else { 8 };
        }
        out.push(Function {
            name: sym.name().unwrap_or_default().to_string(),
            section: section.name().unwrap_or_default().to_string(),
            size: size / 8,
            stack,
            calls,
            key: (sec.0, value),
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
        if matches!(
            p.name,
            "fib_table_lookup" | "fib6_table_lookup" | "inet_sock_set_state"
        ) {
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

#[test]
fn function_probes_share_one_body() {
    // Eleven programs (five kprobes, five fentries, kprobe-multi) each
    // inlined the ~860-instruction body once: two thirds of the object's
    // code. Each must only find its skb argument and call the body.
    let all = functions(TRACER_OBJ);
    let body = all
        .iter()
        .find(|f| f.name.contains("on_function"))
        .expect("no shared on_function body");
    assert!(body.size > 500, "on_function: {} instructions", body.size);
    let names = crate::abi::KPROBE_PROGRAMS
        .into_iter()
        .chain(crate::abi::FENTRY_PROGRAMS)
        .chain([crate::abi::KPROBE_MULTI_PROGRAM]);
    let mut probes = 0;
    for name in names {
        let f = all.iter().find(|f| f.name == name);
        let f = f.unwrap_or_else(|| panic!("{name} is not in the object"));
        assert!(
            f.size < 60,
            "{name}: {} instructions; call the shared body",
            f.size
        );
        assert!(
            f.calls.contains(&body.key),
            "{name} does not call on_function: {:?} vs {:?}",
            f.calls,
            body.key
        );
        probes += 1;
    }
    assert_eq!(probes, 11);
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

/// Each program-return program, linked as the tracer loads it, carries the
/// slot immediate, and writing a slot leaves none of it behind: a copy
/// whose slot were not written would report every return as slot
/// `PROG_SLOT_MAGIC`'s, that is, as no program's.
#[test]
fn program_return_programs_carry_their_slot_immediate() {
    use super::rawprog::instructions;
    let ebpf = aya::EbpfLoader::new()
        .load(TRACER_OBJ)
        .expect("tracer object loads");
    for name in crate::abi::PROG_RETURN_PROGRAMS {
        let mut p = instructions(TRACER_OBJ, &ebpf, None, name).expect("relocated");
        let written = super::prog_return::write_slot(&mut p.insns, 7);
        assert!(written >= 1, "{name}: no slot immediate");
        assert!(
            p.insns.iter().all(|i| i.imm != crate::abi::PROG_SLOT_MAGIC),
            "{name}: an immediate was left unwritten"
        );
    }
}
