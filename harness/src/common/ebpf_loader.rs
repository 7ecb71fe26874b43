//! Every aya loader of the process, one at a time, and one parse of the
//! kernel's BTF for all loads that need no options.
//!
//! aya's `EbpfLoader::new` parses the kernel's whole BTF into its own model
//! (tens of MiB, 20-30 ms of CPU) each time, for CO-RE relocations, whether
//! the object needs them or not. Loaders made at once on several threads
//! (the tracer loading while the first scenarios load their tc and XDP
//! objects, a scenario's `requires` probe) each held a copy, and that set
//! the suite's peak memory; made one after another, one per tc or XDP
//! scenario, the parses queued on the suite's critical path. So every
//! loader is made and used under one lock, and the loads that set no
//! option (no globals: every object but the tracer's) share one loader, made
//! at the first of them and kept: aya's `load` only reads the loader.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use aya::{Ebpf, EbpfError, EbpfLoader};

/// The shared loader, once made; the lock is also every other loader's turn.
static SHARED: Mutex<Option<EbpfLoader<'static>>> = Mutex::new(None);

/// How many times the shared loader was made (once per process).
static SHARED_MADE: AtomicUsize = AtomicUsize::new(0);

/// Loads `object` (an ELF file, 8-byte aligned) with the process's shared
/// loader: aya's defaults, the kernel BTF parsed once for all such loads.
pub fn load(object: &[u8]) -> Result<Ebpf, EbpfError> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let made = shared.is_none();
    let loaded = shared
        .get_or_insert_with(|| {
            SHARED_MADE.fetch_add(1, Ordering::Relaxed);
            EbpfLoader::new()
        })
        .load(object);
    drop(shared);
    if made {
        release_freed();
    }
    loaded
}

/// Loads `object` with a fresh loader that `tune` configures (globals):
/// its own parse of the kernel BTF, freed after. No other loader of the
/// process is used meanwhile.
pub fn load_tuned<'a>(
    object: &[u8],
    tune: impl FnOnce(&mut EbpfLoader<'a>),
) -> Result<Ebpf, EbpfError> {
    let loaded = {
        let _turn = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        let mut loader = EbpfLoader::new();
        tune(&mut loader);
        loader.load(object)
    };
    release_freed();
    loaded
}

/// Returns the heap pages a parse freed to the kernel: glibc keeps them
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
                    let _ = super::load_tuned(crate::common::fixtures::TC_OBJ, |_| {
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

    #[test]
    fn loads_without_options_share_one_loader() {
        let loaded: Vec<bool> = std::thread::scope(|s| {
            let loads: Vec<_> = (0..3)
                .map(|_| s.spawn(|| super::load(crate::common::fixtures::TC_OBJ).is_ok()))
                .collect();
            loads.into_iter().map(|l| l.join().unwrap()).collect()
        });
        // Other tests of this process may have made it first: once, still.
        assert_eq!(super::SHARED_MADE.load(Ordering::SeqCst), 1);
        // Reused, it still loads each time (where loading is allowed).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(loaded, [true, true, true]);
        }
    }
}
