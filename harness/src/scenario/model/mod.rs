//! The validated model: what the later stages build, inject and judge.

use std::path::PathBuf;
use std::time::Duration;

mod expect;
mod namespace;
mod netfilter;
mod packet;
mod program;
mod route;

pub use expect::*;
pub use namespace::*;
pub use netfilter::*;
pub use packet::*;
pub use program::*;
pub use route::*;

/// Default time to wait for every tracked skb's fate.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A validated scenario, ready to build.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name (the file stem unless `name:` is given).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// Namespaces, in file order of their names.
    pub namespaces: Vec<Namespace>,
    /// Packets to inject, each with its expectations.
    pub packets: Vec<Packet>,
    /// How long to wait for every tracked skb to die.
    pub timeout: Duration,
    /// Counter deltas across the injection.
    pub counters: Vec<CounterCheck>,
    /// What the machine must have.
    pub requires: Requires,
}
