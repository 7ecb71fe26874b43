//! The report model: what a run says about one scenario, as serde types.
//! `pktfate run --format json` writes one [`ScenarioReport`] per line; the
//! kernel matrix reads its guests' lines back into the same type, and the
//! `JUnit` writer ([`super::junit`]) takes the [`Status`] it carries. A field
//! added here is in every output at once.

use serde::{Deserialize, Serialize};

use crate::common::ErrorKind;
use crate::evaluate::{Mismatch, PacketVerdict};
use crate::tracer::ProbeMechanism;

/// How a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every expectation held.
    Pass,
    /// An expectation did not hold, or the trace was incomplete.
    Fail,
    /// Not run here: its `requires` are not met (the reason says which).
    Skip,
    /// It could not be run: a scenario, machine or internal error.
    Error,
}

impl Status {
    /// As reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }

    /// Counts against the run's exit status.
    pub fn failed(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stage timings in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingsMs {
    /// Parse, validate, build the topology.
    pub setup: f64,
    /// Load and attach the tracer.
    pub attach: f64,
    /// First injection to verdict.
    pub inject_to_verdict: f64,
    /// Tear down.
    pub teardown: f64,
}

/// An optional hook the tracer went without, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedHookReport {
    /// The hook.
    pub hook: String,
    /// Why.
    pub why: String,
}

/// What the tracer was on this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracerReport {
    /// Backend name (`raw_tp`, `raw_tp+kprobe-multi`, ...).
    pub backend: String,
    /// Hooks attached.
    pub hooks: Vec<String>,
    /// Optional hooks this kernel could not give it, and why.
    pub skipped_hooks: Vec<SkippedHookReport>,
    /// Kernel functions probed, 0 when none.
    pub functions: usize,
    /// By which mechanism, when any were.
    #[serde(default)]
    pub function_mechanism: Option<ProbeMechanism>,
    /// Why kprobe-multi was not the mechanism, on a kernel with kprobes.
    #[serde(default)]
    pub function_fallback: Option<String>,
    /// Functions that could not be probed (a module's), and why.
    #[serde(default)]
    pub function_problems: Vec<String>,
    /// How long attaching them took.
    pub function_attach_ms: f64,
}

/// Everything a run reports about one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Scenario name (the file stem when it could not be loaded).
    pub name: String,
    /// Scenario file.
    pub path: String,
    /// How it ended.
    pub status: Status,
    /// Stage timings, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<TimingsMs>,
    /// Per packet: facts, mismatches, path.
    #[serde(default)]
    pub packets: Vec<PacketVerdict>,
    /// Counter deltas that did not hold.
    #[serde(default)]
    pub counters: Vec<Mismatch>,
    /// Problems with the trace itself (lost events, timeout).
    #[serde(default)]
    pub trace_problems: Vec<String>,
    /// What went wrong tearing the scenario down (a CNI DEL that failed,
    /// a namespace not deleted): a failure though every expectation held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown_problems: Vec<String>,
    /// Events the kernel could not deliver.
    #[serde(default)]
    pub lost_events: u64,
    /// Expectations this kernel cannot check, and why.
    #[serde(default)]
    pub unchecked: Vec<String>,
    /// The tracer, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracer: Option<TracerReport>,
    /// Every traced step in time order, as `collect::Step` serialises.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<serde_json::Value>,
    /// Every netfilter rule evaluation of the scenario's namespaces, as
    /// `collect::RuleStep` serialises (namespace, table, chain, handle, the
    /// rule as written, verdict, packet index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<serde_json::Value>,
    /// The conntrack tables read at the end (namespace, entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conntrack: Vec<serde_json::Value>,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why it could not be run, with its hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who can fix that error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The namespaces and their devices as built, for drawings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology: Vec<NsReport>,
}

impl ScenarioReport {
    /// A report of `status` with nothing else in it yet: the one place
    /// that lists every field, so a new field has one default.
    pub fn new(name: String, path: String, status: Status) -> Self {
        Self {
            name,
            path,
            status,
            timings_ms: None,
            packets: vec![],
            counters: vec![],
            trace_problems: vec![],
            teardown_problems: vec![],
            lost_events: 0,
            unchecked: vec![],
            tracer: None,
            timeline: vec![],
            rules: vec![],
            conntrack: vec![],
            skipped: None,
            error: None,
            error_kind: None,
            topology: vec![],
        }
    }
}

/// One namespace as built: its devices (the scenario's, their veth peer
/// ends, and those a CNI plugin made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsReport {
    /// Scenario name.
    pub name: String,
    /// Its devices, `lo` left out.
    #[serde(default)]
    pub devices: Vec<DevReport>,
}

/// One device of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevReport {
    /// Interface name.
    pub name: String,
    /// `veth`, `bridge`, `macvlan`, `vxlan`, `tun`, `tap`, or `device`
    /// for one the scenario did not make itself (a CNI plugin's).
    pub kind: String,
    /// Its addresses, `addr/prefix`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// A veth's other end, `ns/dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The bridge it is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// A macvlan's or VXLAN's lower device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_it_was_written() {
        let r = ScenarioReport {
            counters: vec![Mismatch {
                what: "IpInReceives".into(),
                expected: "+1".into(),
                actual: "+0".into(),
            }],
            tracer: Some(TracerReport {
                backend: "raw_tp+kprobe".into(),
                hooks: vec!["kfree_skb".into()],
                skipped_hooks: vec![],
                functions: 42,
                function_mechanism: Some(ProbeMechanism::Kprobe),
                function_fallback: Some("EOPNOTSUPP".into()),
                function_problems: vec![],
                function_attach_ms: 1.5,
            }),
            ..ScenarioReport::new("n".into(), "s/n.yaml".into(), Status::Fail)
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""status":"fail""#), "{line}");
        assert!(line.contains(r#""function_mechanism":"kprobe""#), "{line}");
        let back: ScenarioReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.status, Status::Fail);
        assert_eq!(back.counters, r.counters);
        assert_eq!(back.tracer, r.tracer);
        // A skipped scenario's line has no tracer and no timings.
        let skip: ScenarioReport =
            serde_json::from_str(r#"{"name":"a","path":"a.yaml","status":"skip","skipped":"why"}"#)
                .unwrap();
        assert_eq!(skip.status, Status::Skip);
        assert!(skip.tracer.is_none());
    }
}
