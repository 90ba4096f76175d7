//! The node's modules import downward only: every reference from one top-level module of
//! `node/src` to another goes to a lower layer (the layering of the design notes), and no two
//! modules under one parent import each other in a cycle. Read from the sources, so a new import
//! that breaks the layering fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first; a module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["provenance", "config", "db", "fs", "lifecycle", "metrics"],
    &["ipfs"],
    &["chain"],
    &["jobs"],
    &["verify", "gallery"],
    &["spotcheck", "replication"],
    &["network"],
    &["api"],
    &["server", "devnet"],
    &["cli"],
];

type Module = Vec<String>;

fn layer(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module {top} has no layer"))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The product code of a file: comments and the trailing `#[cfg(test)] mod tests` dropped.
fn product_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end].lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn identifier(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    text.split_at(end)
}

/// Every path that starts at `text` (just after `crate::` or `super::`), one group level expanded.
fn paths(text: &str) -> Vec<Module> {
    let mut prefix = Module::new();
    let mut rest = text;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            return inner
                .split(',')
                .map(|item| {
                    let mut path = prefix.clone();
                    let (first, _) = identifier(item.trim());
                    if !first.is_empty() {
                        path.push(first.to_owned());
                    }
                    path
                })
                .collect();
        }
        let (name, after) = identifier(rest);
        if name.is_empty() {
            return vec![prefix];
        }
        prefix.push(name.to_owned());
        match after.strip_prefix("::") {
            Some(next) => rest = next,
            None => return vec![prefix],
        }
    }
}

/// The modules `code` (in `module`) refers to, resolved to the longest known module path.
fn references(module: &Module, code: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    for (marker, base) in
        [("crate::", Module::new()), ("super::", module[..module.len().saturating_sub(1)].to_vec())]
    {
        for (at, _) in code.match_indices(marker) {
            for path in paths(&code[at + marker.len()..]) {
                let mut full = base.clone();
                full.extend(path);
                while !full.is_empty() && !known.contains(&full) {
                    full.pop();
                }
                if !full.is_empty() {
                    found.insert(full);
                }
            }
        }
    }
    found
}

fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_downward_only_and_siblings_never_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: Vec<(Module, String)> = files
        .iter()
        .map(|file| (module_of(&src, file), product_code(&std::fs::read_to_string(file).unwrap())))
        .filter(|(module, _)| !module.is_empty() && module[0] != "lib" && module[0] != "main")
        .collect();
    let known: BTreeSet<Module> = modules.iter().map(|(module, _)| module.clone()).collect();

    let mut upward = Vec::new();
    // Sibling edges, keyed by parent: child → child.
    let mut siblings: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, code) in &modules {
        for target in references(module, code, &known) {
            if target[0] != module[0] && layer(&target[0]) >= layer(&module[0]) {
                upward.push(format!("{} uses {}", module.join("::"), target.join("::")));
            }
            let shared = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if shared < module.len() && shared < target.len() {
                let edges = siblings.entry(module[..shared].to_vec()).or_default();
                edges.entry(module[shared].clone()).or_default().insert(target[shared].clone());
            }
        }
    }
    assert!(upward.is_empty(), "imports that go up or sideways across layers:\n{}", upward.join("\n"));
    for (parent, edges) in &siblings {
        if let Some(found) = cycle(edges) {
            panic!(
                "modules under `{}` import each other in a cycle: {}",
                parent.join("::"),
                found.join(" → ")
            );
        }
    }
}

#[test]
fn the_reader_finds_grouped_and_nested_imports() {
    let known: BTreeSet<Module> =
        [vec!["jobs".into()], vec!["jobs".into(), "store".into()], vec!["chain".into()]].into();
    let module: Module = vec!["jobs".into(), "forward".into()];
    let code = "use super::store::{JobRecord, PeerRef};\nuse crate::{chain::ChainError, jobs};";
    let found = references(&module, code, &known);
    assert_eq!(
        found,
        [vec!["chain".to_owned()], vec!["jobs".into()], vec!["jobs".into(), "store".into()]].into()
    );
    let looped: BTreeMap<String, BTreeSet<String>> =
        [("a".into(), ["b".into()].into()), ("b".into(), ["a".into()].into())].into();
    assert_eq!(cycle(&looped), Some(vec!["a".into(), "b".into(), "a".into()]));
}
