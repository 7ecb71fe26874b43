//! A small reader for the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Rust eBPF programs get no CO-RE relocations, so the tracer asks this module
//! for struct field offsets (`sk_buff.len`, `net_device.nd_net`, ...) and for
//! `enum skb_drop_reason`, whose values change between kernels. aya-obj parses
//! BTF too, but keeps struct members private; this reader only needs the
//! type table and the string table.
//!
//! Kept over btf-rs, measured (`cargo run --release -p pktfate --features
//! compare-readers --example btf_readers`, 9 rounds, each reader in a process of its own, Linux 6.18,
//! 2026-12-04): parsing the kernel's BTF and answering the tracer's
//! questions takes 25 ms and a 14.4 MiB peak here, 231 ms and 52.1 MiB with
//! btf-rs 1.1, which builds a typed value per BTF type up front; same
//! answers. The tracer parses it at every start, and in every matrix guest
//! under emulation.

use std::collections::HashMap;
use std::path::Path;

/// Errors reading or querying BTF.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("cannot read kernel BTF at {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not BTF this reader understands.
    #[error("malformed BTF: {0}")]
    Malformed(String),
    /// A struct the tracer needs is absent.
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    /// A field the tracer needs is absent.
    #[error("kernel BTF struct `{strukt}` has no field `{field}`")]
    NoField {
        /// Struct name.
        strukt: String,
        /// Dotted field path.
        field: String,
    },
    /// The field is a bitfield or not byte aligned.
    #[error("field `{strukt}.{field}` is not byte aligned")]
    Unaligned {
        /// Struct name.
        strukt: String,
        /// Dotted field path.
        field: String,
    },
    /// An enum is absent.
    #[error("kernel BTF has no enum `{0}`")]
    NoEnum(String),
}

const KIND_INT: u32 = 1;
#[cfg_attr(not(test), allow(dead_code))]
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A struct/union member. Names are offsets into the string section: a
/// kernel's BTF has some 150,000 types and more members, and a `String`
/// each made the parsed table ~40 MB.
#[derive(Debug, Clone, Copy)]
struct Member {
    name: u32,
    type_id: u32,
    bit_offset: u32,
    bitfield_size: u32,
}

/// One BTF type, reduced to what the queries here need.
#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    name: u32,
    /// Referenced type for PTR/TYPEDEF/CONST/...
    type_ref: u32,
    /// Where this type's members (struct, union), values (enum) or
    /// parameter types (prototype) start in the [`Btf`] table of that
    /// kind, and how many: one flat table each, not a `Vec` per type.
    first: u32,
    count: u32,
}

/// Parsed BTF type and string tables.
pub struct Btf {
    /// Index 0 is the implicit `void`.
    types: Vec<Type>,
    /// The string section; names are offsets into it.
    strings: Box<[u8]>,
    members: Vec<Member>,
    enum_values: Vec<(u32, i64)>,
    params: Vec<u32>,
    /// Named structs, unions, enums and typedefs (the kinds looked up by
    /// name), by (kind, name).
    by_name: HashMap<(u32, Box<str>), u32>,
}

/// The `t.count` entries of `table` from `t.first` (empty if out of range).
fn slice<'a, T>(table: &'a [T], t: &Type) -> &'a [T] {
    let (a, n) = (t.first as usize, t.count as usize);
    table.get(a..a + n).unwrap_or(&[])
}

/// Kinds [`Btf`] finds by name.
const NAMED_KINDS: [u32; 5] = [
    KIND_STRUCT,
    KIND_UNION,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_TYPEDEF,
];

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| BtfError::Malformed(format!("truncated at byte {off}")))
}

/// The NUL-terminated string at `off` ("" when out of range or not UTF-8:
/// kernel BTF names are ASCII).
fn cstr(strings: &[u8], off: u32) -> &str {
    let start = off as usize;
    if start >= strings.len() {
        return "";
    }
    let end = strings[start..]
        .iter()
        .position(|&c| c == 0)
        .map_or(strings.len(), |p| start + p);
    std::str::from_utf8(&strings[start..end]).unwrap_or("")
}

/// Whether the string at `off` is `name`: compared in place, not found
/// to its end and checked as UTF-8 first, which over every function of
/// the kernel (~60,000) took milliseconds on the tracer's start-up path.
fn name_is(strings: &[u8], off: u32, name: &str) -> bool {
    let start = off as usize;
    let end = start + name.len();
    strings.get(start..end) == Some(name.as_bytes()) && strings.get(end) == Some(&0)
}

