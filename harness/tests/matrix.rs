//! `pktfate matrix` and the CI workflows that run it, from the command
//! line: what needs no guest (fetching kernels, signals while fetching,
//! the example project's workflows). The guests themselves run in
//! `ci/test`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::{Scratch, bin, text};

/// The example project's workflows use only published actions and
/// pktfate's documented commands and flags (what `--help` lists).
#[test]
fn the_example_workflows_use_published_actions_and_real_flags() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cni-firewall/.github/workflows");
    let allowed_actions = [
        "actions/checkout@v4",
        "actions/cache@v4",
        "actions/upload-artifact@v4",
        "actions/download-artifact@v4",
        "dtolnay/rust-toolchain@stable",
    ];
    let mut commands = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let yaml = marked_yaml::parse_yaml(0, &source)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        let mut stack = vec![&yaml];
        let (mut uses, mut runs) = (vec![], vec![]);
        while let Some(n) = stack.pop() {
            match n {
                marked_yaml::Node::Mapping(m) => {
                    for (k, v) in m.iter() {
                        match (k.as_str(), v.as_scalar()) {
                            ("uses", Some(s)) => uses.push(s.as_str().to_string()),
                            ("run", Some(s)) => runs.push(s.as_str().to_string()),
                            _ => stack.push(v),
                        }
                    }
                }
                marked_yaml::Node::Sequence(s) => stack.extend(s.iter()),
                marked_yaml::Node::Scalar(_) => {}
            }
        }
        for u in &uses {
            assert!(
                allowed_actions.contains(&u.as_str()),
                "{}: uses {u}",
                path.display()
            );
        }
        // `pktfate SUB --flag ...` lines (a trailing backslash continues).
        for script in &runs {
            let joined = script.replace("\\\n", " ");
            for line in joined
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("pktfate "))
            {
                let words: Vec<&str> = line.split_whitespace().collect();
                let help = text(&bin().args([words[1], "--help"]).output().unwrap());
                for flag in words.iter().filter(|w| w.starts_with("--")) {
                    assert!(
                        help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                        "{}: `pktfate {}` has no {flag}",
                        path.display(),
                        words[1]
                    );
                }
                commands += 1;
            }
        }
    }
    assert!(commands >= 2, "the workflows run pktfate matrix and merge");
}

/// A tool that never finishes, first on PATH in its own directory: it
/// starts a `sleep 600`, writes both pids and waits. Whatever of it still
/// runs when the test ends is killed, should the test fail.
struct StandIn {
    dir: Scratch,
    pids: [PathBuf; 2],
}

