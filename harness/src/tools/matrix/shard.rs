//! `--shard K/N`: a deterministic slice of the (kernel, scenario) pairs,
//! so a CI job matrix can spread one matrix run over N jobs, and
//! [`super::merge`] puts their reports back together.
//!
//! The pairs are listed kernel by kernel, scenarios in file order, and cut
//! into N runs of consecutive pairs whose lengths differ by at most one.
//! With as many shards as kernels each job boots one kernel; with more,
//! a kernel's scenarios are split between jobs; every pair is in exactly
//! one shard.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Shard K of N (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// K: which one, from 1.
    pub index: usize,
    /// N: how many.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a `--shard` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `K/N` with two whole numbers.
    #[error("--shard {0}: write K/N, e.g. 1/4 (shard K of N, from 1)")]
    Form(String),
    /// N is 0.
    #[error("--shard {0}: N must be at least 1")]
    NoShards(String),
    /// K outside 1..=N.
    #[error("--shard {given}: K must be between 1 and {count} (shards are numbered from 1)")]
    OutOfRange {
        /// As written.
        given: String,
        /// N.
        count: usize,
    },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let form = || ShardError::Form(s.into());
        let (k, n) = s.split_once('/').ok_or_else(form)?;
        let k: usize = k.trim().parse().map_err(|_| form())?;
        let n: usize = n.trim().parse().map_err(|_| form())?;
        if n == 0 {
            return Err(ShardError::NoShards(s.into()));
        }
        if k == 0 || k > n {
            return Err(ShardError::OutOfRange {
                given: s.into(),
                count: n,
            });
        }
        Ok(Shard { index: k, count: n })
    }
}

/// The scenarios each kernel runs in `shard` (every kernel and every
/// scenario without one), in the order given; kernels with none are left
/// out.
pub fn slice(
    kernels: &[String],
    scenarios: &[PathBuf],
    shard: Option<Shard>,
) -> Vec<(String, Vec<PathBuf>)> {
    let total = kernels.len() * scenarios.len();
    let (start, end) = match shard {
        None => (0, total),
        Some(Shard { index, count }) => {
            // Shard k (0-based) gets total/count pairs, the first
            // total%count shards one more.
            let k = index - 1;
            let (base, extra) = (total / count, total % count);
            let start = k * base + k.min(extra);
            (start, start + base + usize::from(k < extra))
        }
    };
    let mut out: Vec<(String, Vec<PathBuf>)> = vec![];
    for pair in start..end {
        let (kernel, scenario) = (
            &kernels[pair / scenarios.len()],
            &scenarios[pair % scenarios.len()],
        );
        match out.last_mut() {
            Some((k, files)) if k == kernel => files.push(scenario.clone()),
            _ => out.push((kernel.clone(), vec![scenario.clone()])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_written_k_of_n_from_one() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["3/2", "0/2", "1/0", "a/2", "2", ""] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--shard {bad}:")), "{e}");
        }
        assert_eq!(
            "3/2".parse::<Shard>(),
            Err(ShardError::OutOfRange {
                given: "3/2".into(),
                count: 2
            })
        );
        assert_eq!(
            "1/0".parse::<Shard>(),
            Err(ShardError::NoShards("1/0".into()))
        );
    }

    #[test]
    fn the_shards_of_n_cover_every_pair_once_in_order() {
        let kernels: Vec<String> = ["5.10", "6.1", "6.12"].map(String::from).into();
        let scenarios: Vec<PathBuf> = (0..5)
            .map(|i| PathBuf::from(format!("s{i}.yaml")))
            .collect();
        let flat = |v: Vec<(String, Vec<PathBuf>)>| -> Vec<(String, PathBuf)> {
            v.into_iter()
                .flat_map(|(k, fs)| fs.into_iter().map(move |f| (k.clone(), f)))
                .collect()
        };
        let all = flat(slice(&kernels, &scenarios, None));
        assert_eq!(all.len(), 15);
        for n in 1..=17 {
            let mut joined = vec![];
            let mut sizes = vec![];
            for k in 1..=n {
                let part = flat(slice(
                    &kernels,
                    &scenarios,
                    Some(Shard { index: k, count: n }),
                ));
                sizes.push(part.len());
                joined.extend(part);
            }
            assert_eq!(joined, all, "{n} shards, in order, each pair once");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} shards: {sizes:?}");
        }
        // As many shards as kernels: one kernel each, all its scenarios.
        let second = slice(&kernels, &scenarios, Some(Shard { index: 2, count: 3 }));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].0, "6.1");
        assert_eq!(second[0].1, scenarios);
    }
}
