//! `pktfate merge`: the JSON reports of a matrix run's shards (one per CI
//! job) combined into the one table, JSON, `JUnit` and exit status an
//! unsharded run gives. Shards of different pktfate versions, scenario
//! sets, kernel lists or shard counts are refused, and so is a set with a
//! shard missing or given twice: nothing partial is reported as a pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::KernelResult;
use super::shard::Shard;

/// What `pktfate matrix --format json` writes: the results, and what a
/// merge must check they belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixReport {
    /// The pktfate version that ran it.
    pub pktfate: String,
    /// `--kernel` values, in order (the whole run's, not the shard's).
    pub kernels: Vec<String>,
    /// Scenario files, in order (the whole run's, after `--filter`).
    pub scenarios: Vec<String>,
    /// Which shard this is; `None` for a whole run (or a merge).
    pub shard: Option<Shard>,
    /// Per kernel booted.
    pub results: Vec<KernelResult>,
}

impl MatrixReport {
    /// Every kernel this run (or shard) had to boot was booted, ran every
    /// scenario it had, and passed: an interrupted run, a guest that wrote
    /// half its results, or a report missing a kernel is no pass. A shard
    /// left with no pairs (more shards than pairs) has nothing to fail.
    pub fn passed(&self) -> bool {
        self.shortfall().is_none() && self.results.iter().all(KernelResult::ok)
    }

    /// What the report lacks of what it had to run, in words.
    pub fn shortfall(&self) -> Option<String> {
        let scenarios: Vec<std::path::PathBuf> = self
            .scenarios
            .iter()
            .map(std::path::PathBuf::from)
            .collect();
        let mut short = vec![];
        for (spec, files) in super::shard::slice(&self.kernels, &scenarios, self.shard) {
            match self.results.iter().find(|r| r.spec == spec) {
                None => short.push(format!("kernel {spec} did not run")),
                Some(r) if r.scenarios.len() < files.len() => short.push(format!(
                    "kernel {spec} reported {} of its {} scenarios",
                    r.scenarios.len(),
                    files.len()
                )),
                Some(_) => {}
            }
        }
        (!short.is_empty()).then(|| short.join("; "))
    }
}

/// Why shards do not merge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// A report is a whole run, not a shard.
    #[error("{0} is not a shard (it was run without --shard)")]
    NotAShard(String),
    /// Reports disagree on what they are shards of.
    #[error("{file} is a shard of another run than {first}: its {what} differ")]
    Mixed {
        /// The first report.
        first: String,
        /// The one that differs.
        file: String,
        /// What differs: pktfate version, kernels, scenarios, shard count.
        what: &'static str,
    },
    /// The same shard twice.
    #[error("shard {shard} is given twice ({a} and {b})")]
    Duplicate {
        /// The shard.
        shard: Shard,
        /// One file.
        a: String,
        /// The other.
        b: String,
    },
    /// Shards missing.
    #[error("shards {missing} of {count} are missing")]
    Missing {
        /// Which, as `2, 4`.
        missing: String,
        /// N.
        count: usize,
    },
}

impl MergeError {
    /// How to fix it.
    pub fn hint(&self) -> &'static str {
        match self {
            MergeError::Empty | MergeError::Missing { .. } => {
                "give every shard's report: pktfate merge shard-1.json ... shard-N.json"
            }
            MergeError::NotAShard(_) => "a whole run's report needs no merge",
            MergeError::Mixed { .. } => {
                "run every shard with the same pktfate, --kernel list, scenarios, --filter and N"
            }
            MergeError::Duplicate { .. } => "give each shard's report once",
        }
    }
}

