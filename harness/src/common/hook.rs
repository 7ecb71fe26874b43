//! Where an event was observed, as a type: the ABI's hook ids
//! ([`crate::abi::hook`]) on the host side, plus the two places that are
//! not one of the tracer's hooks (a probed kernel function, named; the
//! harness's own read of a packet). Stages match on it; only reports and
//! users' path steps (`kfree_skb@ns/dev`) go through its name.

use std::fmt;

use crate::abi::{HOOK_NAMES, hook};

/// Where an event was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `net:netif_receive_skb`.
    NetifReceiveSkb,
    /// `net:netif_rx`.
    NetifRx,
    /// `net:net_dev_queue`.
    NetDevQueue,
    /// `net:net_dev_start_xmit`.
    NetDevStartXmit,
    /// `net:net_dev_xmit`.
    NetDevXmit,
    /// `skb:kfree_skb`: a drop.
    KfreeSkb,
    /// `skb:consume_skb`: freed after use.
    ConsumeSkb,
    /// `skb:skb_copy_datagram_iovec`: a socket reader copied it out.
    SkbCopyDatagramIovec,
    /// `icmp:icmp_send`: the kernel answers it with an ICMP error.
    IcmpSend,
    /// `fib:fib_table_lookup`: an IPv4 route lookup.
    FibTableLookup,
    /// `tcp:tcp_send_reset`: the kernel answers it with a RST.
    TcpSendReset,
    /// `net:netif_receive_skb_entry`.
    NetifReceiveSkbEntry,
    /// `net:napi_gro_receive_entry`.
    NapiGroReceiveEntry,
    /// `sock:inet_sock_set_state`: a socket changed TCP state because of it.
    InetSockSetState,
    /// The tracer's tc observer, inside `tcf_classify`.
    TcfClassify,
    /// `fib6:fib6_table_lookup`: an IPv6 route lookup.
    Fib6TableLookup,
    /// A probed kernel function (the function-level backend), by name.
    Function(&'static str),
    /// A scenario's own tc or XDP program returned (an fexit program on
    /// it); what it returned is the event's [`crate::tracer::ProgramRun`].
    ProgReturn,
    /// The function-level probes as one attachment (in the tracer's list
    /// of what is attached; events name their function).
    Functions,
    /// Not the kernel's: the harness read the packet (a tun/tap or a
    /// socket of the scenario).
    SocketRead,
}

/// [`Hook::SocketRead`]'s name in the timeline.
pub const SOCKET_READ: &str = "socket_read";

impl Hook {
    /// The hooks of the ABI that are tracepoints or the tc observer, by
    /// id (functions and program returns come after them).
    const BY_ID: [Hook; hook::COUNT - 2] = [
        Hook::NetifReceiveSkb,
        Hook::NetifRx,
        Hook::NetDevQueue,
        Hook::NetDevStartXmit,
        Hook::NetDevXmit,
        Hook::KfreeSkb,
        Hook::ConsumeSkb,
        Hook::SkbCopyDatagramIovec,
        Hook::IcmpSend,
        Hook::FibTableLookup,
        Hook::TcpSendReset,
        Hook::NetifReceiveSkbEntry,
        Hook::NapiGroReceiveEntry,
        Hook::InetSockSetState,
        Hook::TcfClassify,
        Hook::Fib6TableLookup,
    ];

    /// The kernel's tracepoints the tracer attaches to, in ABI order.
    pub fn tracepoints() -> impl Iterator<Item = Hook> {
        Self::BY_ID.into_iter().filter(|h| *h != Hook::TcfClassify)
    }

    /// The hook of an ABI id ([`crate::abi::hook`]); `function` names a
    /// [`hook::FUNCTION`] event's function.
    pub fn from_abi(id: u32, function: impl FnOnce() -> &'static str) -> Option<Hook> {
        if id == hook::FUNCTION {
            return Some(Hook::Function(function()));
        }
        if id == hook::PROG_RETURN {
            return Some(Hook::ProgReturn);
        }
        Self::BY_ID.get(id as usize).copied()
    }

    /// Its ABI id, for the tracer's hooks.
    pub fn id(self) -> Option<u32> {
        match self {
            Hook::Function(_) | Hook::Functions => Some(hook::FUNCTION),
            Hook::ProgReturn => Some(hook::PROG_RETURN),
            Hook::SocketRead => None,
            h => Self::BY_ID
                .iter()
                .position(|b| *b == h)
                .and_then(|i| u32::try_from(i).ok()),
        }
    }

    /// As the timeline, reports and path steps write it.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Function(f) => f,
            Hook::Functions => HOOK_NAMES[hook::FUNCTION as usize],
            Hook::SocketRead => SOCKET_READ,
            h => h.id().map_or("?", |i| HOOK_NAMES[i as usize]),
        }
    }

    /// A route lookup (IPv4 or IPv6).
    pub fn is_route_lookup(self) -> bool {
        matches!(self, Hook::FibTableLookup | Hook::Fib6TableLookup)
    }

    /// `kfree_skb` or `consume_skb`: the skb's life ends here.
    pub fn is_terminal(self) -> bool {
        matches!(self, Hook::KfreeSkb | Hook::ConsumeSkb)
    }

    /// A device received it (`netif_receive_skb`, `netif_rx`).
    pub fn is_receive(self) -> bool {
        matches!(self, Hook::NetifReceiveSkb | Hook::NetifRx)
    }

    /// A device transmitted it (`net_dev_queue`, `_start_xmit`, `_xmit`).
    pub fn is_transmit(self) -> bool {
        matches!(
            self,
            Hook::NetDevQueue | Hook::NetDevStartXmit | Hook::NetDevXmit
        )
    }

    /// A socket took it (a reader copied it out, the harness read it, or
    /// a TCP socket changed state because of it).
    pub fn is_socket(self) -> bool {
        matches!(
            self,
            Hook::SkbCopyDatagramIovec | Hook::InetSockSetState | Hook::SocketRead
        )
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abi_hook_has_its_name_and_id_back() {
        for id in 0..u32::try_from(hook::COUNT).unwrap() {
            let h = Hook::from_abi(id, || "ip_rcv").unwrap();
            assert_eq!(h.id(), Some(id));
            let want = if id == hook::FUNCTION {
                "ip_rcv"
            } else {
                HOOK_NAMES[id as usize]
            };
            assert_eq!(h.name(), want);
        }
        assert_eq!(Hook::from_abi(99, || "x"), None);
        // Not tracepoints: the tc observer, functions, program returns.
        assert_eq!(Hook::tracepoints().count(), hook::COUNT - 3);
        assert!(Hook::tracepoints().all(|h| h != Hook::ProgReturn));
        assert_eq!(Hook::SocketRead.name(), "socket_read");
        assert_eq!(Hook::KfreeSkb.id(), Some(hook::KFREE_SKB));
        assert_eq!(
            serde_json::to_string(&Hook::Function("veth_xmit")).unwrap(),
            "\"veth_xmit\""
        );
    }
}
