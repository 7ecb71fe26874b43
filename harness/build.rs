//! Builds the eBPF tracer for `bpfel-unknown-none` with the nightly toolchain
//! and bpf-linker, so the `pktfate` binary can embed the object.
fn main() {
    // The shared ABI crate is a path dependency of the tracer: rebuild on change.
    println!("cargo:rerun-if-changed=../ebpf/pktfate-common/src");
    let tracer = aya_build::Package {
        name: "pktfate-tracer",
        root_dir: "../ebpf/pktfate-tracer",
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([tracer], aya_build::Toolchain::Nightly) {
        panic!(
            "building the eBPF tracer failed: {e:#}\n\
             hint: run `bash ci/setup.sh` (nightly + rust-src + bpf-linker)"
        );
    }
}
