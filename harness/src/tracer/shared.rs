//! One loaded tracer per process, shared by every scenario it runs.
//!
//! Loading the tracer means verifier passes (~40 ms for the
//! tracepoints on 6.18, seconds under emulation); a scenario only needs its
//! namespaces watched and its filters set, which are map writes. So the
//! first scenario loads and attaches the programs, and each scenario then
//! registers a *run*: a process-unique id, written as the NETNS map's value
//! for each of its namespaces, and a filter *bank* (a slice of the FILTERS
//! map). The kernel side stamps every event with the run of the namespace
//! it happened in; here a single reader drains the ring buffer and sorts
//! events into per-run queues, so `--jobs` workers each see their own.
//! Isolation holds as with one tracer per scenario: a namespace is watched
//! by one run only, and a tracked skb is never carried over to another run.
//! Run ids are not reused, so a late event of a finished scenario finds no
//! queue and is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::abi::{Event, MAX_BANKS, Watch, hook};

use super::raw_tp::{self, RawTp};
use super::{AttachedHook, Backend, Hook, ProbeMechanism, SkippedHook, TraceSpec, TracerError};

/// Events queued for one run before further ones are dropped (and counted
/// as lost): a run that stops polling cannot grow the process without
/// bound. ~560 bytes each, so at most ~28 MiB; a polling run drains its
/// queue every few milliseconds.
const QUEUE_LIMIT: usize = 50_000;

struct Inner {
    tp: RawTp,
    free_banks: Vec<u32>,
    next_run: u32,
    queues: HashMap<u32, Vec<Event>>,
    overflow: HashMap<u32, u64>,
    /// The next slot for a watched scenario program (never reused, as
    /// run ids are not: a late event names no later run's program).
    next_slot: u32,
}

impl Inner {
    /// Sorts what the ring buffer holds into the runs' queues.
    fn distribute(&mut self) {
        for ev in self.tp.drain() {
            if let Some(q) = self.queues.get_mut(&ev.run) {
                if q.len() >= QUEUE_LIMIT {
                    *self.overflow.entry(ev.run).or_default() += 1;
                } else {
                    q.push(ev);
                }
            }
        }
    }
}

static SHARED: Mutex<Option<Inner>> = Mutex::new(None);

/// Why loading failed, once it did: every later scenario gets the same
/// answer at once instead of paying for another refused load.
static LOAD_FAILED: Mutex<Option<(String, Option<i32>)>> = Mutex::new(None);

static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many times this process loaded the tracer's programs (1 once any
/// scenario ran: it is loaded once, then shared).
pub fn loads() -> usize {
    LOADS.load(std::sync::atomic::Ordering::SeqCst)
}

fn lock() -> std::sync::MutexGuard<'static, Option<Inner>> {
    SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One scenario's registration with the shared tracer: the events of its
/// namespaces, through the [`Backend`] interface.
pub struct Run {
    run: u32,
    bank: u32,
    netns: Vec<u32>,
    functions: usize,
    mechanism: Option<ProbeMechanism>,
    fallback: Option<String>,
    problems: Vec<String>,
    function_attach: Duration,
    fd: std::os::fd::RawFd,
    attached: Vec<AttachedHook>,
    skipped: Vec<SkippedHook>,
    lost_at_start: u64,
    programs: Vec<super::WatchedProgram>,
    /// The fexit links on the scenario's programs: dropped with the run.
    _program_links: Vec<std::os::fd::OwnedFd>,
}

/// Loads the programs into `slot` unless they are there (or failed before).
fn load_into(slot: &mut Option<Inner>) -> Result<(), TracerError> {
    if slot.is_some() {
        return Ok(());
    }
    if let Some((msg, errno)) = LOAD_FAILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    {
        return Err(TracerError::Load {
            msg,
            os: errno.map(std::io::Error::from_raw_os_error),
        });
    }
    // Our parse of the kernel BTF is only needed to plan the load; it is
    // freed before aya parses the same BTF to load (one copy at a time).
    // The drop reasons, whether rule traces carry conntrack state and the
    // fentry probe's target are read from it now too (each kept for the
    // process), so scenarios asking later do not read it again.
    let plan = crate::tracer::btf::Btf::kernel()
        .map_err(TracerError::from)
        .and_then(|btf| {
            super::DropReasons::kernel()?;
            super::nftrace::traces_ct_state();
            super::fentry::note_probe_target(&btf);
            RawTp::plan(&btf, true, true)
        });
    let tp = plan.and_then(RawTp::load_plan).inspect_err(|e| {
        // Later scenarios get the same error, its OS error kept.
        let errno = super::os_error_in(e).and_then(|o| o.raw_os_error());
        *LOAD_FAILED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((e.to_string(), errno));
    })?;
    LOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    *slot = Some(Inner {
        tp,
        free_banks: (0..MAX_BANKS).rev().collect(),
        next_run: 1,
        queues: HashMap::new(),
        overflow: HashMap::new(),
        next_slot: 0,
    });
    Ok(())
}

/// Starts loading the tracer on a thread of its own, so the verifier works
/// while the first scenarios build their topology; their registration
/// waits for it. A failure is kept and reported to every scenario.
pub fn preload() {
    let _ = std::thread::Builder::new()
        .name("pktfate-tracer-load".into())
        .spawn(|| {
            let _ = load_into(&mut lock());
        });
}

