//! Helpers shared by the CLI and reliability tests.

use std::path::PathBuf;
use std::process::Output;

/// A command's stdout and stderr, one after the other.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A private scratch directory (mkdtemp: unpredictable name, mode 0700),
/// removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new directory whose name starts with `pktfate-<tag>-`.
    pub fn new(tag: &str) -> Self {
        let tmpl = std::env::temp_dir().join(format!("pktfate-{tag}-XXXXXX"));
        let mut buf = std::ffi::CString::new(tmpl.to_str().expect("UTF-8 temp dir"))
            .expect("no NUL")
            .into_bytes_with_nul();
        // SAFETY: a writable NUL-terminated template.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
        assert!(!p.is_null(), "mkdtemp failed");
        buf.pop();
        Scratch(PathBuf::from(String::from_utf8(buf).expect("UTF-8")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
