//! The raw-tracepoint core of the tracer (aya): one raw tracepoint program
//! per skb hook, the variant chosen from the hook's BTF prototype, each
//! tail-calling the shared `skb_common` (verified once, where the first
//! design's `tp_btf` programs cost one full verifier pass per hook); the
//! skb-less hooks, the tc observer, and the function-level mechanisms
//! (`functions.rs`) on top of the same maps.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use super::HookError;

use crate::abi::{
    CONFIG_FILTER_NETNS, CONFIG_STACKS, Event, MAX_BANKS, MAX_FILTERS, MAX_NETNS, PROGRAMS,
    PacketFilter, Program, TracerConfig, Watch,
};
use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::RawTracePoint;

use super::{
    AttachedHook, Backend, FlowFilter, Hook, ProbeMechanism, SkippedHook, TcHook, TraceSpec,
    TracerError, offsets,
};
use crate::tracer::btf::Btf;

/// The tracer object, built by `build.rs` and embedded in the binary.
pub(crate) static TRACER_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktfate-tracer"));

/// Hooks a kernel must have; the others are attached when present.
const REQUIRED: [Hook; 4] = [
    Hook::NetifReceiveSkb,
    Hook::KfreeSkb,
    Hook::ConsumeSkb,
    Hook::NetDevQueue,
];

/// A loaded and attached raw-tracepoint tracer. Which namespaces it watches, for
/// which run, and with which filters, are map contents: one loaded tracer
/// can serve many scenarios ([`super::shared`]).
pub struct RawTp {
    // Field order matters for drop: the ring buffer before the object.
    events: RingBuf<MapData>,
    attached: Vec<AttachedHook>,
    skipped: Vec<SkippedHook>,
    functions: Option<super::functions::Functions>,
    tc_loaded: bool,
    /// The fexit programs on scenario programs, linked once needed.
    prog_returns: Option<super::prog_return::ProgReturns>,
    ebpf: Ebpf,
}

fn map_err(map: &str) -> impl Fn(aya::maps::MapError) -> TracerError + '_ {
    move |e| TracerError::Map {
        map: map.into(),
        msg: e.to_string(),
    }
}

/// Checks a spec against what one run may hold.
pub fn check_limits(spec: &TraceSpec) -> Result<(), TracerError> {
    if spec.filters.len() > MAX_FILTERS as usize {
        return Err(TracerError::Limit(format!(
            "{} packet filters, at most {MAX_FILTERS} per scenario",
            spec.filters.len()
        )));
    }
    if spec.netns.len() > MAX_NETNS as usize {
        return Err(TracerError::Limit(format!(
            "{} namespaces, at most {MAX_NETNS} per scenario",
            spec.netns.len()
        )));
    }
    Ok(())
}

/// What loading needs from the kernel's BTF, worked out before aya
/// parses that BTF itself (so the two parses are never alive together).
pub struct LoadPlan {
    config: TracerConfig,
    chosen: Vec<(Hook, Result<Program, HookError>)>,
}

impl RawTp {
    /// Loads the programs with this kernel's offsets and attaches them, for
    /// one watcher (run 0, bank 0) described by `spec`.
    pub fn start(spec: &TraceSpec, btf: &Btf) -> Result<Self, TracerError> {
        check_limits(spec)?;
        let mut tp = Self::load(btf, !spec.netns.is_empty(), spec.stacks)?;
        tp.set_filters(0, &spec.filters)?;
        for ns in &spec.netns {
            tp.watch(*ns, Watch { run: 0, bank: 0 })?;
        }
        if let Some(how) = spec.functions {
            tp.enable_functions(btf, how, spec.function_pattern.as_deref())?;
        }
        if !spec.tc_hooks.is_empty() {
            tp.observe_tc(&spec.tc_hooks)?;
        }
        Ok(tp)
    }

    /// Loads the programs with this kernel's offsets and attaches the
    /// tracepoints; nothing is watched yet. `by_netns` false watches every
    /// namespace (as run 0, bank 0).
    pub fn load(btf: &Btf, by_netns: bool, stacks: bool) -> Result<Self, TracerError> {
        Self::load_plan(Self::plan(btf, by_netns, stacks)?)
    }

