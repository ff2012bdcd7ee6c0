//! The workspace's structure holds: README.md's "Layout" section matches
//! the tree, every crate depends only on the layers below it, and no
//! module of a crate takes part in an import circle with another module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Each crate of the workspace (its folder) with its layer: a crate may
/// depend only on crates of a lower layer. The binary is on top; the
/// client and progress crates are leaves any command may use.
const LAYERS: &[(&str, u8)] = &[
    ("crates/stats", 0),
    ("crates/client", 0),
    ("crates/progress", 0),
    ("crates/core", 1),
    ("crates/store", 2),
    ("crates/service", 3),
    ("crates/config", 3),
    ("crates/server", 4),
    ("crates/aws", 5),
    (".", 6),
];

/// The text of the README's `## Layout` section.
fn layout_section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md readable");
    let start = readme
        .find("\n## Layout\n")
        .expect("README has a Layout section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_owned()
}

/// Every backticked token of the section.
fn backticked(section: &str) -> BTreeSet<String> {
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|token| token.trim_end_matches('/').to_owned())
        .collect()
}

/// The backticked tokens that look like repository paths.
fn named_paths(section: &str) -> BTreeSet<String> {
    backticked(section)
        .into_iter()
        .filter(|token| token.contains('/') && !token.starts_with('/') && !token.contains(' '))
        .collect()
}

/// The source folder of every crate, from the repository root.
fn source_folders() -> Vec<String> {
    LAYERS
        .iter()
        .map(|(dir, _)| match *dir {
            "." => "src".to_owned(),
            dir => format!("{dir}/src"),
        })
        .collect()
}

/// Every crate of the workspace is in [`LAYERS`], and no other.
#[test]
fn every_crate_has_a_layer() {
    let mut found: BTreeSet<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ readable")
        .map(|entry| format!("crates/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    found.insert(".".to_owned());
    let listed: BTreeSet<String> = LAYERS.iter().map(|(dir, _)| (*dir).to_owned()).collect();
    assert_eq!(found, listed, "crates/ and LAYERS differ");
}

/// Every path the section names exists.
#[test]
fn named_paths_exist() {
    let named = named_paths(&layout_section());
    assert!(named.len() > 10, "too few paths found: {named:?}");
    let missing: Vec<_> = named.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "README Layout names missing paths: {missing:?}"
    );
}

/// Every crate, and every file and folder below each crate's `src/`, is
/// named: by its path from the repository root or, inside a folder's
/// entry, by its own name.
#[test]
fn every_module_is_named() {
    let tokens = backticked(&layout_section());
    let mut unnamed: Vec<String> = LAYERS
        .iter()
        .filter(|(dir, _)| *dir != "." && !tokens.contains(*dir))
        .map(|(dir, _)| (*dir).to_owned())
        .collect();
    let mut folders = source_folders();
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(root().join(&dir)).expect("source folder readable") {
            let entry = entry.expect("entry");
            let name = entry.file_name().into_string().expect("utf-8 name");
            let path = format!("{dir}/{name}");
            if entry.file_type().expect("file type").is_dir() {
                folders.push(path.clone());
            }
            let named = tokens.contains(&path) || tokens.contains(&name);
            if !(named || ["mod.rs", "lib.rs", "main.rs"].contains(&name.as_str())) {
                unnamed.push(path);
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "README Layout does not name: {unnamed:?}"
    );
}

/// The `lamed-*` crates a manifest depends on (normal dependencies only:
/// tests may reach across, as the binary's tests do).
fn lamed_dependencies(manifest: &str) -> Vec<String> {
    let mut section = "";
    let mut found = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[dependencies]" && line.starts_with("lamed-") {
            let name = line.split([' ', '=']).next().unwrap_or_default();
            found.push(name.to_owned());
        }
    }
    found
}

