//! The shape of `harness/src` (ARCHITECTURE.md): a folder per stage,
//! imports that only point back along the data flow, no import cycle
//! between files, and no file that has grown into three jobs.
//!
//! Imports are read from each file's syntax tree (syn): `use` items
//! (groups expanded, `pub use` re-exports followed to the file that defines
//! the item, glob imports counted only for the names a file really uses)
//! and paths written inline from `crate`, `super`, `self` or a child
//! module, in code and in macro arguments. Comments and strings are not
//! code, so they never count.
//! `PKTFATE_ARCH_SRC` points the checks at another tree (to see them fail
//! on an older one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::{self, Visit};

/// The stages in data-flow order; a file may import its own stage or an
/// earlier one. `common` and `abi` sit below every stage; the runner
/// chains the stages; tools and the CLI sit on top.
const STAGES: [(&str, u8); 15] = [
    ("abi.rs", 0),
    ("common", 0),
    ("scenario", 1),
    ("topology", 2),
    ("tracer", 3),
    ("inject", 4),
    ("collect", 5),
    ("evaluate", 6),
    ("report", 7),
    ("runner", 8),
    ("testing.rs", 8),
    ("tools", 9),
    ("cli", 10),
    ("lib.rs", 10),
    ("main.rs", 10),
];

/// The longest a file may be.
const MAX_FILE_LINES: usize = 800;
/// The largest share of the code one file may hold, in percent.
const MAX_FILE_SHARE: usize = 12;

/// The repository's root (this package is tests/architecture).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn src_dir() -> PathBuf {
    std::env::var_os("PKTFATE_ARCH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("harness/src"))
}

