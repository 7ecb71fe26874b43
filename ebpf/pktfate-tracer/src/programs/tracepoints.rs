//! The skb tracepoints: one small raw tracepoint program per hook that
//! hands its arguments to the shared `skb_common` by tail call.

use super::*;

/// What a hook program hands to [`skb_common`]: the tracepoint's
/// arguments, in the order [`on_skb`] takes them.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct HookArgs {
    skb: u64,
    dev: u64,
    location: u64,
    hook: u32,
    reason: u32,
    aux: [i32; 3],
    _pad: u32,
}

/// Per CPU and nesting [`Level`]: the arguments of the hook program that
/// is tail-calling [`skb_common`].
#[map]
pub(crate) static ARGS: PerCpuArray<HookArgs> = PerCpuArray::with_max_entries(NEST_LEVELS, 0);

/// Slot 0 holds [`skb_common`], slot 1 [`fib_local`]; the loader fills
/// them before it attaches any hook program.
#[map]
pub(crate) static SKB_PROGS: ProgramArray = ProgramArray::with_max_entries(2, 0);

/// The body every skb tracepoint shares, as a program of its own that the
/// hook programs tail-call: the verifier walks it once, not once per hook.
/// (A `tp_btf` program could not be shared: each is verified against its
/// own tracepoint's prototype. Raw tracepoints all share one context type,
/// so one program serves them all.)
#[raw_tracepoint]
pub fn skb_common(ctx: RawTracePointContext) -> i32 {
    let _level = Level::adopt();
    let Some(a) = ARGS.get(current_level()).copied() else {
        return 0;
    };
    on_skb(&ctx, a.hook, a.skb, a.dev, a.reason, a.location, a.aux);
    0
}

/// Records a hook's arguments and jumps to [`skb_common`].
#[inline(always)]
pub(crate) fn hand_over(
    ctx: &RawTracePointContext,
    hook_id: u32,
    skb: u64,
    dev: u64,
    reason: u32,
    location: u64,
    aux: [i32; 3],
) -> i32 {
    if skb == 0 {
        return 0;
    }
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some(a) = ARGS.get_ptr_mut(current_level()) else {
        return 0;
    };
    // SAFETY: this CPU's slot of a per-CPU array; the tail call gets the program's own context.
    unsafe {
        *a = HookArgs {
            skb,
            dev,
            location,
            hook: hook_id,
            reason,
            aux,
            _pad: 0,
        };
        SKB_PROGS.tail_call(ctx, 0);
    }
    // Only reached if the slot is empty, which the loader rules out while
    // the hooks are attached: counted as lost, so a run says so instead of
    // seeing nothing.
    count_lost();
    0
}

#[inline(always)]
pub(crate) fn arg_u64(ctx: &RawTracePointContext, n: usize) -> u64 {
    ctx.arg::<u64>(n)
}

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RECEIVE_SKB, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "netif_rx")]
pub fn netif_rx(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RX, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn net_dev_queue(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NET_DEV_QUEUE, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_start_xmit")]
pub fn net_dev_start_xmit(ctx: RawTracePointContext) -> i32 {
    let (skb, dev) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(&ctx, hook::NET_DEV_START_XMIT, skb, dev, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "net_dev_xmit")]
pub fn net_dev_xmit(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let rc = ctx.arg::<i64>(1) as i32;
    let dev = arg_u64(&ctx, 2);
    hand_over(&ctx, hook::NET_DEV_XMIT, skb, dev, 0, 0, [rc, 0, 0])
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    let reason = ctx.arg::<u64>(2) as u32;
    hand_over(&ctx, hook::KFREE_SKB, skb, 0, reason, location, [0; 3])
}

/// `kfree_skb(skb, location)`: kernels before 5.17 give no drop reason.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn kfree_skb_noreason(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(
        &ctx,
        hook::KFREE_SKB,
        skb,
        0,
        REASON_UNKNOWN,
        location,
        [0; 3],
    )
}

#[raw_tracepoint(tracepoint = "consume_skb")]
pub fn consume_skb(ctx: RawTracePointContext) -> i32 {
    let (skb, location) = (arg_u64(&ctx, 0), arg_u64(&ctx, 1));
    hand_over(&ctx, hook::CONSUME_SKB, skb, 0, 0, location, [0; 3])
}

/// `consume_skb(skb)`: kernels before 6.3 give no location.
#[raw_tracepoint(tracepoint = "consume_skb")]
pub fn consume_skb_noloc(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::CONSUME_SKB, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let len = ctx.arg::<i64>(1) as i32;
    hand_over(
        &ctx,
        hook::SKB_COPY_DATAGRAM_IOVEC,
        skb,
        0,
        0,
        0,
        [len, 0, 0],
    )
}

#[raw_tracepoint(tracepoint = "icmp_send")]
pub fn icmp_send(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    let ty = ctx.arg::<i64>(1) as i32;
    let code = ctx.arg::<i64>(2) as i32;
    hand_over(&ctx, hook::ICMP_SEND, skb, 0, 0, 0, [ty, code, 0])
}

#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 1);
    let reason = ctx.arg::<u64>(2) as u32;
    hand_over(&ctx, hook::TCP_SEND_RESET, skb, 0, reason, 0, [0; 3])
}

/// `tcp_send_reset(sk, skb)`: kernels before 6.10 give no reset reason.
#[raw_tracepoint(tracepoint = "tcp_send_reset")]
pub fn tcp_send_reset_noreason(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 1);
    hand_over(
        &ctx,
        hook::TCP_SEND_RESET,
        skb,
        0,
        REASON_UNKNOWN,
        0,
        [0; 3],
    )
}

#[raw_tracepoint(tracepoint = "netif_receive_skb_entry")]
pub fn netif_receive_skb_entry(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NETIF_RECEIVE_SKB_ENTRY, skb, 0, 0, 0, [0; 3])
}

#[raw_tracepoint(tracepoint = "napi_gro_receive_entry")]
pub fn napi_gro_receive_entry(ctx: RawTracePointContext) -> i32 {
    let skb = arg_u64(&ctx, 0);
    hand_over(&ctx, hook::NAPI_GRO_RECEIVE_ENTRY, skb, 0, 0, 0, [0; 3])
}
