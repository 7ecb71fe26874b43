//! Located errors: where in the file, what is wrong, how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::common::text::did_you_mean;

/// A position in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A mistake in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// Where, when known.
    pub loc: Option<Location>,
    /// The file, always known.
    pub file: PathBuf,
    /// What is wrong.
    pub msg: String,
    /// How to fix it, when there is an obvious fix.
    pub hint: Option<String>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(l) => write!(f, "{l}: {}", self.msg)?,
            None => write!(f, "{}: {}", self.file.display(), self.msg)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

pub(super) fn yaml_error(path: &Path, text: &str, e: &marked_yaml::FromYamlError) -> ScenarioError {
    use marked_yaml::FromYamlError as F;
    let (mark, msg, hint) = match e {
        F::ParseYaml(le) => {
            let shown = le.to_string();
            // LoadError's text starts with "source:line:col: "; keep the message only.
            let msg = shown
                .split_once(": ")
                .map_or(shown.as_str(), |x| x.1)
                .to_string();
            let mark = load_error_mark(le).map(|m| (m.line(), m.column()));
            let hint = if let marked_yaml::LoadError::DuplicateKey(_) = le {
                Some("a key appears once in a mapping: merge the two entries or rename one".into())
            } else {
                mark.and_then(|(l, _)| super::syntax_hint::for_syntax_error(text, &msg, l))
            };
            (mark, format!("invalid YAML: {msg}"), hint)
        }
        F::FromNode(ne) => {
            let inner: &marked_yaml::Error = ne;
            let hint = match inner {
                marked_yaml::Error::UnknownFieldError(f, expected, _) => {
                    let near = did_you_mean(f, expected.iter().copied());
                    Some(match near {
                        Some(n) => format!(
                            "did you mean `{n}`? known keys here: {}",
                            expected.join(", ")
                        ),
                        None => format!("known keys here: {}", expected.join(", ")),
                    })
                }
                marked_yaml::Error::NotBoolean(_) => Some("write true or false".into()),
                marked_yaml::Error::IntegerParseFailure(..) => {
                    Some("this field takes a whole number in range".into())
                }
                _ => None,
            };
            let msg = match inner {
                marked_yaml::Error::UnknownFieldError(f, _, _) => format!("unknown key `{f}`"),
                marked_yaml::Error::NotBoolean(_) => "expected true or false".into(),
                marked_yaml::Error::IntegerParseFailure(e, _) => format!("not a valid number: {e}"),
                other => other.to_string(),
            };
            let mut loc = ne.start_mark().map(|m| (m.line(), m.column()));
            // marked-yaml gives unknown keys no position: find the key itself.
            if let (None, marked_yaml::Error::UnknownFieldError(f, _, _)) = (loc, inner) {
                loc = find_key(text, f);
            }
            // Type errors may have no position either: find the deepest key
            // of the error's path (`expect.path[2]` -> `path`).
            if loc.is_none() {
                loc = ne.path().and_then(|p| path_location(text, p));
            }
            (loc, msg, hint)
        }
    };
    ScenarioError {
        loc: mark.map(|(line, col)| Location {
            file: path.to_path_buf(),
            line,
            col,
        }),
        file: path.to_path_buf(),
        msg,
        hint,
    }
}

/// Position of a serde path like `namespaces.a.links[0].mtu`: each key is
/// searched after the previous one, so the right `mtu` is found.
fn path_location(text: &str, path: &str) -> Option<(usize, usize)> {
    let keys: Vec<&str> = path
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .filter(|k| !k.is_empty() && *k != "?")
        .collect();
    let mut from = 0usize;
    let mut found = None;
    for k in keys {
        let rest: String = text.lines().skip(from).collect::<Vec<_>>().join("\n");
        if let Some((l, c)) = find_key(&rest, k) {
            from += l - 1;
            found = Some((from + 1, c));
        }
    }
    found
}

/// 1-based (line, column) of the first `key:` in the text.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let re = regex::Regex::new(&format!(r"(^|[\s{{,\-])({})\s*:", regex::escape(key))).ok()?;
    text.lines().enumerate().find_map(|(i, l)| {
        let code = l.split(" #").next().unwrap_or(l);
        re.captures(code)
            .map(|c| (i + 1, c.get(2).map_or(0, |m| m.start()) + 1))
    })
}

fn load_error_mark(e: &marked_yaml::LoadError) -> Option<marked_yaml::Marker> {
    use marked_yaml::LoadError as L;
    match e {
        L::TopLevelMustBeMapping(m)
        | L::TopLevelMustBeSequence(m)
        | L::UnexpectedAnchor(m)
        | L::MappingKeyMustBeScalar(m)
        | L::UnexpectedTag(m)
        | L::ScanError(m, _) => Some(*m),
        L::DuplicateKey(inner) => inner.key.span().start().copied(),
    }
}
