//! pktfate's in-kernel tracer.
//!
//! One small raw tracepoint program per skb lifecycle tracepoint, which
//! tail-calls one shared program (`skb_common`) with the tracepoint's
//! arguments, so the verifier walks the shared body once. It decides
//! whether the skb is one of ours (already tracked by address, or in a
//! watched namespace and matching a packet filter), fills an [`Event`] in a
//! per-CPU scratch slot and copies it to the ring buffer. Tracking by address means a
//! rewrite (NAT, tc) does not lose the skb; the address is forgotten when the
//! skb is freed.
//!
//! Rust eBPF has no CO-RE relocations, so every kernel struct access goes
//! through `bpf_probe_read_kernel` at an offset taken from [`TracerConfig`].
//!
//! On the host (`cargo test --workspace`) the crate is an empty binary:
//! the programs only exist for the BPF target, where `harness/build.rs`
//! builds them.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
