//! Netfilter rule evaluations, attributed to the scenario's packets.

use crate::tracer::FlowFilter;
use crate::tracer::nftrace::RuleEval;

/// A rule evaluation and the scenario packet it belongs to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleStep {
    /// The evaluation.
    #[serde(flatten)]
    pub eval: RuleEval,
    /// The scenario packet (`packet_index` in JSON, as for kernel events).
    #[serde(rename = "packet_index")]
    pub packet: Option<usize>,
    /// True when the packet flows the other way (a reply).
    pub reverse: bool,
}

/// Each evaluation with the packet whose flow its headers match (forward
/// or back), by the same filters that attribute kernel events.
pub fn attribute_rules(evals: Vec<RuleEval>, filters: &[(usize, FlowFilter)]) -> Vec<RuleStep> {
    evals
        .into_iter()
        .map(|eval| {
            let (packet, reverse) = filters
                .iter()
                .find_map(|(i, f)| f.direction(&eval.packet).map(|r| (Some(*i), r)))
                .unwrap_or((None, false));
            RuleStep {
                eval,
                packet,
                reverse,
            }
        })
        .collect()
}
