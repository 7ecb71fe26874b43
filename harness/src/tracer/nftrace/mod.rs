//! Netfilter decisions: which nftables (and iptables-nft) rule, chain
//! policy or return each of a scenario's packets met, from the kernel's
//! own trace messages (`NFNLGRP_NFTRACE`, Linux 4.6+, no kprobes).
//!
//! In each namespace that has rules, a socket opened inside it joins the
//! trace group, and a table of pktfate's own (`inet pktfate_trace`, base
//! chains on prerouting and output at priority -500, ahead of raw,
//! conntrack and NAT) sets the packet's `nftrace` bit; it holds no verdict,
//! so the user's chains decide as before. The kernel sends a packet's
//! trace messages while it evaluates the rules, before the packet moves
//! on, so once the tracer has seen every tracked skb die they are all in
//! the socket's queue: draining it needs no wait. Legacy iptables
//! (`x_tables`) sends none.
//!
//! What is not seen: `netdev` ingress and egress chains run before the bit
//! is set; a namespace's packets are all traced (they are the scenario's
//! own) and attributed to the scenario's packets afterwards.

mod message;
pub mod rules;
mod listing;

use std::io;
use std::path::{Path, PathBuf};

pub use listing::TRACE_TABLE;
use listing::{read_rules, run_tool};
pub use message::{EvalKind, NfVerdict};
use message::{NFNLGRP_NFTRACE, decode, family_name};
pub use rules::{NfHook, RuleText, Ruleset};

use crate::scenario::CtState;
use crate::tracer::PacketInfo;

/// The table that sets the `nftrace` bit (no verdicts of its own), and
/// the listing of the namespace's rules with their handles. Its chains are
/// named after their hooks: nft 0.9.8 (Debian 11's) reads a chain named
/// `out` as a keyword and refuses the table.
const ENABLE_AND_LIST: &str = "table inet pktfate_trace {
  chain prerouting { type filter hook prerouting priority -500; meta nftrace set 1; }
  chain output { type filter hook output priority -500; meta nftrace set 1; }
}
list ruleset
";

/// Deletes that table.
const REMOVE: &str = "delete table inet pktfate_trace\n";

/// Why rule tracing could not start or finish in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NfTraceError {
    /// The netlink socket inside the namespace.
    #[error("namespace `{ns}`: the netfilter trace socket: {source}")]
    Socket {
        /// The scenario's name for the namespace.
        ns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `nft` could not be run there.
    #[error("namespace `{ns}`: running nft: {source}")]
    Spawn {
        /// The namespace.
        ns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `nft` refused pktfate's trace table (no `nf_tables` in this kernel?).
    #[error("namespace `{ns}`: nft refused pktfate's trace table: {stderr}")]
    Refused {
        /// The namespace.
        ns: String,
        /// What nft said.
        stderr: String,
    },
}

/// One rule evaluation of a packet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleEval {
    /// The scenario's name for the namespace.
    pub ns: String,
    /// The table's family (`ip`, `ip6`, `inet`, ...).
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle (rule events only).
    pub handle: Option<u64>,
    /// The rule as users read it, when its handle was found.
    pub rule: Option<RuleText>,
    /// Rule, return or policy.
    pub kind: EvalKind,
    /// The verdict.
    pub verdict: NfVerdict,
    /// The chain of a jump or goto.
    pub target: Option<String>,
    /// The hook it ran at: its base chain's (a user chain's is the hook of
    /// the base chain that jumped to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<NfHook>,
    /// The kernel's per-packet trace id.
    pub id: u32,
    /// The packet's headers at the evaluation.
    pub packet: PacketInfo,
    /// Its conntrack state at this hook, where the kernel says (6.16+;
    /// absent there: invalid, or not seen by conntrack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_state: Option<CtState>,
}

impl RuleEval {
    /// `family table chain`, as nft names a chain.
    pub fn chain_name(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.chain)
    }

    /// One line: where, what, the verdict.
    pub fn describe(&self) -> String {
        let what = match (self.kind, &self.rule) {
            (EvalKind::Policy, _) => "policy".to_string(),
            (EvalKind::Return, _) => "end of chain".to_string(),
            (EvalKind::Rule, Some(r)) => match &r.iptables {
                Some(ipt) => format!("rule `{ipt}`"),
                None => format!("rule `{}`", r.nft),
            },
            (EvalKind::Rule, None) => format!("rule handle {}", self.handle.unwrap_or(0)),
        };
        let target = self
            .target
            .as_ref()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        format!(
            "{}: {what} -> {}{target}",
            self.chain_name(),
            self.verdict.name()
        )
    }
}

