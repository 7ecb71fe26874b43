//! One namespace's section: the orchestration of its parts, sysctls,
//! listeners and `run:` commands. Links, addressing and attached
//! programs have files of their own.

use super::addressing::{addresses, neighbors, routes, rules};
use super::attach::{cni_attachment, ruleset};
use super::ctx::*;
use super::link::links;
use super::programs::{tc_entries, xdp_entries};

/// Why a `net.*` sysctl is not the scenario's to set, if it is not: keys
/// the kernel keeps once for the whole host (a namespace either lacks them,
/// so writing fails at run time, or would change the host).
fn host_wide_sysctl(key: &str) -> Option<&'static str> {
    // optmem_max is per namespace only from 6.9: not on every kernel run.
    const PER_NETNS_CORE: [&str; 3] = ["net.core.somaxconn", "net.core.txrehash", "net.core.xfrm_"];
    const HOST_WIDE: [&str; 3] = ["net.ipv4.tcp_mem", "net.ipv4.udp_mem", "net.ipv4.route.gc_"];
    if key.starts_with("net.core.") && !PER_NETNS_CORE.iter().any(|p| key.starts_with(p)) {
        return Some("host-wide (net.core.* keys but a few are shared by every namespace)");
    }
    if HOST_WIDE.iter().any(|p| key.starts_with(p)) {
        return Some("host-wide: every namespace shares it");
    }
    None
}

/// Validates one namespace; `devs` holds every namespace's devices.
pub(super) fn validate_ns(
    cx: &mut Ctx,
    name: &raw::S,
    ns: raw::Namespace,
    ns_names: &[String],
    devs: &DevIndex,
) -> Namespace {
    let here = Here {
        name,
        devs: &devs[name.as_str()],
    };
    Namespace {
        name: name.to_string(),
        links: links(cx, &here, ns.links, ns_names),
        addresses: addresses(cx, &here, ns.addresses),
        routes: routes(cx, &here, ns.routes),
        sysctls: sysctls(cx, ns.sysctls),
        rules: rules(cx, &here, ns.rules),
        neighbors: neighbors(cx, &here, ns.neighbors),
        cni: ns.cni.and_then(|c| cni_attachment(cx, name, c, ns_names)),
        nft: ruleset(cx, ns.nft, ns.nft_file, "nft"),
        iptables: ruleset(cx, ns.iptables, ns.iptables_file, "iptables"),
        ip6tables: ruleset(cx, ns.ip6tables, ns.ip6tables_file, "ip6tables"),
        tc: tc_entries(cx, &here, ns.tc),
        xdp: xdp_entries(cx, &here, ns.xdp),
        listen: listeners(cx, ns.listen),
        run: commands(cx, ns.run),
    }
}

/// `sysctls:`, in file order; only keys each namespace has its own copy of.
fn sysctls(cx: &mut Ctx, raw: HashMap<raw::S, raw::S>) -> Vec<(String, String)> {
    let mut sysctls = vec![];
    let mut raw_sysctls: Vec<_> = raw.into_iter().collect();
    raw_sysctls.sort_by_key(|(k, _)| span_pos(k));
    for (k, v) in raw_sysctls {
        // Only per-namespace sysctls: anything else would change the host.
        let ok_chars = k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !k.starts_with("net.") || !ok_chars || k.contains("..") {
            cx.err(
                &k,
                format!("sysctl `{}` is not a per-namespace `net.*` key", k.as_str()),
                Some(
                    "only net.* sysctls are allowed: they are private to the scenario's namespace"
                        .into(),
                ),
            );
            continue;
        }
        if let Some(why) = host_wide_sysctl(&k) {
            cx.err(
                &k,
                format!("sysctl `{}` is {why}", k.as_str()),
                Some("a scenario may set only sysctls each namespace has its own copy of (net.ipv4.*, net.ipv6.*, net.netfilter.*, net.core.somaxconn ...)".into()),
            );
            continue;
        }
        if v.len() > 4096 {
            cx.err(&v, "a sysctl value of more than 4096 bytes", None);
            continue;
        }
        sysctls.push((k.to_string(), v.to_string()));
    }
    sysctls
}

/// `listen:` sockets the namespace holds open.
fn listeners(cx: &mut Ctx, raw: Vec<raw::Listen>) -> Vec<Listener> {
    let mut listen = vec![];
    for l in raw {
        let proto = match l.proto.as_str() {
            "tcp" => SockProto::Tcp,
            "udp" => SockProto::Udp,
            other => {
                cx.err(
                    &l.proto,
                    format!("cannot listen on `{other}`"),
                    Some("tcp or udp".into()),
                );
                continue;
            }
        };
        listen.push(Listener {
            proto,
            port: *l.port,
            addr: l.addr.as_ref().and_then(|a| cx.ip(a, "listen address")),
        });
    }
    listen
}

/// `run:` shell commands, refused under `--no-commands`.
fn commands(cx: &mut Ctx, raw: Vec<raw::S>) -> Vec<String> {
    raw.into_iter()
        .inspect(|r| {
            if cx.policy.no_commands {
                cx.err(
                    r,
                    "this scenario runs a shell command as root on the host (`run:`); refused by --no-commands",
                    Some("review the scenario, then run it without --no-commands".into()),
                );
            }
        })
        .map(|r| r.to_string())
        .collect()
}
