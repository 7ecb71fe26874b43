//! Kernel version ranges for kernel-dependent expectations:
//! `">= 6.10"`, `"< 6.13"`, `">=5.17, <6.10"`, or `"6.1"` (any 6.1.x).

use std::fmt;

/// A kernel version, `major.minor.patch`.
pub type Version = (u32, u32, u32);

/// One comparison of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    /// Equal in the components written (`6.1` matches 6.1.x).
    Eq(usize),
}

/// A conjunction of comparisons with kernel versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRange {
    terms: Vec<(Op, Version)>,
    text: String,
}

/// Parses `6`, `6.1` or `6.1.12` (a suffix such as `-56-amd64` is ignored).
pub fn parse_version(v: &str) -> Option<(Version, usize)> {
    let core = v.trim().split(['-', '+', ' ']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let mut n = 1;
    let mut next = || -> Option<Option<u32>> {
        match parts.next() {
            None => Some(None),
            Some(p) => p.parse().ok().map(Some),
        }
    };
    let minor = next()?;
    let patch = next()?;
    n += usize::from(minor.is_some()) + usize::from(patch.is_some());
    Some(((major, minor.unwrap_or(0), patch.unwrap_or(0)), n))
}

/// What is wrong with a kernel range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A term is not `[op]version`.
    #[error("`{0}` is not a kernel version comparison")]
    NotAComparison(String),
    /// No terms at all.
    #[error("empty kernel range")]
    Empty,
}

impl KernelRange {
    /// Parses a range; the error says what was wrong.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let mut terms = vec![];
        for raw in s.split(',') {
            let t = raw.trim();
            let (op, rest) = if let Some(r) = t.strip_prefix(">=") {
                (Some(Op::Ge), r)
            } else if let Some(r) = t.strip_prefix("<=") {
                (Some(Op::Le), r)
            } else if let Some(r) = t.strip_prefix("==") {
                (None, r)
            } else if let Some(r) = t.strip_prefix('>') {
                (Some(Op::Gt), r)
            } else if let Some(r) = t.strip_prefix('<') {
                (Some(Op::Lt), r)
            } else if let Some(r) = t.strip_prefix('=') {
                (None, r)
            } else {
                (None, t)
            };
            let (v, n) =
                parse_version(rest).ok_or_else(|| RangeError::NotAComparison(t.to_string()))?;
            terms.push((op.unwrap_or(Op::Eq(n)), v));
        }
        if terms.is_empty() {
            return Err(RangeError::Empty);
        }
        Ok(Self {
            terms,
            text: s.trim().to_string(),
        })
    }

    /// Whether `v` is in the range.
    pub fn contains(&self, v: Version) -> bool {
        self.terms.iter().all(|(op, w)| match op {
            Op::Ge => v >= *w,
            Op::Gt => v > *w,
            Op::Le => v <= *w,
            Op::Lt => v < *w,
            Op::Eq(1) => v.0 == w.0,
            Op::Eq(2) => (v.0, v.1) == (w.0, w.1),
            Op::Eq(_) => v == *w,
        })
    }
}

impl fmt::Display for KernelRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = KernelRange::parse(">=5.17, <6.10").unwrap();
        assert!(r.contains((6, 1, 0)));
        assert!(r.contains((5, 17, 0)));
        assert!(!r.contains((5, 10, 0)));
        assert!(!r.contains((6, 10, 0)));
        let one = KernelRange::parse("6.1").unwrap();
        assert!(one.contains((6, 1, 192)));
        assert!(!one.contains((6, 12, 0)));
        assert!(KernelRange::parse("< 6.13").unwrap().contains((6, 12, 117)));
        assert!(!KernelRange::parse("<6.13").unwrap().contains((6, 18, 0)));
        assert!(KernelRange::parse(">6.1.0").unwrap().contains((6, 1, 1)));
        assert!(KernelRange::parse("=6").unwrap().contains((6, 18, 4)));
        assert_eq!(
            KernelRange::parse("newer than 6").unwrap_err(),
            RangeError::NotAComparison("newer than 6".into())
        );
        assert_eq!(
            KernelRange::parse(">=5.17, >=six").unwrap_err(),
            RangeError::NotAComparison(">=six".into())
        );
        assert_eq!(parse_version("6.1.0-56-amd64"), Some(((6, 1, 0), 3)));
    }
}
