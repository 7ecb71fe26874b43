//! Running a real tool (`nft`, `iptables-restore`, a CNI plugin) with its
//! input on stdin and its output captured: no file on disk to swap.

use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

/// Runs `cmd` in the calling thread's namespaces, feeds it `stdin` and
/// waits for it, with stdout and stderr captured.
pub fn fed(cmd: &mut Command, stdin: &[u8]) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        // A tool that stops reading early still gets its verdict.
        let _ = i.write_all(stdin);
    }
    child.wait_with_output()
}

#[cfg(test)]
mod tests {
    #[test]
    fn feeds_stdin_and_captures_both_outputs() {
        let out = super::fed(
            std::process::Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            b"in",
        )
        .unwrap();
        assert_eq!(out.stdout, b"in");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }
}
