//! `pktfate record`: write what a run observed into a scenario's `expect`
//! blocks, the way snapshot tests record their snapshots. The recorded form
//! is canonical (fate, reason, dropping function, transmit devices, the
//! hooks the packet crossed, and the reply's fate), so `--check` can say
//! whether a file is stale by recording again and comparing.

use std::fmt::Write as _;
use std::path::Path;

use crate::evaluate::{self, Facts};
use crate::runner::{self, Outcome, RunError};

/// What recording produced.
pub struct Recorded {
    /// The file as it is.
    pub old: String,
    /// The file with the observed expectations.
    pub new: String,
}

impl Recorded {
    /// Whether recording would change the file.
    pub fn changed(&self) -> bool {
        self.old != self.new
    }

    /// A line diff, `-` for removed and `+` for added lines.
    pub fn diff(&self) -> String {
        diff(&self.old, &self.new)
    }
}

fn fate_lines(f: &Facts, pad: &str, out: &mut String) {
    if f.dropped {
        let _ = writeln!(out, "{pad}fate: dropped");
        if let Some(r) = &f.reason {
            let _ = writeln!(out, "{pad}reason: {r}");
        }
        if let Some(a) = &f.at {
            let _ = writeln!(out, "{pad}at: {a}");
        }
    } else if f.delivered {
        let _ = writeln!(out, "{pad}fate: delivered");
    } else if f.forwarded {
        let _ = writeln!(out, "{pad}fate: forwarded");
    } else if f.consumed {
        let _ = writeln!(out, "{pad}fate: consumed");
        if let Some(a) = &f.at {
            let _ = writeln!(out, "{pad}at: {a}");
        }
    } else {
        let _ = writeln!(out, "{pad}# no end was seen: {}", f.summary());
    }
    if f.forwarded && !f.transmitted.is_empty() {
        let _ = writeln!(out, "{pad}transmitted: [{}]", f.transmitted.join(", "));
    }
}

/// How a recorded expectation names an evaluation: by its comment, else
/// its text as written (the iptables-save line for iptables-nft rules),
/// else its chain's policy; in its namespace.
fn rule_reference(e: &crate::tracer::nftrace::RuleEval) -> Option<String> {
    use crate::tracer::nftrace::EvalKind;
    let q = |t: &str| serde_json::to_string(t).unwrap_or_default();
    let what = match (e.kind, &e.rule) {
        (EvalKind::Policy, _) => format!("policy: {}", q(&e.chain_name())),
        (EvalKind::Rule, Some(r)) => match &r.comment {
            Some(c) => format!("comment: {}", q(c)),
            None => format!("rule: {}", q(r.iptables.as_deref().unwrap_or(&r.nft))),
        },
        _ => return None,
    };
    Some(format!("{{ {what}, ns: {} }}", e.ns))
}

/// `netfilter: decided_by`, for a packet whose rule evaluations were
/// traced: its netfilter drop, or the last rule that accepted it outside
/// a NAT table (the NAT chains' accepts only let it go on).
fn netfilter_lines(o: &Outcome, i: usize, f: &Facts, pad: &str, out: &mut String) {
    let evals = evaluate::packet_evals(&o.timeline, i, false);
    let decided = evaluate::deciding(&evals, f.dropped);
    let chosen = if decided.len() == 1 {
        decided.first().copied()
    } else {
        decided.iter().rev().find(|e| e.table != "nat").copied()
    };
    if let Some(r) = chosen.and_then(rule_reference) {
        let _ = writeln!(out, "{pad}netfilter:\n{pad}  decided_by: {r}");
    }
}

/// The observed expectations of packet `i`, as the body of an `expect:`
/// block indented by `indent` spaces.
pub fn observed(o: &Outcome, i: usize, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{pad}# recorded by `pktfate record`; review before committing"
    );
    let life = evaluate::life(&o.timeline, i);
    let f = evaluate::facts(&life);
    fate_lines(&f, &pad, &mut out);
    let mut hooks: Vec<String> = vec![];
    for s in &life {
        let h = format!("{}@{}/{}", s.ev.hook, s.ns, s.dev);
        if hooks.last() != Some(&h) {
            hooks.push(h);
        }
    }
    if !hooks.is_empty() {
        let _ = writeln!(out, "{pad}path:");
        for h in hooks {
            // `dev` is `-` when the skb had none: qualify by namespace only.
            let h = h.strip_suffix("/-").unwrap_or(&h);
            let _ = writeln!(out, "{pad}  - {h}");
        }
    }
    netfilter_lines(o, i, &f, &pad, &mut out);
    let reply = evaluate::life_of(&o.timeline, i, true);
    if !reply.is_empty() {
        let rf = evaluate::facts(&reply);
        let _ = writeln!(out, "{pad}reply:");
        fate_lines(&rf, &format!("{pad}  "), &mut out);
    }
    out
}

