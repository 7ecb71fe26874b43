//! `pktfate trace`: live tracing like pwru, to explore a problem before
//! writing the scenario that pins it down. It only observes: nothing in any
//! namespace is changed.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::collect::Step;
use crate::common::{Hook, Names};
use crate::tracer::{FlowFilter, RawEvent, TraceSpec, Tracer, TracerError};

/// What to trace and how to show it.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Named namespaces (`ip netns` names) to watch; empty watches all.
    pub netns: Vec<String>,
    /// Only events on this device.
    pub dev: Option<String>,
    /// The packet selector (both directions).
    pub filter: FlowFilter,
    /// Only skbs with this mark.
    pub mark: Option<u32>,
    /// JSON lines instead of text.
    pub json: bool,
    /// Print each event's kernel stack.
    pub stacks: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many events.
    pub count: Option<usize>,
}

/// Errors of live tracing.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A namespace name that `ip netns` does not know.
    #[error("no network namespace `{0}` (see `ip netns list`)")]
    NoNetns(String),
    /// The tracer failed.
    #[error(transparent)]
    Tracer(#[from] TracerError),
    /// Output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Namespace and device names for everything visible: named namespaces
/// under /run/netns and the namespace pktfate itself runs in (`host`).
pub fn visible_names() -> Names {
    let mut names = Names::default();
    let mut add = |inode: u32, label: String, ns: &std::path::Path| {
        names.netns.insert(inode, label);
        // A namespace whose devices cannot be listed keeps its ifindexes.
        for (index, name) in crate::topology::device_names(ns).unwrap_or_default() {
            names.devs.insert((inode, index), name);
        }
    };
    if let Ok(ino) = crate::topology::netns::current_inode() {
        add(
            ino,
            "host".into(),
            std::path::Path::new("/proc/thread-self/ns/net"),
        );
    }
    if let Ok(dir) = std::fs::read_dir(crate::topology::netns::NETNS_RUN_DIR) {
        for e in dir.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Ok(ino) = crate::topology::netns::inode(&e.path()) {
                add(ino, n, &e.path());
            }
        }
    }
    names
}

/// One event as text, pwru-style.
pub fn line(e: &RawEvent, names: &Names, t0: u64) -> String {
    let detail = match (e.hook, &e.reason, &e.at) {
        (Hook::KfreeSkb, Some(r), Some(a)) => format!(" {r} at {a}"),
        (Hook::ConsumeSkb, _, Some(a)) => format!(" at {a}"),
        _ => String::new(),
    };
    format!(
        "{:>10.1} {:#x} {:>3} [{}] {} {} {} {}{}",
        e.ts_ns.saturating_sub(t0) as f64 / 1000.0,
        e.skb,
        e.cpu,
        e.comm,
        names.netns(e.netns),
        names.dev(e.netns, e.ifindex),
        e.packet.tuple(),
        e.hook,
        detail
    )
}

/// Traces until Ctrl-C, the duration or the count; returns the events seen.
/// `started` is told how many hooks are attached once tracing runs (the
/// CLI says so on stderr, where scripts can wait for it).
pub fn run(
    o: &LiveOptions,
    out: &mut impl Write,
    started: impl FnOnce(usize),
) -> Result<Vec<Step>, LiveError> {
    let mut inodes = vec![];
    for n in &o.netns {
        let p = crate::topology::netns::path_of(n);
        let ino = crate::topology::netns::inode(&p).map_err(|_| LiveError::NoNetns(n.clone()))?;
        inodes.push(ino);
    }
    let names = visible_names();
    let spec = TraceSpec {
        netns: inodes,
        filters: vec![o.filter.clone()],
        stacks: true,
        tc_hooks: vec![],
        functions: None,
        function_pattern: None,
        programs: vec![],
    };
    let mut tracer = Tracer::start(&spec)?;
    started(tracer.backend().hooks().len());
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Trace never builds topologies: a signal just ends the loop.
        crate::topology::teardown::flag_on_interrupt(&stop);
    }
    let start = Instant::now();
    let mut t0 = None;
    let mut seen = vec![];
    if !o.json {
        writeln!(
            out,
            "{:>10} {:<18} {:>3} PROCESS NETNS DEVICE TUPLE HOOK",
            "TIME(us)", "SKB", "CPU"
        )?;
    }
    while !stop.load(Ordering::SeqCst) {
        if o.duration.is_some_and(|d| start.elapsed() >= d)
            || o.count.is_some_and(|c| seen.len() >= c)
        {
            break;
        }
        for e in tracer.poll(Duration::from_millis(50))? {
            let dev = names.dev(e.netns, e.ifindex);
            if o.dev.as_ref().is_some_and(|d| *d != dev) || o.mark.is_some_and(|m| m != e.mark) {
                continue;
            }
            let t = *t0.get_or_insert(e.ts_ns);
            let reverse = o.filter.direction(&e.packet) == Some(true);
            let step = Step::named(e, &names, Some(0), reverse, 0);
            if o.json {
                writeln!(out, "{}", serde_json::to_string(&step).unwrap_or_default())?;
            } else {
                writeln!(out, "{}", line(&step.ev, &names, t))?;
                if o.stacks {
                    writeln!(out, "           {}", step.ev.stack.join(" <- "))?;
                }
            }
            seen.push(step);
            if o.count.is_some_and(|c| seen.len() >= c) {
                break;
            }
        }
    }
    let lost = tracer.lost()?;
    if lost > 0 {
        writeln!(
            out,
            "# {lost} events were lost in the kernel (ring buffer full)"
        )?;
    }
    Ok(seen)
}

/// A protocol `pktfate trace --proto` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol `{0}` (tcp, udp, icmp, icmp6 or a number)")]
pub struct UnknownProtocol(pub String);

/// Builds the packet selector from command-line pieces.
pub fn selector(
    proto: Option<&str>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
) -> Result<FlowFilter, UnknownProtocol> {
    let proto = match proto {
        None => None,
        Some("tcp") => Some(6),
        Some("udp") => Some(17),
        Some("icmp") => Some(1),
        Some("icmp6" | "icmpv6") => Some(58),
        Some(n) => Some(
            n.parse::<u8>()
                .map_err(|_| UnknownProtocol(n.to_string()))?,
        ),
    };
    Ok(FlowFilter {
        proto,
        src,
        dst,
        sport,
        dport,
        reverse: true,
        icmp_error: false,
        nat_reply: false,
    })
}

/// Per-skb counts, for a closing summary.
pub fn summary(steps: &[Step]) -> String {
    let mut drops: HashMap<String, usize> = HashMap::new();
    for s in steps.iter().filter(|s| s.ev.hook == Hook::KfreeSkb) {
        *drops
            .entry(s.ev.reason.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let mut d: Vec<_> = drops.into_iter().collect();
    d.sort();
    let drops: Vec<String> = d.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    format!(
        "# {} events; drops: {}",
        steps.len(),
        if drops.is_empty() {
            "none".into()
        } else {
            drops.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_or_numbered_and_anything_else_is_refused() {
        let proto = |p| selector(Some(p), None, None, None, None).map(|f| f.proto);
        assert_eq!(proto("tcp"), Ok(Some(6)));
        assert_eq!(proto("icmpv6"), Ok(Some(58)));
        assert_eq!(proto("132"), Ok(Some(132)), "SCTP by number");
        assert_eq!(proto("sctp"), Err(UnknownProtocol("sctp".into())));
        assert_eq!(proto("300"), Err(UnknownProtocol("300".into())));
        let any = selector(None, None, None, None, Some(53)).unwrap();
        assert!(any.proto.is_none() && any.reverse, "both ways by default");
    }
}
