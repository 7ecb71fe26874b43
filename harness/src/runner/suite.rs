//! Running many scenarios and reporting on them as a suite: in parallel,
//! as text, JSON lines or `JUnit` XML.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use crate::common::parallel;

use crate::report::{
    self, junit,
    model::{ScenarioReport, SkippedHookReport, Status, TimingsMs, TracerReport},
};
use crate::runner::{self, Outcome, RunError};
use crate::scenario::Scenario;

/// One scenario's result.
pub struct SuiteResult {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: Result<Outcome, RunError>,
}

impl SuiteResult {
    /// How it ended.
    pub fn status(&self) -> Status {
        match &self.outcome {
            Ok(o) if o.passed() => Status::Pass,
            Ok(_) => Status::Fail,
            Err(RunError::Skipped(_)) => Status::Skip,
            Err(_) => Status::Error,
        }
    }

    /// Scenario name (the file stem when it could not be loaded).
    pub fn name(&self) -> String {
        match &self.outcome {
            Ok(o) => o.scenario.name.clone(),
            Err(_) => self
                .path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        }
    }
}

/// Workers for `--jobs`: as asked, else two per CPU; within 1 and the
/// scenarios one loaded tracer serves at once.
///
/// Two per CPU because a scenario mostly waits on the kernel (RCU grace
/// periods as namespaces and devices come and go, linkwatch bringing
/// carriers up, plugins and tools it runs): with one per CPU, a third of
/// a 2-CPU machine stays idle through the shipped suite.
pub fn jobs(asked: Option<usize>) -> usize {
    default_jobs(
        asked,
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    )
}

fn default_jobs(asked: Option<usize>, cpus: usize) -> usize {
    asked
        .unwrap_or(cpus.saturating_mul(2))
        .clamp(1, crate::abi::MAX_BANKS as usize)
}

/// A scenario's expected set-up and teardown cost, in rough milliseconds
/// of this machine's kind: what it runs besides a few netlink requests.
/// Only the order matters: the costliest start first.
fn expected_cost(s: &Scenario) -> u32 {
    let per_ns = |ns: &crate::scenario::Namespace| {
        // Each CNI plugin runs on ADD and on DEL, some of them tens of
        // iptables processes besides (30-90 ms each, measured).
        let plugins = ns
            .cni
            .as_ref()
            .map_or(0, |c| c.conflist["plugins"].as_array().map_or(1, Vec::len));
        let rulesets = [&ns.nft, &ns.iptables, &ns.ip6tables]
            .iter()
            .filter(|r| r.is_some())
            .count();
        // An XDP program changes the kernel's XDP dispatcher on attach
        // and on detach, each an RCU grace period under RTNL (~13 ms).
        5 + 2 * ns.links.len()
            + 60 * plugins
            + 25 * ns.xdp.len()
            + 5 * (ns.tc.len() + rulesets + ns.run.len())
    };
    u32::try_from(s.namespaces.iter().map(per_ns).sum::<usize>()).unwrap_or(u32::MAX)
}

/// The order to start scenarios in: the costliest first, so that the
/// suite does not end waiting on one long scenario started last; files
/// that could not be loaded first of all (they cost nothing and say the
/// most). Equal costs keep the files' order.
fn schedule(costs: &[Option<u32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i].unwrap_or(u32::MAX)));
    order
}

/// The most a scenario's priority is lowered: a weight ~9x below the
/// costliest's, never so low that a cheap scenario waits long for a CPU.
const MAX_NICE_OFFSET: i32 = 10;

/// How many nice steps below a scenario of expected cost `most` one of
/// cost `cost` runs: about log1.25 of how much cheaper it is, since each
/// step gives a thread ~1.25x less CPU than the one above it.
fn nice_offset(most: u32, cost: u32) -> i32 {
    let ratio = f64::from(most.max(1)) / f64::from(cost.max(1));
    // Within 0..=MAX_NICE_OFFSET, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let steps = (ratio.ln() / 1.25f64.ln())
        .round()
        .clamp(0.0, f64::from(MAX_NICE_OFFSET)) as i32;
    steps
}

