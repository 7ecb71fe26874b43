//! Every aya loader of the process, one at a time, and one parse of the
//! kernel's BTF for every load.
//!
//! aya's `EbpfLoader::new` parses the kernel's whole BTF into its own model
//! (tens of MiB, 20-30 ms of CPU) each time, for CO-RE relocations, whether
//! the object needs them or not. Loaders made at once on several threads
//! (the tracer loading while the first scenarios load their tc and XDP
//! objects, a scenario's `requires` probe) each held a copy, and that set
//! the suite's peak memory; made one after another, one per tc or XDP
//! scenario, the parses queued on the suite's critical path. So every load
//! uses one loader, made at the first of them and kept, under one lock:
//! aya's `load` only reads the loader. It sets no option: the tracer's
//! configuration is written into its object's bytes ([`load_patched`]),
//! not set on the loader, where it would reach every later object.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use aya::{Ebpf, EbpfError, EbpfLoader};
use aya_obj::ParseError;

/// The shared loader, once made; its lock makes the loads take turns.
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

/// Loads a copy of `object` with the shared loader, `globals` (name,
/// value) written over the initial values of the object's read-only
/// globals of those names first: what aya's `override_global` does, for
/// this object alone. A global missing from the object, or of another
/// size, is an error, as with `override_global(.., must_exist: true)`.
pub fn load_patched(object: &[u8], globals: &[(&str, &[u8])]) -> Result<Ebpf, EbpfError> {
    load(
        patched(object, globals)
            .map_err(EbpfError::ParseError)?
            .bytes(),
    )
}

/// A copy of `object` with `globals` written in (see [`load_patched`]).
pub fn patched(object: &[u8], globals: &[(&str, &[u8])]) -> Result<Aligned, ParseError> {
    let mut copy = Aligned::from(object);
    patch_globals(copy.bytes_mut(), globals)?;
    Ok(copy)
}

/// The bytes of a plain-data value, as a global's new value.
pub fn bytes_of<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: Pod types are plain data of size_of::<T>() bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), size_of::<T>()) }
}

/// Writes each global's value into the ELF `object`'s section bytes (for a
/// relocatable object, a symbol's value is its offset in its section).
fn patch_globals(object: &mut [u8], globals: &[(&str, &[u8])]) -> Result<(), ParseError> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let mut writes = vec![];
    {
        let elf = object::File::parse(&*object).map_err(ParseError::ElfError)?;
        for (name, value) in globals {
            let not_found = || ParseError::SymbolNotFound {
                name: (*name).to_string(),
            };
            let symbol = elf.symbol_by_name(name).ok_or_else(not_found)?;
            let wrong_size = || ParseError::InvalidGlobalData {
                name: (*name).to_string(),
                sym_size: symbol.size(),
                data_size: value.len(),
            };
            if symbol.size() != value.len() as u64 {
                return Err(wrong_size());
            }
            let index = symbol.section_index().ok_or_else(not_found)?;
            let section = elf.section_by_index(index).map_err(ParseError::ElfError)?;
            // Only the data sections aya makes maps of hold globals (a
            // map definition or the licence is not one).
            let name = section.name().unwrap_or_default();
            if !(name.starts_with(".rodata") || name.starts_with(".data")) {
                return Err(ParseError::MapNotFound { index: index.0 });
            }
            // A section with no bytes in the file (.bss) has none to patch.
            let (start, len) = section.file_range().ok_or_else(wrong_size)?;
            let at = symbol.address();
            if at + symbol.size() > len {
                return Err(wrong_size());
            }
            writes.push(((start + at) as usize, *value));
        }
    }
    for (at, value) in writes {
        object[at..at + value.len()].copy_from_slice(value);
    }
    Ok(())
}

/// A copy of an ELF object, 8-byte aligned as aya (and `object`) want it:
/// a `Vec<u8>` may not be.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl From<&[u8]> for Aligned {
    fn from(bytes: &[u8]) -> Self {
        let mut a = Aligned {
            words: vec![0u64; bytes.len().div_ceil(8)],
            len: bytes.len(),
        };
        a.bytes_mut().copy_from_slice(bytes);
        a
    }
}

impl Aligned {
    /// The object's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the u64 buffer is at least `len` bytes; plain bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// How many loaders this process made: one at most.
pub fn loaders_made() -> usize {
    SHARED_MADE.load(Ordering::Relaxed)
}

/// Returns the heap pages the parse's temporaries freed to the kernel:
/// glibc keeps them in the arena of the thread that parsed, where the
/// suite's other threads cannot use them.
fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages of the heap back.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

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
