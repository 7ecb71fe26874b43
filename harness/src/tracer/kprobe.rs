//! The function-level backend: kprobes on the kernel functions that take
//! an `sk_buff` (found from BTF, as pwru does), beside the tracepoints;
//! through kprobe-multi links ([`super::kprobe_multi`]) where the kernel
//! has them.

use aya::Ebpf;

use super::btf::Btf;
use super::{HookError, ProbeMechanism, TracerError};
use crate::abi::{KPROBE_MULTI_PROGRAM, KPROBE_PROGRAMS};

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
pub const DEFAULT_FUNCTIONS: &str = "^(netif_receive_skb|__netif_receive_skb_core|ip_rcv|ip_rcv_core|ip_rcv_finish|ip_route_input_slow|ip_local_deliver|ip_local_deliver_finish|ip_protocol_deliver_rcu|ip_forward|ip_forward_finish|ip_output|ip_finish_output|__ip_finish_output|ip_finish_output2|ip_local_out|__ip_local_out|ip_error|ipv6_rcv|ip6_rcv_finish|ip6_input|ip6_forward|ip6_output|ip6_finish_output|nf_hook_slow|fib_validate_source|br_handle_frame_finish|br_forward|br_pass_frame_up|__neigh_event_send|neigh_resolve_output|arp_rcv|__dev_queue_xmit|dev_hard_start_xmit|tcf_classify|tcp_v4_rcv|tcp_v6_rcv|udp_rcv|udpv6_rcv|icmp_rcv|icmpv6_rcv|veth_xmit|tun_net_xmit|vxlan_rcv|vxlan_xmit)$";

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
    /// How.
    pub mechanism: ProbeMechanism,
    /// Why kprobe-multi was not used, on a kernel with kprobes.
    pub fallback: Option<String>,
    /// Why some modules' functions are not probed.
    pub module_problems: Vec<String>,
    /// How long loading and attaching the probes took.
    pub attach: std::time::Duration,
    /// Modules whose functions were looked for: one loaded later (by a
    /// later scenario's topology) is probed on the next run.
    modules: std::collections::HashSet<String>,
    /// kprobe-multi's programs and links; plain kprobes are held by aya's
    /// programs.
    links: Option<super::kprobe_multi::Links>,
    /// The fentry programs, when they are the mechanism.
    fentries: Option<super::fentry::Fentries>,
    /// The run's `PKTFATE_FUNCTIONS`, which modules loaded later match too.
    chosen: Option<String>,
}

/// `chosen` (`PKTFATE_FUNCTIONS`), or `default`.
fn pattern(chosen: Option<&str>, default: &str) -> Result<regex::Regex, TracerError> {
    regex::Regex::new(chosen.unwrap_or(default)).map_err(|e| {
        TracerError::Limit(format!(
            "PKTFATE_FUNCTIONS is not a regular expression: {e}"
        ))
    })
}

/// Loaded modules with BTF (`/sys/kernel/btf/<module>`), sorted.
fn modules_with_btf() -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir("/sys/kernel/btf")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "vmlinux")
        .collect();
    m.sort();
    m
}

/// The functions of `module` taking an skb ([] when its BTF is unreadable).
fn module_candidates(btf: &Btf, module: &str) -> Vec<(String, usize)> {
    std::fs::read(format!("/sys/kernel/btf/{module}"))
        .ok()
        .and_then(|d| {
            btf.module_functions_taking(&d, "sk_buff", KPROBE_PROGRAMS.len())
                .ok()
        })
        .unwrap_or_default()
}