    /// What the load needs from the kernel's BTF: the struct offsets and
    /// the program variant each hook gets (or why none).
    pub fn plan(btf: &Btf, by_netns: bool, stacks: bool) -> Result<LoadPlan, TracerError> {
        let mut flags = 0;
        if by_netns {
            flags |= CONFIG_FILTER_NETNS;
        }
        if stacks {
            flags |= CONFIG_STACKS;
        }
        let config = TracerConfig {
            offsets: offsets::resolve(btf)?,
            flags,
        };
        // Not tracepoints, so not here: the tc observer and the function
        // probes, attached on demand.
        let chosen: Vec<(Hook, Result<Program, HookError>)> = Hook::tracepoints()
            .map(|h| (h, choose_program(btf, h)))
            .collect();
        Ok(LoadPlan { config, chosen })
    }

    /// Loads and attaches what `plan` chose: the verifier passes, the bulk
    /// of start-up, on every CPU at once.
    pub fn load_plan(plan: LoadPlan) -> Result<Self, TracerError> {
        let LoadPlan { config, chosen } = plan;
        use crate::common::ebpf_loader;
        let mut ebpf =
            ebpf_loader::load_patched(TRACER_OBJ, &[("CONFIG", ebpf_loader::bytes_of(&config))])
                .map_err(|e| TracerError::load_from(format!("{e:#}"), &e))?;
        let local_routes = load_common(&mut ebpf)?;
        let outcomes = load_in_parallel(&mut ebpf, &chosen);
        let mut attached = vec![];
        let mut skipped: Vec<SkippedHook> = local_routes
            .into_iter()
            .map(|why| SkippedHook {
                hook: Hook::FibTableLookup,
                why,
            })
            .collect();
        for ((hook, _), outcome) in chosen.iter().zip(outcomes) {
            match outcome {
                Ok(program) => attached.push(AttachedHook {
                    hook: *hook,
                    program,
                }),
                Err(why) if REQUIRED.contains(hook) => {
                    return Err(TracerError::Attach {
                        hook: hook.name().into(),
                        source: why,
                    });
                }
                Err(why) => skipped.push(SkippedHook { hook: *hook, why }),
            }
        }

        let events = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or_else(|| TracerError::load("map EVENTS missing"))?,
        )
        .map_err(map_err("EVENTS"))?;
        Ok(Self {
            events,
            attached,
            skipped,
            functions: None,
            tc_loaded: false,
            prog_returns: None,
            ebpf,
        })
    }

    /// A map of the tracer object, typed.
    fn map<'a, M>(&'a mut self, name: &'static str) -> Result<M, TracerError>
    where
        M: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| TracerError::load(format!("map {name} missing")))?
            .try_into()
            .map_err(map_err(name))
    }

    /// The NETNS map: watched namespace -> its run and bank.
    fn netns_map(&mut self) -> Result<HashMap<&mut MapData, u32, Watch>, TracerError> {
        self.map("NETNS")
    }

    /// Watches a namespace for a run.
    pub fn watch(&mut self, netns: u32, w: Watch) -> Result<(), TracerError> {
        self.netns_map()?
            .insert(netns, w, 0)
            .map_err(map_err("NETNS"))
    }

    /// Stops watching a namespace.
    pub fn unwatch(&mut self, netns: u32) -> Result<(), TracerError> {
        match self.netns_map()?.remove(&netns) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("NETNS")(e)),
        }
    }

    /// Sets a bank's packet filters (none: every IP skb).
    pub fn set_filters(&mut self, bank: u32, filters: &[FlowFilter]) -> Result<(), TracerError> {
        if filters.len() > MAX_FILTERS as usize || bank >= MAX_BANKS {
            return Err(TracerError::Limit(format!(
                "{} packet filters, at most {MAX_FILTERS} per scenario",
                filters.len()
            )));
        }
        {
            let mut map: Array<_, PacketFilter> = self.map("FILTERS")?;
            for (i, f) in filters.iter().enumerate() {
                map.set(bank * MAX_FILTERS + i as u32, f.to_kernel(), 0)
                    .map_err(map_err("FILTERS"))?;
            }
        }
        let mut counts: Array<_, u32> = self.map("BANK_FILTERS")?;
        counts
            .set(bank, filters.len() as u32, 0)
            .map_err(map_err("BANK_FILTERS"))
    }

    /// Attaches the function-level probes on first use, and later those of
    /// modules loaded since; returns how many functions are probed.
    pub fn enable_functions(
        &mut self,
        btf: &Btf,
        how: super::FunctionProbes,
        pattern: Option<&str>,
    ) -> Result<usize, TracerError> {
        if let Some(f) = self.functions.as_mut() {
            // Modules a scenario loaded since: their functions too.
            f.add_new_modules(&mut self.ebpf, btf)?;
        } else {
            let f = super::functions::attach_functions(
                &mut self.ebpf,
                TRACER_OBJ,
                self.events.as_fd().as_raw_fd(),
                btf,
                how,
                pattern,
            )?;
            self.attached.push(AttachedHook {
                hook: Hook::Functions,
                program: f.mechanism().name(),
            });
            self.functions = Some(f);
        }
        Ok(self.functions.as_ref().map_or(0, |f| f.count))
    }

    /// How functions are probed, once they are.
    pub fn function_mechanism(&self) -> Option<ProbeMechanism> {
        self.functions
            .as_ref()
            .map(super::functions::Functions::mechanism)
    }

    /// Why kprobe-multi was not the mechanism, when it was not.
    pub fn function_fallback(&self) -> Option<String> {
        self.functions
            .as_ref()
            .and_then(|f| f.fallback.as_ref().map(ToString::to_string))
    }

    /// Functions that could not be probed (a module's), and why.
    pub fn function_problems(&self) -> Vec<String> {
        self.functions
            .as_ref()
            .map(|f| f.left_out.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// Watches what each of `targets` returns: an fexit copy on each,
    /// numbered from `slot` on. Gives each program's slot (and why it is
    /// not watched, where it is not) and the links that keep the watched
    /// ones attached (closing one detaches it).
    pub fn watch_programs(
        &mut self,
        targets: &[super::ProgTarget],
        slot: u32,
    ) -> (Vec<super::WatchedProgram>, Vec<std::os::fd::OwnedFd>) {
        let mut watched = vec![];
        let mut links = vec![];
        if self.prog_returns.is_none() && !targets.is_empty() {
            match super::prog_return::ProgReturns::new(
                &self.ebpf,
                TRACER_OBJ,
                Some(self.events.as_fd().as_raw_fd()),
            ) {
                Ok(p) => self.prog_returns = Some(p),
                Err(e) => {
                    let why = e.to_string();
                    for (i, t) in (slot..).zip(targets) {
                        watched.push(super::WatchedProgram {
                            slot: i,
                            at: t.at.clone(),
                            not_watched: Some(why.clone()),
                        });
                    }
                    return (watched, links);
                }
            }
        }
        let Some(p) = &self.prog_returns else {
            return (watched, links);
        };
        for (i, t) in (slot..).zip(targets) {
            let attached = p.attach(t, i);
            watched.push(super::WatchedProgram {
                slot: i,
                at: t.at.clone(),
                not_watched: attached.as_ref().err().map(ToString::to_string),
            });
            links.extend(attached.ok());
        }
        (watched, links)
    }

    /// Puts the observer classifier ahead of scenario tc programs.
    pub fn observe_tc(&mut self, hooks: &[TcHook]) -> Result<(), TracerError> {
        if hooks.is_empty() {
            return Ok(());
        }
        attach_tc_observer(&mut self.ebpf, hooks, !self.tc_loaded)?;
        if !self.tc_loaded {
            self.tc_loaded = true;
            self.attached.push(AttachedHook {
                hook: Hook::TcfClassify,
                program: "tc_observer",
            });
        }
        Ok(())
    }

    /// The ring buffer's descriptor, to wait on.
    pub fn events_fd(&self) -> std::os::fd::RawFd {
        self.events.as_fd().as_raw_fd()
    }

    /// Every event available now.
    pub fn drain(&mut self) -> Vec<Event> {
        drain(&mut self.events)
    }
}

/// The richest program variant of a hook this kernel's prototype allows,
/// or why there is none.
pub fn choose_program(btf: &Btf, hook: Hook) -> Result<Program, HookError> {
    let Some(arity) = btf.tracepoint_arity(hook.name()) else {
        return Err(HookError::NoTracepoint);
    };
    PROGRAMS
        .iter()
        .find(|p| Some(p.hook) == hook.id() && p.args <= arity)
        .copied()
        .ok_or(HookError::FewerArguments(arity))
}

/// Loads and attaches each hook's chosen program, spread over the CPUs
/// (the skb-less hooks' programs are the larger verifier passes left);
/// one outcome per entry of `chosen`, in order.
fn load_in_parallel(
    ebpf: &mut Ebpf,
    chosen: &[(Hook, Result<Program, HookError>)],
) -> Vec<Result<&'static str, HookError>> {
    let mut by_name: std::collections::HashMap<&str, &mut aya::programs::Program> =
        ebpf.programs_mut().collect();
    // Each job owns its program: distinct `&mut`s, so threads need no lock.
    let mut jobs: Vec<(usize, Hook, Program, &mut aya::programs::Program)> = vec![];
    let mut out: Vec<Result<&'static str, HookError>> = chosen
        .iter()
        .map(|(_, c)| c.clone().map(|p| p.name))
        .collect();
    for (i, (hook, choice)) in chosen.iter().enumerate() {
        if let Ok(program) = choice {
            match by_name.remove(program.name) {
                Some(p) => jobs.push((i, *hook, *program, p)),
                None => out[i] = Err(HookError::MissingProgram(program.name.into())),
            }
        }
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .max(1);
    let mut lanes: Vec<Vec<_>> = (0..workers).map(|_| vec![]).collect();
    for (n, job) in jobs.into_iter().enumerate() {
        lanes[n % workers].push(job);
    }
    let results: Vec<(usize, Result<&'static str, HookError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                s.spawn(move || {
                    lane.into_iter()
                        .map(|(i, hook, program, prog)| {
                            (i, load_and_attach(prog, hook.name()).map(|()| program.name))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (i, r) in results {
        out[i] = r;
    }
    out
}

fn load_and_attach(prog: &mut aya::programs::Program, tracepoint: &str) -> Result<(), HookError> {
    let prog: &mut RawTracePoint =
        prog.try_into()
            .map_err(|e: aya::programs::ProgramError| HookError::WrongType {
                program: tracepoint.into(),
                source: std::sync::Arc::new(e),
            })?;
    prog.load().map_err(HookError::refused)?;
    prog.attach(tracepoint).map_err(HookError::not_attached)?;
    Ok(())
}

/// Loads `skb_common`, the body the skb hook programs tail-call (slot 0),
/// and `fib_local`, where IPv4 route lookups without a tracked skb go
/// (slot 1), into their program array; before any hook is attached, so
/// none jumps to an empty slot.
/// A kernel refusing `fib_local` loses only those lookups: its reason is
/// returned, to be reported as a skipped part of `fib_table_lookup`.
fn load_common(ebpf: &mut Ebpf) -> Result<Option<HookError>, TracerError> {
    load_slot(
        ebpf,
        "skb_common",
        "skb_common (shared by every skb tracepoint)",
        0,
    )?;
    match load_slot(
        ebpf,
        "fib_local",
        "fib_local (sockets' own route lookups)",
        1,
    ) {
        Ok(()) => Ok(None),
        Err(TracerError::Attach { source, .. }) => Ok(Some(source)),
        Err(e) => Err(e),
    }
}

/// Loads program `name` into slot `slot` of `SKB_PROGS`.
fn load_slot(ebpf: &mut Ebpf, name: &str, what: &str, slot: u32) -> Result<(), TracerError> {
    let err = |source: HookError| TracerError::Attach {
        hook: what.into(),
        source,
    };
    let prog: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| err(HookError::MissingProgram(name.into())))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| {
            err(HookError::WrongType {
                program: name.into(),
                source: std::sync::Arc::new(e),
            })
        })?;
    prog.load().map_err(|e| err(HookError::refused(e)))?;
    let fd = prog
        .fd()
        .and_then(|fd| fd.try_clone().map_err(Into::into))
        .map_err(|e| err(HookError::refused(e)))?;
    let map = ebpf
        .map_mut("SKB_PROGS")
        .ok_or_else(|| TracerError::load("map SKB_PROGS missing"))?;
    let mut slots = ProgramArray::try_from(map).map_err(map_err("SKB_PROGS"))?;
    slots.set(slot, &fd, 0).map_err(map_err("SKB_PROGS"))
}

/// Whether the fentry backend works here ([`super::fentry::probe`] of
/// the tracer's object), once per process.
pub fn fentry_available() -> Result<(), std::sync::Arc<super::FentryError>> {
    static FOUND: std::sync::OnceLock<Result<(), std::sync::Arc<super::FentryError>>> =
        std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| super::fentry::probe(TRACER_OBJ).map_err(std::sync::Arc::new))
        .clone()
}

/// Whether this kernel lets the tracer watch what a scenario's programs
/// return (fexit on a BPF program), checked once per process.
pub fn program_returns_available() -> Result<(), std::sync::Arc<super::ProgReturnError>> {
    static FOUND: std::sync::OnceLock<Result<(), std::sync::Arc<super::ProgReturnError>>> =
        std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| super::prog_return::probe(TRACER_OBJ).map_err(std::sync::Arc::new))
        .clone()
}

