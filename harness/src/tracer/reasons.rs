//! `enum skb_drop_reason`, read from the running kernel's BTF.
//!
//! Values differ between kernels (reasons are added in the middle of the
//! enum), so names are the stable interface and numbers are looked up here.

use std::collections::BTreeMap;

use crate::tracer::btf::{Btf, BtfError};

/// The prefix the kernel gives every drop reason but two.
pub const PREFIX: &str = "SKB_DROP_REASON_";

/// The running kernel's drop reasons.
#[derive(Debug, Clone)]
pub struct DropReasons {
    by_value: BTreeMap<u32, String>,
}

impl DropReasons {
    /// Reads `enum skb_drop_reason` from BTF; empty on kernels before 5.17,
    /// which have none.
    /// The running kernel's table, read from its BTF once per process.
    pub fn kernel() -> Result<Self, BtfError> {
        static K: std::sync::OnceLock<DropReasons> = std::sync::OnceLock::new();
        if let Some(r) = K.get() {
            return Ok(r.clone());
        }
        let r = Self::from_btf(&*Btf::kernel()?)?;
        Ok(K.get_or_init(|| r).clone())
    }

    /// The table of a BTF.
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        match btf.enum_values("skb_drop_reason") {
            Ok(pairs) => Ok(Self::from_pairs(pairs)),
            Err(BtfError::NoEnum(_)) => Ok(Self::from_pairs([])),
            Err(e) => Err(e),
        }
    }

    /// Whether the kernel has no drop reasons at all.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// Builds the table from (full enumerator name, value) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, i64)>) -> Self {
        let by_value = pairs
            .into_iter()
            .filter(|(n, _)| !n.ends_with("_MAX") && !n.contains("SUBSYS"))
            .map(|(n, v)| (v as u32, short(&n).to_string()))
            .collect();
        Self { by_value }
    }

    /// Short name (without `SKB_DROP_REASON_`) of a value, if the kernel has it.
    pub fn name(&self, value: u32) -> Option<&str> {
        self.by_value.get(&value).map(String::as_str)
    }

    /// Short name, or the number when this kernel does not name it.
    pub fn display(&self, value: u32) -> String {
        self.name(value)
            .map_or_else(|| format!("#{value}"), str::to_string)
    }

    /// Resolves a user-written reason (prefix optional, any case) to its
    /// canonical short name.
    pub fn resolve(&self, user: &str) -> Option<&str> {
        let want = short(user.trim()).to_ascii_uppercase();
        self.by_value
            .values()
            .find(|n| n.eq_ignore_ascii_case(&want))
            .map(String::as_str)
    }

    /// The closest known names to an unknown one, best first.
    pub fn suggest(&self, user: &str) -> Vec<&str> {
        let want = short(user.trim()).to_ascii_uppercase();
        let mut scored: Vec<(usize, &str)> = self
            .by_value
            .values()
            .map(|n| (crate::common::text::edit_distance(&want, n), n.as_str()))
            .filter(|(d, n)| {
                *d <= (n.len().max(want.len()) / 3).max(2)
                    // Abbreviations: IP_CHECKSUM -> IP_CSUM, NOSOCKET -> NO_SOCKET.
                    || crate::common::text::abbreviates(n, &want)
                    || crate::common::text::abbreviates(&want, n)
            })
            .collect();
        scored.sort_unstable();
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }

    /// All (value, short name) pairs, by value.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.by_value.iter().map(|(v, n)| (*v, n.as_str()))
    }
}

/// Strips `SKB_DROP_REASON_` (any case).
fn short(name: &str) -> &str {
    if name.len() >= PREFIX.len() && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        &name[PREFIX.len()..]
    } else {
        name
    }
}

impl crate::scenario::ReasonNames for DropReasons {
    fn is_empty(&self) -> bool {
        DropReasons::is_empty(self)
    }

    fn resolve(&self, user: &str) -> Option<&str> {
        DropReasons::resolve(self, user)
    }

    fn suggest(&self, user: &str) -> Vec<&str> {
        DropReasons::suggest(self, user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DropReasons {
        DropReasons::from_pairs([
            ("SKB_NOT_DROPPED_YET".to_string(), 0),
            ("SKB_CONSUMED".to_string(), 1),
            ("SKB_DROP_REASON_NOT_SPECIFIED".to_string(), 2),
            ("SKB_DROP_REASON_NO_SOCKET".to_string(), 3),
            ("SKB_DROP_REASON_IP_CSUM".to_string(), 9),
            ("SKB_DROP_REASON_MAX".to_string(), 10),
        ])
    }

    #[test]
    fn resolves_with_or_without_prefix_and_in_any_case() {
        let t = table();
        assert_eq!(t.resolve("IP_CSUM"), Some("IP_CSUM"));
        assert_eq!(t.resolve("SKB_DROP_REASON_IP_CSUM"), Some("IP_CSUM"));
        assert_eq!(t.resolve("skb_drop_reason_no_socket"), Some("NO_SOCKET"));
        assert_eq!(t.resolve("IP_CHECKSUM"), None);
        assert_eq!(t.display(9), "IP_CSUM");
        assert_eq!(t.display(77), "#77");
        assert_eq!(t.name(10), None, "_MAX is not a reason");
    }

    #[test]
    fn suggests_near_names() {
        let t = table();
        assert_eq!(t.suggest("NO_SOCKT").first(), Some(&"NO_SOCKET"));
        assert_eq!(t.suggest("IPCSUM").first(), Some(&"IP_CSUM"));
        assert!(t.suggest("COMPLETELY_DIFFERENT_THING").is_empty());
        assert_eq!(t.suggest("IP_CHECKSUM").first(), Some(&"IP_CSUM"));
    }

    #[test]
    fn a_scenario_s_reasons_are_checked_against_the_kernel_table() {
        let yaml = "namespaces:\n  host:\n    links:\n      - { name: tun0, kind: tun }\ninject:\n  via: host/tun0\n  ipv4: { src: 192.0.2.7, dst: 192.0.2.1 }\nexpect:\n  reason: SKB_DROP_REASON_IP_CSUM\n";
        let parse = |y: &str| crate::scenario::Scenario::parse("t.yaml".as_ref(), y).unwrap();
        let mut s = parse(yaml);
        s.check_against_kernel(&table()).unwrap();
        assert_eq!(s.packets[0].expect.reason.as_deref(), Some("IP_CSUM"));
        let mut s = parse(&yaml.replace("SKB_DROP_REASON_IP_CSUM", "IP_CSUMM"));
        let e = s.check_against_kernel(&table()).unwrap_err().remove(0);
        assert_eq!(e.msg, "unknown drop reason `IP_CSUMM` on this kernel");
        assert!(e.hint.unwrap().contains("did you mean IP_CSUM"));
        assert_eq!(e.loc.unwrap().line, 9);
    }
}
