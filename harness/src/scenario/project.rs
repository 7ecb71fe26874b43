//! Which files a scenario may read, and how they are read.
//!
//! A scenario is reviewed as part of a project, so the files it names
//! (`nft_file`, …) must be that project's: they resolve only inside the
//! project root, the nearest ancestor of the scenario holding `Cargo.toml`,
//! `.git` or `pktfate.toml` (else the scenario's own directory), or inside a
//! directory the user allowed with `--allow-path`. Absolute paths and `..`
//! escapes are refused before anything runs, and every read is of a regular
//! file of bounded size: `/dev/zero`, a FIFO or a 10 GiB file can neither
//! hang nor exhaust a run.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The largest scenario or referenced file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Files marking a project root.
pub const ROOT_MARKERS: [&str; 3] = ["Cargo.toml", ".git", "pktfate.toml"];

/// Errors reading a file a user named.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not a regular file (a device, FIFO, directory, socket).
    #[error("not a regular file")]
    NotRegular,
    /// Bigger than the limit (bytes): [`MAX_FILE_BYTES`] for text.
    #[error("larger than {} KiB", .0 / 1024)]
    TooBig(u64),
    /// Not valid UTF-8.
    #[error("not UTF-8 text")]
    NotText,
    /// The system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why a file reference was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An absolute path.
    Absolute,
    /// It climbs out of the project root.
    Escapes(PathBuf),
    /// No such file in the project.
    Missing,
}

/// The project root of a scenario file.
pub fn root_of(scenario: &Path) -> PathBuf {
    let abs = std::path::absolute(scenario).unwrap_or_else(|_| scenario.to_path_buf());
    let start = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if ROOT_MARKERS.iter().any(|m| d.join(m).exists()) {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    start
}

/// Resolves `rel`, named in `scenario`, to a file of the project: looked
/// up next to the scenario, then in each parent directory up to the
/// project root. Symlinks count where they point; a file under one of the
/// `allowed` directories (`--allow-path`, canonical) is the project's too.
pub fn resolve(scenario: &Path, rel: &str, allowed: &[PathBuf]) -> Result<PathBuf, Refusal> {
    let relp = Path::new(rel);
    if relp.is_absolute() {
        return Err(Refusal::Absolute);
    }
    let root = root_of(scenario);
    let real_root = root.canonicalize().unwrap_or_else(|_| root.clone());
    let inside = |p: &Path| p.starts_with(&real_root) || allowed.iter().any(|d| p.starts_with(d));
    let abs = std::path::absolute(scenario).unwrap_or_else(|_| scenario.to_path_buf());
    let mut dir = abs.parent().map(Path::to_path_buf);
    let mut escaped = None;
    while let Some(d) = dir {
        let cand = normalize(&d.join(relp));
        if cand.is_file() {
            let real = cand.canonicalize().unwrap_or(cand.clone());
            if inside(&real) {
                return Ok(cand);
            }
            escaped.get_or_insert(real);
        }
        if d == root || !d.starts_with(&root) {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    match escaped {
        Some(p) => Err(Refusal::Escapes(p)),
        // `..` out of the root is refused even when nothing is there.
        None if relp.components().any(|c| c == Component::ParentDir) => {
            let cand = normalize(&abs.parent().unwrap_or(Path::new("/")).join(relp));
            if inside(&cand) {
                Err(Refusal::Missing)
            } else {
                Err(Refusal::Escapes(cand))
            }
        }
        None => Err(Refusal::Missing),
    }
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`] as text. Opening
/// does not block on a FIFO, and a device is refused before any read.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    let buf = read_bytes(path, MAX_FILE_BYTES)?;
    String::from_utf8(buf).map_err(|_| FileError::NotText)
}

/// Reads a regular file of at most `max` bytes (a compiled object), the
/// same careful way as [`read_text`].
pub fn read_bytes(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > max {
        return Err(FileError::TooBig(max));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(FileError::TooBig(max));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project tree: `<tmp>/proj/{Cargo.toml, fixtures/r.nft, s/a.yaml}`
    /// and `<tmp>/outside.nft`.
    fn tree() -> (crate::common::PrivateDir, PathBuf) {
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let proj = tmp.path().join("proj");
        std::fs::create_dir_all(proj.join("fixtures")).unwrap();
        std::fs::create_dir_all(proj.join("s")).unwrap();
        std::fs::write(proj.join("Cargo.toml"), "").unwrap();
        std::fs::write(proj.join("fixtures/r.nft"), "table inet t {}\n").unwrap();
        std::fs::write(proj.join("s/a.yaml"), "").unwrap();
        std::fs::write(tmp.path().join("outside.nft"), "secret\n").unwrap();
        (tmp, proj)
    }

    #[test]
    fn files_resolve_inside_the_project_only() {
        let (tmp, proj) = tree();
        let s = proj.join("s/a.yaml");
        assert_eq!(root_of(&s), proj);
        assert!(resolve(&s, "fixtures/r.nft", &[]).is_ok());
        assert!(resolve(&s, "../fixtures/r.nft", &[]).is_ok());
        assert_eq!(resolve(&s, "/etc/passwd", &[]), Err(Refusal::Absolute));
        assert!(matches!(
            resolve(&s, "../../outside.nft", &[]),
            Err(Refusal::Escapes(_))
        ));
        // Unless the run allowed that directory (`--allow-path`).
        let allowed = [tmp.path().canonicalize().unwrap()];
        assert!(resolve(&s, "../../outside.nft", &allowed).is_ok());
        assert!(matches!(
            resolve(&s, "../../../../../../etc/passwd", &[]),
            Err(Refusal::Escapes(_))
        ));
        // Parent directories above the root are not searched.
        assert_eq!(resolve(&s, "outside.nft", &[]), Err(Refusal::Missing));
        // A symlink inside pointing outside counts where it points.
        std::os::unix::fs::symlink(tmp.path().join("outside.nft"), proj.join("link.nft")).unwrap();
        assert!(matches!(
            resolve(&s, "link.nft", &[]),
            Err(Refusal::Escapes(_))
        ));
    }

    #[test]
    fn only_small_regular_files_are_read() {
        assert!(matches!(
            read_text(Path::new("/dev/zero")),
            Err(FileError::NotRegular)
        ));
        let tmp = crate::common::PrivateDir::new(&std::env::temp_dir()).unwrap();
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_text(&fifo), Err(FileError::NotRegular)));
        let big = tmp.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_text(&big), Err(FileError::TooBig(_))));
        std::fs::write(&big, "ok").unwrap();
        assert_eq!(read_text(&big).unwrap(), "ok");
    }
}
