//! Debian's kernel packages, fetched with apt-get from the suites of the
//! Debian source this machine is configured with, through a private
//! sources list and state (the host's apt state is untouched).
//!
//! Up to 6.18 one `linux-image-<release>` package holds the kernel, its
//! configuration and its modules. From 6.19 in trixie-backports Debian
//! splits them: `linux-image-<release>` only depends on
//! `linux-binary-<release>` (the vmlinuz), `linux-modules-<release>` and
//! `linux-base-<release>` (configuration, System.map). A release is taken
//! with the packages of its own release it depends on, so either layout
//! works, and one whose image or modules the archive no longer has is
//! refused before anything is downloaded.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::error::MatrixError;

/// Suites searched for kernels: 5.10 (bullseye), 6.1 (bookworm), 6.12
/// (bookworm-security), 6.16 and later (trixie-backports).
const SUITES: [&str; 3] = ["bullseye", "bookworm", "trixie-backports"];
const SECURITY_SUITES: [&str; 1] = ["bookworm-security"];

/// Every suite searched, for messages.
fn suites() -> String {
    SUITES
        .iter()
        .chain(SECURITY_SUITES.iter())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// apt-get and apt-cache with a private sources list and state.
pub struct Apt {
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

/// A field of a deb822 stanza (apt's `.sources` files and the archive's
/// package lists share the form), trimmed.
fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = vec![];
    for para in text.split("\n\n") {
        let field = |name: &str| field(para, name).map(String::from);
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

/// The release of a plain amd64 kernel image package
/// (`linux-image-6.12.117+deb12-amd64` -> `6.12.117+deb12-amd64`): not
/// cloud, rt, unsigned, debug or a meta package.
fn plain_image_release(package: &str) -> Option<&str> {
    let release = package.strip_prefix("linux-image-")?;
    let v = release.strip_suffix("-amd64")?;
    let versioned = v.starts_with(|c: char| c.is_ascii_digit()) && v.contains(['-', '+']);
    (versioned && !v.contains("cloud") && !v.contains("-rt") && !v.ends_with("-unsigned"))
        .then_some(release)
}

/// Whether `package` is a plain amd64 image of kernel `spec` (`6.1`,
/// `6.12.117`).
fn matches(package: &str, spec: &str) -> bool {
    plain_image_release(package).is_some_and(|r| {
        r.strip_prefix(spec)
            .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
    })
}

/// `major.minor` of a plain image package (`linux-image-6.1.0-57-amd64`
/// -> `6.1`).
fn minor_version(package: &str) -> Option<String> {
    let mut parts = plain_image_release(package)?
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// An image package and its dependencies built for its own release, each
/// a group of alternatives.
type ImageDeps = (String, Vec<Vec<String>>);

/// An image package's dependencies built for its own kernel release
/// (`linux-modules-<release>`, ...), each a group of alternatives, from
/// `apt-cache show` output; one entry per package shown.
fn same_release_deps(show: &str) -> Vec<ImageDeps> {
    let mut out = vec![];
    for para in show.split("\n\n") {
        let field = |name: &str| field(para, name);
        let Some(package) = field("Package") else {
            continue;
        };
        let Some(release) = package.strip_prefix("linux-image-") else {
            continue;
        };
        let own = |d: &&str| d.starts_with("linux-") && d.ends_with(&format!("-{release}"));
        let groups = field("Depends")
            .unwrap_or("")
            .split(',')
            .map(|group| {
                group
                    .split('|')
                    .filter_map(|alt| alt.split_whitespace().next())
                    .filter(own)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        // A package in two suites is shown twice: the same release (its
        // name carries it), so one entry.
        if !out.iter().any(|(p, _)| p == package) {
            out.push((package.to_string(), groups));
        }
    }
    out
}

/// A kernel release as Debian ships it.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The `linux-image-<release>` package.
    pub image: String,
    /// What to download: the image package and the packages of its own
    /// release it depends on that the archive has (empty when the release
    /// was already extracted whole and apt was not asked).
    pub packages: Vec<String>,
}

/// What a release needs from the archive: the image package, plus its
/// own release's vmlinuz and modules packages when it depends on them
/// (`linux-binary-*`, `linux-modules-*`). Anything else of its release
/// (`linux-base-*`: configuration, System.map) is taken when there.
/// `Err` lists the packages that are needed and missing.
fn release_packages(
    image: &str,
    deps: &[Vec<String>],
    archive: &HashSet<&str>,
) -> Result<Release, Vec<String>> {
    let needed = |p: &str| p.starts_with("linux-binary-") || p.starts_with("linux-modules-");
    let mut packages = vec![image.to_string()];
    let mut missing = vec![];
    for group in deps {
        match group.iter().find(|p| archive.contains(p.as_str())) {
            Some(p) => packages.push(p.clone()),
            None if group.iter().any(|p| needed(p)) => missing.push(group.join(" | ")),
            None => {}
        }
    }
    if missing.is_empty() {
        Ok(Release {
            image: image.to_string(),
            packages,
        })
    } else {
        Err(missing)
    }
}

impl Apt {
    /// apt with its state under `CACHE/apt`, its lists updated when a day old.
    pub fn new(cache: &Path) -> Result<Self, MatrixError> {
        let root = cache.join("apt");
        for d in ["lists/partial", "cache/archives/partial", "debs"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(|e| MatrixError::io(format!("creating {}", root.display()), e))?;
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
                .map_err(|e| MatrixError::io(format!("writing {}", path.display()), e))?;
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
            // The package lists alone: AppStream metadata and translations
            // would double what a CI cache of this directory holds.
            "-o".into(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "-o".into(),
            "Acquire::Languages=none".into(),
        ]
    }

    fn run(&self, tool: &str, args: &[&str], cwd: &Path) -> Result<String, MatrixError> {
        // Through `process::fed`: a signal stops it (and what it started)
        // instead of leaving it downloading into the cache.
        let out = crate::common::process::fed(
            Command::new(tool)
                .args(self.opts())
                .args(args)
                .current_dir(cwd),
            b"",
        )
        .map_err(|e| MatrixError::User {
            msg: format!("cannot run {tool}: {e}"),
            hint: "the kernel matrix downloads Debian kernel packages with apt".into(),
        })?;
        if !out.status.success() {
            return Err(MatrixError::Tool(format!(
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
            std::fs::write(&stamp, b"")
                .map_err(|e| MatrixError::io(format!("writing {}", stamp.display()), e))?;
        }
        Ok(())
    }

    /// Packages whose names start with `prefix` (only those the archive
    /// has: a name that is only depended upon is not listed).
    fn names(&self, prefix: &str) -> Result<Vec<String>, MatrixError> {
        let out = self.run("apt-cache", &["pkgnames", prefix], &self.root)?;
        Ok(out.lines().map(String::from).collect())
    }

    /// The own-release dependencies of each image package (one
    /// `apt-cache show` for all).
    fn deps(&self, images: &[&str]) -> Result<Vec<ImageDeps>, MatrixError> {
        let shown = self.run("apt-cache", &[&["show"][..], images].concat(), &self.root)?;
        Ok(same_release_deps(&shown))
    }

    /// The newest release of kernel `spec` that the archive holds whole.
    /// `cached` says whether an image's release is already extracted
    /// whole: the newest one then needs no more questions to apt.
    pub fn release(
        &self,
        spec: &str,
        cached: impl Fn(&str) -> bool,
    ) -> Result<Release, MatrixError> {
        let names = self.names("linux-")?;
        let mut candidates: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|p| matches(p, spec))
            .collect();
        candidates.sort_by_key(|p| std::cmp::Reverse(version_key(p)));
        let Some(newest) = candidates.first() else {
            return Err(MatrixError::User {
                msg: format!("no Debian kernel package for {spec} in {}", suites()),
                hint: self.hint(&names),
            });
        };
        if cached(newest) {
            return Ok(Release {
                image: newest.to_string(),
                packages: vec![],
            });
        }
        let archive: HashSet<&str> = names.iter().map(String::as_str).collect();
        let deps = self.deps(&candidates)?;
        let mut first_missing = None;
        for image in &candidates {
            let groups = deps
                .iter()
                .find(|(p, _)| p == image)
                .map(|(_, g)| g.as_slice())
                .unwrap_or_default();
            match release_packages(image, groups, &archive) {
                Ok(r) => return Ok(r),
                Err(m) => {
                    first_missing.get_or_insert((image, m));
                }
            }
        }
        let (image, missing) = first_missing.unwrap_or((newest, vec![]));
        Err(MatrixError::User {
            msg: format!(
                "kernel {spec}: the archive ({}) no longer has {}, which Debian's {image} needs, nor an older {spec} release that is whole",
                suites(),
                missing.join(", "),
            ),
            hint: self.hint(&names),
        })
    }

    /// The versions a user can ask for instead: those of which the archive
    /// holds a whole release.
    fn hint(&self, names: &[String]) -> String {
        let images: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|p| plain_image_release(p).is_some())
            .collect();
        let archive: HashSet<&str> = names.iter().map(String::as_str).collect();
        let deps = self.deps(&images).unwrap_or_default();
        let mut whole: Vec<String> = deps
            .iter()
            .filter(|(p, g)| release_packages(p, g, &archive).is_ok())
            .filter_map(|(p, _)| minor_version(p))
            .collect();
        whole.sort_by_key(|v| version_key(v));
        whole.dedup();
        format!(
            "the archive has whole kernels of {}; or pass a vmlinuz path (its modules beside it) or a kernel build directory",
            if whole.is_empty() {
                "no version".to_string()
            } else {
                whole.join(", ")
            }
        )
    }

    /// Downloads a release's packages and extracts them all into `dir`
    /// (emptied first). The packages (~100 MB each) are deleted whatever
    /// happens, and so is a half-extracted `dir`.
    pub fn fetch_and_extract(&self, release: &Release, dir: &Path) -> Result<(), MatrixError> {
        let debs = self.root.join("debs");
        // Only this download's packages: an interrupted earlier one may
        // have left an older build of a package under the same name (the
        // cache lock is held, so no other run is downloading).
        empty_debs(&debs);
        let result = self.download_and_extract(release, &debs, dir);
        empty_debs(&debs);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    fn download_and_extract(
        &self,
        release: &Release,
        debs: &Path,
        dir: &Path,
    ) -> Result<(), MatrixError> {
        let mut args = vec!["-qq", "download"];
        args.extend(release.packages.iter().map(String::as_str));
        self.run("apt-get", &args, debs)?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)
            .map_err(|e| MatrixError::io(format!("creating {}", dir.display()), e))?;
        for package in &release.packages {
            let deb = find_deb(debs, package)?;
            let out = crate::common::process::fed(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir),
                b"",
            )
            .map_err(|e| MatrixError::io("running dpkg-deb", e))?;
            if !out.status.success() {
                return Err(MatrixError::Tool(format!(
                    "dpkg-deb -x {} failed: {}",
                    deb.display(),
                    crate::common::text::clip(String::from_utf8_lossy(&out.stderr).trim(), 400)
                )));
            }
        }
        Ok(())
    }
}

/// Deletes what downloads left in `debs` (packages, and the partial files
/// of one that was stopped): the directory is apt-get download's only.
fn empty_debs(debs: &Path) {
    for e in std::fs::read_dir(debs).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The `.deb` apt-get downloaded for `package`.
fn find_deb(debs: &Path, package: &str) -> Result<PathBuf, MatrixError> {
    std::fs::read_dir(debs)
        .map_err(|e| MatrixError::io(format!("reading {}", debs.display()), e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .ok_or_else(|| MatrixError::Tool(format!("apt-get download left no {package}_*.deb")))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `apt-cache show` of three releases as trixie-backports lists them
    /// (Depends cut to what matters): 7.3 split into four packages, 6.19
    /// split with its modules gone from the archive, 6.18 whole in its
    /// image (its `linux-base-<release>` gone too, which it does not need).
    const SHOW: &str = "Package: linux-image-7.3.4+deb13-amd64\nVersion: 7.3.4-1~bpo13+1\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)\nInstalled-Size: 16\n\nPackage: linux-image-6.19.14+deb13-amd64\nDepends: kmod, linux-base-6.19.14+deb13-amd64 (= 6.19.14-1~bpo13+1), linux-binary-6.19.14+deb13-amd64 (= 6.19.14-1~bpo13+1), linux-modules-6.19.14+deb13-amd64 (= 6.19.14-1~bpo13+1)\n\nPackage: linux-image-6.18.15+deb13-amd64\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, kmod, linux-base-6.18.15+deb13-amd64 (= 6.18.15-1~bpo13+1)\n\nPackage: linux-image-6.1.0-57-amd64\nDepends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\n";

    #[test]
    fn a_release_takes_the_packages_of_its_own_release_it_depends_on() {
        let deps = same_release_deps(SHOW);
        let of = |image: &str| deps.iter().find(|(p, _)| p == image).unwrap().1.clone();
        // Only the dependencies built for the image's own release count.
        assert_eq!(
            of("linux-image-7.3.4+deb13-amd64"),
            [
                vec!["linux-base-7.3.4+deb13-amd64".to_string()],
                vec!["linux-binary-7.3.4+deb13-amd64".to_string()],
                vec!["linux-modules-7.3.4+deb13-amd64".to_string()],
            ]
        );
        assert!(of("linux-image-6.1.0-57-amd64").is_empty());
        let archive: HashSet<&str> = [
            "linux-image-7.3.4+deb13-amd64",
            "linux-base-7.3.4+deb13-amd64",
            "linux-binary-7.3.4+deb13-amd64",
            "linux-modules-7.3.4+deb13-amd64",
            "linux-image-6.19.14+deb13-amd64",
            "linux-binary-6.19.14+deb13-amd64",
            "linux-image-6.18.15+deb13-amd64",
            "linux-image-6.1.0-57-amd64",
        ]
        .into();
        let take = |image: &str| release_packages(image, &of(image), &archive);
        assert_eq!(
            take("linux-image-7.3.4+deb13-amd64").unwrap().packages,
            [
                "linux-image-7.3.4+deb13-amd64",
                "linux-base-7.3.4+deb13-amd64",
                "linux-binary-7.3.4+deb13-amd64",
                "linux-modules-7.3.4+deb13-amd64"
            ]
        );
        // No modules: refused, naming the package the archive lacks.
        assert_eq!(
            take("linux-image-6.19.14+deb13-amd64").unwrap_err(),
            ["linux-modules-6.19.14+deb13-amd64"]
        );
        // A missing linux-base (configuration, System.map) is no reason.
        assert_eq!(
            take("linux-image-6.18.15+deb13-amd64").unwrap().packages,
            ["linux-image-6.18.15+deb13-amd64"]
        );
        assert_eq!(
            take("linux-image-6.1.0-57-amd64").unwrap().packages,
            ["linux-image-6.1.0-57-amd64"]
        );
        // A package shown in two versions counts once, as apt takes it.
        let twice = format!("{SHOW}\n{SHOW}");
        assert_eq!(same_release_deps(&twice).len(), 4);
        // Alternatives: the first the archive has.
        let alt = "Package: linux-image-7.2.12+deb13-amd64\nDepends: linux-binary-7.2.12+deb13-amd64 | linux-binary-unsigned-7.2.12+deb13-amd64, linux-modules-7.2.12+deb13-amd64\n";
        let g = &same_release_deps(alt)[0].1;
        let archive: HashSet<&str> = [
            "linux-binary-unsigned-7.2.12+deb13-amd64",
            "linux-modules-7.2.12+deb13-amd64",
        ]
        .into();
        assert_eq!(
            release_packages("linux-image-7.2.12+deb13-amd64", g, &archive)
                .unwrap()
                .packages[1],
            "linux-binary-unsigned-7.2.12+deb13-amd64"
        );
    }

    #[test]
    fn versions_are_read_from_package_names() {
        assert_eq!(
            minor_version("linux-image-6.1.0-57-amd64").as_deref(),
            Some("6.1")
        );
        assert_eq!(
            minor_version("linux-image-7.3.4+deb13-amd64").as_deref(),
            Some("7.3")
        );
        assert_eq!(minor_version("linux-image-7.3.4+deb13-amd64-dbg"), None);
        assert_eq!(minor_version("linux-image-amd64"), None);
        assert!(matches("linux-image-7.3.4+deb13-amd64", "7.3"));
        assert!(!matches("linux-image-7.3.4+deb13-amd64-dbg", "7.3"));
        assert!(!matches("linux-image-7.3.4+deb13-amd64", "7.30"));
    }

    #[test]
    fn only_this_downloads_packages_are_in_the_debs_directory() {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let debs = tmp.path();
        // An earlier, interrupted download of another build of the package.
        let stale = debs.join("linux-image-6.19.6+deb13-amd64_6.19.6-1~bpo13+1_amd64.deb");
        std::fs::write(&stale, b"").unwrap();
        let partial =
            debs.join("linux-modules-6.19.6+deb13-amd64_6.19.6-1~bpo13+1_amd64.deb.FAILED");
        std::fs::write(&partial, b"").unwrap();
        empty_debs(debs);
        assert!(!stale.exists());
        assert!(!partial.exists());
        assert!(find_deb(debs, "linux-image-6.19.6+deb13-amd64").is_err());
    }
}
