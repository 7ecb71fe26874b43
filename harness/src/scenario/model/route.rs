//! Route decisions a packet must meet: the lookups it caused, by
//! namespace, table, result, gateway and device.

use std::net::IpAddr;

use crate::scenario::Location;

/// What a route lookup in one table returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteResult {
    /// A unicast route (to a gateway or a link).
    Unicast,
    /// A local route: the address is this host's.
    Local,
    /// A broadcast route.
    Broadcast,
    /// An anycast route.
    Anycast,
    /// A multicast route.
    Multicast,
    /// A `blackhole` route: dropped silently.
    Blackhole,
    /// An `unreachable` route (IPv6: also a table with no route).
    Unreachable,
    /// A `prohibit` route: administratively prohibited.
    Prohibit,
    /// A `throw` route, or (IPv4) no route in this table: the lookup goes
    /// on with the next policy rule.
    #[serde(rename = "none")]
    NoRoute,
    /// Another error.
    Error,
}

impl RouteResult {
    /// From its name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Every result, as a scenario writes it.
    pub const ALL: [RouteResult; 10] = [
        Self::Unicast,
        Self::Local,
        Self::Broadcast,
        Self::Anycast,
        Self::Multicast,
        Self::Blackhole,
        Self::Unreachable,
        Self::Prohibit,
        Self::NoRoute,
        Self::Error,
    ];

    /// As a scenario and the timeline write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unicast => "unicast",
            Self::Local => "local",
            Self::Broadcast => "broadcast",
            Self::Anycast => "anycast",
            Self::Multicast => "multicast",
            Self::Blackhole => "blackhole",
            Self::Unreachable => "unreachable",
            Self::Prohibit => "prohibit",
            Self::NoRoute => "none",
            Self::Error => "error",
        }
    }

    /// From a route's `RTN_*` type (`include/uapi/linux/rtnetlink.h`);
    /// `None` for 0 (not known) and types a lookup does not return.
    pub fn from_rtn(rtn: u8) -> Option<Self> {
        Some(match rtn {
            1 => Self::Unicast,
            2 => Self::Local,
            3 => Self::Broadcast,
            4 => Self::Anycast,
            5 => Self::Multicast,
            6 => Self::Blackhole,
            7 => Self::Unreachable,
            8 => Self::Prohibit,
            9 => Self::NoRoute,
            _ => return None,
        })
    }

    /// An IPv4 lookup's result from its error and route type: the errors
    /// are `fib_props[type].error` (`net/ipv4/fib_semantics.c`), and
    /// `-EAGAIN` is also a table without a matching route.
    pub fn from_ipv4(err: i32, rtn: u8) -> Self {
        match err {
            0 => Self::from_rtn(rtn).unwrap_or(Self::Unicast),
            -11 => Self::NoRoute,      // EAGAIN: no route here, or throw
            -113 => Self::Unreachable, // EHOSTUNREACH
            -22 => Self::Blackhole,    // EINVAL
            -13 => Self::Prohibit,     // EACCES
            -101 => Self::Unreachable, // ENETUNREACH
            _ => Self::Error,
        }
    }
}

impl std::fmt::Display for RouteResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A route lookup a packet must have caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWant {
    /// The namespace it ran in.
    pub ns: Option<String>,
    /// The table consulted.
    pub table: Option<u32>,
    /// The destination looked up (a reverse-path check looks up the
    /// packet's source).
    pub to: Option<IpAddr>,
    /// What it returned.
    pub result: Option<RouteResult>,
    /// The gateway of the route found.
    pub via: Option<IpAddr>,
    /// The device of the route found.
    pub dev: Option<String>,
    /// Where the scenario says it.
    pub at: Option<Location>,
}

impl std::fmt::Display for RouteWant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(t) = self.table {
            parts.push(format!("table {t}"));
        }
        if let Some(t) = self.to {
            parts.push(format!("to {t}"));
        }
        if let Some(r) = self.result {
            parts.push(r.name().to_string());
        }
        if let Some(v) = self.via {
            parts.push(format!("via {v}"));
        }
        if let Some(d) = &self.dev {
            parts.push(format!("dev {d}"));
        }
        if let Some(n) = &self.ns {
            parts.push(format!("in {n}"));
        }
        write!(f, "a route lookup: {}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::RouteResult;

    #[test]
    fn ipv4_lookup_errors_name_the_route_type_that_gave_them() {
        // fib_props[] (net/ipv4/fib_semantics.c): unreachable -EHOSTUNREACH,
        // blackhole -EINVAL, prohibit -EACCES, throw -EAGAIN (as a table
        // without a match); success keeps the route's own type.
        assert_eq!(RouteResult::from_ipv4(-113, 0), RouteResult::Unreachable);
        assert_eq!(RouteResult::from_ipv4(-22, 0), RouteResult::Blackhole);
        assert_eq!(RouteResult::from_ipv4(-13, 0), RouteResult::Prohibit);
        assert_eq!(RouteResult::from_ipv4(-11, 0), RouteResult::NoRoute);
        assert_eq!(RouteResult::from_ipv4(0, 2), RouteResult::Local);
        assert_eq!(RouteResult::from_ipv4(0, 3), RouteResult::Broadcast);
        assert_eq!(RouteResult::from_ipv4(-5, 0), RouteResult::Error);
        for r in RouteResult::ALL {
            assert_eq!(RouteResult::parse(r.name()), Some(r));
        }
    }
}
