//! Netfilter decisions a packet must meet: the rule or chain policy that
//! decided, the chains it went through, rules that must not match.

use crate::scenario::Location;

/// A rule or a chain's policy, named as a firewall author reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleRef {
    /// The rule with this comment (nft `comment "..."`, iptables
    /// `-m comment --comment "..."`).
    Comment(String),
    /// The rule whose text, as `nft list` or `iptables-save` prints it,
    /// contains this (whitespace-insensitive).
    Text(String),
    /// The policy of this chain: `chain`, `table chain` or
    /// `family table chain`.
    Policy(String),
    /// The rule at this 1-based position of a chain, in the order
    /// `nft list` (or `iptables-save`) prints the chain's rules.
    Position {
        /// `chain`, `table chain` or `family table chain`.
        chain: String,
        /// 1 for the chain's first rule.
        position: usize,
    },
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleRef::Comment(c) => write!(f, "the rule with comment \"{c}\""),
            RuleRef::Text(t) => write!(f, "the rule `{t}`"),
            RuleRef::Policy(c) => write!(f, "the policy of chain {c}"),
            RuleRef::Position { chain, position } => {
                write!(f, "rule {position} of chain {chain}")
            }
        }
    }
}

/// The conntrack state of a packet as a rule saw it (`ct state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// Not valid for its connection (or not seen by conntrack).
    Invalid,
    /// Part of a connection that has seen both directions.
    Established,
    /// Related to a connection (an ICMP error, an expectation).
    Related,
    /// The first packet of a connection.
    New,
    /// Exempted from tracking (`notrack`).
    Untracked,
}

impl CtState {
    /// Every state, as nft writes it.
    pub const ALL: [CtState; 5] = [
        Self::Invalid,
        Self::Established,
        Self::Related,
        Self::New,
        Self::Untracked,
    ];

    /// As nft writes it (`ct state established`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Established => "established",
            Self::Related => "related",
            Self::New => "new",
            Self::Untracked => "untracked",
        }
    }

    /// From the kernel's `NF_CT_STATE_*_BIT` value (one bit set).
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            1 => Some(Self::Invalid),
            2 => Some(Self::Established),
            4 => Some(Self::Related),
            8 => Some(Self::New),
            64 => Some(Self::Untracked),
            _ => None,
        }
    }
}

/// A [`RuleRef`], in a namespace when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// What.
    pub rule: RuleRef,
    /// The namespace whose rules it is (any traced one when absent).
    pub ns: Option<String>,
    /// The conntrack state the packet had when that rule decided.
    pub ct_state: Option<CtState>,
    /// Where the scenario says it.
    pub at: Option<Location>,
}

/// A chain as the scenario names it: `chain`, `table chain` or
/// `family table chain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRef {
    /// The name, whitespace collapsed.
    pub name: String,
    /// Where the scenario says it.
    pub at: Option<Location>,
}

/// `netfilter:` under `expect` (or `reply`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetfilterExpect {
    /// The rule or policy whose verdict settled the packet: for a dropped
    /// packet the drop, else one of the final verdicts (accept, queue) of
    /// the hooks it crossed.
    pub decided_by: Option<RuleMatch>,
    /// Chains the packet went through, in this order (others may come
    /// between).
    pub traversed: Vec<ChainRef>,
    /// Rules that must not match the packet.
    pub not_matched: Vec<RuleMatch>,
    /// Where the block is.
    pub at: Option<Location>,
}

impl NetfilterExpect {
    /// Every rule reference, for checks against the rulesets.
    pub fn refs(&self) -> impl Iterator<Item = &RuleMatch> {
        self.decided_by.iter().chain(&self.not_matched)
    }
}

/// Whether `name` (1 to 3 words) names the chain `family table chain`.
pub fn names_chain(name: &str, family: &str, table: &str, chain: &str) -> bool {
    let want: Vec<&str> = name.split_whitespace().collect();
    let full = [family, table, chain];
    !want.is_empty() && want.len() <= 3 && full[3 - want.len()..] == want[..]
}

