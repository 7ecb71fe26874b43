//! eBPF program decisions: where a scenario's own tc and XDP programs are
//! attached, their return codes by the names of the kernel's uapi, and
//! `programs:` assertions on what they returned.

use crate::scenario::Location;

/// Where a scenario's program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgHook {
    /// A classifier on clsact ingress.
    TcIngress,
    /// A classifier on clsact egress.
    TcEgress,
    /// An XDP program.
    Xdp,
}

impl ProgHook {
    /// As reports write it.
    pub fn name(self) -> &'static str {
        match self {
            ProgHook::TcIngress => "tc ingress",
            ProgHook::TcEgress => "tc egress",
            ProgHook::Xdp => "xdp",
        }
    }

    /// The return codes a program here gives, by name.
    pub fn codes(self) -> &'static [(&'static str, i32)] {
        match self {
            ProgHook::Xdp => &XDP_CODES,
            ProgHook::TcIngress | ProgHook::TcEgress => &TC_CODES,
        }
    }
}

/// `enum xdp_action` (`include/uapi/linux/bpf.h`): user-visible ABI, the
/// same on every kernel.
const XDP_CODES: [(&str, i32); 5] = [
    ("XDP_ABORTED", 0),
    ("XDP_DROP", 1),
    ("XDP_PASS", 2),
    ("XDP_TX", 3),
    ("XDP_REDIRECT", 4),
];

/// `TC_ACT_*` (`include/uapi/linux/pkt_cls.h`): user-visible ABI.
const TC_CODES: [(&str, i32); 10] = [
    ("TC_ACT_UNSPEC", -1),
    ("TC_ACT_OK", 0),
    ("TC_ACT_RECLASSIFY", 1),
    ("TC_ACT_SHOT", 2),
    ("TC_ACT_PIPE", 3),
    ("TC_ACT_STOLEN", 4),
    ("TC_ACT_QUEUED", 5),
    ("TC_ACT_REPEAT", 6),
    ("TC_ACT_REDIRECT", 7),
    ("TC_ACT_TRAP", 8),
];

/// What a program returned, named for where it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnCode {
    /// Where it ran (which names apply).
    pub hook: ProgHook,
    /// The value.
    pub code: i32,
}

impl ReturnCode {
    /// The uapi name (`XDP_DROP`, `TC_ACT_SHOT`), or the number for a
    /// value no name has (the kernel treats those as its default).
    pub fn name(self) -> String {
        self.hook
            .codes()
            .iter()
            .find(|(_, c)| *c == self.code)
            .map_or_else(|| format!("#{}", self.code), |(n, _)| (*n).to_string())
    }

    /// The code called `name` (case-insensitive; `DROP` for `XDP_DROP`,
    /// `SHOT` for `TC_ACT_SHOT` too) for a program at `hook`.
    pub fn parse(hook: ProgHook, name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_uppercase();
        hook.codes()
            .iter()
            .find(|(full, _)| {
                *full == n || full.strip_prefix("XDP_").or(full.strip_prefix("TC_ACT_")) == Some(&n)
            })
            .map(|(_, code)| Self { hook, code: *code })
    }

    /// Whether the packet ends here: an XDP program dropping or aborting
    /// (no skb frees it when there is none), a classifier's `TC_ACT_SHOT`.
    pub fn drops(self) -> bool {
        match self.hook {
            ProgHook::Xdp => self.code == 0 || self.code == 1,
            ProgHook::TcIngress | ProgHook::TcEgress => self.code == 2,
        }
    }
}

impl std::fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl serde::Serialize for ReturnCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// One of the scenario's programs as it was attached: what its runs are
/// reported as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ProgramRef {
    /// The program's name in its object (or the fixture's).
    pub program: String,
    /// Scenario namespace.
    pub ns: String,
    /// Device.
    pub dev: String,
    /// Where on the device.
    pub hook: ProgHook,
}

impl std::fmt::Display for ProgramRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "program {} on {}/{} ({})",
            self.program,
            self.ns,
            self.dev,
            self.hook.name()
        )
    }
}

/// The programs the scenario attaches itself (built-in tc programs, the
/// user's tc and XDP objects), in file order.
pub fn attached_programs(namespaces: &[super::Namespace]) -> Vec<ProgramRef> {
    let mut out = vec![];
    for ns in namespaces {
        for t in &ns.tc {
            let (dev, ingress, program) = match t {
                super::TcSpec::Program {
                    dev,
                    ingress,
                    program,
                    ..
                } => (dev, ingress, program),
                super::TcSpec::Object {
                    dev,
                    ingress,
                    object,
                } => (dev, ingress, &object.program),
                super::TcSpec::Command { .. } => continue,
            };
            out.push(ProgramRef {
                program: program.clone(),
                ns: ns.name.clone(),
                dev: dev.clone(),
                hook: if *ingress {
                    ProgHook::TcIngress
                } else {
                    ProgHook::TcEgress
                },
            });
        }
        for x in &ns.xdp {
            out.push(ProgramRef {
                program: x.object.program.clone(),
                ns: ns.name.clone(),
                dev: x.dev.clone(),
                hook: ProgHook::Xdp,
            });
        }
    }
    out
}

/// A run of one of the scenario's programs that a packet must have had
/// (`programs:` under `expect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramWant {
    /// The program's name.
    pub program: String,
    /// The namespace it is attached in.
    pub ns: Option<String>,
    /// The device it is attached to.
    pub dev: Option<String>,
    /// What it must have returned.
    pub returned: Option<ReturnCode>,
    /// Where the scenario says it.
    pub at: Option<Location>,
}

impl ProgramWant {
    /// Whether `p` is the program this names.
    pub fn names(&self, p: &ProgramRef) -> bool {
        self.program == p.program
            && self.ns.as_ref().is_none_or(|n| *n == p.ns)
            && self.dev.as_ref().is_none_or(|d| *d == p.dev)
    }
}

impl std::fmt::Display for ProgramWant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "program {}", self.program)?;
        match (&self.ns, &self.dev) {
            (Some(n), Some(d)) => write!(f, " on {n}/{d}")?,
            (Some(n), None) => write!(f, " in {n}")?,
            _ => {}
        }
        match self.returned {
            Some(r) => write!(f, " returning {r}"),
            None => write!(f, " running"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_are_named_by_the_uapi_for_where_they_ran() {
        let xdp = |c| ReturnCode {
            hook: ProgHook::Xdp,
            code: c,
        };
        assert_eq!(xdp(1).name(), "XDP_DROP");
        assert_eq!(xdp(4).name(), "XDP_REDIRECT");
        assert_eq!(xdp(9).name(), "#9");
        let tc = ReturnCode {
            hook: ProgHook::TcIngress,
            code: 2,
        };
        assert_eq!(tc.name(), "TC_ACT_SHOT");
        assert_eq!(
            ReturnCode::parse(ProgHook::TcEgress, "shot").map(|r| r.code),
            Some(2)
        );
        assert_eq!(
            ReturnCode::parse(ProgHook::Xdp, "XDP_PASS").map(|r| r.code),
            Some(2)
        );
        assert_eq!(ReturnCode::parse(ProgHook::Xdp, "TC_ACT_SHOT"), None);
        assert!(xdp(1).drops() && xdp(0).drops() && !xdp(2).drops() && tc.drops());
    }
}
