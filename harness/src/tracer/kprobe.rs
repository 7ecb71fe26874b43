//! The function-level backend: kprobes on the kernel functions that take
//! an `sk_buff` (found from BTF, as pwru does), beside the tracepoints.

use aya::Ebpf;

use super::TracerError;
use super::btf::Btf;
use crate::abi::KPROBE_PROGRAMS;
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

/// The functions probed by default: the receive, forward, local-delivery
/// and transmit path of IPv4/IPv6, netfilter, the bridge, neighbours and
/// the virtual devices scenarios use. Plain kprobes attach one at a time
/// (a perf event each, ~5 ms natively, ~200 ms under emulation), so the
/// 2,400 functions a 6.18 kernel passes an skb to would take minutes;
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

/// Attaches the kprobe programs to the kernel functions that take an
/// `sk_buff` in one of their first five arguments (from BTF) and match
/// `PKTFATE_FUNCTIONS` (default [`DEFAULT_FUNCTIONS`]); returns how many
/// attached. A function the kernel will not probe (inlined, notrace,
/// blacklisted, in a module not loaded) is left out.
pub(super) fn attach_functions(ebpf: &mut Ebpf, btf: &Btf) -> Result<usize, TracerError> {
    use aya::programs::KProbe;
    let pattern = std::env::var("PKTFATE_FUNCTIONS").unwrap_or_else(|_| DEFAULT_FUNCTIONS.into());
    let wanted = regex::Regex::new(&pattern).map_err(|e| {
        TracerError::Limit(format!(
            "PKTFATE_FUNCTIONS is not a regular expression: {e}"
        ))
    })?;
    let functions: Vec<(String, usize)> = btf
        .functions_taking("sk_buff", KPROBE_PROGRAMS.len())
        .into_iter()
        .filter(|(name, _)| wanted.is_match(name))
        .collect();
    raise_fd_limit();
    let probeable = probeable();
    let mut attached = 0;
    for (arg, program) in KPROBE_PROGRAMS.iter().enumerate() {
        let prog: &mut KProbe = ebpf
            .program_mut(program)
            .ok_or_else(|| TracerError::Load(format!("program {program} missing")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| TracerError::Load(e.to_string()))?;
        prog.load().map_err(|e| TracerError::Attach {
            hook: format!("kprobe ({program})"),
            msg: describe(&e),
        })?;
        for (name, _) in functions.iter().filter(|(_, a)| *a == arg) {
            if probeable.as_ref().is_some_and(|p| !p.contains(name)) {
                continue;
            }
            if prog.attach(name, 0).is_ok() {
                attached += 1;
            }
        }
    }
    if attached == 0 {
        return Err(TracerError::Attach {
            hook: "kprobe".into(),
            msg: format!(
                "none of {} functions taking an sk_buff could be probed",
                functions.len()
            ),
        });
    }
    Ok(attached)
}