/// The expected costs of the scenarios not judged yet (waiting or
/// running). A scenario starts at a priority below the costliest of them
/// by how much cheaper it is (see [`nice_offset`]): on a busy machine the
/// CPU then goes to each roughly in proportion to its expected cost, so
/// the few long ones (CNI plugins running tens of `iptables`) are not
/// slowed by the many short ones until they alone are left, ending the
/// suite with CPUs idle. Once the long ones are judged, the rest start at
/// the process's own priority again: a lowered scenario yields to other
/// work of the machine too (in pktfate's scheduling group), so no longer
/// than the long ones need it.
struct Unjudged(Mutex<Vec<u32>>);

impl Unjudged {
    fn new(costs: &[Option<u32>]) -> Self {
        Unjudged(Mutex::new(costs.iter().flatten().copied().collect()))
    }

    /// The nice offset for a scenario of this cost starting now.
    fn offset(&self, cost: u32) -> i32 {
        let left = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        nice_offset(left.iter().copied().max().unwrap_or(cost), cost)
    }

    /// A scenario of this cost is judged.
    fn judged(&self, cost: u32) {
        let mut left = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = left.iter().position(|c| *c == cost) {
            left.swap_remove(at);
        }
    }
}

/// The calling thread's nice value.
fn thread_nice() -> i32 {
    // getpriority returns the value itself, -1 included: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: no memory is passed; PRIO_PROCESS with 0 is the calling thread.
    let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if n == -1 && nix::errno::Errno::last_raw() != 0 {
        0
    } else {
        n
    }
}

/// Sets the calling thread's nice value (on Linux a thread's own; the
/// threads and processes it starts inherit it). Best effort: a failure
/// (no `CAP_SYS_NICE` to go back up) leaves it as it was.
fn set_thread_nice(nice: i32) {
    // SAFETY: no memory is passed; PRIO_PROCESS with 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice.min(19));
    }
}