/// Dependencies point down: each crate depends only on crates of a lower
/// layer (Cargo already refuses a cycle; this refuses an arrow upward).
#[test]
fn crates_depend_only_downward() {
    let layer_of: BTreeMap<String, (u8, &str)> = LAYERS
        .iter()
        .map(|(dir, layer)| {
            let name = match *dir {
                "." => "lamed".to_owned(),
                dir => format!("lamed-{}", dir.trim_start_matches("crates/")),
            };
            (name, (*layer, *dir))
        })
        .collect();
    let mut upward = Vec::new();
    for (name, (layer, dir)) in &layer_of {
        let manifest = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
        for dependency in lamed_dependencies(&manifest) {
            let Some((below, _)) = layer_of.get(&dependency) else {
                continue;
            };
            if below >= layer {
                upward.push(format!(
                    "{name} (layer {layer}) -> {dependency} (layer {below})"
                ));
            }
        }
    }
    assert!(upward.is_empty(), "dependencies pointing up: {upward:?}");
}

/// A source line with its comment cut off (a `//` outside a string is rare
/// enough in `use` paths to ignore the difference).
fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or_default()
}

/// The top-level modules a file names through `crate::` and `super::`
/// paths (`crate::{a, b::c}` too), given the file's module path
/// (`["embedded", "writer"]` for `src/embedded/writer.rs`).
fn named_modules(text: &str, module_path: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().map(code_of) {
        for (index, _) in line.match_indices("crate::") {
            if line[..index].ends_with('$') {
                continue;
            }
            let rest = &line[index + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                found.extend(group.split(',').filter_map(|item| first_ident(item.trim())));
            } else {
                found.extend(first_ident(rest));
            }
        }
        for (index, _) in line.match_indices("super::") {
            // Only the first `super` of a chain: count how many follow.
            if line[..index].ends_with("super::") {
                continue;
            }
            let mut rest = &line[index..];
            let mut depth = 0;
            while let Some(after) = rest.strip_prefix("super::") {
                depth += 1;
                rest = after;
            }
            // A file's own module is its last component; super of a
            // top-level file is the crate root.
            if depth >= module_path.len() {
                found.extend(first_ident(rest));
            } else if depth == module_path.len() - 1 {
                found.insert(module_path[0].clone());
            }
        }
    }
    found
}

/// The identifier a path starts with.
fn first_ident(path: &str) -> Option<String> {
    let ident: String = path
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// Every `.rs` file below `dir`, with its module path.
fn source_files(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_owned(), Vec::new())];
    while let Some((folder, path)) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let mut module = path.clone();
            if entry.file_type().unwrap().is_dir() {
                module.push(name);
                pending.push((entry.path(), module));
            } else if let Some(stem) = name.strip_suffix(".rs") {
                if !["mod", "lib", "main"].contains(&stem) {
                    module.push(stem.to_owned());
                }
                files.push((entry.path(), module));
            }
        }
    }
    files
}

/// A circle in `graph`, if there is one, as the modules along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, done, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// No import circle across modules: in every crate, following the
/// `crate::` and `super::` paths of each file from its top-level module
/// to the others never comes back. (The crate root, `lib.rs`, is the
/// crate's facade and is left out.)
#[test]
fn no_import_circle_between_modules() {
    let mut circles = Vec::new();
    for folder in source_folders() {
        let files = source_files(&root().join(&folder));
        let modules: BTreeSet<String> = files
            .iter()
            .filter_map(|(_, path)| path.first().cloned())
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, path) in &files {
            let Some(own) = path.first() else { continue };
            let text = std::fs::read_to_string(file).unwrap();
            let edges = graph.entry(own.clone()).or_default();
            edges.extend(
                named_modules(&text, path)
                    .into_iter()
                    .filter(|m| m != own && modules.contains(m)),
            );
        }
        if let Some(circle) = find_circle(&graph) {
            circles.push(format!("{folder}: {}", circle.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:?}");
}

/// The checker sees a circle where there is one, and a `super::` path
/// back to the crate root as the module it names.
#[test]
fn the_circle_checker_finds_circles() {
    let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        named_modules("use crate::{model::Event, value};", &path(&["store"])),
        BTreeSet::from(["model".to_owned(), "value".to_owned()])
    );
    assert_eq!(
        named_modules(
            "use super::super::clock::Clock;",
            &path(&["store", "embedded", "writer"])
        ),
        BTreeSet::from(["store".to_owned()])
    );
    assert_eq!(
        named_modules("use super::clock::Clock; // crate::x", &path(&["model"])),
        BTreeSet::from(["clock".to_owned()])
    );
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(find_circle(&graph).unwrap(), vec!["a", "b", "c", "a"]);
}
