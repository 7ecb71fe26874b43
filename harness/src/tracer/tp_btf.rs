//! The BTF tracepoint backend (aya): one `tp_btf` program per skb hook.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Ebpf, EbpfLoader};
use pktfate_common::{
    CONFIG_FILTER_NETNS, CONFIG_STACKS, Event, HOOK_NAMES, MAX_FILTERS, MAX_NETNS, PacketFilter,
    TracerConfig,
};

use super::{Backend, TraceSpec, TracerError, offsets};
use crate::btf::Btf;

/// The tracer object, built by `build.rs` and embedded in the binary.
static TRACER_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktfate-tracer"));

/// Hooks a kernel must have; the others are attached when present.
const REQUIRED: [&str; 4] = [
    "netif_receive_skb",
    "kfree_skb",
    "consume_skb",
    "net_dev_queue",
];

/// A loaded and attached tp_btf tracer.
pub struct TpBtf {
    // Field order matters for drop: the ring buffer before the object.
    events: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    attached: Vec<&'static str>,
    _ebpf: Ebpf,
}

fn map_err(map: &str) -> impl Fn(aya::maps::MapError) -> TracerError + '_ {
    move |e| TracerError::Map {
        map: map.into(),
        msg: e.to_string(),
    }
}

impl TpBtf {
    /// Loads the programs with this kernel's offsets and attaches them.
    pub fn start(spec: &TraceSpec, btf: &Btf) -> Result<Self, TracerError> {
        if spec.filters.len() > MAX_FILTERS as usize {
            return Err(TracerError::Limit(format!(
                "{} packet filters, at most {MAX_FILTERS} per scenario",
                spec.filters.len()
            )));
        }
        if spec.netns.len() > MAX_NETNS as usize {
            return Err(TracerError::Limit(format!(
                "{} namespaces, at most {MAX_NETNS} per scenario",
                spec.netns.len()
            )));
        }
        let mut flags = 0;
        if !spec.netns.is_empty() {
            flags |= CONFIG_FILTER_NETNS;
        }
        if spec.stacks {
            flags |= CONFIG_STACKS;
        }
        let config = TracerConfig {
            offsets: offsets::resolve(btf)?,
            n_filters: spec.filters.len() as u32,
            flags,
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            .load(TRACER_OBJ)
            .map_err(|e| TracerError::Load(format!("{e:#}")))?;

        {
            let mut netns: HashMap<_, u32, u8> = ebpf
                .map_mut("NETNS")
                .ok_or_else(|| TracerError::Load("map NETNS missing".into()))?
                .try_into()
                .map_err(map_err("NETNS"))?;
            for ns in &spec.netns {
                netns.insert(ns, 1, 0).map_err(map_err("NETNS"))?;
            }
        }
        {
            let mut filters: Array<_, PacketFilter> = ebpf
                .map_mut("FILTERS")
                .ok_or_else(|| TracerError::Load("map FILTERS missing".into()))?
                .try_into()
                .map_err(map_err("FILTERS"))?;
            for (i, f) in spec.filters.iter().enumerate() {
                filters
                    .set(i as u32, f.to_kernel(), 0)
                    .map_err(map_err("FILTERS"))?;
            }
        }

        let aya_btf = aya::Btf::from_sys_fs().map_err(|e| TracerError::Load(e.to_string()))?;
        let mut attached = vec![];
        for name in HOOK_NAMES {
            // Not a tracepoint: the tc observer, attached below.
            if name == "tcf_classify" {
                continue;
            }
            if !btf.has_tracepoint(name) {
                if REQUIRED.contains(&name) {
                    return Err(TracerError::Attach {
                        hook: name.into(),
                        msg: "this kernel has no such BTF tracepoint".into(),
                    });
                }
                continue;
            }
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or_else(|| TracerError::Load(format!("program {name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| TracerError::Load(e.to_string()))?;
            let attach_err = |e: aya::programs::ProgramError| TracerError::Attach {
                hook: name.into(),
                msg: format!("{e:#}"),
            };
            prog.load(name, &aya_btf).map_err(attach_err)?;
            prog.attach().map_err(attach_err)?;
            attached.push(name);
        }

        if !spec.tc_hooks.is_empty() {
            attach_tc_observer(&mut ebpf, spec)?;
            attached.push("tcf_classify");
        }

        let events = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or_else(|| TracerError::Load("map EVENTS missing".into()))?,
        )
        .map_err(map_err("EVENTS"))?;
        let lost = PerCpuArray::try_from(
            ebpf.take_map("LOST")
                .ok_or_else(|| TracerError::Load("map LOST missing".into()))?,
        )
        .map_err(map_err("LOST"))?;
        Ok(Self {
            events,
            lost,
            attached,
            _ebpf: ebpf,
        })
    }
}

impl Backend for TpBtf {
    fn name(&self) -> &'static str {
        "tp_btf"
    }

    fn hooks(&self) -> Vec<&'static str> {
        self.attached.clone()
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<Event>, TracerError> {
        let mut out = drain(&mut self.events);
        if out.is_empty() && !timeout.is_zero() {
            let mut pfd = libc::pollfd {
                fd: self.events.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err.into());
                }
            }
            out = drain(&mut self.events);
        }
        Ok(out)
    }

