//! Whether hardware virtualisation works here, decided before any guest
//! boots. A `/dev/kvm` that opens is not enough: on sandboxed hosts it
//! exists while qemu's guests abort ("failed to set MSR 0x10a") or hang,
//! which cost the matrix a 300 s wait per run. Two checks, cheapest first:
//! the CPU must show `vmx`/`svm` (on this project's build machines it does
//! not, although a bare one-instruction guest does halt through their
//! /dev/kvm: the flag is what tells them apart), then a one-instruction
//! guest (`hlt`) must halt through KVM within a second. Nothing is
//! remembered between runs: the answer is found anew each time.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long the test guest may take to halt: a working KVM takes well
/// under a millisecond; a broken one hangs, and the probe must not.
const HALT_WITHIN: Duration = Duration::from_secs(1);

/// How guests are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// qemu's TCG emulation (slow, always there).
    Tcg,
}

impl Accel {
    /// As reports print it.
    pub fn label(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG emulation",
        }
    }
}

/// What the probe found: which accelerator `--kvm auto` uses, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KvmVerdict {
    /// The accelerator guests get.
    pub accel: Accel,
    /// What decided it.
    pub why: String,
    /// How long the probe took.
    pub probe_ms: u64,
}

/// The CPU's virtualisation flag (`vmx` on Intel, `svm` on AMD) in
/// `/proc/cpuinfo`'s text; without one KVM cannot run a guest.
pub fn cpu_virt_flag(cpuinfo: &str) -> Option<&'static str> {
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))?
        .split_once(':')?
        .1;
    flags.split_whitespace().find_map(|f| match f {
        "vmx" => Some("vmx"),
        "svm" => Some("svm"),
        _ => None,
    })
}