/// Why a scenario file cannot be rewritten with what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// An `expect:` written inline (flow style): there is no block body
    /// to replace.
    #[error(
        "line {line}: `expect:` written inline; record needs a block (`expect:` on its own line)"
    )]
    Inline {
        /// Its line.
        line: usize,
    },
    /// The block already has an entry for this kernel.
    #[error("the `kernels:` block already has an entry for \"{range}\"; edit or remove it first")]
    EntryExists {
        /// The `major.minor` range.
        range: String,
    },
}

/// Replaces the body of every `expect:` block, in file order, with
/// `bodies` (each built for that block's indentation by `body_for`).
pub fn rewrite(
    text: &str,
    mut body_for: impl FnMut(usize, usize) -> String,
) -> Result<String, RewriteError> {
    rewrite_with(text, |n, indent, _old| Ok(body_for(n, indent)))
}

/// [`rewrite`], with each block's current body given to `body_for`.
pub fn rewrite_with(
    text: &str,
    mut body_for: impl FnMut(usize, usize, &str) -> Result<String, RewriteError>,
) -> Result<String, RewriteError> {
    let key = regex::Regex::new(r"^(\s*)(- )?expect:\s*(#.*)?$").expect("valid regex");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut n = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(c) = key.captures(line) else {
            if line.trim_start().starts_with("expect:")
                || line.trim_start().starts_with("- expect:")
            {
                return Err(RewriteError::Inline { line: i + 1 });
            }
            out.push_str(line);
            out.push('\n');
            i += 1;
            continue;
        };
        let key_indent = c[1].len() + c.get(2).map_or(0, |m| m.len());
        out.push_str(line);
        out.push('\n');
        // The block runs while lines are indented deeper (or blank).
        let mut end = i + 1;
        let mut last_body = i;
        while end < lines.len() {
            let l = lines[end];
            let indent = l.len() - l.trim_start().len();
            if !l.trim().is_empty() && indent <= key_indent {
                break;
            }
            if !l.trim().is_empty() {
                last_body = end;
            }
            end += 1;
        }
        let old_body: String = lines[i + 1..=last_body.max(i)]
            .iter()
            .skip(usize::from(last_body == i))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(&body_for(n, key_indent + 2, &old_body)?);
        n += 1;
        // Blank lines after the block stay where they were.
        for l in &lines[last_body + 1..end] {
            out.push_str(l);
            out.push('\n');
        }
        i = end;
    }
    Ok(out)
}

/// Runs a scenario and returns the file with what it observed.
pub fn record(path: &Path, cfg: &runner::RunConfig) -> Result<Recorded, RunError> {
    let old = std::fs::read_to_string(path).map_err(|e| {
        RunError::Scenario(vec![crate::scenario::ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: format!("cannot read: {e}"),
            hint: None,
        }])
    })?;
    let o = runner::run_file(path, cfg)?;
    let n = o.scenario.packets.len();
    let mut count = 0;
    let new = rewrite(&old, |i, indent| {
        count += 1;
        if i < n {
            observed(&o, i, indent)
        } else {
            String::new()
        }
    })
    .map_err(|m| {
        RunError::Scenario(vec![crate::scenario::ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: m.to_string(),
            hint: None,
        }])
    })?;
    if count != n {
        return Err(RunError::Scenario(vec![crate::scenario::ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg: format!("{count} `expect:` blocks for {n} packets"),
            hint: Some(
                "give every packet an `expect:` block (it may be empty) so record can fill it"
                    .into(),
            ),
        }]));
    }
    Ok(Recorded { old, new })
}

/// The fate, reason and dropping function observed for packet `i` where
/// they differ from what the scenario expects on this kernel, as
/// `(key, value)` pairs.
fn differences(o: &Outcome, i: usize) -> Vec<(&'static str, String)> {
    let e = &o.scenario.packets[i].expect;
    let f = evaluate::facts(&evaluate::life(&o.timeline, i));
    let fate = if f.dropped {
        "dropped"
    } else if f.delivered {
        "delivered"
    } else if f.forwarded {
        "forwarded"
    } else if f.consumed {
        "consumed"
    } else {
        return vec![];
    };
    let mut out = vec![];
    if e.fate.is_some_and(|x| x.to_string() != fate) {
        out.push(("fate", fate.to_string()));
    }
    if let (Some(want), Some(got)) = (&e.reason, &f.reason) {
        if want != got {
            out.push(("reason", got.clone()));
        }
    }
    if let (Some(want), Some(got)) = (&e.at, &f.at) {
        if want != got {
            out.push(("at", got.clone()));
        }
    }
    out
}

