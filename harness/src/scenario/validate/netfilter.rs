//! `netfilter:` under `expect`: rule references, checked against the
//! scenario's own rulesets before anything is built.

use super::ctx::*;

/// Whether `name` has the 1 to 3 words of a chain name, else an error at it.
fn chain_name(cx: &mut Ctx, name: &raw::S) -> Option<String> {
    if (1..=3).contains(&name.split_whitespace().count()) {
        return Some(name.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    cx.err(
        name,
        format!("`{}` is not a chain name", name.as_str()),
        Some("write `chain`, `table chain` or `family table chain`, e.g. `ip filter INPUT`".into()),
    );
    None
}

/// One `{comment | rule | policy | chain + position, ns}` reference.
fn rule_ref(cx: &mut Ctx, r: &Spanned<raw::RuleRef>) -> Option<RuleMatch> {
    let rule = match (&r.comment, &r.rule, &r.policy, &r.chain, &r.position) {
        (Some(c), None, None, None, None) => RuleRef::Comment(c.to_string()),
        (None, Some(t), None, None, None) => {
            RuleRef::Text(t.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        (None, None, Some(p), None, None) => RuleRef::Policy(chain_name(cx, p)?),
        (None, None, None, Some(c), Some(n)) => {
            if **n == 0 {
                cx.err(
                    n,
                    "rule positions start at 1",
                    Some("1 is the chain's first rule, as `nft list` prints them".into()),
                );
                return None;
            }
            RuleRef::Position {
                chain: chain_name(cx, c)?,
                position: **n,
            }
        }
        (None, None, None, Some(c), None) => {
            cx.err(
                c,
                "a rule named by its chain needs its `position` there",
                Some(
                    "e.g. `{ chain: \"ip filter INPUT\", position: 2 }` (1 is the first rule)"
                        .into(),
                ),
            );
            return None;
        }
        _ => {
            cx.err(
                r,
                "a rule reference names exactly one of `comment`, `rule`, `policy` or `chain` with `position`",
                Some("e.g. `{ comment: \"block ssh\" }`, `{ rule: \"tcp dport 22 drop\" }`, `{ policy: \"ip filter INPUT\" }` or `{ chain: \"ip filter INPUT\", position: 2 }`".into()),
            );
            return None;
        }
    };
    let ct_state = match &r.ct_state {
        None => None,
        Some(c) => {
            let want = c.trim().to_ascii_lowercase();
            let found = CtState::ALL.into_iter().find(|s| s.name() == want);
            if found.is_none() {
                let names = CtState::ALL.map(CtState::name);
                cx.err(
                    c,
                    format!("`{}` is not a conntrack state", c.as_str()),
                    Some(match did_you_mean(&want, names) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => format!("one of {}", names.join(", ")),
                    }),
                );
                return None;
            }
            found
        }
    };
    Some(RuleMatch {
        rule,
        ns: r.ns.as_ref().map(|n| n.as_str().to_string()),
        ct_state,
        at: cx.loc(r),
    })
}

/// Validates a `netfilter:` block.
pub(super) fn netfilter_expect(cx: &mut Ctx, n: &Spanned<raw::NetfilterExpect>) -> NetfilterExpect {
    let decided_by = n.decided_by.as_ref().and_then(|r| rule_ref(cx, r));
    let not_matched = n
        .not_matched
        .iter()
        .flatten()
        .filter_map(|r| rule_ref(cx, r))
        .collect();
    let traversed = n
        .traversed
        .iter()
        .flatten()
        .filter_map(|c| {
            Some(ChainRef {
                name: chain_name(cx, c)?,
                at: cx.loc(c),
            })
        })
        .collect::<Vec<_>>();
    if decided_by.is_none()
        && traversed.is_empty()
        && n.not_matched.as_ref().is_none_or(Vec::is_empty)
    {
        cx.err(
            n,
            "`netfilter` says nothing to check",
            Some("give `decided_by`, `traversed` or `not_matched`".into()),
        );
    }
    NetfilterExpect {
        decided_by,
        traversed,
        not_matched,
        at: cx.loc(n),
    }
}

/// Pushes an error at `at` (a model location).
fn err_at(cx: &mut Ctx, at: Option<&Location>, msg: String, hint: Option<String>) {
    cx.errors.push(ScenarioError {
        loc: at.cloned(),
        file: cx.file.to_path_buf(),
        msg,
        hint,
    });
}

/// Every rule reference of `e` (and its reply) against the namespaces:
/// one that names a namespace without rules, or a comment no ruleset of
/// the scenario has, is refused here, with the comments there are.
pub(super) fn check_refs(cx: &mut Ctx, e: &Expectation, namespaces: &[Namespace]) {
    let with_rules = rule_namespaces(namespaces);
    if let Some(n) = &e.netfilter {
        if with_rules.is_empty() {
            err_at(
                cx,
                n.at.as_ref(),
                "netfilter assertions, but no namespace has rules".into(),
                Some(
                    "give a namespace `nft:` or `iptables:` rules (or a CNI plugin that adds them)"
                        .into(),
                ),
            );
        }
        for r in n.refs() {
            let scope: Vec<&Namespace> = match &r.ns {
                Some(name) => {
                    if !with_rules.contains(name) {
                        let near = did_you_mean(name, with_rules.iter().map(String::as_str));
                        err_at(
                            cx,
                            r.at.as_ref(),
                            format!("namespace `{name}` has no netfilter rules"),
                            Some(match near {
                                Some(n) => format!("did you mean `{n}`?"),
                                None => format!("namespaces with rules: {}", with_rules.join(", ")),
                            }),
                        );
                        continue;
                    }
                    namespaces.iter().filter(|n| &n.name == name).collect()
                }
                None => namespaces
                    .iter()
                    .filter(|n| with_rules.contains(&n.name))
                    .collect(),
            };
            let RuleRef::Comment(want) = &r.rule else {
                continue;
            };
            let mut comments = vec![];
            let mut all_known = true;
            for ns in scope {
                match ruleset_comments(ns, namespaces) {
                    Some(c) => comments.extend(c),
                    None => all_known = false,
                }
            }
            if all_known && !comments.contains(want) {
                let near = did_you_mean(want, comments.iter().map(String::as_str));
                err_at(
                    cx,
                    r.at.as_ref(),
                    format!("no rule of the scenario's rulesets has the comment \"{want}\""),
                    Some(match near {
                        Some(n) => format!("did you mean \"{n}\"?"),
                        None if comments.is_empty() => "these rulesets have no comments; name the rule by `rule:` or give it a comment".into(),
                        None => format!("comments there: {}", comments.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")),
                    }),
                );
            }
        }
    }
    if let Some(r) = &e.reply {
        check_refs(cx, r, namespaces);
    }
}
