//! The event ABI for the `no_std` tracer. The source is
//! `harness/src/abi.rs`, part of the `pktfate` crate, so the loader and the
//! programs are compiled from the same text.
#![no_std]

#[path = "../../../harness/src/abi.rs"]
mod abi;

pub use abi::*;
