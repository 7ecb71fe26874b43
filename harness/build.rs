//! Builds the eBPF tracer and the tc fixture programs for `bpfel-unknown-none` with the nightly toolchain
//! and bpf-linker, so the `pktfate` binary can embed the object.
fn main() {
    // The shared ABI crate is a path dependency of the tracer: rebuild on change.
    println!("cargo:rerun-if-changed=../ebpf/pktfate-common/src");
    let tracer = aya_build::Package {
        name: "pktfate-tracer",
        root_dir: "../ebpf/pktfate-tracer",
        ..Default::default()
    };
    let tc_programs = aya_build::Package {
        name: "pktfate-tc-programs",
        root_dir: "../fixtures/tc-programs",
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([tracer, tc_programs], aya_build::Toolchain::Nightly) {
        panic!(
            "building the eBPF tracer failed: {e:#}\n\
             hint: run `bash ci/setup.sh` (nightly + rust-src + bpf-linker)"
        );
    }
}
