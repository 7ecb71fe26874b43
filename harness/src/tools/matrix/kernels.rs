//! Kernels for the matrix: a version (`6.1`) becomes the newest matching
//! Debian `linux-image-*-amd64` package, downloaded with apt-get from the
//! suites of the Debian source this machine is configured with (through a
//! private sources list, so the host's apt state is untouched) and
//! extracted into the user's cache; a path to a vmlinuz is used as is, and
//! so is a kernel build directory (a net-next checkout after `make`),
//! which virtme-ng boots with the modules built in it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::error::MatrixError;

/// Suites searched for kernels: 5.10 (bullseye), 6.1 (bookworm), 6.12
/// (bookworm-security), 6.16 and later (trixie-backports).
const SUITES: [&str; 3] = ["bullseye", "bookworm", "trixie-backports"];
const SECURITY_SUITES: [&str; 1] = ["bookworm-security"];

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// What the user asked for (`6.1`, or the path).
    pub spec: String,
    /// The kernel release (`6.1.0-56-amd64`).
    pub release: String,
    /// The vmlinuz to boot; its modules are in `../lib/modules/<release>`
    /// (for a build directory: its `arch/x86/boot/bzImage`).
    pub vmlinuz: PathBuf,
    /// A kernel build directory, booted as virtme-ng boots one (its image
    /// and the modules built there), instead of `vmlinuz` alone.
    #[doc(alias = "KBUILD_OUTPUT")]
    pub build_dir: Option<PathBuf>,
}

/// What a `.config` says is missing for pktfate, if anything: BTF is the
/// one thing no scenario can run without.
pub fn config_problem(config: &str) -> Option<&'static str> {
    (!config.lines().any(|l| l.trim() == "CONFIG_DEBUG_INFO_BTF=y"))
        .then_some("CONFIG_DEBUG_INFO_BTF is not set: the tracer reads struct offsets, tracepoint prototypes and drop reasons from the kernel's BTF")
}

/// Refuses a kernel whose configuration (`config`, when there is one)
/// lacks BTF, before it is booted.
fn refuse_without_btf(
    spec: &str,
    release: &str,
    config: &Path,
    hint: &str,
) -> Result<(), MatrixError> {
    match std::fs::read_to_string(config)
        .ok()
        .and_then(|c| config_problem(&c))
    {
        Some(why) => Err(MatrixError::User {
            msg: format!("kernel `{spec}` ({release}) cannot be traced: {why}"),
            hint: hint.into(),
        }),
        None => Ok(()),
    }
}

/// A kernel build directory (`make` done in it): its release and image.
fn build_tree(spec: &str, dir: &Path) -> Result<Kernel, MatrixError> {
    let image = dir.join("arch/x86/boot/bzImage");
    let release = std::fs::read_to_string(dir.join("include/config/kernel.release"))
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let (Some(release), true) = (release, image.is_file()) else {
        return Err(MatrixError::User {
            msg: format!("`{spec}` is a directory but not a built kernel tree (no include/config/kernel.release and arch/x86/boot/bzImage)"),
            hint: "run `make olddefconfig && make -j$(nproc)` in it first (the README lists the options the guest needs), or give a vmlinuz path".into(),
        });
    };
    // virtme-ng links the modules modules.order names into the tree and
    // runs depmod with the tree's System.map: without it the guest dies
    // at once (`make` writes both; a copied-out tree may lack it).
    if dir.join("modules.order").is_file() && !dir.join("System.map").is_file() {
        return Err(MatrixError::User {
            msg: format!("kernel tree `{spec}` ({release}) has modules but no System.map, which virtme-ng's depmod needs to prepare them for the guest"),
            hint: "copy System.map from the build (make writes it at the top of the output directory), or rebuild".into(),
        });
    }
    refuse_without_btf(
        spec,
        &release,
        &dir.join(".config"),
        "enable CONFIG_DEBUG_INFO_BTF (with CONFIG_DEBUG_INFO_DWARF5 or _DWARF4 and pahole installed) and rebuild",
    )?;
    Ok(Kernel {
        spec: spec.into(),
        release,
        vmlinuz: image,
        build_dir: Some(dir.to_path_buf()),
    })
}

