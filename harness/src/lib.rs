//! pktfate: scenario-driven regression tests for the Linux network stack.
pub mod btf;
pub mod kallsyms;
pub mod scenario;
pub mod text;
pub mod tracer;
