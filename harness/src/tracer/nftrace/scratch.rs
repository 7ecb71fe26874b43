//! A namespace's own rulesets as the kernel lists them, before anything
//! is built: loaded into a scratch network namespace that only the
//! loading thread is in (the kernel frees it when the thread and its
//! tools end: no name, no mount, nothing to clean up) and listed as a
//! traced namespace's rules are. Rule references are checked against
//! this, so `nft`'s own rendering (`tcp dport 22`, iptables-save's
//! `-m tcp`) decides, not a guess from the source text.

use std::io;

use super::listing::{read_rules, run_tool};
use super::rules::Ruleset;

/// The rulesets a namespace brings itself.
#[derive(Debug, Clone, Default)]
pub struct OwnRules {
    /// Its `nft:` text.
    pub nft: Option<String>,
    /// Its `iptables:` text (iptables-save format).
    pub iptables: Option<String>,
    /// Its `ip6tables:` text.
    pub ip6tables: Option<String>,
}

/// Loads `own` into a scratch namespace and lists it. `Ok(None)` when a
/// tool refuses a ruleset there: the build reports that error at its
/// line, and a ruleset that needs the scenario's devices (`iif "eth0"`)
/// can only load in the real namespace, so nothing is said here.
pub fn list_in_scratch(own: OwnRules) -> io::Result<Option<Ruleset>> {
    std::thread::Builder::new()
        .name("pktfate-scratch".into())
        .spawn(move || -> io::Result<Option<Ruleset>> {
            // This thread only; its children are born in the new namespace.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            let loads: [(&str, &[&str], &Option<String>); 3] = [
                ("nft", &["-f", "-"], &own.nft),
                ("iptables-restore", &["--noflush"], &own.iptables),
                ("ip6tables-restore", &["--noflush"], &own.ip6tables),
            ];
            for (tool, args, text) in loads {
                if let Some(text) = text {
                    if !run_tool(tool, args, text)?.0 {
                        return Ok(None);
                    }
                }
            }
            let (ok, listing, warnings) = run_tool("nft", &["-a", "list", "ruleset"], "")?;
            if !ok {
                return Ok(None);
            }
            let save = |tool: &'static str| match run_tool(tool, &[], "") {
                Ok((true, text, _)) => Some(text),
                _ => None,
            };
            Ok(Some(read_rules(&listing, &warnings, &save)))
        })?
        .join()
        .map_err(|_| io::Error::other("the scratch namespace's thread panicked"))?
}
