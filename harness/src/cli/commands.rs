//! The subcommands other than `run`: check, reasons, doctor, trace,
//! matrix and record.

use std::path::PathBuf;
use std::process::ExitCode;

use pktfate::{runner, scenario::Scenario};

use crate::args::{DoctorArgs, Format, MatrixArgs, MergeArgs, RecordArgs, TraceArgs};
use crate::output::{say, write_pcap};

/// `pktfate doctor`.
pub fn doctor(a: &DoctorArgs) -> ExitCode {
    let json = a.json;
    let d = pktfate::tools::doctor::examine();
    if json {
        println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
    } else {
        print!("{}", d.human());
    }
    if d.tracer_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `pktfate record`.
pub fn record(a: &RecordArgs) -> ExitCode {
    cmd_record(&a.scenario, a.check, a.kernel)
}

/// `pktfate trace`.
pub fn trace(a: TraceArgs) -> ExitCode {
    let TraceArgs {
        netns,
        dev,
        proto,
        src,
        dst,
        sport,
        dport,
        mark,
        json,
        stacks,
        duration,
        count,
        pcap,
    } = a;
    let filter = match pktfate::tools::live::selector(proto.as_deref(), src, dst, sport, dport) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let o = pktfate::tools::live::LiveOptions {
        netns,
        dev,
        filter,
        mark,
        json,
        stacks,
        duration: duration.map(std::time::Duration::from_secs_f64),
        count,
    };
    cmd_trace(&o, pcap.as_ref())
}

/// On SIGINT, SIGTERM or SIGHUP (as `pktfate run`): guests are told to
/// stop, and the tools running (apt-get, dpkg-deb) are killed with what
/// they started, so neither a guest nor a download outlives the run.
/// Returns where the signal's number is kept, for the exit status.
fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicI32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::atomic::Ordering;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let seen = got.clone();
    // A thread, not a handler: killing the tools takes a lock.
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        let _ = std::thread::Builder::new()
            .name("pktfate-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    seen.store(sig, Ordering::SeqCst);
                    pktfate::tools::matrix::vm::INTERRUPTED.store(true, Ordering::SeqCst);
                    pktfate::common::process::stop_all();
                }
            });
    }
    got
}

/// The exit for a run a signal cut short (128 + the signal, as a shell
/// reports it), if one did.
fn interrupted(got: &std::sync::atomic::AtomicI32) -> Option<ExitCode> {
    let sig = got.load(std::sync::atomic::Ordering::SeqCst);
    (sig != 0).then(|| {
        eprintln!(
            "pktfate matrix: stopped by signal {sig}; no guest or download outlives it, kernels fetched before it stay cached, none half-fetched"
        );
        ExitCode::from(u8::try_from(128 + sig).unwrap_or(255))
    })
}