/// The backend's name in reports: the function probes' mechanism joins
/// the tracepoints when functions are probed.
pub fn backend_name(functions: Option<ProbeMechanism>) -> &'static str {
    match functions {
        Some(ProbeMechanism::KprobeMulti) => "raw_tp+kprobe-multi",
        Some(ProbeMechanism::Fentry) => "raw_tp+fentry",
        Some(ProbeMechanism::Kprobe) => "raw_tp+kprobe",
        None => "raw_tp",
    }
}

impl Backend for RawTp {
    fn name(&self) -> &'static str {
        backend_name(
            self.functions
                .as_ref()
                .map(super::functions::Functions::mechanism),
        )
    }

    fn functions(&self) -> usize {
        self.functions.as_ref().map_or(0, |f| f.count)
    }

    fn function_mechanism(&self) -> Option<ProbeMechanism> {
        RawTp::function_mechanism(self)
    }

    fn function_fallback(&self) -> Option<String> {
        RawTp::function_fallback(self)
    }

    fn function_problems(&self) -> Vec<String> {
        RawTp::function_problems(self)
    }

    fn function_attach(&self) -> Duration {
        self.functions.as_ref().map_or(Duration::ZERO, |f| f.attach)
    }

    fn attached(&self) -> Vec<AttachedHook> {
        self.attached.clone()
    }

    fn skipped(&self) -> Vec<SkippedHook> {
        self.skipped.clone()
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, TracerError> {
        let mut out = drain(&mut self.events);
        if out.is_empty() && !timeout.is_zero() {
            wait_readable(self.events_fd(), timeout)?;
            out = drain(&mut self.events);
        }
        Ok(out)
    }

    fn lost(&self) -> Result<u64, TracerError> {
        // Read in place: a map taken out of the object could not be
        // shared with the kprobe-multi programs (`kprobe_multi`).
        let map = self
            .ebpf
            .map("LOST")
            .ok_or_else(|| TracerError::load("map LOST missing"))?;
        let lost: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err("LOST"))?;
        let v = lost.get(&0, 0).map_err(map_err("LOST"))?;
        Ok(v.iter().sum())
    }
}

