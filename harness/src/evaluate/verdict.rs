//! The verdict: per packet, the facts and the expectations that did not
//! hold; for the scenario, problems with the trace itself.

use super::facts::Facts;

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mismatch {
    /// Which expectation (`fate`, `reason`, `at`, `path`).
    pub what: String,
    /// What the scenario says.
    pub expected: String,
    /// What the trace shows.
    pub actual: String,
}

/// The verdict on one packet.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PacketVerdict {
    /// Packet name.
    pub name: String,
    /// What happened.
    pub facts: Facts,
    /// Expectations that failed; empty means pass.
    pub mismatches: Vec<Mismatch>,
    /// The packet's path, compacted for reading.
    pub path: Vec<String>,
}

/// The verdict on a scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// Per packet.
    pub packets: Vec<PacketVerdict>,
    /// Problems with the trace itself (lost events, timeout).
    pub trace_problems: Vec<String>,
    /// Counter deltas that did not hold.
    pub counters: Vec<Mismatch>,
}

impl Verdict {
    /// True when every expectation held and the trace is complete.
    pub fn passed(&self) -> bool {
        self.trace_problems.is_empty()
            && self.counters.is_empty()
            && self.packets.iter().all(|p| p.mismatches.is_empty())
    }
}
