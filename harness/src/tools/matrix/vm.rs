//! Boots a kernel with virtme-ng (`vng`) and runs pktfate inside it.
//!
//! The guest's root is the host's filesystem (read-only), so this very
//! binary runs inside. `vng` exits 255 whatever the guest did, so the guest
//! writes its results and exit status into a private read-write directory.
//! Its console is read through a pipe (qemu truncates a file given as its
//! output) and kept for the report when the guest fails.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::error::MatrixError;
use super::kernels::Kernel;

/// Set by the Ctrl-C handler: guests are powered off, not left running.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What a guest run produced.
#[derive(Debug, Default)]
pub struct GuestRun {
    /// `pktfate doctor --json` inside the guest.
    pub doctor: Option<crate::tools::doctor::Doctor>,
    /// Why the guest's doctor report could not be read, when it could not.
    pub doctor_unread: Option<String>,
    /// `pktfate run --format json` lines inside the guest.
    pub results: Vec<serde_json::Value>,
    /// The guest's `pktfate run` exit status.
    pub rc: Option<i32>,
    /// The start of what `pktfate run` printed in the guest.
    pub log: String,
    /// Why the guest produced no results, when it did not.
    pub failure: Option<String>,
    /// The guest kernel's panic, when it had one: its oops lines.
    pub panic: Option<String>,
    /// Wall time from boot to power-off.
    pub elapsed: Duration,
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Use KVM (else TCG emulation).
    pub kvm: bool,
    /// vCPUs.
    pub cpus: usize,
    /// Give up on a guest after this long.
    pub timeout: Duration,
    /// Arguments for `pktfate run` inside the guest.
    pub run_args: Vec<String>,
    /// Files the guest copies up into its RAM overlay first ([`super::preload`]).
    pub preload: Vec<std::path::PathBuf>,
}

pub use crate::common::PrivateDir;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The script the guest runs.
fn guest_script(
    exe: &Path,
    cwd: &Path,
    rw: &Path,
    run_args: &[String],
    preload: &[std::path::PathBuf],
) -> String {
    let q = |p: &Path| quote(&p.display().to_string());
    let args: Vec<String> = run_args.iter().map(|a| quote(a)).collect();
    // Copied up while doctor runs (the copy mostly waits on the host),
    // finished before the suite; a file outside virtme-ng's overlays
    // (read-only) is left as it is.
    let copy_up = if preload.is_empty() {
        String::new()
    } else {
        let files: Vec<String> = preload.iter().map(|p| q(p)).collect();
        format!("touch -c -- {} 2>/dev/null &\n", files.join(" "))
    };
    format!(
        "cd {cwd}\n\
         export PKTFATE_IDLE_MS=2000 PKTFATE_TIMEOUT_SCALE=4\n\
         {copy_up}\
         {exe} doctor --json > {rw}/doctor.json 2> {rw}/doctor.err\n\
         wait\n\
         {exe} run {args} --format json --output {rw}/results.json > {rw}/run.log 2>&1\n\
         echo $? > {rw}/rc\n",
        cwd = q(cwd),
        exe = q(exe),
        rw = q(rw),
        args = args.join(" "),
    )
}

/// The `vng` command line for one guest.
fn vng_command(kernel: &Kernel, opts: &VmOptions, rw: &Path, script: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new("vng");
    cmd.arg("--verbose");
    match &kernel.build_dir {
        // A build tree: vng takes its image and the modules built there.
        Some(dir) => {
            cmd.env("KBUILD_OUTPUT", dir);
        }
        None => {
            cmd.arg("--run").arg(&kernel.vmlinuz);
        }
    }
    cmd.args(["--memory", "2G", "--cpus", &opts.cpus.to_string()])
        .arg("--rwdir")
        .arg(rw)
        .arg("--exec")
        .arg(format!("sh {}", quote(&script.display().to_string())))
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so qemu goes down with it on a timeout.
        .process_group(0);
    if !opts.kvm {
        cmd.arg("--disable-kvm").arg(TCG_CPU);
    }
    cmd
}

