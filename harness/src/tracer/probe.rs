//! What every function-probe mechanism is: a [`FunctionProbe`] that runs
//! the tracer's shared function probe on [`Target`]s, by a
//! [`ProbeMechanism`]. [`super::functions`] picks the targets and the
//! mechanism; each mechanism is a file beside this one.

use aya::Ebpf;

use super::btf::Btf;

/// By which kernel mechanism functions were probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeMechanism {
    /// One kprobe-multi (fprobe) link over every function (5.18+).
    KprobeMulti,
    /// A perf kprobe per function.
    Kprobe,
    /// One fentry program per function (BPF trampolines; 5.15+ with
    /// `bpf_get_func_ip`).
    Fentry,
}

impl ProbeMechanism {
    /// As reports and `doctor` write it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeMechanism::KprobeMulti => "kprobe-multi",
            ProbeMechanism::Kprobe => "kprobe",
            ProbeMechanism::Fentry => "fentry",
        }
    }
}

/// The functions plain kprobes and fentry probe by default: the receive,
/// forward, local-delivery and transmit path of IPv4/IPv6, netfilter, the
/// bridge, neighbours and the virtual devices scenarios use. They attach
/// one at a time (a perf event or a verified program each, ~5 ms natively,
/// ~200 ms under emulation), so the 2,400 functions a 6.18 kernel passes
/// an skb to would take minutes (kprobe-multi takes them all by default);
/// `PKTFATE_FUNCTIONS` (a regex, `.` for all) widens or narrows it.
pub const DEFAULT_FUNCTIONS: &str = "^(netif_receive_skb|__netif_receive_skb_core|ip_rcv|ip_rcv_core|ip_rcv_finish|ip_route_input_slow|ip_local_deliver|ip_local_deliver_finish|ip_protocol_deliver_rcu|ip_forward|ip_forward_finish|ip_output|ip_finish_output|__ip_finish_output|ip_finish_output2|ip_local_out|__ip_local_out|ip_error|ipv6_rcv|ip6_rcv_finish|ip6_input|ip6_forward|ip6_output|ip6_finish_output|nf_hook_slow|fib_validate_source|br_handle_frame_finish|br_forward|br_pass_frame_up|__neigh_event_send|neigh_resolve_output|arp_rcv|__dev_queue_xmit|dev_hard_start_xmit|tcf_classify|tcp_v4_rcv|tcp_v6_rcv|udp_rcv|udpv6_rcv|icmp_rcv|icmpv6_rcv|veth_xmit|tun_net_xmit|vxlan_rcv|vxlan_xmit)$";

/// A kernel function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// Its symbol name.
    pub name: String,
    /// The position of its skb argument (0-4).
    pub arg: usize,
    /// Its module, when not the kernel's.
    pub module: Option<String>,
}

/// What a mechanism attached.
#[derive(Debug)]
pub(super) struct Attached<E> {
    /// How many functions.
    pub count: usize,
    /// Targets left out, and why (when the rest could still be probed).
    pub left_out: Option<E>,
}

/// A way to run the shared function probe on kernel functions.
pub(super) trait FunctionProbe: Send {
    /// Why it could not probe: the mechanism's own error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Which mechanism this is.
    fn mechanism(&self) -> ProbeMechanism;

    /// The functions it probes when the run does not choose: every
    /// candidate costs a mechanism that attaches one at a time too much.
    fn default_functions(&self) -> &'static str {
        DEFAULT_FUNCTIONS
    }

    /// Probes `targets`; an error only when none could be.
    fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        btf: &Btf,
        targets: &[Target],
    ) -> Result<Attached<Self::Error>, Self::Error>;
}
