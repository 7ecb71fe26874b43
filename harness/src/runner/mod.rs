//! Runs one scenario through every stage: parse/validate → build topology →
//! attach tracer → inject → collect → evaluate → (report) → tear down.
//!
//! Errors a user can cause come back as [`RunError`] with a hint; the
//! topology is torn down on every path out of [`run`], including panics
//! (it is a `Drop` guard).

pub use crate::report::{Outcome, Timings};

pub mod preflight;
mod requires;
mod rulecheck;
pub mod suite;

use requires::function_level;
pub use requires::{Unmet, kernel_reasons, kernel_version, unmet_requirements};

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::collect;
use crate::common::ErrorKind;
pub use crate::common::config::{KeepPrompt, RunConfig};
use crate::evaluate;
use crate::inject::{self, InjectError};
use crate::scenario::{MissingHook, Scenario, ScenarioError};
use crate::topology::{Topology, TopologyError};
use crate::tracer::{BackendChoice, FlowFilter, TraceSpec, Tracer, TracerError};
use preflight::PreflightError;

/// Why a scenario could not be run (as opposed to failing its expectations).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is wrong.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scenario(Vec<ScenarioError>),
    /// The machine lacks something.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Building the topology failed.
    #[error("building the topology: {0}")]
    Topology(#[from] TopologyError),
    /// The tracer failed.
    #[error("tracer: {0}")]
    Tracer(#[from] TracerError),
    /// Injection failed.
    #[error("injecting: {0}")]
    Inject(#[from] InjectError),
    /// A kernel module the scenario needs cannot be loaded.
    #[error(transparent)]
    Kmod(#[from] crate::topology::kmod::KmodError),
    /// Netfilter rule tracing failed where the scenario asserts decisions.
    #[error("netfilter rule trace: {0}")]
    NfTrace(#[from] crate::tracer::nftrace::NfTraceError),
    /// The scenario's `requires` are not met here: skipped, not failed.
    #[error("skipped: {0}")]
    Skipped(Unmet),
}

impl RunError {
    /// A hint for the user, where one helps (scenario errors carry their own).
    pub fn hint(&self) -> Option<String> {
        match self {
            RunError::Preflight(p) => Some(p.hint()),
            RunError::Topology(t) => t.hint(),
            RunError::Kmod(k) => Some(k.hint()),
            RunError::Tracer(TracerError::Attach { .. }) => Some(
                "the tracer cannot work without this hook; `pktfate doctor` shows what this kernel offers (report its release and this line)".into(),
            ),
            RunError::NfTrace(_) => Some(
                "rule tracing runs `nft` inside the namespace (package nftables) and needs nf_tables; rules loaded by legacy (x_tables) iptables are not traced: use iptables-nft".into(),
            ),
            RunError::Tracer(e) if e.denied() => {
                Some("loading eBPF needs root (CAP_BPF, CAP_PERFMON)".into())
            }
            _ => None,
        }
    }

    /// Who can fix it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Topology(e) => e.kind(),
            // Too many packets or namespaces for one tracer is the scenario's.
            RunError::Scenario(_)
            | RunError::Skipped(_)
            | RunError::Tracer(TracerError::Limit(_)) => ErrorKind::Scenario,
            RunError::Tracer(e) if e.denied() => ErrorKind::Machine,
            RunError::Preflight(_)
            | RunError::Kmod(_)
            | RunError::NfTrace(_)
            | RunError::Tracer(TracerError::Btf(_)) => ErrorKind::Machine,
            RunError::Tracer(_) | RunError::Inject(_) => ErrorKind::Internal,
        }
    }

    /// The message with its hint.
    pub fn render(&self) -> String {
        match self.hint() {
            Some(h) => format!("{self}\n  hint: {h}"),
            None if self.kind() == ErrorKind::Internal => format!(
                "{self}\n  note: this is pktfate's own failure, not the scenario's; please report it with the output of `pktfate doctor`"
            ),
            None => self.to_string(),
        }
    }
}

/// Loads, validates and runs a scenario file with the run's settings.
pub fn run_file(path: &Path, cfg: &RunConfig) -> Result<Outcome, RunError> {
    let outcome = judge_file(path, cfg).map(|j| j.finish(cfg));
    // Cut short by a signal, it is no result: the handler ends the process.
    crate::topology::teardown::await_exit_if_stopping();
    outcome
}

/// Tells the user how to enter a failed scenario's namespaces, through
/// the run's prompt. Hands the topology back for teardown when the prompt
/// says so; otherwise the namespaces outlive the run until the next run
/// sweeps them.
fn keep_failed(topo: Topology, name: &str, prompt: &dyn KeepPrompt) -> Option<Topology> {
    // One prompt at a time when scenarios run in parallel.
    static PROMPT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PROMPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if prompt.kept(name, &topo.explore_commands()) {
        Some(topo)
    } else {
        topo.leave_up();
        None
    }
}

/// What must hold before anything is built: requirements, root, kernel
/// modules; kernel-dependent expectations resolved for this kernel.
fn check_machine(s: &mut Scenario, backend: BackendChoice) -> Result<(), RunError> {
    if let Some(why) = unmet_requirements(s, backend) {
        return Err(RunError::Skipped(why));
    }
    // Root first: without it, loading modules fails misleadingly.
    preflight::check()?;
    // Rule assertions on iptables rules need rules the kernel traces.
    if asserts_rules(s) {
        for ns in &s.namespaces {
            if ns.iptables.is_some() {
                preflight::check_iptables_nft("iptables-restore")?;
            }
            if ns.ip6tables.is_some() {
                preflight::check_iptables_nft("ip6tables-restore")?;
            }
        }
    }
    for module in crate::topology::kmod::for_scenario(s) {
        crate::topology::kmod::ensure(module)?;
    }
    if let Some(v) = kernel_version() {
        s.resolve_for_kernel(v);
    }
    let reasons = kernel_reasons()?;
    s.check_against_kernel(&reasons).map_err(RunError::Scenario)
}

/// What the tracer must watch: the scenario's namespaces, each packet's
/// flow both ways and the ICMP errors about it, the tc hooks in use.
fn trace_spec(
    s: &Scenario,
    topo: &Topology,
    prepared: &[inject::Prepared],
    cfg: &RunConfig,
) -> Result<(Vec<(usize, FlowFilter)>, TraceSpec), RunError> {
    // Each packet's 5-tuple (both ways), plus ICMP errors sent back to its
    // source, which is how the kernel says "no" for many drops.
    let mut filters: Vec<(usize, FlowFilter)> = vec![];
    for (i, p) in prepared.iter().enumerate() {
        filters.push((i, p.filter.clone()));
        if !matches!(p.filter.proto, Some(1 | 58)) {
            filters.push((i, p.filter.icmp_errors()));
        }
    }
    // Where a NAT may rewrite a flow, its replies from where they are born
    // (inside a pod, before the node reverses a DNAT): after every exact
    // filter, so a packet matching one exactly is attributed by that.
    if crate::scenario::may_rewrite(&s.namespaces) {
        let halves: Vec<(usize, FlowFilter)> = prepared
            .iter()
            .enumerate()
            .filter(|(_, p)| !matches!(p.filter.proto, Some(1 | 58)))
            .flat_map(|(i, p)| p.filter.nat_replies().map(|f| (i, f)))
            .collect();
        // The filter bank is bounded: the exact filters come first.
        if filters.len() + halves.len() <= crate::abi::MAX_FILTERS as usize {
            filters.extend(halves);
        }
    }
    let mut tc_hooks = vec![];
    for ns in &s.namespaces {
        for t in &ns.tc {
            if let crate::scenario::TcSpec::Program { dev, ingress, .. }
            | crate::scenario::TcSpec::Object { dev, ingress, .. } = t
            {
                tc_hooks.push(crate::tracer::TcHook {
                    netns: topo.handle(&ns.name).path(),
                    dev: dev.clone(),
                    ingress: *ingress,
                });
            }
        }
    }
    let functions = function_level(s, cfg.backend).map_err(RunError::Skipped)?;
    let spec = TraceSpec {
        netns: topo.inodes(),
        filters: filters.iter().map(|(_, f)| f.clone()).collect(),
        stacks: true,
        tc_hooks,
        functions,
        function_pattern: cfg.functions.clone(),
        programs: topo
            .programs
            .iter()
            .map(|(at, id)| crate::tracer::ProgTarget {
                id: *id,
                at: at.clone(),
            })
            .collect(),
    };
    Ok((filters, spec))
}

/// Expectations this kernel cannot check (no drop reasons, missing
/// hooks): taken out of the scenario and named.
fn unchecked_here(s: &mut Scenario, tracer: &Tracer) -> Vec<String> {
    let mut unchecked = vec![];
    if !tracer.drop_reasons_traced() {
        unchecked = s.drop_reason_checks(
            "this kernel's kfree_skb tracepoint passes no drop reason; they start in 5.17",
        );
    }
    if asserts_rules(s) && !crate::tracer::nftrace::traces_ct_state() {
        unchecked.extend(s.ct_state_checks(
            "this kernel's netfilter rule traces carry no conntrack state; NFTA_TRACE_CT_STATE starts in 6.16",
        ));
    }
    let skipped = tracer.backend().skipped();
    let whys: Vec<String> = skipped.iter().map(|h| h.why.to_string()).collect();
    let missing: Vec<MissingHook> = skipped
        .iter()
        .zip(&whys)
        .map(|(h, why)| MissingHook {
            hook: h.hook.name(),
            why,
        })
        .collect();
    unchecked.extend(s.drop_steps_on_hooks(&missing));
    let unwatched: Vec<(crate::scenario::ProgramRef, String)> = tracer
        .backend()
        .programs()
        .into_iter()
        .filter_map(|w| w.not_watched.map(|why| (w.at, why)))
        .collect();
    unchecked.extend(s.program_checks(&unwatched));
    unchecked
}

/// The nstat counters of the namespaces a scenario checks.
fn counters_of(
    topo: &Topology,
    counted: &[String],
) -> Result<std::collections::BTreeMap<String, crate::collect::counters::Counters>, RunError> {
    let mut m = std::collections::BTreeMap::new();
    for ns in counted {
        let c = crate::collect::counters::read(&topo.handle(ns).path()).map_err(|e| {
            RunError::Topology(TopologyError::Io {
                what: format!("reading counters of `{ns}`"),
                source: e,
            })
        })?;
        m.insert(ns.clone(), c);
    }
    Ok(m)
}

/// Runs a validated scenario with the run's settings.
pub fn run(s: Scenario, cfg: &RunConfig) -> Result<Outcome, RunError> {
    Ok(run_to_verdict(s, cfg)?.finish(cfg))
}

/// Loads, validates and runs a scenario file up to its verdict; its
/// topology is still up (see [`Judged`]).
pub fn judge_file(path: &Path, cfg: &RunConfig) -> Result<Judged, RunError> {
    let s = Scenario::load_with(path, &cfg.files).map_err(RunError::Scenario)?;
    run_to_verdict(s, cfg)
}

/// A scenario judged whose topology is not torn down yet. The verdict does
/// not wait for the teardown (CNI DEL runs plugins again; the kernel frees
/// devices under RTNL), so a suite hands it to another thread and builds
/// the next scenario meanwhile. Dropping it tears down too.
pub struct Judged {
    outcome: Outcome,
    topo: Topology,
}

impl Judged {
    /// Whether the expectations held (teardown problems aside).
    pub fn passed(&self) -> bool {
        self.outcome.verdict.passed()
    }

    /// Tears the topology down (or keeps it, as the run's prompt says, when
    /// the scenario failed) and gives the complete outcome.
    pub fn finish(self, cfg: &RunConfig) -> Outcome {
        self.finish_deferring(cfg, None)
    }

    /// [`Self::finish`], with the namespaces handed to `later` (when given)
    /// to be deleted with others (a suite's).
    pub fn finish_deferring(
        self,
        cfg: &RunConfig,
        later: Option<&crate::topology::DeferredDeletions>,
    ) -> Outcome {
        let Judged { mut outcome, topo } = self;
        let t_teardown = Instant::now();
        let kept = match &cfg.keep {
            Some(prompt) if !outcome.verdict.passed() => {
                keep_failed(topo, &outcome.scenario.name, prompt.as_ref())
            }
            _ => Some(topo),
        };
        outcome.teardown_problems = kept
            .map(|mut t| t.teardown_deferring(later))
            .unwrap_or_default();
        outcome.timings.teardown = t_teardown.elapsed();
        outcome
    }
}

/// Runs a validated scenario up to its verdict, leaving the topology up.
pub fn run_to_verdict(mut s: Scenario, cfg: &RunConfig) -> Result<Judged, RunError> {
    let t_setup = Instant::now();
    check_machine(&mut s, cfg.backend)?;

    let topo = Topology::build(&s, &cfg.cni_path)?;
    // Building may have loaded modules (bridge, vxlan, nf_tables): their
    // functions must be named in this scenario's stacks.
    crate::tracer::kallsyms::Kallsyms::refresh();

    let mut prepared = inject::prepare_all(&s, &topo)?;
    let setup = t_setup.elapsed();

    let t_attach = Instant::now();
    let (filters, spec) = trace_spec(&s, &topo, &prepared, cfg)?;
    let mut tracer = Tracer::for_scenario(&spec)?;
    // Netfilter rule tracing where the scenario has rules.
    let nftrace = if cfg.rule_trace {
        start_rule_trace(&s, &topo)?
    } else {
        None
    };
    // Rule references against the rules as the kernel lists them: the
    // trace's listing, else a listing of its own.
    rulecheck::check(&s, &mut |ns| match &nftrace {
        Some(t) => t.ruleset(&ns.name).cloned(),
        None => crate::tracer::nftrace::list_in(&topo.handle(&ns.name).path())
            .ok()
            .flatten(),
    })
    .map_err(RunError::Scenario)?;
    let attach = t_attach.elapsed();
    let unchecked = unchecked_here(&mut s, &tracer);

    let t_verdict = Instant::now();
    let counted: Vec<String> = s.counters.iter().map(|c| c.ns.clone()).collect();
    let snapshot = |topo: &Topology| counters_of(topo, &counted);
    let before = snapshot(&topo)?;
    for p in &mut prepared {
        p.fire()?;
    }
    let mut timeline = collect::collect(
        &mut tracer,
        &topo.names,
        &filters,
        s.timeout,
        &cfg.collection,
        &mut || {
            let mut seen = topo.drain();
            for p in &prepared {
                seen.extend(p.drain(p.from_ns().unwrap_or("")));
            }
            seen
        },
    )?;
    // Sockets stay open until the fates are known.
    drop(prepared);
    if let Some(t) = nftrace {
        finish_rule_trace(&s, t, cfg.keep.is_some(), &filters, &mut timeline)?;
    }
    timeline.conntrack = read_conntrack(&s, &topo, &timeline.steps);
    let after = snapshot(&topo)?;
    let mut verdict = evaluate::evaluate(&s, &timeline);
    verdict.counters = evaluate::check_counters(&s, &before, &after);
    let inject_to_verdict = t_verdict.elapsed();
    let b = tracer.backend();
    let outcome = Outcome {
        backend: b.name(),
        hooks: b.hooks(),
        skipped_hooks: b.skipped(),
        functions: b.functions(),
        function_mechanism: b.function_mechanism(),
        function_fallback: b.function_fallback(),
        function_problems: b.function_problems(),
        function_attach: b.function_attach(),
        names: topo.names.clone(),
        scenario: s,
        timeline,
        verdict,
        timings: Timings {
            setup,
            attach,
            inject_to_verdict,
            teardown: std::time::Duration::ZERO,
        },
        unchecked,
        teardown_problems: vec![],
    };
    // The scenario's run ends before teardown: its namespaces are no
    // longer watched, and its filter bank is free for the next scenario.
    drop(tracer);
    Ok(Judged { outcome, topo })
}

/// The conntrack tables of the namespaces the scenario's expectations
/// name, read at the end of collection: looked up by the connections of
/// the packets `steps` saw in each, when those are all its entries.
fn read_conntrack(
    s: &Scenario,
    topo: &Topology,
    steps: &[collect::Step],
) -> Vec<collect::conntrack::CtTable> {
    use collect::conntrack::CtKey;
    let mut names: Vec<&str> = s
        .packets
        .iter()
        .flat_map(|p| {
            p.expect
                .conntrack
                .iter()
                .chain(p.expect.reply.iter().flat_map(|r| &r.conntrack))
        })
        .map(|c| c.ns.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let keys: Vec<CtKey> = steps
                .iter()
                .filter(|st| st.ns == n)
                .filter_map(|st| CtKey::of(&st.ev.packet))
                .collect();
            let (entries, unreadable) =
                match collect::conntrack::read(&topo.handle(n).path(), &keys) {
                    Ok((e, _)) => (e, None),
                    Err(e) => (vec![], Some(e.to_string())),
                };
            collect::conntrack::CtTable {
                ns: n.to_string(),
                entries,
                unreadable,
            }
        })
        .collect()
}

/// Whether any packet asserts netfilter decisions.
fn asserts_rules(s: &Scenario) -> bool {
    s.packets.iter().any(|p| {
        p.expect.netfilter.is_some()
            || p.expect
                .reply
                .as_ref()
                .is_some_and(|r| r.netfilter.is_some())
    })
}

/// Starts rule tracing in the namespaces that may have rules; where it
/// cannot start and nothing asserts on it, the run goes on without.
fn start_rule_trace(
    s: &Scenario,
    topo: &Topology,
) -> Result<Option<crate::tracer::nftrace::NfTrace>, RunError> {
    let spaces: Vec<(String, PathBuf)> = crate::scenario::rule_namespaces(&s.namespaces)
        .into_iter()
        .map(|n| {
            let path = topo.handle(&n).path();
            (n, path)
        })
        .collect();
    if spaces.is_empty() {
        return Ok(None);
    }
    match crate::tracer::nftrace::NfTrace::start(&spaces) {
        Ok(t) => Ok(Some(t)),
        Err(e) if asserts_rules(s) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// Drains the rule trace into the timeline, each evaluation attributed to
/// its packet.
fn finish_rule_trace(
    s: &Scenario,
    t: crate::tracer::nftrace::NfTrace,
    kept: bool,
    filters: &[(usize, crate::tracer::FlowFilter)],
    timeline: &mut collect::Timeline,
) -> Result<(), RunError> {
    match t.finish(kept) {
        Ok(r) => {
            timeline.rules_traced = r.rulesets.iter().map(|(n, _)| n.clone()).collect();
            // Rules a CNI plugin or `run:` command adds with it are not
            // traced: said next to a netfilter assertion that saw nothing.
            timeline.iptables_legacy = preflight::legacy_on_path("iptables");
            let seen = timeline
                .steps
                .iter()
                .filter_map(|s| s.packet.map(|i| (i, s.reverse, &s.ev.packet)));
            timeline.rules = collect::attribute_rules(r.evals, filters, seen);
            collect::place_rules(&mut timeline.rules, &timeline.steps);
            timeline.rules_lost = r.lost;
            timeline.rulesets = r.rulesets;
            Ok(())
        }
        Err(e) if asserts_rules(s) => Err(e.into()),
        Err(_) => Ok(()),
    }
}

/// A path given to search for scenarios that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct DiscoverError {
    /// The path (or the directory under it) that failed.
    pub path: PathBuf,
    /// The OS's reason.
    pub source: std::io::Error,
}

/// Scenario files (`*.yaml`, `*.yml`) under `paths`, sorted; directories
/// are searched recursively.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DiscoverError> {
        let fail = |source| DiscoverError {
            path: dir.to_path_buf(),
            source,
        };
        for e in std::fs::read_dir(dir).map_err(fail)? {
            let p = e.map_err(fail)?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = vec![];
    for p in paths {
        // The real reason when a path cannot be used: missing, or a
        // directory this user may not enter (not "no such file").
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut out)?,
            Ok(_) => out.push(p.clone()),
            Err(source) => {
                return Err(DiscoverError {
                    path: p.clone(),
                    source,
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that cannot be used says why, as the kernel says it: under a
    /// file it is "Not a directory" (for another user, a directory it may
    /// not enter is "Permission denied"), not "no such file".
    #[test]
    fn an_unusable_scenario_path_says_why() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let file = tmp.path().join("s.yaml");
        std::fs::write(&file, "namespaces: {}\n").unwrap();
        let e = discover(&[file.join("x.yaml")]).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::ENOTDIR));
        assert!(
            e.to_string()
                .ends_with("s.yaml/x.yaml: Not a directory (os error 20)"),
            "{e}"
        );
        let e = discover(&[tmp.path().join("absent.yaml")]).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(discover(std::slice::from_ref(&file)).unwrap(), vec![file]);
    }

    #[test]
    fn errors_say_who_can_fix_them() {
        let at = crate::scenario::Location {
            file: "s.yaml".into(),
            line: 10,
            col: 15,
        };
        let user = RunError::Topology(TopologyError::Netlink {
            cmd: "ip route add 203.0.113.0/24 via 198.51.100.1".into(),
            ns: "a".into(),
            at: Some(at),
            source: std::io::Error::from_raw_os_error(libc::ENETUNREACH),
        });
        assert_eq!(user.kind(), ErrorKind::Scenario);
        assert!(!user.render().contains("pktfate's own failure"));
        let machine = RunError::Preflight(PreflightError::NotRoot);
        assert_eq!(machine.kind(), ErrorKind::Machine);
        let internal = RunError::Tracer(TracerError::Map {
            map: "EVENTS".into(),
            msg: "no such map".into(),
        });
        assert_eq!(internal.kind(), ErrorKind::Internal);
        assert!(
            internal.render().contains("pktfate's own failure"),
            "{}",
            internal.render()
        );
        let too_many = RunError::Tracer(TracerError::Limit("too many namespaces".into()));
        assert_eq!(too_many.kind(), ErrorKind::Scenario);
        // A refused bpf(2) is the machine's, found by its errno down aya's
        // own error chain, whatever the message says.
        let refused = aya::programs::ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        };
        let denied = RunError::Tracer(TracerError::load_from("loading kfree_skb", &refused));
        assert_eq!(denied.kind(), ErrorKind::Machine);
        assert!(
            denied.render().contains("needs root"),
            "{}",
            denied.render()
        );
        let with_the_words = RunError::Tracer(TracerError::load("Operation not permitted"));
        assert_eq!(
            with_the_words.kind(),
            ErrorKind::Internal,
            "not judged by its text"
        );
    }
}
