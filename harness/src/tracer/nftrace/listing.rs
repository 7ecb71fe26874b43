//! Listing a namespace's rules with the real tools: `nft -a list
//! ruleset` (handles) and, for iptables-nft's tables, `iptables-save`.

use std::io;
use std::process::Command;

use super::rules::{self, Ruleset};

/// pktfate's own table in a traced namespace.
pub const TRACE_TABLE: &str = "pktfate_trace";

/// Runs `tool args` with `stdin` in this thread's namespace; returns
/// (success, stdout, stderr).
pub(super) fn run_tool(
    tool: &str,
    args: &[&str],
    stdin: &str,
) -> io::Result<(bool, String, String)> {
    let out = crate::common::process::fed(Command::new(tool).args(args), stdin.as_bytes())?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The rules of `nft -a list ruleset` output (pktfate's table left out),
/// with `iptables-save`'s lines for the tables iptables-nft manages
/// (`save` runs a save tool where the listing was made).
pub(super) fn read_rules(
    listing: &str,
    warnings: &str,
    save: &dyn Fn(&'static str) -> Option<String>,
) -> Ruleset {
    let mut ruleset = rules::parse_nft(listing);
    ruleset.retain(|(f, table, _), _| !(f == "inet" && table == TRACE_TABLE));
    for (family, tool) in [("ip", "iptables-save"), ("ip6", "ip6tables-save")] {
        let managed = format!("table {family} ");
        // nft warns (on stderr) about the tables iptables-nft owns.
        if (listing.contains("managed by iptables-nft")
            || warnings.contains("managed by iptables-nft"))
            && listing.lines().any(|l| l.starts_with(&managed))
        {
            if let Some(text) = save(tool) {
                rules::add_iptables(&mut ruleset, family, &text);
            }
        }
    }
    ruleset
}
