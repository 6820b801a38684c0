//! Every crate of the workspace reads top to bottom: no two modules use each other, directly or
//! round a longer circle. A module is a file (`src/a.rs` or `src/a/mod.rs` is `a`, `src/a/b.rs`
//! is `a::b`); `a` uses `b` when its code outside `#[cfg(test)]` names a path through `b`
//! (`crate::b::…`, `super::b::…`, `use crate::{b, …}`). A child naming its parent, or a parent
//! its child, is how Rust modules are built and is not counted: the circles looked for are
//! between siblings (lifted to the children of their closest common ancestor).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

const CRATES: [&str; 9] = ["schemas", "seams", "infra", "ingest", "projector", "api", "daybook", "bench", "tests"];

type Module = Vec<String>;

/// The module of each file under `src`.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match name.as_str() {
                    "mod" => prefix.to_vec(),
                    "lib" | "main" if prefix.is_empty() => Vec::new(),
                    _ => [prefix, &[name]].concat(),
                };
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().contains("test")))
}

/// Paths starting with `crate`, `super` or `self` named by a file's non-test code.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => self.use_tree(&[prefix, &[p.ident.to_string()]].concat(), &p.tree),
            syn::UseTree::Name(n) => self.0.push([prefix, &[n.ident.to_string()]].concat()),
            syn::UseTree::Rename(r) => self.0.push([prefix, &[r.ident.to_string()]].concat()),
            syn::UseTree::Glob(_) => self.0.push(prefix.to_vec()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Struct(s) => &s.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&[], &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.0.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// The module a path from module `at` names (the longest known module on its way), if it
/// starts at the crate, `super` or `self`.
fn resolve(at: &Module, path: &[String], known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let (mut base, rest): (Module, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (at.clone(), &path[1..]),
        Some("super") => {
            let mut base = at.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    for seg in rest {
        let mut next = base.clone();
        next.push(seg.clone());
        if !known.contains_key(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

/// Edges between siblings: each use lifted to the children of the closest common ancestor.
fn sibling_edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut paths = Paths::default();
        paths.visit_file(&parsed);
        for path in paths.0 {
            let Some(target) = resolve(module, &path, &known) else { continue };
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == target.len() {
                continue; // itself, an ancestor or a descendant
            }
            edges.entry(module[..=common].to_vec()).or_default().insert(target[..=common].to_vec());
        }
    }
    edges
}

/// A circle in `edges`, if there is one.
fn circle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn dfs(
        at: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = stack.iter().position(|m| m == at) {
            let mut c = stack[i..].to_vec();
            c.push(at.clone());
            return Some(c);
        }
        if done.contains(at) {
            return None;
        }
        stack.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(c) = dfs(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|m| dfs(m, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_circle_of_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in CRATES {
        let mut edges = sibling_edges(&root.join(krate).join("src"));
        // Every circle: each one found is reported, then cut, and the search goes on.
        while let Some(c) = circle(&edges) {
            let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            found.push(format!("{krate}: {}", names.join(" → ")));
            edges.get_mut(&c[c.len() - 2]).expect("an edge of the circle").remove(&c[c.len() - 1]);
        }
    }
    assert!(found.is_empty(), "modules that use each other:\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B; pub struct A;").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B(super::c::C);").unwrap();
    std::fs::write(src.join("c.rs"), "pub struct C; #[cfg(test)] mod tests { use crate::a::A; }").unwrap();
    assert_eq!(circle(&sibling_edges(src)), None, "test-only uses do not count");
    std::fs::write(src.join("c.rs"), "pub struct C; fn f() -> crate::a::A { crate::a::A }").unwrap();
    let c = circle(&sibling_edges(src)).expect("a → b → c → a");
    assert_eq!(c.len(), 4);
    std::fs::create_dir(src.join("d")).unwrap();
    std::fs::write(src.join("c.rs"), "pub struct C;").unwrap();
    std::fs::write(src.join("d/mod.rs"), "mod x; mod y; pub use x::X;").unwrap();
    std::fs::write(src.join("d/x.rs"), "pub struct X(super::y::Y); fn f(_: super::X) {}").unwrap();
    std::fs::write(src.join("d/y.rs"), "use crate::d::x::X; pub struct Y;").unwrap();
    assert!(circle(&sibling_edges(src)).is_some(), "x ↔ y inside d");
}