/// The type and string sections of raw BTF.
fn sections(data: &[u8]) -> Result<(&[u8], &[u8]), BtfError> {
    if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
        return Err(BtfError::Malformed("bad magic".into()));
    }
    let hdr_len = u32_at(data, 4)? as usize;
    let type_off = u32_at(data, 8)? as usize;
    let type_len = u32_at(data, 12)? as usize;
    let str_off = u32_at(data, 16)? as usize;
    let str_len = u32_at(data, 20)? as usize;
    let types = data
        .get(hdr_len + type_off..hdr_len + type_off + type_len)
        .ok_or_else(|| BtfError::Malformed("type section out of range".into()))?;
    let strings = data
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .ok_or_else(|| BtfError::Malformed("string section out of range".into()))?;
    Ok((types, strings))
}

/// One record of a BTF type section: its header and the bytes after it
/// (members, values, parameters, ...).
struct Record<'a> {
    kind: u32,
    name: u32,
    size_or_type: u32,
    kflag: bool,
    vlen: usize,
    body: &'a [u8],
}

impl Record<'_> {
    /// An enum's (name, value) pairs; none for other kinds.
    fn enum_values(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        let wide = self.kind == KIND_ENUM64;
        let n = if matches!(self.kind, KIND_ENUM | KIND_ENUM64) {
            self.vlen
        } else {
            0
        };
        let word =
            |v: &[u8], at: usize| u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
        self.body
            .chunks_exact(if wide { 12 } else { 8 })
            .take(n)
            .map(move |v| {
                let value = if wide {
                    ((u64::from(word(v, 8)) << 32) | u64::from(word(v, 4))) as i64
                } else {
                    i64::from(word(v, 4) as i32)
                };
                (word(v, 0), value)
            })
    }
}

/// The records of a type section in id order (id 1 first); an error ends
/// it. How long a record is depends on its kind, so reading one type means
/// walking those before it.
fn records(types: &[u8]) -> impl Iterator<Item = Result<Record<'_>, BtfError>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= types.len() {
            return None;
        }
        let head = (|| {
            let info = u32_at(types, pos + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let body_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_ENUM64 | KIND_DATASEC => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                0..=19 => 0,
                _ => return Err(BtfError::Malformed(format!("unknown kind {kind}"))),
            };
            let body = types
                .get(pos + 12..pos + 12 + body_len)
                .ok_or_else(|| BtfError::Malformed(format!("truncated at byte {pos}")))?;
            Ok(Record {
                kind,
                name: u32_at(types, pos)?,
                size_or_type: u32_at(types, pos + 8)?,
                kflag: info >> 31 == 1,
                vlen,
                body,
            })
        })();
        match &head {
            Ok(r) => pos += 12 + r.body.len(),
            // Nothing after a bad record can be read.
            Err(_) => pos = types.len(),
        }
        Some(head)
    })
}