/// Rule tracing in one namespace.
struct Traced {
    ns: String,
    path: PathBuf,
    socket: netlink_sys::Socket,
    /// Its rules, read when tracing started (rules are loaded by then).
    ruleset: Ruleset,
}

/// Rule tracing in a scenario's namespaces, from before injection to the
/// end of collection.
pub struct NfTrace {
    spaces: Vec<Traced>,
}

/// What tracing found.
#[derive(Debug, Default)]
pub struct NfTraceResult {
    /// Every evaluation, in each namespace's order.
    pub evals: Vec<RuleEval>,
    /// Each traced namespace's rules (pktfate's table left out).
    pub rulesets: Vec<(String, Ruleset)>,
    /// Namespaces whose socket overflowed: some evaluations are missing.
    pub lost: Vec<String>,
}

/// Whether this kernel's rule traces carry the packet's conntrack state
/// (`NFTA_TRACE_CT_*`, Linux 6.16). Told from BTF: the same change gave
/// `struct nf_ct_hook` its `get_id`, which the trace code calls.
pub fn traces_ct_state() -> bool {
    // A fact of the running kernel: read its BTF once per process.
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        crate::tracer::btf::Btf::kernel()
            .is_ok_and(|b| b.member_offset("nf_ct_hook", "get_id").is_ok())
    })
}

/// The rules of the namespace at `path` as the kernel lists them
/// (`nft -a list ruleset`, and the save tools for iptables-nft's tables),
/// for a run that does not trace rules; `Ok(None)` when nft refuses.
pub fn list_in(path: &Path) -> io::Result<Option<Ruleset>> {
    crate::topology::netns::run_in(path, || -> io::Result<Option<Ruleset>> {
        let (ok, listing, warnings) = run_tool("nft", &["-a", "list", "ruleset"], "")?;
        if !ok {
            return Ok(None);
        }
        let save = |tool: &'static str| match run_tool(tool, &[], "") {
            Ok((true, text, _)) => Some(text),
            _ => None,
        };
        Ok(Some(read_rules(&listing, &warnings, &save)))
    })
    .and_then(|r| r)
}

/// [`run_tool`] inside the namespace at `path`.
fn tool_in(
    path: &Path,
    tool: &'static str,
    args: &'static [&'static str],
    stdin: &'static str,
) -> io::Result<(bool, String, String)> {
    crate::topology::netns::run_in(path, move || run_tool(tool, args, stdin)).and_then(|r| r)
}

