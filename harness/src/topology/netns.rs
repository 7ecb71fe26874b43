//! Running code inside a network namespace without leaking it.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. Every piece
//! of namespace work therefore runs on a fresh thread that joins the
//! namespace, does the work and exits, so no thread of the test runner ever
//! ends up in a scenario namespace (or leaves one for the next test).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

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
            // Affects this thread only.
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)?;
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
                // Affects this thread only.
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
    })
}

/// `/run/netns` could not be made ready (the OS error is its source).
#[derive(Debug, thiserror::Error)]
#[error("preparing {NETNS_RUN_DIR}: {0}")]
struct RunDirError(#[source] std::sync::Arc<io::Error>);

/// Makes `/run/netns` a shared mount, as `ip netns add` does the first
/// time, so namespaces bound there are seen from every mount namespace
/// (`ip netns exec` makes its own).
fn prepare_run_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR)?;
    let none: Option<&str> = None;
    let shared = || {
        // Changes the propagation of this mount only.
        nix::mount::mount(
            none,
            NETNS_RUN_DIR,
            none,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            none,
        )
    };
    if shared().is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself first.
    nix::mount::mount(
        Some(NETNS_RUN_DIR),
        NETNS_RUN_DIR,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )?;
    shared()?;
    Ok(())
}

/// Creates a named network namespace (what `ip netns add` does, without a
/// process): a thread unshares a new namespace and binds it to
/// `/run/netns/<name>`, then exits; the bind mount keeps it alive.
pub fn create(real_name: &str) -> io::Result<()> {
    static PREPARED: std::sync::OnceLock<Result<(), std::sync::Arc<io::Error>>> =
        std::sync::OnceLock::new();
    PREPARED
        .get_or_init(|| prepare_run_dir().map_err(std::sync::Arc::new))
        .clone()
        .map_err(|e| io::Error::new(e.kind(), RunDirError(e)))?;
    let path = path_of(real_name);
    // create_new: a name that exists is never taken over.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)?;
    let target = path.clone();
    let bound = std::thread::Builder::new()
        .name("pktfate-netns-new".into())
        .spawn(move || -> io::Result<()> {
            // Affects this thread only; it exits right after.
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
            let none: Option<&str> = None;
            // Binds the thread's namespace file.
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                none,
                MsFlags::MS_BIND,
                none,
            )?;
            Ok(())
        })?
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?;
    if let Err(e) = bound {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}

/// Deletes a named network namespace (`ip netns del`): unmounts its file
/// and removes it; the namespace goes when nothing else holds it.
pub fn delete(real_name: &str) -> io::Result<()> {
    let path = path_of(real_name);
    // Detaches the bind mount only.
    let unmounted = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) => Err(unmounted.err().map_or(e, io::Error::from)),
    }
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

/// A namespace created for a scenario.
#[derive(Debug, Clone)]
pub struct NetnsHandle {
    /// Scenario-local name.
    pub name: String,
    /// Name under /run/netns.
    pub real: String,
    /// Inode (what the tracer sees).
    pub inode: u32,
}

impl NetnsHandle {
    /// Path of the namespace file.
    pub fn path(&self) -> PathBuf {
        path_of(&self.real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_in_a_namespace_does_not_move_the_caller() {
        // Run, or fail saying why: never a silent pass.
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "needs root (it creates a network namespace): run the tests as root, as ci/test does"
        );
        let name = format!("pf{}-netns-unit", std::process::id());
        create(&name).expect("creating a namespace");
        assert!(
            std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&name)),
            "ip netns list shows it, as if ip had made it"
        );
        let before = current_inode().unwrap();
        let ns_ino = inode(&path_of(&name)).unwrap();
        let inside = run_in(&path_of(&name), || current_inode().unwrap()).unwrap();
        let after = current_inode().unwrap();
        delete(&name).expect("deleting it");
        assert!(!path_of(&name).exists());
        assert_eq!(inside, ns_ino, "the closure ran in the scenario namespace");
        assert_ne!(inside, before);
        assert_eq!(before, after, "the caller's namespace is unchanged");
    }
}
