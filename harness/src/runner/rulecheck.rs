//! Rule references checked against the rules as the kernel lists them,
//! once the topology is built and before anything is injected: a `rule:`
//! text, a chain's `policy`, a `chain` + `position` or a `traversed` chain
//! that names nothing in the namespace's rulesets is refused at its line,
//! listing what is there. Comments are checked from the source when the
//! scenario loads; these need the kernel's rendering (nft prints `tcp
//! dport 22`, iptables-save adds `-m tcp`), which the rule trace lists
//! when it starts, so the check costs no tool run of its own. A namespace
//! whose rules a CNI plugin or a `run:` command adds is left to the run:
//! what those add need not be there yet.

use std::collections::HashMap;

use crate::common::text::{clip, did_you_mean};
use crate::evaluate::netfilter_find;
use crate::scenario::{
    ChainRef, Expectation, Namespace, RuleMatch, RuleRef, Scenario, ScenarioError, names_chain,
    own_rules_only, rule_namespaces,
};
use crate::tracer::nftrace::Ruleset;

/// Every rule and chain reference of `e` and its replies.
fn refs<'a>(e: &'a Expectation, rules: &mut Vec<&'a RuleMatch>, chains: &mut Vec<&'a ChainRef>) {
    if let Some(n) = &e.netfilter {
        rules.extend(n.refs().filter(|r| !matches!(r.rule, RuleRef::Comment(_))));
        chains.extend(&n.traversed);
    }
    if let Some(r) = &e.reply {
        refs(r, rules, chains);
    }
}

/// `family table chain` of each chain of `r`, with its rules and policy.
fn chains_of(r: &Ruleset) -> Vec<(String, &crate::tracer::nftrace::rules::ChainRules)> {
    let mut out: Vec<_> = r
        .iter()
        .map(|((f, t, c), rules)| (format!("{f} {t} {c}"), rules))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A chain's rules, numbered as `position` counts them.
fn numbered(name: &str, c: &crate::tracer::nftrace::rules::ChainRules) -> String {
    if c.rules.is_empty() {
        return format!("chain {name} has no rules");
    }
    let list = c
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}. `{}`", i + 1, r.iptables.as_deref().unwrap_or(&r.nft)))
        .collect::<Vec<_>>()
        .join(", ");
    clip(&format!("rules of {name}: {list}"), 600)
}

/// Why `m` names nothing in `rulesets`, and what is there.
fn unknown_rule(m: &RuleMatch, rulesets: &[(String, Ruleset)]) -> (String, String) {
    let chains: Vec<(String, &crate::tracer::nftrace::rules::ChainRules)> = rulesets
        .iter()
        .flat_map(|(ns, r)| {
            chains_of(r)
                .into_iter()
                .map(move |(name, c)| (format!("{name} in {ns}"), c))
        })
        .collect();
    let names = || chains.iter().map(|(n, _)| n.as_str());
    match &m.rule {
        RuleRef::Text(t) => {
            let texts: Vec<(&str, &str)> = chains
                .iter()
                .flat_map(|(name, c)| {
                    c.rules.iter().flat_map(move |r| {
                        [Some(r.nft.as_str()), r.iptables.as_deref()]
                            .into_iter()
                            .flatten()
                            .map(move |text| (text, name.as_str()))
                    })
                })
                .collect();
            let near = did_you_mean(t, texts.iter().map(|(text, _)| *text));
            let hint = match near {
                Some(n) => {
                    let chain = texts.iter().find(|(text, _)| *text == n).map(|(_, c)| *c);
                    let listing = chains
                        .iter()
                        .find(|(name, _)| Some(name.as_str()) == chain)
                        .map(|(name, c)| numbered(name, c))
                        .unwrap_or_default();
                    format!("did you mean `{n}`? {listing}")
                }
                None => chains
                    .iter()
                    .filter(|(_, c)| !c.rules.is_empty())
                    .map(|(name, c)| numbered(name, c))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            (
                format!(
                    "no rule of the scenario's rulesets reads `{t}` (as nft or iptables-save print it)"
                ),
                clip(&hint, 900),
            )
        }
        RuleRef::Policy(p) => {
            let with_policy: Vec<String> = chains
                .iter()
                .filter_map(|(name, c)| {
                    c.policy
                        .as_ref()
                        .map(|pol| format!("{name} (policy {pol})"))
                })
                .collect();
            (
                format!("no base chain `{p}` with a policy in the scenario's rulesets"),
                if with_policy.is_empty() {
                    "these rulesets have no base chain (only a chain with a hook has a policy)"
                        .into()
                } else {
                    format!("chains with a policy: {}", with_policy.join(", "))
                },
            )
        }
        RuleRef::Position { chain, position } => {
            let named = chains.iter().find(|(name, _)| {
                let w: Vec<&str> = name.split_whitespace().collect();
                names_chain(chain, w[0], w[1], w[2])
            });
            match named {
                Some((name, c)) => (
                    format!(
                        "chain {name} has {} rule{}, no rule {position}",
                        c.rules.len(),
                        if c.rules.len() == 1 { "" } else { "s" }
                    ),
                    numbered(name, c),
                ),
                None => unknown_chain(chain, names()),
            }
        }
        RuleRef::Comment(c) => (format!("no rule has the comment \"{c}\""), String::new()),
    }
}

/// Why a chain name names no chain, with the chains there are (`names`:
/// `family table chain in ns`).
fn unknown_chain<'a>(chain: &str, names: impl Iterator<Item = &'a str>) -> (String, String) {
    let names: Vec<&str> = names.collect();
    // Compare like with like: as many words as the scenario wrote.
    let words = chain.split_whitespace().count();
    let short: Vec<String> = names
        .iter()
        .map(|n| {
            let w: Vec<&str> = n
                .split(" in ")
                .next()
                .unwrap_or(n)
                .split_whitespace()
                .collect();
            w[w.len().saturating_sub(words)..].join(" ")
        })
        .collect();
    (
        format!("no chain `{chain}` in the scenario's rulesets"),
        match did_you_mean(chain, short.iter().map(String::as_str)) {
            Some(n) => format!("did you mean `{n}`? chains: {}", names.join(", ")),
            None => format!("chains: {}", names.join(", ")),
        },
    )
}

