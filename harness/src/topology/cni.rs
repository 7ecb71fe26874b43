//! CNI plugins, run as a container runtime runs them (CNI spec 1.0): ADD
//! for each plugin of a configuration list in order, each given the
//! previous one's result as `prevResult`; CHECK on request; DEL in reverse
//! order at teardown.
//!
//! The plugins run inside the scenario's node namespace (a child of a
//! thread that joined it), so the bridge, host-side veths, iptables rules
//! and sysctls they make land there, never in the root namespace.
//! host-local's IPAM state goes to a private directory of the run
//! (`ipam.dataDir` is overridden), removed at teardown.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use super::error::CniFailure;
use super::{NetnsHandle, TopologyError};
use crate::scenario::CniAttachment;
use crate::topology::netns;
use crate::topology::teardown;

/// One pod namespace attached to its network.
struct Attached {
    node: PathBuf,
    pod: NetnsHandle,
    spec: CniAttachment,
    result: Value,
}

/// The CNI attachments of one topology and their private state directory.
#[derive(Default)]
pub(super) struct Cni {
    /// Where plugins are looked up (`--cni-path`, `CNI_PATH`).
    path: String,
    dir: Option<PathBuf>,
    attached: Vec<Attached>,
}

impl Cni {
    /// No attachments yet; plugins are looked up in `path`.
    pub fn new(path: &str) -> Self {
        Cni {
            path: path.into(),
            dir: None,
            attached: vec![],
        }
    }

    /// Runs ADD (then CHECK if asked) for `pod`, with the plugins inside `node`.
    pub fn add(
        &mut self,
        node: &NetnsHandle,
        pod: &NetnsHandle,
        spec: &CniAttachment,
    ) -> Result<(), TopologyError> {
        let dir = if let Some(d) = &self.dir {
            d.clone()
        } else {
            let d = teardown::private_dir().map_err(|source| TopologyError::Io {
                what: "making a private directory for CNI IPAM state".into(),
                source,
            })?;
            self.dir = Some(d.clone());
            d
        };
        let mut a = Attached {
            node: node.path(),
            pod: pod.clone(),
            spec: spec.clone(),
            result: Value::Null,
        };
        let plugins = plugins(&a.spec.conflist);
        let mut prev: Option<Value> = None;
        for p in &plugins {
            let conf = plugin_conf(&a.spec, p, prev.as_ref(), &dir);
            let out = run(&a, &self.path, p, "ADD", &conf)?;
            // A plugin that prints nothing passes the previous result on.
            if out.is_some() {
                prev = out;
            }
        }
        a.result = prev.unwrap_or_else(|| json!({ "cniVersion": a.spec.conflist["cniVersion"] }));
        if a.spec.check {
            for p in &plugins {
                let conf = plugin_conf(&a.spec, p, Some(&a.result), &dir);
                run(&a, &self.path, p, "CHECK", &conf)?;
            }
        }
        self.attached.push(a);
        Ok(())
    }

    /// Whether a plugin ran in the namespace at `ns` (a node or a pod).
    pub fn attached_in(&self, ns: &Path) -> bool {
        self.attached
            .iter()
            .any(|a| a.node == ns || a.pod.path() == ns)
    }

    /// DEL for every attachment, each pod's plugins last first; returns
    /// what failed, last attachment first. Pods are deleted at once, as a
    /// runtime removes pods on a node: each DEL waits on RCU grace periods
    /// (a veth deleted, iptables-nft's rules freed), and one pod after
    /// another made the teardown of a two-pod scenario the suite's tail.
    /// Plugins are written for that: host-local locks its store, and the
    /// rest delete only what is the pod's.
    pub fn del_all(&mut self) -> Vec<String> {
        let dir = self.dir.clone().unwrap_or_default();
        let attached = std::mem::take(&mut self.attached);
        let path = &self.path;
        let del = |a: &Attached| -> Vec<String> {
            plugins(&a.spec.conflist)
                .iter()
                .rev()
                .filter_map(|p| {
                    let conf = plugin_conf(&a.spec, p, Some(&a.result), &dir);
                    run(a, path, p, "DEL", &conf).err().map(|e| e.to_string())
                })
                .collect()
        };
        let problems = std::thread::scope(|scope| {
            let each: Vec<_> = attached
                .iter()
                .rev()
                .map(|a| {
                    // Should no thread start, that pod's DEL runs here.
                    std::thread::Builder::new()
                        .name("pktfate-cni-del".into())
                        .spawn_scoped(scope, || del(a))
                        .map_err(|_| a)
                })
                .collect();
            each.into_iter()
                .flat_map(|t| match t {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| vec!["a CNI DEL thread panicked".into()]),
                    Err(a) => del(a),
                })
                .collect()
        });
        if let Some(d) = self.dir.take() {
            teardown::remove_private_dir(&d);
        }
        problems
    }
}

impl Drop for Cni {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            teardown::remove_private_dir(&d);
        }
    }
}

/// The plugin `kind` as a runtime finds it: the first file of that name
/// in the `:`-separated `path`.
pub(crate) fn plugin_binary(path: &str, kind: &str) -> Option<PathBuf> {
    crate::common::first_on_path(std::ffi::OsStr::new(path), kind)
}

