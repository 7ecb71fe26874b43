//! eBPF programs a scenario attaches: the built-in tc fixtures and the
//! user's own compiled objects, on tc (clsact + `cls_bpf`, direct action) or
//! XDP, with their maps filled from the scenario.
//!
//! Loading and attaching run on a thread inside the scenario namespace,
//! because aya resolves the interface name (and, for tc, opens its netlink
//! socket) in the calling thread's namespace. A tc attachment is released
//! from aya's bookkeeping on purpose: dropping it would detach through a
//! netlink socket of whatever namespace the dropping thread is in; the
//! filter holds its own reference to the program and goes with the
//! namespace. An XDP attachment is a `bpf_link` (an fd, namespace-agnostic),
//! kept by the topology and closed at teardown.

use aya::Ebpf;
use aya::maps::{Array, HashMap, Map, MapData};
use aya::programs::tc::{NlOptions, TcAttachOptions};
use aya::programs::xdp::XdpLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode as AyaXdpMode, tc};

use super::error::{FillError, ObjectError};
use super::{NetnsHandle, TopologyError};
use crate::common::{ebpf_loader, fixtures};
use crate::scenario::{BpfObject, XdpMode};
use crate::topology::netns;

/// Map entries by map name: (key, value).
type MapEntries = Vec<(String, Vec<(u64, u64)>)>;

/// Loads built-in fixture `program`, fills its `CONFIG` and attaches it.
pub(super) fn attach_fixture(
    ns: &NetnsHandle,
    dev: &str,
    ingress: bool,
    program: &str,
    config: &[(String, u32)],
) -> Result<u32, TopologyError> {
    let err = |source: ObjectError| TopologyError::TcProgram {
        program: program.to_string(),
        ns: ns.name.clone(),
        dev: dev.to_string(),
        source: Box::new(source),
    };
    let mut values = vec![];
    for (k, v) in config {
        let i = fixtures::config_index(program, k)
            .ok_or_else(|| err(ObjectError::NoConfigKey(k.clone())))?;
        values.push((u64::from(i), u64::from(*v)));
    }
    let maps = vec![("CONFIG".to_string(), values)];
    attach_tc(ns, dev, ingress, fixtures::TC_OBJ.to_vec(), program, maps).map_err(err)
}

/// Loads `program` of the user's object and attaches it to `dev`'s
/// clsact; gives the program's kernel id.
pub(super) fn attach_object_tc(
    ns: &NetnsHandle,
    dev: &str,
    ingress: bool,
    o: &BpfObject,
) -> Result<u32, TopologyError> {
    let bytes = read(o).map_err(|e| object_err(ns, dev, o, e))?;
    attach_tc(ns, dev, ingress, bytes, &o.program, o.maps.clone())
        .map_err(|e| object_err(ns, dev, o, e))
}

/// Loads `program` of the user's object and attaches it as XDP to `dev`;
/// gives the link and the program's kernel id.
pub(super) fn attach_object_xdp(
    ns: &NetnsHandle,
    dev: &str,
    mode: XdpMode,
    o: &BpfObject,
) -> Result<(XdpLink, u32), TopologyError> {
    let err = |e| object_err(ns, dev, o, e);
    let bytes = read(o).map_err(err)?;
    let (dev2, prog, maps) = (dev.to_string(), o.program.clone(), o.maps.clone());
    let flags = match mode {
        XdpMode::Auto => AyaXdpMode::Default,
        XdpMode::Skb => AyaXdpMode::Skb,
        XdpMode::Drv => AyaXdpMode::Driver,
        XdpMode::Hw => AyaXdpMode::Hardware,
    };
    netns::run_in(
        &ns.path(),
        move || -> Result<(XdpLink, u32), ObjectError> {
            let mut ebpf = load(&bytes, &maps)?;
            let p: &mut Xdp = ebpf
                .program_mut(&prog)
                .ok_or_else(|| ObjectError::NoProgram(prog.clone()))?
                .try_into()
                .map_err(|source| ObjectError::WrongKind {
                    program: prog.clone(),
                    kind: "an XDP program",
                    source,
                })?;
            p.load().map_err(ObjectError::Refused)?;
            let prog_id = p.info().map_err(ObjectError::Info)?.id();
            let id = p.attach(&dev2, flags).map_err(ObjectError::Attach)?;
            Ok((p.take_link(id).map_err(ObjectError::Attach)?, prog_id))
        },
    )
    .map_err(|e| err(ObjectError::Netns(e)))?
    .map_err(err)
}