/// The id of function `name` in raw BTF, found without parsing the rest
/// (under 5 ms here; a parse takes 13-16 ms): for a probe that needs only
/// that id.
pub fn function_id_in(data: &[u8], name: &str) -> Result<Option<u32>, BtfError> {
    let (types, strings) = sections(data)?;
    for (id, r) in (1u32..).zip(records(types)) {
        let r = r?;
        // Bytes compared in place: no length or UTF-8 check per name.
        let named = |off: u32| {
            strings
                .get(off as usize..)
                .is_some_and(|s| s.starts_with(name.as_bytes()) && s.get(name.len()) == Some(&0))
        };
        if r.kind == KIND_FUNC && named(r.name) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Where the running kernel's BTF is.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's raw BTF.
pub fn kernel_bytes() -> Result<Vec<u8>, BtfError> {
    KERNEL_READS.with(|n| n.set(n.get() + 1));
    std::fs::read(KERNEL_BTF).map_err(|source| BtfError::Read {
        path: KERNEL_BTF.into(),
        source,
    })
}

thread_local! {
    /// Reads of the kernel's BTF by [`kernel_bytes`] on this thread.
    static KERNEL_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread read the kernel's BTF file through
/// [`kernel_bytes`] (5-6 MB each): for tests that keep the count down.
pub fn kernel_reads_here() -> usize {
    KERNEL_READS.with(std::cell::Cell::get)
}

/// Parses of the kernel's BTF so far (see [`Btf::kernel_parses`]).
static KERNEL_PARSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        KERNEL_PARSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::from_file(Path::new(KERNEL_BTF))
    }

    /// How many times this process parsed the kernel's BTF (10-30 ms of
    /// CPU each): for tests that keep the count down.
    pub fn kernel_parses() -> usize {
        KERNEL_PARSES.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The running kernel's BTF, read once per process.
    ///
    /// Shared while anyone holds it, freed when nobody does: parsed, it
    /// takes ~14 MiB, and the tracer load parses the same BTF again with
    /// aya; holding both at once set the process's peak memory.
    pub fn kernel() -> Result<std::sync::Arc<Btf>, BtfError> {
        static K: std::sync::Mutex<std::sync::Weak<Btf>> =
            std::sync::Mutex::new(std::sync::Weak::new());
        let mut k = K.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = k.upgrade() {
            return Ok(b);
        }
        let b = std::sync::Arc::new(Self::from_sys_fs()?);
        *k = std::sync::Arc::downgrade(&b);
        Ok(b)
    }

    /// Reads BTF from a file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses raw little-endian BTF.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let (types_b, strings) = sections(data)?;
        let mut types = vec![Type {
            kind: 0,
            name: 0,
            type_ref: 0,
            first: 0,
            count: 0,
        }];
        let (mut members, mut enum_values, mut params) = (vec![], vec![], vec![]);
        for r in records(types_b) {
            let r = r?;
            let mut t = Type {
                kind: r.kind,
                name: r.name,
                type_ref: r.size_or_type,
                first: 0,
                count: r.vlen as u32,
            };
            match r.kind {
                KIND_STRUCT | KIND_UNION => {
                    t.first = members.len() as u32;
                    for m in r.body.chunks_exact(12) {
                        let m_off = u32_at(m, 8)?;
                        let (bit_offset, bitfield_size) = if r.kflag {
                            (m_off & 0xff_ffff, m_off >> 24)
                        } else {
                            (m_off, 0)
                        };
                        members.push(Member {
                            name: u32_at(m, 0)?,
                            type_id: u32_at(m, 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    t.first = enum_values.len() as u32;
                    enum_values.extend(r.enum_values());
                }
                KIND_FUNC_PROTO => {
                    t.first = params.len() as u32;
                    for p in r.body.chunks_exact(8) {
                        params.push(u32_at(p, 4)?);
                    }
                }
                _ => {}
            }
            types.push(t);
        }
        let mut by_name = HashMap::new();
        for (id, t) in types.iter().enumerate().skip(1) {
            let name = cstr(strings, t.name);
            if !name.is_empty() && NAMED_KINDS.contains(&t.kind) {
                by_name.entry((t.kind, name.into())).or_insert(id as u32);
            }
        }
        Ok(Self {
            types,
            strings: strings.into(),
            members,
            enum_values,
            params,
            by_name,
        })
    }

    /// A struct's or union's members.
    fn members_of(&self, t: &Type) -> &[Member] {
        match t.kind {
            KIND_STRUCT | KIND_UNION => slice(&self.members, t),
            _ => &[],
        }
    }

    /// A prototype's parameter type ids.
    fn params_of(&self, t: &Type) -> &[u32] {
        match t.kind {
            KIND_FUNC_PROTO => slice(&self.params, t),
            _ => &[],
        }
    }

    /// A name from the string section.
    fn name(&self, off: u32) -> &str {
        cstr(&self.strings, off)
    }

    fn lookup(&self, kind: u32, name: &str) -> Option<u32> {
        self.by_name.get(&(kind, Box::from(name))).copied()
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize).map(|t| t.kind) {
                Some(KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG) => {
                    id = self.types[id as usize].type_ref;
                }
                _ => break,
            }
        }
        id
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        self.lookup(KIND_STRUCT, name)
            .or_else(|| self.lookup(KIND_UNION, name))
    }

    /// Finds member `name` in composite `id`, descending into anonymous
    /// structs/unions. Returns (bit offset from the start of `id`, member).
    fn find_member(&self, id: u32, name: &str) -> Option<(u32, Member)> {
        let t = self.types.get(id as usize)?;
        for m in self.members_of(t) {
            if self.name(m.name) == name {
                return Some((m.bit_offset, *m));
            }
        }
        for m in self.members_of(t) {
            if self.name(m.name).is_empty() {
                let inner = self.resolve(m.type_id);
                if let Some((off, found)) = self.find_member(inner, name) {
                    return Some((m.bit_offset + off, found));
                }
            }
        }
        None
    }

    /// Byte offset of a (dotted, possibly nested) field of a struct, e.g.
    /// `member_offset("sock", "__sk_common.skc_net")`.
    pub fn member_offset(&self, strukt: &str, field: &str) -> Result<u32, BtfError> {
        let mut id = self
            .struct_id(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        let mut bits = 0u32;
        for part in field.split('.') {
            let (off, m) = self
                .find_member(id, part)
                .ok_or_else(|| BtfError::NoField {
                    strukt: strukt.into(),
                    field: field.into(),
                })?;
            if m.bitfield_size != 0 {
                return Err(BtfError::Unaligned {
                    strukt: strukt.into(),
                    field: field.into(),
                });
            }
            bits += off;
            id = self.resolve(m.type_id);
        }
        if !bits.is_multiple_of(8) {
            return Err(BtfError::Unaligned {
                strukt: strukt.into(),
                field: field.into(),
            });
        }
        Ok(bits / 8)
    }

    /// The byte holding bitfield `field` of `strukt` (a top-level or
    /// anonymous-nested member, e.g. `sk_buff.ip_summed`) and the field's
    /// shift within it (little-endian bit order). `None` when there is no
    /// such bitfield or it straddles a byte.
    pub fn bitfield_byte(&self, strukt: &str, field: &str) -> Option<(u32, u32)> {
        let id = self.struct_id(strukt)?;
        let (off, m) = self.find_member(id, field)?;
        let size = m.bitfield_size.max(1);
        ((off % 8) + size <= 8).then_some((off / 8, off % 8))
    }

    /// The values of an enum, by name (e.g. `skb_drop_reason`).
    pub fn enum_values(&self, name: &str) -> Result<Vec<(String, i64)>, BtfError> {
        let id = self
            .lookup(KIND_ENUM, name)
            .or_else(|| self.lookup(KIND_ENUM64, name))
            .ok_or_else(|| BtfError::NoEnum(name.into()))?;
        let t = &self.types[id as usize];
        Ok(slice(&self.enum_values, t)
            .iter()
            .map(|(n, v)| (self.name(*n).to_string(), *v))
            .collect())
    }

    /// Whether the kernel has a BTF-typed tracepoint of this name
    /// (the `btf_trace_<name>` typedef; its prototype gives the arguments).
    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.lookup(KIND_TYPEDEF, &format!("btf_trace_{name}"))
            .is_some()
    }

    /// The arguments a BTF tracepoint passes to programs: the
    /// prototype of `btf_trace_<name>` minus its leading `void *` context.
    /// Prototypes change between kernels (`consume_skb` gained `location`
    /// in 6.3, `tcp_send_reset` `reason` in 6.10), and a program may not
    /// read past the last one.
    pub fn tracepoint_arity(&self, name: &str) -> Option<usize> {
        let id = self.lookup(KIND_TYPEDEF, &format!("btf_trace_{name}"))?;
        let ptr = &self.types[self.types[id as usize].type_ref as usize];
        let proto = self.types.get(ptr.type_ref as usize)?;
        (ptr.kind == KIND_PTR && proto.kind == KIND_FUNC_PROTO)
            .then(|| self.params_of(proto).len().saturating_sub(1))
    }

    /// Kernel functions with a `struct <strukt> *` among their first
    /// `max_arg` parameters, with the position of the first such parameter
    /// (how pwru finds what to probe). Sorted by name.
    pub fn functions_taking(&self, strukt: &str, max_arg: usize) -> Vec<(String, usize)> {
        View {
            base: self,
            split: None,
        }
        .functions_taking(strukt, max_arg)
    }

    /// The id of function `name` (a `BTF_KIND_FUNC`): what an fentry
    /// program names as its attach target.
    pub fn function_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_FUNC && name_is(&self.strings, t.name, name))
            .map(|i| i as u32)
    }

    /// The id of function `name` in a module's split BTF `data` (ids
    /// continue this BTF's).
    pub fn module_function_id(&self, data: &[u8], name: &str) -> Result<Option<u32>, BtfError> {
        let module = Btf::parse(data)?;
        let view = View {
            base: self,
            split: Some(&module),
        };
        Ok(module
            .types
            .iter()
            .position(|t| t.kind == KIND_FUNC && view.name(t.name) == name)
            .map(|i| self.types.len() as u32 + i as u32 - 1))
    }

    /// The same for a module: `data` is its split BTF
    /// (`/sys/kernel/btf/<module>`), whose types and strings continue this
    /// (the kernel's) BTF and may refer to it.
    pub fn module_functions_taking(
        &self,
        data: &[u8],
        strukt: &str,
        max_arg: usize,
    ) -> Result<Vec<(String, usize)>, BtfError> {
        let module = Btf::parse(data)?;
        Ok(View {
            base: self,
            split: Some(&module),
        }
        .functions_taking(strukt, max_arg))
    }

    /// A BTF holding only `btf_trace_<name>` typedefs with the given
    /// argument counts: a stand-in for another kernel in tests.
    #[cfg(test)]
    pub(crate) fn with_tracepoints(tps: &[(&str, usize)]) -> Self {
        let blank = |kind: u32, name: u32, type_ref: u32, first: usize, count: usize| Type {
            kind,
            name,
            type_ref,
            first: first as u32,
            count: count as u32,
        };
        let mut strings = vec![0u8];
        let mut params = vec![];
        let mut types = vec![blank(0, 0, 0, 0, 0)];
        let mut by_name = HashMap::new();
        for (name, args) in tps {
            let proto = types.len() as u32;
            types.push(blank(KIND_FUNC_PROTO, 0, 0, params.len(), args + 1));
            params.extend(std::iter::repeat_n(0, args + 1));
            types.push(blank(KIND_PTR, 0, proto, 0, 0));
            let typedef = format!("btf_trace_{name}");
            let off = strings.len() as u32;
            strings.extend_from_slice(typedef.as_bytes());
            strings.push(0);
            by_name.insert((KIND_TYPEDEF, typedef.into_boxed_str()), types.len() as u32);
            types.push(blank(KIND_TYPEDEF, off, proto + 1, 0, 0));
        }
        Self {
            types,
            strings: strings.into(),
            members: vec![],
            enum_values: vec![],
            params,
            by_name,
        }
    }

    /// Whether `name` is a pointer type id (for tests of the reader).
    #[cfg(test)]
    fn is_ptr(&self, id: u32) -> bool {
        self.types.get(id as usize).map(|t| t.kind) == Some(KIND_PTR)
    }
}

/// The kernel's BTF alone, or a module's split BTF on top of it: a
/// module's type ids continue after the kernel's last, its string offsets
/// after the kernel's string section, and its types may refer to the
/// kernel's (`struct sk_buff` is the kernel's in every module).
struct View<'a> {
    /// The kernel's BTF.
    base: &'a Btf,
    /// A module's, parsed on its own (its index 0 is a placeholder, its
    /// first real type is id `base.types.len()`).
    split: Option<&'a Btf>,
}

