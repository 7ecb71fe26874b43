//! Stage 1: scenario file → validated [`Scenario`].
//!
//! Parsing keeps the YAML position of every value a user can get wrong, so
//! each error names `file:line:col` and, where there is an obvious fix, a hint.
//! Unknown keys are errors. Nothing here needs root or a kernel; checks that
//! do (drop-reason names) are in [`Scenario::check_against_kernel`].
//!
//! # Example
//!
//! ```
//! let yaml = r#"
//! namespaces:
//!   host:
//!     links:
//!       - { name: tun0, kind: tun }
//!     addresses:
//!       - { dev: tun0, addr: 192.0.2.1/24 }
//! inject:
//!   via: host/tun0
//!   ipv4: { src: 192.0.2.7, dst: 192.0.2.1, checksum: bad }
//!   tcp: { sport: 1000, dport: 80, flags: [syn] }
//! expect:
//!   fate: dropped
//!   reason: IP_CSUM
//! "#;
//! let s = pktfate::scenario::Scenario::parse("example.yaml".as_ref(), yaml).unwrap();
//! assert_eq!(s.packets.len(), 1);
//! assert_eq!(s.packets[0].expect.reason.as_deref(), Some("IP_CSUM"));
//! ```

use std::path::Path;

use marked_yaml::LoaderOptions;

pub use crate::common::config::FilePolicy;
use crate::scenario::kernel_range::Version;
use error::yaml_error;
use validate::{Ctx, validate};

mod error;
pub mod kernel_range;
mod model;
pub mod project;
mod raw;
mod syntax_hint;
#[cfg(test)]
mod tests;
mod validate;

pub use error::{Location, ScenarioError};
pub use model::*;
pub use validate::{StepError, parse_kernel_version, parse_mac, parse_step};

/// A kernel's drop reasons, as validation needs them. The tracer's table
/// (read from the running kernel's BTF) implements it; this stage does
/// not depend on the tracer.
pub trait ReasonNames {
    /// No reasons at all (kernels before 5.17).
    fn is_empty(&self) -> bool;
    /// The canonical short name for a user's spelling (prefix optional,
    /// any case), if the kernel has that reason.
    fn resolve(&self, user: &str) -> Option<&str>;
    /// The closest known names to an unknown one, best first.
    fn suggest(&self, user: &str) -> Vec<&str>;
}

/// An optional hook the tracer went without on this kernel, and why.
#[derive(Debug, Clone, Copy)]
pub struct MissingHook<'a> {
    /// The hook's name, as path steps write it.
    pub hook: &'a str,
    /// Why it is missing.
    pub why: &'a str,
}

impl Scenario {
    /// Reads and validates a scenario file under the default
    /// [`FilePolicy`] (its project's files; commands allowed).
    pub fn load(path: &Path) -> Result<Self, Vec<ScenarioError>> {
        Self::load_with(path, &FilePolicy::default())
    }

    /// Reads and validates a scenario file under `policy`.
    pub fn load_with(path: &Path, policy: &FilePolicy) -> Result<Self, Vec<ScenarioError>> {
        let text = crate::scenario::project::read_text(path).map_err(|e| {
            vec![ScenarioError {
                loc: None,
                file: path.to_path_buf(),
                msg: format!("cannot read scenario: {e}"),
                hint: Some(format!(
                    "a scenario is a YAML text file of at most {} KiB",
                    crate::scenario::project::MAX_FILE_BYTES / 1024
                )),
            }]
        })?;
        Self::parse_with(path, &text, policy)
    }

