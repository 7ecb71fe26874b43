//! What the machine must provide before a scenario can run, checked up
//! front so the user gets one clear message instead of a failure halfway.

use std::path::Path;

/// Something the machine lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// Not running as root.
    #[error("pktfate needs root: scenarios create network namespaces and load eBPF programs")]
    NotRoot,
    /// No kernel BTF.
    #[error(
        "no kernel BTF at /sys/kernel/btf/vmlinux: the tracer resolves kernel struct offsets and drop reasons from it"
    )]
    NoBtf,
    /// No tun driver.
    #[error("no /dev/net/tun: scenarios inject packets through tun devices")]
    NoTun,
    /// A tool is missing.
    #[error("`{0}` not found on PATH")]
    MissingTool(&'static str),
    /// /proc/kallsyms shows no addresses, so stacks cannot be named.
    #[error(
        "kernel symbol addresses are hidden (/proc/kallsyms shows zeros): stacks, `at` and `path` need them"
    )]
    NoSymbols,
    /// `netfilter:` assertions on iptables rules, and the iptables here
    /// is legacy (`x_tables`): its rules send no trace messages.
    #[error(
        "`{0}` is iptables-legacy: netfilter rule assertions need iptables-nft, whose rules are nftables rules the kernel traces"
    )]
    LegacyIptables(&'static str),
}

impl PreflightError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            PreflightError::NotRoot => "run as root, e.g. `sudo -E cargo test`".into(),
            PreflightError::NoBtf => "use a kernel built with CONFIG_DEBUG_INFO_BTF=y".into(),
            PreflightError::NoTun => "load the tun module: `modprobe tun`".into(),
            PreflightError::MissingTool("ip") => {
                "install iproute2 (`bash ci/setup.sh` does)".into()
            }
            PreflightError::MissingTool(t) => format!("install `{t}` (`bash ci/setup.sh` does)"),
            PreflightError::NoSymbols => "run as root with kernel.kptr_restrict at 0 or 1".into(),
            PreflightError::LegacyIptables(_) => {
                format!(
                    "switch to iptables-nft (Debian/Ubuntu: `{}`), or assert only `reason: NETFILTER_DROP`",
                    crate::common::TO_IPTABLES_NFT
                )
            }
        }
    }
}

/// Whether an iptables `--version` line names the legacy (`x_tables`)
/// backend: `iptables-restore v1.8.9 (legacy)` vs `(nf_tables)`.
pub(crate) fn is_legacy(version: &str) -> bool {
    version.contains("(legacy)")
}

/// Refuses `tool` when it is iptables-legacy (its `--version` says so).
/// Asked once per tool and process: the answer is the machine's, and a
/// suite asks it for every scenario with iptables rules.
pub(crate) fn check_iptables_nft(tool: &'static str) -> Result<(), PreflightError> {
    if legacy_on_path(tool) {
        Err(PreflightError::LegacyIptables(tool))
    } else {
        Ok(())
    }
}

/// Whether the `tool` PATH finds (`iptables`, `iptables-restore`, ...) is
/// iptables-legacy; not when it is missing.
pub(crate) fn legacy_on_path(tool: &'static str) -> bool {
    static KNOWN: std::sync::Mutex<Vec<(&'static str, bool)>> = std::sync::Mutex::new(vec![]);
    known_or(&KNOWN, tool, || {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| is_legacy(&String::from_utf8_lossy(&o.stdout)))
    })
}

/// `tool`'s answer in `known`, else `ask()`'s, kept there. The lock is held
/// while asking, so two scenarios starting together ask once.
fn known_or(
    known: &std::sync::Mutex<Vec<(&'static str, bool)>>,
    tool: &'static str,
    ask: impl FnOnce() -> bool,
) -> bool {
    let mut k = known
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, v)) = k.iter().find(|(t, _)| *t == tool) {
        return *v;
    }
    let v = ask();
    k.push((tool, v));
    v
}

/// Whether `tool` is a file in a directory of PATH.
pub(crate) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| crate::common::first_on_path(&p, tool).is_some())
}

/// Checks root, BTF, tun (loading it if need be) and `ip`.
pub fn check() -> Result<(), PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(PreflightError::NotRoot);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    if !Path::new("/dev/net/tun").exists() {
        // A guest without udev has no /dev/net/tun until tun is loaded.
        let _ = crate::topology::kmod::ensure("tun");
        if !Path::new("/dev/net/tun").exists() {
            return Err(PreflightError::NoTun);
        }
    }
    if !on_path("ip") {
        return Err(PreflightError::MissingTool("ip"));
    }
    if !crate::tracer::kallsyms::Kallsyms::kernel().usable() {
        return Err(PreflightError::NoSymbols);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_is_asked_once() {
        let known = std::sync::Mutex::new(vec![]);
        let asked = std::cell::Cell::new(0);
        let ask = |answer| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                answer
            }
        };
        assert!(known_or(&known, "iptables-restore", ask(true)));
        // Kept: a second ask would say otherwise.
        assert!(known_or(&known, "iptables-restore", ask(false)));
        assert!(!known_or(&known, "ip6tables-restore", ask(false)));
        assert_eq!(asked.get(), 2, "one ask per tool");
    }

    #[test]
    fn the_legacy_backend_is_told_by_its_version_line() {
        // What iptables 1.8 prints for each backend.
        assert!(is_legacy("iptables-restore v1.8.9 (legacy)\n"));
        assert!(!is_legacy("iptables-restore v1.8.9 (nf_tables)\n"));
        let e = PreflightError::LegacyIptables("iptables-restore");
        assert!(e.to_string().contains("need iptables-nft"), "{e}");
        assert!(e.hint().contains("iptables-nft"));
    }
}
