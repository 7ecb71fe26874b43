//! What runs as the user wrote it, in a namespace: sysctls, tc entries
//! (command lines through `ip netns exec`, which gives them the
//! namespace's `/sys`, or programs) and `run:` commands.

use std::process::Command;

use super::bpf;
use super::error::{TopologyError, io_err};
use super::netns::{self, NetnsHandle};
use crate::scenario::TcSpec;

/// IPv4 settings a new namespace inherits from the host (with the default
/// `net.core.devconf_inherit_init_net=0`). They are reset to the kernel's
/// own defaults so a scenario behaves the same on every host.
pub const PINNED_SYSCTLS: [(&str, &str); 8] = [
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.forwarding", "0"),
    ("net.ipv4.conf.default.forwarding", "0"),
    ("net.ipv4.conf.all.accept_local", "0"),
    ("net.ipv4.conf.default.accept_local", "0"),
    ("net.ipv4.conf.all.log_martians", "0"),
    ("net.ipv4.conf.default.log_martians", "0"),
];

/// Runs a tool; its stdout, or its stderr as the error.
pub(super) fn run(tool: &str, args: &[&str]) -> Result<String, TopologyError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| TopologyError::spawning(tool, format!("running {tool}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TopologyError::Command {
            cmd: format!("{tool} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Writes a `net.*` sysctl from a thread inside the namespace.
pub(super) fn write_sysctl(ns: &NetnsHandle, key: &str, value: &str) -> Result<(), TopologyError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    let p2 = path.clone();
    netns::run_in(&ns.path(), move || std::fs::write(&p2, value))
        .and_then(|r| r)
        .map_err(io_err(format!(
            "setting sysctl {key} in namespace `{}` ({path})",
            ns.name
        )))
}

/// One `tc:` entry: a command line run in the namespace, a built-in
/// program or the user's object.
pub(super) fn attach_tc(h: &NetnsHandle, t: &TcSpec) -> Result<(), TopologyError> {
    match t {
        TcSpec::Command {
            line: c,
            args: words,
        } => {
            let mut args = vec!["netns", "exec", h.real.as_str(), "tc"];
            args.extend(words.iter().map(String::as_str));
            run("ip", &args).map_err(|e| match e {
                TopologyError::Command { stderr, .. } => TopologyError::Command {
                    cmd: format!("tc {c} (in namespace {})", h.name),
                    stderr,
                },
                other => other,
            })?;
        }
        TcSpec::Program {
            dev,
            ingress,
            program,
            config,
        } => {
            bpf::attach_fixture(h, dev, *ingress, program, config)?;
        }
        TcSpec::Object {
            dev,
            ingress,
            object,
        } => {
            bpf::attach_object_tc(h, dev, *ingress, object)?;
        }
    }
    Ok(())
}
