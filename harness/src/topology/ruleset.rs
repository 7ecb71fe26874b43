//! Rulesets applied with the real tools, inside the namespace: nftables
//! (`nft -f -`) and iptables-save text (`iptables-restore`), each fed on
//! stdin, with the tool's error lines mapped back to the scenario.

use std::process::Command;

use super::{NetnsHandle, TopologyError};
use crate::scenario::Ruleset;
use crate::topology::netns;

/// Feeds a ruleset to `tool args` on stdin, run as a child of a thread
/// inside the namespace: it inherits that thread's namespace (no
/// `ip netns exec`, no /sys remount, no file on disk). Returns the tool's
/// stderr when it refuses.
fn restore(
    ns: &NetnsHandle,
    tool: &'static str,
    args: &'static [&'static str],
    rs: &Ruleset,
) -> Result<Option<String>, TopologyError> {
    let text = rs.text.clone();
    let out = netns::run_in(&ns.path(), move || {
        crate::common::process::fed(Command::new(tool).args(args), text.as_bytes())
    })
    .and_then(|r| r)
    .map_err(|e| {
        TopologyError::spawning(
            tool,
            format!("running {tool} in namespace `{}`", ns.name),
            e,
        )
    })?;
    if out.status.success() {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

/// Applies an nftables ruleset inside the namespace with the real `nft`,
/// fed on stdin: no file is written, so nothing can be swapped or
/// followed. Every location in nft's errors is rewritten to point into the
/// scenario or ruleset file.
pub(super) fn apply_nft(ns: &NetnsHandle, rs: &Ruleset) -> Result<(), TopologyError> {
    match restore(ns, "nft", &["-f", "-"], rs)? {
        None => Ok(()),
        Some(stderr) => Err(nft_error(rs, &stderr)),
    }
}

/// Applies iptables-save text; `--noflush` keeps what nft or an earlier
/// table made, as adding rules would.
pub(super) fn apply_iptables(
    ns: &NetnsHandle,
    rs: &Ruleset,
    v6: bool,
) -> Result<(), TopologyError> {
    let tool = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    match restore(ns, tool, &["--noflush"], rs)? {
        None => Ok(()),
        Some(stderr) => Err(iptables_error(tool, rs, &stderr)),
    }
}

/// iptables-restore names the failing line as `line N failed` or
/// `Error occurred at line: N`; line N of the text is a line of the
/// scenario or the ruleset file.
fn iptables_error(tool: &'static str, rs: &Ruleset, stderr: &str) -> TopologyError {
    let re = regex::Regex::new(r"line:? (\d+)").expect("valid regex");
    let n = re
        .captures(stderr)
        .and_then(|c| c[1].parse::<usize>().ok())
        .unwrap_or(1);
    TopologyError::Ruleset {
        tool,
        file: rs.file.display().to_string(),
        line: rs.position(n, 1).0,
        col: rs.position(n, 1).1,
        msg: crate::common::text::clip(stderr, 4000),
    }
}

fn nft_error(rs: &Ruleset, stderr: &str) -> TopologyError {
    let re = regex::Regex::new(r"(?m)^(?:/dev/stdin|-|<cmdline>):(\d+):(\d+)(?:-\d+)?: ")
        .expect("valid regex");
    let file = rs.file.display().to_string();
    let at = |c: &regex::Captures| {
        rs.position(
            c[1].parse::<usize>().unwrap_or(1),
            c[2].parse::<usize>().unwrap_or(1),
        )
    };
    let first = re.captures(stderr).map(|c| at(&c));
    let mut msg = String::new();
    let mut last = 0;
    for (i, c) in re.captures_iter(stderr).enumerate() {
        let m = c.get(0).expect("whole match");
        msg.push_str(&stderr[last..m.start()]);
        // The first location is already the error's own prefix.
        if i > 0 {
            let (line, col) = at(&c);
            msg.push_str(&format!("{file}:{line}:{col}: "));
        }
        last = m.end();
    }
    msg.push_str(&stderr[last..]);
    let (line, col) = first.unwrap_or((rs.first_line, rs.first_col));
    TopologyError::Ruleset {
        tool: "nft",
        file,
        line,
        col,
        msg: crate::common::text::clip(msg.trim(), 4000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn every_nft_error_names_the_scenario_line() {
        // A block scalar indented six spaces: text column 1 is file column 7.
        let rs = Ruleset {
            text: String::new(),
            file: PathBuf::from("scenarios/fw.yaml"),
            first_line: 20,
            first_col: 7,
            lines_match: true,
        };
        let stderr = "/dev/stdin:4:21-21: Error: syntax error, unexpected newline\n  tcp dport 80 dropx\n                    ^\n/dev/stdin:3:3-5: Error: No symbol type information\n  foo bar\n  ^^^";
        let TopologyError::Ruleset {
            file,
            line,
            col,
            msg,
            ..
        } = nft_error(&rs, stderr)
        else {
            panic!("not an nft error");
        };
        // Text line 4, column 21: file line 20 + 3, column 7 + 20.
        assert_eq!((file.as_str(), line, col), ("scenarios/fw.yaml", 23, 27));
        assert!(msg.starts_with("Error: syntax error"), "{msg}");
        assert!(
            msg.contains("scenarios/fw.yaml:22:9: Error: No symbol"),
            "{msg}"
        );
        assert!(!msg.contains("/dev/stdin"), "{msg}");
        // A quoted scalar whose `\n` escapes made the lines: every error
        // points at the scalar itself, not at lines the file does not have.
        let quoted = Ruleset {
            first_col: 10,
            lines_match: false,
            ..rs
        };
        let TopologyError::Ruleset { line, col, .. } = nft_error(&quoted, stderr) else {
            panic!("not an nft error");
        };
        assert_eq!((line, col), (20, 10));
    }

    #[test]
    fn an_iptables_restore_error_names_the_scenario_line() {
        let rs = Ruleset {
            text: String::new(),
            file: PathBuf::from("scenarios/fw.yaml"),
            first_line: 30,
            first_col: 7,
            lines_match: true,
        };
        // iptables-restore 1.8's two ways of naming the line it refused.
        for (stderr, n) in [
            ("iptables-restore: line 4 failed", 4),
            (
                "iptables-restore v1.8.9 (nf_tables): unknown option \"--dportx\"\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.",
                3,
            ),
        ] {
            let e = iptables_error("iptables-restore", &rs, stderr);
            assert!(
                e.to_string().starts_with(&format!(
                    "scenarios/fw.yaml:{}:7: iptables-restore: ",
                    29 + n
                )),
                "{e}"
            );
        }
    }
}
