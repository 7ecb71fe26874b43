//! Reading kernel structures at offsets from the config: where an skb,
//! a device or a socket is (its namespace, its device), and which run
//! watches that namespace.

use super::*;

/// The load-time config, read where each field is used.
#[inline(always)]
pub(crate) fn config() -> &'static TracerConfig {
    // The value is patched into .rodata at load time, so the compiler must
    // not constant-fold the zero initialiser: the pointer comes back from a
    // volatile read, so nothing is known of what it points to. A volatile
    // read of the config itself would copy it, each field spilled to its
    // own 8-byte stack slot: about 200 of a program's 512 bytes.
    let at: *const TracerConfig = &raw const CONFIG;
    // SAFETY: reads back a local; the pointer is CONFIG's, a static that
    // lives as long as the program.
    unsafe { &*core::ptr::read_volatile(&at) }
}

/// The config's flags.
#[inline(always)]
pub(crate) fn config_flags() -> u32 {
    config().flags
}

#[inline(always)]
pub(crate) fn read<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: the helper reads kernel memory and fails cleanly on a bad address.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).ok() }
}

/// [`read`] at an offset the kernel's BTF may lack ([`NO_OFFSET`]).
#[inline(always)]
pub(crate) fn read_opt<T>(base: u64, off: u32) -> Option<T> {
    if off == NO_OFFSET {
        return None;
    }
    read(base, off)
}

/// Namespace inode of a device, 0 when unknown.
#[inline(always)]
pub(crate) fn dev_netns(cfg: &TracerConfig, dev: u64) -> u32 {
    let net: u64 = read(dev, cfg.offsets.dev_nd_net).unwrap_or(0);
    read(net, cfg.offsets.net_ns_inum).unwrap_or(0)
}

/// Namespace inode of a socket, 0 when unknown.
#[inline(always)]
pub(crate) fn sock_netns(cfg: &TracerConfig, sk: u64) -> u32 {
    let net: u64 = read(sk, cfg.offsets.sock_net).unwrap_or(0);
    read(net, cfg.offsets.net_ns_inum).unwrap_or(0)
}

/// Where an skb is: (netns, ifindex). From its device; else its socket's
/// namespace, with the device it was last seen on or arrived on
/// (`skb_iif`, kept by clones); else, for a tracked skb, where it was last
/// seen. Sockets clear `skb->dev` when they take an skb (UDP reuses it as
/// `dev_scratch`), and those events still belong where the packet arrived.
#[inline(always)]
pub(crate) fn skb_place(
    cfg: &TracerConfig,
    skb: u64,
    dev: u64,
    known: Option<&Tracked>,
) -> (u32, u32) {
    let ns = dev_netns(cfg, dev);
    if ns != 0 {
        return (ns, read(dev, cfg.offsets.dev_ifindex).unwrap_or(0));
    }
    let ns = sock_netns(cfg, read(skb, cfg.offsets.skb_sk).unwrap_or(0));
    match known {
        Some(k) if (ns == 0 || ns == k.netns) && k.ifindex != 0 => (k.netns, k.ifindex),
        Some(k) if ns == 0 => (k.netns, read(skb, cfg.offsets.skb_iif).unwrap_or(0)),
        _ => (ns, read(skb, cfg.offsets.skb_iif).unwrap_or(0)),
    }
}

/// Which run watches `netns`, if any. A tracer filtering by no namespace
/// (`pktfate trace` without `--netns`) has one run, 0, on bank 0.
#[inline(always)]
pub(crate) fn watch_of(cfg: &TracerConfig, netns: u32) -> Option<Watch> {
    if cfg.flags & CONFIG_FILTER_NETNS == 0 {
        return Some(Watch { run: 0, bank: 0 });
    }
    // SAFETY: a hash map lookup: the value is copied at once; a concurrent update can only make it
    // newer.
    unsafe { NETNS.get(netns) }.copied()
}

/// This CPU is handling an skb that is not ours: skb-less hooks that
/// follow must not be attributed to the last tracked one.
#[inline(always)]
pub(crate) fn forget_current() {
    if let Some(c) = CURRENT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array: the CPU's latest skb,
        // whichever nesting level saw it.
        unsafe { *c = [0, 0, 0] };
    }
}
