//! `pktfate matrix` and the CI workflows that run it, from the command
//! line: what needs no guest (fetching kernels, signals while fetching,
//! the example project's workflows). The guests themselves run in
//! `ci/test`.

mod support;

use std::path::{Path, PathBuf};

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

/// The stand-in process named by `pid_file`, while it runs: alive, no
/// zombie waiting for init, and still the test's own (its environment has
/// `marker`, the test's PATH entry), not a process that reused its pid.
fn stand_in(pid_file: &Path, marker: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ...: the state follows the last ')'.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let ours = String::from_utf8_lossy(&environ).contains(marker);
    (state != "Z" && ours).then_some(pid)
}

/// SIGTERM while `--fetch-only` downloads stops apt-get (here a stand-in
/// first on PATH that never finishes) and what it started, exits 128 + 15
/// with one line, and caches no half-fetched kernel. Without the CLI's
/// signal thread pktfate dies of the signal and apt-get downloads on.
#[test]
fn matrix_fetch_stopped_by_sigterm_leaves_no_apt_and_no_kernel() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("fetch-signal");
    let bin_dir = dir.0.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let (apt_pid, child_pid) = (dir.0.join("apt.pid"), dir.0.join("child.pid"));
    let marker = bin_dir.display().to_string();
    // Should the test fail, the stand-in and its child die with it.
    struct KillOnDrop(Vec<PathBuf>, String);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for pid in self.0.iter().filter_map(|p| stand_in(p, &self.1)) {
                // SAFETY: a plain kill(2) of the test's own stand-in.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _stand_in = KillOnDrop(vec![apt_pid.clone(), child_pid.clone()], marker.clone());
    let fake = bin_dir.join("apt-get");
    // The pid of what it started is written first: once the apt-get pid
    // file exists, both are there to be checked.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > {}\necho $$ > {}\nwait\n",
            child_pid.display(),
            apt_pid.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cache = dir.0.join("cache");
    let mut child = bin()
        .args(["matrix", "--fetch-only", "--kernel", "6.1"])
        .current_dir(&dir.0)
        .env("XDG_CACHE_HOME", &cache)
        .env("PATH", path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !apt_pid.exists() && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(apt_pid.exists(), "pktfate never ran apt-get");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // The stand-in runs for ten minutes: pktfate must stop it, not wait.
    let signalled = std::time::Instant::now();
    while child.try_wait().unwrap().is_none()
        && signalled.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let waited = signalled.elapsed();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        waited < std::time::Duration::from_secs(20),
        "still running 20 s after SIGTERM, waiting for apt-get: {}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("stopped by signal 15"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    // Orphans are reaped by init within moments of pktfate's exit.
    let gone = std::time::Instant::now();
    let mut left = vec![];
    while gone.elapsed() < std::time::Duration::from_secs(5) {
        left = [&apt_pid, &child_pid]
            .iter()
            .filter_map(|p| stand_in(p, &marker))
            .collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        left.is_empty(),
        "still running after pktfate exited: {left:?}"
    );
    let kernels = cache.join("pktfate/kernels");
    let cached: Vec<_> = std::fs::read_dir(&kernels)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "cached after the stop: {cached:?}");
}

#[test]
fn matrix_fetch_only_readies_kernels_without_scenarios_and_refuses_bad_ones() {
    let dir = Scratch::new("fetch-only");
    let boot = dir.0.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let with_btf = boot.join("vmlinuz-6.99.0-test");
    std::fs::write(&with_btf, b"not booted here").unwrap();
    std::fs::write(boot.join("config-6.99.0-test"), "CONFIG_DEBUG_INFO_BTF=y\n").unwrap();
    let without_btf = boot.join("vmlinuz-6.98.0-test");
    std::fs::write(&without_btf, b"not booted here").unwrap();
    std::fs::write(
        boot.join("config-6.98.0-test"),
        "# CONFIG_DEBUG_INFO_BTF is not set\n",
    )
    .unwrap();
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
