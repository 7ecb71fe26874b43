//! Running code inside a network namespace without leaking it.
//!
//! `setns(2)` changes the namespace of the calling *thread* only. Every piece
//! of namespace work therefore runs on a fresh thread that joins the
//! namespace, does the work and exits, so no thread of the test runner ever
//! ends up in a scenario namespace (or leaves one for the next test).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
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

/// `/run/netns` could not be made ready (the OS error is its source).
#[derive(Debug, thiserror::Error)]
#[error("preparing {NETNS_RUN_DIR}: {0}")]
struct RunDirError(#[source] std::sync::Arc<io::Error>);

/// Makes `/run/netns` a shared mount, as `ip netns add` does the first
/// time, so namespaces bound there are seen from every mount namespace
/// (`ip netns exec` makes its own).
fn prepare_run_dir() -> io::Result<()> {
    use std::ffi::CString;
    std::fs::create_dir_all(NETNS_RUN_DIR)?;
    let dir = CString::new(NETNS_RUN_DIR).expect("no NUL");
    let shared = |d: &CString| {
        // SAFETY: valid C strings; changes propagation of this mount only.
        unsafe {
            libc::mount(
                std::ptr::null(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            )
        }
    };
    if shared(&dir) == 0 {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself first.
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            dir.as_ptr(),
            dir.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if rc != 0 || shared(&dir) != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a named network namespace (what `ip netns add` does, without a
/// process): a thread unshares a new namespace and binds it to
/// `/run/netns/<name>`, then exits; the bind mount keeps it alive.
pub fn create(real_name: &str) -> io::Result<()> {
    use std::ffi::CString;
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
    let target = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    let bound = std::thread::Builder::new()
        .name("pktfate-netns-new".into())
        .spawn(move || -> io::Result<()> {
            // SAFETY: affects this thread only; it exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let src = CString::new("/proc/thread-self/ns/net").expect("no NUL");
            // SAFETY: valid C strings; binds the thread's namespace file.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
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
    use std::ffi::CString;
    let path = path_of(real_name);
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: a valid C string; detaches the bind mount only.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let umount_err = (rc != 0).then(io::Error::last_os_error);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) => Err(umount_err.unwrap_or(e)),
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
