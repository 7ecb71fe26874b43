//! A run's settings as one value: made by the CLI from its flags, or by
//! [`crate::testing`], and passed down to every stage that needs one. No
//! stage keeps an option in a global, and the environment is read here
//! alone ([`RunConfig::from_env`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which tracer mechanism a run may use (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Tracepoints, plus kprobes for scenarios that ask for functions
    /// (`requires: {functions: true}`) where the kernel has kprobes.
    #[default]
    Auto,
    /// Tracepoints only.
    Tracepoint,
    /// Tracepoints plus a kprobe on every function taking an `sk_buff`
    /// (kprobe-multi links where the kernel has them).
    Kprobe,
    /// Tracepoints plus an fentry program on each function taking an
    /// `sk_buff` (the plain-kprobe default set: one load each).
    Fentry,
}

/// What scenario files may read and run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePolicy {
    /// Refuse scenarios that run host commands (`run:`, tc `command:`),
    /// for reviewing untrusted changes (`--no-commands`).
    pub no_commands: bool,
    /// Directories outside a scenario's project whose files it may read
    /// too (`--allow-path`), canonical.
    pub allowed: Vec<PathBuf>,
}

impl FilePolicy {
    /// Lets scenarios read files under `dir` too (`--allow-path`).
    pub fn allow(&mut self, dir: &Path) -> std::io::Result<()> {
        self.allowed.push(dir.canonicalize()?);
        Ok(())
    }
}

/// Default [`Collection::max_events`]: far above any scenario's own
/// traffic (tens to hundreds of events), far below what a flood would pile
/// up in memory.
pub const DEFAULT_MAX_EVENTS: usize = 20_000;

/// Where plugins are looked up when neither `--cni-path` nor `CNI_PATH`
/// says: upstream's install dir, Debian/Ubuntu's, Fedora/RHEL's.
pub const DEFAULT_CNI_PATH: &str = "/opt/cni/bin:/usr/lib/cni:/usr/libexec/cni";

/// How long collection waits, and how much it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    /// Quiet time after which skbs still alive are given up on: some frees
    /// have no tracepoint (TCP's `__kfree_skb`), so their end is never
    /// seen; their fate is reported as unknown, never guessed. 200 ms;
    /// `pktfate matrix` guests, whose emulated CPUs run an order of
    /// magnitude slower, set 2000 (`PKTFATE_IDLE_MS`).
    pub idle: Duration,
    /// How much longer than a scenario's `timeout_ms` collection may last
    /// (1..=100; `PKTFATE_TIMEOUT_SCALE`, x4 in emulated guests).
    pub timeout_scale: u32,
    /// Events one scenario may collect before its trial fails: it bounds a
    /// run's memory whatever the kernel sends (`--max-events`,
    /// `PKTFATE_MAX_EVENTS`).
    pub max_events: usize,
}

