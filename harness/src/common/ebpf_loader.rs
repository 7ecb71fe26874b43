//! Every aya loader of the process, one at a time.
//!
//! aya's `EbpfLoader::new` parses the kernel's whole BTF into its own model
//! (tens of MiB) each time, for CO-RE relocations, whether the object needs
//! them or not. Loaders made at once on several threads (the tracer loading
//! while the first scenarios load their tc and XDP objects, a scenario's
//! `requires` probe) each held a copy, and that set the suite's peak memory.
//! So each loader is made and used under one lock, and the freed parse is
//! handed back to the system before the next one.

use std::sync::{Mutex, PoisonError};

use aya::{Ebpf, EbpfError, EbpfLoader};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Loads `object` (an ELF file, 8-byte aligned) with a fresh loader that
/// `tune` may configure (globals, BTF); no other loader of the process
/// exists meanwhile.
pub fn load<'a>(object: &[u8], tune: impl FnOnce(&mut EbpfLoader<'a>)) -> Result<Ebpf, EbpfError> {
    let loaded = {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let mut loader = EbpfLoader::new();
        tune(&mut loader);
        loader.load(object)
    };
    release_freed();
    loaded
}

/// Returns the heap pages the parse freed to the kernel: glibc keeps them
/// in the arena of the thread that parsed, where the next parse, likely on
/// another thread, cannot use them.
fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages of the heap back.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn loaders_on_several_threads_take_turns() {
        // Each loader exists while `tune` runs: count how many at once.
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    // The load itself may fail (no privileges here): the
                    // loader was made either way.
                    let _ = super::load(crate::common::fixtures::TC_OBJ, |_| {
                        let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                        MOST.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        NOW.fetch_sub(1, Ordering::SeqCst);
                    });
                });
            }
        });
        assert_eq!(MOST.load(Ordering::SeqCst), 1);
    }
}
