//! Programs attached on demand: the tc observer classifier, the
//! function-level probes (kprobe, kprobe-multi, fentry) and the probes
//! `pktfate doctor` loads to learn what the kernel allows.

use super::*;

/// A classifier the harness attaches ahead of a scenario's own tc
/// programs (lower priority number, so it runs first). It runs inside
/// `tcf_classify`, records the skb as it is before the scenario's programs
/// see it, and lets classification go on (`TC_ACT_UNSPEC`).
#[classifier]
pub fn tc_observer(ctx: TcContext) -> i32 {
    // The context of a tc program is the kernel's `struct sk_buff`.
    let skb = ctx.as_ptr() as u64;
    let Some(_level) = Level::enter() else {
        return TC_ACT_UNSPEC;
    };
    on_skb_in::<TcContext, false>(&ctx, hook::TCF_CLASSIFY, skb, 0, 0, 0, [0; 3]);
    TC_ACT_UNSPEC
}

/// Where a function probe reads the probed function's address.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Location {
    /// A plain kprobe: the saved instruction pointer, just past the probed
    /// address (an int3 or ftrace kprobe).
    Registers = 0,
    /// kprobe-multi and fentry: `bpf_get_func_ip` (their registers are not
    /// those of the probed call).
    FuncIp = 1,
}

/// The context of a function probe, whichever its program type: the body
/// below uses it only to hand it back to helpers.
pub(crate) struct ProbeCtx(pub(crate) *mut core::ffi::c_void);

impl EbpfContext for ProbeCtx {
    fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.0
    }
}

/// A kernel function took a tracked skb (the function-level backend).
/// Only skbs the tracepoints already track are reported, and tracking is
/// neither started nor refreshed here: functions that run after the free
/// (`skb_release_data`, `kfree_skbmem`) must not revive a dead skb.
/// The function's address is read (as `location` says) only for tracked
/// skbs.
///
/// One body for the eleven function-probe programs, called, not inlined:
/// inlined, each program carried its ~860 instructions. The verifier
/// still walks it with each caller's constants, so a kprobe's branch is
/// never checked in a fentry program and the reverse.
#[inline(never)]
fn on_function(ctx: *mut core::ffi::c_void, skb: u64, location: Location) -> u32 {
    if skb == 0 {
        return 0;
    }
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    let Some(known) = (unsafe { TRACKED.get(skb) }).copied() else {
        return 0;
    };
    let cfg = config();
    let dev: u64 = read(skb, cfg.offsets.skb_dev).unwrap_or(0);
    let (netns, ifindex) = skb_place(cfg, skb, dev, Some(&known));
    match watch_of(cfg, netns) {
        Some(w) if w.run == known.run => {}
        _ => return 0,
    }
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some(ev) = scratch() else {
        return 0;
    };
    // Inline, not the global parser: with it, 5.10 and 6.1 count three
    // frames here and refuse the program (combined stack over 512 bytes).
    parse_packet(cfg, skb, ev);
    ev.hook = hook::FUNCTION;
    ev.run = known.run;
    ev.skb = skb;
    ev.location = match location {
        // SAFETY: with `Registers`, `ctx` is a kprobe's: the saved registers.
        Location::Registers => {
            unsafe { (*(ctx as *const aya_ebpf::bindings::pt_regs)).rip }.saturating_sub(1)
        }
        // SAFETY: the helper is given the program's own context.
        Location::FuncIp => unsafe { bpf_get_func_ip(ctx) },
    };
    ev.netns = netns;
    ev.ifindex = ifindex;
    skb_meta(cfg, skb, ev);
    ev.reason = 0;
    ev.aux = [0; 3];
    finish_and_send(&ProbeCtx(ctx), ev);
    0
}

/// One kprobe program per argument position the skb may take (x86-64
/// passes five in registers).
macro_rules! skb_arg_probes {
    ($($name:ident = $arg:literal),*) => {$(
        #[kprobe]
        pub fn $name(ctx: ProbeContext) -> u32 {
            on_function(ctx.as_ptr(), ctx.arg::<u64>($arg).unwrap_or(0), Location::Registers)
        }
    )*};
}

skb_arg_probes!(
    kprobe_skb_arg0 = 0,
    kprobe_skb_arg1 = 1,
    kprobe_skb_arg2 = 2,
    kprobe_skb_arg3 = 3,
    kprobe_skb_arg4 = 4
);

/// The same for one kprobe-multi link over every function: the link gives
/// each function a cookie, the position of its skb argument. One program
/// and one link instead of five: each link costs the kernel a walk over
/// kallsyms. aya 0.14 cannot give a program the kprobe-multi attach
/// type, so the harness loads this one itself.
#[kprobe]
pub fn kmulti_skb(ctx: ProbeContext) -> u32 {
    // Every register read at its constant offset first, then one picked:
    // a register chosen by the cookie would be a variable offset into the
    // context, which the verifier refuses.
    let args: [u64; 5] = [
        ctx.arg(0).unwrap_or(0),
        ctx.arg(1).unwrap_or(0),
        ctx.arg(2).unwrap_or(0),
        ctx.arg(3).unwrap_or(0),
        ctx.arg(4).unwrap_or(0),
    ];
    // SAFETY: the helper is given this program's own context.
    let skb = match unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } {
        0 => args[0],
        1 => args[1],
        2 => args[2],
        3 => args[3],
        4 => args[4],
        _ => 0,
    };
    on_function(ctx.as_ptr(), skb, Location::FuncIp)
}

/// One fentry program per argument position (fentry passes the arguments
/// as an array; 5.15+ for `bpf_get_func_ip`). The harness loads one copy
/// per function, with that function as its attach target: the section's
/// `ip_rcv` is only a placeholder.
macro_rules! skb_arg_fentries {
    ($($name:ident = $arg:literal),*) => {$(
        #[fentry(function = "ip_rcv")]
        pub fn $name(ctx: FEntryContext) -> i32 {
            on_function(ctx.as_ptr(), ctx.arg::<u64>($arg), Location::FuncIp) as i32
        }
    )*};
}

skb_arg_fentries!(
    fentry_skb_arg0 = 0,
    fentry_skb_arg1 = 1,
    fentry_skb_arg2 = 2,
    fentry_skb_arg3 = 3,
    fentry_skb_arg4 = 4
);

/// Loaded by `pktfate doctor` only, to learn whether this kernel lets a
/// kprobe attach (the function-level backend needs it). Does nothing.
#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// Loaded by `pktfate doctor` and the fentry backend's check, to learn
/// whether this kernel accepts fentry programs (BPF trampolines) that call
/// `bpf_get_func_ip` (5.15+), as the backend's do. Does nothing with it.
#[fentry(function = "ip_rcv")]
pub fn probe_fentry(ctx: FEntryContext) -> i32 {
    let mut ip = 0u64;
    // Volatile, so the call is kept; fentry programs must return 0.
    // SAFETY: `ip` is a local; the helper is given this program's own context.
    unsafe { core::ptr::write_volatile(&mut ip, bpf_get_func_ip(ctx.as_ptr())) };
    0
}
