//! A program interrupted on its CPU (a softirq run on an interrupt's exit
//! runs our programs there too) must find its half-built event as it left
//! it: each nesting level builds in its own scratch slot. Checked by
//! running a hook program with `BPF_PROG_TEST_RUN` while the CPU's nesting
//! count says a program of ours is already running there.

use aya::maps::{MapData, PerCpuArray, PerCpuValues};

use super::*;

/// The CPU the hook program is run on.
const CPU: usize = 0;
/// What the interrupted program had written into its event.
const HALF_BUILT: u64 = 0x5eed_0000_0000_0001;
/// The `skb` argument the hook is run with: no kernel address (every read
/// of it fails), so the program builds its event and drops it as no IP
/// packet.
const NOT_AN_SKB: u64 = 0x1000;

/// `BPF_PROG_TEST_RUN` of a raw tracepoint program on [`CPU`] with these
/// arguments (aya 0.14 has no call for it).
fn test_run(prog: &aya::programs::Program, args: &[u64]) -> std::io::Result<()> {
    use aya_obj::generated::{bpf_attr, bpf_cmd};
    const BPF_F_TEST_RUN_ON_CPU: u32 = 1;
    let fd = prog.fd().expect("a loaded program").as_fd().as_raw_fd();
    // SAFETY: bpf_attr is plain data; all zeroes is its valid start.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // Writing a union's Copy field is safe; only reading one is not.
    attr.test.prog_fd = fd as u32;
    attr.test.ctx_size_in = size_of_val(args) as u32;
    attr.test.ctx_in = args.as_ptr() as u64;
    attr.test.flags = BPF_F_TEST_RUN_ON_CPU;
    attr.test.cpu = CPU as u32;
    crate::tracer::rawprog::sys_bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr).map(|_| ())
}

/// Every CPU's value of a per-CPU map's entry `index`.
fn per_cpu<T: aya::Pod>(tp: &mut RawTp, map: &'static str, index: u32) -> Vec<T> {
    let m: PerCpuArray<&mut MapData, T> = tp.map(map).expect(map);
    m.get(&index, 0).expect(map).iter().copied().collect()
}

/// Sets a per-CPU map's entry `index` to `value` on every CPU.
fn set_per_cpu<T: aya::Pod>(tp: &mut RawTp, map: &'static str, index: u32, value: T) {
    let cpus = aya::util::nr_cpus().expect("the possible CPUs");
    let mut m: PerCpuArray<&mut MapData, T> = tp.map(map).expect(map);
    let values = PerCpuValues::try_from(vec![value; cpus]).expect("one value per CPU");
    m.set(index, values, 0).expect(map);
}

/// Runs the `skb_copy_datagram_iovec` hook (a raw tracepoint that
/// tail-calls the shared body) on a 4-byte copy of [`NOT_AN_SKB`].
fn run_hook(tp: &RawTp) {
    let hook = tp
        .ebpf
        .program("skb_copy_datagram_iovec")
        .expect("the hook's program");
    test_run(hook, &[NOT_AN_SKB, 4]).expect("BPF_PROG_TEST_RUN");
}

/// An event whose only mark is its `skb`.
fn event_with_skb(skb: u64) -> Event {
    // SAFETY: `Event` is plain data; all zeroes is a valid value.
    let mut ev: Event = unsafe { std::mem::zeroed() };
    ev.skb = skb;
    ev
}

#[test]
fn a_program_interrupted_on_its_cpu_keeps_its_half_built_event() {
    let btf = Btf::kernel().expect("the kernel's BTF");
    let mut tp = RawTp::load(&btf, true, false).expect("the tracer loads");
    // The fake skb is placed in no namespace (0): watch that, for a run no
    // scenario has, so the program gets as far as building its event.
    tp.watch(0, Watch { run: 77, bank: 0 }).unwrap();
    tp.set_filters(0, &[]).unwrap();
    // Nothing running: the event is built in level 0's slot.
    set_per_cpu(&mut tp, "NEST", 0, 0u32);
    set_per_cpu(&mut tp, "SCRATCH", 0, event_with_skb(HALF_BUILT));
    run_hook(&tp);
    assert_eq!(per_cpu::<Event>(&mut tp, "SCRATCH", 0)[CPU].skb, NOT_AN_SKB);
    assert_eq!(
        per_cpu::<u32>(&mut tp, "NEST", 0)[CPU],
        0,
        "level given back"
    );

    // A program of ours is running on the CPU (level 0 taken) when the
    // hook fires: the hook builds in level 1's slot, and level 0's event
    // is as its program left it.
    set_per_cpu(&mut tp, "NEST", 0, 1u32);
    set_per_cpu(&mut tp, "SCRATCH", 0, event_with_skb(HALF_BUILT));
    set_per_cpu(&mut tp, "SCRATCH", 1, event_with_skb(0));
    run_hook(&tp);
    assert_eq!(
        per_cpu::<Event>(&mut tp, "SCRATCH", 0)[CPU].skb,
        HALF_BUILT,
        "the interrupted program's event was overwritten"
    );
    assert_eq!(per_cpu::<Event>(&mut tp, "SCRATCH", 1)[CPU].skb, NOT_AN_SKB);
    assert_eq!(
        per_cpu::<u32>(&mut tp, "NEST", 0)[CPU],
        1,
        "the hook gave its level back, through its tail call"
    );
}
