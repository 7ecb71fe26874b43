//! What runs as the user wrote it, in a namespace: sysctls, tc entries
//! (command lines through `ip netns exec`, which gives them the
//! namespace's `/sys`, or programs) and `run:` commands.

use std::process::Command;

use super::bpf;
use super::error::{TopologyError, io_err};
use super::netns::{self, NetnsHandle};
use crate::scenario::{ProgHook, ProgramRef, TcSpec};

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
    let out = crate::common::process::fed(Command::new(tool).args(args), b"")
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

/// Writes `net.*` sysctls, in order, from one thread inside the
/// namespace (a thread per sysctl costs a clone and a setns each).
pub(super) fn write_sysctls<'a>(
    ns: &NetnsHandle,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), TopologyError> {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    if pairs.is_empty() {
        return Ok(());
    }
    let path_of = |key: &str| format!("/proc/sys/{}", key.replace('.', "/"));
    let written = netns::run_in_scoped(&ns.path(), || {
        pairs
            .iter()
            .try_for_each(|(key, value)| std::fs::write(path_of(key), value).map_err(|e| (*key, e)))
    })
    .map_err(io_err(format!("entering namespace `{}`", ns.name)))?;
    written.map_err(|(key, e)| {
        io_err(format!(
            "setting sysctl {key} in namespace `{}` ({})",
            ns.name,
            path_of(key)
        ))(e)
    })
}

/// One `tc:` entry: a command line run in the namespace, a built-in
/// program or the user's object.
/// Runs a `tc:` entry; a program it attaches is given back with its
/// kernel id.
pub(super) fn attach_tc(
    h: &NetnsHandle,
    t: &TcSpec,
) -> Result<Option<(ProgramRef, u32)>, TopologyError> {
    let at = |dev: &String, ingress: bool, program: &String| ProgramRef {
        program: program.clone(),
        ns: h.name.clone(),
        dev: dev.clone(),
        hook: if ingress {
            ProgHook::TcIngress
        } else {
            ProgHook::TcEgress
        },
    };
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
            Ok(None)
        }
        TcSpec::Program {
            dev,
            ingress,
            program,
            config,
        } => {
            let id = bpf::attach_fixture(h, dev, *ingress, program, config)?;
            Ok(Some((at(dev, *ingress, program), id)))
        }
        TcSpec::Object {
            dev,
            ingress,
            object,
        } => {
            let id = bpf::attach_object_tc(h, dev, *ingress, object)?;
            Ok(Some((at(dev, *ingress, &object.program), id)))
        }
    }
}
