//! Attaching fixture tc programs (clsact + cls_bpf, direct action).
//!
//! Loading and attaching run on a thread inside the scenario namespace,
//! because aya resolves the interface name and opens its netlink socket in
//! the calling thread's namespace. The attachment is then released from
//! aya's bookkeeping on purpose: dropping it would detach through a netlink
//! socket of whatever namespace the dropping thread is in. The filter holds
//! its own reference to the program and disappears with the namespace.

use aya::Ebpf;
use aya::maps::Array;
use aya::programs::tc::{NlOptions, TcAttachOptions};
use aya::programs::{SchedClassifier, TcAttachType, tc};

use crate::fixtures;
use crate::netns;
use crate::topology::{NetnsHandle, TopologyError};

/// Loads fixture `program`, fills its config and attaches it to `dev`.
pub fn attach(
    ns: &NetnsHandle,
    dev: &str,
    ingress: bool,
    program: &str,
    config: &[(String, u32)],
) -> Result<(), TopologyError> {
    let err = |msg: String| TopologyError::TcProgram {
        program: program.to_string(),
        ns: ns.name.clone(),
        dev: dev.to_string(),
        msg,
    };
    let mut values = vec![];
    for (k, v) in config {
        let i = fixtures::config_index(program, k)
            .ok_or_else(|| err(format!("no config key `{k}`")))?;
        values.push((i, *v));
    }
    let (dev2, prog2) = (dev.to_string(), program.to_string());
    netns::run_in(&ns.path(), move || -> Result<(), String> {
        let mut ebpf = Ebpf::load(fixtures::TC_OBJ).map_err(|e| format!("loading: {e}"))?;
        {
            let mut cfg: Array<_, u32> = ebpf
                .map_mut("CONFIG")
                .ok_or("no CONFIG map")?
                .try_into()
                .map_err(|e| format!("CONFIG map: {e}"))?;
            for (i, v) in values {
                cfg.set(i, v, 0).map_err(|e| format!("CONFIG map: {e}"))?;
            }
        }
        // An interface gets clsact once; a second program finds it there.
        if let Err(e) = tc::qdisc_add_clsact(&dev2) {
            let text = e.to_string();
            if !text.contains("exists") && !text.contains("os error 17") {
                return Err(format!("adding clsact: {e}"));
            }
        }
        let p: &mut SchedClassifier = ebpf
            .program_mut(&prog2)
            .ok_or("no such program in the fixture object")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        p.load().map_err(|e| format!("verifier: {e:#}"))?;
        let kind = if ingress {
            TcAttachType::Ingress
        } else {
            TcAttachType::Egress
        };
        let id = p
            .attach_with_options(&dev2, kind, TcAttachOptions::Netlink(NlOptions::default()))
            .map_err(|e| format!("attaching: {e:#}"))?;
        let link = p.take_link(id).map_err(|e| format!("{e}"))?;
        std::mem::forget(link);
        Ok(())
    })
    .map_err(|e| err(e.to_string()))?
    .map_err(err)
}
