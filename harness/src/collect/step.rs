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
    /// A program's redirect (`TC_ACT_REDIRECT`, `XDP_REDIRECT`): where
    /// its skb was seen next (`ns/dev`), which is the redirect's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
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
            redirect_to: None,
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
        redirect_to: None,
        packet: Some(0),
        reverse: false,
        life: skb,
    }
}

/// A step for unit tests: program `program` on `ns/dev` (at `hook`)
/// returned `code`; `skb` 0 for an XDP run on a frame with no skb.
#[cfg(test)]
pub(crate) fn sample_prog_step(
    skb: u64,
    program: &str,
    (ns, dev): (&str, &str),
    hook: crate::scenario::ProgHook,
    code: i32,
) -> Step {
    let mut s = sample_step(skb, "prog_return", &[], ns, dev);
    s.ev.hook = Hook::ProgReturn;
    s.ev.program = Some(crate::tracer::ProgramRun {
        at: crate::scenario::ProgramRef {
            program: program.into(),
            ns: ns.into(),
            dev: dev.into(),
            hook,
        },
        returned: crate::scenario::ReturnCode { hook, code },
    });
    s
}

/// Names each program redirect's target: the device its skb is seen on
/// next (`bpf_redirect`'s target is in per-CPU state no tracepoint shows).
/// `steps` are in time order.
pub fn name_redirects(steps: &mut [Step]) {
    for i in 0..steps.len() {
        let redirect = steps[i].ev.program.as_ref().is_some_and(|r| {
            matches!(
                r.returned.name().as_str(),
                "TC_ACT_REDIRECT" | "XDP_REDIRECT"
            )
        });
        if !redirect || steps[i].ev.skb == 0 {
            continue;
        }
        let (skb, life, here) = (
            steps[i].ev.skb,
            steps[i].life,
            (steps[i].ns.clone(), steps[i].dev.clone()),
        );
        steps[i].redirect_to = steps[i + 1..]
            .iter()
            .filter(|s| s.ev.skb == skb && s.life == life)
            .find(|s| (s.ns.clone(), s.dev.clone()) != here && s.dev != "-")
            .map(|s| format!("{}/{}", s.ns, s.dev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_is_named_by_the_device_its_skb_shows_up_on_next() {
        // TC_ACT_REDIRECT (7).
        let run = sample_prog_step(
            0x10,
            "to_pod",
            ("node", "eth0"),
            crate::scenario::ProgHook::TcIngress,
            7,
        );
        let mut steps = vec![
            run,
            sample_step(0x20, "net_dev_queue", &[], "node", "veth9"),
            sample_step(0x10, "kfree_skb", &[], "node", "eth0"),
            sample_step(0x10, "net_dev_queue", &[], "node", "veth1"),
        ];
        // Another skb's event in between is not the target; the same
        // device is not either.
        steps[2].ev.hook = Hook::NetifReceiveSkb;
        name_redirects(&mut steps);
        assert_eq!(steps[0].redirect_to.as_deref(), Some("node/veth1"));
        // TC_ACT_OK names nothing.
        if let Some(r) = steps[0].ev.program.as_mut() {
            r.returned.code = 0;
        }
        steps[0].redirect_to = None;
        name_redirects(&mut steps);
        assert_eq!(steps[0].redirect_to, None);
    }
}