impl<'a> View<'a> {
    /// The type with this id, and the BTF holding its member tables.
    fn ty(&self, id: u32) -> Option<(&'a Btf, &'a Type)> {
        let first = self.base.types.len() as u32;
        match self.split {
            Some(m) if id >= first => m.types.get((id - first + 1) as usize).map(|t| (m, t)),
            _ => self.base.types.get(id as usize).map(|t| (self.base, t)),
        }
    }

    fn name(&self, off: u32) -> &'a str {
        let first = self.base.strings.len() as u32;
        match self.split {
            Some(m) if off >= first => cstr(&m.strings, off - first),
            _ => self.base.name(off),
        }
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some((
                    _,
                    t @ Type {
                        kind:
                            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG,
                        ..
                    },
                )) => id = t.type_ref,
                _ => break,
            }
        }
        id
    }

    fn is_ptr_to(&self, id: u32, strukt: &str) -> bool {
        let Some((_, t)) = self.ty(self.resolve(id)) else {
            return false;
        };
        t.kind == KIND_PTR
            && self
                .ty(self.resolve(t.type_ref))
                .is_some_and(|(_, s)| s.kind == KIND_STRUCT && self.name(s.name) == strukt)
    }

    /// Functions (of the module when there is one, else of the kernel)
    /// with a `struct <strukt> *` among their first `max_arg` parameters,
    /// and the position of the first; sorted, one per name.
    fn functions_taking(&self, strukt: &str, max_arg: usize) -> Vec<(String, usize)> {
        let own = self.split.unwrap_or(self.base);
        let mut out: Vec<(String, usize)> = own
            .types
            .iter()
            .skip(1)
            .filter(|t| t.kind == KIND_FUNC && !self.name(t.name).is_empty())
            .filter_map(|f| {
                let (holder, proto) = self.ty(f.type_ref)?;
                if proto.kind != KIND_FUNC_PROTO {
                    return None;
                }
                let pos = holder
                    .params_of(proto)
                    .iter()
                    .take(max_arg)
                    .position(|p| self.is_ptr_to(*p, strukt))?;
                Some((self.name(f.name).to_string(), pos))
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

#[cfg(test)]
mod tests;
