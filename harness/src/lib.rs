//! pktfate: scenario-driven regression tests for the Linux network stack.
//!
//! A scenario (YAML) builds namespaces, links, addresses, routes and sysctls,
//! injects crafted packets, and asserts with an embedded eBPF tracer where
//! the kernel took each packet and, if it died, the exact drop reason and
//! the function that dropped it.
//!
//! The stages, in the order data flows through them:
//!
//! 1. [`scenario`]: file → validated [`scenario::Scenario`]
//! 2. [`topology`]: namespaces, links, addresses, routes, sysctls
//! 3. [`tracer`]: tp_btf programs on the skb lifecycle, filtered in-kernel
//! 4. [`inject`]: packets ([`packet`]) written into tun devices
//! 5. [`collect`]: events until every tracked skb has died
//! 6. [`evaluate`]: fate, reason, dropping function, path
//! 7. [`report`]: timeline and expected-vs-actual text
//! 8. teardown: `Drop` on [`topology::Topology`], plus [`teardown`] for
//!    interrupts and crashed runs
//!
//! [`runner`] chains them for one scenario.

pub mod collect;
pub mod evaluate;
pub mod inject;
pub mod packet;
pub mod pcap;
pub mod record;
pub mod report;
pub mod scenario;
pub mod teardown;
pub mod topology;
pub mod tracer;

pub mod abi;
pub mod btf;
pub mod counters;
pub mod doctor;
pub mod fixtures;
pub mod kallsyms;
pub mod kernel_range;
pub mod kmod;
pub mod live;
pub mod matrix;
pub mod netns;
pub mod preflight;
pub mod project;
pub mod runner;
pub mod suite;
pub mod testing;
pub mod text;