/// Every `.rs` file under `dir`, by path relative to it.
fn sources(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

fn stage(file: &str) -> u8 {
    let top = file.split('/').next().unwrap();
    STAGES
        .iter()
        .find(|(s, _)| *s == top)
        .unwrap_or_else(|| {
            panic!("`{file}` is in no stage folder; add it to one (ARCHITECTURE.md)")
        })
        .1
}

/// The module path of a file: `topology/mod.rs` → `[topology]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Source without comments and literals; inside inline modules (`mod
/// What one file declares and refers to, read from its syntax tree.
#[derive(Default)]
struct Reader {
    defs: BTreeSet<String>,
    children: BTreeSet<String>,
    uses: Vec<Use>,
    /// Paths of two or more segments written in code (not in `use`).
    paths: Vec<Vec<String>>,
    /// Every identifier the file uses.
    words: BTreeSet<String>,
    /// Depth in inline `mod x { .. }` blocks: there, `super` is the file.
    inline: usize,
}

impl Reader {
    /// A path as the file's own module sees it: in an inline module
    /// (`mod tests`), a leading `super` is the file's module itself.
    fn as_file_sees(&self, mut segs: Vec<String>) -> Vec<String> {
        if self.inline > 0 && segs.first().is_some_and(|s| s == "super") {
            segs[0] = "self".into();
        }
        segs
    }

    fn def(&mut self, ident: &syn::Ident) {
        self.defs.insert(ident.to_string());
    }

    /// `a::b::c` runs in macro arguments (`format!("{}", crate::x::y())`),
    /// which syn leaves as tokens.
    fn tokens(&mut self, ts: proc_macro2::TokenStream) {
        use proc_macro2::TokenTree;
        let tokens: Vec<TokenTree> = ts.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    self.words.insert(id.to_string());
                    let mut segs = vec![id.to_string()];
                    // `::` is two `:` puncts, then an identifier.
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(n)),
                    ) = (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        self.words.insert(n.to_string());
                        segs.push(n.to_string());
                        i += 3;
                    }
                    if segs.len() > 1 {
                        let segs = self.as_file_sees(segs);
                        self.paths.push(segs);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// `a::{b, c::{d as e}}` → (`a::b`, `b`), (`a::c::d`, `e`).
fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let with = |prefix: &Vec<String>, last: String| {
        let mut s = prefix.clone();
        s.push(last);
        s
    };
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push((with(prefix, n.ident.to_string()), n.ident.to_string())),
        syn::UseTree::Rename(r) => {
            out.push((with(prefix, r.ident.to_string()), r.rename.to_string()));
        }
        syn::UseTree::Glob(_) => out.push((with(prefix, "*".into()), "*".into())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Reader {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut flat = vec![];
        flatten(&u.tree, &mut vec![], &mut flat);
        let public = !matches!(u.vis, syn::Visibility::Inherited);
        for (segs, name) in flat {
            let segs = self.as_file_sees(segs);
            self.uses.push(Use { segs, name, public });
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_none() {
            if self.inline == 0 {
                self.children.insert(m.ident.to_string());
            }
            return;
        }
        self.inline += 1;
        visit::visit_item_mod(self, m);
        self.inline -= 1;
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            let segs = self.as_file_sees(segs);
            self.paths.push(segs);
        }
        visit::visit_path(self, p);
    }

    fn visit_ident(&mut self, i: &'ast syn::Ident) {
        self.words.insert(i.to_string());
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }

    fn visit_item_struct(&mut self, i: &'ast syn::ItemStruct) {
        self.def(&i.ident);
        visit::visit_item_struct(self, i);
    }
    fn visit_item_enum(&mut self, i: &'ast syn::ItemEnum) {
        self.def(&i.ident);
        visit::visit_item_enum(self, i);
    }
    fn visit_item_union(&mut self, i: &'ast syn::ItemUnion) {
        self.def(&i.ident);
        visit::visit_item_union(self, i);
    }
    fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
        self.def(&i.sig.ident);
        visit::visit_item_fn(self, i);
    }
    fn visit_item_const(&mut self, i: &'ast syn::ItemConst) {
        self.def(&i.ident);
        visit::visit_item_const(self, i);
    }
    fn visit_item_static(&mut self, i: &'ast syn::ItemStatic) {
        self.def(&i.ident);
        visit::visit_item_static(self, i);
    }
    fn visit_item_type(&mut self, i: &'ast syn::ItemType) {
        self.def(&i.ident);
        visit::visit_item_type(self, i);
    }
    fn visit_item_trait(&mut self, i: &'ast syn::ItemTrait) {
        self.def(&i.ident);
        visit::visit_item_trait(self, i);
    }
    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        self.def(&i.sig.ident);
        visit::visit_impl_item_fn(self, i);
    }
    fn visit_trait_item_fn(&mut self, i: &'ast syn::TraitItemFn) {
        self.def(&i.sig.ident);
        visit::visit_trait_item_fn(self, i);
    }

    /// Attribute arguments are tokens too (`#[error("{}", crate::x::f(.0))]`).
    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let syn::Meta::List(l) = &a.meta {
            self.tokens(l.tokens.clone());
        }
        visit::visit_attribute(self, a);
    }
}

/// One `use` path: its segments and the name it binds.
struct Use {
    segs: Vec<String>,
    name: String,
    public: bool,
}

struct File {
    module: Vec<String>,
    defs: BTreeSet<String>,
    children: BTreeSet<String>,
    uses: Vec<Use>,
    paths: Vec<Vec<String>>,
    words: BTreeSet<String>,
}

struct Tree {
    files: BTreeMap<String, File>,
    by_module: HashMap<Vec<String>, String>,
}

impl Tree {
    fn read(dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut by_module = HashMap::new();
        for (path, text) in sources(dir) {
            if path.starts_with("cli/") || path == "main.rs" {
                // The binary is its own crate: `pktfate::` paths, no cycles possible.
                continue;
            }
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let mut r = Reader::default();
            r.visit_file(&ast);
            let module = module_of(&path);
            by_module.insert(module.clone(), path.clone());
            files.insert(
                path,
                File {
                    module,
                    defs: r.defs,
                    children: r.children,
                    uses: r.uses,
                    paths: r.paths,
                    words: r.words,
                },
            );
        }
        Tree { files, by_module }
    }