/// Registers a scenario with the process's tracer, loading it first if
/// this is the first scenario.
pub fn register(spec: &TraceSpec) -> Result<Run, TracerError> {
    raw_tp::check_limits(spec)?;
    let mut guard = lock();
    load_into(&mut guard)?;
    let inner = guard.as_mut().expect("loaded above");
    let Some(bank) = inner.free_banks.pop() else {
        return Err(TracerError::Limit(format!(
            "more than {MAX_BANKS} scenarios at once in one process; lower --jobs"
        )));
    };
    let run = inner.next_run;
    inner.next_run += 1;
    let functions = if let Some(how) = spec.functions {
        match crate::tracer::btf::Btf::kernel()
            .map_err(TracerError::from)
            .and_then(|btf| {
                inner
                    .tp
                    .enable_functions(&btf, how, spec.function_pattern.as_deref())
            }) {
            Ok(n) => n,
            Err(e) => {
                inner.free_banks.push(bank);
                return Err(e);
            }
        }
    } else {
        0
    };
    let setup = (|| {
        inner.tp.set_filters(bank, &spec.filters)?;
        inner.tp.observe_tc(&spec.tc_hooks)?;
        // Last: from here on the kernel reports this run's packets.
        for ns in &spec.netns {
            inner.tp.watch(*ns, Watch { run, bank })?;
        }
        Ok(())
    })();
    if let Err(e) = setup {
        for ns in &spec.netns {
            let _ = inner.tp.unwatch(*ns);
        }
        inner.free_banks.push(bank);
        return Err(e);
    }
    inner.queues.insert(run, vec![]);
    let (programs, program_links) = inner.tp.watch_programs(&spec.programs, inner.next_slot);
    inner.next_slot += u32::try_from(spec.programs.len()).unwrap_or(u32::MAX);
    let mut attached = inner.tp.attached();
    let skipped = inner.tp.skipped();
    if functions == 0 {
        attached.retain(|a| a.hook != Hook::Functions);
    }
    Ok(Run {
        run,
        bank,
        netns: spec.netns.clone(),
        functions,
        mechanism: (functions > 0)
            .then(|| inner.tp.function_mechanism())
            .flatten(),
        fallback: (functions > 0)
            .then(|| inner.tp.function_fallback())
            .flatten(),
        problems: if functions > 0 {
            inner.tp.function_problems()
        } else {
            vec![]
        },
        function_attach: if functions > 0 {
            inner.tp.function_attach()
        } else {
            Duration::ZERO
        },
        fd: inner.tp.events_fd(),
        attached,
        skipped,
        lost_at_start: inner.tp.lost()?,
        programs,
        _program_links: program_links,
    })
}

impl Run {
    /// This run's queued events, function steps only if it asked for them.
    fn take(&self, inner: &mut Inner) -> Vec<Event> {
        let mut out = inner
            .queues
            .get_mut(&self.run)
            .map(std::mem::take)
            .unwrap_or_default();
        if self.functions == 0 {
            out.retain(|e| e.hook != hook::FUNCTION);
        }
        out
    }
}

impl Backend for Run {
    fn name(&self) -> &'static str {
        raw_tp::backend_name(self.mechanism)
    }

    fn function_mechanism(&self) -> Option<ProbeMechanism> {
        self.mechanism
    }

    fn function_fallback(&self) -> Option<String> {
        self.fallback.clone()
    }

    fn function_problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    fn attached(&self) -> Vec<AttachedHook> {
        self.attached.clone()
    }

    fn skipped(&self) -> Vec<SkippedHook> {
        self.skipped.clone()
    }

    fn programs(&self) -> Vec<super::WatchedProgram> {
        self.programs.clone()
    }

    fn functions(&self) -> usize {
        self.functions
    }

    fn function_attach(&self) -> Duration {
        self.function_attach
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, TracerError> {
        {
            let mut guard = lock();
            let inner = guard.as_mut().expect("a run implies a loaded tracer");
            inner.distribute();
            let out = self.take(inner);
            if !out.is_empty() || timeout.is_zero() {
                return Ok(out);
            }
        }
        // Waiting without the lock: other runs poll meanwhile. Whoever
        // drains first sorts for everyone.
        raw_tp::wait_readable(self.fd, timeout)?;
        let mut guard = lock();
        let inner = guard.as_mut().expect("a run implies a loaded tracer");
        inner.distribute();
        Ok(self.take(inner))
    }

    /// Lost in the kernel since this run began (the ring buffer is shared,
    /// so a loss during the run is counted against it), plus events its
    /// queue had no room for.
    fn lost(&self) -> Result<u64, TracerError> {
        let guard = lock();
        let inner = guard.as_ref().expect("a run implies a loaded tracer");
        let kernel = inner.tp.lost()?.saturating_sub(self.lost_at_start);
        Ok(kernel + inner.overflow.get(&self.run).copied().unwrap_or(0))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let mut guard = lock();
        if let Some(inner) = guard.as_mut() {
            for ns in &self.netns {
                let _ = inner.tp.unwatch(*ns);
            }
            let _ = inner.tp.set_filters(self.bank, &[]);
            inner.free_banks.push(self.bank);
            inner.queues.remove(&self.run);
            inner.overflow.remove(&self.run);
        }
    }
}