/// Combines shards' reports (`(file name, report)`) into one whole-run
/// report: per kernel, the cells of every shard in scenario order.
pub fn merge(reports: &[(String, MatrixReport)]) -> Result<MatrixReport, MergeError> {
    let (first_file, first) = reports.first().ok_or(MergeError::Empty)?;
    let shard_of =
        |file: &str, r: &MatrixReport| r.shard.ok_or_else(|| MergeError::NotAShard(file.into()));
    let count = shard_of(first_file, first)?.count;
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    for (file, r) in reports {
        let shard = shard_of(file, r)?;
        let differs = |what| MergeError::Mixed {
            first: first_file.clone(),
            file: file.clone(),
            what,
        };
        if r.pktfate != first.pktfate {
            return Err(differs("pktfate versions"));
        }
        if r.kernels != first.kernels {
            return Err(differs("kernel lists"));
        }
        if r.scenarios != first.scenarios {
            return Err(differs("scenario sets"));
        }
        if shard.count != count {
            return Err(differs("shard counts"));
        }
        if let Some(a) = seen.insert(shard.index, file) {
            return Err(MergeError::Duplicate {
                shard,
                a: a.into(),
                b: file.clone(),
            });
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|k| !seen.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            count,
        });
    }
    // In shard order, a kernel's cells come in scenario order.
    let mut ordered: Vec<&MatrixReport> = reports.iter().map(|(_, r)| r).collect();
    ordered.sort_by_key(|r| r.shard.map(|s| s.index));
    let mut results: Vec<KernelResult> = vec![];
    for r in ordered.iter().flat_map(|r| &r.results) {
        match results.iter_mut().find(|m| m.spec == r.spec) {
            None => results.push(r.clone()),
            Some(m) => absorb(m, r),
        }
    }
    results.sort_by_key(|r| first.kernels.iter().position(|k| *k == r.spec));
    Ok(MatrixReport {
        pktfate: first.pktfate.clone(),
        kernels: first.kernels.clone(),
        scenarios: first.scenarios.clone(),
        shard: None,
        results,
    })
}

