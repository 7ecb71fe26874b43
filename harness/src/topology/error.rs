//! Errors building a topology: located (<file:line:col>, the equivalent
//! `ip` command, a hint) when a scenario line caused them.

use crate::common::ErrorKind;
use crate::common::verifier::describe;
use crate::scenario::Location;

/// Errors building a topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// What it printed.
        stderr: String,
    },
    /// A tool is missing.
    #[error("`{0}` is not installed")]
    MissingTool(String),
    /// nft or iptables-restore rejected a ruleset; the location is in the
    /// scenario or the ruleset file.
    #[error("{file}:{line}:{col}: {tool}: {msg}")]
    Ruleset {
        /// `nft`, `iptables-restore` or `ip6tables-restore`.
        tool: &'static str,
        /// File holding the ruleset text.
        file: String,
        /// Line in that file.
        line: usize,
        /// Column.
        col: usize,
        /// nft's own message.
        msg: String,
    },
    /// A tc program could not be loaded or attached.
    #[error("tc program `{program}` on {ns}/{dev}: {source}")]
    TcProgram {
        /// Program.
        program: String,
        /// Namespace.
        ns: String,
        /// Device.
        dev: String,
        /// Why (boxed: aya's errors are large, and every topology
        /// function returns this enum).
        source: Box<ObjectError>,
    },
    /// The kernel refused a netlink request made for a scenario line.
    #[error("{}`{cmd}` in namespace `{ns}` failed: {source}", located(.at))]
    Netlink {
        /// The request as the equivalent `ip` command.
        cmd: String,
        /// Scenario namespace.
        ns: String,
        /// The scenario line asking for it.
        at: Option<Location>,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// A CNI plugin failed.
    #[error("{}{what} failed: {source}", located(.at))]
    Cni {
        /// The scenario's `cni:` entry.
        at: Option<Location>,
        /// What was run, e.g. ``CNI ADD of plugin `bridge` for `pod-a` ``.
        what: String,
        /// Why.
        source: CniFailure,
    },
    /// A program of the user's object could not be loaded or attached.
    #[error("{}{what}: {source}", located(.at))]
    BpfObject {
        /// The scenario's entry.
        at: Option<Location>,
        /// `program `p` of FILE on ns/dev`.
        what: String,
        /// Why (boxed: aya's errors are large, and every topology
        /// function returns this enum).
        source: Box<ObjectError>,
    },
    /// A signal arrived while building; the handler removes what exists.
    #[error("interrupted while building the topology")]
    Interrupted,
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl TopologyError {
    /// Who can fix it: a scenario line the kernel or a tool refused, the
    /// machine, or pktfate.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TopologyError::Command { .. }
            | TopologyError::Ruleset { .. }
            | TopologyError::TcProgram { .. }
            | TopologyError::Netlink { .. }
            | TopologyError::Cni { .. }
            | TopologyError::BpfObject { .. } => ErrorKind::Scenario,
            TopologyError::MissingTool(_) | TopologyError::Interrupted => ErrorKind::Machine,
            TopologyError::Io { .. } => ErrorKind::Internal,
        }
    }

    /// A tool that could not be started: missing, or another I/O error.
    pub(super) fn spawning(tool: &str, what: String, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            TopologyError::MissingTool(tool.into())
        } else {
            TopologyError::Io { what, source: e }
        }
    }

    /// A hint for the user, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            TopologyError::MissingTool(t) if t == "ip" || t == "tc" => {
                Some("install iproute2 (bash ci/setup.sh does)".into())
            }
            TopologyError::MissingTool(t) if t == "nft" => {
                Some("install nftables (bash ci/setup.sh does)".into())
            }
            TopologyError::Ruleset { tool: "nft", .. } => {
                Some("the position is where nft stopped reading; see nft(8) for the syntax".into())
            }
            TopologyError::Ruleset { tool, .. } => Some(format!(
                "the line is the one {tool} refused; the text is in iptables-save format (see {tool}(8))"
            )),
            TopologyError::MissingTool(t) if t.contains("tables-restore") => {
                Some("install iptables (bash ci/setup.sh does)".into())
            }
            TopologyError::BpfObject { source, .. } if source.by_verifier() => Some(
                "this kernel's verifier refused the program (the quoted line of its log says why); build the object for this kernel, or run on the one it targets".into(),
            ),
            TopologyError::BpfObject { source, .. } if source.unknown_name() => Some(
                "names are the program functions (sections) and maps of the ELF object: `llvm-objdump -h` lists them".into(),
            ),
            TopologyError::TcProgram { source, .. } if source.by_verifier() => {
                Some("the fixture program was rejected by this kernel's verifier".into())
            }
            TopologyError::Netlink { source, .. } => netlink_hint(source),
            TopologyError::Cni {
                source: CniFailure::NoPlugin { .. },
                ..
            } => Some(
                "install the reference plugins (Debian: containernetworking-plugins; bash ci/setup.sh does) or point --cni-path / CNI_PATH at yours".into(),
            ),
            TopologyError::Command { stderr, .. } if stderr.contains("Operation not permitted") => {
                Some("run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN are needed)".into())
            }
            TopologyError::Command { stderr, .. } if stderr.contains("File exists") => {
                Some("two routes or addresses collide; check the scenario for duplicates".into())
            }
            TopologyError::Command { stderr, .. }
                if stderr.contains("Nexthop has invalid gateway") =>
            {
                Some(
                    "the gateway must be reachable through a connected route on an up device"
                        .into(),
                )
            }
            _ => None,
        }
    }
}