    fn lost(&self) -> Result<u64, TracerError> {
        let v = self.lost.get(&0, 0).map_err(map_err("LOST"))?;
        Ok(v.iter().sum())
    }
}

/// Puts the `tc_observer` classifier ahead of every scenario tc program.
///
/// Attached from a thread inside the namespace (aya resolves the device and
/// opens its netlink socket there) with priority 1, so it runs first. The
/// attachment is released from aya on purpose: a detach would go through a
/// netlink socket of whatever namespace the dropping thread is in. The
/// filter goes away with the scenario's namespace.
fn attach_tc_observer(ebpf: &mut Ebpf, spec: &TraceSpec) -> Result<(), TracerError> {
    use aya::programs::tc::{NlOptions, TcAttachOptions};
    use aya::programs::{SchedClassifier, TcAttachType, tc};
    let prog: &mut SchedClassifier = ebpf
        .program_mut("tc_observer")
        .ok_or_else(|| TracerError::Load("program tc_observer missing".into()))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| TracerError::Load(e.to_string()))?;
    prog.load().map_err(|e| TracerError::Attach {
        hook: "tcf_classify".into(),
        msg: format!("{e:#}"),
    })?;
    for h in &spec.tc_hooks {
        let err = |msg: String| TracerError::Attach {
            hook: format!(
                "tcf_classify on {} ({})",
                h.dev,
                if h.ingress { "ingress" } else { "egress" }
            ),
            msg,
        };
        let kind = if h.ingress {
            TcAttachType::Ingress
        } else {
            TcAttachType::Egress
        };
        let dev = h.dev.as_str();
        let result = crate::netns::run_in_scoped(&h.netns, || -> Result<(), String> {
            // The scenario's program put clsact there already.
            let _ = tc::qdisc_add_clsact(dev);
            let opts = NlOptions {
                priority: 1,
                ..Default::default()
            };
            let id = prog
                .attach_with_options(dev, kind, TcAttachOptions::Netlink(opts))
                .map_err(|e| format!("{e:#}"))?;
            let link = prog.take_link(id).map_err(|e| e.to_string())?;
            std::mem::forget(link);
            Ok(())
        });
        result.map_err(|e| err(e.to_string()))?.map_err(err)?;
    }
    Ok(())
}

fn drain(rb: &mut RingBuf<MapData>) -> Vec<Event> {
    let mut out = vec![];
    while let Some(item) = rb.next() {
        if item.len() >= size_of::<Event>() {
            // SAFETY: the kernel wrote a whole `Event`; read_unaligned copes
            // with the ring buffer's 8-byte (not 16-byte) alignment.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
        }
    }
    out
}