/// Adds, to a block body indented by `indent`, a `kernels:` entry for
/// `range` with `keys` (creating the `kernels:` key if there is none).
pub fn add_kernel_entry(
    body: &str,
    indent: usize,
    range: &str,
    release: &str,
    keys: &[(&str, String)],
) -> Result<String, RewriteError> {
    if keys.is_empty() {
        return Ok(body.to_string());
    }
    let pad = " ".repeat(indent);
    let mut entry =
        format!("{pad}  \"{range}\": # recorded by `pktfate record --kernel` on {release}\n");
    for (k, v) in keys {
        entry.push_str(&format!("{pad}    {k}: {v}\n"));
    }
    let lines: Vec<&str> = body.lines().collect();
    let header = format!("{pad}kernels:");
    match lines.iter().position(|l| l.trim_end() == header) {
        Some(at) => {
            if body.contains(&format!("{pad}  \"{range}\":")) {
                return Err(RewriteError::EntryExists {
                    range: range.to_string(),
                });
            }
            let mut out: String = lines[..=at].iter().map(|l| format!("{l}\n")).collect();
            out.push_str(&entry);
            out.extend(lines[at + 1..].iter().map(|l| format!("{l}\n")));
            Ok(out)
        }
        None => Ok(format!("{body}{header}\n{entry}")),
    }
}

/// Runs a scenario and returns the file with a `kernels:` entry for the
/// running kernel's `major.minor` wherever what it observed (fate, reason,
/// dropping function) differs from what the scenario expects here. The
/// rest of the file stays as written.
pub fn record_kernel(path: &Path, cfg: &runner::RunConfig) -> Result<Recorded, RunError> {
    let file_err = |msg: String| {
        RunError::Scenario(vec![crate::scenario::ScenarioError {
            loc: None,
            file: path.to_path_buf(),
            msg,
            hint: None,
        }])
    };
    let old = std::fs::read_to_string(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    let (major, minor, _) = runner::kernel_version()
        .ok_or_else(|| file_err("cannot read the kernel version".into()))?;
    let range = format!("{major}.{minor}");
    let o = runner::run_file(path, cfg)?;
    let n = o.scenario.packets.len();
    let new = rewrite_with(&old, |i, indent, body| {
        if i >= n {
            return Ok(body.to_string());
        }
        add_kernel_entry(body, indent, &range, &release, &differences(&o, i))
    })
    .map_err(|e| file_err(e.to_string()))?;
    Ok(Recorded { old, new })
}

/// A minimal line diff (longest common subsequence).
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{:>4} {}", i + 1, a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{:>4} {}", j + 1, b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_replaces_top_level_and_list_blocks() {
        let text = "namespaces: {}\nexpect:\n  fate: dropped\n  # old\n\nother: 1\n";
        let new = rewrite(text, |_, indent| {
            format!("{}fate: consumed\n", " ".repeat(indent))
        })
        .unwrap();
        assert_eq!(
            new,
            "namespaces: {}\nexpect:\n  fate: consumed\n\nother: 1\n"
        );
        let list =
            "packets:\n  - name: a\n    expect:\n      fate: dropped\n  - name: b\n    expect:\n";
        let new = rewrite(list, |i, indent| format!("{}# {i}\n", " ".repeat(indent))).unwrap();
        assert_eq!(
            new,
            "packets:\n  - name: a\n    expect:\n      # 0\n  - name: b\n    expect:\n      # 1\n"
        );
        assert_eq!(
            rewrite("expect: { fate: dropped }\n", |_, _| String::new()),
            Err(RewriteError::Inline { line: 1 })
        );
    }

    #[test]
    fn a_kernel_entry_is_added_or_joins_the_existing_block() {
        let body = "  fate: dropped\n  reason: IP_LOCAL_SOURCE\n";
        let keys = [("reason", "NOT_SPECIFIED".to_string())];
        let new = add_kernel_entry(body, 2, "6.1", "6.1.0-56-amd64", &keys).unwrap();
        assert_eq!(
            new,
            "  fate: dropped\n  reason: IP_LOCAL_SOURCE\n  kernels:\n    \"6.1\": # recorded by `pktfate record --kernel` on 6.1.0-56-amd64\n      reason: NOT_SPECIFIED\n"
        );
        // The result parses back as the override it means.
        let again =
            add_kernel_entry(&new, 2, "5.10", "5.10.0-32-amd64", &[("at", "x".into())]).unwrap();
        assert!(again.contains("  kernels:\n    \"5.10\": # recorded"));
        assert_eq!(again.matches("kernels:").count(), 1);
        assert_eq!(
            add_kernel_entry(&new, 2, "6.1", "r", &keys),
            Err(RewriteError::EntryExists {
                range: "6.1".into()
            })
        );
        assert_eq!(
            add_kernel_entry(body, 2, "6.1", "r", &[]).unwrap(),
            body,
            "nothing differs"
        );
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(d, "-   2 b\n+   2 x\n");
        assert_eq!(diff("same\n", "same\n"), "");
    }
}
