//! What the command line takes: subcommands and their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Scenario-driven regression tests for the Linux network stack.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run scenarios (files, or directories searched for *.yaml) and report.
    Run(RunArgs),
    /// Validate scenario files without running them (no root needed).
    Check(CheckArgs),
    /// List the running kernel's drop reasons (from BTF).
    Reasons,
    /// What this kernel gives the tracer: hooks and the program variant
    /// each needs, skipped hooks and why, drop reasons, kprobes,
    /// kprobe-multi, fentry, modules; and the nft, iptables, ip and tc
    /// that PATH finds, with their versions.
    Doctor(DoctorArgs),
    /// Trace live, like pwru: every event of matching packets (both
    /// directions) in the chosen namespaces, until Ctrl-C.
    Trace(TraceArgs),
    /// Run the suite on other kernels, each booted in a VM (virtme-ng), and
    /// print a scenario x kernel table. Kernels are Debian packages
    /// (downloaded and cached) or paths to a vmlinuz.
    Matrix(MatrixArgs),
    /// Combine the JSON reports of `matrix --shard K/N` runs (one per CI
    /// job) into one table, JSON or JUnit report and exit status.
    Merge(MergeArgs),
    /// Run a scenario and write what it observed into its `expect` blocks,
    /// showing the difference first.
    Record(RecordArgs),
}

// Arguments of `pktfate run` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose name or path matches this regex.
    #[arg(long)]
    pub filter: Option<String>,
    /// Scenarios run at once, each in its own namespaces, all served
    /// by one loaded tracer (default: two per CPU, at most 16).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Report format: human text, JSON lines (one object per
    /// scenario), or JUnit XML.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also write every traced packet as pcapng (readable by tshark and
    /// Wireshark; each packet's comment names its step, namespace and
    /// device).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Print the timeline and path of passing scenarios too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Keep a failing scenario's namespaces up and print how to enter
    /// them (`ip netns exec` / `nsenter`); on a terminal, Enter tears
    /// them down, otherwise the next run does. Also
    /// PKTFATE_PAUSE_ON_FAIL=1, which works under `cargo test` too.
    #[arg(long)]
    pub keep: bool,
    /// Directories (colon-separated) holding CNI plugins, for scenarios
    /// with `cni:` (default: CNI_PATH, else
    /// /opt/cni/bin:/usr/lib/cni:/usr/libexec/cni).
    #[arg(long, value_name = "DIRS")]
    pub cni_path: Option<String>,
    /// Tracer backend: tracepoints, plus kprobes on every function
    /// taking an skb where a scenario requires functions (auto); or
    /// always (kprobe); or never (tracepoint). Functions are probed
    /// through kprobe-multi links where the kernel has them, else by
    /// plain kprobes (the reason shows in -v).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Fail a scenario whose trace exceeds this many events (bounds
    /// memory; default 20000, or PKTFATE_MAX_EVENTS).
    #[arg(long)]
    pub max_events: Option<usize>,
    /// Let scenarios read files under DIR too (repeatable); by default
    /// only files of the scenario's own project.
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_path: Vec<PathBuf>,
    /// Refuse scenarios that run host commands (`run:`, tc `command:`),
    /// e.g. when reviewing an untrusted pull request.
    #[arg(long)]
    pub no_commands: bool,
}

// Arguments of `pktfate check` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Scenario files or directories.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Let scenarios read files under DIR too (repeatable); by default
    /// only files of the scenario's own project.
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_path: Vec<PathBuf>,
    /// Refuse scenarios that run host commands (`run:`, tc `command:`),
    /// e.g. when reviewing an untrusted pull request.
    #[arg(long)]
    pub no_commands: bool,
}

// Arguments of `pktfate doctor` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

// Arguments of `pktfate trace` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct TraceArgs {
    /// Namespaces to watch, by `ip netns` name (repeatable); all when absent.
    #[arg(long = "netns")]
    pub netns: Vec<String>,
    /// Only events on this device.
    #[arg(long)]
    pub dev: Option<String>,
    /// tcp, udp, icmp, icmp6 or a protocol number.
    #[arg(long)]
    pub proto: Option<String>,
    /// Source address (replies are matched too).
    #[arg(long)]
    pub src: Option<std::net::IpAddr>,
    /// Destination address.
    #[arg(long)]
    pub dst: Option<std::net::IpAddr>,
    /// Source port.
    #[arg(long)]
    pub sport: Option<u16>,
    /// Destination port.
    #[arg(long)]
    pub dport: Option<u16>,
    /// Only skbs with this mark.
    #[arg(long)]
    pub mark: Option<u32>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the kernel stack of each event.
    #[arg(long)]
    pub stacks: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<usize>,
    /// Also write the traced packets as pcapng.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
}

