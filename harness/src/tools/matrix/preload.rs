//! The files a guest copies into RAM before its scenarios run: the tools
//! and CNI plugins they run, and the libraries those load.
//!
//! The guest's root is the host's, shared over 9p without a cache, so
//! every exec reads its binary and each library from the host again,
//! through emulated virtio: under TCG `/bin/true` took 0.25 s, 0.12 s once
//! it and libc were in RAM. virtme-ng overlays /usr, /etc and the like
//! with a RAM layer, and `touch` copies a file up into that layer, where
//! every later exec reads it. On a 1-vCPU 5.10 guest, copying up the
//! tools, every CNI plugin installed here and their libraries (~160 files,
//! 62 MB) took 9 s and cut its suite from 165 s to 125 s; only the plugins
//! the scenarios name are copied now.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// What pktfate runs in a scenario's namespaces (rulesets, commands,
/// rule listings, modules) and what the CNI plugins run (go-iptables).
const TOOLS: &[&str] = &[
    "ip",
    "tc",
    "nft",
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "modprobe",
    "sysctl",
    "sh",
];

/// The files the guest running `scenarios` should copy up: each found
/// tool and CNI plugin those scenarios name (real paths, not links), and
/// the shared objects they load. Best effort: what is not found is left
/// for the guest to read as before.
pub fn files(scenarios: &[PathBuf], cni_path: &str) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut bins = BTreeSet::new();
    for tool in TOOLS {
        bins.extend(first_in(std::env::split_paths(&path), OsStr::new(tool)));
    }
    for plugin in plugin_types(scenarios) {
        // The file the guest's run will execute, resolved.
        let found = crate::topology::cni::plugin_binary(cni_path, &plugin);
        bins.extend(found.and_then(|p| p.canonicalize().ok()));
    }
    let mut all = bins.clone();
    all.extend(libraries(&bins));
    all.into_iter().collect()
}

/// The first executable file named `name` in `dirs`, resolved.
fn first_in(dirs: impl Iterator<Item = PathBuf>, name: &OsStr) -> Option<PathBuf> {
    dirs.map(|d| d.join(name)).find_map(|p| {
        let real = p.canonicalize().ok()?;
        let meta = real.metadata().ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(real)
    })
}

/// The plugin types (`type`, and `ipam.type`) of the scenarios' CNI
/// configuration lists; a scenario that does not load names none (the
/// guest reports why).
fn plugin_types(scenarios: &[PathBuf]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in scenarios
        .iter()
        .filter_map(|p| crate::scenario::Scenario::load(p).ok())
    {
        for cni in s.namespaces.iter().filter_map(|n| n.cni.as_ref()) {
            for p in cni.conflist["plugins"].as_array().into_iter().flatten() {
                for t in [&p["type"], &p["ipam"]["type"]] {
                    // A plugin is a file name in the CNI path, never a path.
                    if let Some(t) = t.as_str().filter(|t| !t.is_empty() && !t.contains('/')) {
                        out.insert(t.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The shared objects `bins` load, as the host's dynamic loader finds
/// them (`ldd`: the guest's root is this filesystem), and the iptables
/// extensions libxtables opens by name at run time.
fn libraries(bins: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    if bins.is_empty() {
        return BTreeSet::new();
    }
    // Exits non-zero when one of them is static; its output still lists the rest.
    let Ok(out) = std::process::Command::new("ldd").args(bins).output() else {
        return BTreeSet::new();
    };
    let mut libs: BTreeSet<PathBuf> = ldd_paths(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let extensions: Vec<PathBuf> = libs
        .iter()
        .filter(|l| {
            l.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libxtables.so"))
        })
        .filter_map(|l| std::fs::read_dir(l.parent()?.join("xtables")).ok())
        .flat_map(|dir| dir.filter_map(|e| Some(e.ok()?.path())))
        .filter(|p| p.extension() == Some(OsStr::new("so")))
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    libs.extend(extensions);
    libs
}

/// The absolute paths in `ldd` output: `name => /path (addr)` lines and
/// the loader's own `/path (addr)` line, each indented under its file's
/// `/file:` line.
fn ldd_paths(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix('\t')?.trim();
            let rest = l.split_once("=> ").map_or(l, |(_, r)| r);
            let path = rest.split_once(" (").map_or(rest, |(p, _)| p);
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn ldd_output_gives_each_library_and_the_loader() {
        let text = "/usr/sbin/nft:\n\
                    \tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f07)\n\
                    \tlibmissing.so.3 => not found\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f08)\n\
                    /usr/lib/cni/static:\n\
                    \tnot a dynamic executable\n";
        assert_eq!(
            ldd_paths(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libnftables.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn a_tool_is_the_first_executable_of_its_name_resolved() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // Not executable in a: skipped, as a shell would.
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::write(b.join("real"), "").unwrap();
        std::fs::set_permissions(b.join("real"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(b.join("real"), b.join("tool")).unwrap();
        let found = first_in([a, b.clone()].into_iter(), OsStr::new("tool"));
        assert_eq!(found, Some(b.join("real").canonicalize().unwrap()));
        assert_eq!(first_in([b].into_iter(), OsStr::new("none")), None);
    }

    #[test]
    fn the_plugins_of_the_shipped_cni_scenarios_are_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cni");
        let files: Vec<PathBuf> = ["bridge-pod-to-pod.yaml", "firewall-isolates-bridges.yaml"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        // pods.conflist: bridge with host-local, then portmap; the
        // isolated networks add the firewall plugin.
        let got = plugin_types(&files);
        for p in ["bridge", "host-local", "portmap", "firewall"] {
            assert!(got.contains(p), "{p} missing from {got:?}");
        }
    }

    #[test]
    fn a_cni_scenario_preloads_its_plugins_their_libraries_and_the_tools() {
        let cni = crate::common::config::DEFAULT_CNI_PATH;
        let bridge =
            crate::topology::cni::plugin_binary(cni, "bridge").and_then(|p| p.canonicalize().ok());
        let Some(bridge) = bridge else {
            // ci/setup.sh installs the plugins; a machine without them has nothing to preload.
            eprintln!("no CNI bridge plugin in {cni}: nothing to check here");
            return;
        };
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cni/bridge-pod-to-pod.yaml");
        let got = files(&[scenario], cni);
        assert!(got.contains(&bridge), "{got:?}");
        // Resolved, never a link: a link is not what an exec reads.
        assert!(
            got.iter().all(|f| f.is_absolute() && !f.is_symlink()),
            "{got:?}"
        );
        // The plugins and the tools are linked against the C library.
        assert!(
            got.iter().any(|f| f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))),
            "{got:?}"
        );
        let nft = first_in(
            std::env::split_paths(&std::env::var_os("PATH").unwrap()),
            OsStr::new("nft"),
        );
        assert!(nft.is_none_or(|n| got.contains(&n)), "{got:?}");
    }
}