/// Checks the scenario's rule references against its namespaces' own
/// rulesets as the kernel lists them (`list` gives a namespace's, `None`
/// when it cannot); every unknown one is an error.
pub(super) fn check(
    s: &Scenario,
    list: &mut dyn FnMut(&Namespace) -> Option<Ruleset>,
) -> Result<(), Vec<ScenarioError>> {
    let (mut rules, mut chains) = (vec![], vec![]);
    for p in &s.packets {
        refs(&p.expect, &mut rules, &mut chains);
    }
    if rules.is_empty() && chains.is_empty() {
        return Ok(());
    }
    let with_rules = rule_namespaces(&s.namespaces);
    let mut listed: HashMap<String, Option<Ruleset>> = HashMap::new();
    let mut listing = |ns: &Namespace| -> Option<Ruleset> {
        listed
            .entry(ns.name.clone())
            .or_insert_with(|| {
                if !own_rules_only(ns, &s.namespaces) {
                    return None;
                }
                list(ns)
            })
            .clone()
    };
    // The rulesets of the namespaces a reference may mean; `None` when
    // one of them is not known before the run.
    let mut scope = |ns: Option<&String>| -> Option<Vec<(String, Ruleset)>> {
        s.namespaces
            .iter()
            .filter(|n| with_rules.contains(&n.name) && ns.is_none_or(|w| *w == n.name))
            .map(|n| listing(n).map(|r| (n.name.clone(), r)))
            .collect()
    };
    let mut errors = vec![];
    let mut refuse = |at: &Option<crate::scenario::Location>, (msg, hint): (String, String)| {
        errors.push(ScenarioError {
            loc: at.clone(),
            file: s.path.clone(),
            msg,
            hint: (!hint.is_empty()).then_some(hint),
        });
    };
    for m in rules {
        // A namespace without rules is refused when the scenario loads.
        if let Some(rulesets) = scope(m.ns.as_ref()).filter(|r| !r.is_empty()) {
            if netfilter_find(m, &rulesets).is_none() {
                refuse(&m.at, unknown_rule(m, &rulesets));
            }
        }
    }
    for c in chains {
        if let Some(rulesets) = scope(None).filter(|r| !r.is_empty()) {
            let known = rulesets
                .iter()
                .any(|(_, r)| r.keys().any(|(f, t, ch)| names_chain(&c.name, f, t, ch)));
            if !known {
                let names: Vec<String> = rulesets
                    .iter()
                    .flat_map(|(ns, r)| {
                        chains_of(r)
                            .into_iter()
                            .map(move |(n, _)| format!("{n} in {ns}"))
                    })
                    .collect();
                refuse(
                    &c.at,
                    unknown_chain(&c.name, names.iter().map(String::as_str)),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
