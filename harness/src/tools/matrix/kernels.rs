//! Kernels for the matrix: a version (`6.1`) becomes the newest whole
//! release of it among Debian's packages (see `debian`), extracted into
//! the user's cache; a path to a vmlinuz is used as is, and so is a kernel
//! build directory (a net-next checkout after `make`), which virtme-ng
//! boots with the modules built in it.

use std::path::{Path, PathBuf};

use super::debian;
use super::error::MatrixError;

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
        let (release, config) = beside(as_path);
        // Its packaged configuration, when it lies beside it.
        refuse_without_btf(
            spec,
            &release,
            &config,
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
    let kernels = cache.join("kernels");
    // Extracted whole before: a release cached before pktfate took split
    // packages (6.19's image alone) lacks its vmlinuz and modules.
    let cached = |dir: &Path| {
        dir.join(".complete")
            .exists()
            .then(|| extracted(dir))
            .flatten()
    };
    let apt = debian::Apt::new(cache)?;
    let release = apt.release(spec, |image| cached(&kernels.join(image)).is_some())?;
    let dir = kernels.join(&release.image);
    let (vmlinuz, release, config) = match cached(&dir) {
        Some(found) => found,
        None => fetch(&apt, &release, &dir)?,
    };
    refuse_without_btf(spec, &release, &config, "choose another kernel version")?;
    Ok(Kernel {
        spec: spec.into(),
        release,
        vmlinuz,
        build_dir: None,
    })
}

/// An extracted release: its vmlinuz, its release and where its
/// configuration is.
type Extracted = (PathBuf, String, PathBuf);

/// Downloads and extracts `release` into `dir`, marked complete once its
/// vmlinuz and modules are there.
fn fetch(
    apt: &debian::Apt,
    release: &debian::Release,
    dir: &Path,
) -> Result<Extracted, MatrixError> {
    let _ = std::fs::remove_file(dir.join(".complete"));
    apt.fetch_and_extract(release, dir)?;
    let found = extracted(dir).ok_or_else(|| {
        MatrixError::Tool(format!(
            "the packages {} hold no vmlinuz with its modules (looked for boot/vmlinuz-* and usr/lib/modules/*/vmlinuz, and lib/modules/<release>/kernel or usr/lib/modules/<release>/kernel)",
            release.packages.join(", ")
        ))
    })?;
    std::fs::write(dir.join(".complete"), b"")
        .map_err(|e| MatrixError::io(format!("writing {}/.complete", dir.display()), e))?;
    Ok(found)
}

/// The release a vmlinuz is of and where its configuration would be:
/// `vmlinuz-<release>` with `config-<release>` beside it (Debian to 6.19,
/// `/boot`), or `<release>/vmlinuz` with `<release>/config` (a modules
/// directory: Debian from 7.2, Fedora, Arch).
fn beside(vmlinuz: &Path) -> (String, PathBuf) {
    let name = vmlinuz.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(release) = name.strip_prefix("vmlinuz-") {
        return (
            release.to_string(),
            vmlinuz.with_file_name(format!("config-{release}")),
        );
    }
    let parent = vmlinuz.parent().unwrap_or(Path::new(""));
    let in_modules = parent.parent().is_some_and(|p| p.ends_with("lib/modules"));
    match parent.file_name().and_then(|n| n.to_str()) {
        Some(release) if in_modules => (release.to_string(), parent.join("config")),
        _ => (
            name.to_string(),
            vmlinuz.with_file_name(format!("config-{name}")),
        ),
    }
}

/// An extracted release under `root` (its packages' files): the vmlinuz,
/// its release and its configuration's place, if the modules for that
/// release are there too (virtme-ng finds them from the vmlinuz's path:
/// `usr/lib/modules/<release>`).
fn extracted(root: &Path) -> Option<Extracted> {
    // Modules are in `lib/modules` to 5.10 (bullseye), `usr/lib/modules` after.
    let module_dirs = [root.join("usr/lib/modules"), root.join("lib/modules")];
    let in_boot = std::fs::read_dir(root.join("boot"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        });
    let in_modules = module_dirs
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("vmlinuz"));
    let vmlinuz = in_boot.chain(in_modules).find(|p| p.is_file())?;
    let (release, config) = beside(&vmlinuz);
    let modules = module_dirs
        .iter()
        .map(|d| d.join(&release))
        .find(|d| d.join("kernel").is_dir())?;
    // Split packages keep the configuration with the modules, whichever
    // package holds the image.
    let config = if config.exists() {
        config
    } else {
        modules.join("config")
    };
    Some((vmlinuz, release, config))
}

