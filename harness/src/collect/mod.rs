//! Stage 5: gather tracer events until every tracked skb's fate is known.
//!
//! Collection ends when each injected packet has been seen, no tracked skb
//! is still alive (each had its `kfree_skb` or `consume_skb`), and the ring
//! buffer has been quiet for a short settle window that catches replies the
//! kernel sends asynchronously. The timeout is only the backstop.

pub mod counters;
mod rules;
mod step;
pub mod conntrack;
pub use rules::{RuleStep, attribute_rules, place_rules};
pub use step::{Step, name_redirects};
#[cfg(test)]
pub(crate) use step::{sample_prog_step, sample_step};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::config::Collection;
use crate::common::{Hook, Names};
use crate::tracer::{FlowFilter, PacketInfo, RawEvent, Tracer, TracerError};

/// The longest quiet time after the last skb died before collection ends.
pub const SETTLE: Duration = Duration::from_millis(25);

/// The shortest such quiet time.
pub const MIN_SETTLE: Duration = Duration::from_millis(2);

/// The longest wait for events while skbs are alive: how often the
/// harness consumes what the kernel sent it (tun reads).
const POLL: Duration = Duration::from_millis(5);

/// How long to wait, once every skb died, for what the kernel might still
/// send: twice as long as the kernel itself took from the first event to
/// the last (its own pace: a few hundred microseconds natively, tens of
/// milliseconds under emulation), within [`MIN_SETTLE`]..[`SETTLE`].
pub fn settle(first_ns: u64, last_ns: u64) -> Duration {
    Duration::from_nanos(last_ns.saturating_sub(first_ns).saturating_mul(2))
        .clamp(MIN_SETTLE, SETTLE)
}

/// How long the next poll may wait for events: [`POLL`] while tracked skbs
/// are alive; once all have died, only what is left of the settle window
/// (waiting a whole poll interval would add milliseconds to every
/// scenario's verdict for nothing).
fn poll_wait(all_died: bool, settle: Duration, quiet: Duration) -> Duration {
    if all_died {
        settle
            .saturating_sub(quiet)
            .clamp(Duration::from_micros(200), POLL)
    } else {
        POLL
    }
}

/// Whether `now` carries another packet than `before` at the same skb
/// address: no IP packet at all (a netlink message at a reused address),
/// another family or protocol, or both addresses changed (NAT rewrites one
/// side at a time). The tracer applies the same rule.
pub fn is_other_packet(before: &PacketInfo, now: &PacketInfo) -> bool {
    let fam = |a: Option<std::net::IpAddr>| a.map(|a| a.is_ipv4());
    let tunnel = |p: &PacketInfo| crate::abi::is_tunnel(p.proto, p.sport, p.dport);
    if now.src.is_none() {
        return before.src.is_some();
    }
    !tunnel(before)
        && !tunnel(now)
        && (fam(before.src) != fam(now.src)
            || before.proto != now.proto
            || (before.src != now.src && before.dst != now.dst))
}

pub use crate::common::{Observation, SOCKET_READ};

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC is bpf_ktime_get_ns's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Which packet (and direction) a harness read belongs to.
fn attribute(filters: &[(usize, FlowFilter)], o: &Observation) -> (Option<usize>, bool) {
    for (i, f) in filters.iter().map(|(i, f)| (*i, f)) {
        if f.icmp_error {
            continue;
        }
        if f.proto.is_some_and(|p| p != 17) {
            continue;
        }
        let fwd = f.src.is_none_or(|a| a == o.peer.ip())
            && f.sport.is_none_or(|p| p == o.peer.port())
            && f.dport.is_none_or(|p| p == o.local_port);
        if fwd {
            return (Some(i), false);
        }
        let rev = f.reverse
            && f.dst.is_none_or(|a| a == o.peer.ip())
            && f.dport.is_none_or(|p| p == o.peer.port())
            && f.sport.is_none_or(|p| p == o.local_port);
        if rev {
            return (Some(i), true);
        }
    }
    (None, false)
}

