//! Building topologies: what `Topology::build` promises beyond one
//! scenario's verdict (usable addresses, named errors, nothing left on a
//! failed build or a panic, device names of any namespace).
//!
//! These need root, like the scenario suite.

use std::path::Path;

use pktfate::scenario::Scenario;
use pktfate::topology::Topology;

mod shared;
use shared::*;

#[test]
fn a_panic_after_setup_still_tears_down() {
    let _serial = serial();
    let s = Scenario::load(&shipped("tun-syn/03-forwarded.yaml")).unwrap();
    let made = std::sync::Mutex::new(vec![]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topo = Topology::build(&s, &cfg().cni_path).unwrap();
        *made.lock().unwrap() = topo.namespaces.iter().map(|h| h.path()).collect::<Vec<_>>();
        panic!("a test bug after setup");
    }));
    assert!(r.is_err());
    let made = made.into_inner().unwrap();
    assert_eq!(made.len(), 2);
    for p in made {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn a_failed_build_removes_what_it_made() {
    let _serial = serial();
    // The second route needs a gateway nobody can reach: the kernel
    // refuses it after the namespaces and links already exist.
    let text = read("tun-syn/03-forwarded.yaml").replace(
        "      - { to: default, via: 203.0.113.2, dev: veth0 }",
        "      - { to: default, via: 203.0.113.2, dev: veth0 }\n      - { to: 198.51.100.0/24, via: 192.0.2.99 }",
    );
    let s = Scenario::parse(Path::new("unreachable-gw.yaml"), &text).unwrap();
    let e = Topology::build(&s, &cfg().cni_path)
        .err()
        .expect("the route must be refused");
    let line = text.lines().position(|l| l.contains("192.0.2.99")).unwrap() + 1;
    assert!(
        e.to_string().contains(&format!(
            "unreachable-gw.yaml:{line}:15: `ip route add 198.51.100.0/24 via 192.0.2.99`"
        )),
        "{e}"
    );
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn a_sysctl_the_kernel_lacks_is_named_with_its_namespace_and_nothing_is_left() {
    let _serial = serial();
    // Sysctls of a namespace are written together: the error must still
    // name the one the kernel refused, not the first or the last.
    let text = r#"description: a sysctl that does not exist
namespaces:
  a:
    links:
      - { name: tun0, kind: tun }
    addresses:
      - { dev: tun0, addr: 192.0.2.1/24 }
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv4.conf.nosuchdev0.forwarding: 1
      net.ipv4.conf.all.forwarding: 1
inject:
  via: a/tun0
  ipv4: { src: 192.0.2.2, dst: 192.0.2.1 }
  udp: { sport: 1, dport: 9 }
expect:
  fate: dropped
"#;
    let msg = run_text("sysctl", text)
        .err()
        .expect("the kernel has no such sysctl")
        .render();
    assert!(
        msg.contains("setting sysctl net.ipv4.conf.nosuchdev0.forwarding in namespace `a`"),
        "{msg}"
    );
    assert!(msg.contains("No such file or directory"), "{msg}");
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn ipv6_addresses_are_usable_when_the_topology_is_built_even_under_load() {
    let _serial = serial();
    // The kernel makes an address usable from a work item under RTNL;
    // builds and namespace deletions in parallel delay it. Every address
    // must be usable (bindable: no longer tentative) once `build` returns.
    let s = Scenario::load(&shipped("ipv6/forwarded.yaml")).unwrap();
    // Namespaces with many devices, made and deleted meanwhile: their
    // deletion holds RTNL in the kernel's cleanup work.
    let mut churn = String::from("namespaces:\n  a:\n    links:\n");
    for i in 0..40 {
        churn.push_str(&format!(
            "      - {{ name: v{i}, kind: veth, peer: {{ namespace: b, name: v{i} }} }}\n"
        ));
    }
    churn.push_str(
        "  b: {}\ninject:\n  via: a/v0\n  ipv4: { src: 192.0.2.2, dst: 192.0.2.1 }\n  \
         udp: { sport: 1, dport: 9 }\nexpect:\n  fate: dropped\n",
    );
    let churn = Scenario::parse(Path::new("churn.yaml"), &churn).unwrap();
    let bindable = |topo: &Topology, ns: &str, addr: &str| {
        let addr: std::net::SocketAddr = format!("[{addr}]:0").parse().unwrap();
        pktfate::topology::netns::run_in(&topo.handle(ns).path(), move || {
            std::net::UdpSocket::bind(addr).map(drop)
        })
        .unwrap()
    };
    // Bindable is not enough: an address that is not tentative yet may
    // still lack its local route, and a packet to it is then forwarded.
    let local = |topo: &Topology, ns: &str, addr: &str| {
        let real = &topo.handle(ns).real;
        sh(&format!(
            "ip -n {real} -6 route show table local type local {addr}"
        ))
        .contains(addr)
    };
    let building = std::sync::atomic::AtomicUsize::new(3);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while building.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                let mut topo = Topology::build(&churn, &cfg().cni_path).unwrap();
                assert!(topo.teardown().is_empty());
            }
        });
        // And every CPU busy, so the kernel's work items wait their turn.
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for _ in 0..2 * cpus {
            scope.spawn(|| {
                while building.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    std::hint::spin_loop();
                }
            });
        }
        for _ in 0..3 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let mut topo = Topology::build(&s, &cfg().cni_path).unwrap();
                    for (ns, addr) in [
                        ("host", "2001:db8:1::1"),
                        ("host", "2001:db8:2::1"),
                        ("upstream", "2001:db8:2::2"),
                    ] {
                        if let Err(e) = bindable(&topo, ns, addr) {
                            panic!("{addr} in {ns} is not usable yet: {e}");
                        }
                        assert!(
                            local(&topo, ns, addr),
                            "{addr} in {ns} has no local route yet"
                        );
                    }
                    assert!(topo.teardown().is_empty());
                }
                building.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    assert_eq!(our_namespaces(), Vec::<String>::new());
}