/// Decides between KVM and TCG in about a second at most.
pub fn probe() -> KvmVerdict {
    let start = Instant::now();
    let (accel, why) = match decide() {
        Ok(flag) => (
            Accel::Kvm,
            format!("a test guest ran and halted through /dev/kvm (CPU flag {flag})"),
        ),
        Err(why) => (Accel::Tcg, why.to_string()),
    };
    KvmVerdict {
        accel,
        why,
        probe_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Why guests cannot have KVM here.
#[derive(Debug, thiserror::Error)]
pub enum NoKvm {
    /// `/proc/cpuinfo` unreadable.
    #[error("cannot read /proc/cpuinfo ({0})")]
    CpuInfo(#[source] std::io::Error),
    /// No `vmx`/`svm` flag.
    #[error("the CPU shows no vmx/svm flag (no hardware virtualisation, or not passed to this VM)")]
    NoCpuFlag,
    /// A KVM call the test guest needs failed.
    #[error("{what} ({source})")]
    Refused {
        /// Which call, in words.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The test guest exited otherwise than by halting.
    #[error("a test guest exited through /dev/kvm with {0} instead of halting")]
    NoHalt(String),
    /// The test guest did not finish in time.
    #[error("a test guest did not halt through /dev/kvm within {} ms", HALT_WITHIN.as_millis())]
    Hung,
    /// The probe could not run at all.
    #[error("cannot start the KVM probe thread ({0})")]
    Thread(#[source] std::io::Error),
}

fn decide() -> Result<&'static str, NoKvm> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").map_err(NoKvm::CpuInfo)?;
    let flag = cpu_virt_flag(&cpuinfo).ok_or(NoKvm::NoCpuFlag)?;
    // The test guest runs on a thread of its own: a broken KVM blocks in
    // KVM_RUN, and the answer must come within HALT_WITHIN all the same
    // (the thread is then left behind, blocked, until the process ends).
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kvm-probe".into())
        .spawn(move || {
            let _ = tx.send(run_hlt_guest());
        })
        .map_err(NoKvm::Thread)?;
    match rx.recv_timeout(HALT_WITHIN) {
        Ok(Ok(())) => Ok(flag),
        Ok(Err(why)) => Err(why),
        Err(_) => Err(NoKvm::Hung),
    }
}

/// A real-mode guest whose only instruction is `hlt`: KVM works when the
/// vCPU exits with `Hlt`.
fn run_hlt_guest() -> Result<(), NoKvm> {
    use kvm_ioctls::{Kvm, VcpuExit};
    const GUEST_ADDR: u64 = 0x1000;
    const MEM_SIZE: usize = 0x1000;
    let refused = |what| {
        move |e: kvm_ioctls::Error| NoKvm::Refused {
            what,
            source: std::io::Error::from_raw_os_error(e.errno()),
        }
    };
    let kvm = Kvm::new().map_err(refused("/dev/kvm does not open"))?;
    let vm = kvm
        .create_vm()
        .map_err(refused("KVM refuses to create a VM"))?;
    let mut mem = GuestPage::new(MEM_SIZE).map_err(|source| NoKvm::Refused {
        what: "cannot map guest memory",
        source,
    })?;
    mem.bytes()[0] = 0xf4; // hlt
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: GUEST_ADDR,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem.addr(),
        flags: 0,
    };
    // SAFETY: the region is a mapping of MEM_SIZE bytes that `mem` keeps
    // alive until after the VM (declared later, dropped earlier) is gone.
    unsafe { vm.set_user_memory_region(region) }.map_err(refused("KVM refuses guest memory"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(refused("KVM refuses to create a vCPU"))?;
    let mut sregs = vcpu.get_sregs().map_err(refused("KVM_GET_SREGS failed"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)
        .map_err(refused("KVM_SET_SREGS failed"))?;
    let mut regs = vcpu.get_regs().map_err(refused("KVM_GET_REGS failed"))?;
    regs.rip = GUEST_ADDR;
    regs.rflags = 2; // bit 1 is reserved and must be set
    vcpu.set_regs(&regs)
        .map_err(refused("KVM_SET_REGS failed"))?;
    match vcpu.run() {
        Ok(VcpuExit::Hlt) => Ok(()),
        Ok(other) => Err(NoKvm::NoHalt(format!("{other:?}"))),
        Err(e) => Err(refused("a test guest failed to run through /dev/kvm")(e)),
    }
}

/// One anonymous page of guest memory, unmapped on drop.
struct GuestPage {
    ptr: *mut u8,
    len: usize,
}

impl GuestPage {
    fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(GuestPage {
            ptr: ptr.cast(),
            len,
        })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr is a live read-write mapping of len bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for GuestPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this value owns, once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_flag_is_read_from_the_flags_line_only() {
        let amd = "processor\t: 0\nflags\t\t: fpu vme svm lahf_lm\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_virt_flag(amd), Some("svm"));
        let intel = "flags\t\t: fpu vmx ssse3\n";
        assert_eq!(cpu_virt_flag(intel), Some("vmx"));
        // "vmx" inside another word or on another line is no flag.
        let none = "model name\t: vmx svm\nflags\t\t: fpu hypervisor vmxx\n";
        assert_eq!(cpu_virt_flag(none), None);
    }

    #[test]
    fn the_probe_answers_within_its_bound_and_agrees_with_the_cpu() {
        let v = probe();
        // Not a speed check (the bench's job): the probe must never wait
        // on a guest, as the 300 s fallback did; HALT_WITHIN bounds it.
        assert!(v.probe_ms < 10_000, "probe took {} ms", v.probe_ms);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        if cpu_virt_flag(&cpuinfo).is_none() {
            // Where /dev/kvm exists on a CPU without the flag (this kind of
            // machine), the old check (/dev/kvm opens) said KVM.
            assert_eq!(v.accel, Accel::Tcg, "{}", v.why);
            assert!(v.why.contains("vmx/svm"), "{}", v.why);
        }
        if !std::path::Path::new("/dev/kvm").exists() {
            assert_eq!(v.accel, Accel::Tcg, "{}", v.why);
        }
    }
}
