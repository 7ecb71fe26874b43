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

/// The headers that identify a packet's evaluations.
type Tuple = (
    Option<std::net::IpAddr>,
    Option<std::net::IpAddr>,
    u8,
    u16,
    u16,
);

fn tuple(p: &crate::tracer::PacketInfo) -> Tuple {
    (p.src, p.dst, p.proto, p.sport, p.dport)
}

/// Each evaluation with the packet it belongs to: first by the headers
/// the tracer saw that packet's skbs carry (`seen`: packet index, reply
/// or not, headers; after a tc rewrite or a DNAT too, which the flow
/// filters no longer match), then by the filters that attribute kernel
/// events (forward or back).
pub fn attribute_rules<'a>(
    evals: Vec<RuleEval>,
    filters: &[(usize, FlowFilter)],
    seen: impl IntoIterator<Item = (usize, bool, &'a crate::tracer::PacketInfo)>,
) -> Vec<RuleStep> {
    let mut by_headers: std::collections::HashMap<Tuple, (usize, bool)> =
        std::collections::HashMap::new();
    for (i, reverse, p) in seen {
        if p.src.is_some() {
            by_headers.entry(tuple(p)).or_insert((i, reverse));
        }
    }
    evals
        .into_iter()
        .map(|eval| {
            let (packet, reverse) = by_headers
                .get(&tuple(&eval.packet))
                .map(|&(i, r)| (Some(i), r))
                .or_else(|| {
                    filters
                        .iter()
                        .find_map(|(i, f)| f.direction(&eval.packet).map(|r| (Some(*i), r)))
                })
                .unwrap_or((None, false));
            RuleStep {
                eval,
                packet,
                reverse,
            }
        })
        .collect()
}
