//! Tools around the pipeline: `pktfate doctor` (what this kernel
//! supports), `pktfate trace` (live tracing of a namespace), `pktfate
//! record` (expectations written from a run) and `pktfate matrix` (the
//! suite on other kernels under virtme-ng).

pub mod doctor;
pub mod live;
pub mod matrix;
pub mod record;