/// All events of one run, in time order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timeline {
    /// Steps, sorted by time.
    pub steps: Vec<Step>,
    /// Events the kernel could not deliver.
    pub lost: u64,
    /// Whether collection ended before the timeout (every tracked skb
    /// died, or the trace went idle).
    pub settled: bool,
    /// skbs still alive when collection ended (their end was not seen).
    pub unfinished: usize,
    /// The event cap, when collection stopped at it.
    pub capped: Option<usize>,
    /// Time spent collecting.
    pub waited: Duration,
    /// The run's timeout scale (1 natively; emulated guests set more):
    /// evaluation widens its time windows by as much.
    pub timeout_scale: u32,
    /// Netfilter rule evaluations (each namespace's in the kernel's order).
    pub rules: Vec<RuleStep>,
    /// The namespaces whose rule evaluations were traced.
    pub rules_traced: Vec<String>,
    /// Namespaces whose rule trace lost messages.
    pub rules_lost: Vec<String>,
    /// The `iptables` on PATH is iptables-legacy: the rules it adds (a CNI
    /// plugin's, a `run:` command's) are `x_tables` rules, which the rule
    /// trace cannot see.
    pub iptables_legacy: bool,
    /// The conntrack tables read at the end, for the namespaces the
    /// scenario asks about.
    pub conntrack: Vec<conntrack::CtTable>,
    /// Each traced namespace's rules, to say when a rule named is gone.
    #[serde(skip)]
    pub rulesets: Vec<(String, crate::tracer::nftrace::Ruleset)>,
}

/// What collection knows so far: each skb's owner (packet, direction,
/// life), which skbs are still alive, which packets were seen.
struct Tracking {
    steps: Vec<Step>,
    /// skb address → (packet, reverse, life) for the skb's current lifetime.
    owner: HashMap<u64, (Option<usize>, bool, u64)>,
    lives: u64,
    alive: HashSet<u64>,
    /// Packets (index, reverse) queued as a copy until ARP/ND resolves
    /// their next hop: the skb seen was consumed in `__neigh_event_send`,
    /// and the copy shows nothing until it is sent (or dropped).
    queued: HashSet<(usize, bool)>,
    last_packet: HashMap<u64, PacketInfo>,
    seen: Vec<bool>,
    first_ns: u64,
    last_ns: u64,
}

