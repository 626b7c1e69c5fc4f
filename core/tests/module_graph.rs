//! core's modules form a tree of layers: a module never reaches back to one that uses it. This
//! reads every `crate::` path in `core/src` (imports and inline paths, tests included, comments
//! not) and fails on a cycle, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`flows::ebs`) -> the modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `flows/ebs.rs` -> `flows::ebs`, `flows/mod.rs` -> `flows`, `lib.rs` -> `` (the crate root).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The code of a file without its comments, so doc links do not count as uses.
fn without_comments(source: &str) -> String {
    source.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The end of the braced group `text` opens with: the index of its closing brace.
fn group_end(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    panic!("an unclosed group in {text:?}")
}

/// `flows::{ebs, rds_dump::X}` -> `flows::ebs`, `flows::rds_dump::X`.
fn expand(path: &str) -> Vec<String> {
    let Some(brace) = path.find('{') else {
        return vec![path.split_whitespace().collect()];
    };
    let (head, group) = path.split_at(brace);
    let inner = &group[1..group_end(group)];
    let mut items = Vec::new();
    let (mut depth, mut item) = (0, String::new());
    for c in inner.chars().chain([',']) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !item.trim().is_empty() {
                    items.extend(expand(&format!("{head}{}", item.trim())));
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items
}

/// Every path that follows `crate::` in `code`, braced groups expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(is_ident);
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue; // a name that merely ends in "crate", like `my_crate::`
        }
        let mut end = rest.find(|c: char| !(is_ident(c) || c == ':')).unwrap_or(rest.len());
        if rest[end..].starts_with('{') {
            end += group_end(&rest[end..]) + 1;
        }
        paths.extend(expand(&rest[..end]));
    }
    paths
}

/// The longest known module that `path` starts with: `flows::ebs::ArchiveJob` -> `flows::ebs`.
fn target_module<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segments.len()).rev().find_map(|n| modules.get(&segments[..n].join("::")))
}

fn core_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .map(|path| {
            let module = module_of(path.strip_prefix(&src).expect("under src"));
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (module, without_comments(&text))
        })
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, code)| {
            let uses = crate_paths(code)
                .iter()
                .filter_map(|path| target_module(path, &modules))
                .filter(|used| *used != module)
                .cloned()
                .collect();
            (module.clone(), uses)
        })
        .collect()
}

/// The first cycle found, as the modules along it (the first repeated at the end).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let graph = core_graph();
    for expected in ["flows::ebs", "flows::rds_export", "flows::rds_dump", "flows::dynamodb", "document", "resource"] {
        assert!(graph.contains_key(expected), "core/src has no module {expected}: {:?}", graph.keys());
    }
    assert!(
        graph["flows::ebs"].contains("document"),
        "the reader misses imports: flows::ebs uses document, read {:?}",
        graph["flows::ebs"]
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("core's modules import each other in a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn reads_grouped_nested_and_inline_crate_paths() {
    let code = without_comments(
        "use crate::{arn::Arn, flows::{ebs, rds_dump::X}};\nlet x = crate::message::f(); // crate::request\nuse my_crate::y;",
    );
    assert_eq!(crate_paths(&code), ["arn::Arn", "flows::ebs", "flows::rds_dump::X", "message::f"]);
}

#[test]
fn finds_a_cycle_through_three_modules() {
    let graph: Graph = [("event", &["request"][..]), ("request", &["naming"]), ("naming", &["request"]), ("arn", &[])]
        .into_iter()
        .map(|(m, uses)| (m.to_string(), uses.iter().map(|u| u.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&graph), Some(vec!["request".to_string(), "naming".to_string(), "request".to_string()]));
    let mut acyclic = graph.clone();
    acyclic.insert("naming".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
}
