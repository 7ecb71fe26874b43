//! Kernel modules a scenario needs: loaded before the topology is built,
//! or named with a hint when the kernel cannot have them.
//!
//! Most link kinds autoload through netlink, but not everywhere: a guest
//! without udev has no `/dev/net/tun` until `tun` is loaded, and a kernel
//! without a module should fail with its name, not with `EOPNOTSUPP` from
//! the middle of a topology build.

use std::path::Path;
use std::process::Command;

use crate::scenario::{LinkKind, Scenario, TcSpec};

/// Whether a module is there, could be, or cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    /// Loaded now (`/sys/module/<name>`).
    Loaded,
    /// Compiled into the kernel (`modules.builtin`).
    Builtin,
    /// In `/lib/modules/<release>`, not loaded yet.
    Loadable,
    /// Not found in the kernel's module tree.
    Missing,
    /// There is no module tree for this kernel: built in, or absent.
    Unknown,
}

/// A module that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel module `{module}` is not available ({why})")]
pub struct KmodError {
    /// The module.
    pub module: String,
    /// What modprobe said, or what was missing.
    pub why: String,
}

impl KmodError {
    /// How to get it.
    pub fn hint(&self) -> String {
        format!(
            "load it with `modprobe {}`; if the kernel lacks it, install the kernel's extra modules package (e.g. linux-modules-extra-$(uname -r) on Ubuntu)",
            self.module
        )
    }
}

/// Every module a scenario may need, for `pktfate doctor`.
pub const KNOWN: [&str; 8] = [
    "tun",
    "veth",
    "bridge",
    "vxlan",
    "macvlan",
    "nf_tables",
    "sch_ingress",
    "cls_bpf",
];

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_default()
}

/// `/sys/module` and `modules.builtin` spell names with underscores.
fn sys_name(module: &str) -> String {
    module.replace('-', "_")
}

/// The state of `module` on the running kernel.
pub fn state(module: &str) -> ModuleState {
    let name = sys_name(module);
    if Path::new("/sys/module").join(&name).exists() {
        return ModuleState::Loaded;
    }
    let dir = Path::new("/lib/modules").join(release());
    if !dir.exists() {
        return ModuleState::Unknown;
    }
    let listed = |file: &str| {
        std::fs::read_to_string(dir.join(file)).is_ok_and(|t| {
            t.lines().any(|l| {
                let path = l.split(':').next().unwrap_or("");
                let base = path.rsplit('/').next().unwrap_or("");
                let stem = base.split(".ko").next().unwrap_or("");
                sys_name(stem) == name
            })
        })
    };
    if listed("modules.builtin") {
        ModuleState::Builtin
    } else if listed("modules.dep") {
        ModuleState::Loadable
    } else {
        ModuleState::Missing
    }
}

/// Loads `module` unless it is loaded or built in.
pub fn ensure(module: &str) -> Result<(), KmodError> {
    match state(module) {
        // Without a module tree there is nothing to load from.
        ModuleState::Loaded | ModuleState::Builtin | ModuleState::Unknown => return Ok(()),
        ModuleState::Loadable | ModuleState::Missing => {}
    }
    let out = Command::new("modprobe").arg("-q").arg(module).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            Err(KmodError {
                module: module.into(),
                why: if err.is_empty() {
                    format!("modprobe exited with {}", o.status)
                } else {
                    crate::text::clip(&err, 200)
                },
            })
        }
        // No modprobe: nothing to load with; the kernel may still have it.
        Err(_) => Ok(()),
    }
}

/// The modules a scenario's topology uses.
pub fn for_scenario(s: &Scenario) -> Vec<&'static str> {
    let mut out = vec!["tun"];
    for ns in &s.namespaces {
        for l in &ns.links {
            out.push(match l.kind {
                LinkKind::Veth { .. } => "veth",
                LinkKind::Tun | LinkKind::Tap => "tun",
                LinkKind::Bridge => "bridge",
                LinkKind::Macvlan { .. } => "macvlan",
                LinkKind::Vxlan { .. } => "vxlan",
            });
        }
        if ns.nft.is_some() {
            out.push("nf_tables");
        }
        if ns.tc.iter().any(|t| matches!(t, TcSpec::Program { .. })) {
            out.extend(["sch_ingress", "cls_bpf"]);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_module_is_seen_and_an_invented_one_is_missing() {
        // /sys/module/kernel exists on every Linux system.
        assert_eq!(state("kernel"), ModuleState::Loaded);
        let expected = if Path::new("/lib/modules").join(release()).exists() {
            ModuleState::Missing
        } else {
            ModuleState::Unknown
        };
        assert_eq!(state("pktfate_no_such_module"), expected);
    }

    #[test]
    fn an_unloadable_module_is_named_with_a_hint() {
        if !Path::new("/lib/modules").join(release()).exists() {
            eprintln!("no module tree for this kernel; skipped");
            return;
        }
        let e = ensure("pktfate_no_such_module").unwrap_err();
        assert_eq!(e.module, "pktfate_no_such_module");
        assert!(
            e.to_string()
                .contains("`pktfate_no_such_module` is not available")
        );
        assert!(e.hint().contains("modprobe pktfate_no_such_module"));
    }
}
