//! The user-space tools scenarios hand their rules and commands to, as
//! `doctor` reports them: where PATH finds each, and its version. A
//! scenario that passes on one machine and fails on a runner often differs
//! there, not in the kernel (nft's parser, iptables' backend).

use std::ffi::OsStr;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// One tool, as found on PATH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolReport {
    /// Its name.
    pub name: String,
    /// Where PATH finds it; `None` when nowhere.
    pub path: Option<String>,
    /// The first line of its version output.
    pub version: Option<String>,
    /// What it means for scenarios, when something does.
    pub note: Option<String>,
}

/// Each tool, the flag that prints its version, and what needs it.
const TOOLS: [(&str, &str, &str); 4] = [
    ("nft", "--version", "`nft:` rulesets and rule tracing"),
    (
        "iptables",
        "--version",
        "`iptables:` rulesets and CNI plugins",
    ),
    ("ip", "-V", "`run:` steps and `tc:` command lines"),
    ("tc", "-V", "`tc:` command lines"),
];

/// The tools as the `:`-separated `path` finds them.
pub fn tools_on(path: &OsStr) -> Vec<ToolReport> {
    TOOLS
        .iter()
        .map(|&(name, flag, used_by)| {
            let Some(bin) = crate::common::first_on_path(path, name) else {
                return ToolReport {
                    name: name.into(),
                    path: None,
                    version: None,
                    note: Some(format!("not on PATH: {used_by} fail without it")),
                };
            };
            let version = crate::common::process::fed(Command::new(&bin).arg(flag), b"")
                .ok()
                .and_then(|o| {
                    let out = String::from_utf8_lossy(&o.stdout).into_owned();
                    out.lines().next().map(|l| l.trim().to_string())
                })
                .filter(|l| !l.is_empty());
            let legacy = name == "iptables"
                && version
                    .as_deref()
                    .is_some_and(crate::runner::preflight::is_legacy);
            ToolReport {
                name: name.into(),
                path: Some(bin.display().to_string()),
                version,
                note: legacy.then(|| {
                    format!(
                        "iptables-legacy: scenarios with `iptables:` rules are refused and its \
                         rules are not traced; install iptables-nft (`{}`)",
                        crate::common::TO_IPTABLES_NFT
                    )
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn versions_legacy_iptables_and_missing_tools_are_reported() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let stub = |name: &str, line: &str| {
            let p = tmp.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho '{line}'\necho second line\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        stub("nft", "nftables v0.9.8 (E.D.S.)");
        stub("iptables", "iptables v1.8.7 (legacy)");
        stub("tc", "tc utility, iproute2-5.9.0, libbpf 0.3.0");
        let r = tools_on(tmp.path().as_os_str());
        let get = |n: &str| r.iter().find(|t| t.name == n).unwrap();
        assert_eq!(
            get("nft").version.as_deref(),
            Some("nftables v0.9.8 (E.D.S.)")
        );
        assert_eq!(get("nft").note, None);
        assert!(
            get("iptables")
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("iptables-legacy"))
        );
        let ip = get("ip");
        assert_eq!((ip.path.as_deref(), ip.version.as_deref()), (None, None));
        assert!(ip.note.as_deref().unwrap().starts_with("not on PATH"));
        assert_eq!(
            get("tc").path.as_deref(),
            Some(tmp.path().join("tc").to_str().unwrap())
        );
    }
}
