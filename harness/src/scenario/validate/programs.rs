//! Programs attached to a namespace's devices: tc (built-in, user
//! objects, command lines) and XDP.

use super::attach::file_refusal;
use super::ctx::*;

/// `tc:` entries, in file order.
pub(super) fn tc_entries(cx: &mut Ctx, here: &Here, raw: Vec<raw::Tc>) -> Vec<TcSpec> {
    let mut tc = vec![];
    for t in raw {
        let spec = match (&t.command, &t.program) {
            (Some(c), None) => Some(tc_command(cx, c, &t)),
            (None, Some(p)) => tc_program(cx, here, p, &t),
            _ => {
                let at = t.command.as_ref().or(t.program.as_ref()).or(t.dev.as_ref());
                let msg = "a tc entry has either `program` (with `dev`, `direction`, `config`) or `command`";
                match at {
                    Some(a) => cx.err(a, msg, None),
                    None => cx.errors.push(ScenarioError {
                        loc: None,
                        file: cx.file.to_path_buf(),
                        msg: msg.into(),
                        hint: None,
                    }),
                }
                None
            }
        };
        tc.extend(spec);
    }
    tc
}

/// A tc command line, run as written in the namespace.
fn tc_command(cx: &mut Ctx, c: &raw::S, t: &raw::Tc) -> TcSpec {
    if t.dev.is_some() || t.direction.is_some() || !t.config.is_empty() {
        cx.err(
            c,
            "a tc `command` takes no `dev`, `direction` or `config`",
            Some("write the whole command line, e.g. `filter add dev veth0 ingress ...`".into()),
        );
    }
    // Split as a shell would: a quoted argument (a pedit or u32 match
    // written with spaces) stays one word.
    let words = match shell_words::split(c) {
        Ok(w) => w,
        Err(e) => {
            cx.err(
                c,
                format!("this tc command line does not split into words: {e}"),
                Some("close the quote, or escape it with a backslash".into()),
            );
            vec![]
        }
    };
    // tc's `-b[atch] FILE` reads (and echoes) a host file, and
    // `-n[etns] NAME` leaves the scenario's namespace.
    if words.iter().any(|w| w.starts_with("-b")) {
        cx.err(
            c,
            "a tc `command` may not read a batch file (`-batch`)",
            Some("write each tc command as its own `command` entry".into()),
        );
    }
    if words.iter().any(|w| w == "-n" || w.starts_with("-net")) {
        cx.err(
            c,
            "a tc `command` runs in its own namespace; `-netns` is refused",
            Some("put the tc entry under the namespace it is for".into()),
        );
    }
    if cx.policy.no_commands {
        cx.err(
            c,
            "this scenario runs a tc command line as root on the host; refused by --no-commands",
            Some("review the scenario, then run it without --no-commands".into()),
        );
    }
    TcSpec::Command {
        line: c.to_string(),
        args: words,
    }
}

/// A program (built-in or from the user's object) on a device's ingress
/// or egress.
fn tc_program(cx: &mut Ctx, here: &Here, p: &raw::S, t: &raw::Tc) -> Option<TcSpec> {
    let Some(dev) = &t.dev else {
        cx.err(p, "a tc program needs a `dev`", None);
        return None;
    };
    here.check_dev(cx, dev);
    let ingress = match t.direction.as_ref().map(|d| d.as_str()) {
        None | Some("ingress") => true,
        Some("egress") => false,
        Some(other) => {
            cx.err(
                t.direction.as_ref().unwrap(),
                format!("unknown direction `{other}`"),
                Some("ingress or egress".into()),
            );
            true
        }
    };
    let dev = dev.to_string();
    if let Some(o) = &t.object {
        if !t.config.is_empty() {
            cx.err(
                o,
                "`config` is for the built-in programs; set your object's maps with `maps`",
                None,
            );
        }
        let object = bpf_object(cx, o, p, t.maps.clone())?;
        return Some(TcSpec::Object {
            dev,
            ingress,
            object,
        });
    }
    if let Some(m) = t.maps.as_ref().and_then(|m| m.keys().next()) {
        cx.err(m, "`maps` needs your own `object`", None);
    }
    let config = builtin_config(cx, p, t)?;
    Some(TcSpec::Program {
        dev,
        ingress,
        program: p.to_string(),
        config,
    })
}