    /// Parses and validates scenario text under the default
    /// [`FilePolicy`]; `path` is used in messages and to find the files
    /// the scenario names.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<ScenarioError>> {
        Self::parse_with(path, text, &FilePolicy::default())
    }

    /// Parses and validates scenario text under `policy`.
    pub fn parse_with(
        path: &Path,
        text: &str,
        policy: &FilePolicy,
    ) -> Result<Self, Vec<ScenarioError>> {
        let opts = LoaderOptions::default().error_on_duplicate_keys(true);
        let file: raw::File = marked_yaml::from_yaml_with_options(0, text, opts)
            .map_err(|e| vec![yaml_error(path, text, &e)])?;
        let mut cx = Ctx {
            file: path,
            errors: vec![],
            source: text,
            policy,
            programs: vec![],
        };
        let s = validate(&mut cx, file, path);
        if cx.errors.is_empty() {
            Ok(s)
        } else {
            Err(cx.errors)
        }
    }

    /// Resolves kernel-dependent expectations for kernel `v` (see
    /// [`Expectation::for_kernel`]).
    pub fn resolve_for_kernel(&mut self, v: Version) {
        for p in &mut self.packets {
            p.expect = p.expect.for_kernel(v);
        }
    }

    /// Calls `f` on every expectation (each packet's, its reply's, ...)
    /// with the name a report gives it (`packet 1`, `packet 1 reply`).
    fn each_expectation(&mut self, mut f: impl FnMut(&mut Expectation, &str)) {
        fn walk(e: &mut Expectation, name: &str, f: &mut dyn FnMut(&mut Expectation, &str)) {
            f(e, name);
            if let Some(reply) = e.reply.as_deref_mut() {
                walk(reply, &format!("{name} reply"), f);
            }
        }
        for p in &mut self.packets {
            walk(&mut p.expect, &p.name, &mut f);
        }
    }

    /// Drops `reason` expectations, for a kernel whose tracer sees no drop
    /// reasons; returns what was not checked, to be reported as such.
    pub fn drop_reason_checks(&mut self, why: &str) -> Vec<String> {
        let mut out = vec![];
        self.each_expectation(|e, packet| {
            if let Some(r) = e.reason.take() {
                out.push(format!("{packet}: reason {r} not checked ({why})"));
            }
        });
        out
    }

    /// Drops the `ct_state` of rule references, on a kernel whose rule
    /// traces do not carry it; returns what was not checked, and why.
    pub fn ct_state_checks(&mut self, why: &str) -> Vec<String> {
        let mut out = vec![];
        self.each_expectation(|e, packet| {
            let Some(n) = e.netfilter.as_mut() else {
                return;
            };
            for m in n.decided_by.iter_mut().chain(n.not_matched.iter_mut()) {
                if let Some(s) = m.ct_state.take() {
                    out.push(format!(
                        "{packet}: ct state {} of {} not checked ({why})",
                        s.name(),
                        m.rule
                    ));
                }
            }
        });
        out
    }

    /// Drops `programs:` expectations naming a program whose returns this
    /// kernel cannot show (`unwatched`: the program and why); returns
    /// what was not checked, and why.
    pub fn program_checks(&mut self, unwatched: &[(ProgramRef, String)]) -> Vec<String> {
        let mut out = vec![];
        if unwatched.is_empty() {
            return out;
        }
        self.each_expectation(|e, packet| {
            e.programs.retain(|w| {
                let Some((_, why)) = unwatched.iter().find(|(p, _)| w.names(p)) else {
                    return true;
                };
                out.push(format!("{packet}: {w} not checked ({why})"));
                false
            });
        });
        out
    }

    /// Drops path, `not_path` and seen steps that name a hook the tracer
    /// could not attach on this kernel; returns what was not checked, and
    /// why, to be reported as such.
    pub fn drop_steps_on_hooks(&mut self, hooks: &[MissingHook]) -> Vec<String> {
        fn strip(e: &mut Expectation, packet: &str, hooks: &[MissingHook], out: &mut Vec<String>) {
            let why = |st: &PathStep| hooks.iter().find(|h| h.hook == st.func).map(|h| &h.why);
            let missing = |st: &PathStep| why(st).is_some();
            for (what, steps) in [("path", &mut e.path), ("not_path", &mut e.not_path)] {
                for st in steps.iter() {
                    if let Some(w) = why(st) {
                        out.push(format!(
                            "{packet}: {what} step {st} not checked ({}: {w})",
                            st.func
                        ));
                    }
                }
                steps.retain(|st| !missing(st));
            }
            for x in &e.seen {
                if let Some(w) = why(&x.at) {
                    out.push(format!(
                        "{packet}: seen at {} not checked ({}: {w})",
                        x.at, x.at.func
                    ));
                }
            }
            e.seen.retain(|x| !missing(&x.at));
            // Route lookups come from the fib tracepoints: without one, a
            // route expectation cannot be told met.
            let fib = hooks
                .iter()
                .find(|h| matches!(h.hook, "fib_table_lookup" | "fib6_table_lookup"));
            if let Some(h) = fib {
                for w in e.routes.drain(..) {
                    out.push(format!("{packet}: {w} not checked ({}: {})", h.hook, h.why));
                }
            }
            if let Some(reply) = e.reply.as_deref_mut() {
                strip(reply, &format!("{packet} reply"), hooks, out);
            }
        }
        let mut out = vec![];
        if hooks.is_empty() {
            return out;
        }
        for p in &mut self.packets {
            strip(&mut p.expect, &p.name, hooks, &mut out);
        }
        out
    }

    /// Checks what needs the running kernel: drop reason names exist (and
    /// are rewritten to their canonical short form). A kernel without
    /// drop reasons (before 5.17) has nothing to check them against.
    pub fn check_against_kernel(
        &mut self,
        reasons: &dyn ReasonNames,
    ) -> Result<(), Vec<ScenarioError>> {
        fn check(
            e: &mut Expectation,
            reasons: &dyn ReasonNames,
            file: &Path,
            errors: &mut Vec<ScenarioError>,
        ) {
            if reasons.is_empty() {
                return;
            }
            if let Some(r) = e.reason.clone() {
                if let Some(canon) = reasons.resolve(&r) {
                    e.reason = Some(canon.to_string());
                } else {
                    let sugg = reasons.suggest(&r);
                    let hint = if sugg.is_empty() {
                        "`pktfate reasons` lists this kernel's drop reasons; if another kernel has it, give this one its own under `kernels:` (e.g. `\"< 6.13\": { reason: NOT_SPECIFIED }`)".to_string()
                    } else {
                        format!(
                            "did you mean {}? (`pktfate reasons` lists them all)",
                            sugg.join(", ")
                        )
                    };
                    errors.push(ScenarioError {
                        loc: e.reason_loc.clone(),
                        file: file.to_path_buf(),
                        msg: format!("unknown drop reason `{r}` on this kernel"),
                        hint: Some(hint),
                    });
                }
            }
            for a in &mut e.allow_drops {
                match reasons.resolve(a) {
                    Some(c) => *a = c.to_string(),
                    None => errors.push(ScenarioError {
                        loc: None,
                        file: file.to_path_buf(),
                        msg: format!("unknown drop reason `{a}` in allow_drops on this kernel"),
                        hint: reasons
                            .suggest(a)
                            .first()
                            .map(|s| format!("did you mean {s}?")),
                    }),
                }
            }
            if let Some(reply) = e.reply.as_deref_mut() {
                check(reply, reasons, file, errors);
            }
        }
        let mut errors = vec![];
        for p in &mut self.packets {
            check(&mut p.expect, reasons, &self.path, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The namespace with this scenario-local name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.name == name)
    }
}