impl Default for Collection {
    fn default() -> Self {
        Collection {
            idle: Duration::from_millis(200),
            timeout_scale: 1,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

/// What a run does when a scenario fails and its namespaces are kept up
/// (`--keep`): the CLI or the test harness tells the user how to enter
/// them, and answers whether to tear them down now (after the user looked)
/// or leave them for the next run's sweep. The library prints nothing.
pub trait KeepPrompt: Send + Sync {
    /// `commands` enter the namespaces of the failed `scenario`; `true`
    /// tears them down now.
    fn kept(&self, scenario: &str, commands: &[String]) -> bool;
}

/// The settings of one run.
#[derive(Clone, Default)]
pub struct RunConfig {
    /// The tracer mechanism (`--backend`).
    pub backend: BackendChoice,
    /// Keep a failing scenario's namespaces up, asking this prompt
    /// (`--keep`, `PKTFATE_PAUSE_ON_FAIL=1`); `None` tears them down.
    pub keep: Option<std::sync::Arc<dyn KeepPrompt>>,
    /// What scenario files may read and run.
    pub files: FilePolicy,
    /// Where CNI plugins are looked up (`--cni-path`, `CNI_PATH`).
    pub cni_path: String,
    /// Collection's waits and bounds.
    pub collection: Collection,
    /// Which kernel functions the function-level backend probes, a regular
    /// expression (`PKTFATE_FUNCTIONS`); `None`: the backend's own set.
    pub functions: Option<String>,
    /// Trace netfilter rule evaluations in the namespaces with rules
    /// (default; `PKTFATE_RULE_TRACE=0` turns it off, for `ci/bench` to
    /// measure what it costs).
    pub rule_trace: bool,
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("backend", &self.backend)
            .field("keep", &self.keep.is_some())
            .field("files", &self.files)
            .field("cni_path", &self.cni_path)
            .field("collection", &self.collection)
            .field("functions", &self.functions)
            .field("rule_trace", &self.rule_trace)
            .finish()
    }
}

/// What the environment says, as [`RunConfig::from_env`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSettings {
    /// `PKTFATE_PAUSE_ON_FAIL=1`: keep a failing scenario's namespaces.
    pub pause_on_fail: bool,
    /// `PKTFATE_SCENARIOS`: the directory [`crate::testing::main`] runs.
    pub scenarios: Option<PathBuf>,
    /// `PKTFATE_HTML`: where [`crate::testing::main`] writes the run's
    /// HTML report.
    pub html: Option<PathBuf>,
}

impl RunConfig {
    /// The defaults, with what the environment sets: the one place the
    /// library reads `PKTFATE_*` and `CNI_PATH`. Values that do not parse
    /// are ignored, as before.
    pub fn from_env() -> (Self, EnvSettings) {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`RunConfig::from_env`] over any lookup (tests give a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> (Self, EnvSettings) {
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<u64>().ok());
        let mut collection = Collection::default();
        if let Some(ms) = num("PKTFATE_IDLE_MS") {
            collection.idle = Duration::from_millis(ms);
        }
        if let Some(s) = num("PKTFATE_TIMEOUT_SCALE").filter(|s| (1..=100).contains(s)) {
            collection.timeout_scale = u32::try_from(s).unwrap_or(1);
        }
        if let Some(n) = num("PKTFATE_MAX_EVENTS") {
            collection.max_events = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        let config = RunConfig {
            backend: BackendChoice::Auto,
            keep: None,
            files: FilePolicy::default(),
            cni_path: get("CNI_PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_CNI_PATH.into()),
            collection,
            functions: get("PKTFATE_FUNCTIONS").filter(|p| !p.is_empty()),
            rule_trace: get("PKTFATE_RULE_TRACE").is_none_or(|v| v.trim() != "0"),
        };
        let env = EnvSettings {
            pause_on_fail: get("PKTFATE_PAUSE_ON_FAIL").is_some_and(|v| v == "1"),
            scenarios: get("PKTFATE_SCENARIOS")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            html: get("PKTFATE_HTML")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        };
        (config, env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> (RunConfig, EnvSettings) {
        let m: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        RunConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn the_environment_sets_what_it_names_and_nothing_else() {
        let (c, e) = from(&[]);
        assert_eq!(c.collection, Collection::default());
        assert_eq!(c.cni_path, DEFAULT_CNI_PATH);
        assert_eq!(c.functions, None);
        assert!(c.rule_trace, "rules are traced by default");
        assert_eq!(e, EnvSettings::default());
        let (c, e) = from(&[
            ("PKTFATE_IDLE_MS", "2000"),
            ("PKTFATE_TIMEOUT_SCALE", "4"),
            ("PKTFATE_MAX_EVENTS", "0"),
            ("CNI_PATH", "/x/cni"),
            ("PKTFATE_FUNCTIONS", "^ip_"),
            ("PKTFATE_PAUSE_ON_FAIL", "1"),
            ("PKTFATE_SCENARIOS", "/s"),
            ("PKTFATE_RULE_TRACE", "0"),
            ("PKTFATE_HTML", "out/report.html"),
        ]);
        assert_eq!(c.collection.idle, Duration::from_secs(2));
        assert_eq!(c.collection.timeout_scale, 4);
        // A cap of 0 would fail every scenario: at least one event.
        assert_eq!(c.collection.max_events, 1);
        assert_eq!(c.cni_path, "/x/cni");
        assert_eq!(c.functions.as_deref(), Some("^ip_"));
        assert!(!c.rule_trace);
        assert!(e.pause_on_fail);
        assert_eq!(e.scenarios.as_deref(), Some(Path::new("/s")));
        assert_eq!(e.html.as_deref(), Some(Path::new("out/report.html")));
    }

    #[test]
    fn out_of_range_or_garbled_values_keep_the_defaults() {
        let (c, e) = from(&[
            ("PKTFATE_TIMEOUT_SCALE", "0"),
            ("PKTFATE_IDLE_MS", "soon"),
            ("CNI_PATH", ""),
            ("PKTFATE_PAUSE_ON_FAIL", "yes"),
        ]);
        assert_eq!(c.collection, Collection::default());
        assert_eq!(c.cni_path, DEFAULT_CNI_PATH);
        assert!(!e.pause_on_fail);
        let (c, _) = from(&[("PKTFATE_TIMEOUT_SCALE", "101")]);
        assert_eq!(c.collection.timeout_scale, 1);
    }
}
