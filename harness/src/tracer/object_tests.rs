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

/// The maps' data aya loads from `object` with `CONFIG` given `value` by
/// aya's own `override_global`, sorted.
fn rodata_patched_by_aya(object: &[u8], value: &[u8]) -> Vec<Vec<u8>> {
    let mut obj = aya_obj::Object::parse(object).unwrap();
    obj.patch_map_data([("CONFIG", (value, true))].into())
        .unwrap();
    maps_data(&obj)
}

fn maps_data(obj: &aya_obj::Object) -> Vec<Vec<u8>> {
    let mut data: Vec<Vec<u8>> = obj.maps.values().map(|m| m.data().to_vec()).collect();
    data.sort();
    data
}

/// A copy of the tracer's object whose `CONFIG` symbol says it is `size`
/// bytes at `at` in its section (the real one starts the section: a write
/// that ignored the symbol's place would go unseen).
fn with_config_at(at: u64, size: u64) -> crate::common::ebpf_loader::Aligned {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let elf = object::File::parse(TRACER_OBJ).unwrap();
    let index = elf.symbol_by_name("CONFIG").unwrap().index().0;
    let (symtab, _) = elf
        .section_by_name(".symtab")
        .unwrap()
        .file_range()
        .unwrap();
    // Elf64_Sym: name (4), info, other, shndx (2), value (8), size (8).
    let entry = (symtab + 24 * index as u64) as usize;
    let mut bytes = TRACER_OBJ.to_vec();
    bytes[entry + 8..entry + 16].copy_from_slice(&at.to_le_bytes());
    bytes[entry + 16..entry + 24].copy_from_slice(&size.to_le_bytes());
    crate::common::ebpf_loader::Aligned::from(&bytes[..])
}

/// The tracer's configuration, written into a copy of its object by
/// pktfate (one shared loader for every object), is what aya's
/// `override_global` on a loader of its own would have loaded: at the
/// start of `.rodata`, where it is, and at another place in it.
#[test]
fn a_patched_global_is_what_aya_would_have_loaded() {
    use crate::common::ebpf_loader::patched;
    let size = size_of::<crate::abi::TracerConfig>();
    // Every byte distinct from its neighbours: a write one byte off shows.
    let value: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let copy = patched(TRACER_OBJ, &[("CONFIG", &value)]).unwrap();
    let ours = maps_data(&aya_obj::Object::parse(copy.bytes()).unwrap());
    assert_eq!(ours, rodata_patched_by_aya(TRACER_OBJ, &value));
    // And it changed something: the object's own CONFIG is not this.
    assert_ne!(
        ours,
        maps_data(&aya_obj::Object::parse(TRACER_OBJ).unwrap())
    );

    let moved = with_config_at(40, 16);
    let copy = patched(moved.bytes(), &[("CONFIG", &value[..16])]).unwrap();
    assert_eq!(
        maps_data(&aya_obj::Object::parse(copy.bytes()).unwrap()),
        rodata_patched_by_aya(moved.bytes(), &value[..16])
    );
}

/// A global the object lacks, or of another size, is refused with aya's
/// own errors, as `override_global(.., must_exist: true)` refuses it.
#[test]
fn a_missing_or_misfit_global_is_refused_as_aya_refuses_it() {
    use crate::common::ebpf_loader::patched;
    let size = size_of::<crate::abi::TracerConfig>();
    match patched(TRACER_OBJ, &[("NO_SUCH_GLOBAL", &[0u8; 4])]) {
        Err(aya_obj::ParseError::SymbolNotFound { name }) => assert_eq!(name, "NO_SUCH_GLOBAL"),
        Err(other) => panic!("expected SymbolNotFound, got {other:?}"),
        Ok(_) => panic!("expected SymbolNotFound, got a patched copy"),
    }
    match patched(TRACER_OBJ, &[("CONFIG", &vec![0u8; size + 1])]) {
        Err(aya_obj::ParseError::InvalidGlobalData {
            sym_size,
            data_size,
            ..
        }) => assert_eq!((sym_size, data_size), (size as u64, size + 1)),
        Err(other) => panic!("expected InvalidGlobalData, got {other:?}"),
        Ok(_) => panic!("expected InvalidGlobalData, got a patched copy"),
    }
    // The licence is a symbol of the right size, but not a global aya
    // would write: it is in no data section.
    let mut obj = aya_obj::Object::parse(TRACER_OBJ).unwrap();
    let aya_says = obj.patch_map_data([("LICENSE", (&b"MIT\0"[..], true))].into());
    assert!(matches!(
        aya_says,
        Err(aya_obj::ParseError::MapNotFound { .. })
    ));
    match patched(TRACER_OBJ, &[("LICENSE", b"MIT\0")]) {
        Err(aya_obj::ParseError::MapNotFound { .. }) => {}
        Err(other) => panic!("expected MapNotFound, got {other:?}"),
        Ok(_) => panic!("expected MapNotFound, got a patched copy"),
    }
}

/// The tracer loads with the same loader as every other object (one parse
/// of the kernel BTF per process), and its configuration stays its own.
#[test]
fn the_tracer_and_other_objects_share_the_one_loader() {
    use crate::common::ebpf_loader;
    let config = crate::abi::TracerConfig::default();
    let tracer =
        ebpf_loader::load_patched(TRACER_OBJ, &[("CONFIG", ebpf_loader::bytes_of(&config))]);
    let other = ebpf_loader::load(crate::common::fixtures::TC_OBJ);
    assert_eq!(ebpf_loader::loaders_made(), 1);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // The tracer's CONFIG did not reach the other object, which has no
        // such global (a loader-wide one would have to exist there).
        tracer.expect("the tracer loads");
        other.expect("the tc fixtures load after it");
    }
}

/// Once the tracer's parse noted the probe's target, the probe reads
/// no BTF of its own; before, it reads the file once.
#[test]
fn the_probe_reads_no_btf_once_its_target_is_noted() {
    use crate::tracer::btf::kernel_reads_here;
    let object = TRACER_OBJ;
    if super::fentry::PROBE_TARGET_ID.get().is_none() {
        let before = kernel_reads_here();
        let _ = super::fentry::probe(object);
        assert_eq!(kernel_reads_here(), before + 1);
    }
    let btf = crate::tracer::btf::Btf::kernel().expect("needs kernel BTF");
    super::fentry::note_probe_target(&btf);
    assert_eq!(
        *super::fentry::PROBE_TARGET_ID.get().unwrap(),
        btf.function_id("ip_rcv")
    );
    let before = kernel_reads_here();
    // Loads or not (fentry is refused on some kernels): no read either way.
    let _ = super::fentry::probe(object);
    assert_eq!(kernel_reads_here(), before);
}
