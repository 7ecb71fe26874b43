//! Running code inside a network namespace without leaking it.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. Every piece
//! of namespace work therefore runs on a fresh thread that joins the
//! namespace, does the work and exits, so no thread of the test runner ever
//! ends up in a scenario namespace (or leaves one for the next test).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The bind-mount path of a named namespace.
pub fn path_of(real_name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(real_name)
}

/// Runs `f` on a new thread that has joined the namespace at `ns`.
pub fn run_in<T, F>(ns: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = File::open(ns)?;
    let handle = std::thread::Builder::new()
        .name("pktfate-netns".into())
        .spawn(move || -> io::Result<T> {
            // SAFETY: a valid namespace fd; affects this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })?;
    handle
        .join()
        .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
}

/// Like [`run_in`], for closures that borrow from the caller: the thread
/// is scoped, so it ends (and its namespace with it) before this returns.
pub fn run_in_scoped<T: Send, F: FnOnce() -> T + Send>(ns: &Path, f: F) -> io::Result<T> {
    let file = File::open(ns)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> io::Result<T> {
                // SAFETY: a valid namespace fd; affects this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
    })
}

/// The inode of a namespace file: the id the tracer sees in `net->ns.inum`.
pub fn inode(ns: &Path) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(ns)?.ino() as u32)
}

/// The inode of the namespace the calling thread is in.
pub fn current_inode() -> io::Result<u32> {
    inode(Path::new("/proc/thread-self/ns/net"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_in_a_namespace_does_not_move_the_caller() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root; skipped");
            return;
        }
        let name = format!("pf{}-netns-unit", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("ip netns add failed; skipped");
            return;
        }
        let before = current_inode().unwrap();
        let ns_ino = inode(&path_of(&name)).unwrap();
        let inside = run_in(&path_of(&name), || current_inode().unwrap()).unwrap();
        let after = current_inode().unwrap();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .status();
        assert_eq!(inside, ns_ino, "the closure ran in the scenario namespace");
        assert_ne!(inside, before);
        assert_eq!(before, after, "the caller's namespace is unchanged");
    }
}