// Arguments of `pktfate matrix` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct MatrixArgs {
    /// A kernel version (5.10, 6.1, 6.12, 6.16 and later, as Debian's archive has them), a vmlinuz path
    /// or a kernel build directory (after `make`); repeatable.
    #[arg(long = "kernel", required = true)]
    pub kernels: Vec<String>,
    /// Scenario files or directories.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose name or path matches this regex.
    #[arg(long)]
    pub filter: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Hardware virtualisation: auto (KVM when a test guest runs through
    /// /dev/kvm, decided before booting; else emulation), on, off.
    #[arg(long, value_enum, default_value_t = KvmArg::Auto)]
    pub kvm: KvmArg,
    /// Give up on a guest after this many seconds (default: a boot's
    /// worth plus each scenario's worth, longer under emulation).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Guests booted at once (default: as many as the cores and memory
    /// hold, 2 vCPUs and 2.5 GiB each; 1 on a 2-core machine).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Run only shard K of N of the (kernel, scenario) pairs (for a CI
    /// job matrix; `pktfate merge` combines the shards' JSON reports).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<pktfate::tools::matrix::shard::Shard>,
    /// Tracer backend inside the guests (as for `run`).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Only download and unpack the kernels into the cache, then exit
    /// (a CI cache step, or fetching while something else builds).
    /// Takes no scenario, shard or report option: it runs nothing.
    #[arg(long, conflicts_with_all = [
        "paths", "filter", "format", "output", "kvm", "timeout", "jobs", "shard", "backend",
    ])]
    pub fetch_only: bool,
}

// Arguments of `pktfate merge` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shards' reports (`pktfate matrix --shard K/N --format json`).
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

// Arguments of `pktfate record` (no doc comment: clap would take it over the
// subcommand's own help text).
#[derive(clap::Args)]
pub struct RecordArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Only check: fail if recording would change the file.
    #[arg(long)]
    pub check: bool,
    /// Keep the expectations as written and add, under `kernels:`, an
    /// entry for this kernel's version with what differs here (fate,
    /// reason, dropping function).
    #[arg(long)]
    pub kernel: bool,
}

/// `--kvm`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KvmArg {
    /// KVM when a test guest runs through /dev/kvm, else emulation.
    Auto,
    /// Always KVM.
    On,
    /// Always TCG emulation.
    Off,
}

impl KvmArg {
    /// `MatrixOptions::kvm`.
    pub fn choice(self) -> Option<bool> {
        match self {
            KvmArg::Auto => None,
            KvmArg::On => Some(true),
            KvmArg::Off => Some(false),
        }
    }
}

/// Tracer backends (`--backend`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Tracepoints; kprobes too for scenarios requiring functions.
    Auto,
    /// Tracepoints only.
    Tracepoint,
    /// Tracepoints and kprobes (kprobe-multi where the kernel links it)
    /// on every function taking an skb.
    Kprobe,
    /// Tracepoints and an fentry program on each function of the default
    /// set (for kernels without kprobes; one verifier pass per function).
    Fentry,
}

impl BackendArg {
    pub fn choice(self) -> pktfate::tracer::BackendChoice {
        use pktfate::tracer::BackendChoice;
        match self {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Tracepoint => BackendChoice::Tracepoint,
            BackendArg::Kprobe => BackendChoice::Kprobe,
            BackendArg::Fentry => BackendChoice::Fentry,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendArg::Auto => "auto",
            BackendArg::Tracepoint => "tracepoint",
            BackendArg::Kprobe => "kprobe",
            BackendArg::Fentry => "fentry",
        }
    }
}

/// Report formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for people.
    Human,
    /// One JSON object per scenario, one per line.
    Json,
    /// JUnit XML for CI systems.
    Junit,
    /// One self-contained HTML page (drawings, timelines; the matrix as a
    /// kernel x scenario grid).
    Html,
}