/// Adds another shard's run of the same kernel to `into`.
fn absorb(into: &mut KernelResult, other: &KernelResult) {
    into.scenarios.extend(other.scenarios.iter().cloned());
    into.reports.extend(other.reports.iter().cloned());
    into.seconds = ((into.seconds + other.seconds) * 10.0).round() / 10.0;
    into.error = match (into.error.take(), &other.error) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or_else(|| b.clone()),
    };
    into.panicked_first = into
        .panicked_first
        .take()
        .or_else(|| other.panicked_first.clone());
    if into.functions.is_none() {
        into.functions.clone_from(&other.functions);
    }
    for h in &other.hooks {
        if !into.hooks.contains(h) {
            into.hooks.push(h.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::shard::{Shard, slice};
    use super::super::{Cell, human, junit};
    use super::*;
    use crate::report::model::Status;
    use std::path::PathBuf;

    /// What a run of `shard` reports, for kernels whose cell for scenario
    /// i is pass except where `fails` says.
    fn run(kernels: &[String], scenarios: &[PathBuf], shard: Option<Shard>) -> MatrixReport {
        let results = slice(kernels, scenarios, shard)
            .into_iter()
            .map(|(k, files)| KernelResult {
                kernel: format!("{k}.0-amd64"),
                spec: k.clone(),
                backend: "raw_tp".into(),
                hooks: vec!["kfree_skb".into()],
                skipped_hooks: vec![],
                functions: None,
                scenarios: files
                    .iter()
                    .map(|f| {
                        let fails = k == "6.1" && f.ends_with("s3.yaml");
                        Cell {
                            name: f.file_stem().unwrap().to_string_lossy().into(),
                            path: f.display().to_string(),
                            status: if fails { Status::Fail } else { Status::Pass },
                            message: if fails {
                                "fate: expected dropped, got delivered".into()
                            } else {
                                String::new()
                            },
                        }
                    })
                    .collect(),
                reports: vec![],
                error: None,
                panicked_first: None,
                seconds: 1.0,
            })
            .collect();
        MatrixReport {
            pktfate: "0.1.0".into(),
            kernels: kernels.to_vec(),
            scenarios: scenarios.iter().map(|p| p.display().to_string()).collect(),
            shard,
            results,
        }
    }

    #[test]
    fn four_shards_over_two_kernels_merge_into_the_unsharded_table() {
        let kernels: Vec<String> = ["6.1", "6.12"].map(String::from).into();
        let scenarios: Vec<PathBuf> = (0..7)
            .map(|i| PathBuf::from(format!("scenarios/s{i}.yaml")))
            .collect();
        let whole = run(&kernels, &scenarios, None);
        let shards: Vec<(String, MatrixReport)> = (1..=4)
            .map(|k| {
                (
                    format!("shard-{k}.json"),
                    run(&kernels, &scenarios, Some(Shard { index: k, count: 4 })),
                )
            })
            .collect();
        // Shards written as JSON and read back, as CI artifacts are.
        let shards: Vec<(String, MatrixReport)> = shards
            .into_iter()
            .rev()
            .map(|(f, r)| {
                (
                    f,
                    serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap(),
                )
            })
            .collect();
        let merged = merge(&shards).unwrap();
        // The table is the same but for the summed guest time.
        let strip = |t: String| {
            t.lines()
                .filter(|l| !l.contains("backend"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(human(&merged.results)), strip(human(&whole.results)));
        assert!(human(&merged.results).contains("matrix: 1 of 2 kernels passed"));
        let (a, b) = (junit(&merged.results), junit(&whole.results));
        let cases = |x: &str| x.matches("<testcase").count();
        assert_eq!(cases(&a), cases(&b));
        assert_eq!(merged.shard, None);
        assert!(!merged.passed(), "6.1 fails s3");
    }

    #[test]
    fn a_report_passes_only_with_every_kernel_and_scenario_it_had() {
        let kernels: Vec<String> = ["6.1", "6.12"].map(String::from).into();
        let scenarios: Vec<PathBuf> = (0..2)
            .map(|i| PathBuf::from(format!("s{i}.yaml")))
            .collect();
        let whole = run(&kernels, &scenarios, None);
        assert!(whole.passed());
        // Interrupted before the second kernel.
        let mut cut = whole.clone();
        cut.results.pop();
        assert!(!cut.passed());
        assert_eq!(cut.shortfall().as_deref(), Some("kernel 6.12 did not run"));
        // A guest that wrote one result of two.
        let mut half = whole.clone();
        half.results[1].scenarios.pop();
        assert!(!half.passed());
        assert_eq!(
            half.shortfall().as_deref(),
            Some("kernel 6.12 reported 1 of its 2 scenarios")
        );
        // 4 pairs in 6 shards: shard 6 has none, and nothing to fail.
        let empty = run(&kernels, &scenarios, Some(Shard { index: 6, count: 6 }));
        assert!(empty.results.is_empty());
        assert!(empty.passed());
    }

    #[test]
    fn partial_or_mixed_shards_are_refused() {
        let kernels: Vec<String> = ["6.1", "6.12"].map(String::from).into();
        let scenarios: Vec<PathBuf> = (0..4)
            .map(|i| PathBuf::from(format!("s{i}.yaml")))
            .collect();
        let shard = |k, n| {
            (
                format!("shard-{k}.json"),
                run(&kernels, &scenarios, Some(Shard { index: k, count: n })),
            )
        };
        assert_eq!(merge(&[]).unwrap_err(), MergeError::Empty);
        assert_eq!(
            merge(&[shard(1, 3), shard(3, 3)]).unwrap_err(),
            MergeError::Missing {
                missing: "2".into(),
                count: 3
            }
        );
        assert!(matches!(
            merge(&[shard(1, 2), shard(1, 2)]).unwrap_err(),
            MergeError::Duplicate { .. }
        ));
        assert!(matches!(
            merge(&[shard(1, 2), shard(2, 3)]).unwrap_err(),
            MergeError::Mixed {
                what: "shard counts",
                ..
            }
        ));
        let mut other = shard(2, 2);
        other.1.pktfate = "0.2.0".into();
        let e = merge(&[shard(1, 2), other]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard-2.json is a shard of another run than shard-1.json: its pktfate versions differ"
        );
        let mut other = shard(2, 2);
        other.1.scenarios.pop();
        assert!(matches!(
            merge(&[shard(1, 2), other]).unwrap_err(),
            MergeError::Mixed {
                what: "scenario sets",
                ..
            }
        ));
        let whole = ("all.json".to_string(), run(&kernels, &scenarios, None));
        assert_eq!(
            merge(&[whole]).unwrap_err(),
            MergeError::NotAShard("all.json".into())
        );
    }
}