/// Waits up to `timeout` for `fd` to be readable.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) -> Result<(), TracerError> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
    Ok(())
}

/// Puts the `tc_observer` classifier ahead of every scenario tc program.
///
/// Attached from a thread inside the namespace (aya resolves the device and
/// opens its netlink socket there) with priority 1, so it runs first. The
/// attachment is released from aya on purpose: a detach would go through a
/// netlink socket of whatever namespace the dropping thread is in. The
/// filter goes away with the scenario's namespace.
fn attach_tc_observer(ebpf: &mut Ebpf, hooks: &[TcHook], load: bool) -> Result<(), TracerError> {
    use aya::programs::tc::{NlOptions, TcAttachOptions};
    use aya::programs::{SchedClassifier, TcAttachType, tc};
    let prog: &mut SchedClassifier = ebpf
        .program_mut("tc_observer")
        .ok_or_else(|| TracerError::load("program tc_observer missing"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| TracerError::load_from(e.to_string(), &e))?;
    if load {
        prog.load().map_err(|e| TracerError::Attach {
            hook: Hook::TcfClassify.name().into(),
            source: HookError::refused(e),
        })?;
    }
    for h in hooks {
        let err = |source: HookError| TracerError::Attach {
            hook: format!(
                "tcf_classify on {} ({})",
                h.dev,
                if h.ingress { "ingress" } else { "egress" }
            ),
            source,
        };
        let kind = if h.ingress {
            TcAttachType::Ingress
        } else {
            TcAttachType::Egress
        };
        let dev = h.dev.as_str();
        let result =
            crate::topology::netns::run_in_scoped(&h.netns, || -> Result<(), HookError> {
                // The scenario's program put clsact there already.
                let _ = tc::qdisc_add_clsact(dev);
                let opts = NlOptions {
                    priority: 1,
                    ..Default::default()
                };
                let id = prog
                    .attach_with_options(dev, kind, TcAttachOptions::Netlink(opts))
                    .map_err(HookError::not_attached)?;
                let link = prog.take_link(id).map_err(HookError::not_attached)?;
                std::mem::forget(link);
                Ok(())
            });
        result
            .map_err(|e| err(HookError::Netns(std::sync::Arc::new(e))))?
            .map_err(err)?;
    }
    Ok(())
}

fn drain(rb: &mut RingBuf<MapData>) -> Vec<Event> {
    let mut out = vec![];
    while let Some(item) = rb.next() {
        if item.len() >= size_of::<Event>() {
            // SAFETY: the kernel wrote a whole `Event`; read_unaligned copes
            // with the ring buffer's 8-byte (not 16-byte) alignment.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
        }
    }
    out
}

#[cfg(test)]
#[path = "nesting_tests.rs"]
mod nesting_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_follow_the_kernels_prototypes() {
        // 6.1: consume_skb(skb), tcp_send_reset(sk, skb), kfree_skb with reason.
        let k61 =
            Btf::with_tracepoints(&[("consume_skb", 1), ("tcp_send_reset", 2), ("kfree_skb", 3)]);
        assert_eq!(
            choose_program(&k61, Hook::ConsumeSkb).unwrap().name,
            "consume_skb_noloc"
        );
        assert_eq!(
            choose_program(&k61, Hook::TcpSendReset).unwrap().name,
            "tcp_send_reset_noreason"
        );
        assert_eq!(
            choose_program(&k61, Hook::KfreeSkb).unwrap().name,
            "kfree_skb"
        );
        // 5.10: kfree_skb(skb, location).
        let k510 = Btf::with_tracepoints(&[("kfree_skb", 2)]);
        assert_eq!(
            choose_program(&k510, Hook::KfreeSkb).unwrap().name,
            "kfree_skb_noreason"
        );
        // 6.18: kfree_skb(skb, location, reason, rx_sk), consume_skb(skb, location).
        let k618 =
            Btf::with_tracepoints(&[("kfree_skb", 4), ("consume_skb", 2), ("tcp_send_reset", 3)]);
        assert_eq!(
            choose_program(&k618, Hook::KfreeSkb).unwrap().name,
            "kfree_skb"
        );
        assert_eq!(
            choose_program(&k618, Hook::ConsumeSkb).unwrap().name,
            "consume_skb"
        );
        assert_eq!(
            choose_program(&k618, Hook::TcpSendReset).unwrap().name,
            "tcp_send_reset"
        );
        // A hook the kernel lacks, and one whose prototype is too short.
        assert!(matches!(
            choose_program(&k510, Hook::IcmpSend),
            Err(HookError::NoTracepoint)
        ));
        let short = Btf::with_tracepoints(&[("fib_table_lookup", 2)]);
        assert!(matches!(
            choose_program(&short, Hook::FibTableLookup),
            Err(HookError::FewerArguments(2))
        ));
    }

    #[test]
    fn every_hook_but_the_classifier_has_a_program() {
        // The classifier and the function probes are not tracepoints.
        for h in Hook::tracepoints() {
            assert!(PROGRAMS.iter().any(|p| Some(p.hook) == h.id()), "{h}");
        }
        for h in [Hook::TcfClassify, Hook::Functions] {
            assert!(!PROGRAMS.iter().any(|p| Some(p.hook) == h.id()), "{h}");
        }
    }
}
