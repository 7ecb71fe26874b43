//! A namespace's SNMP/netstat counters (`/proc/net/snmp`, `/proc/net/netstat`,
//! `/proc/net/snmp6`), named as `nstat` names them (`IpExtInNoRoutes`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::topology::netns;

/// Counter name → value.
pub type Counters = BTreeMap<String, i64>;

/// Parses the `Prefix: names...` / `Prefix: values...` line pairs of
/// `/proc/net/snmp` and `/proc/net/netstat`.
pub fn parse_pairs(text: &str, out: &mut Counters) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((p1, n)), Some((p2, v))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (name, value) in n.split_whitespace().zip(v.split_whitespace()) {
            if let Ok(v) = value.parse::<i64>() {
                out.insert(format!("{p1}{name}"), v);
            }
        }
    }
}

/// Parses `/proc/net/snmp6` (`Name value` lines).
pub fn parse_snmp6(text: &str, out: &mut Counters) {
    for l in text.lines() {
        let mut it = l.split_whitespace();
        if let (Some(n), Some(v)) = (it.next(), it.next()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(n.to_string(), v);
            }
        }
    }
}

/// Reads every counter of the namespace at `ns` (from a thread inside it:
/// `/proc/net` follows the reading thread's namespace).
pub fn read(ns: &Path) -> std::io::Result<Counters> {
    netns::run_in(ns, || {
        let mut c = Counters::new();
        for f in [
            "/proc/thread-self/net/snmp",
            "/proc/thread-self/net/netstat",
        ] {
            parse_pairs(&std::fs::read_to_string(f)?, &mut c);
        }
        // No IPv6 at all is possible; then there are no such counters.
        if let Ok(t) = std::fs::read_to_string("/proc/thread-self/net/snmp6") {
            parse_snmp6(&t, &mut c);
        }
        Ok(c)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_like_nstat() {
        let mut c = Counters::new();
        parse_pairs(
            "Ip: Forwarding InReceives\nIp: 1 42\nIpExt: InNoRoutes\nIpExt: 3\n",
            &mut c,
        );
        parse_snmp6(
            "Ip6InReceives                   \t7\nIcmp6OutErrors 2\n",
            &mut c,
        );
        assert_eq!(c["IpInReceives"], 42);
        assert_eq!(c["IpExtInNoRoutes"], 3);
        assert_eq!(c["Ip6InReceives"], 7);
        assert_eq!(c["Icmp6OutErrors"], 2);
    }
}
