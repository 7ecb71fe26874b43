use super::*;

// Long on purpose: a whole BTF blob, type by type, as the tests need it.
/// Builds a BTF blob: `struct outer { int a; union { int b; long c; }; struct inner in; }`
/// with `struct inner { char pad[3]; int x; }` and `enum color { RED = 1, BLUE = 7 }`.
fn synthetic() -> Vec<u8> {
    let mut strings =
        b"\0int\0outer\0a\0b\0c\0in\0inner\0pad\0x\0color\0RED\0BLUE\0long\0btf_trace_demo\0demo_fn\0"
            .to_vec();
    let s = |name: &str, strings: &[u8]| -> u32 {
        let needle = format!("\0{name}\0");
        strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap() as u32
            + 1
    };
    let mut t: Vec<u8> = vec![];
    let push = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
    // 1: int (size 4)
    push(&mut t, s("int", &strings));
    push(&mut t, KIND_INT << 24);
    push(&mut t, 4);
    push(&mut t, 32);
    // 2: long (size 8)
    push(&mut t, s("long", &strings));
    push(&mut t, KIND_INT << 24);
    push(&mut t, 8);
    push(&mut t, 64);
    // 3: anonymous union { int b; long c; }
    push(&mut t, 0);
    push(&mut t, (KIND_UNION << 24) | 2);
    push(&mut t, 8);
    for (n, ty) in [("b", 1), ("c", 2)] {
        push(&mut t, s(n, &strings));
        push(&mut t, ty);
        push(&mut t, 0);
    }
    // 4: array char[3] (elem type int for simplicity)
    push(&mut t, 0);
    push(&mut t, KIND_ARRAY << 24);
    push(&mut t, 0);
    push(&mut t, 1);
    push(&mut t, 1);
    push(&mut t, 3);
    // 5: struct inner { pad[3] @0; int x @32 bits }
    push(&mut t, s("inner", &strings));
    push(&mut t, (KIND_STRUCT << 24) | 2);
    push(&mut t, 8);
    push(&mut t, s("pad", &strings));
    push(&mut t, 4);
    push(&mut t, 0);
    push(&mut t, s("x", &strings));
    push(&mut t, 1);
    push(&mut t, 32);
    // 6: struct outer { int a @0; union @64; struct inner in @128 }
    push(&mut t, s("outer", &strings));
    push(&mut t, (KIND_STRUCT << 24) | 3);
    push(&mut t, 24);
    push(&mut t, s("a", &strings));
    push(&mut t, 1);
    push(&mut t, 0);
    push(&mut t, 0);
    push(&mut t, 3);
    push(&mut t, 64);
    push(&mut t, s("in", &strings));
    push(&mut t, 5);
    push(&mut t, 128);
    // 7: enum color
    push(&mut t, s("color", &strings));
    push(&mut t, (KIND_ENUM << 24) | 2);
    push(&mut t, 4);
    push(&mut t, s("RED", &strings));
    push(&mut t, 1);
    push(&mut t, s("BLUE", &strings));
    push(&mut t, 7);
    // 8: pointer to outer
    push(&mut t, 0);
    push(&mut t, KIND_PTR << 24);
    push(&mut t, 6);
    // 9: void (void *ctx, struct outer *o, int n): a tracepoint's proto
    push(&mut t, 0);
    push(&mut t, (KIND_FUNC_PROTO << 24) | 3);
    push(&mut t, 0);
    for ty in [8, 8, 1] {
        push(&mut t, 0);
        push(&mut t, ty);
    }
    // 10: pointer to it; 11: typedef btf_trace_demo
    push(&mut t, 0);
    push(&mut t, KIND_PTR << 24);
    push(&mut t, 9);
    push(&mut t, s("btf_trace_demo", &strings));
    push(&mut t, KIND_TYPEDEF << 24);
    push(&mut t, 10);
    // 12: function demo_fn of prototype 9
    push(&mut t, s("demo_fn", &strings));
    push(&mut t, KIND_FUNC << 24);
    push(&mut t, 9);

    let mut out = vec![0x9f, 0xeb, 1, 0];
    out.extend_from_slice(&24u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(&t);
    out.append(&mut strings);
    out
}

#[test]
fn offsets_of_direct_anonymous_and_nested_members() {
    let btf = Btf::parse(&synthetic()).unwrap();
    assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
    assert_eq!(btf.member_offset("outer", "b").unwrap(), 8);
    assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
    assert_eq!(btf.member_offset("outer", "in.x").unwrap(), 16 + 4);
    assert!(btf.is_ptr(8));
}

#[test]
fn missing_struct_and_field_are_named_in_the_error() {
    let btf = Btf::parse(&synthetic()).unwrap();
    let e = btf.member_offset("nope", "a").unwrap_err();
    assert_eq!(e.to_string(), "kernel BTF has no struct `nope`");
    let e = btf.member_offset("outer", "in.y").unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel BTF struct `outer` has no field `in.y`"
    );
}

#[test]
fn enum_values_are_read() {
    let btf = Btf::parse(&synthetic()).unwrap();
    assert_eq!(
        btf.enum_values("color").unwrap(),
        vec![("RED".to_string(), 1), ("BLUE".to_string(), 7)]
    );
    assert!(btf.enum_values("shade").is_err());
}

#[test]
fn a_function_is_found_without_a_parse() {
    let blob = synthetic();
    assert_eq!(super::function_id_in(&blob, "demo_fn").unwrap(), Some(12));
    assert_eq!(super::function_id_in(&blob, "outer").unwrap(), None);
    assert!(super::function_id_in(b"not btf at all, clearly not", "x").is_err());
    // Truncated: an error, not a short answer.
    assert!(super::function_id_in(&blob[..blob.len() - 20], "absent").is_err());
}

