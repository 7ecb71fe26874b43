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
        if iptables_managed(&ruleset, listing, warnings, family) {
            if let Some(text) = save(tool) {
                rules::add_iptables(&mut ruleset, family, &text);
            }
        }
    }
    ruleset
}

/// What nft warns of the tables iptables-nft owns.
const WARNING: &str = "managed by iptables-nft";

/// iptables' own tables and built-in chains, as iptables-nft names them.
const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];
const IPTABLES_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// Whether `family` has tables iptables-nft manages. nft warns of them
/// (on stdout or stderr); an nft older than that warning (Debian 11's
/// 0.9.8) says nothing, and then a table of iptables' name holding one of
/// its built-in chains (uppercase, as nft users do not name theirs) is
/// taken for one.
fn iptables_managed(ruleset: &Ruleset, listing: &str, warnings: &str, family: &str) -> bool {
    if listing.contains(WARNING) || warnings.contains(WARNING) {
        let table = format!("table {family} ");
        return listing.lines().any(|l| l.starts_with(&table));
    }
    ruleset.keys().any(|(f, table, chain)| {
        f == family
            && IPTABLES_TABLES.contains(&table.as_str())
            && IPTABLES_CHAINS.contains(&chain.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // What nft 0.9.8 (Debian 11) lists for iptables-nft 1.8.7's rules: no
    // warning, no comment; and a native table of iptables' name.
    const OLD_NFT: &str = "table ip filter { # handle 1
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tmeta l4proto tcp tcp dport 22 counter packets 0 bytes 0 drop # handle 2
\t}
}
table ip6 nat { # handle 2
\tchain postrouting { # handle 1
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname \"eth0\" masquerade # handle 2
\t}
}
";
    const SAVE: &str = "*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment \"no ssh\" -j DROP
COMMIT
";

    fn saved_by(
        tools: &std::cell::RefCell<Vec<&'static str>>,
    ) -> impl Fn(&'static str) -> Option<String> {
        move |tool| {
            tools.borrow_mut().push(tool);
            Some(SAVE.to_string())
        }
    }

    #[test]
    fn an_nft_that_does_not_warn_still_gets_iptables_lines_for_iptables_tables() {
        let tools = std::cell::RefCell::new(vec![]);
        let r = read_rules(OLD_NFT, "", &saved_by(&tools));
        // Only the ip family has an iptables-nft table: the ip6 nat table's
        // chain is a user's own (lowercase), so ip6tables-save is not run.
        assert_eq!(*tools.borrow(), ["iptables-save"]);
        let rule = &r[&("ip".into(), "filter".into(), "INPUT".into())].rules[0];
        assert_eq!(rule.comment.as_deref(), Some("no ssh"));
        assert!(
            rule.iptables
                .as_deref()
                .unwrap()
                .starts_with("-A INPUT -p tcp")
        );
    }

    #[test]
    fn where_nft_warns_the_warning_decides() {
        let tools = std::cell::RefCell::new(vec![]);
        let warned = "# Warning: table ip6 nat is managed by iptables-nft, do not touch!\n";
        read_rules(OLD_NFT, warned, &saved_by(&tools));
        // The warning names tables: every family listed is then asked.
        assert_eq!(*tools.borrow(), ["iptables-save", "ip6tables-save"]);
        let tools = std::cell::RefCell::new(vec![]);
        let native = OLD_NFT.replace("INPUT", "input");
        read_rules(&native, "", &saved_by(&tools));
        assert!(tools.borrow().is_empty());
    }
}
