//! What a scenario's own tc and XDP programs returned: an fexit program
//! attached to each of them (a BPF trampoline on a BPF program, 5.5+),
//! loaded once per scenario program with that program's slot written
//! over [`PROG_SLOT_MAGIC`].

use super::*;

/// A classifier returned: its context is the kernel's `struct sk_buff`,
/// so the return joins that skb's events like any hook's.
#[fexit(function = "ip_rcv")]
pub fn prog_return_tc(ctx: FExitContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    let aux = [ret as i32, PROG_KIND_TC, PROG_SLOT_MAGIC];
    let Some(_level) = Level::enter() else {
        return 0;
    };
    on_skb_in::<FExitContext, true>(&ctx, hook::PROG_RETURN, skb, 0, 0, 0, aux);
    0
}

/// An XDP program returned: its context is the kernel's `struct
/// xdp_buff`. In generic mode it ran on the skb this CPU is receiving,
/// whose events it joins; a native driver (a tap's, a veth's) ran it on a
/// bare frame, reported with no skb and matched by its headers. Each case
/// is a function of its own: inlined together they took 672 bytes of
/// stack, over the 512 that 5.10 and 6.1 allow a call chain.
#[fexit(function = "ip_rcv")]
pub fn prog_return_xdp(ctx: FExitContext) -> i32 {
    let xdp: u64 = ctx.arg(0);
    let ret: u64 = ctx.arg(1);
    let cfg = config();
    let rxq: u64 = read_opt(xdp, cfg.offsets.xdp_buff_rxq).unwrap_or(0);
    let dev: u64 = read_opt(rxq, cfg.offsets.xdp_rxq_dev).unwrap_or(0);
    if dev == 0 {
        return 0;
    }
    let netns = dev_netns(cfg, dev);
    let ifindex: u32 = read(dev, cfg.offsets.dev_ifindex).unwrap_or(0);
    // Generic XDP builds its buffer on the skb being received: its hard
    // start is that skb's head. The CPU's last tracked skb on the same
    // device is not enough: a delivered UDP skb is freed without a
    // tracepoint and stays "current" for the next native frame.
    let hard: u64 = read_opt(xdp, cfg.offsets.xdp_buff_hard_start).unwrap_or(0);
    match current_tracked() {
        Some((skb, known, _))
            if known.netns == netns
                && known.ifindex == ifindex
                && hard != 0
                && read::<u64>(skb, cfg.offsets.skb_head) == Some(hard) =>
        {
            xdp_on_skb(ctx.as_ptr(), skb, ret as i32)
        }
        _ => xdp_on_frame(ctx.as_ptr(), xdp, ret as i32, netns, ifindex),
    };
    0
}

/// Generic XDP: the return joins the skb's events.
#[inline(never)]
fn xdp_on_skb(ctx: *mut core::ffi::c_void, skb: u64, ret: i32) -> u32 {
    let aux = [ret, PROG_KIND_XDP, PROG_SLOT_MAGIC];
    let Some(_level) = Level::enter() else {
        return 0;
    };
    on_skb_in::<ProbeCtx, true>(&ProbeCtx(ctx), hook::PROG_RETURN, skb, 0, 0, 0, aux)
}

/// Native XDP: a frame with no skb, in namespace `netns` on `ifindex`.
#[inline(never)]
fn xdp_on_frame(ctx: *mut core::ffi::c_void, xdp: u64, ret: i32, netns: u32, ifindex: u32) -> u32 {
    let cfg = config();
    let Some(watch) = watch_of(cfg, netns) else {
        return 0;
    };
    let Some(_level) = Level::enter() else {
        return 0;
    };
    let Some(ev) = scratch() else {
        return 0;
    };
    pktfate_parse_frame(read_opt(xdp, cfg.offsets.xdp_buff_data).unwrap_or(0));
    if pktfate_wanted(watch.bank) == 0 {
        return 0;
    }
    ev.hook = hook::PROG_RETURN;
    ev.run = watch.run;
    ev.skb = 0;
    ev.location = 0;
    ev.netns = netns;
    ev.ifindex = ifindex;
    // No skb: no mark, length or priority; a VLAN tag the parser found in
    // the frame stays.
    ev.mark = 0;
    ev.len = 0;
    ev.priority = 0;
    ev.reason = 0;
    ev.aux = [ret, PROG_KIND_XDP, PROG_SLOT_MAGIC];
    finish_and_send(&ProbeCtx(ctx), ev);
    0
}