/// The namespaces that may hold netfilter rules: their own rulesets, a
/// CNI plugin's (in the node), or ones their `run:` commands add.
pub fn rule_namespaces(namespaces: &[super::Namespace]) -> Vec<String> {
    namespaces
        .iter()
        .filter(|n| {
            n.nft.is_some()
                || n.iptables.is_some()
                || n.ip6tables.is_some()
                || namespaces
                    .iter()
                    .any(|m| m.cni.as_ref().is_some_and(|c| c.node == n.name))
                || n.run
                    .iter()
                    .any(|c| c.contains("nft") || c.contains("iptables"))
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Whether a namespace's rules are only its own rulesets: no CNI plugin
/// and no `run:` command may add any.
pub fn own_rules_only(ns: &super::Namespace, namespaces: &[super::Namespace]) -> bool {
    !namespaces
        .iter()
        .any(|m| m.cni.as_ref().is_some_and(|c| c.node == ns.name))
        && ns.run.is_empty()
}

/// The comments of a namespace's own rulesets, when those are all its
/// rules (no CNI plugin or `run:` command adds any): `None` otherwise.
pub fn ruleset_comments(
    ns: &super::Namespace,
    namespaces: &[super::Namespace],
) -> Option<Vec<String>> {
    if !own_rules_only(ns, namespaces) {
        return None;
    }
    static COMMENT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"comment\s+"([^"]*)"|--comment\s+([^\s"]+)"#).expect("valid regex")
    });
    let mut out = vec![];
    for rs in [&ns.nft, &ns.iptables, &ns.ip6tables].into_iter().flatten() {
        for c in COMMENT.captures_iter(&rs.text) {
            if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                out.push(m.as_str().to_string());
            }
        }
    }
    Some(out)
}

/// Conntrack status bit names (`IPS_*_BIT`), by bit.
pub const CT_STATUS_BITS: [&str; 16] = [
    "EXPECTED",
    "SEEN_REPLY",
    "ASSURED",
    "CONFIRMED",
    "SRC_NAT",
    "DST_NAT",
    "SEQ_ADJUST",
    "SRC_NAT_DONE",
    "DST_NAT_DONE",
    "DYING",
    "FIXED_TIMEOUT",
    "TEMPLATE",
    "UNTRACKED",
    "HELPER",
    "OFFLOAD",
    "HW_OFFLOAD",
];

/// Conntrack TCP state names (`TCP_CONNTRACK_*`), by value.
pub const CT_TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// One direction of a connection, as far as the scenario says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtTupleWant {
    /// Source address.
    pub src: Option<std::net::IpAddr>,
    /// Destination address.
    pub dst: Option<std::net::IpAddr>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
    /// IP protocol number.
    pub proto: Option<u8>,
}

impl std::fmt::Display for CtTupleWant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |a: Option<std::net::IpAddr>, p: Option<u16>| {
            format!(
                "{}{}",
                a.map_or("*".into(), |a| a.to_string()),
                p.map_or(String::new(), |p| format!(":{p}"))
            )
        };
        write!(
            f,
            "{} -> {}",
            side(self.src, self.sport),
            side(self.dst, self.dport)
        )?;
        if let Some(p) = self.proto {
            write!(f, " proto {p}")?;
        }
        Ok(())
    }
}

/// A conntrack entry a namespace must hold at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtWant {
    /// The namespace.
    pub ns: String,
    /// Its original direction.
    pub orig: Option<CtTupleWant>,
    /// Its reply direction (NAT applied).
    pub reply: Option<CtTupleWant>,
    /// TCP state (`ESTABLISHED`, `SYN_RECV`, ...).
    pub state: Option<String>,
    /// Status bits that must be set.
    pub status: Vec<String>,
    /// Connection mark.
    pub mark: Option<u32>,
    /// Zone.
    pub zone: Option<u16>,
    /// Where the scenario says it.
    pub at: Option<Location>,
}

impl std::fmt::Display for CtWant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(o) = &self.orig {
            parts.push(format!("orig {o}"));
        }
        if let Some(r) = &self.reply {
            parts.push(format!("reply {r}"));
        }
        if let Some(s) = &self.state {
            parts.push(format!("state {s}"));
        }
        if !self.status.is_empty() {
            parts.push(format!("status {}", self.status.join("|")));
        }
        if let Some(m) = self.mark {
            parts.push(format!("mark {m}"));
        }
        if let Some(z) = self.zone {
            parts.push(format!("zone {z}"));
        }
        write!(f, "an entry in {} with {}", self.ns, parts.join(", "))
    }
}

/// Whether the scenario may rewrite addresses or ports of its packets: a
/// NAT in a ruleset (nft `snat`/`dnat`/`masquerade`/`redirect`, an
/// iptables `*nat` table), a CNI plugin (portmap, a bridge's `ipMasq`), a
/// tc rewrite, or a `run:` command that may add any of these.
pub fn may_rewrite(namespaces: &[super::Namespace]) -> bool {
    namespaces.iter().any(|n| {
        let nft = n.nft.as_ref().is_some_and(|r| {
            ["snat", "dnat", "masquerade", "redirect"]
                .iter()
                .any(|k| r.text.contains(k))
        });
        let ipt = [&n.iptables, &n.ip6tables]
            .into_iter()
            .flatten()
            .any(|r| r.text.contains("*nat"));
        let tc = n
            .tc
            .iter()
            .any(|t| matches!(t, super::TcSpec::Program { program, .. } if program.starts_with("rewrite")));
        nft || ipt || tc || n.cni.is_some() || n.run.iter().any(|c| c.contains("nat") || c.contains("tc "))
    })
}