impl Tracking {
    fn new(n_packets: usize) -> Self {
        Tracking {
            steps: vec![],
            owner: HashMap::new(),
            lives: 0,
            alive: HashSet::new(),
            queued: HashSet::new(),
            last_packet: HashMap::new(),
            seen: vec![false; n_packets],
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }

    /// Whether an skb, or a packet's queued copy, may still show.
    fn waiting(&self) -> bool {
        !self.alive.is_empty() || !self.queued.is_empty()
    }

    /// One tracer event: which packet's skb it is, and whether that skb
    /// has ended.
    fn event(&mut self, ev: RawEvent, filters: &[(usize, FlowFilter)], names: &Names) {
        self.first_ns = self.first_ns.min(ev.ts_ns);
        self.last_ns = self.last_ns.max(ev.ts_ns);
        if ev.skb == 0 {
            // A socket's own route lookup, before its skb, or an XDP
            // program's run on a frame no skb holds yet: attributed by its
            // flow; no skb, so nothing to wait for. The frame is the
            // packet, so it starts a life of its own (an skb built from it
            // later joins that life by its headers); the lookup starts
            // none.
            let (packet, reverse) = filters
                .iter()
                .find_map(|(i, f)| f.direction(&ev.packet).map(|r| (Some(*i), r)))
                .unwrap_or((None, false));
            let life = if ev.hook == Hook::ProgReturn {
                self.lives += 1;
                if let (Some(i), false) = (packet, reverse) {
                    self.seen[i] = true;
                }
                self.lives
            } else {
                0
            };
            self.steps
                .push(Step::named(ev, names, packet, reverse, life));
            return;
        }
        if let Some(before) = self.last_packet.get(&ev.skb) {
            if is_other_packet(before, &ev.packet) {
                self.owner.remove(&ev.skb);
                self.alive.remove(&ev.skb);
            }
        }
        if ev.packet.src.is_some() {
            self.last_packet.insert(ev.skb, ev.packet.clone());
        }
        let (packet, reverse, life) = *self.owner.entry(ev.skb).or_insert_with(|| {
            self.lives += 1;
            let (p, r) = filters
                .iter()
                .find_map(|(i, f)| f.direction(&ev.packet).map(|r| (Some(*i), r)))
                .unwrap_or((None, false));
            (p, r, self.lives)
        });
        if let (Some(i), false) = (packet, reverse) {
            self.seen[i] = true;
        }
        if let Some(i) = packet {
            // On 6.18 a packet waiting for ARP/ND is queued as one skb and
            // another (the original or a clone) is consumed here: when the
            // original, the packet is not done though no skb of it is
            // alive. The settle window (a few ms) used to end collection
            // there, and under load the queued skb came later. Any later
            // event of the packet says it moves again.
            if ev.hook == Hook::ConsumeSkb && ev.at.as_deref() == Some("__neigh_event_send") {
                self.queued.insert((i, reverse));
            } else {
                self.queued.remove(&(i, reverse));
            }
        }
        // Data a reader copied out is freed without a tracepoint (UDP,
        // TCP), so the copy ends the skb's tracked life too. A TCP
        // socket changing state on a segment took it, and TCP frees
        // what it took with the untraced __kfree_skb: no end will come,
        // so it is not waited for (its life goes on if it shows again).
        if ev.hook == Hook::InetSockSetState {
            self.alive.remove(&ev.skb);
        } else if ev.is_terminal() || ev.hook == Hook::SkbCopyDatagramIovec {
            self.alive.remove(&ev.skb);
            // The address may be reused by an unrelated skb.
            self.owner.remove(&ev.skb);
            self.last_packet.remove(&ev.skb);
        } else {
            self.alive.insert(ev.skb);
        }
        self.steps
            .push(Step::named(ev, names, packet, reverse, life));
    }

    /// A datagram the harness read itself: the end of the skb that last
    /// carried that packet.
    fn observed(&mut self, o: &Observation, filters: &[(usize, FlowFilter)], names: &Names) {
        let (packet, reverse) = attribute(filters, o);
        // Part of the life of the skb that last carried this packet.
        let prev = self
            .steps
            .iter()
            .rev()
            .find(|s: &&Step| s.packet.is_some() && s.packet == packet && s.reverse == reverse);
        let (skb, life) = if let Some(p) = prev {
            (p.ev.skb, p.life)
        } else {
            self.lives += 1;
            (0, self.lives)
        };
        self.alive.remove(&skb);
        self.owner.remove(&skb);
        let inode = names
            .netns
            .iter()
            .find(|(_, n)| **n == o.ns)
            .map_or(0, |(i, _)| *i);
        self.steps.push(Step {
            ev: RawEvent {
                ts_ns: monotonic_ns(),
                skb,
                hook: Hook::SocketRead,
                cpu: 0,
                pid: std::process::id(),
                comm: "pktfate".into(),
                netns: inode,
                ifindex: 0,
                mark: 0,
                len: 0,
                priority: 0,
                vlan_tci: None,
                ip_summed: None,
                reason: None,
                at: None,
                aux: [0; 3],
                packet: PacketInfo {
                    src: Some(o.peer.ip()),
                    proto: 17,
                    sport: o.peer.port(),
                    dport: o.local_port,
                    ..Default::default()
                },
                route: None,
                program: None,
                stack: vec![],
                bytes: vec![],
                ip_len: 0,
            },
            ns: o.ns.clone(),
            dev: "-".into(),
            route_dev: None,
            redirect_to: None,
            packet,
            reverse,
            life,
        });
        if let (Some(i), false) = (packet, reverse) {
            self.seen[i] = true;
        }
    }
}

/// Reads events until the fates are known or `timeout` (times the run's
/// scale) passes; skbs still alive after [`Collection::idle`] of quiet are
/// given up on, and at most [`Collection::max_events`] are kept. `pump` is
/// called between polls to consume what the kernel sends to the harness
/// (tun reads), so those skbs die too.
pub fn collect(
    tracer: &mut Tracer,
    names: &Names,
    filters: &[(usize, FlowFilter)],
    timeout: Duration,
    limits: &Collection,
    pump: &mut dyn FnMut() -> Vec<Observation>,
) -> Result<Timeline, TracerError> {
    let start = Instant::now();
    let deadline = start + timeout * limits.timeout_scale;
    let n_packets = filters.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut t = Tracking::new(n_packets);
    let mut last_event = Instant::now();
    let mut settled = false;
    let cap = limits.max_events;
    let mut capped = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if t.steps.len() >= cap {
            capped = Some(cap);
            break;
        }
        let all_died = !t.waiting() && t.seen.iter().all(|s| *s);
        let poll = poll_wait(
            all_died,
            settle(t.first_ns, t.last_ns),
            last_event.elapsed(),
        );
        let wait = (deadline - now).min(poll);
        let observed = pump();
        let batch = tracer.poll(wait)?;
        if !batch.is_empty() || !observed.is_empty() {
            last_event = Instant::now();
        }
        for ev in batch {
            t.event(ev, filters, names);
        }
        for o in &observed {
            t.observed(o, filters, names);
        }
        let quiet = last_event.elapsed();
        let done = !t.waiting() && quiet >= settle(t.first_ns, t.last_ns);
        if t.seen.iter().all(|s| *s) && (done || quiet >= limits.idle) {
            // One last look before the end is decided: this thread may
            // have been off the CPU between its poll and here (a cheap
            // scenario runs at a low priority in a suite), and what the
            // kernel sent meanwhile is already in the ring buffer.
            let observed = pump();
            let late = tracer.poll(Duration::ZERO)?;
            if late.is_empty() && observed.is_empty() {
                settled = true;
                break;
            }
            last_event = Instant::now();
            for ev in late {
                t.event(ev, filters, names);
            }
            for o in &observed {
                t.observed(o, filters, names);
            }
        }
    }
    t.steps.sort_by_key(|s| s.ev.ts_ns);
    name_redirects(&mut t.steps);
    Ok(Timeline {
        steps: t.steps,
        lost: tracer.lost()?,
        settled,
        unfinished: t.alive.len(),
        capped,
        waited: start.elapsed(),
        timeout_scale: limits.timeout_scale,
        ..Timeline::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str, dst: &str, proto: u8) -> PacketInfo {
        PacketInfo {
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            proto,
            ..Default::default()
        }
    }

    /// A flow to `dst` (and back), from any source.
    fn flow(proto: u8, dst: &str, ports: Option<(u16, u16)>) -> FlowFilter {
        FlowFilter {
            proto: Some(proto),
            src: None,
            dst: Some(dst.parse().unwrap()),
            sport: ports.map(|p| p.0),
            dport: ports.map(|p| p.1),
            reverse: true,
            icmp_error: false,
            nat_reply: false,
        }
    }

    #[test]
    fn a_reused_address_is_told_from_nat() {
        let syn = p("192.0.2.2", "198.51.100.2", 6);
        // SNAT or DNAT: one side changes.
        assert!(!is_other_packet(&syn, &p("203.0.113.9", "198.51.100.2", 6)));
        assert!(!is_other_packet(&syn, &p("192.0.2.2", "203.0.113.9", 6)));
        // Another packet altogether.
        assert!(is_other_packet(&syn, &p("203.0.113.9", "203.0.113.8", 6)));
        assert!(is_other_packet(&syn, &p("192.0.2.2", "198.51.100.2", 17)));
        assert!(is_other_packet(&syn, &p("fe80::1", "ff02::16", 58)));
        // Encapsulation into VXLAN (and back) keeps the skb.
        let mut vxlan = p("203.0.113.1", "203.0.113.2", 17);
        vxlan.dport = 4789;
        assert!(!is_other_packet(&syn, &vxlan));
        assert!(!is_other_packet(&vxlan, &syn));
        // No IP packet where an IP packet was: another skb at the address
        // (Debian's 6.1 took a netlink message's consume in
        // netlink_broadcast for a RST's end).
        assert!(is_other_packet(&syn, &PacketInfo::default()));
        assert!(!is_other_packet(
            &PacketInfo::default(),
            &PacketInfo::default()
        ));
    }

    #[test]
    fn a_lookup_without_an_skb_goes_to_its_flows_packet_and_starts_no_life() {
        // A socket's own route lookup (skb 0), then its first skb.
        let filter = flow(17, "192.0.2.53", Some((40000, 53)));
        let event = |skb: u64, hook: &'static str, src: &str| {
            let mut e = sample_step(skb, hook, &[], "client", "eth1").ev;
            e.packet = PacketInfo {
                sport: 40000,
                dport: 53,
                ..p(src, "192.0.2.53", 17)
            };
            e
        };
        let mut t = Tracking::new(1);
        let names = Names::default();
        t.event(
            event(0, "fib_table_lookup", "0.0.0.0"),
            &[(0, filter.clone())],
            &names,
        );
        t.event(
            event(0x10, "net_dev_queue", "203.0.113.1"),
            &[(0, filter)],
            &names,
        );
        let (lookup, skb) = (&t.steps[0], &t.steps[1]);
        assert_eq!(
            (lookup.packet, lookup.reverse, lookup.life),
            (Some(0), false, 0)
        );
        assert!(!t.alive.contains(&0), "no skb to wait for");
        assert_eq!(skb.life, 1, "the skb's life is the first");
    }

