//! Provides the eBPF objects the `pktfate` binary embeds: the tracer and the
//! tc fixture programs.
//!
//! Users build with stable Rust only: the compiled objects ship in
//! `ebpf-objects/` (in the crate, so `cargo install` works). Inside
//! pktfate's own tree, with the nightly toolchain and bpf-linker present
//! (`bash ci/setup.sh`), they are rebuilt from source instead.
//!
//! `PKTFATE_EBPF=source` forces the source build, `=prebuilt` the shipped
//! objects. `PKTFATE_EBPF_VERIFY=1` (set by `ci/test`) fails the build when
//! the source build differs by one byte from the shipped objects, so they
//! cannot go stale: `bash ci/refresh-ebpf` refreshes them.
use std::path::{Path, PathBuf};

const OBJECTS: [&str; 2] = ["pktfate-tracer", "pktfate-tc-programs"];
const PREBUILT: &str = "ebpf-objects";

fn main() {
    println!("cargo:rerun-if-env-changed=PKTFATE_EBPF");
    println!("cargo:rerun-if-env-changed=PKTFATE_EBPF_VERIFY");
    println!("cargo:rerun-if-changed={PREBUILT}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let in_tree = Path::new("../ebpf/pktfate-tracer/Cargo.toml").exists();
    let forced = std::env::var("PKTFATE_EBPF");
    let from_source = match forced.as_deref() {
        Ok("source") => true,
        Ok("prebuilt") => false,
        _ => in_tree && toolchain_present(),
    };
    if !from_source {
        for name in OBJECTS {
            let src = Path::new(PREBUILT).join(name);
            if let Err(e) = std::fs::copy(&src, out.join(name)) {
                panic!(
                    "the shipped eBPF object {} is missing: {e}\n\
                     hint: inside pktfate's tree, `bash ci/refresh-ebpf` builds it",
                    src.display()
                );
            }
        }
        // Said only when the toolchain is missing, not when asked for.
        if in_tree && forced.as_deref() != Ok("prebuilt") {
            println!(
                "cargo:warning=using the shipped eBPF objects (no nightly + bpf-linker here; bash ci/setup.sh installs them)"
            );
        }
        return;
    }
    build_from_source();
    if std::env::var("PKTFATE_EBPF_VERIFY").as_deref() == Ok("1") {
        for name in OBJECTS {
            let built = std::fs::read(out.join(name)).expect("the object just built");
            let shipped = std::fs::read(Path::new(PREBUILT).join(name)).unwrap_or_default();
            if built != shipped {
                panic!(
                    "harness/{PREBUILT}/{name} differs from the object built from source \
                     ({} vs {} bytes)\nhint: run `bash ci/refresh-ebpf` and commit the result",
                    shipped.len(),
                    built.len()
                );
            }
        }
    }
}

/// The nightly toolchain with `rust-src` and bpf-linker, as aya-build needs.
fn toolchain_present() -> bool {
    let ok = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("bpf-linker", &["--version"]) && ok("rustup", &["run", "nightly", "rustc", "--version"])
}

fn build_from_source() {
    // The ABI is compiled into the tracer from the library's own file.
    println!("cargo:rerun-if-changed=src/abi.rs");
    // Paths in the objects' debug info (BTF line info) are made relative,
    // so the bytes do not depend on where the tree or the registry lives.
    // SAFETY: no other thread runs yet (the build threads start below); the
    // child cargo inherits it.
    unsafe {
        std::env::set_var("CARGO_UNSTABLE_TRIM_PATHS", "true");
        std::env::set_var("CARGO_PROFILE_RELEASE_TRIM_PATHS", "all");
    }
    // aya-build builds the packages one after the other, each compiling
    // `core` for BPF in its own target directory; two threads overlap the
    // builds' serial parts (53 s -> 45 s on two cores).
    let builds: Vec<_> = [
        ("pktfate-tracer", "../ebpf/pktfate-tracer"),
        ("pktfate-tc-programs", "../fixtures/tc-programs"),
    ]
    .into_iter()
    .map(|(name, root_dir)| {
        let package = aya_build::Package {
            name,
            root_dir,
            ..Default::default()
        };
        (
            name,
            std::thread::spawn(move || {
                aya_build::build_ebpf([package], aya_build::Toolchain::Nightly)
            }),
        )
    })
    .collect();
    // Both joined before either failure is reported: a panic here while
    // the other build runs would leave its cargo running after cargo
    // reports this script's failure.
    let failures: Vec<String> = builds
        .into_iter()
        .filter_map(|(name, build)| {
            match build.join().expect("the eBPF build thread does not panic") {
                Ok(()) => None,
                Err(e) => Some(format!("building the eBPF object {name} failed: {e:#}")),
            }
        })
        .collect();
    if !failures.is_empty() {
        panic!(
            "{}\nhint: a compiler error above is the eBPF source's; a missing nightly, rust-src or \
             bpf-linker is installed by `bash ci/setup.sh`; PKTFATE_EBPF=prebuilt uses the shipped objects",
            failures.join("\n")
        );
    }
}
