//! Teardown as a CNI team meets it, run as a user would: a plugin whose
//! DEL fails, and a terminating signal while a DEL runs. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Scratch, bin, text};

/// The tests run pktfate one at a time: the signal test's timing must
/// not compete with the other's run for the machine's cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A project in `dir` with one scenario: a pod attached by a one-plugin
/// conflist whose plugin (`fake`, written to `dir/cni`) answers ADD with
/// an empty result and runs `on_del` (shell) on DEL; the packet is an echo
/// request the host answers. Returns the scenario file.
fn pod_with_fake_plugin(dir: &Path, on_del: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("pktfate.toml"), "").unwrap();
    std::fs::create_dir(dir.join("cni")).unwrap();
    let plugin = dir.join("cni/fake");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n\
             ADD) echo '{{\"cniVersion\":\"1.0.0\"}}' ;;\nDEL) {on_del} ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        dir.join("fake.conflist"),
        r#"{"cniVersion":"1.0.0","name":"fake","plugins":[{"type":"fake"}]}"#,
    )
    .unwrap();
    let file = dir.join("pod.yaml");
    std::fs::write(
        &file,
        "description: a pod attached by a fake plugin\nnamespaces:\n  node: {}\n  pod:\n    \
         cni: { node: node, conflist: fake.conflist }\n  host:\n    links:\n      - { name: tun0, kind: tun }\n    \
         addresses:\n      - { dev: tun0, addr: 192.0.2.1/24 }\ninject:\n  via: host/tun0\n  \
         ipv4: { src: 192.0.2.9, dst: 192.0.2.1 }\n  icmp: { type: echo-request }\nexpect:\n  fate: consumed\n",
    )
    .unwrap();
    file
}

#[test]
fn a_failed_cni_del_fails_the_scenario_and_every_format_says_why() {
    let _serial = serial();
    let dir = Scratch::new("rel");
    // The error a plugin reports on stdout (CNI spec: code, msg).
    let file = pod_with_fake_plugin(
        &dir.0,
        r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"cannot release 192.0.2.7"}'; exit 1"#,
    );
    let run = |format: &str| {
        let o = bin()
            .args(["run", "--format", format])
            .arg(&file)
            .env("CNI_PATH", dir.0.join("cni"))
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{format}: a failure\n{}",
            text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // The packet's expectation held: the DEL alone fails the scenario, and
    // each format names it (before, FAIL came with no reason at all).
    let why = "CNI DEL of plugin `fake` for `pod` failed: cannot release 192.0.2.7 (CNI error 11)";
    let human = run("human");
    assert!(human.contains("FAIL pod"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("teardown: ") && l.ends_with(why)),
        "{human}"
    );
    let json: serde_json::Value =
        serde_json::from_str(run("json").lines().next().unwrap()).unwrap();
    assert_eq!(json["status"], "fail");
    assert!(
        json["teardown_problems"][0]
            .as_str()
            .unwrap()
            .ends_with(why),
        "{json}"
    );
    let junit = run("junit");
    assert!(junit.contains("<failure message=\"teardown: "), "{junit}");
    assert!(pktfate::topology::teardown::owned_by(std::process::id()).is_empty());
}

#[test]
fn a_signal_during_teardown_reports_no_result_and_exits_128_plus_the_signal() {
    let _serial = serial();
    let dir = Scratch::new("rel");
    let (started, finished) = (dir.0.join("del-started"), dir.0.join("del-finished"));
    let file = pod_with_fake_plugin(
        &dir.0,
        &format!(
            "touch {}; sleep 2; touch {}",
            started.display(),
            finished.display()
        ),
    );
    // Three times: before, the run's own end raced the handler's, and most
    // runs printed a FAIL without a reason (the DEL killed) and exited 1.
    for round in 0..3 {
        let _ = std::fs::remove_file(&started);
        let child = bin()
            .arg("run")
            .arg(&file)
            .env("CNI_PATH", dir.0.join("cni"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let t = Instant::now();
        while !started.exists() {
            assert!(t.elapsed() < Duration::from_secs(20), "the DEL started");
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let left = pktfate::topology::teardown::owned_by(pid);
        for n in &left {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        assert!(left.is_empty(), "round {round} left {left:?}");
        assert_eq!(
            out.status.code(),
            Some(128 + libc::SIGTERM),
            "round {round}: {}",
            text(&out)
        );
        assert!(
            out.stdout.is_empty(),
            "round {round}: no result reported: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("terminated (SIGTERM)"),
            "{}",
            text(&out)
        );
    }
    // The plugin's DEL was killed with its process group, not left to run.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!finished.exists(), "a DEL outlived the run");
}
