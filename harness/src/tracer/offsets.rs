//! Kernel struct field offsets for the tracer, from BTF.

use crate::abi::{NO_OFFSET, Offsets};

use crate::tracer::btf::{Btf, BtfError};

/// Resolves every offset the tracer reads through `bpf_probe_read_kernel`.
pub fn resolve(btf: &Btf) -> Result<Offsets, BtfError> {
    let optional =
        |strukt: &str, field: &str| btf.member_offset(strukt, field).unwrap_or(NO_OFFSET);
    let ip_summed = btf.bitfield_byte("sk_buff", "ip_summed");
    // Gone in 6.1: there a tag is present exactly when vlan_proto is set.
    let vlan_present = btf.bitfield_byte("sk_buff", "vlan_present");
    Ok(Offsets {
        skb_len: btf.member_offset("sk_buff", "len")?,
        skb_mark: btf.member_offset("sk_buff", "mark")?,
        skb_dev: btf.member_offset("sk_buff", "dev")?,
        skb_sk: btf.member_offset("sk_buff", "sk")?,
        skb_head: btf.member_offset("sk_buff", "head")?,
        skb_network_header: btf.member_offset("sk_buff", "network_header")?,
        skb_protocol: btf.member_offset("sk_buff", "protocol")?,
        dev_ifindex: btf.member_offset("net_device", "ifindex")?,
        // possible_net_t is `{ struct net *net; }` (or empty without netns).
        dev_nd_net: btf.member_offset("net_device", "nd_net.net")?,
        net_ns_inum: btf.member_offset("net", "ns.inum")?,
        sock_net: btf.member_offset("sock", "__sk_common.skc_net.net")?,
        flowi4_saddr: btf.member_offset("flowi4", "saddr")?,
        flowi4_daddr: btf.member_offset("flowi4", "daddr")?,
        nhc_dev: btf.member_offset("fib_nh_common", "nhc_dev")?,
        sock_num: btf.member_offset("sock", "__sk_common.skc_num")?,
        sock_dport: btf.member_offset("sock", "__sk_common.skc_dport")?,
        flowi4_iif: btf.member_offset("flowi4", "__fl_common.flowic_iif")?,
        skb_iif: btf.member_offset("sk_buff", "skb_iif")?,
        // Route details: a kernel without one loses that detail only.
        nhc_gw_family: optional("fib_nh_common", "nhc_gw_family"),
        nhc_gw: optional("fib_nh_common", "nhc_gw"),
        fib_nh_parent: optional("fib_nh", "nh_parent"),
        fib_info_type: optional("fib_info", "fib_type"),
        fib6_res_nh: optional("fib6_result", "nh"),
        fib6_res_type: optional("fib6_result", "fib6_type"),
        fib6_res_f6i: optional("fib6_result", "f6i"),
        // A socket's own route lookup, before its skb exists: the flow's
        // ports and protocol, the sending task's namespace.
        flowi4_proto: optional("flowi4", "__fl_common.flowic_proto"),
        flowi4_mark: optional("flowi4", "__fl_common.flowic_mark"),
        flowi4_sport: optional("flowi4", "uli.ports.sport"),
        flowi4_dport: optional("flowi4", "uli.ports.dport"),
        task_nsproxy: optional("task_struct", "nsproxy"),
        nsproxy_net_ns: optional("nsproxy", "net_ns"),
        inet_sport: optional("inet_sock", "inet_sport"),
        fib6_info_metric: optional("fib6_info", "fib6_metric"),
        fib6_table_id: optional("fib6_table", "tb6_id"),
        flowi6_saddr: optional("flowi6", "saddr"),
        flowi6_daddr: optional("flowi6", "daddr"),
        // An XDP program's frame and device, for its return code.
        xdp_buff_data: optional("xdp_buff", "data"),
        xdp_buff_rxq: optional("xdp_buff", "rxq"),
        xdp_buff_hard_start: optional("xdp_buff", "data_hard_start"),
        xdp_rxq_dev: optional("xdp_rxq_info", "dev"),
        // The skb's own state, for `seen`.
        skb_priority: optional("sk_buff", "priority"),
        skb_vlan_tci: optional("sk_buff", "vlan_tci"),
        skb_vlan_proto: optional("sk_buff", "vlan_proto"),
        skb_ip_summed: ip_summed.map_or(NO_OFFSET, |(b, _)| b),
        skb_ip_summed_shift: ip_summed.map_or(0, |(_, s)| s),
        skb_vlan_present: vlan_present.map_or(NO_OFFSET, |(b, _)| b),
        skb_vlan_present_shift: vlan_present.map_or(0, |(_, s)| s),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolve_on_the_running_kernel() {
        // Every kernel pktfate supports has BTF: fail saying why, never pass.
        let btf = crate::tracer::btf::Btf::from_sys_fs()
            .expect("needs kernel BTF (/sys/kernel/btf/vmlinux)");
        let o = super::resolve(&btf).unwrap();
        // Fields of one struct cannot share an offset.
        let skb = [
            o.skb_len,
            o.skb_mark,
            o.skb_dev,
            o.skb_sk,
            o.skb_head,
            o.skb_network_header,
            o.skb_protocol,
        ];
        let mut sorted = skb.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), skb.len());
        assert_ne!(o.flowi4_saddr, o.flowi4_daddr);
        // Every kernel pktfate supports has the route details (5.4+).
        for off in [
            o.nhc_gw_family,
            o.nhc_gw,
            o.fib_nh_parent,
            o.fib_info_type,
            o.fib6_res_nh,
            o.fib6_res_type,
            o.fib6_res_f6i,
            o.flowi4_proto,
            o.flowi4_mark,
            o.flowi4_sport,
            o.flowi4_dport,
            o.task_nsproxy,
            o.nsproxy_net_ns,
            o.inet_sport,
            o.fib6_info_metric,
            o.fib6_table_id,
            o.flowi6_saddr,
            o.flowi6_daddr,
            o.xdp_buff_data,
            o.xdp_buff_rxq,
            o.xdp_buff_hard_start,
            o.xdp_rxq_dev,
            o.skb_priority,
            o.skb_vlan_tci,
            o.skb_vlan_proto,
            o.skb_ip_summed,
        ] {
            assert_ne!(off, crate::abi::NO_OFFSET);
        }
        assert_ne!(o.flowi6_saddr, o.flowi6_daddr);
        // ip_summed is two bits inside one byte, away from the fields
        // around it.
        assert!(o.skb_ip_summed_shift <= 6);
        assert!(![o.skb_len, o.skb_mark, o.skb_priority].contains(&o.skb_ip_summed));
    }
}