impl StandIn {
    fn new(tag: &str, tool: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new(tag);
        let bin = dir.0.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let pids = [dir.0.join("tool.pid"), dir.0.join("child.pid")];
        // The child's pid is written first: once the tool's pid file
        // exists, both are there to be checked.
        std::fs::write(
            bin.join(tool),
            format!(
                "#!/bin/sh\nsleep 600 &\necho $! > {}\necho $$ > {}\nwait\n",
                pids[1].display(),
                pids[0].display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
        StandIn { dir, pids }
    }

    fn root(&self) -> &Path {
        &self.dir.0
    }

    /// The cache (`XDG_CACHE_HOME`) of the runs [`StandIn::spawn`] starts.
    fn cache(&self) -> PathBuf {
        self.dir.0.join("cache")
    }

    /// `pktfate matrix ARGS` from the repository, with the stand-in first
    /// on PATH and a cache of its own, its output captured.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let path = format!(
            "{}:{}",
            self.dir.0.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        bin()
            .arg("matrix")
            .args(args)
            .env("XDG_CACHE_HOME", self.cache())
            .env("PATH", path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The stand-in's processes still running: alive, no zombie waiting
    /// for init, and still the test's own (their environment has the
    /// test's PATH entry), not processes that reused their pids.
    fn running(&self) -> Vec<i32> {
        let marker = self.dir.0.join("bin").display().to_string();
        self.pids
            .iter()
            .filter_map(|p| {
                let pid: i32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // pid (comm) state ...: the state follows the last ')'.
                let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                let ours = String::from_utf8_lossy(&environ).contains(&marker);
                (state != "Z" && ours).then_some(pid)
            })
            .collect()
    }

    /// Sends `signal` to pktfate once the stand-in runs, and gives what
    /// pktfate printed once it exits. The stand-in runs for ten minutes:
    /// pktfate must stop it, not wait for it.
    fn stop(&self, pktfate: std::process::Child, signal: i32) -> Output {
        let started = Instant::now();
        while !self.pids[0].exists() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(self.pids[0].exists(), "pktfate never ran the stand-in");
        let out = signalled(pktfate, signal, "waiting for the stand-in");
        // Orphans are reaped by init within moments of pktfate's exit.
        let gone = Instant::now();
        while !self.running().is_empty() && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.running();
        assert!(
            left.is_empty(),
            "still running after pktfate exited: {left:?}"
        );
        out
    }
}

/// Sends `signal` to pktfate and gives what it printed once it exited;
/// fails if it still runs 20 s later (`what` says what it waited for).
fn signalled(mut pktfate: std::process::Child, signal: i32, what: &str) -> Output {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pktfate.id() as i32, signal) };
    let sent = Instant::now();
    while pktfate.try_wait().unwrap().is_none() && sent.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited = sent.elapsed();
    let _ = pktfate.kill();
    let out = pktfate.wait_with_output().unwrap();
    assert!(
        waited < Duration::from_secs(20),
        "still running 20 s after signal {signal}, {what}: {}",
        text(&out)
    );
    out
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for pid in self.running() {
            // SAFETY: a plain kill(2) of the test's own stand-in.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A vmlinuz that is never booted, `ROOT/boot/vmlinuz-<release>`, with
/// `config` beside it as Debian packages it.
fn fake_kernel(root: &Path, release: &str, config: &str) -> PathBuf {
    let boot = root.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join(format!("config-{release}")), config).unwrap();
    let vmlinuz = boot.join(format!("vmlinuz-{release}"));
    std::fs::write(&vmlinuz, b"not booted here").unwrap();
    vmlinuz
}

/// The entries of `dir`, none if it does not exist.
fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// SIGTERM while `--fetch-only` downloads stops apt-get (here a stand-in
/// that never finishes) and what it started, exits 128 + 15 with one
/// line, and caches no half-fetched kernel. Without the CLI's signal
/// thread pktfate dies of the signal and apt-get downloads on.
#[test]
fn matrix_fetch_stopped_by_sigterm_leaves_no_apt_and_no_kernel() {
    let apt = StandIn::new("fetch-signal", "apt-get");
    let out = apt.stop(
        apt.spawn(&["--fetch-only", "--kernel", "6.1"]),
        libc::SIGTERM,
    );
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("stopped by signal 15"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    let cached = entries(&apt.cache().join("pktfate/kernels"));
    assert!(cached.is_empty(), "cached after the stop: {cached:?}");
}

/// A run waiting for the kernel cache's lock, which another run holds
/// (for a download of minutes), stops at once on SIGTERM, exit 128 + 15,
/// instead of when the other run lets go.
#[test]
fn matrix_waiting_for_the_cache_lock_stops_on_sigterm() {
    use std::os::fd::AsRawFd;
    let dir = Scratch::new("lock-signal");
    let cache = dir.0.join("cache");
    std::fs::create_dir_all(cache.join("pktfate")).unwrap();
    let other = std::fs::File::create(cache.join("pktfate/.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX) }, 0);
    let pktfate = bin()
        .args(["matrix", "--fetch-only", "--kernel", "6.1"])
        .current_dir(&dir.0)
        .env("XDG_CACHE_HOME", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Time to reach the lock; a signal before it is handled the same.
    std::thread::sleep(Duration::from_secs(1));
    let out = signalled(pktfate, libc::SIGTERM, "waiting for the lock");
    drop(other);
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    assert!(
        text(&out).contains("stopped by signal 15"),
        "{}",
        text(&out)
    );
}

/// SIGHUP (a closed terminal or SSH session) while a guest runs stops the
/// guest (here a `vng` stand-in that never finishes) with what it
/// started, reports the kernel as interrupted, not passed, exits 128 + 1,
/// and leaves no guest directory. Before, SIGHUP killed pktfate and left
/// the guest running.
#[test]
fn matrix_stopped_by_sighup_stops_its_guest_and_says_so() {
    let vng = StandIn::new("guest-signal", "vng");
    let kernel = fake_kernel(vng.root(), "6.99.0-test", "CONFIG_DEBUG_INFO_BTF=y\n");
    let kernel = kernel.display().to_string();
    let pktfate = vng.spawn(&["--format", "json", "--kernel", &kernel, "scenarios/tun-syn"]);
    let out = vng.stop(pktfate, libc::SIGHUP);
    assert_eq!(out.status.code(), Some(129), "{}", text(&out));
    assert!(text(&out).contains("stopped by signal 1"), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let kernel = &report["results"][0];
    assert!(
        kernel["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("interrupted")),
        "{report}"
    );
    assert_eq!(kernel["scenarios"], serde_json::json!([]), "{report}");
    let guests = entries(&vng.cache().join("pktfate/guests"));
    assert!(guests.is_empty(), "guest directories left: {guests:?}");
}

#[test]
fn matrix_fetch_only_readies_kernels_without_scenarios_and_refuses_bad_ones() {
    let dir = Scratch::new("fetch-only");
    let with_btf = fake_kernel(&dir.0, "6.99.0-test", "CONFIG_DEBUG_INFO_BTF=y\n");
    let without_btf = fake_kernel(
        &dir.0,
        "6.98.0-test",
        "# CONFIG_DEBUG_INFO_BTF is not set\n",
    );
    // Run where there are no scenarios: fetching needs none.
    let fetch = |kernel: &Path| {
        bin()
            .args(["matrix", "--fetch-only", "--kernel"])
            .arg(kernel)
            .current_dir(&dir.0)
            .env("XDG_CACHE_HOME", dir.0.join("cache"))
            .output()
            .unwrap()
    };
    let o = fetch(&with_btf);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6.99.0-test ready"), "{}", text(&o));
    let o = fetch(&without_btf);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("(6.98.0-test) cannot be traced: CONFIG_DEBUG_INFO_BTF is not set"),
        "{}",
        text(&o)
    );
    let o = fetch(Path::new("six-one"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`six-one` is neither a kernel version"),
        "{}",
        text(&o)
    );
    // Options of a run mean nothing here: refused, not silently ignored.
    for extra in [
        &["--shard", "1/2"][..],
        &["--format", "json"],
        &["scenarios"],
    ] {
        let o = bin()
            .args(["matrix", "--fetch-only", "--kernel"])
            .arg(&with_btf)
            .args(extra)
            .current_dir(&dir.0)
            .env("XDG_CACHE_HOME", dir.0.join("cache"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        assert!(
            text(&o).contains("cannot be used with"),
            "{extra:?}: {}",
            text(&o)
        );
    }
}