impl NfTrace {
    /// Starts tracing in `namespaces` (scenario name, path): the socket
    /// first, so no message is missed, then the table.
    pub fn start(namespaces: &[(String, PathBuf)]) -> Result<Self, NfTraceError> {
        let mut spaces = vec![];
        for (ns, path) in namespaces {
            let socket_err = |source| NfTraceError::Socket {
                ns: ns.clone(),
                source,
            };
            let socket =
                crate::topology::netns::run_in(path, || -> io::Result<netlink_sys::Socket> {
                    let mut s =
                        netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)?;
                    s.bind_auto()?;
                    s.add_membership(NFNLGRP_NFTRACE)?;
                    // Room for a few thousand evaluations between drains.
                    let _ = s.set_rx_buf_sz(4 << 20);
                    s.set_non_blocking(true)?;
                    Ok(s)
                })
                .and_then(|r| r)
                .map_err(socket_err)?;
            // One nft run adds the table and lists the rules: each run of
            // nft costs a few milliseconds of a scenario's set-up.
            let (ok, listing, stderr) = tool_in(path, "nft", &["-a", "-f", "-"], ENABLE_AND_LIST)
                .map_err(|source| NfTraceError::Spawn {
                ns: ns.clone(),
                source,
            })?;
            if !ok {
                return Err(NfTraceError::Refused {
                    ns: ns.clone(),
                    stderr: crate::common::text::clip(stderr.trim(), 400),
                });
            }
            let save = |tool| match tool_in(path, tool, &[], "") {
                Ok((true, text, _)) => Some(text),
                _ => None,
            };
            let ruleset = read_rules(&listing, &stderr, &save);
            spaces.push(Traced {
                ns: ns.clone(),
                path: path.clone(),
                socket,
                ruleset,
            });
        }
        Ok(Self { spaces })
    }

    /// The rules of traced namespace `ns` (its scenario name), as listed
    /// when tracing started.
    pub fn ruleset(&self, ns: &str) -> Option<&Ruleset> {
        self.spaces.iter().find(|t| t.ns == ns).map(|t| &t.ruleset)
    }

    /// Whether any namespace is traced.
    pub fn is_empty(&self) -> bool {
        self.spaces.is_empty()
    }

    /// Drains every namespace's messages. With `remove`, pktfate's table
    /// is deleted too: for namespaces that outlive the run (kept for a
    /// look); the others go with their table at teardown, so the verdict
    /// does not wait for an nft run.
    pub fn finish(self, remove: bool) -> Result<NfTraceResult, NfTraceError> {
        let mut out = NfTraceResult::default();
        for t in self.spaces {
            let mut msgs = vec![];
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match t.socket.recv(&mut &mut buf[..], 0) {
                    Ok(0) => break,
                    Ok(n) => {
                        msgs.extend(crate::common::nlattr::messages(&buf[..n]).filter_map(decode));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        out.lost.push(t.ns.clone());
                    }
                    Err(_) => break,
                }
            }
            if remove {
                let (ok, _, stderr) =
                    tool_in(&t.path, "nft", &["-f", "-"], REMOVE).map_err(|source| {
                        NfTraceError::Spawn {
                            ns: t.ns.clone(),
                            source,
                        }
                    })?;
                if !ok {
                    return Err(NfTraceError::Refused {
                        ns: t.ns.clone(),
                        stderr: crate::common::text::clip(stderr.trim(), 400),
                    });
                }
            }
            let ruleset = t.ruleset;
            // The kernel dumps a packet's headers once per trace id (its
            // first evaluation at a hook); the rest carry the id only.
            // So does its conntrack state, which holds for that hook.
            let mut headers: std::collections::HashMap<u32, (PacketInfo, Option<CtState>)> =
                std::collections::HashMap::new();
            // A user chain runs at the hook of the base chain that jumped
            // to it: the last base chain this trace id went through.
            let mut at_hook: std::collections::HashMap<u32, NfHook> =
                std::collections::HashMap::new();
            for mut m in msgs {
                if m.packet.src.is_some() {
                    headers.insert(m.id, (m.packet.clone(), m.ct_state));
                } else if let Some((p, ct)) = headers.get(&m.id) {
                    m.packet = p.clone();
                    m.ct_state = *ct;
                }
                let family = family_name(m.family).to_string();
                if family == "inet" && m.table == TRACE_TABLE {
                    continue;
                }
                let (Some(kind), Some(verdict)) = (m.kind, m.verdict) else {
                    continue;
                };
                // The end of a chain comes as a rule event without a handle
                // on recent kernels (the chain's trailer), as a return on
                // older ones.
                let kind = if kind == EvalKind::Rule && m.handle.is_none() {
                    EvalKind::Return
                } else {
                    kind
                };
                let chain = ruleset.get(&(family.clone(), m.table.clone(), m.chain.clone()));
                let hook = match chain.and_then(|c| c.hook) {
                    Some(h) => {
                        at_hook.insert(m.id, h);
                        Some(h)
                    }
                    None => at_hook.get(&m.id).copied(),
                };
                let rule = m.handle.and_then(|h| {
                    chain.and_then(|c| c.rules.iter().find(|r| r.handle == h).cloned())
                });
                out.evals.push(RuleEval {
                    ns: t.ns.clone(),
                    family,
                    table: m.table,
                    chain: m.chain,
                    handle: m.handle,
                    rule: if kind == EvalKind::Rule { rule } else { None },
                    kind,
                    verdict,
                    target: m.target,
                    hook,
                    id: m.id,
                    packet: m.packet,
                    ct_state: m.ct_state,
                });
            }
            out.rulesets.push((t.ns.clone(), ruleset));
        }
        Ok(out)
    }
}