    #[test]
    fn a_packet_queued_for_arp_is_waited_for_until_its_copy_shows() {
        let filter = flow(1, "192.0.2.2", None);
        let event = |skb: u64, hook: &'static str, at: Option<&str>| {
            let mut e = sample_step(skb, hook, &[], "node1", "vx0").ev;
            e.packet = p("192.0.2.1", "192.0.2.2", 1);
            e.at = at.map(Into::into);
            e
        };
        let filters = [(0, filter)];
        let names = Names::default();
        let feed = |t: &mut Tracking, skb: u64, hook: &'static str, at: Option<&str>| {
            t.event(event(skb, hook, at), &filters, &names);
        };
        let mut t = Tracking::new(1);
        feed(&mut t, 0x10, "net_dev_queue", None);
        // 6.18: the original consumed where it waits for ARP, its copy
        // queued (no event until the next hop resolves).
        feed(&mut t, 0x10, "consume_skb", Some("__neigh_event_send"));
        assert!(t.alive.is_empty());
        assert!(t.waiting(), "the packet's copy is still to come");
        // The copy is sent once ARP resolves, and ends.
        feed(&mut t, 0x20, "net_dev_queue", None);
        assert!(t.waiting(), "the copy is alive");
        feed(&mut t, 0x20, "consume_skb", Some("icmp_rcv"));
        assert!(!t.waiting(), "the packet is done");
        // Or a clone is consumed there while the original waits: it goes
        // on when the next hop resolves.
        let mut t = Tracking::new(1);
        feed(&mut t, 0x40, "net_dev_queue", None);
        feed(&mut t, 0x48, "consume_skb", Some("__neigh_event_send"));
        assert!(t.waiting());
        feed(&mut t, 0x40, "net_dev_start_xmit", None);
        feed(&mut t, 0x40, "consume_skb", Some("icmp_rcv"));
        assert!(!t.waiting(), "the original went on and ended");
        // A consume elsewhere is an end, as before.
        let mut t = Tracking::new(1);
        feed(&mut t, 0x30, "consume_skb", Some("icmp_rcv"));
        assert!(!t.waiting());
    }

    #[test]
    fn an_xdp_run_on_a_bare_frame_is_the_packet_seen_with_a_life_of_its_own() {
        let filter = flow(17, "192.0.2.1", Some((40000, 5353)));
        let mut e = sample_step(0, "prog_return", &[], "vm", "tap0").ev;
        e.hook = Hook::ProgReturn;
        e.packet = PacketInfo {
            sport: 40000,
            dport: 5353,
            ..p("192.0.2.50", "192.0.2.1", 17)
        };
        let mut t = Tracking::new(1);
        t.event(e, &[(0, filter)], &Names::default());
        assert!(t.seen[0], "the frame is the packet: nothing else will come");
        assert!(t.alive.is_empty(), "no skb to wait for");
        assert_eq!(t.steps[0].life, 1);
    }
}

#[cfg(test)]
mod settle_tests {
    use super::*;

    #[test]
    fn once_every_skb_died_only_the_rest_of_the_settle_window_is_waited() {
        let ms = Duration::from_millis;
        assert_eq!(poll_wait(false, ms(2), ms(0)), POLL, "skbs alive");
        assert_eq!(
            poll_wait(true, ms(2), Duration::from_micros(500)),
            Duration::from_micros(1500)
        );
        assert_eq!(
            poll_wait(true, SETTLE, ms(0)),
            POLL,
            "never longer than a poll"
        );
        assert_eq!(
            poll_wait(true, ms(2), ms(3)),
            Duration::from_micros(200),
            "past the window: one short last look"
        );
    }

    #[test]
    fn settle_follows_the_kernels_pace_within_bounds() {
        assert_eq!(settle(0, 100_000), MIN_SETTLE);
        assert_eq!(settle(1_000, 5_001_000), Duration::from_millis(10));
        assert_eq!(settle(0, 1_000_000_000), SETTLE);
        // No event yet: first > last.
        assert_eq!(settle(u64::MAX, 0), MIN_SETTLE);
    }
}