/// The user's cache directory for pktfate.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("pktfate")
}

/// Resolves a `--kernel` argument.
pub fn resolve(spec: &str, cache: &Path) -> Result<Kernel, MatrixError> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return build_tree(spec, as_path);
    }
    if as_path.is_file() {
        let name = as_path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let release = name.strip_prefix("vmlinuz-").unwrap_or(name).to_string();
        // Its packaged configuration, when it lies beside it (`config-<release>`).
        refuse_without_btf(
            spec,
            &release,
            &as_path.with_file_name(format!("config-{release}")),
            "give a kernel built with CONFIG_DEBUG_INFO_BTF",
        )?;
        return Ok(Kernel {
            spec: spec.into(),
            release,
            vmlinuz: as_path.to_path_buf(),
            build_dir: None,
        });
    }
    if crate::scenario::kernel_range::parse_version(spec).is_none() {
        return Err(MatrixError::User {
            msg: format!("`{spec}` is neither a kernel version, a vmlinuz file nor a kernel build directory"),
            hint: "write a version such as 6.1 or 6.12, the path of a vmlinuz, or a kernel tree where `make` has run".into(),
        });
    }
    // Runs sharing the cache (CI jobs on one runner) take turns: apt's
    // lists are updated by one at a time, and a package another run is
    // extracting, or booting from, is never extracted over.
    let _turn = lock_cache(cache)?;
    let apt = Apt::new(cache)?;
    let package = apt.newest(spec)?;
    let dir = cache.join("kernels").join(&package);
    if !dir.join(".complete").exists() {
        apt.fetch_and_extract(&package, &dir)?;
    }
    let boot = dir.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| MatrixError::Io(format!("{}: {e}", boot.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| MatrixError::Io(format!("no vmlinuz in {}", boot.display())))?;
    let release = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    refuse_without_btf(
        spec,
        &release,
        &boot.join(format!("config-{release}")),
        "choose another kernel version",
    )?;
    Ok(Kernel {
        spec: spec.into(),
        release,
        vmlinuz,
        build_dir: None,
    })
}

/// apt-get and apt-cache with a private sources list and state.
struct Apt {
    root: PathBuf,
}

/// An apt source line's parts: URI and keyring.
#[derive(Debug, Clone, PartialEq)]
struct Source {
    uri: String,
    suites: Vec<String>,
    signed_by: Option<String>,
}

/// The Debian sources this machine's apt is configured with (one-line
/// `.list` and deb822 `.sources` files).
fn configured_sources() -> Vec<Source> {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    let mut deb822 = vec![];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.filter_map(Result::ok) {
            let p = e.path();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            match p.extension().and_then(|x| x.to_str()) {
                Some("list") => texts.push(text),
                Some("sources") => deb822.push(text),
                _ => {}
            }
        }
    }
    let mut out = vec![];
    for t in texts {
        out.extend(parse_one_line(&t));
    }
    for t in deb822 {
        out.extend(parse_deb822(&t));
    }
    out
}

fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = vec![];
    for l in text.lines().map(str::trim) {
        let Some(rest) = l.strip_prefix("deb ") else {
            continue;
        };
        let mut signed_by = None;
        let rest = match rest.trim().strip_prefix('[') {
            Some(r) => {
                let (opts, after) = r.split_once(']').unwrap_or((r, ""));
                for o in opts.split_whitespace() {
                    if let Some(k) = o.strip_prefix("signed-by=") {
                        signed_by = Some(k.to_string());
                    }
                }
                after
            }
            None => rest,
        };
        let mut f = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (f.next(), f.next()) {
            out.push(Source {
                uri: uri.into(),
                suites: vec![suite.into()],
                signed_by,
            });
        }
    }
    out
}

fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = vec![];
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        if field("Enabled").is_some_and(|v| v == "no")
            || !field("Types").is_some_and(|t| t.split_whitespace().any(|x| x == "deb"))
        {
            continue;
        }
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
            continue;
        };
        for uri in uris.split_whitespace() {
            out.push(Source {
                uri: uri.into(),
                suites: suites.split_whitespace().map(String::from).collect(),
                signed_by: field("Signed-By"),
            });
        }
    }
    out
}

/// The private sources list: the configured Debian archive and its
/// security archive, with the suites kernels come from.
fn sources_list(sources: &[Source]) -> Option<String> {
    let debian = |s: &&Source| {
        s.suites.iter().any(|x| {
            ["bullseye", "bookworm", "trixie", "forky", "sid"]
                .iter()
                .any(|c| x.starts_with(c))
        })
    };
    let security = sources
        .iter()
        .filter(debian)
        .find(|s| s.suites.iter().any(|x| x.ends_with("-security")));
    let main = sources
        .iter()
        .filter(debian)
        .find(|s| s.suites.iter().any(|x| !x.contains('-')))?;
    let line = |s: &Source, suite: &str| {
        let key = s
            .signed_by
            .as_deref()
            .map(|k| format!("[signed-by={k}] "))
            .unwrap_or_default();
        format!("deb {key}{} {suite} main\n", s.uri)
    };
    let mut out: String = SUITES.iter().map(|suite| line(main, suite)).collect();
    if let Some(sec) = security {
        out.extend(SECURITY_SUITES.iter().map(|suite| line(sec, suite)));
    }
    Some(out)
}

/// Numeric parts of a package name's version, for ordering.
fn version_key(package: &str) -> Vec<u64> {
    package
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// An exclusive lock on the kernel cache (`flock` on `CACHE/.lock`),
/// released when the returned file is dropped or the process dies.
fn lock_cache(cache: &Path) -> Result<std::fs::File, MatrixError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(cache)
        .map_err(|e| MatrixError::Io(format!("{}: {e}", cache.display())))?;
    let path = cache.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| MatrixError::Io(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; it blocks until
    // the lock is free and touches no memory.
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(MatrixError::Io(format!("locking {}: {e}", path.display())));
        }
    }
    Ok(f)
}

/// Whether `package` is a plain amd64 image of kernel `spec` (`6.1`,
/// `6.12.117`): not cloud, rt, unsigned or debug.
fn matches(package: &str, spec: &str) -> bool {
    let Some(v) = package
        .strip_prefix("linux-image-")
        .and_then(|r| r.strip_suffix("-amd64"))
    else {
        return false;
    };
    if v.contains("cloud") || v.contains("-rt") || v.ends_with("-unsigned") {
        return false;
    }
    v.strip_prefix(spec)
        .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
}

impl Apt {
    fn new(cache: &Path) -> Result<Self, MatrixError> {
        let root = cache.join("apt");
        for d in ["lists/partial", "cache/archives/partial", "debs"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(|e| MatrixError::Io(format!("{}: {e}", root.display())))?;
        }
        let list = sources_list(&configured_sources()).ok_or_else(|| MatrixError::User {
            msg: "no Debian apt source is configured on this machine".into(),
            hint:
                "pass the path of a vmlinuz (with its lib/modules beside it) instead of a version"
                    .into(),
        })?;
        let path = root.join("sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(list.as_str()) {
            std::fs::write(&path, &list)
                .map_err(|e| MatrixError::Io(format!("{}: {e}", path.display())))?;
            // New sources: the lists must be fetched again.
            let _ = std::fs::remove_file(root.join("lists/.updated"));
        }
        let apt = Self { root };
        apt.update_if_stale()?;
        Ok(apt)
    }

    fn opts(&self) -> Vec<String> {
        let r = |p: &str| self.root.join(p).display().to_string();
        vec![
            "-o".into(),
            format!("Dir::Etc::SourceList={}", r("sources.list")),
            "-o".into(),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "-o".into(),
            format!("Dir::State::Lists={}", r("lists")),
            "-o".into(),
            format!("Dir::Cache={}", r("cache")),
        ]
    }

