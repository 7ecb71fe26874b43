//! The rules a namespace has, as users read them: `nft -a list ruleset`
//! (each rule with its handle) and, for the tables iptables-nft manages,
//! `iptables-save`'s line at the same position of the same chain.

use std::collections::HashMap;

/// A rule of a chain, in the chain's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleText {
    /// Its handle.
    pub handle: u64,
    /// As `nft list` prints it (counters left out).
    pub nft: String,
    /// Its comment, from nft's `comment "..."` or iptables' `--comment`.
    pub comment: Option<String>,
    /// Its `iptables-save` line (`-A CHAIN ...`), for iptables-nft tables.
    pub iptables: Option<String>,
}

/// The netfilter hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfHook {
    /// `netdev` ingress: right after the device received the packet.
    Ingress,
    /// Before the input route lookup.
    Prerouting,
    /// After the route lookup chose local delivery.
    Input,
    /// After the route lookup chose forwarding.
    Forward,
    /// A locally generated packet, after its route lookup.
    Output,
    /// Before the packet is handed to its output device.
    Postrouting,
    /// `netdev` egress: in the device's transmit path.
    Egress,
}

impl NfHook {
    /// From nft's `type filter hook <name>`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ingress" => Self::Ingress,
            "prerouting" => Self::Prerouting,
            "input" => Self::Input,
            "forward" => Self::Forward,
            "output" => Self::Output,
            "postrouting" => Self::Postrouting,
            "egress" => Self::Egress,
            _ => return None,
        })
    }

    /// Its name, as nft writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Prerouting => "prerouting",
            Self::Input => "input",
            Self::Forward => "forward",
            Self::Output => "output",
            Self::Postrouting => "postrouting",
            Self::Egress => "egress",
        }
    }
}

/// A chain's rules and, for a base chain, its hook and policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainRules {
    /// Rules in order.
    pub rules: Vec<RuleText>,
    /// `accept`/`drop` of a base chain.
    pub policy: Option<String>,
    /// The hook of a base chain.
    pub hook: Option<NfHook>,
}

/// The rules of a namespace by (family, table, chain).
pub type Ruleset = HashMap<(String, String, String), ChainRules>;

/// Counters change with every packet and say nothing about the rule.
fn without_counters(rule: &str) -> String {
    // Compiled once: a listing calls this for every rule.
    static COUNTER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\s*counter packets \d+ bytes \d+").expect("valid regex")
    });
    COUNTER
        .replace_all(rule, "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value after `key`: quoted, or one word (`iptables-save` quotes a
/// comment only when it has spaces).
fn quoted_after(text: &str, key: &str) -> Option<String> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start();
    match rest.strip_prefix('"') {
        Some(q) => Some(q[..q.find('"')?].to_string()),
        None => rest.split_whitespace().next().map(String::from),
    }
}

/// Parses `nft -a list ruleset` text.
pub fn parse_nft(text: &str) -> Ruleset {
    let mut out = Ruleset::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), None::<String>);
    for l in text.lines() {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            let mut f = rest.split_whitespace();
            family = f.next().unwrap_or_default().to_string();
            table = f.next().unwrap_or_default().to_string();
            chain = None;
        } else if let Some(rest) = t.strip_prefix("chain ") {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            out.entry((family.clone(), table.clone(), name.clone()))
                .or_default();
            chain = Some(name);
        } else if t == "}" {
            // A chain's or a table's end; a rule never is one.
            if chain.take().is_none() {
                table.clear();
            }
        } else if let Some(c) = &chain {
            let entry = out
                .entry((family.clone(), table.clone(), c.clone()))
                .or_default();
            if t.starts_with("type ") {
                entry.hook = t
                    .split_whitespace()
                    .skip_while(|w| *w != "hook")
                    .nth(1)
                    .and_then(NfHook::parse);
                entry.policy = t
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("policy "))
                    .map(|p| p.trim().to_string());
            } else if let Some((rule, handle)) = t.rsplit_once("# handle ") {
                if let Ok(handle) = handle.trim().parse() {
                    entry.rules.push(RuleText {
                        handle,
                        nft: without_counters(rule.trim()),
                        comment: quoted_after(rule, "comment "),
                        iptables: None,
                    });
                }
            }
        }
    }
    out
}

/// Adds `iptables-save` lines (of `family` "ip" or "ip6") to the rules of
/// the same table and chain, position by position: iptables-nft keeps a
/// chain's rules in nft in the same order.
pub fn add_iptables(rules: &mut Ruleset, family: &str, save: &str) {
    let mut table = String::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in save.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.trim().to_string();
            seen.clear();
        } else if let Some(rest) = l.strip_prefix("-A ") {
            let chain = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let n = seen.entry(chain.clone()).or_insert(0);
            let key = (family.to_string(), table.clone(), chain);
            if let Some(r) = rules.get_mut(&key).and_then(|c| c.rules.get_mut(*n)) {
                r.iptables = Some(l.trim().to_string());
                if r.comment.is_none() {
                    r.comment = quoted_after(l, "--comment ");
                }
            }
            *n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What nft 1.0 and iptables-nft 1.8 print for the same ruleset (the
    // SSH rule jumps to a user chain whose rule carries a comment).
    const NFT: &str = "table ip filter { # handle 1
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport 22 counter packets 1 bytes 60 jump SSH # handle 4
\t}

\tchain SSH { # handle 3
\t\tip saddr 198.51.100.20  counter packets 0 bytes 0 drop # handle 5
\t}
}
table inet fw { # handle 2
\tchain input { # handle 1
\t\ttype filter hook input priority 0; policy accept;
\t\ttcp dport 90 reject comment \"no port 90\" # handle 2
\t}
}
";
    const SAVE: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT DROP [2:100]
:SSH - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j SSH
-A SSH -s 198.51.100.20/32 -m comment --comment \"block ssh\" -j DROP
-A SSH -m comment --comment web -j ACCEPT
COMMIT
";

    #[test]
    fn rules_by_chain_with_handles_comments_and_iptables_lines() {
        let mut r = parse_nft(NFT);
        add_iptables(&mut r, "ip", SAVE);
        let key = |f: &str, t: &str, c: &str| (f.to_string(), t.to_string(), c.to_string());
        let input = &r[&key("ip", "filter", "INPUT")];
        assert_eq!(input.policy.as_deref(), Some("drop"));
        assert_eq!(input.hook, Some(NfHook::Input));
        assert_eq!(input.rules[0].handle, 4);
        assert_eq!(input.rules[0].nft, "tcp dport 22 jump SSH");
        assert_eq!(
            input.rules[0].iptables.as_deref(),
            Some("-A INPUT -p tcp -m tcp --dport 22 -j SSH")
        );
        let ssh = &r[&key("ip", "filter", "SSH")];
        assert_eq!(ssh.policy, None);
        assert_eq!(ssh.hook, None);
        assert_eq!(ssh.rules[0].comment.as_deref(), Some("block ssh"));
        let fw = &r[&key("inet", "fw", "input")];
        assert_eq!(fw.rules[0].comment.as_deref(), Some("no port 90"));
        assert_eq!(fw.rules[0].iptables, None);
        // iptables-save quotes a comment only when it has spaces.
        assert_eq!(
            quoted_after("-A SSH -m comment --comment web -j ACCEPT", "--comment "),
            Some("web".into())
        );
    }
}
