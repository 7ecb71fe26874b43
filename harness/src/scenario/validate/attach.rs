//! What a namespace takes from files: a CNI attachment and firewall rulesets.

use super::ctx::*;

/// The devices CNI plugins of `conflist` make in the node that a scenario
/// can name: the bridge plugin's bridge (`cni0` unless set).
pub(super) fn cni_node_devices(conflist: &serde_json::Value) -> Vec<String> {
    conflist["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "bridge")
        .map(|p| p["bridge"].as_str().unwrap_or("cni0").to_string())
        .collect()
}

/// YAML scalars reach serde as strings; `runtimeConfig` wants JSON
/// numbers and booleans where they look like them (`hostPort: 8080`).
pub(super) fn json_scalars(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    match v {
        V::String(s) => match (s.parse::<i64>(), s.as_str()) {
            (Ok(n), _) => V::from(n),
            (_, "true") => V::Bool(true),
            (_, "false") => V::Bool(false),
            _ => V::String(s),
        },
        V::Array(a) => V::Array(a.into_iter().map(json_scalars).collect()),
        V::Object(o) => V::Object(o.into_iter().map(|(k, v)| (k, json_scalars(v))).collect()),
        other => other,
    }
}

// Long on purpose: each key of `cni:` checked in file order, with its own hint.
/// Validates a `cni:` entry: the node is another scenario namespace, the
/// conflist a project file holding a CNI configuration list whose plugin
/// types are plain names (they are looked up in `CNI_PATH`).
pub(super) fn cni_attachment(
    cx: &mut Ctx,
    pod: &raw::S,
    c: raw::Cni,
    ns_names: &[String],
) -> Option<CniAttachment> {
    if !ns_names.iter().any(|n| n == c.node.as_str()) || c.node.as_str() == pod.as_str() {
        cx.err(
            &c.node,
            format!(
                "CNI node `{}` is not another namespace of the scenario",
                c.node.as_str()
            ),
            Some("the plugins run in a scenario namespace, never in the root namespace".into()),
        );
    }
    let rs = ruleset(cx, None, Some(c.conflist.clone()), "conflist")?;
    let conflist: serde_json::Value = match serde_json::from_str(&rs.text) {
        Ok(v) => v,
        Err(e) => {
            cx.err(
                &c.conflist,
                format!("`{}` is not JSON: {e}", c.conflist.as_str()),
                Some("a CNI configuration list, as in /etc/cni/net.d/*.conflist".into()),
            );
            return None;
        }
    };
    let plugins = conflist["plugins"].as_array().cloned().unwrap_or_default();
    let plain = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let problem = if !conflist["cniVersion"].is_string() || !conflist["name"].is_string() {
        Some("has no `cniVersion` or `name`".to_string())
    } else if plugins.is_empty() {
        Some("has no `plugins`".to_string())
    } else {
        plugins
            .iter()
            .find(|p| !p["type"].as_str().is_some_and(plain))
            .map(|p| {
                format!(
                    "has a plugin whose `type` is not a plain name: {}",
                    p["type"]
                )
            })
    };
    if let Some(p) = problem {
        cx.err(
            &c.conflist,
            format!("CNI configuration list `{}` {p}", c.conflist.as_str()),
            Some("see the CNI spec's network configuration list format".into()),
        );
        return None;
    }
    let capabilities = match c.capabilities.map(json_scalars) {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => {
            cx.err(
                &c.conflist,
                "`capabilities` must be a mapping (runtimeConfig)",
                None,
            );
            serde_json::Map::new()
        }
    };
    let mut args: Vec<(String, String)> = c
        .args
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    args.sort();
    Some(CniAttachment {
        node: c.node.to_string(),
        conflist,
        conflist_file: rs.file,
        ifname: c.ifname.map_or_else(|| "eth0".into(), |i| i.to_string()),
        args,
        capabilities,
        check: c.check.is_some_and(|b| *b),
        at: cx.loc(&c.node),
    })
}

/// Where an inline scalar's text sits in the file: (line, column) of its
/// line 1, column 1, and whether its lines are the file's lines.
/// marked-yaml places a block scalar (`nft: |`) at its first content
/// character, a plain one at its own start, a quoted one at the quote.
fn layout(source: &str, at: &Location, text: &str) -> (usize, usize, bool) {
    let line = source.lines().nth(at.line - 1).unwrap_or("");
    match line.chars().nth(at.col - 1) {
        // On one line after the quote, unless escapes made more lines.
        Some('"' | '\'') => (at.line, at.col + 1, !text.trim_end().contains('\n')),
        _ => (at.line, at.col, true),
    }
}

/// A ruleset given inline (`key: |`) or by file (`key_file:`), not both.
pub(super) fn ruleset(
    cx: &mut Ctx,
    inline: Option<raw::S>,
    file: Option<raw::S>,
    key: &str,
) -> Option<Ruleset> {
    match (inline, file) {
        (Some(text), None) => {
            let (first_line, first_col, lines_match) = match cx.loc(&text) {
                Some(at) => layout(cx.source, &at, &text),
                None => (1, 1, true),
            };
            Some(Ruleset {
                text: text.to_string(),
                file: cx.file.to_path_buf(),
                first_line,
                first_col,
                lines_match,
            })
        }
        (None, Some(f)) => match crate::scenario::project::resolve(cx.file, &f, &cx.policy.allowed)
        {
            Ok(path) => match crate::scenario::project::read_text(&path) {
                Ok(text) => Some(Ruleset {
                    text,
                    file: path,
                    first_line: 1,
                    first_col: 1,
                    lines_match: true,
                }),
                Err(e) => {
                    cx.err(&f, format!("cannot read `{}`: {e}", clip(&f, 120)), None);
                    None
                }
            },
            Err(refusal) => {
                let (msg, hint) = file_refusal(&f, &refusal);
                cx.err(&f, msg, Some(hint));
                None
            }
        },
        (Some(t), Some(_)) => {
            cx.err(
                &t,
                format!("give `{key}` (inline) or `{key}_file`, not both"),
                None,
            );
            None
        }
        (None, None) => None,
    }
}

/// The message and hint for a file reference [`crate::scenario::project::resolve`]
/// refused. The file's content is never part of it.
pub(super) fn file_refusal(f: &str, r: &crate::scenario::project::Refusal) -> (String, String) {
    use crate::scenario::project::Refusal;
    let name = clip(f, 120);
    let widen = "files outside the project need `--allow-path DIR`";
    match r {
        Refusal::Absolute => (
            format!("`{name}` is an absolute path; a scenario names files of its own project"),
            format!("write a path relative to the scenario, e.g. fixtures/nft/rules.nft ({widen})"),
        ),
        Refusal::Escapes(p) => (
            format!(
                "`{name}` leads out of the scenario's project (to {})",
                clip(&p.display().to_string(), 120)
            ),
            format!(
                "the project is the nearest directory with Cargo.toml, .git or pktfate.toml; {widen}"
            ),
        ),
        Refusal::Missing => (
            format!(
                "no file `{name}` next to the scenario or in a parent directory of its project"
            ),
            "rulesets usually live in fixtures/nft/".into(),
        ),
    }
}
