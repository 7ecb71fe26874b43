//! Kernel modules a scenario needs: loaded before the topology is built,
//! or named with a hint when the kernel cannot have them.
//!
//! Most link kinds autoload through netlink, but not everywhere: a guest
//! without udev has no `/dev/net/tun` until `tun` is loaded, and a kernel
//! without a module should fail with its name, not with `EOPNOTSUPP` from
//! the middle of a topology build.

use std::path::PathBuf;
use std::process::Command;

use crate::scenario::{LinkKind, Scenario, TcSpec};

/// Whether a module is there, could be, or cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
pub const KNOWN: [&str; 9] = [
    "tun",
    "veth",
    "bridge",
    "vxlan",
    "macvlan",
    "nf_tables",
    "nf_conntrack",
    "sch_ingress",
    "cls_bpf",
];

/// Where module facts are read: `/sys/module` and
/// `<base>/lib/modules/<release>`. [`Modules::running`] is this machine's.
#[derive(Debug, Clone)]
pub struct Modules {
    sys: PathBuf,
    base: PathBuf,
    release: String,
}

impl Modules {
    /// The running kernel's modules.
    pub fn running() -> Self {
        Self {
            sys: "/sys/module".into(),
            base: "/".into(),
            release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| r.trim().to_string())
                .unwrap_or_default(),
        }
    }

    fn tree(&self) -> PathBuf {
        self.base.join("lib/modules").join(&self.release)
    }

    /// The state of `module`.
    pub fn state(&self, module: &str) -> ModuleState {
        let name = sys_name(module);
        if self.sys.join(&name).exists() {
            return ModuleState::Loaded;
        }
        let dir = self.tree();
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

    /// Loads `module` with modprobe unless it is loaded or built in.
    pub fn ensure(&self, module: &str) -> Result<(), KmodError> {
        match self.state(module) {
            // Without a module tree there is nothing to load from.
            ModuleState::Loaded | ModuleState::Builtin | ModuleState::Unknown => return Ok(()),
            ModuleState::Loadable | ModuleState::Missing => {}
        }
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&self.base)
            .arg("-S")
            .arg(&self.release)
            .arg(module)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                Err(KmodError {
                    module: module.into(),
                    why: if err.is_empty() {
                        format!("modprobe exited with {}", o.status)
                    } else {
                        crate::common::text::clip(&err, 200)
                    },
                })
            }
            // No modprobe: nothing to load with; the kernel may still have it.
            Err(_) => Ok(()),
        }
    }
}

/// `/sys/module` and `modules.builtin` spell names with underscores.
fn sys_name(module: &str) -> String {
    module.replace('-', "_")
}

/// The state of `module` on the running kernel.
pub fn state(module: &str) -> ModuleState {
    Modules::running().state(module)
}

/// Loads `module` on the running kernel unless it is loaded or built in.
pub fn ensure(module: &str) -> Result<(), KmodError> {
    Modules::running().ensure(module)
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
        // iptables-restore is iptables-nft on the distributions we run on.
        if ns.nft.is_some() || ns.iptables.is_some() || ns.ip6tables.is_some() {
            out.push("nf_tables");
        }
        // Conntrack's sysctls exist in a namespace only once nf_conntrack
        // is loaded: on a freshly booted kernel the ruleset that would
        // load it comes too late, or never.
        if ns
            .sysctls
            .iter()
            .any(|(k, _)| k.starts_with("net.netfilter.nf_conntrack_"))
        {
            out.push("nf_conntrack");
        }
        if ns
            .tc
            .iter()
            .any(|t| matches!(t, TcSpec::Program { .. } | TcSpec::Object { .. }))
        {
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

    use crate::common::PrivateDir;

    /// A module tree of a made-up kernel: veth loadable, bridge built in;
    /// removed when the guard drops, panics included.
    fn tree() -> (PrivateDir, Modules) {
        let guard = PrivateDir::new(&std::env::temp_dir()).unwrap();
        let base = guard.path().to_path_buf();
        let release = "9.9.9-test";
        let dir = base.join("lib/modules").join(release);
        std::fs::create_dir_all(dir.join("kernel/drivers/net")).unwrap();
        std::fs::create_dir_all(base.join("sys")).unwrap();
        std::fs::write(dir.join("modules.dep"), "kernel/drivers/net/veth.ko.xz:\n").unwrap();
        std::fs::write(dir.join("modules.builtin"), "kernel/net/bridge/bridge.ko\n").unwrap();
        let m = Modules {
            sys: base.join("sys"),
            base: base.clone(),
            release: release.into(),
        };
        (guard, m)
    }

    #[test]
    fn states_come_from_sysfs_and_the_module_tree() {
        let (guard, m) = tree();
        let base = guard.path();
        assert_eq!(m.state("veth"), ModuleState::Loadable);
        assert_eq!(m.state("bridge"), ModuleState::Builtin);
        assert_eq!(m.state("vxlan"), ModuleState::Missing);
        std::fs::create_dir(base.join("sys/veth")).unwrap();
        assert_eq!(m.state("veth"), ModuleState::Loaded);
        let no_tree = Modules {
            release: "0.0.0-none".into(),
            ..m.clone()
        };
        assert_eq!(no_tree.state("vxlan"), ModuleState::Unknown);
        assert!(m.ensure("bridge").is_ok(), "built in: nothing to load");
    }

    #[test]
    fn a_module_modprobe_cannot_load_is_named_with_a_hint() {
        // Run, or fail saying why: never a silent pass.
        assert!(
            Command::new("modprobe").arg("--version").output().is_ok(),
            "needs modprobe (Debian: kmod; `bash ci/setup.sh` installs it)"
        );
        let (_guard, m) = tree();
        let e = m.ensure("vxlan").unwrap_err();
        assert_eq!(e.module, "vxlan");
        assert!(e.why.contains("vxlan"), "modprobe's own words: {}", e.why);
        assert!(
            e.to_string()
                .starts_with("kernel module `vxlan` is not available (")
        );
        assert!(e.hint().contains("modprobe vxlan"));
    }

    #[test]
    fn a_conntrack_sysctl_needs_nf_conntrack_loaded_first() {
        let s = |sysctl: &str| {
            let text = format!(
                "namespaces:\n  a:\n    links: [{{ name: tun0, kind: tun }}]\n    sysctls: {{ {sysctl}: 0 }}\ninject:\n  via: a/tun0\n  ipv4: {{ src: 192.0.2.1, dst: 192.0.2.2 }}\n  udp: {{ sport: 1, dport: 2 }}\n"
            );
            Scenario::parse(std::path::Path::new("t.yaml"), &text).unwrap()
        };
        assert!(for_scenario(&s("net.netfilter.nf_conntrack_tcp_loose")).contains(&"nf_conntrack"));
        assert!(!for_scenario(&s("net.ipv4.ip_forward")).contains(&"nf_conntrack"));
    }

    #[test]
    fn this_machine_has_its_kernel_module_loaded() {
        // /sys/module/kernel exists on every Linux system.
        assert_eq!(state("kernel"), ModuleState::Loaded);
    }
}