#[test]
fn a_tun_device_is_left_to_its_namespace_not_unregistered_when_its_fd_closes() {
    let _serial = serial();
    // Closing the last fd of a tun device unregisters it and waits for an
    // RCU barrier, and an exiting process waits for that too. Teardown
    // makes the device persistent once its namespace is unmounted, so it
    // goes with the namespace in the kernel's own clean-up instead.
    let s = Scenario::load(&shipped("tun-syn/01-bad-ip-checksum.yaml")).unwrap();
    let mut topo = Topology::build(&s, &cfg().cni_path).unwrap();
    // Keeps the namespace alive past teardown, to look inside it.
    let held = std::fs::File::open(topo.handle("host").path()).unwrap();
    let link = || {
        let ns = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
        pktfate::topology::netns::run_in(Path::new(&ns), || {
            // A child forked from this thread is in its namespace.
            let out = std::process::Command::new("ip")
                .args(["-o", "link", "show", "tun0"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .unwrap()
    };
    assert!(
        link().contains("LOWER_UP"),
        "open, with its carrier: {}",
        link()
    );
    assert!(topo.teardown().is_empty());
    assert_eq!(our_namespaces(), Vec::<String>::new());
    // Its fd is closed on a thread of its own: then it loses its carrier.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut now = link();
    while now.contains("LOWER_UP") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        now = link();
    }
    assert!(
        now.contains("tun0") && now.contains("NO-CARRIER"),
        "closed, and still in its namespace: {now:?}"
    );
}

#[test]
fn device_names_of_any_namespace_match_what_ip_lists() {
    let _serial = serial();
    let s = Scenario::load(&shipped("tun-syn/03-forwarded.yaml")).unwrap();
    let mut topo = Topology::build(&s, &cfg().cni_path).unwrap();
    for h in &topo.namespaces {
        let mut ours = pktfate::topology::device_names(&h.path()).unwrap();
        ours.sort();
        // `ip -o link`: "3: veth0@if2: <...> ...", one device a line.
        let mut theirs: Vec<(u32, String)> = sh(&format!("ip -n {} -o link show", h.real))
            .lines()
            .map(|l| {
                let mut f = l.split(": ");
                let index = f.next().unwrap().trim().parse().unwrap();
                let name = f.next().unwrap().split('@').next().unwrap().to_string();
                (index, name)
            })
            .collect();
        theirs.sort();
        assert_eq!(ours, theirs, "namespace {}", h.name);
        assert!(ours.contains(&(1, "lo".into())));
    }
    assert!(topo.teardown().is_empty());
    // Our own namespace, through the calling thread's namespace file.
    let own = pktfate::topology::device_names(Path::new("/proc/thread-self/ns/net")).unwrap();
    assert!(own.contains(&(1, "lo".into())), "{own:?}");
}

#[test]
fn addresses_a_cni_plugin_assigned_are_read_back_as_ip_lists_them() {
    let _serial = serial();
    // host-local gives the gateway to the bridge and pod addresses from
    // the range in order; pktfate never sees them but through the kernel.
    let s = Scenario::load(&shipped("cni/bridge-pod-to-pod.yaml")).unwrap();
    let mut topo = Topology::build(&s, &cfg().cni_path).unwrap();
    let mut read_back = 0;
    for h in &topo.namespaces {
        let mut ours: Vec<String> = topo
            .names
            .links
            .iter()
            .filter(|((inode, _), _)| *inode == h.inode)
            .flat_map(|((_, index), m)| {
                let dev = topo.names.devs[&(h.inode, *index)].clone();
                m.addresses.iter().map(move |a| format!("{dev} {a}"))
            })
            .collect();
        ours.sort();
        // `ip -o addr`: "2: eth0    inet 192.0.2.2/24 brd ... scope global eth0 ...".
        let mut theirs: Vec<String> = sh(&format!("ip -n {} -o addr show", h.real))
            .lines()
            .filter(|l| !l.contains(" scope link") && !l.contains(" scope host"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {}", f[1], f[3])
            })
            .collect();
        theirs.sort();
        assert_eq!(ours, theirs, "namespace {}", h.name);
        read_back += ours.len();
    }
    // The bridge's gateway and one address per pod.
    assert_eq!(read_back, 3);
    assert!(topo.teardown().is_empty());
}

/// CNI DEL of a scenario's pods runs at once, as a runtime removes pods:
/// a fake plugin's DEL for one pod waits (up to 5 s) for the other pod's
/// DEL to start, and fails when it does not, as it would one pod after
/// another.
#[test]
fn the_pods_of_a_scenario_are_deleted_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let dir = TempDir::new("cni-del");
    let plugins = dir.0.join("plugins");
    let marks = dir.0.join("marks");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&marks).unwrap();
    let plugin = plugins.join("pfwait");
    std::fs::write(
        &plugin,
        r#"#!/bin/sh
conf=$(cat)
marks=$(printf '%s' "$conf" | sed -n 's/.*"marks":"\([^"]*\)".*/\1/p')
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0"}' ;;
DEL)
  : > "$marks/$CNI_CONTAINERID"
  i=0
  while [ "$(ls "$marks" | wc -l)" -lt 2 ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
      echo '{"cniVersion":"1.0.0","code":11,"msg":"the other pod was not being deleted"}'
      exit 1
    fi
    sleep 0.05
  done ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        dir.0.join("wait.conflist"),
        format!(
            r#"{{ "cniVersion": "1.0.0", "name": "wait", "plugins": [{{ "type": "pfwait", "marks": "{}" }}] }}"#,
            marks.display()
        ),
    )
    .unwrap();
    let f = dir.0.join("two-pods.yaml");
    std::fs::write(
        &f,
        "description: two pods whose plugin waits for the other's DEL
namespaces:
  node: {}
  pod-a:
    cni: { node: node, conflist: wait.conflist }
  pod-b:
    cni: { node: node, conflist: wait.conflist }
inject:
  socket: { from: pod-a, proto: udp, to: 192.0.2.1, port: 9 }
expect:
  fate: dropped
",
    )
    .unwrap();
    let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e:?}"));
    let mut topo = Topology::build(&s, plugins.to_str().unwrap()).unwrap();
    let problems = topo.teardown();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(std::fs::read_dir(&marks).unwrap().count(), 2);
}

#[test]
fn a_veth_is_made_with_one_queue_each_way() {
    let _serial = serial();
    // Not told, veth makes one queue per possible CPU and then shrinks the
    // real count to one, an expedited RCU grace period under RTNL that
    // stalls every other netlink request on the machine (`veth_init_queues`).
    // Told one each way, it has nothing to shrink.
    let s = Scenario::load(&shipped("tun-syn/03-forwarded.yaml")).unwrap();
    let mut topo = Topology::build(&s, &cfg().cni_path).unwrap();
    let mut veths = 0;
    for h in &topo.namespaces {
        for l in sh(&format!("ip -n {} -d -o link show type veth", h.real)).lines() {
            veths += 1;
            assert!(
                l.contains(" numtxqueues 1 ") && l.contains(" numrxqueues 1 "),
                "namespace {}: {l}",
                h.name
            );
        }
    }
    assert!(topo.teardown().is_empty());
    assert_eq!(veths, 2, "the scenario's one veth pair");
}
