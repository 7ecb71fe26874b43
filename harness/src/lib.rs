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
//! 3. [`tracer`]: raw tracepoint programs on the skb lifecycle, filtered in-kernel
//! 4. [`inject`]: crafted frames or socket sends
//! 5. [`collect`]: events until every tracked skb has died
//! 6. [`evaluate`]: fate, reason, dropping function, path
//! 7. [`report`]: timeline and expected-vs-actual text, JSON, pcapng
//!
//! [`runner`] chains them for one scenario (and a suite); [`testing`] makes
//! scenario files libtest trials; [`tools`] holds `doctor`, `trace`,
//! `record` and `matrix`.

#![warn(missing_docs)]
#![warn(clippy::pedantic)]
#![allow(
    clippy::missing_errors_doc,
    reason = "each area's error enum documents its variants; repeating them per function adds nothing"
)]
#![allow(
    clippy::must_use_candidate,
    clippy::return_self_not_must_use,
    reason = "results here are data a caller uses anyway; #[must_use] on every getter is noise"
)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss,
    reason = "kernel ABI, netlink and wire fields have fixed widths; values are range-checked where they are produced"
)]
#![allow(
    clippy::format_push_string,
    clippy::assigning_clones,
    clippy::similar_names,
    clippy::many_single_char_names,
    clippy::format_collect,
    clippy::items_after_statements,
    clippy::struct_field_names,
    clippy::unreadable_literal,
    reason = "plain code reads better than these rewrites here: message text is small, kernel addresses are written as /proc/kallsyms prints them"
)]
#![allow(
    clippy::missing_panics_doc,
    reason = "the panics left are internal invariants (validated names, NUL-free paths): internal errors, not part of an API contract"
)]
#![allow(
    clippy::wildcard_imports,
    reason = "used on purpose: the validators' shared prelude (scenario/validate/ctx.rs) and tests' `use super::*`"
)]

// The ABI is also compiled into the eBPF programs, whose objects must stay
// byte-identical: lint attributes live here, not in the file.
#[allow(
    clippy::pub_underscore_fields,
    reason = "`_pad` fields are the C layout's padding, public so both sides build the struct"
)]
#[allow(
    clippy::inline_always,
    reason = "the eBPF side needs it inlined: BPF-to-BPF calls cost verifier work"
)]
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
