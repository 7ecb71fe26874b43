//! A kernel event placed in the scenario: the timeline's unit.

#[cfg(test)]
use crate::common::Hook;
use crate::common::Names;
#[cfg(test)]
use crate::tracer::PacketInfo;
use crate::tracer::RawEvent;

/// An event placed in the scenario: names resolved, packet attributed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// The kernel event.
    #[serde(flatten)]
    pub ev: RawEvent,
    /// Scenario name of the namespace.
    pub ns: String,
    /// Device name.
    pub dev: String,
    /// A route lookup's result device, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_dev: Option<String>,
    /// Index of the scenario packet this skb belongs to (`packet_index` in
    /// JSON: `packet` there is the event's headers).
    #[serde(rename = "packet_index")]
    pub packet: Option<usize>,
    /// True when the skb flows the other way (a reply).
    pub reverse: bool,
    /// One skb's life from first event to free: addresses are reused, so
    /// (address, life) identifies an skb across the timeline.
    pub life: u64,
}

impl Step {
    /// `ev` with its namespace and devices named (a route lookup ran in
    /// the skb's namespace: the tracer checks it).
    pub fn named(
        ev: RawEvent,
        names: &Names,
        packet: Option<usize>,
        reverse: bool,
        life: u64,
    ) -> Self {
        let route_dev = ev
            .route
            .as_ref()
            .filter(|r| r.oif != 0)
            .map(|r| names.dev(ev.netns, r.oif));
        Step {
            ns: names.netns(ev.netns),
            dev: names.dev(ev.netns, ev.ifindex),
            route_dev,
            ev,
            packet,
            reverse,
            life,
        }
    }
}

/// A step for unit tests: `stack` is outermost frame first; `kfree_skb`
/// gets reason `NO_SOCKET`, and frees happen at `tcp_v4_rcv`.
#[cfg(test)]
pub(crate) fn sample_step(
    skb: u64,
    hook: &'static str,
    stack: &[&str],
    ns: &str,
    dev: &str,
) -> Step {
    Step {
        ev: RawEvent {
            ts_ns: 0,
            skb,
            // Tests name hooks as path steps do.
            hook: Hook::tracepoints()
                .find(|h| h.name() == hook)
                .unwrap_or(Hook::Function(hook)),
            cpu: 0,
            pid: 1,
            comm: "t".into(),
            netns: 1,
            ifindex: 1,
            mark: 0,
            len: 40,
            priority: 0,
            vlan_tci: None,
            ip_summed: None,
            reason: (hook == "kfree_skb").then(|| "NO_SOCKET".to_string()),
            at: matches!(hook, "kfree_skb" | "consume_skb").then(|| "tcp_v4_rcv".to_string()),
            aux: [0; 3],
            packet: PacketInfo::default(),
            route: None,
            program: None,
            // innermost first, as the kernel reports
            stack: stack
                .iter()
                .rev()
                .map(std::string::ToString::to_string)
                .collect(),
            bytes: vec![],
            ip_len: 0,
        },
        ns: ns.into(),
        dev: dev.into(),
        route_dev: None,
        packet: Some(0),
        reverse: false,
        life: skb,
    }
}