/// Why a program (a fixture or the user's object) could not be loaded or
/// attached.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object file could not be read.
    #[error("reading: {0}")]
    Read(#[source] crate::scenario::project::FileError),
    /// aya could not parse the object.
    #[error("loading the object: {0}")]
    Parse(#[source] aya::EbpfError),
    /// The scenario names a map the object lacks.
    #[error("no map `{0}` in the object")]
    NoMap(String),
    /// A fixture has no such config key.
    #[error("no config key `{0}`")]
    NoConfigKey(String),
    /// A map could not be filled.
    #[error("map `{map}`: {source}")]
    Fill {
        /// The map.
        map: String,
        /// Why.
        source: FillError,
    },
    /// The scenario names a program the object lacks.
    #[error("no program `{0}` in the object")]
    NoProgram(String),
    /// The program is of another type than its attachment needs.
    #[error("`{program}` is not {kind}: {source}")]
    WrongKind {
        /// The program.
        program: String,
        /// What it should be: "an XDP program", "a tc classifier".
        kind: &'static str,
        /// aya's error.
        source: aya::programs::ProgramError,
    },
    /// The kernel refused to load it (the verifier's line says why).
    #[error("{}", describe(.0))]
    Refused(#[source] aya::programs::ProgramError),
    /// The loaded program's kernel id could not be read (the tracer
    /// watches its returns by it).
    #[error("reading the loaded program's id: {0}")]
    Info(#[source] aya::programs::ProgramError),
    /// The device's clsact qdisc could not be added.
    #[error("adding clsact: {0}")]
    Clsact(#[source] aya::programs::tc::TcError),
    /// Attaching failed.
    #[error("attaching: {0}")]
    Attach(#[source] aya::programs::ProgramError),
    /// The thread inside the namespace could not be started.
    #[error("entering the namespace: {0}")]
    Netns(#[source] std::io::Error),
}

impl ObjectError {
    /// The verifier refused the program.
    pub fn by_verifier(&self) -> bool {
        matches!(
            self,
            ObjectError::Refused(aya::programs::ProgramError::LoadError { .. })
        )
    }

    /// A program or map name the object does not have.
    pub fn unknown_name(&self) -> bool {
        matches!(self, ObjectError::NoProgram(_) | ObjectError::NoMap(_))
    }
}

/// Why a map could not be filled.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// A key or value is wider than the map's.
    #[error("{value} does not fit in {ty}")]
    DoesNotFit {
        /// The scenario's number.
        value: u64,
        /// The map's integer type.
        ty: &'static str,
    },
    /// The kernel refused an entry.
    #[error("{0}")]
    Map(#[source] aya::maps::MapError),
    /// Not an array or hash map of integers.
    #[error("only array and hash maps with 1, 2, 4 or 8-byte integer keys and values can be set")]
    Unsupported,
}

/// Why a CNI plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum CniFailure {
    /// No such plugin in the plugin path.
    #[error("no plugin `{plugin}` in CNI_PATH {path}")]
    NoPlugin {
        /// The plugin's `type`.
        plugin: String,
        /// The colon-separated directories searched.
        path: String,
    },
    /// The plugin could not be run.
    #[error("running the plugin: {0}")]
    Run(#[source] std::io::Error),
    /// The plugin ran and failed: its own message (CNI error JSON or
    /// stderr).
    #[error("{0}")]
    Plugin(String),
}

/// `file:line:col: ` when the scenario line is known.
#[expect(
    clippy::ref_option,
    reason = "thiserror hands format arguments over by reference"
)]
fn located(at: &Option<Location>) -> String {
    at.as_ref().map(|l| format!("{l}: ")).unwrap_or_default()
}

/// What to do about a netlink error, by errno.
fn netlink_hint(e: &std::io::Error) -> Option<String> {
    let hint = match e.raw_os_error()? {
        libc::EPERM => "run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN are needed)",
        libc::EEXIST => {
            "two links, routes, rules or addresses collide; check the scenario for duplicates"
        }
        libc::ENETUNREACH => {
            "the gateway must be reachable through a connected route on an up device"
        }
        libc::ENODEV => {
            "no such device in this namespace; links are listed under `links:` of the same namespace"
        }
        libc::EOPNOTSUPP => "this kernel lacks the feature or module (see `pktfate doctor`)",
        libc::EADDRNOTAVAIL => "`src` must be an address of this namespace",
        _ => return None,
    };
    Some(hint.into())
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(source: ObjectError) -> TopologyError {
        TopologyError::BpfObject {
            at: None,
            what: "program `p` of o.bpf on a/eth0".into(),
            source: Box::new(source),
        }
    }

    fn cni(source: CniFailure) -> TopologyError {
        TopologyError::Cni {
            at: None,
            what: "CNI ADD of plugin `bridge` for `pod`".into(),
            source,
        }
    }

    /// Hints follow the kind of failure, never its words: a plugin whose
    /// own message starts "no plugin" is not a missing plugin.
    #[test]
    fn hints_follow_the_kind_of_failure_not_its_text() {
        let refused = ObjectError::Refused(aya::programs::ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EACCES),
            verifier_log: aya_obj::VerifierLog::new("R1 invalid mem access 'scalar'\n".into()),
        });
        assert!(
            refused.to_string().contains("R1 invalid mem access"),
            "{refused}"
        );
        assert!(object(refused).hint().unwrap().contains("verifier"));
        let hint = object(ObjectError::NoProgram("xdp_drop".into()))
            .hint()
            .unwrap();
        assert!(hint.contains("llvm-objdump"), "{hint}");
        assert!(object(ObjectError::NoMap("CONFIG".into())).hint().is_some());
        assert_eq!(
            object(ObjectError::Fill {
                map: "M".into(),
                source: FillError::Unsupported
            })
            .hint(),
            None
        );
        let missing = cni(CniFailure::NoPlugin {
            plugin: "bridge".into(),
            path: "/opt/cni/bin".into(),
        });
        assert!(missing.hint().unwrap().contains("--cni-path"));
        assert_eq!(
            cni(CniFailure::Plugin(
                "no plugin config for this network".into()
            ))
            .hint(),
            None
        );
    }
}