/// An exclusive lock on the kernel cache (`flock` on `CACHE/.lock`),
/// released when the returned file is dropped or the process dies.
fn lock_cache(cache: &Path) -> Result<std::fs::File, MatrixError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(cache)
        .map_err(|e| MatrixError::io(format!("creating {}", cache.display()), e))?;
    let path = cache.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| MatrixError::io(format!("opening {}", path.display()), e))?;
    // Polled, not blocking: a run told to stop while another holds the
    // lock (for a download of minutes) stops now, not after it.
    loop {
        // SAFETY: flock on a descriptor this function owns; it touches no
        // memory.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            return Err(MatrixError::io(format!("locking {}", path.display()), e));
        }
        if crate::common::process::stopping() {
            return Err(MatrixError::io(
                format!("waiting for {}", path.display()),
                std::io::ErrorKind::Interrupted.into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
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
            other => panic!("not a user error: {other}"),
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
    fn an_extracted_release_is_found_in_each_of_debians_layouts() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        // Files of each layout, and the (release, vmlinuz, config) found.
        type Layout<'a> = (&'a str, &'a [&'a str], Option<[&'a str; 3]>);
        let layouts: [Layout; 5] = [
            // 5.10: /boot, modules in lib/modules.
            (
                "a",
                &[
                    "boot/vmlinuz-5.10.0-32-amd64",
                    "boot/config-5.10.0-32-amd64",
                    "lib/modules/5.10.0-32-amd64/kernel/net/veth.ko",
                ],
                Some([
                    "5.10.0-32-amd64",
                    "boot/vmlinuz-5.10.0-32-amd64",
                    "boot/config-5.10.0-32-amd64",
                ]),
            ),
            // 7.3: everything under usr/lib/modules/<release>.
            (
                "b",
                &[
                    "usr/lib/modules/7.3.4+deb13-amd64/vmlinuz",
                    "usr/lib/modules/7.3.4+deb13-amd64/config",
                    "usr/lib/modules/7.3.4+deb13-amd64/kernel/net/veth.ko.xz",
                ],
                Some([
                    "7.3.4+deb13-amd64",
                    "usr/lib/modules/7.3.4+deb13-amd64/vmlinuz",
                    "usr/lib/modules/7.3.4+deb13-amd64/config",
                ]),
            ),
            // 6.19's image alone (its modules package gone): not a release.
            ("c", &["boot/vmlinuz-6.19.14+deb13-amd64"], None),
            // The image package of 6.19, with nothing in it.
            (
                "d",
                &["usr/share/doc/linux-image-6.19.14+deb13-amd64/copyright"],
                None,
            ),
            // 6.19 whole: vmlinuz in /boot, configuration with the modules.
            (
                "e",
                &[
                    "boot/vmlinuz-6.19.14+deb13-amd64",
                    "usr/lib/modules/6.19.14+deb13-amd64/kernel/net/veth.ko.xz",
                    "usr/lib/modules/6.19.14+deb13-amd64/config",
                ],
                Some([
                    "6.19.14+deb13-amd64",
                    "boot/vmlinuz-6.19.14+deb13-amd64",
                    "usr/lib/modules/6.19.14+deb13-amd64/config",
                ]),
            ),
        ];
        for (dir, files, want) in layouts {
            let root = tmp.path().join(dir);
            for f in files {
                std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
                std::fs::write(root.join(f), b"").unwrap();
            }
            let got = extracted(&root).map(|(v, r, c)| (r, v, c));
            match want {
                None => assert!(got.is_none(), "{dir}: {got:?}"),
                Some([release, vmlinuz, config]) => {
                    let (r, v, c) = got.unwrap_or_else(|| panic!("{dir}: nothing found"));
                    assert_eq!(
                        (r.as_str(), v, c),
                        (release, root.join(vmlinuz), root.join(config))
                    );
                }
            }
        }
    }

    #[test]
    fn a_vmlinuz_path_tells_its_release_by_its_name_or_its_modules_directory() {
        let (r, c) = beside(Path::new("/k/boot/vmlinuz-6.1.0-9-amd64"));
        assert_eq!(
            (r.as_str(), c),
            ("6.1.0-9-amd64", "/k/boot/config-6.1.0-9-amd64".into())
        );
        // Fedora, Arch, Debian from 7.2.
        let (r, c) = beside(Path::new("/usr/lib/modules/7.3.4+deb13-amd64/vmlinuz"));
        assert_eq!(
            (r.as_str(), c),
            (
                "7.3.4+deb13-amd64",
                "/usr/lib/modules/7.3.4+deb13-amd64/config".into()
            )
        );
        let (r, _) = beside(Path::new("/tmp/x/bzImage"));
        assert_eq!(r, "bzImage");
    }

    #[test]
    fn an_os_error_is_kept_as_the_source_with_the_path() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let file = tmp.path().join("not-a-directory");
        std::fs::write(&file, b"").unwrap();
        let e = lock_cache(&file.join("cache")).unwrap_err();
        let source = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the OS error as the source");
        assert_eq!(source.raw_os_error(), Some(libc::ENOTDIR));
        assert!(e.to_string().contains("not-a-directory/cache"), "{e}");
    }
}