/// The `config` of a built-in program, checked against the keys it takes.
fn builtin_config(cx: &mut Ctx, p: &raw::S, t: &raw::Tc) -> Option<Vec<(String, u32)>> {
    let known = crate::common::fixtures::TC_PROGRAMS;
    let Some(k) = known.iter().find(|k| k.name == p.as_str()) else {
        let near = did_you_mean(p, known.iter().map(|k| k.name));
        let names: Vec<&str> = known.iter().map(|k| k.name).collect();
        cx.err(
            p,
            format!("unknown tc program `{}`", p.as_str()),
            Some(near.map_or(format!("programs: {}", names.join(", ")), |n| {
                format!("did you mean `{n}`?")
            })),
        );
        return None;
    };
    let mut config = vec![];
    let mut keys: Vec<_> = t.config.iter().collect();
    keys.sort_by_key(|(k, _)| span_pos(k));
    for (key, v) in keys {
        if !k.config.contains(&key.as_str()) {
            cx.err(
                key,
                format!("`{}` takes no config key `{}`", k.name, key.as_str()),
                Some(format!("its keys: {}", k.config.join(", "))),
            );
        }
        config.push((key.to_string(), **v));
    }
    Some(config)
}

/// `xdp:` programs from the user's objects.
pub(super) fn xdp_entries(cx: &mut Ctx, here: &Here, raw: Vec<raw::Xdp>) -> Vec<XdpSpec> {
    let mut xdp = vec![];
    for x in raw {
        here.check_dev(cx, &x.dev);
        let mode = match x.mode.as_ref().map(|m| m.as_str()) {
            None | Some("auto") => XdpMode::Auto,
            Some("skb" | "generic") => XdpMode::Skb,
            Some("drv" | "native") => XdpMode::Drv,
            Some("hw" | "offload") => XdpMode::Hw,
            Some(other) => {
                cx.err(
                    x.mode.as_ref().unwrap(),
                    format!("unknown XDP mode `{other}`"),
                    Some("auto, skb (generic), drv (native) or hw (offload)".into()),
                );
                XdpMode::Auto
            }
        };
        if let Some(object) = bpf_object(cx, &x.object, &x.program, x.maps) {
            xdp.push(XdpSpec {
                dev: x.dev.to_string(),
                mode,
                object,
            });
        }
    }
    xdp
}

/// Compiled objects may be bigger than text files (debug info, BTF).
const MAX_OBJECT_BYTES: u64 = 16 << 20;

/// A user's compiled eBPF object: a project file that is an ELF object,
/// a program name, and map entries (`maps: {NAME: {key: value}}`, numbers
/// in decimal or 0x hex).
pub(super) fn bpf_object(
    cx: &mut Ctx,
    object: &raw::S,
    program: &raw::S,
    maps: Option<HashMap<raw::S, HashMap<raw::S, raw::S>>>,
) -> Option<BpfObject> {
    let path = match crate::scenario::project::resolve(cx.file, object, &cx.policy.allowed) {
        Ok(p) => p,
        Err(refusal) => {
            let (msg, hint) = file_refusal(object, &refusal);
            cx.err(object, msg, Some(hint));
            return None;
        }
    };
    match crate::scenario::project::read_bytes(&path, MAX_OBJECT_BYTES) {
        Ok(b) if b.starts_with(b"\x7fELF") => {}
        Ok(_) => {
            cx.err(
                object,
                format!("`{}` is not an ELF object", clip(object, 120)),
                Some("give the .o your eBPF build writes (clang -target bpf, or an aya crate's output)".into()),
            );
            return None;
        }
        Err(e) => {
            cx.err(
                object,
                format!("cannot read `{}`: {e}", clip(object, 120)),
                None,
            );
            return None;
        }
    }
    if program.is_empty() {
        cx.err(program, "a program name is needed", None);
    }
    let num = |t: &str| match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    };
    let mut out = vec![];
    let mut names: Vec<_> = maps.unwrap_or_default().into_iter().collect();
    names.sort_by_key(|(k, _)| span_pos(k));
    for (name, entries) in names {
        let mut kv: Vec<_> = entries.into_iter().collect();
        kv.sort_by_key(|(k, _)| span_pos(k));
        let mut parsed = vec![];
        for (k, v) in kv {
            match (num(&k), num(&v)) {
                (Some(k), Some(v)) => parsed.push((k, v)),
                (None, _) => cx.err(
                    &k,
                    format!("map key `{}` is not a number", clip(&k, 40)),
                    None,
                ),
                (_, None) => cx.err(
                    &v,
                    format!("map value `{}` is not a number", clip(&v, 40)),
                    None,
                ),
            }
        }
        out.push((name.to_string(), parsed));
    }
    Some(BpfObject {
        path,
        program: program.to_string(),
        maps: out,
        at: cx.loc(program),
    })
}
