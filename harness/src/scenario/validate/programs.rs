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

/// `programs:` under `expect`: each names a program the scenario attaches
/// (and, where it attaches it twice, the namespace and device), and a
/// return code of that program's kind.
pub(super) fn program_wants(
    cx: &mut Ctx,
    raw: Option<&[Spanned<raw::ProgramExpect>]>,
) -> Vec<ProgramWant> {
    let mut out = vec![];
    for w in raw.into_iter().flatten() {
        let want = ProgramWant {
            program: w.program.trim().to_string(),
            ns: w.ns.as_ref().map(|n| n.trim().to_string()),
            dev: w.dev.as_ref().map(|d| d.trim().to_string()),
            returned: None,
            at: cx.loc(w),
        };
        let named: Vec<ProgramRef> = cx
            .programs
            .iter()
            .filter(|p| want.names(p))
            .cloned()
            .collect();
        let Some(first) = named.first() else {
            refuse_unknown(cx, w, &want);
            continue;
        };
        let returned = match &w.returned {
            None => None,
            Some(name) => {
                if let Some(r) = ReturnCode::parse(first.hook, name) {
                    Some(r)
                } else {
                    let names: Vec<&str> = first.hook.codes().iter().map(|(n, _)| *n).collect();
                    let near = did_you_mean(&name.to_ascii_uppercase(), names.iter().copied());
                    cx.err(
                        name,
                        format!(
                            "`{}` is not a return code of {}",
                            name.as_str(),
                            first.hook.name()
                        ),
                        Some(near.map_or_else(
                            || format!("codes: {}", names.join(", ")),
                            |n| format!("did you mean `{n}`?"),
                        )),
                    );
                    continue;
                }
            }
        };
        // One name on an XDP and a tc hook: the code's names differ.
        if named.iter().any(|p| p.hook.codes() != first.hook.codes()) {
            cx.err(
                w,
                format!(
                    "program `{}` is attached both as tc and as XDP",
                    want.program
                ),
                Some("say which with `ns` and `dev`".into()),
            );
            continue;
        }
        out.push(ProgramWant { returned, ..want });
    }
    out
}

/// A `programs:` entry naming no program the scenario attaches.
fn refuse_unknown(cx: &mut Ctx, w: &Spanned<raw::ProgramExpect>, want: &ProgramWant) {
    let by_name: Vec<&ProgramRef> = cx
        .programs
        .iter()
        .filter(|p| p.program == want.program)
        .collect();
    if cx.programs.is_empty() {
        cx.err(
            &w.program,
            format!("no program `{}`: the scenario attaches none", want.program),
            Some("attach one under a namespace's `tc:` (`program` or `object`) or `xdp:`".into()),
        );
    } else if by_name.is_empty() {
        let near = did_you_mean(
            &want.program,
            cx.programs.iter().map(|p| p.program.as_str()),
        );
        let all: Vec<String> = cx.programs.iter().map(ToString::to_string).collect();
        cx.err(
            &w.program,
            format!("the scenario attaches no program `{}`", want.program),
            Some(near.map_or_else(
                || format!("attached: {}", all.join("; ")),
                |n| format!("did you mean `{n}`?"),
            )),
        );
    } else {
        let places: Vec<String> = by_name
            .iter()
            .map(|p| format!("{}/{}", p.ns, p.dev))
            .collect();
        let at = w.dev.as_ref().or(w.ns.as_ref()).unwrap_or(&w.program);
        cx.err(
            at,
            format!(
                "program `{}` is not attached {}",
                want.program,
                match (&want.ns, &want.dev) {
                    (Some(n), Some(d)) => format!("on {n}/{d}"),
                    (Some(n), None) => format!("in {n}"),
                    (None, Some(d)) => format!("on a device `{d}`"),
                    (None, None) => String::new(),
                }
            ),
            Some(format!("it is attached on {}", places.join(", "))),
        );
    }
}

#[cfg(test)]
mod want_tests {
    use crate::scenario::{ProgHook, Scenario, ScenarioError};

    const FILE: &str = "namespaces:
  client:
    links:
      - { name: eth0, kind: veth, peer: { namespace: server, name: eth0 } }
    addresses: [{ dev: eth0, addr: 192.0.2.2/24 }]
  server:
    addresses: [{ dev: eth0, addr: 192.0.2.1/24 }]
    tc:
      - { dev: eth0, direction: ingress, program: drop_tcp_dport, config: { port: 80 } }
inject:
  socket: { from: client, proto: tcp, to: 192.0.2.1, port: 80 }
expect:
  programs:
    - { program: drop_tcp_dport, ns: server, dev: eth0, returned: TC_ACT_SHOT }
";

    fn first_err(text: &str) -> ScenarioError {
        Scenario::parse(std::path::Path::new("t.yaml"), text)
            .unwrap_err()
            .remove(0)
    }

    #[test]
    fn a_program_expectation_reads_as_written() {
        let s = Scenario::parse(std::path::Path::new("t.yaml"), FILE).unwrap();
        let w = &s.packets[0].expect.programs[0];
        assert_eq!(w.program, "drop_tcp_dport");
        assert_eq!(
            (w.ns.as_deref(), w.dev.as_deref()),
            (Some("server"), Some("eth0"))
        );
        let r = w.returned.unwrap();
        assert_eq!((r.hook, r.code), (ProgHook::TcIngress, 2));
        assert_eq!(w.at.as_ref().unwrap().line, 14);
        // A short name, any case: `shot` is TC_ACT_SHOT.
        let s = Scenario::parse(
            std::path::Path::new("t.yaml"),
            &FILE.replace("returned: TC_ACT_SHOT", "returned: shot"),
        )
        .unwrap();
        assert_eq!(s.packets[0].expect.programs[0].returned.unwrap().code, 2);
    }

    #[test]
    fn unknown_programs_places_and_return_codes_are_refused_at_their_line() {
        let e = first_err(&FILE.replace(
            "{ program: drop_tcp_dport, ns",
            "{ program: drop_tcp_port, ns",
        ));
        assert_eq!(e.msg, "the scenario attaches no program `drop_tcp_port`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `drop_tcp_dport`?"));
        assert_eq!(e.loc.unwrap().line, 14);
        let e = first_err(&FILE.replace(
            "ns: server, dev: eth0, returned",
            "ns: client, dev: eth0, returned",
        ));
        assert_eq!(
            e.msg,
            "program `drop_tcp_dport` is not attached on client/eth0"
        );
        assert_eq!(e.hint.as_deref(), Some("it is attached on server/eth0"));
        // An XDP code for a classifier, and a misspelt one.
        let e = first_err(&FILE.replace("returned: TC_ACT_SHOT", "returned: XDP_DROP"));
        assert_eq!(e.msg, "`XDP_DROP` is not a return code of tc ingress");
        let e = first_err(&FILE.replace("returned: TC_ACT_SHOT", "returned: TC_ACT_SHUT"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `TC_ACT_SHOT`?"));
        // A scenario with no programs at all.
        let bare = FILE.replace(
            "    tc:\n      - { dev: eth0, direction: ingress, program: drop_tcp_dport, config: { port: 80 } }\n",
            "",
        );
        let e = first_err(&bare);
        assert_eq!(
            e.msg,
            "no program `drop_tcp_dport`: the scenario attaches none"
        );
    }
}
