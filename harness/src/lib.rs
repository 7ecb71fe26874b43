//! pktfate: scenario-driven regression tests for the Linux network stack.
//!
//! A scenario (YAML) builds namespaces, links, addresses, routes and sysctls,
//! injects crafted packets, and asserts with an embedded eBPF tracer where
//! the kernel took each packet and, if it died, the exact drop reason and
//! the function that dropped it.
//!
//! The stages, in the order data flows through them, one module each
//! (ARCHITECTURE.md; a stage imports only earlier ones and [`common`]):
//!
//! 1. [`scenario`]: file → validated [`scenario::Scenario`]
//! 2. [`topology`]: namespaces, links, addresses, routes, rulesets, programs;
//!    teardown on `Drop` of [`topology::Topology`], on signals and after
//!    crashed runs ([`topology::teardown`])
//! 3. [`tracer`]: tp_btf programs on the skb lifecycle, filtered in-kernel
//! 4. [`inject`]: crafted frames or socket sends
//! 5. [`collect`]: events until every tracked skb has died
//! 6. [`evaluate`]: fate, reason, dropping function, path
//! 7. [`report`]: timeline and expected-vs-actual text, JSON, pcapng
//!
//! [`runner`] chains them for one scenario (and a suite); [`testing`] makes
//! scenario files libtest trials; [`tools`] holds `doctor`, `trace`,
//! `record` and `matrix`.

pub mod abi;
pub mod common;

pub mod scenario;
pub mod topology;
pub mod tracer;
pub mod inject;
pub mod collect;
pub mod evaluate;
pub mod report;

pub mod runner;
pub mod testing;
pub mod tools;