    /// A path as written in `file`, made absolute (from the crate root).
    fn absolute(&self, file: &str, segs: &[String]) -> Option<Vec<String>> {
        let f = &self.files[file];
        let first = segs.first()?.as_str();
        match first {
            "crate" => Some(segs[1..].to_vec()),
            "super" => {
                let mut base = f.module.clone();
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            "self" => Some(f.module.iter().chain(&segs[1..]).cloned().collect()),
            c if f.children.contains(c) => Some(f.module.iter().chain(segs).cloned().collect()),
            _ => None,
        }
    }

    /// The file that defines what an absolute path names, following
    /// `pub use` re-exports.
    fn resolve(&self, path: &[String], depth: u32) -> Option<String> {
        let path: Vec<String> = path.iter().filter(|s| *s != "self").cloned().collect();
        let (k, file) = (0..=path.len())
            .rev()
            .find_map(|k| self.by_module.get(&path[..k]).map(|f| (k, f.clone())))?;
        let rest = &path[k..];
        let Some(name) = rest.first().filter(|n| *n != "*") else {
            return Some(file);
        };
        let f = &self.files[&file];
        if f.defs.contains(name) || depth > 12 {
            return Some(file);
        }
        for u in f.uses.iter().filter(|u| u.public) {
            let glob = u.segs.last().is_some_and(|s| s == "*");
            let target = if glob {
                self.absolute(&file, &u.segs[..u.segs.len() - 1])
                    .map(|mut a| {
                        a.extend(rest.iter().cloned());
                        a
                    })
            } else if &u.name == name {
                self.absolute(&file, &u.segs).map(|mut a| {
                    a.extend(rest[1..].iter().cloned());
                    a
                })
            } else {
                None
            };
            if let Some(found) = target.and_then(|t| self.resolve(&t, depth + 1))
                && (!glob || self.files[&found].defs.contains(name))
            {
                return Some(found);
            }
        }
        Some(file)
    }

    /// Each file's imports: target file → the path that makes it.
    fn edges(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut all = BTreeMap::new();
        for (path, f) in &self.files {
            let mut out: BTreeMap<String, String> = BTreeMap::new();
            let mut add = |to: Option<String>, why: String| {
                if let Some(to) = to.filter(|t| t != path) {
                    out.entry(to).or_insert(why);
                }
            };
            for u in &f.uses {
                let shown = u.segs.join("::");
                if u.segs.last().is_some_and(|s| s == "*") {
                    // A glob counts for the items it brings that are used.
                    let Some(abs) = self.absolute(path, &u.segs[..u.segs.len() - 1]) else {
                        continue;
                    };
                    let Some(target) = self.resolve(&abs, 0) else {
                        continue;
                    };
                    let t = &self.files[&target];
                    if t.defs.iter().any(|d| f.words.contains(d)) {
                        add(Some(target.clone()), shown.clone());
                    }
                    for tu in t.uses.iter().filter(|tu| f.words.contains(&tu.name)) {
                        if let Some(a) = self.absolute(&target, &tu.segs) {
                            add(
                                self.resolve(&a, 0),
                                format!("{shown} via {}", tu.segs.join("::")),
                            );
                        }
                    }
                } else if let Some(a) = self.absolute(path, &u.segs) {
                    add(self.resolve(&a, 0), shown);
                }
            }
            // Inline paths: from `crate`, `super`, `self` or a child module.
            for segs in &f.paths {
                if let Some(a) = self.absolute(path, segs) {
                    add(self.resolve(&a, 0), segs.join("::"));
                }
            }
            all.insert(path.clone(), out);
        }
        all
    }
}

/// Strongly connected groups of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct S<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let edges = s.edges;
        for w in edges[v].keys() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let l = s.low[v].min(s.low[w]);
                s.low.insert(v, l);
            } else if s.on.contains(w) {
                let l = s.low[v].min(s.index[w]);
                s.low.insert(v, l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = vec![];
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = S {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        out: vec![],
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn every_file_is_in_a_stage_folder_and_imports_only_earlier_stages() {
    let tree = Tree::read(&src_dir());
    let mut wrong = vec![];
    for (from, to) in tree.edges() {
        for (target, why) in to {
            if stage(&target) > stage(&from) {
                wrong.push(format!("{from} imports a later stage: {target} (`{why}`)"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let tree = Tree::read(&src_dir());
    let edges = tree.edges();
    let found: Vec<String> = cycles(&edges)
        .iter()
        .map(|group| {
            let inside: Vec<String> = group
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|(b, _)| group.contains(b))
                        .map(move |(b, why)| format!("  {a} -> {b} (`{why}`)"))
                })
                .collect();
            format!("cycle among {}:\n{}", group.join(", "), inside.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_file_holds_too_much_of_the_code() {
    let files = sources(&src_dir());
    let lines: BTreeMap<&String, usize> =
        files.iter().map(|(p, t)| (p, t.lines().count())).collect();
    let total: usize = lines.values().sum();
    let mut wrong = vec![];
    for (p, n) in &lines {
        if *n > MAX_FILE_LINES {
            wrong.push(format!("{p}: {n} lines (at most {MAX_FILE_LINES})"));
        }
        if n * 100 >= total * MAX_FILE_SHARE {
            wrong.push(format!(
                "{p}: {n} of {total} lines, {}% of the code (under {MAX_FILE_SHARE}%)",
                n * 100 / total
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_rust_file_of_the_repository_is_longer_than_the_limit() {
    // Not only the library: the eBPF programs, tests, fixtures and
    // examples too (build output aside).
    let root = repo_root();
    let mut wrong = vec![];
    let mut seen = 0;
    let mut todo: Vec<PathBuf> = ["harness", "ebpf", "tests", "fixtures", "examples"]
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .collect();
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    todo.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                seen += 1;
                let n = std::fs::read_to_string(&p).unwrap().lines().count();
                if n > MAX_FILE_LINES {
                    let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
                    wrong.push(format!("{rel}: {n} lines (at most {MAX_FILE_LINES})"));
                }
            }
        }
    }
    assert!(seen > 100, "only {seen} files found: the walk is broken");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checks_see_what_they_must() {
    // A tree with a backward import and a cycle, to prove the reader finds
    // `use` groups, re-exports and inline paths.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = |p: &str, t: &str| {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, t).unwrap();
    };
    w(
        "lib.rs",
        "pub mod scenario;\npub mod collect;\npub mod evaluate;\n",
    );
    // Paths in macro and attribute arguments count; comments and strings
    // do not.
    w(
        "evaluate/mod.rs",
        "// crate::scenario::model::Scenario\n\
         pub fn e() -> String { format!(\"{:?} crate::scenario::model::Scenario\", crate::collect::g()) }\n\
         #[error(\"{}\", crate::scenario::f())]\npub struct E;\n",
    );
    w(
        "scenario/mod.rs",
        "mod model;\npub use model::*;\nfn f() { crate::collect::g(); }\n",
    );
    w("scenario/model.rs", "use super::f;\npub struct Scenario;\n");
    w(
        "collect/mod.rs",
        "use crate::{scenario::{Scenario as S}};\npub fn g() {}\n",
    );
    let tree = Tree::read(dir);
    let edges = tree.edges();
    assert_eq!(
        edges["collect/mod.rs"].keys().collect::<Vec<_>>(),
        ["scenario/model.rs"]
    );
    assert!(edges["scenario/mod.rs"].contains_key("collect/mod.rs"));
    assert_eq!(
        edges["evaluate/mod.rs"].keys().collect::<Vec<_>>(),
        ["collect/mod.rs", "scenario/mod.rs"]
    );
    // collect -> model (re-exported) -> scenario/mod (super::f) -> collect.
    assert_eq!(
        cycles(&edges),
        vec![vec![
            "collect/mod.rs".to_string(),
            "scenario/mod.rs".to_string(),
            "scenario/model.rs".to_string()
        ]]
    );
}
