//! The server crate's modules form layers: `src/lib.rs` declares its
//! top-level modules in order, and each uses (by a `crate::` or `super::`
//! path) only modules declared before it; inside a module, no file uses
//! one that uses it back. Nothing uses `server` (the accept loop), which
//! stands on everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path: `lib.rs` is the root, `a/mod.rs` and `a.rs` are
/// `a`, `a/b.rs` is `a::b`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(SRC).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The module paths a file's code names through `crate::…` or `super::…`
/// (comments left out), as written: the longest known module is found
/// later.
fn references(text: &str, module: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (start, base) in [
            ("crate::", Vec::new()),
            ("super::", {
                // `super` of `a::b` (in a/b.rs) is `a`; of `a` in a/mod.rs,
                // the root.
                let mut m = module.to_vec();
                if !is_mod_rs || !m.is_empty() {
                    m.pop();
                }
                m
            }),
        ] {
            let mut rest = code;
            while let Some(at) = rest.find(start) {
                let before = rest[..at].chars().last();
                rest = &rest[at + start.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                for path in paths(rest) {
                    let mut full = base.clone();
                    full.extend(path);
                    found.push(full);
                }
            }
        }
    }
    found
}

/// The paths at the start of `s` (after `crate::`): `a::b::C` or the
/// first level of a group `{a::x, b}`.
fn paths(s: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = s.strip_prefix('{') {
        let end = group.find('}').unwrap_or(group.len());
        return group[..end]
            .split(',')
            .map(|p| {
                p.trim()
                    .split("::")
                    .map(ident)
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let id = ident(rest);
        if id.is_empty() {
            break;
        }
        rest = &rest[id.len()..];
        path.push(id);
        match rest.strip_prefix("::") {
            Some(r) if !r.starts_with('{') => rest = r,
            Some(r) => {
                // `a::{b, c::D}`: each path of the group, under `a`.
                return paths(r)
                    .into_iter()
                    .map(|mut p| {
                        let mut full = path.clone();
                        full.append(&mut p);
                        full
                    })
                    .collect();
            }
            None => break,
        }
    }
    vec![path]
}

/// The top-level modules in the order `lib.rs` declares them.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

#[test]
fn modules_use_only_the_layers_below_them_and_nothing_uses_the_server() {
    let mut all = Vec::new();
    files(Path::new(SRC), &mut all);
    let modules: BTreeSet<Vec<String>> = all.iter().map(|f| module_of(f)).collect();
    let order = layers();
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &all {
        let module = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod_rs = file.ends_with("mod.rs");
        for path in references(&text, &module, is_mod_rs) {
            // The longest known module the path starts with.
            let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            if module.starts_with(&target[..]) {
                // Itself, or an enclosing module (a child using what its
                // parent holds is no cycle: the parent only declares it).
                continue;
            }
            let (from, to) = (&module[0], &target[0]);
            if to == "server" {
                wrong.push(format!("{} uses `server`", module.join("::")));
            }
            if from != to {
                match (rank(from), rank(to)) {
                    (Some(a), Some(b)) if b < a => {}
                    (a, b) => wrong.push(format!(
                        "{} uses {}, which lib.rs does not declare before it ({a:?} vs {b:?})",
                        module.join("::"),
                        target.join("::")
                    )),
                }
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // No cycle among files either (inside one top-level module).
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
    ) {
        match state.get(m) {
            Some(true) => return,
            Some(false) => {
                let names: Vec<String> = stack.iter().map(|s| s.join("::")).collect();
                panic!("module cycle: {} -> {}", names.join(" -> "), m.join("::"));
            }
            None => {}
        }
        state.insert(m.clone(), false);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, state, stack);
        }
        stack.pop();
        state.insert(m.clone(), true);
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        visit(m, &edges, &mut state, &mut Vec::new());
    }
    // The check sees the edges it should (a parse that found none would
    // pass anything).
    let conn = vec!["conn".to_string(), "link".to_string()];
    assert!(
        edges
            .get(&conn)
            .is_some_and(|e| e.contains(&vec!["shared".to_string()])),
        "conn::link uses shared: {:?}",
        edges.get(&conn)
    );
}