/// The emulated CPU: vng's `-cpu max` without ERMS. With ERMS a kernel
/// may clear and copy pages with `rep stosb`/`rep movsb`, which TCG runs
/// as an emulated loop: a 5.10 guest took 4.4 s for 100 execs of a static
/// binary and booted in 11.7 s, against 1.2 s and 5.2 s without it (6.1:
/// 1.2 against 1.1 s). It picks a memcpy, nothing the network stack does.
const TCG_CPU: &str = "--qemu-opts=-cpu max,erms=off";

/// How often a running guest is reported as still running.
const HEARTBEAT: Duration = Duration::from_secs(60);

// Long on purpose: the guest's life in order (script, boot, wait, collect), one step after another.
/// Boots `kernel`, runs the suite, powers off, and returns what it found;
/// `running` hears, every minute, how long the guest has been up.
pub fn run(
    kernel: &Kernel,
    opts: &VmOptions,
    scratch: &Path,
    running: &(dyn Fn(Duration) + Sync),
) -> Result<GuestRun, MatrixError> {
    let exe = std::env::current_exe()
        .map_err(|e| MatrixError::io("finding pktfate's own executable", e))?;
    let cwd =
        std::env::current_dir().map_err(|e| MatrixError::io("reading the current directory", e))?;
    let dir = PrivateDir::new(scratch)
        .map_err(|e| MatrixError::io(format!("mkdtemp in {}", scratch.display()), e))?;
    let rw = dir.path();
    // The guest runs a copy: a rebuild during a long matrix run must not
    // change the binary under a running guest.
    let exe = {
        let copy = rw.join("pktfate");
        std::fs::copy(&exe, &copy)
            .map_err(|e| MatrixError::io(format!("copying {}", exe.display()), e))?;
        copy
    };
    let script = rw.join("guest.sh");
    std::fs::write(
        &script,
        guest_script(&exe, &cwd, rw, &opts.run_args, &opts.preload),
    )
    .map_err(|e| MatrixError::io(format!("writing {}", script.display()), e))?;
    // virtme-ng's own temporary files (its return-code file) go where the
    // run's other files go: a guest killed on a timeout leaves none in /tmp.
    let vng_tmp = PrivateDir::new(scratch)
        .map_err(|e| MatrixError::io(format!("mkdtemp in {}", scratch.display()), e))?;
    let cmd = vng_command(kernel, opts, rw, &script, vng_tmp.path());
    let (console, failure, elapsed) = supervise(cmd, opts.timeout, running)?;
    let read = |name: &str| std::fs::read_to_string(rw.join(name)).ok();
    let (doctor, doctor_unread) = match read("doctor.json").map(|t| serde_json::from_str(&t)) {
        Some(Ok(d)) => (Some(d), None),
        Some(Err(e)) => (None, Some(format!("does not read as a doctor report: {e}"))),
        None => (
            None,
            Some(format!(
                "missing; doctor's stderr: {}",
                crate::common::text::clip(read("doctor.err").unwrap_or_default().trim(), 300)
            )),
        ),
    };
    let mut run = GuestRun {
        doctor,
        doctor_unread,
        results: read("results.json")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        rc: read("rc").and_then(|t| t.trim().parse().ok()),
        log: crate::common::text::clip(read("run.log").unwrap_or_default().trim(), 300),
        failure,
        panic: panic_of(&String::from_utf8_lossy(&console)),
        elapsed,
    };
    if run.rc.is_none() {
        // Killed on its timeout or died: what the guest was doing last is
        // what tells a hang in boot from a slow scenario.
        let tail = console_tail(&String::from_utf8_lossy(&console), 15);
        let log = read("run.log").unwrap_or_default();
        let log = match log.trim() {
            "" => "none yet".to_string(),
            l => crate::common::text::clip(l, 600),
        };
        run.failure = Some(format!(
            "{}; run log: {log}; console ends:\n{tail}",
            run.failure
                .take()
                .unwrap_or_else(|| "the guest wrote no exit status".into()),
        ));
    }
    Ok(run)
}