/// The running kernel's whole BTF read both ways.
#[test]
fn the_kernels_functions_are_found_alike_with_and_without_a_parse() {
    let blob = super::kernel_bytes().expect("needs kernel BTF (/sys/kernel/btf/vmlinux)");
    let btf = Btf::parse(&blob).unwrap();
    for f in [
        "ip_rcv",
        "kfree_skb_reason",
        "sk_skb_reason_drop",
        "no_such_function_here",
    ] {
        assert_eq!(
            super::function_id_in(&blob, f).unwrap(),
            btf.function_id(f),
            "{f}"
        );
    }
}

#[test]
fn tracepoint_arity_excludes_the_context() {
    let btf = Btf::parse(&synthetic()).unwrap();
    assert_eq!(btf.tracepoint_arity("demo"), Some(2));
    assert_eq!(btf.tracepoint_arity("absent"), None);
}

#[test]
fn functions_are_found_by_the_struct_they_take() {
    let btf = Btf::parse(&synthetic()).unwrap();
    // demo_fn(struct outer *, struct outer *, int): the first is 0.
    assert_eq!(
        btf.functions_taking("outer", 5),
        vec![("demo_fn".to_string(), 0)]
    );
    assert!(
        btf.functions_taking("outer", 0).is_empty(),
        "beyond max_arg"
    );
    assert!(btf.functions_taking("inner", 5).is_empty());
    assert_eq!(btf.function_id("demo_fn"), Some(12));
    assert_eq!(btf.function_id("outer"), None, "a struct is no function");
    // Names compare whole: a prefix, or the name with more after it, is another name.
    assert_eq!(btf.function_id("demo_f"), None);
    assert_eq!(btf.function_id("demo_fn_x"), None);
}

#[test]
fn rejects_garbage() {
    assert!(Btf::parse(b"not btf at all, clearly not").is_err());
}

/// Against the running kernel, when it has BTF: the fields the tracer
/// needs resolve, and agree with facts that hold on every kernel.
#[test]
fn running_kernel_btf_has_what_the_tracer_needs() {
    // Every kernel pktfate supports has BTF: fail saying why, never pass.
    let btf = Btf::from_sys_fs().expect("needs kernel BTF (/sys/kernel/btf/vmlinux)");
    // `head` and `data` are adjacent pointers at the end of sk_buff.
    let head = btf.member_offset("sk_buff", "head").unwrap();
    let data = btf.member_offset("sk_buff", "data").unwrap();
    assert_eq!(data, head + 8);
    btf.member_offset("sock", "__sk_common.skc_net").unwrap();
    btf.member_offset("net", "ns.inum").unwrap();
    let reasons = btf.enum_values("skb_drop_reason").unwrap();
    assert!(
        reasons
            .iter()
            .any(|(n, v)| n == "SKB_NOT_DROPPED_YET" && *v == 0)
    );
    assert!(
        reasons
            .iter()
            .any(|(n, _)| n == "SKB_DROP_REASON_NO_SOCKET")
    );
    assert!(btf.has_tracepoint("kfree_skb"));
    assert!(!btf.has_tracepoint("no_such_tracepoint_anywhere"));
    // Prototypes unchanged since 4.x: (skb) and (skb, rc, dev, skb_len).
    assert_eq!(btf.tracepoint_arity("netif_receive_skb"), Some(1));
    assert_eq!(btf.tracepoint_arity("net_dev_xmit"), Some(4));
    // kfree_skb has (skb, location) and, from 5.17, a reason.
    assert!(btf.tracepoint_arity("kfree_skb").unwrap() >= 3);
    // ip_rcv(skb, dev, pt, orig_dev) and ip_rcv_finish(net, sk, skb).
    let f = btf.functions_taking("sk_buff", 5);
    assert!(f.contains(&("ip_rcv".to_string(), 0)));
    assert!(f.contains(&("ip_rcv_finish".to_string(), 2)));
}

/// A module's split BTF: its ids continue after the kernel's 12 types,
/// its names after the kernel's strings, and its function's parameter
/// points at the kernel's `struct outer` (id 8, a pointer to it).
#[test]
fn module_functions_are_found_through_the_kernels_types() {
    let base_blob = synthetic();
    let base = Btf::parse(&base_blob).unwrap();
    let base_strings = base.strings.len() as u32;
    let strings = b"\0mod_fn\0".to_vec();
    let mut t: Vec<u8> = vec![];
    let push = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
    // 13: int (int n, struct outer *o): the skb-like argument is second
    push(&mut t, 0);
    push(&mut t, (KIND_FUNC_PROTO << 24) | 2);
    push(&mut t, 1);
    for ty in [1, 8] {
        push(&mut t, 0);
        push(&mut t, ty);
    }
    // 14: mod_fn, of prototype 13, named in the module's strings
    push(&mut t, base_strings + 1);
    push(&mut t, KIND_FUNC << 24);
    push(&mut t, 13);
    let mut blob = vec![0x9f, 0xeb, 1, 0];
    for v in [
        24u32,
        0,
        t.len() as u32,
        t.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&t);
    blob.extend_from_slice(&strings);
    assert_eq!(
        base.module_functions_taking(&blob, "outer", 5).unwrap(),
        vec![("mod_fn".to_string(), 1)]
    );
    assert!(
        base.module_functions_taking(&blob, "outer", 1)
            .unwrap()
            .is_empty()
    );
    assert_eq!(base.module_function_id(&blob, "mod_fn").unwrap(), Some(14));
    assert_eq!(base.module_function_id(&blob, "demo_fn").unwrap(), None);
    // The kernel's own function is not the module's.
    assert_eq!(
        base.functions_taking("outer", 5),
        vec![("demo_fn".to_string(), 0)]
    );
}
