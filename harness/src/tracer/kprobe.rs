//! The function-level backend: kprobes on the kernel functions that take
//! an `sk_buff` (found from BTF, as pwru does), beside the tracepoints;
//! through kprobe-multi links ([`super::kprobe_multi`]) where the kernel
//! has them.

use aya::Ebpf;

use super::TracerError;
use super::btf::Btf;
use crate::abi::{KPROBE_MULTI_PROGRAMS, KPROBE_PROGRAMS};
use crate::common::verifier::describe;

/// Functions ftrace can probe, when tracefs says (a kprobe elsewhere may
/// still work, but these are the ones pwru-style tracing relies on).
fn probeable() -> Option<std::collections::HashSet<String>> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}/available_filter_functions")).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect()
        })
}

/// The functions plain kprobes probe by default: the receive, forward,
/// local-delivery and transmit path of IPv4/IPv6, netfilter, the bridge,
/// neighbours and the virtual devices scenarios use. Plain kprobes attach
/// one at a time (a perf event each, ~5 ms natively, ~200 ms under
/// emulation), so the 2,400 functions a 6.18 kernel passes an skb to would
/// take minutes (kprobe-multi takes them all by default);
/// `PKTFATE_FUNCTIONS` (a regex, `.` for all) widens or narrows it.
pub const DEFAULT_FUNCTIONS: &str = "^(netif_receive_skb|__netif_receive_skb_core|ip_rcv|ip_rcv_core|ip_rcv_finish|ip_route_input_slow|ip_local_deliver|ip_local_deliver_finish|ip_protocol_deliver_rcu|ip_forward|ip_forward_finish|ip_output|ip_finish_output|__ip_finish_output|ip_finish_output2|ip_local_out|__ip_local_out|ip_error|ipv6_rcv|ip6_rcv_finish|ip6_input|ip6_forward|ip6_output|ip6_finish_output|nf_hook_slow|fib_validate_source|br_forward|br_pass_frame_up|__neigh_event_send|neigh_resolve_output|arp_rcv|__dev_queue_xmit|dev_hard_start_xmit|tcf_classify|tcp_v4_rcv|tcp_v6_rcv|udp_rcv|udpv6_rcv|icmp_rcv|icmpv6_rcv|veth_xmit|tun_net_xmit|vxlan_rcv|vxlan_xmit)$";

/// Raises the open-file limit to its hard maximum: every plain kprobe
/// holds a perf event descriptor.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit out-parameter; setrlimit only lowers or raises
    // the soft limit up to the hard one, which is always allowed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim);
        }
    }
}

/// The function-level probes in place.
pub(super) struct Functions {
    /// Functions probed.
    pub count: usize,
    /// How: `kprobe-multi` (one link per argument position) or `kprobe`
    /// (a perf event per function).
    pub mechanism: &'static str,
    /// Why kprobe-multi was not used, on a kernel with kprobes.
    pub fallback: Option<String>,
    /// How long loading and attaching the probes took.
    pub attach: std::time::Duration,
    /// kprobe-multi's links; plain kprobes are held by aya's programs.
    _links: Option<super::kprobe_multi::Links>,
}

/// Attaches the function-level backend to the kernel functions that take
/// an `sk_buff` in one of their first five arguments (from BTF) and match
/// `PKTFATE_FUNCTIONS`: through kprobe-multi where the kernel links it
/// (every such function by default, as pwru does), else through plain
/// kprobes ([`DEFAULT_FUNCTIONS`] by default: they attach one at a time).
/// A function the kernel will not probe (inlined, notrace, blacklisted)
/// is left out.
pub(super) fn attach_functions(
    ebpf: &mut Ebpf,
    object: &[u8],
    events_fd: std::os::fd::RawFd,
    btf: &Btf,
) -> Result<Functions, TracerError> {
    let chosen = std::env::var("PKTFATE_FUNCTIONS").ok();
    let pattern = |default: &str| {
        let p = chosen.as_deref().unwrap_or(default);
        regex::Regex::new(p).map_err(|e| {
            TracerError::Limit(format!(
                "PKTFATE_FUNCTIONS is not a regular expression: {e}"
            ))
        })
    };
    let probeable = probeable();
    let candidates: Vec<(String, usize)> = btf
        .functions_taking("sk_buff", KPROBE_PROGRAMS.len())
        .into_iter()
        .filter(|(name, _)| probeable.as_ref().is_none_or(|p| p.contains(name)))
        .collect();
    let start = std::time::Instant::now();
    let multi = pattern(".")?;
    let by_arg = split_by_arg(&candidates, &multi);
    let fallback = match super::kprobe_multi::instructions(
        object,
        ebpf,
        Some(events_fd),
        &KPROBE_MULTI_PROGRAMS,
    )
    .map_err(|e| e.to_string())
    .and_then(|progs| super::kprobe_multi::attach(&progs, &by_arg))
    {
        Ok(links) => {
            return Ok(Functions {
                count: by_arg.iter().map(Vec::len).sum(),
                mechanism: "kprobe-multi",
                fallback: None,
                attach: start.elapsed(),
                _links: Some(links),
            });
        }
        Err(why) => why,
    };
    let single = pattern(DEFAULT_FUNCTIONS)?;
    let by_arg = split_by_arg(&candidates, &single);
    let count = attach_single(ebpf, &by_arg)?;
    if count == 0 {
        return Err(TracerError::Attach {
            hook: "kprobe".into(),
            msg: format!(
                "none of {} functions taking an sk_buff could be probed",
                by_arg.iter().map(Vec::len).sum::<usize>()
            ),
        });
    }
    Ok(Functions {
        count,
        mechanism: "kprobe",
        fallback: Some(fallback),
        attach: start.elapsed(),
        _links: None,
    })
}

/// The functions matching `wanted`, grouped by the argument holding the skb.
fn split_by_arg(candidates: &[(String, usize)], wanted: &regex::Regex) -> Vec<Vec<String>> {
    let mut by_arg = vec![Vec::new(); KPROBE_PROGRAMS.len()];
    for (name, arg) in candidates {
        if wanted.is_match(name) {
            by_arg[*arg].push(name.clone());
        }
    }
    by_arg
}

/// Plain kprobes, one perf event per function; returns how many attached.
fn attach_single(ebpf: &mut Ebpf, by_arg: &[Vec<String>]) -> Result<usize, TracerError> {
    use aya::programs::KProbe;
    raise_fd_limit();
    let mut attached = 0;
    for (program, functions) in KPROBE_PROGRAMS.iter().zip(by_arg) {
        if functions.is_empty() {
            continue;
        }
        let prog: &mut KProbe = ebpf
            .program_mut(program)
            .ok_or_else(|| TracerError::Load(format!("program {program} missing")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| TracerError::Load(e.to_string()))?;
        prog.load().map_err(|e| TracerError::Attach {
            hook: format!("kprobe ({program})"),
            msg: describe(&e),
        })?;
        for name in functions {
            if prog.attach(name, 0).is_ok() {
                attached += 1;
            }
        }
    }
    Ok(attached)
}