fn object_err(ns: &NetnsHandle, dev: &str, o: &BpfObject, source: ObjectError) -> TopologyError {
    TopologyError::BpfObject {
        at: o.at.clone(),
        what: format!(
            "program `{}` of {} on {}/{dev}",
            o.program,
            o.path.display(),
            ns.name
        ),
        source: Box::new(source),
    }
}

/// The object's bytes (the path was checked when the scenario was read).
fn read(o: &BpfObject) -> Result<Vec<u8>, ObjectError> {
    crate::scenario::project::read_bytes(&o.path, 16 << 20).map_err(ObjectError::Read)
}

/// Parses the object and fills its maps before any program is loaded.
fn load(bytes: &[u8], maps: &MapEntries) -> Result<Ebpf, ObjectError> {
    let aligned = ebpf_loader::Aligned::from(bytes);
    // Not `Ebpf::load`: that parses the kernel BTF twice, both copies
    // alive at once; the loader's own parse is enough for the object's
    // CO-RE relocations.
    let mut ebpf = ebpf_loader::load(aligned.bytes()).map_err(ObjectError::Parse)?;
    for (name, entries) in maps {
        let map = ebpf
            .map_mut(name)
            .ok_or_else(|| ObjectError::NoMap(name.clone()))?;
        fill(map, entries).map_err(|source| ObjectError::Fill {
            map: name.clone(),
            source,
        })?;
    }
    Ok(ebpf)
}

/// Sets entries in an array or hash map whose key and value are 1, 2, 4 or
/// 8-byte integers (what the map's own sizes say).
fn fill(map: &mut Map, entries: &[(u64, u64)]) -> Result<(), FillError> {
    macro_rules! narrow {
        ($t:ty, $x:expr) => {
            <$t>::try_from($x).map_err(|_| FillError::DoesNotFit {
                value: $x,
                ty: stringify!($t),
            })?
        };
    }
    macro_rules! array {
        ($($v:ty),*) => {$(
            if let Ok(mut a) = Array::<&mut MapData, $v>::try_from(&mut *map) {
                for (k, v) in entries {
                    a.set(narrow!(u32, *k), narrow!($v, *v), 0).map_err(FillError::Map)?;
                }
                return Ok(());
            }
        )*};
    }
    macro_rules! hash {
        ($(($k:ty, $v:ty)),*) => {$(
            if let Ok(mut h) = HashMap::<&mut MapData, $k, $v>::try_from(&mut *map) {
                for (k, v) in entries {
                    h.insert(narrow!($k, *k), narrow!($v, *v), 0).map_err(FillError::Map)?;
                }
                return Ok(());
            }
        )*};
    }
    array!(u32, u64, u16, u8);
    hash!(
        (u32, u32),
        (u32, u64),
        (u32, u16),
        (u32, u8),
        (u64, u64),
        (u64, u32),
        (u64, u16),
        (u64, u8),
        (u16, u32),
        (u16, u64),
        (u16, u16),
        (u16, u8),
        (u8, u32),
        (u8, u64),
        (u8, u16),
        (u8, u8)
    );
    Err(FillError::Unsupported)
}

/// Loads `program` from `bytes` (maps filled) and attaches it to clsact.
fn attach_tc(
    ns: &NetnsHandle,
    dev: &str,
    ingress: bool,
    bytes: Vec<u8>,
    program: &str,
    maps: MapEntries,
) -> Result<u32, ObjectError> {
    let (dev2, prog2) = (dev.to_string(), program.to_string());
    netns::run_in(&ns.path(), move || -> Result<u32, ObjectError> {
        let mut ebpf = load(&bytes, &maps)?;
        // An interface gets clsact once; a second program finds it there.
        match tc::qdisc_add_clsact(&dev2) {
            Ok(()) | Err(tc::TcError::AlreadyAttached) => {}
            Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(ObjectError::Clsact(e)),
        }
        let p: &mut SchedClassifier = ebpf
            .program_mut(&prog2)
            .ok_or_else(|| ObjectError::NoProgram(prog2.clone()))?
            .try_into()
            .map_err(|source| ObjectError::WrongKind {
                program: prog2.clone(),
                kind: "a tc classifier",
                source,
            })?;
        p.load().map_err(ObjectError::Refused)?;
        let prog_id = p.info().map_err(ObjectError::Info)?.id();
        let kind = if ingress {
            TcAttachType::Ingress
        } else {
            TcAttachType::Egress
        };
        let id = p
            .attach_with_options(&dev2, kind, TcAttachOptions::Netlink(NlOptions::default()))
            .map_err(ObjectError::Attach)?;
        let link = p.take_link(id).map_err(ObjectError::Attach)?;
        std::mem::forget(link);
        Ok(prog_id)
    })
    .map_err(ObjectError::Netns)?
}