    fn run(&self, tool: &str, args: &[&str], cwd: &Path) -> Result<String, MatrixError> {
        let out = Command::new(tool)
            .args(self.opts())
            .args(args)
            .current_dir(cwd)
            .output()
            .map_err(|e| MatrixError::User {
                msg: format!("cannot run {tool}: {e}"),
                hint: "the kernel matrix downloads Debian kernel packages with apt".into(),
            })?;
        if !out.status.success() {
            return Err(MatrixError::Io(format!(
                "{tool} {}: {}",
                args.join(" "),
                crate::common::text::clip(String::from_utf8_lossy(&out.stderr).trim(), 400)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn update_if_stale(&self) -> Result<(), MatrixError> {
        let stamp = self.root.join("lists/.updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < Duration::from_secs(24 * 3600));
        if !fresh {
            self.run("apt-get", &["-qq", "update"], &self.root)?;
            std::fs::write(&stamp, b"").map_err(|e| MatrixError::Io(e.to_string()))?;
        }
        Ok(())
    }

    /// The newest plain amd64 image package of kernel `spec`.
    fn newest(&self, spec: &str) -> Result<String, MatrixError> {
        let names = self.run("apt-cache", &["pkgnames", "linux-image-"], &self.root)?;
        names
            .lines()
            .filter(|p| matches(p, spec))
            .max_by_key(|p| version_key(p))
            .map(String::from)
            .ok_or_else(|| MatrixError::User {
                msg: format!(
                    "no Debian kernel package for {spec} in {}",
                    SUITES.join(", ")
                ),
                hint: "5.10, 6.1, 6.12 and 6.16-6.19 are there; or pass a vmlinuz path".into(),
            })
    }

    fn fetch_and_extract(&self, package: &str, dir: &Path) -> Result<(), MatrixError> {
        let debs = self.root.join("debs");
        self.run("apt-get", &["-qq", "download", package], &debs)?;
        let deb = std::fs::read_dir(&debs)
            .map_err(|e| MatrixError::Io(e.to_string()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
            })
            .ok_or_else(|| MatrixError::Io(format!("apt-get download left no {package}_*.deb")))?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| MatrixError::Io(e.to_string()))?;
        let st = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir)
            .status()
            .map_err(|e| MatrixError::Io(format!("dpkg-deb: {e}")))?;
        if !st.success() {
            return Err(MatrixError::Io(format!(
                "dpkg-deb -x {} failed",
                deb.display()
            )));
        }
        // The package is not needed once extracted (~90 MB each).
        let _ = std::fs::remove_file(&deb);
        std::fs::write(dir.join(".complete"), b"").map_err(|e| MatrixError::Io(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_sharing_a_kernel_cache_take_turns() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let cache = tmp.path().join("cache");
        let held = lock_cache(&cache).unwrap();
        let got = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let _l = lock_cache(&cache).unwrap();
                got.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // The other run waits while this one holds the cache.
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(!got.load(std::sync::atomic::Ordering::SeqCst));
            drop(held);
            other.join().unwrap();
        });
        assert!(got.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_built_kernel_tree_is_booted_as_is_and_one_without_btf_refused() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let tree = tmp.path().join("net-next");
        std::fs::create_dir_all(tree.join("include/config")).unwrap();
        std::fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        let spec = tree.display().to_string();
        let refused = |e: MatrixError| match e {
            MatrixError::User { msg, hint } => format!("{msg} / {hint}"),
            MatrixError::Io(m) => panic!("not a user error: {m}"),
        };
        // Not built yet: says so, and what to run.
        let e = refused(resolve(&spec, tmp.path()).unwrap_err());
        assert!(
            e.contains("not a built kernel tree") && e.contains("make"),
            "{e}"
        );
        std::fs::write(tree.join("include/config/kernel.release"), "6.19.0-rc1+\n").unwrap();
        std::fs::write(tree.join("arch/x86/boot/bzImage"), b"").unwrap();
        std::fs::write(
            tree.join(".config"),
            "CONFIG_BPF=y\n# CONFIG_DEBUG_INFO_BTF is not set\n",
        )
        .unwrap();
        let e = refused(resolve(&spec, tmp.path()).unwrap_err());
        assert!(
            e.contains("6.19.0-rc1+") && e.contains("CONFIG_DEBUG_INFO_BTF"),
            "{e}"
        );
        std::fs::write(
            tree.join(".config"),
            "CONFIG_BPF=y\nCONFIG_DEBUG_INFO_BTF=y\n",
        )
        .unwrap();
        // Modules built but no System.map: refused before booting.
        std::fs::write(tree.join("modules.order"), "kernel/net/veth.ko\n").unwrap();
        let e = refused(resolve(&spec, tmp.path()).unwrap_err());
        assert!(e.contains("no System.map"), "{e}");
        std::fs::write(tree.join("System.map"), "").unwrap();
        let k = resolve(&spec, tmp.path()).unwrap();
        assert_eq!(k.release, "6.19.0-rc1+");
        assert_eq!(k.build_dir.as_deref(), Some(tree.as_path()));
        assert_eq!(k.vmlinuz, tree.join("arch/x86/boot/bzImage"));
        // A vmlinuz whose packaged config lies beside it is checked too.
        let boot = tmp.path().join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.0-9-amd64"), b"").unwrap();
        std::fs::write(
            boot.join("config-6.1.0-9-amd64"),
            "# CONFIG_DEBUG_INFO_BTF is not set\n",
        )
        .unwrap();
        let vmlinuz = boot.join("vmlinuz-6.1.0-9-amd64").display().to_string();
        let e = refused(resolve(&vmlinuz, tmp.path()).unwrap_err());
        assert!(
            e.contains("6.1.0-9-amd64") && e.contains("CONFIG_DEBUG_INFO_BTF"),
            "{e}"
        );
        std::fs::remove_file(boot.join("config-6.1.0-9-amd64")).unwrap();
        assert_eq!(
            resolve(&vmlinuz, tmp.path()).unwrap().release,
            "6.1.0-9-amd64"
        );
        // Neither a version, a file nor a directory.
        let e = refused(resolve("six-one", tmp.path()).unwrap_err());
        assert!(e.contains("kernel build directory"), "{e}");
    }

    #[test]
    fn packages_are_matched_to_the_version_asked_for() {
        assert!(matches("linux-image-6.1.0-56-amd64", "6.1"));
        assert!(!matches("linux-image-6.12.117+deb12-amd64", "6.1"));
        assert!(matches("linux-image-6.12.117+deb12-amd64", "6.12"));
        assert!(!matches("linux-image-6.12.117+deb12-cloud-amd64", "6.12"));
        assert!(!matches("linux-image-6.12.117+deb12-rt-amd64", "6.12"));
        assert!(!matches("linux-image-6.12-amd64", "6.12"), "a meta package");
        assert!(matches("linux-image-5.10.0-32-amd64", "5.10"));
        let mut v = [
            "linux-image-6.18.9+deb13-amd64",
            "linux-image-6.18.15+deb13-amd64",
        ];
        v.sort_by_key(|p| version_key(p));
        assert_eq!(
            v[1], "linux-image-6.18.15+deb13-amd64",
            "15 > 9, numerically"
        );
    }

    #[test]
    fn the_private_list_reuses_the_configured_archives() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /k.gpg\n";
        let list = sources_list(&parse_deb822(deb822)).unwrap();
        assert!(
            list.contains("deb [signed-by=/k.gpg] http://mirror.example/debian bullseye main\n")
        );
        assert!(list.contains("http://mirror.example/debian trixie-backports main"));
        assert!(list.contains("http://mirror.example/debian-security bookworm-security main"));
        let one = parse_one_line(
            "deb [arch=amd64 signed-by=/a.gpg] http://m.example/debian bookworm main\n# x\n",
        );
        assert_eq!(one[0].signed_by.as_deref(), Some("/a.gpg"));
        assert!(sources_list(&parse_one_line("deb http://ppa.example/x jammy main\n")).is_none());
    }
}
