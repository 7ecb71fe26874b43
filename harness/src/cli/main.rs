//! The `pktfate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pktfate::{report, runner, runner::suite, scenario::Scenario};

/// Scenario-driven regression tests for the Linux network stack.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios (files, or directories searched for *.yaml) and report.
    Run {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only scenarios whose name or path matches this regex.
        #[arg(long)]
        filter: Option<String>,
        /// Scenarios run at once, each in its own namespaces, all served
        /// by one loaded tracer (default: the number of CPUs, at most 16).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Report format: human text, JSON lines (one object per
        /// scenario), or JUnit XML.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Also write every traced packet as pcapng (readable by tshark and
        /// Wireshark; each packet's comment names its step, namespace and
        /// device).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Print the timeline and path of passing scenarios too.
        #[arg(short, long)]
        verbose: bool,
        /// Keep a failing scenario's namespaces up and print how to enter
        /// them (`ip netns exec` / `nsenter`); on a terminal, Enter tears
        /// them down, otherwise the next run does. Also
        /// PKTFATE_PAUSE_ON_FAIL=1, which works under `cargo test` too.
        #[arg(long)]
        keep: bool,
        /// Directories (colon-separated) holding CNI plugins, for scenarios
        /// with `cni:` (default: CNI_PATH, else
        /// /opt/cni/bin:/usr/lib/cni:/usr/libexec/cni).
        #[arg(long, value_name = "DIRS")]
        cni_path: Option<String>,
        /// Tracer backend: tracepoints, plus kprobes on every function
        /// taking an skb where a scenario requires functions (auto); or
        /// always (kprobe); or never (tracepoint).
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Fail a scenario whose trace exceeds this many events (bounds
        /// memory; default 20000, or PKTFATE_MAX_EVENTS).
        #[arg(long)]
        max_events: Option<usize>,
        /// Let scenarios read files under DIR too (repeatable); by default
        /// only files of the scenario's own project.
        #[arg(long = "allow-path", value_name = "DIR")]
        allow_path: Vec<PathBuf>,
        /// Refuse scenarios that run host commands (`run:`, tc `command:`),
        /// e.g. when reviewing an untrusted pull request.
        #[arg(long)]
        no_commands: bool,
    },
    /// Validate scenario files without running them (no root needed).
    Check {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Let scenarios read files under DIR too (repeatable); by default
        /// only files of the scenario's own project.
        #[arg(long = "allow-path", value_name = "DIR")]
        allow_path: Vec<PathBuf>,
        /// Refuse scenarios that run host commands (`run:`, tc `command:`),
        /// e.g. when reviewing an untrusted pull request.
        #[arg(long)]
        no_commands: bool,
    },
    /// List the running kernel's drop reasons (from BTF).
    Reasons,
    /// What this kernel gives the tracer: hooks and the program variant
    /// each needs, skipped hooks and why, drop reasons, kprobes,
    /// kprobe-multi, fentry, modules.
    Doctor {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Trace live, like pwru: every event of matching packets (both
    /// directions) in the chosen namespaces, until Ctrl-C.
    Trace {
        /// Namespaces to watch, by `ip netns` name (repeatable); all when absent.
        #[arg(long = "netns")]
        netns: Vec<String>,
        /// Only events on this device.
        #[arg(long)]
        dev: Option<String>,
        /// tcp, udp, icmp, icmp6 or a protocol number.
        #[arg(long)]
        proto: Option<String>,
        /// Source address (replies are matched too).
        #[arg(long)]
        src: Option<std::net::IpAddr>,
        /// Destination address.
        #[arg(long)]
        dst: Option<std::net::IpAddr>,
        /// Source port.
        #[arg(long)]
        sport: Option<u16>,
        /// Destination port.
        #[arg(long)]
        dport: Option<u16>,
        /// Only skbs with this mark.
        #[arg(long)]
        mark: Option<u32>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Print the kernel stack of each event.
        #[arg(long)]
        stacks: bool,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Also write the traced packets as pcapng.
        #[arg(long)]
        pcap: Option<PathBuf>,
    },
    /// Run the suite on other kernels, each booted in a VM (virtme-ng), and
    /// print a scenario x kernel table. Kernels are Debian packages
    /// (downloaded and cached) or paths to a vmlinuz.
    Matrix {
        /// A kernel version (5.10, 6.1, 6.12, 6.16 ... 6.19) or a vmlinuz
        /// path; repeatable.
        #[arg(long = "kernel", required = true)]
        kernels: Vec<String>,
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only scenarios whose name or path matches this regex.
        #[arg(long)]
        filter: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Hardware virtualisation: auto (KVM when /dev/kvm works, else
        /// emulation), on, off.
        #[arg(long, default_value = "auto")]
        kvm: String,
        /// Give up on a guest after this many seconds.
        #[arg(long, default_value_t = 1200)]
        timeout: u64,
        /// Tracer backend inside the guests (as for `run`).
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
    },
    /// Run a scenario and write what it observed into its `expect` blocks,
    /// showing the difference first.
    Record {
        /// The scenario file.
        scenario: PathBuf,
        /// Only check: fail if recording would change the file.
        #[arg(long)]
        check: bool,
        /// Keep the expectations as written and add, under `kernels:`, an
        /// entry for this kernel's version with what differs here (fate,
        /// reason, dropping function).
        #[arg(long)]
        kernel: bool,
    },
}

/// Tracer backends (`--backend`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    /// Tracepoints; kprobes too for scenarios requiring functions.
    Auto,
    /// Tracepoints only.
    Tracepoint,
    /// Tracepoints and kprobes on every function taking an skb.
    Kprobe,
}

impl BackendArg {
    fn choice(self) -> pktfate::tracer::BackendChoice {
        use pktfate::tracer::BackendChoice;
        match self {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Tracepoint => BackendChoice::Tracepoint,
            BackendArg::Kprobe => BackendChoice::Kprobe,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BackendArg::Auto => "auto",
            BackendArg::Tracepoint => "tracepoint",
            BackendArg::Kprobe => "kprobe",
        }
    }
}

/// Report formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Text for people.
    Human,
    /// One JSON object per scenario, one per line.
    Json,
    /// JUnit XML for CI systems.
    Junit,
}

fn main() -> ExitCode {
    // One malloc arena: pktfate's many short-lived helper threads (one per
    // namespace operation) would each get an arena of their own, which
    // kept ~25 MiB of a suite's peak RSS for nothing.
    // SAFETY: called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Run { .. } | Cmd::Record { .. }) {
        // From the start, so a signal at any moment exits 128 + signal
        // and removes whatever namespaces exist by then.
        pktfate::topology::teardown::install_interrupt_handler();
    }
    match cli.cmd {
        Cmd::Run {
            paths,
            filter,
            jobs,
            format,
            output,
            pcap,
            verbose,
            keep,
            cni_path,
            backend,
            max_events,
            allow_path,
            no_commands,
        } => {
            runner::set_keep_on_failure(keep);
            if let Some(p) = &cni_path {
                pktfate::topology::set_cni_path(p);
            }
            if let Err(code) = file_policy(&allow_path, no_commands) {
                return code;
            }
            if let Some(n) = max_events {
                pktfate::collect::set_max_events(n);
            }
            if backend == BackendArg::Kprobe && !pktfate::tracer::kprobes_available() {
                eprintln!(
                    "error: --backend kprobe: this kernel has no kprobes (no /sys/bus/event_source/devices/kprobe)\n  hint: use --backend auto (tracepoints; `pktfate doctor` shows what this kernel offers)"
                );
                return ExitCode::from(2);
            }
            runner::set_backend(backend.choice());
            cmd_run(
                &paths,
                filter.as_deref(),
                jobs,
                format,
                output.as_ref(),
                pcap.as_ref(),
                verbose,
            )
        }
        Cmd::Check {
            paths,
            allow_path,
            no_commands,
        } => match file_policy(&allow_path, no_commands) {
            Ok(()) => cmd_check(&paths),
            Err(code) => code,
        },
        Cmd::Reasons => cmd_reasons(),
        Cmd::Matrix {
            kernels,
            paths,
            filter,
            format,
            output,
            kvm,
            timeout,
            backend,
        } => {
            let mut paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            paths.extend(["--backend".to_string(), backend.name().to_string()]);
            cmd_matrix(kernels, paths, filter, format, output, &kvm, timeout)
        }
        Cmd::Doctor { json } => {
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
        Cmd::Record {
            scenario,
            check,
            kernel,
        } => cmd_record(&scenario, check, kernel),
        Cmd::Trace {
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
        } => {
            let filter =
                match pktfate::tools::live::selector(proto.as_deref(), src, dst, sport, dport) {
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
    }
}

/// Applies `--allow-path` and `--no-commands`.
fn file_policy(allow: &[PathBuf], no_commands: bool) -> Result<(), ExitCode> {
    for d in allow {
        if let Err(e) = pktfate::scenario::project::allow(d) {
            eprintln!("error: --allow-path {}: {e}", d.display());
            return Err(ExitCode::from(2));
        }
    }
    pktfate::scenario::project::set_no_commands(no_commands);
    Ok(())
}

/// Writes steps as pcapng and says how many packets went in.
fn write_pcap(path: &PathBuf, runs: &[(&str, &[pktfate::collect::Step])]) -> Result<(), ExitCode> {
    let written = std::fs::File::create(path).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        let n = pktfate::report::pcap::write(&mut w, runs)?;
        std::io::Write::flush(&mut w)?;
        Ok(n)
    });
    match written {
        Ok(n) => {
            eprintln!("wrote {n} packets to {}", path.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            Err(ExitCode::from(2))
        }
    }
}

fn cmd_trace(o: &pktfate::tools::live::LiveOptions, pcap: Option<&PathBuf>) -> ExitCode {
    if let Err(e) = pktfate::runner::preflight::check() {
        eprintln!("error: {e}\n  hint: {}", e.hint());
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    let steps = match pktfate::tools::live::run(o, &mut stdout.lock()) {
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
    let recorded = if kernel {
        pktfate::tools::record::record_kernel(path)
    } else {
        pktfate::tools::record::record(path)
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
    if report::colour_wanted() {
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

/// Prints human output, coloured on a terminal unless NO_COLOR is set.
/// Prints a report line. A closed pipe (`| head`) must not panic the run
/// in the middle of a scenario: its namespaces still have to go.
fn say(text: &str) {
    use std::io::Write;
    let line = if report::colour_wanted() {
        report::colourize(text)
    } else {
        text.to_string()
    };
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn cmd_run(
    paths: &[PathBuf],
    filter: Option<&str>,
    jobs: Option<usize>,
    format: Format,
    output: Option<&PathBuf>,
    pcap: Option<&PathBuf>,
    verbose: bool,
) -> ExitCode {
    let files = match runner::discover(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let re = match filter.map(regex::Regex::new).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --filter: {e}");
            return ExitCode::from(2);
        }
    };
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| {
            re.as_ref()
                .is_none_or(|re| re.is_match(&f.to_string_lossy()))
        })
        .collect();
    let swept = pktfate::topology::teardown::sweep_stale();
    if !swept.is_empty() {
        eprintln!(
            "removed {} namespace(s) left by an earlier run (it died, or kept them with --keep): {}",
            swept.len(),
            swept.join(", ")
        );
    }
    // The verifier works through the tracer's programs while the first
    // scenarios build their namespaces (as root only: otherwise the runner
    // says so first).
    // SAFETY: geteuid has no preconditions.
    if !files.is_empty() && unsafe { libc::geteuid() } == 0 {
        pktfate::tracer::shared::preload();
    }
    let started = std::time::Instant::now();
    let human = format == Format::Human && output.is_none();
    let results = suite::run_all(&files, suite::jobs(jobs), |r| {
        // People see each scenario as it finishes.
        if human {
            say(&suite::human(r, verbose));
        }
    });
    let elapsed = started.elapsed();
    if let Some(p) = pcap {
        let runs: Vec<(String, &[pktfate::collect::Step])> = results
            .iter()
            .filter_map(|r| {
                r.outcome
                    .as_ref()
                    .ok()
                    .map(|o| (o.scenario.name.clone(), o.timeline.steps.as_slice()))
            })
            .collect();
        let refs: Vec<(&str, &[pktfate::collect::Step])> =
            runs.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        if let Err(code) = write_pcap(p, &refs) {
            return code;
        }
    }
    let (passed, failed, skipped) = suite::counts(&results);
    let text = match format {
        Format::Human => results
            .iter()
            .map(|r| suite::human(r, verbose))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => {
            results
                .iter()
                .map(|r| suite::json(r).to_string())
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        Format::Junit => suite::junit(&results, elapsed),
    };
    let closing = format!(
        "pktfate: {passed} passed, {failed} failed, {skipped} skipped in {:.1}s",
        elapsed.as_secs_f64()
    );
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
            say(&closing);
        }
        None if human => say(&format!("\n{closing}")),
        None => {
            use std::io::Write;
            let _ = write!(std::io::stdout(), "{text}");
            eprintln!("{closing}");
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cmd_check(paths: &[PathBuf]) -> ExitCode {
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
        let result = Scenario::load(f).map(|mut s| {
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

fn cmd_reasons() -> ExitCode {
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

fn cmd_matrix(
    kernels: Vec<String>,
    mut run_args: Vec<String>,
    filter: Option<String>,
    format: Format,
    output: Option<PathBuf>,
    kvm: &str,
    timeout: u64,
) -> ExitCode {
    use pktfate::tools::matrix;
    let kvm = match kvm {
        "auto" => None,
        "on" => Some(true),
        "off" => Some(false),
        other => {
            eprintln!("--kvm {other}: write auto, on or off");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = filter {
        run_args.push("--filter".into());
        run_args.push(f);
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the action only stores to an atomic, which is
        // async-signal-safe.
        let _ = unsafe {
            signal_hook::low_level::register(sig, || {
                matrix::vm::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
    }
    let opts = matrix::MatrixOptions {
        kernels,
        run_args,
        kvm,
        timeout: std::time::Duration::from_secs(timeout),
        cache: matrix::kernels::cache_dir(),
    };
    let results = match matrix::run(&opts, &mut |m| eprintln!("[matrix] {m}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pktfate matrix: {}", e.render());
            return ExitCode::from(2);
        }
    };
    let text = match format {
        Format::Human => matrix::human(&results),
        Format::Json => serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
        Format::Junit => matrix::junit(&results),
    };
    match output {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, &text) {
                eprintln!("pktfate matrix: {}: {e}", p.display());
                return ExitCode::from(2);
            }
            // The table on the terminal too when the report goes to a file.
            if format != Format::Human {
                eprint!("{}", matrix::human(&results));
            }
        }
        None => print!("{text}"),
    }
    if !results.is_empty() && results.iter().all(matrix::KernelResult::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
