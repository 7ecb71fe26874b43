//! The programs (built for the BPF target only), by concern.

use aya_ebpf::{
    EbpfContext,
    bindings::TC_ACT_UNSPEC,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{
            bpf_get_attach_cookie, bpf_get_func_ip, bpf_get_smp_processor_id, bpf_get_stack,
            bpf_ktime_get_ns, bpf_probe_read_kernel as bpf_probe_read_kernel_raw,
        },
    },
    macros::{classifier, fentry, fexit, kprobe, map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{FEntryContext, FExitContext, ProbeContext, RawTracePointContext, TcContext},
};
use pktfate_common::{
    CONFIG_FILTER_NETNS, CONFIG_STACKS, Event, FILTER_DADDR, FILTER_ICMP_ERROR, FILTER_REVERSE,
    FILTER_SADDR, MAX_BANKS, MAX_FILTERS, MAX_NETNS, MAX_STACK_DEPTH, MAX_TRACKED, NO_OFFSET,
    PKT_CAPTURE, PROG_KIND_TC, PROG_KIND_XDP, PROG_SLOT_MAGIC, PacketFilter, REASON_UNKNOWN,
    RINGBUF_BYTES, SKB_SUMMED_KNOWN, SKB_VLAN_PRESENT, TracerConfig, Tracked, Watch, hook,
    is_icmp_error, is_tunnel,
};

mod maps;
mod kernel;
mod parse;
mod filter;
mod events;
mod tracepoints;
mod attributed;
mod probes;
mod verdicts;

use attributed::current_tracked;
use events::*;
use filter::*;
use kernel::*;
use maps::*;
use parse::*;
use probes::ProbeCtx;
use tracepoints::*;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
