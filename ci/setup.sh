#!/usr/bin/env bash
# Idempotent set-up for building and testing pktfate on a fresh machine of
# this kind (Linux, root, rustup with stable + nightly). Fast when everything
# is already present: each step checks before it acts.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

NIGHTLY="${PKTFATE_NIGHTLY:-nightly}"
# bpf-linker's rpath points into this prefix, so it must stay where it is.
LLVM_PREFIX_DIR="${PKTFATE_LLVM_PREFIX:-/opt/pktfate-llvm}"
BPF_LINKER_VERSION="0.13.0"

# 1. Debian packages the harness shells out to (ip, nft, tc, iptables-restore,
# CNI plugins) or tests use. Downloads and unpacking, mostly waiting: on a
# fresh machine they run while step 3 compiles bpf-linker.
system_packages() {
  need_pkgs=()
  command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
  command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
  command -v tshark >/dev/null 2>&1 || need_pkgs+=(tshark)
  # Scenarios may give iptables-save rulesets (iptables-restore, nft backend)
  # and set namespaces up with the reference CNI plugins (bridge, portmap ...).
  command -v iptables-restore >/dev/null 2>&1 || need_pkgs+=(iptables)
  [ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
  # The reliability tests check with strace that no /tmp file is created unsafely.
  command -v strace >/dev/null 2>&1 || need_pkgs+=(strace)
  # ci/bench compares pktfate with the by-hand way, which uses bpftrace.
  command -v bpftrace >/dev/null 2>&1 || need_pkgs+=(bpftrace)
  # 1b. The kernel matrix (`pktfate matrix`, run by ci/test): qemu, an
  # initramfs busybox and kmod for virtme-ng, and virtme-ng itself.
  command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
  dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
  command -v depmod >/dev/null 2>&1 || need_pkgs+=(kmod)
  # 1c. ci/test opens the HTML reports in a real headless browser.
  command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  fi
  # The version the matrix is tested with: the guest's command line, its
  # module lookup from the vmlinuz's path and its exit status are
  # virtme-ng's, and every machine must boot guests as this one does (an
  # older or newer vng already installed is replaced).
  if [ "$(vng --version 2>/dev/null)" != "virtme-ng 1.42" ]; then
    log "installing virtme-ng 1.42"
    python3 -m pip install -q 'virtme-ng==1.42'
    # Under pyenv the command appears only once its shims are rebuilt.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
    [ "$(vng --version 2>/dev/null)" = "virtme-ng 1.42" ] || {
      log "virtme-ng 1.42 installed, but the vng on PATH is $(command -v vng || echo missing): put pip's bin directory first"
      exit 1
    }
  fi
}
system_packages &
packages=$!
# Should a later step fail, the installation does not go on by itself:
# neither its subshell nor the apt-get or pip it is running.
trap 'pkill -P "$packages" 2>/dev/null || true; kill "$packages" 2>/dev/null || true' EXIT

# 2. Nightly with rust-src: aya-build compiles the eBPF crate with -Z build-std.
if ! rustup toolchain list | grep -q "^${NIGHTLY}"; then
  log "installing toolchain ${NIGHTLY}"
  rustup toolchain install "${NIGHTLY}" --profile minimal
fi
sysroot="$(rustc +"${NIGHTLY}" --print sysroot)"
if [ ! -d "${sysroot}/lib/rustlib/src/rust/library" ]; then
  log "adding rust-src to ${NIGHTLY}"
  rustup component add rust-src --toolchain "${NIGHTLY}"
fi

# 3. bpf-linker, linked against the nightly's own libLLVM (no system LLVM 22).
if ! command -v bpf-linker >/dev/null 2>&1 || ! bpf-linker --version >/dev/null 2>&1; then
  llvm_so="$(ls "${sysroot}"/lib/libLLVM.so.22* 2>/dev/null | head -n1 || true)"
  if [ -z "${llvm_so}" ]; then
    log "no libLLVM.so.22* in ${sysroot}/lib; cannot build bpf-linker"
    exit 1
  fi
  llvm_ver="$(basename "${llvm_so}" | sed -E 's/^libLLVM\.so\.([0-9]+(\.[0-9]+)*).*/\1/')"
  mkdir -p "${LLVM_PREFIX_DIR}/lib" "${LLVM_PREFIX_DIR}/bin"
  ln -sf "${llvm_so}" "${LLVM_PREFIX_DIR}/lib/libLLVM.so"
  ln -sf "${llvm_so}" "${LLVM_PREFIX_DIR}/lib/$(basename "${llvm_so}")"
  # llvm-sys (with no-llvm-linking) only asks llvm-config for its version.
  cat >"${LLVM_PREFIX_DIR}/bin/llvm-config" <<STUB
#!/bin/sh
case "\$1" in
  --version) echo "${llvm_ver}.0" ;;
  --libdir) echo "${LLVM_PREFIX_DIR}/lib" ;;
  --prefix) echo "${LLVM_PREFIX_DIR}" ;;
  --shared-mode) echo shared ;;
  --libnames) echo "libLLVM.so" ;;
  *) echo "" ;;
esac
STUB
  chmod +x "${LLVM_PREFIX_DIR}/bin/llvm-config"
  log "building bpf-linker ${BPF_LINKER_VERSION} against ${llvm_so} (takes a few minutes)"
  LLVM_PREFIX="${LLVM_PREFIX_DIR}" LLVM_SYS_221_PREFIX="${LLVM_PREFIX_DIR}" \
    cargo install bpf-linker --locked --version "${BPF_LINKER_VERSION}" \
      --no-default-features --features llvm-22
fi

if ! wait "$packages"; then
  log "installing the system packages failed (see above)"
  exit 1
fi

# 4. Kernel facts the tracer needs; say clearly what is missing.
[ "$(id -u)" = 0 ] || log "warning: not root; scenarios need CAP_SYS_ADMIN/CAP_NET_ADMIN/CAP_BPF"
[ -r /sys/kernel/btf/vmlinux ] || log "warning: /sys/kernel/btf/vmlinux missing; the tracer needs kernel BTF"
log "ready"
