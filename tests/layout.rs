//! README.md's "Layout" section matches the tree: every path it names
//! exists, and every module of `src/` (file or folder) is named, so a
//! newcomer can trust it to find each concept.

use std::collections::BTreeSet;
use std::path::Path;

/// The text of the README's `## Layout` section.
fn layout_section() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md readable");
    let start = readme
        .find("\n## Layout\n")
        .expect("README has a Layout section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_owned()
}

/// Every backticked token that looks like a repository path.
fn named_paths(section: &str) -> BTreeSet<String> {
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|token| token.contains('/') && !token.contains(' '))
        .map(|token| token.trim_end_matches('/').to_owned())
        .collect()
}

/// Every path the section names exists.
#[test]
fn named_paths_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let named = named_paths(&layout_section());
    assert!(named.len() > 10, "too few paths found: {named:?}");
    let missing: Vec<_> = named.iter().filter(|p| !root.join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "README Layout names missing paths: {missing:?}"
    );
}

/// Every module of `src/` and of `src/store/` (file or folder) is named.
#[test]
fn every_module_is_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let named = named_paths(&layout_section());
    let mut unnamed = Vec::new();
    for dir in ["src", "src/store", "src/server"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("source folder readable") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8 name");
            let path = format!("{dir}/{}", name);
            if name == "mod.rs" || name == "lib.rs" || named.contains(&path) {
                continue;
            }
            unnamed.push(path);
        }
    }
    assert!(
        unnamed.is_empty(),
        "README Layout does not name: {unnamed:?}"
    );
}