/// `pktfate matrix --fetch-only`: each kernel resolved into the cache.
fn fetch_kernels(kernels: &[String]) -> ExitCode {
    use pktfate::tools::matrix;
    let got = stop_on_signals();
    let cache = matrix::kernels::cache_dir();
    for spec in kernels {
        let resolved = matrix::kernels::resolve(spec, &cache);
        if let Some(code) = interrupted(&got) {
            return code;
        }
        match resolved {
            Ok(k) => eprintln!(
                "[matrix] kernel {spec}: {} ready ({})",
                k.release,
                k.vmlinuz.display()
            ),
            Err(e) => {
                eprintln!("pktfate matrix: {}", e.render());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `pktfate matrix`.
pub fn matrix(a: MatrixArgs) -> ExitCode {
    use pktfate::tools::matrix;
    let MatrixArgs {
        kernels,
        paths,
        filter,
        format,
        output,
        kvm,
        timeout,
        jobs,
        shard,
        backend,
        fetch_only,
    } = a;
    if fetch_only {
        return fetch_kernels(&kernels);
    }
    let scenarios = match crate::run::scenario_files(&paths, filter.as_deref()) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if scenarios.is_empty() {
        eprintln!(
            "pktfate matrix: no scenario files under the paths given (or none match --filter)"
        );
        return ExitCode::from(2);
    }
    let opts = matrix::MatrixOptions {
        kernels,
        scenarios,
        guest_args: vec!["--backend".into(), backend.name().into()],
        shard,
        kvm: kvm.choice(),
        timeout: timeout.map(std::time::Duration::from_secs),
        cache: matrix::kernels::cache_dir(),
        jobs: jobs.unwrap_or_else(matrix::default_jobs),
        // As the run's config reads it (`CNI_PATH`, else the usual dirs).
        cni_path: pktfate::runner::RunConfig::from_env().0.cni_path,
    };
    let got = stop_on_signals();
    let results = match matrix::run(&opts, &|m| eprintln!("[matrix] {m}")) {
        Ok(r) => r,
        Err(e) => {
            // A download the signal stopped is no failure of its own.
            if let Some(code) = interrupted(&got) {
                return code;
            }
            eprintln!("pktfate matrix: {}", e.render());
            return ExitCode::from(2);
        }
    };
    let report = matrix::merge::MatrixReport {
        pktfate: env!("CARGO_PKG_VERSION").into(),
        kernels: opts.kernels.clone(),
        scenarios: opts
            .scenarios
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        shard: opts.shard,
        results,
    };
    // What finished is reported either way (a stopped guest as
    // `interrupted`); the exit says the run was stopped, as `run`'s does.
    let code = write_matrix(&report, format, output.as_ref(), "matrix");
    interrupted(&got).unwrap_or(code)
}

/// `pktfate merge`.
pub fn merge(a: &MergeArgs) -> ExitCode {
    use pktfate::tools::matrix::merge;
    let mut reports = vec![];
    for p in &a.reports {
        let name = p.display().to_string();
        let read = std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_json::from_str::<merge::MatrixReport>(&t).map_err(|e| e.to_string())
            });
        match read {
            Ok(r) => reports.push((name, r)),
            Err(e) => {
                eprintln!(
                    "pktfate merge: {name}: not a matrix report ({e})\n  hint: give the files `pktfate matrix --shard K/N --format json -o FILE` wrote"
                );
                return ExitCode::from(2);
            }
        }
    }
    match merge::merge(&reports) {
        Ok(m) => write_matrix(&m, a.format, a.output.as_ref(), "merge"),
        Err(e) => {
            eprintln!("pktfate merge: {e}\n  hint: {}", e.hint());
            ExitCode::from(2)
        }
    }
}

/// A matrix report in `format`, to `output` or standard output; exit 0
/// only when it passed ([`MatrixReport::passed`]).
///
/// [`MatrixReport::passed`]: pktfate::tools::matrix::merge::MatrixReport::passed
fn write_matrix(
    report: &pktfate::tools::matrix::merge::MatrixReport,
    format: Format,
    output: Option<&PathBuf>,
    who: &str,
) -> ExitCode {
    use pktfate::tools::matrix;
    let results = &report.results;
    let text = match format {
        Format::Human => matrix::human(results),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Junit => matrix::junit(results),
        Format::Html => matrix::html::page(results, &|p| std::fs::read_to_string(p).ok()),
    };
    match output {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &text) {
                eprintln!("pktfate {who}: {}: {e}", p.display());
                return ExitCode::from(2);
            }
            // The table on the terminal too when the report goes to a file.
            if format != Format::Human {
                eprint!("{}", matrix::human(results));
            }
        }
        None => print!("{text}"),
    }
    if let Some(short) = report.shortfall() {
        eprintln!("pktfate {who}: FAILED: {short}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cmd_trace(o: &pktfate::tools::live::LiveOptions, pcap: Option<&PathBuf>) -> ExitCode {
    if let Err(e) = pktfate::runner::preflight::check() {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    // On stderr, so JSON on stdout stays clean; scripts can wait for it.
    let started = |hooks| eprintln!("# tracing {hooks} hooks; Ctrl-C to stop");
    let steps = match pktfate::tools::live::run(o, &mut stdout.lock(), started) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !o.json {
        println!("{}", pktfate::tools::live::summary(&steps));
    }
    if let Some(p) = pcap {
        if let Err(code) = write_pcap(p, &[("trace", &steps)]) {
            return code;
        }
    }
    ExitCode::SUCCESS
}

fn cmd_record(path: &std::path::Path, check: bool, kernel: bool) -> ExitCode {
    // Recording runs the scenario as `pktfate run` would, with the
    // environment's settings (PKTFATE_IDLE_MS, CNI_PATH, ...).
    let (cfg, _) = pktfate::runner::RunConfig::from_env();
    let recorded = if kernel {
        pktfate::tools::record::record_kernel(path, &cfg)
    } else {
        pktfate::tools::record::record(path, &cfg)
    };
    let r = match recorded {
        Ok(r) => r,
        Err(e) => {
            say(&format!("ERROR {}\n{}", path.display(), e.render()));
            return ExitCode::from(2);
        }
    };
    if !r.changed() {
        println!("{}: expectations are up to date", path.display());
        return ExitCode::SUCCESS;
    }
    let d = r.diff();
    if crate::output::colour_wanted() {
        let coloured: String = d
            .lines()
            .map(|l| match l.chars().next() {
                Some('-') => format!("\x1b[31m{l}\x1b[0m\n"),
                Some('+') => format!("\x1b[32m{l}\x1b[0m\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        print!("{coloured}");
    } else {
        print!("{d}");
    }
    if check {
        println!(
            "{}: recorded expectations are stale (run `pktfate record {}`)",
            path.display(),
            path.display()
        );
        return ExitCode::FAILURE;
    }
    match std::fs::write(path, &r.new) {
        Ok(()) => {
            println!("{}: recorded", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

pub fn cmd_check(paths: &[PathBuf], policy: &pktfate::scenario::FilePolicy) -> ExitCode {
    let files = match runner::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Reason names need kernel BTF, which is readable without root.
    let reasons = runner::kernel_reasons().ok();
    let mut bad = 0;
    for f in &files {
        let result = Scenario::load_with(f, policy).map(|mut s| {
            if let Some(v) = runner::kernel_version() {
                s.resolve_for_kernel(v);
            }
            s
        });
        let result = result.and_then(|mut s| match &reasons {
            Some(r) => s.check_against_kernel(r),
            None => Ok(()),
        });
        if let Err(errs) = result {
            bad += 1;
            for e in errs {
                eprintln!("{e}");
            }
        }
    }
    if reasons.is_none() {
        eprintln!("note: no kernel BTF; drop reason names were not checked");
    }
    println!("{} file(s) checked, {bad} with errors", files.len());
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub fn cmd_reasons() -> ExitCode {
    match runner::kernel_reasons() {
        Ok(r) => {
            for (v, n) in r.iter() {
                println!("{v:>4}  {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\n  hint: the kernel needs CONFIG_DEBUG_INFO_BTF=y");
            ExitCode::FAILURE
        }
    }
}