fn plugins(conflist: &Value) -> Vec<Value> {
    conflist["plugins"].as_array().cloned().unwrap_or_default()
}

/// The network configuration one plugin gets on stdin: its own object with
/// the list's `name` and `cniVersion`, `prevResult`, the `runtimeConfig`
/// keys it declares as capabilities, and host-local's `dataDir` pointed
/// at the run's private directory.
fn plugin_conf(spec: &CniAttachment, plugin: &Value, prev: Option<&Value>, dir: &Path) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = spec.conflist["name"].clone();
    conf["cniVersion"] = spec.conflist["cniVersion"].clone();
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    let mut rc = Map::new();
    if let Some(caps) = plugin["capabilities"].as_object() {
        for (k, on) in caps {
            if on == &Value::Bool(true) {
                if let Some(v) = spec.capabilities.get(k) {
                    rc.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf["runtimeConfig"] = Value::Object(rc);
    }
    if conf["ipam"]["type"] == "host-local" {
        conf["ipam"]["dataDir"] = json!(dir.join("host-local"));
    }
    conf
}

/// Execs one plugin with `command`; its result (stdout JSON), if any.
fn run(
    a: &Attached,
    path: &str,
    plugin: &Value,
    command: &str,
    conf: &Value,
) -> Result<Option<Value>, TopologyError> {
    let kind = plugin["type"].as_str().unwrap_or_default().to_string();
    let fail = |source: CniFailure| TopologyError::Cni {
        at: a.spec.at.clone(),
        what: format!("CNI {command} of plugin `{kind}` for `{}`", a.pod.name),
        source,
    };
    let Some(bin) = plugin_binary(path, &kind) else {
        return Err(fail(CniFailure::NoPlugin {
            plugin: kind.clone(),
            path: path.to_string(),
        }));
    };
    let mut args = String::new();
    if !a.spec.args.is_empty() {
        // Plugins refuse CNI_ARGS keys they do not know, unless told.
        args.push_str("IgnoreUnknown=1");
        for (k, v) in &a.spec.args {
            args.push_str(&format!(";{k}={v}"));
        }
    }
    let env = [
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", a.pod.real.clone()),
        ("CNI_NETNS", a.pod.path().display().to_string()),
        ("CNI_IFNAME", a.spec.ifname.clone()),
        ("CNI_ARGS", args),
        ("CNI_PATH", path.to_string()),
    ];
    let stdin = conf.to_string();
    let out = netns::run_in(&a.node, move || {
        crate::common::process::fed(Command::new(&bin).envs(env), stdin.as_bytes())
    })
    .and_then(|r| r)
    .map_err(|e| fail(CniFailure::Run(e)))?;
    let stdout: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if out.status.success() {
        return Ok(stdout);
    }
    // Plugins report errors as JSON on stdout: {code, msg, details}.
    let msg = match &stdout {
        Some(e) if e["msg"].is_string() => {
            let mut m = format!(
                "{} (CNI error {})",
                e["msg"].as_str().unwrap_or(""),
                e["code"]
            );
            if let Some(d) = e["details"].as_str().filter(|d| !d.is_empty()) {
                m.push_str(&format!(": {d}"));
            }
            m
        }
        _ => String::from_utf8_lossy(&out.stderr).trim().to_string(),
    };
    Err(fail(CniFailure::Plugin(crate::common::text::clip(
        &msg, 2000,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(conflist: Value, caps: &Value) -> CniAttachment {
        CniAttachment {
            node: "node".into(),
            conflist,
            conflist_file: "pods.conflist".into(),
            ifname: "eth0".into(),
            args: vec![],
            capabilities: caps.as_object().cloned().unwrap_or_default(),
            check: false,
            at: None,
        }
    }

    #[test]
    fn each_plugin_gets_the_list_fields_its_capabilities_and_a_private_ipam_dir() {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": "pods",
            "plugins": [
                { "type": "bridge", "ipam": { "type": "host-local", "dataDir": "/var/lib/cni/networks" } },
                { "type": "portmap", "capabilities": { "portMappings": true, "bandwidth": false } }
            ]
        });
        let s = spec(
            list.clone(),
            &json!({ "portMappings": [{ "hostPort": 8080 }], "bandwidth": { "ingressRate": 1 } }),
        );
        let dir = Path::new("/tmp/pktfate-run-1-abc");
        let bridge = plugin_conf(&s, &list["plugins"][0], None, dir);
        assert_eq!(bridge["name"], "pods");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert_eq!(
            bridge["ipam"]["dataDir"],
            "/tmp/pktfate-run-1-abc/host-local"
        );
        assert!(bridge.get("prevResult").is_none() && bridge.get("runtimeConfig").is_none());
        let prev = json!({ "cniVersion": "1.0.0", "ips": [{ "address": "192.0.2.2/24" }] });
        let portmap = plugin_conf(&s, &list["plugins"][1], Some(&prev), dir);
        assert_eq!(portmap["prevResult"], prev);
        // Only the capabilities the plugin declares true reach it.
        assert_eq!(
            portmap["runtimeConfig"],
            json!({ "portMappings": [{ "hostPort": 8080 }] })
        );
    }
}