/// Attaches the function-level backend to the kernel functions that take
/// an `sk_buff` in one of their first five arguments (from BTF: the
/// kernel's and each loaded module's) and match `PKTFATE_FUNCTIONS`:
/// through kprobe-multi where the kernel links it (every such function by
/// default, as pwru does), else through plain kprobes ([`DEFAULT_FUNCTIONS`]
/// by default: they attach one at a time); with `fentry`, through one fentry
/// program per function of that default set instead. A function the
/// kernel will not probe (inlined, notrace, blacklisted) is left out.
pub(super) fn attach_functions(
    ebpf: &mut Ebpf,
    object: &[u8],
    events_fd: std::os::fd::RawFd,
    btf: &Btf,
    how: super::FunctionProbes,
    chosen: Option<&str>,
) -> Result<Functions, TracerError> {
    let start = std::time::Instant::now();
    let probeable = probeable();
    let candidates = |c: Vec<(String, usize)>| -> Vec<(String, usize)> {
        c.into_iter()
            .filter(|(name, _)| probeable.as_ref().is_none_or(|p| p.contains(name)))
            .collect()
    };
    let kernel = candidates(btf.functions_taking("sk_buff", KPROBE_PROGRAMS.len()));
    let modules = modules_with_btf();
    let in_modules: Vec<(String, usize)> = modules
        .iter()
        .flat_map(|m| candidates(module_candidates(btf, m)))
        .collect();
    let mut f = Functions {
        count: 0,
        mechanism: ProbeMechanism::KprobeMulti,
        fallback: None,
        module_problems: vec![],
        attach: std::time::Duration::ZERO,
        modules: modules.iter().cloned().collect(),
        links: None,
        fentries: None,
        chosen: chosen.map(String::from),
    };
    if how == super::FunctionProbes::Fentry {
        let wanted = pattern(chosen, DEFAULT_FUNCTIONS)?;
        let targets = super::fentry::targets(btf, &kernel, &modules, &|n| {
            wanted.is_match(n) && probeable.as_ref().is_none_or(|p| p.contains(n))
        });
        let (links, n) = super::fentry::attach(ebpf, object, events_fd, &targets).map_err(|e| {
            TracerError::Attach {
                hook: "fentry".into(),
                source: HookError::Probe(std::sync::Arc::new(e)),
            }
        })?;
        f.mechanism = ProbeMechanism::Fentry;
        f.count = n;
        f.fentries = Some(links);
        f.attach = start.elapsed();
        return Ok(f);
    }
    let all = pattern(chosen, ".")?;
    let loaded = super::rawprog::instructions(object, ebpf, Some(events_fd), KPROBE_MULTI_PROGRAM)
        .and_then(|program| super::kprobe_multi::Links::load(&program));
    // One link for the kernel's and the modules' functions together (each
    // link costs the kernel a walk over kallsyms and an ftrace update); the
    // kernel's alone if the modules' names do not resolve.
    let everything: Vec<(String, usize)> = kernel.iter().chain(&in_modules).cloned().collect();
    let multi = loaded.and_then(|mut links| match links.link(&matching(&everything, &all)) {
        Ok(n) => Ok((links, n)),
        Err(with_modules) => {
            let n = links.link(&matching(&kernel, &all))?;
            if !in_modules.is_empty() {
                f.module_problems
                    .push(format!("module functions not linked: {with_modules}"));
            }
            Ok((links, n))
        }
    });
    match multi {
        Ok((links, n)) => {
            f.count = n;
            f.links = Some(links);
        }
        Err(why) => {
            f.mechanism = ProbeMechanism::Kprobe;
            f.fallback = Some(why.to_string());
            f.module_problems.clear();
            let by_arg = split_by_arg(&everything, &pattern(chosen, DEFAULT_FUNCTIONS)?);
            f.count = attach_single(ebpf, &by_arg)?;
        }
    }
    if f.count == 0 {
        return Err(TracerError::Attach {
            hook: "kprobe".into(),
            source: HookError::NoFunction,
        });
    }
    f.attach = start.elapsed();
    Ok(f)
}

impl Functions {
    /// Probes functions of modules by this backend's mechanism; when
    /// kprobe-multi cannot link them, that is named, not fatal.
    fn attach_modules(
        &mut self,
        ebpf: &mut Ebpf,
        modules: &[String],
        candidates: &[(String, usize)],
    ) -> Result<(), TracerError> {
        if candidates.is_empty() {
            return Ok(());
        }
        if let Some(links) = self.links.as_mut() {
            match links.link(&matching(
                candidates,
                &pattern(self.chosen.as_deref(), ".")?,
            )) {
                Ok(n) => self.count += n,
                Err(why) => self.module_problems.push(format!(
                    "functions of {} not linked: {why}",
                    modules.join(", ")
                )),
            }
        } else {
            let by_arg = split_by_arg(
                candidates,
                &pattern(self.chosen.as_deref(), DEFAULT_FUNCTIONS)?,
            );
            self.count += attach_single(ebpf, &by_arg)?;
        }
        Ok(())
    }

    /// Probes the functions of modules loaded since the last call (a
    /// scenario's topology loads bridge, vxlan, ...); returns how many
    /// functions were added.
    pub(super) fn add_new_modules(
        &mut self,
        ebpf: &mut Ebpf,
        object: &[u8],
        events_fd: std::os::fd::RawFd,
        btf: &Btf,
    ) -> Result<usize, TracerError> {
        let before = self.count;
        let start = std::time::Instant::now();
        let probeable = probeable();
        let new: Vec<String> = modules_with_btf()
            .into_iter()
            .filter(|m| self.modules.insert(m.clone()))
            .collect();
        if let Some(fentries) = self.fentries.as_mut() {
            let wanted = pattern(self.chosen.as_deref(), DEFAULT_FUNCTIONS)?;
            let targets = super::fentry::targets(btf, &[], &new, &|n| {
                wanted.is_match(n) && probeable.as_ref().is_none_or(|p| p.contains(n))
            });
            match super::fentry::attach(ebpf, object, events_fd, &targets) {
                Ok((more, n)) => {
                    fentries.absorb(more);
                    self.count += n;
                }
                Err(why) => self.module_problems.push(format!(
                    "functions of {} not attached: {why}",
                    new.join(", ")
                )),
            }
        } else {
            let candidates: Vec<(String, usize)> = new
                .iter()
                .flat_map(|m| module_candidates(btf, m))
                .filter(|(name, _)| probeable.as_ref().is_none_or(|p| p.contains(name)))
                .collect();
            self.attach_modules(ebpf, &new, &candidates)?;
        }
        if self.count > before {
            self.attach += start.elapsed();
        }
        Ok(self.count - before)
    }
}

/// The candidates matching `wanted`.
fn matching(candidates: &[(String, usize)], wanted: &regex::Regex) -> Vec<(String, usize)> {
    candidates
        .iter()
        .filter(|(name, _)| wanted.is_match(name))
        .cloned()
        .collect()
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
            .ok_or_else(|| TracerError::load(format!("program {program} missing")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| TracerError::load_from(e.to_string(), &e))?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| TracerError::Attach {
                hook: format!("kprobe ({program})"),
                source: HookError::refused(e),
            })?;
        }
        for name in functions {
            if prog.attach(name, 0).is_ok() {
                attached += 1;
            }
        }
    }
    Ok(attached)
}