/// Runs the guest's `vng` until it exits, is interrupted or outlives
/// `timeout` (then its process group is killed); returns its console,
/// why it was stopped, and how long it ran.
fn supervise(
    mut cmd: Command,
    timeout: Duration,
    running: &(dyn Fn(Duration) + Sync),
) -> Result<(Vec<u8>, Option<String>, Duration), MatrixError> {
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| MatrixError::User {
        msg: format!("cannot start vng: {e}"),
        hint: "install virtme-ng (`pip install virtme-ng`) with qemu-system-x86, busybox-static and kmod".into(),
    })?;
    let pgid = child.id() as i32;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let mut failure = None;
    let mut beat = start + HEARTBEAT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= beat {
            running(start.elapsed());
            beat += HEARTBEAT;
        }
        let why = if INTERRUPTED.load(Ordering::SeqCst) {
            Some("interrupted".to_string())
        } else if start.elapsed() > timeout {
            Some(format!("no result within {timeout:?}"))
        } else {
            None
        };
        if let Some(why) = why {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            failure = Some(why);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = [
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ]
    .concat();
    Ok((console, failure, start.elapsed()))
}

/// The last `n` lines of a guest's console.
fn console_tail(console: &str, n: usize) -> String {
    let tail: Vec<&str> = console.lines().rev().take(n).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The oops of a guest kernel that panicked: the lines that say what and
/// where (`BUG:`/`Oops:`, `RIP:`, the panic itself), or `None`.
pub fn panic_of(console: &str) -> Option<String> {
    let panic = console
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing"))?;
    let strip = |l: &str| {
        l.split_once("] ")
            .map_or(l, |(_, rest)| rest)
            .trim()
            .to_string()
    };
    let mut lines: Vec<String> = console
        .lines()
        .filter(|l| l.contains("BUG:") || l.contains("Oops:") || l.contains("RIP: 0010:"))
        .take(3)
        .map(strip)
        .collect();
    lines.push(strip(panic));
    Some(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vng_keeps_its_temporary_files_in_the_runs_private_directory() {
        let kernel = Kernel {
            spec: "6.18".into(),
            release: "6.18.15+deb13-amd64".into(),
            vmlinuz: std::path::PathBuf::from("/k/vmlinuz"),
            build_dir: None,
        };
        let opts = VmOptions {
            kvm: false,
            cpus: 2,
            timeout: Duration::from_secs(1),
            run_args: vec![],
            preload: vec![],
        };
        let cmd = vng_command(
            &kernel,
            &opts,
            Path::new("/c/run-a"),
            Path::new("/c/run-a/guest.sh"),
            Path::new("/c/run-b"),
        );
        let tmpdir = cmd
            .get_envs()
            .find(|(k, _)| *k == "TMPDIR")
            .and_then(|(_, v)| v);
        assert_eq!(tmpdir, Some(std::ffi::OsStr::new("/c/run-b")));
        assert!(cmd.get_args().any(|a| a == "--disable-kvm"));
        assert!(cmd.get_args().any(|a| a == TCG_CPU));
        // Under KVM the CPU stays vng's (the host's).
        let kvm = vng_command(
            &kernel,
            &VmOptions {
                kvm: true,
                ..opts.clone()
            },
            Path::new("/c/run-a"),
            Path::new("/c/run-a/guest.sh"),
            Path::new("/c/run-b"),
        );
        assert!(!kvm.get_args().any(|a| a == TCG_CPU || a == "--disable-kvm"));
        assert!(cmd.get_args().any(|a| a == "/k/vmlinuz"));
        // A build tree is booted as vng boots one: from KBUILD_OUTPUT.
        let tree = Kernel {
            build_dir: Some("/src/net-next".into()),
            vmlinuz: "/src/net-next/arch/x86/boot/bzImage".into(),
            ..kernel
        };
        let cmd = vng_command(
            &tree,
            &opts,
            Path::new("/c/run-a"),
            Path::new("/c/run-a/guest.sh"),
            Path::new("/c/run-b"),
        );
        assert!(!cmd.get_args().any(|a| a == "--run"));
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == "KBUILD_OUTPUT"
                    && v == Some(std::ffi::OsStr::new("/src/net-next")))
        );
    }

    #[test]
    fn a_hung_guest_is_killed_on_its_timeout_with_its_console_tail() {
        // Stands for a vng whose guest hangs after printing where it was.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo booting; echo stuck in virtme-init; exec sleep 30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let (console, failure, elapsed) =
            supervise(cmd, Duration::from_millis(500), &|_| {}).unwrap();
        assert!(
            elapsed < Duration::from_secs(10),
            "killed, not waited: {elapsed:?}"
        );
        assert_eq!(failure.as_deref(), Some("no result within 500ms"));
        let tail = console_tail(&String::from_utf8_lossy(&console), 1);
        assert_eq!(tail, "stuck in virtme-init");
    }

    #[test]
    fn a_guest_panic_is_named_by_its_oops_lines() {
        // The shape of a 6.18 guest's console that died under emulation.
        let console = "[    8.100000] Oops: invalid opcode: 0000 [#1] SMP NOPTI\n[    8.113131] RIP: 0010:__schedule+0x2d9/0xcf0\n[    8.113138] RSP: 0018:ff4bfb9040083d60\n[    8.113369] Kernel panic - not syncing: Fatal exception in interrupt\n";
        assert_eq!(
            panic_of(console).as_deref(),
            Some(
                "Oops: invalid opcode: 0000 [#1] SMP NOPTI; RIP: 0010:__schedule+0x2d9/0xcf0; Kernel panic - not syncing: Fatal exception in interrupt"
            )
        );
        assert_eq!(panic_of("[ 1.0] virtme-ng-init: done\n"), None);
    }

    #[test]
    fn the_guest_script_quotes_everything() {
        let s = guest_script(
            Path::new("/x/pktfate"),
            Path::new("/w/it's"),
            Path::new("/c/run-a"),
            &["scenarios".into(), "--filter".into(), "a b".into()],
            &["/usr/lib/cni/it's".into(), "/usr/sbin/nft".into()],
        );
        assert!(s.starts_with(
            "cd '/w/it'\\''s'\nexport PKTFATE_IDLE_MS=2000 PKTFATE_TIMEOUT_SCALE=4\n"
        ));
        // Copied up beside doctor, and done before the suite starts.
        let touch = "touch -c -- '/usr/lib/cni/it'\\''s' '/usr/sbin/nft' 2>/dev/null &\n";
        let at = |what: &str| s.find(what).unwrap_or_else(|| panic!("no {what:?} in {s}"));
        assert!(at(touch) < at("'/x/pktfate' doctor"));
        assert!(at("'/x/pktfate' doctor") < at("\nwait\n"));
        assert!(at("\nwait\n") < at("'/x/pktfate' run"));
        assert!(s.contains("'/x/pktfate' run 'scenarios' '--filter' 'a b' --format json --output '/c/run-a'/results.json"));
        assert!(s.ends_with("echo $? > '/c/run-a'/rc\n"));
    }

    #[test]
    fn private_dirs_are_unpredictable_and_closed() {
        use std::os::unix::fs::PermissionsExt;
        let a = PrivateDir::new(&std::env::temp_dir()).unwrap();
        let b = PrivateDir::new(&std::env::temp_dir()).unwrap();
        assert_ne!(a.path(), b.path());
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::write(a.path().join("f"), b"x").unwrap();
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists(), "removed with its contents when dropped");
    }
}