/// Runs `files` with up to `jobs` at once; `each` sees every result as it
/// finishes. Results come back in file order.
///
/// Every file is loaded first; with more than one job the costliest
/// scenarios start first (see [`expected_cost`]), and each runs at a CPU
/// priority below the costliest's by how much cheaper it is (see
/// [`Unjudged`]; relative to the process's own nice value). A
/// scenario's teardown is not on the path to the next verdict: once
/// judged, a scenario is handed to one of `jobs` teardown threads (at the
/// process's priority) and its worker builds the next one. A
/// worker waits for a free teardown thread, so at most `jobs` topologies
/// are being torn down at once.
pub fn run_all(
    files: &[PathBuf],
    jobs: usize,
    cfg: &runner::RunConfig,
    each: impl Fn(&SuiteResult) + Sync,
) -> Vec<SuiteResult> {
    let done: Mutex<Vec<(usize, SuiteResult)>> = Mutex::new(vec![]);
    let finish = |i: usize, r: SuiteResult| {
        crate::topology::teardown::await_exit_if_stopping();
        each(&r);
        done.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((i, r));
    };
    let loaded: Vec<Result<Scenario, RunError>> =
        parallel::map_in_order(files, jobs, &|| false, |f| {
            ControlFlow::Continue(Scenario::load_with(f, &cfg.files).map_err(RunError::Scenario))
        });
    let costs: Vec<Option<u32>> = loaded
        .iter()
        .map(|l| l.as_ref().ok().map(expected_cost))
        .collect();
    let order = if jobs > 1 {
        schedule(&costs)
    } else {
        (0..files.len()).collect()
    };
    // One at a time, the scenarios do not compete for the CPUs.
    let unjudged = (jobs > 1).then(|| Unjudged::new(&costs));
    let base_nice = thread_nice();
    // Each taken once, by the worker that runs it.
    let loaded: Vec<Mutex<Option<Result<Scenario, RunError>>>> =
        loaded.into_iter().map(|l| Mutex::new(Some(l))).collect();
    // A rendezvous channel: a judged scenario is handed over only when a
    // teardown thread is free to take it.
    let (sender, judged) = mpsc::sync_channel::<(usize, PathBuf, runner::Judged)>(0);
    let judged = Mutex::new(judged);
    // The scenarios' namespaces, deleted together (at the end, or once
    // many are held) rather than one scenario's in the middle of the
    // others' set-up: see `DeferredDeletions`. Dropped on a panic too.
    let later = crate::topology::DeferredDeletions::default();
    std::thread::scope(|scope| {
        // Owned by this closure, so that closing it below ends the threads.
        let to_teardown = sender;
        for _ in 0..jobs.max(1) {
            // Should no thread start, workers tear down themselves.
            let _ = std::thread::Builder::new()
                .name("pktfate-teardown".into())
                .spawn_scoped(scope, || {
                    loop {
                        let next = judged.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((i, path, j)) = next else { break };
                        let outcome = Ok(j.finish_deferring(cfg, Some(&later)));
                        finish(i, SuiteResult { path, outcome });
                    }
                });
        }
        parallel::map_in_order(&order, jobs, &|| false, |&i| {
            let f = &files[i];
            let scenario = loaded[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let judged = match scenario {
                Some(Ok(s)) => match (&unjudged, costs[i]) {
                    (Some(u), Some(cost)) => {
                        // This worker's thread, and what it starts, until
                        // its next scenario sets its own.
                        set_thread_nice(base_nice + u.offset(cost));
                        let judged = runner::run_to_verdict(s, cfg);
                        u.judged(cost);
                        judged
                    }
                    _ => runner::run_to_verdict(s, cfg),
                },
                Some(Err(e)) => Err(e),
                None => unreachable!("each scenario is taken once"),
            };
            match judged {
                Ok(j) => {
                    if let Err(mpsc::SendError((i, path, j))) = to_teardown.send((i, f.clone(), j))
                    {
                        let outcome = Ok(j.finish_deferring(cfg, Some(&later)));
                        finish(i, SuiteResult { path, outcome });
                    }
                }
                Err(e) => finish(
                    i,
                    SuiteResult {
                        path: f.clone(),
                        outcome: Err(e),
                    },
                ),
            }
            ControlFlow::Continue(())
        });
        // The teardown threads end once the queue is closed and empty.
        drop(to_teardown);
    });
    later.delete_held();
    let mut v = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

/// (passed, failed, skipped); errors count as failed.
pub fn counts(results: &[SuiteResult]) -> (usize, usize, usize) {
    let n = |f: fn(Status) -> bool| results.iter().filter(|r| f(r.status())).count();
    (
        n(|s| s == Status::Pass),
        n(Status::failed),
        n(|s| s == Status::Skip),
    )
}

/// Human text for one result.
pub fn human(r: &SuiteResult, verbose: bool) -> String {
    match &r.outcome {
        Ok(o) if o.passed() => {
            let mut t = report::summary(o);
            if verbose {
                t.push('\n');
                t.push_str(&report::tracer_line(o));
                t.push_str(&report::timeline_table(&o.timeline));
                for p in &o.verdict.packets {
                    t.push_str(&format!("path of `{}`: {}\n", p.name, p.path.join(" -> ")));
                }
            }
            t
        }
        Ok(o) => format!("{}\n{}", report::summary(o), report::failure(o)),
        Err(RunError::Skipped(why)) => format!("SKIP {} ({why})", r.path.display()),
        Err(e) => format!("ERROR {}\n{}\n", r.path.display(), e.render()),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The report model of a result: what `--format json` writes, one line
/// each, and what the kernel matrix reads back from its guests.
pub fn report(r: &SuiteResult) -> ScenarioReport {
    let mut v = ScenarioReport::new(r.name(), r.path.display().to_string(), r.status());
    match &r.outcome {
        Ok(o) => {
            v.topology = crate::report::topology(&o.scenario, &o.names);
            v.timings_ms = Some(TimingsMs {
                setup: ms(o.timings.setup),
                attach: ms(o.timings.attach),
                inject_to_verdict: ms(o.timings.inject_to_verdict),
                teardown: ms(o.timings.teardown),
            });
            v.packets.clone_from(&o.verdict.packets);
            v.counters.clone_from(&o.verdict.counters);
            v.trace_problems.clone_from(&o.verdict.trace_problems);
            v.teardown_problems.clone_from(&o.teardown_problems);
            v.lost_events = o.timeline.lost;
            v.unchecked.clone_from(&o.unchecked);
            v.tracer = Some(TracerReport {
                backend: o.backend.into(),
                hooks: o.hooks.iter().map(|h| (*h).to_string()).collect(),
                skipped_hooks: o
                    .skipped_hooks
                    .iter()
                    .map(|h| SkippedHookReport {
                        hook: h.hook.name().into(),
                        why: h.why.to_string(),
                    })
                    .collect(),
                functions: o.functions,
                function_mechanism: o.function_mechanism,
                function_fallback: o.function_fallback.clone(),
                function_problems: o.function_problems.clone(),
                function_attach_ms: ms(o.function_attach),
            });
            v.timeline = o
                .timeline
                .steps
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect();
            v.rules = o
                .timeline
                .rules
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            v.conntrack = o
                .timeline
                .conntrack
                .iter()
                .filter_map(|t| serde_json::to_value(t).ok())
                .collect();
        }
        Err(RunError::Skipped(why)) => v.skipped = Some(why.to_string()),
        Err(e) => {
            v.error = Some(e.render());
            v.error_kind = Some(e.kind());
        }
    }
    v
}

/// One JSON line for a result ([`mod@report`] serialised).
pub fn json(r: &SuiteResult) -> String {
    serde_json::to_string(&report(r)).unwrap_or_default()
}

fn class_of(path: &Path) -> String {
    let dir = path
        .parent()
        .and_then(|p| p.file_name())
        .map_or_else(|| "scenarios".into(), |d| d.to_string_lossy().into_owned());
    format!("pktfate.{dir}")
}

/// The suite as `JUnit` XML.
pub fn junit(results: &[SuiteResult], elapsed: Duration) -> String {
    let cases = results
        .iter()
        .map(|r| {
            let (time, message, detail) = match &r.outcome {
                Ok(o) => {
                    let t = o.timings;
                    // The first thing that failed, in the order the
                    // failure text lists them.
                    let v = &o.verdict;
                    let first = v
                        .packets
                        .iter()
                        .flat_map(|p| p.mismatches.iter())
                        .chain(&v.counters)
                        .map(|m| format!("{}: expected {}, got {}", m.what, m.expected, m.actual))
                        .chain(v.trace_problems.iter().map(|t| format!("trace: {t}")))
                        .chain(o.teardown_problems.iter().map(|t| format!("teardown: {t}")))
                        .next()
                        .unwrap_or_default();
                    (
                        Some(t.setup + t.attach + t.inject_to_verdict + t.teardown),
                        first,
                        (!o.passed()).then(|| report::failure(o)),
                    )
                }
                Err(RunError::Skipped(why)) => (None, why.to_string(), None),
                Err(e) => (
                    None,
                    e.to_string().lines().next().unwrap_or("").to_string(),
                    Some(e.render()),
                ),
            };
            junit::Case {
                name: r.name(),
                classname: class_of(&r.path),
                file: Some(r.path.display().to_string()),
                time,
                status: r.status(),
                message,
                detail,
            }
        })
        .collect();
    junit::write(
        "pktfate",
        Some(elapsed),
        &[junit::Suite {
            name: "pktfate".into(),
            time: Some(elapsed),
            cases,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_default_to_two_per_cpu_within_the_tracers_banks() {
        assert_eq!(default_jobs(None, 1), 2);
        assert_eq!(default_jobs(None, 2), 4);
        assert_eq!(default_jobs(None, 64), 16);
        assert_eq!(default_jobs(Some(0), 2), 1);
        assert_eq!(default_jobs(Some(3), 2), 3);
        assert_eq!(default_jobs(Some(100), 2), 16);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(jobs(None), (2 * cpus).min(16));
    }

    /// Whether a namespace of this inode is still named under /run/netns
    /// by this process.
    fn still_named(inode: u32) -> bool {
        crate::topology::teardown::live().iter().any(|n| {
            crate::topology::netns::inode(&Path::new("/run/netns").join(n)).ok() == Some(inode)
        })
    }

    #[test]
    fn a_suites_namespaces_are_deleted_together_after_its_last_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tun-syn");
        let files = [
            root.join("01-bad-ip-checksum.yaml"),
            root.join("04-no-socket.yaml"),
        ];
        let (cfg, _) = runner::RunConfig::from_vars(|_| None);
        // Each scenario's namespaces, and whether they were still there
        // when its result was reported (after its teardown).
        let reported: Mutex<Vec<(Vec<u32>, bool)>> = Mutex::new(vec![]);
        let results = run_all(&files, 1, &cfg, |r| {
            let o = r.outcome.as_ref().expect("the scenario runs");
            let inodes: Vec<u32> = o.names.netns.keys().copied().collect();
            let held = !inodes.is_empty() && inodes.iter().all(|i| still_named(*i));
            reported.lock().unwrap().push((inodes, held));
        });
        assert!(results.iter().all(|r| r.status() == Status::Pass));
        let reported = reported.into_inner().unwrap();
        assert_eq!(reported.len(), 2);
        for (inodes, held) in &reported {
            assert!(
                held,
                "torn down, but its namespaces {inodes:?} wait for the suite's end"
            );
            assert!(
                !inodes.iter().any(|i| still_named(*i)),
                "the suite deleted its namespaces at its end"
            );
        }
    }

    #[test]
    fn the_costliest_scenarios_start_first_and_broken_files_before_them() {
        // Files 0..5: cheap, unloadable, costly, cheap, middling.
        let order = schedule(&[Some(10), None, Some(300), Some(10), Some(40)]);
        assert_eq!(order, [1, 2, 4, 0, 3]);
    }

    #[test]
    fn cheaper_scenarios_run_at_a_lower_priority_in_proportion() {
        // The costliest at the top; 1.25x cheaper one step below, 10x
        // cheaper ten (ln 10 / ln 1.25 = 10.3), never more.
        assert_eq!(nice_offset(250, 250), 0);
        assert_eq!(nice_offset(250, 200), 1);
        assert_eq!(nice_offset(250, 25), 10);
        assert_eq!(nice_offset(250, 1), MAX_NICE_OFFSET);
        assert_eq!(nice_offset(250, 0), MAX_NICE_OFFSET);
        // Against the costliest scenario not judged yet: once it is, the
        // cheap ones are not lowered any more; unloadable files count not.
        let u = Unjudged::new(&[Some(250), None, Some(25), Some(25)]);
        assert_eq!(u.offset(25), 10);
        assert_eq!(u.offset(250), 0);
        u.judged(250);
        assert_eq!(u.offset(25), 0);
        u.judged(25);
        u.judged(25);
        assert_eq!(u.offset(7), 0, "nothing left to yield to");
    }

    #[test]
    fn a_cheap_scenario_and_what_it_runs_yield_the_cpu_to_a_costly_one() {
        // Two scenarios whose `run` steps write the nice value they ran at:
        // the costly one (more steps) at the process's own, the cheap one
        // below it.
        let dir = tempfile::tempdir().expect("a private directory");
        let scenario = |name: &str, steps: usize| {
            let out = dir.path().join(name);
            let mut run = format!("      - nice > {}\n", out.display());
            // Each step counts in the expected cost; a pause keeps the
            // costly one unjudged however late the cheap one's worker
            // starts on a loaded machine.
            run.push_str(&"      - sleep 0.05\n".repeat(steps));
            let text = format!(
                "description: records its nice value\n\
                 namespaces:\n  host:\n    links:\n      - {{ name: tun0, kind: tun }}\n\
                 \x20   addresses:\n      - {{ dev: tun0, addr: 192.0.2.10/24 }}\n\
                 \x20   run:\n{run}\
                 inject:\n  via: host/tun0\n  ipv4: {{ src: 192.0.2.1, dst: 192.0.2.10 }}\n\
                 \x20 tcp: {{ sport: 41626, dport: 10001, flags: [syn] }}\n\
                 expect:\n  fate: dropped\n"
            );
            let file = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&file, text).expect("written");
            (file, out)
        };
        let (costly, costly_out) = scenario("costly", 4);
        let (cheap, cheap_out) = scenario("cheap", 0);
        let (cfg, _) = runner::RunConfig::from_vars(|_| None);
        let results = run_all(&[cheap, costly], 2, &cfg, |_| {});
        for r in &results {
            assert_eq!(r.status(), Status::Pass, "{}", human(r, false));
        }
        let read = |p: &Path| -> i32 {
            let t = std::fs::read_to_string(p).expect("the step ran");
            t.trim().parse().expect("a number")
        };
        let base = thread_nice();
        assert_eq!(
            read(&costly_out),
            base,
            "the costliest keeps the process's priority"
        );
        assert!(
            read(&cheap_out) > base,
            "the cheap one ran at {} (the process at {base})",
            read(&cheap_out)
        );
    }

    #[test]
    fn plugins_cost_more_than_xdp_which_costs_more_than_tun_and_veth() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cost =
            |f: &str| expected_cost(&Scenario::load(&root.join("scenarios").join(f)).expect(f));
        // Two pods' bridge and portmap plugins, ADD and DEL.
        let cni = cost("cni/bridge-pod-to-pod.yaml");
        // One XDP program on a veth pair.
        let xdp = cost("xdp/user-object-blocks-udp-port.yaml");
        // One namespace, a tun device, nothing run.
        let tun = cost("tun-syn/01-bad-ip-checksum.yaml");
        assert!(cni > xdp && xdp > tun, "cni {cni}, xdp {xdp}, tun {tun}");
    }
}
