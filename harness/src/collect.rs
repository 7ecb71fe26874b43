//! Stage 5: gather tracer events until every tracked skb's fate is known.
//!
//! Collection ends when each injected packet has been seen, no tracked skb
//! is still alive (each had its `kfree_skb` or `consume_skb`), and the ring
//! buffer has been quiet for a short settle window that catches replies the
//! kernel sends asynchronously. The timeout is only the backstop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::topology::Names;
use crate::tracer::{FlowFilter, RawEvent, Tracer, TracerError};

/// Quiet time after the last skb died before collection ends.
pub const SETTLE: Duration = Duration::from_millis(25);

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
    /// Index of the scenario packet this skb belongs to.
    pub packet: Option<usize>,
    /// True when the skb flows the other way (a reply).
    pub reverse: bool,
}

/// All events of one run, in time order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timeline {
    /// Steps, sorted by time.
    pub steps: Vec<Step>,
    /// Events the kernel could not deliver.
    pub lost: u64,
    /// Whether every tracked skb died before the timeout.
    pub settled: bool,
    /// Time spent collecting.
    pub waited: Duration,
}

/// Reads events until the fates are known or `timeout` passes. `pump` is
/// called between polls to consume what the kernel sends to the harness
/// (tun reads), so those skbs die too.
pub fn collect(
    tracer: &mut Tracer,
    names: &Names,
    filters: &[FlowFilter],
    timeout: Duration,
    pump: &mut dyn FnMut(),
) -> Result<Timeline, TracerError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut steps = vec![];
    // skb address → (packet, reverse) for the skb's current lifetime.
    let mut owner: HashMap<u64, (Option<usize>, bool)> = HashMap::new();
    let mut alive: HashMap<u64, ()> = HashMap::new();
    let mut seen = vec![false; filters.len()];
    let mut last_event = Instant::now();
    let mut settled = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(Duration::from_millis(5));
        pump();
        let batch = tracer.poll(wait)?;
        if !batch.is_empty() {
            last_event = Instant::now();
        }
        for ev in batch {
            let (packet, reverse) = *owner.entry(ev.skb).or_insert_with(|| {
                filters
                    .iter()
                    .enumerate()
                    .find_map(|(i, f)| f.direction(&ev.packet).map(|r| (Some(i), r)))
                    .unwrap_or((None, false))
            });
            if let (Some(i), false) = (packet, reverse) {
                seen[i] = true;
            }
            // Data a reader copied out is freed without a tracepoint (UDP,
            // TCP), so the copy ends the skb's tracked life too.
            if ev.is_terminal() || ev.hook == "skb_copy_datagram_iovec" {
                alive.remove(&ev.skb);
                // The address may be reused by an unrelated skb.
                owner.remove(&ev.skb);
            } else {
                alive.insert(ev.skb, ());
            }
            steps.push(Step {
                ns: names.netns(ev.netns),
                dev: names.dev(ev.netns, ev.ifindex),
                ev,
                packet,
                reverse,
            });
        }
        if seen.iter().all(|s| *s) && alive.is_empty() && last_event.elapsed() >= SETTLE {
            settled = true;
            break;
        }
    }
    steps.sort_by_key(|s| s.ev.ts_ns);
    Ok(Timeline {
        steps,
        lost: tracer.lost()?,
        settled,
        waited: start.elapsed(),
    })
}
