//! `conntrack:` under `expect`: the entries a namespace must hold.

use super::ctx::*;

/// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or a protocol number.
pub(super) fn proto(cx: &mut Ctx, p: &raw::S) -> Option<u8> {
    let n = match p.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        "sctp" => Some(132),
        other => other.parse().ok(),
    };
    if n.is_none() {
        cx.err(
            p,
            format!("unknown protocol `{}`", p.as_str()),
            Some("write tcp, udp, icmp, icmpv6, sctp or a protocol number".into()),
        );
    }
    n
}

fn tuple(cx: &mut Ctx, t: &raw::CtTuple) -> CtTupleWant {
    CtTupleWant {
        src: t.src.as_ref().and_then(|a| cx.ip(a, "source")),
        dst: t.dst.as_ref().and_then(|a| cx.ip(a, "destination")),
        sport: t.sport.as_ref().map(|p| **p),
        dport: t.dport.as_ref().map(|p| **p),
        proto: t.proto.as_ref().and_then(|p| proto(cx, p)),
    }
}

/// Validates the `conntrack:` entries; `namespaces`: the scenario's.
pub(super) fn conntrack(
    cx: &mut Ctx,
    list: Option<&[Spanned<raw::CtExpect>]>,
    namespaces: &[String],
) -> Vec<CtWant> {
    let mut out = vec![];
    for c in list.into_iter().flatten() {
        if !namespaces.iter().any(|n| n == c.ns.as_str()) {
            let near = did_you_mean(&c.ns, namespaces.iter().map(String::as_str));
            cx.err(
                &c.ns,
                format!("no namespace `{}`", c.ns.as_str()),
                near.map(|n| format!("did you mean `{n}`?")),
            );
            continue;
        }
        let state = c.state.as_ref().and_then(|s| {
            let up = s.to_ascii_uppercase();
            if CT_TCP_STATES.contains(&up.as_str()) {
                Some(up)
            } else {
                let near = did_you_mean(&up, CT_TCP_STATES);
                cx.err(
                    s,
                    format!("`{}` is not a conntrack TCP state", s.as_str()),
                    Some(
                        near.map_or(format!("states: {}", CT_TCP_STATES.join(", ")), |n| {
                            format!("did you mean `{n}`?")
                        }),
                    ),
                );
                None
            }
        });
        let mut status = vec![];
        for s in c.status.iter().flatten() {
            let up = s.to_ascii_uppercase();
            if CT_STATUS_BITS.contains(&up.as_str()) {
                status.push(up);
            } else {
                let near = did_you_mean(&up, CT_STATUS_BITS);
                cx.err(
                    s,
                    format!("`{}` is not a conntrack status bit", s.as_str()),
                    Some(
                        near.map_or(format!("bits: {}", CT_STATUS_BITS.join(", ")), |n| {
                            format!("did you mean `{n}`?")
                        }),
                    ),
                );
            }
        }
        let want = CtWant {
            ns: c.ns.to_string(),
            orig: c.orig.as_ref().map(|t| tuple(cx, t)),
            reply: c.reply.as_ref().map(|t| tuple(cx, t)),
            state,
            status,
            mark: c.mark.as_ref().and_then(|m| cx.mark(m)),
            zone: c.zone.as_ref().map(|z| **z),
            at: cx.loc(c),
        };
        if want.orig.is_none() && want.reply.is_none() {
            cx.err(
                c,
                "a conntrack entry needs `orig` or `reply` to be found by",
                Some("e.g. `orig: { src: 198.51.100.1, dport: 8080, proto: tcp }`".into()),
            );
            continue;
        }
        out.push(want);
    }
    out
}
