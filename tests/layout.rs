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

/// Every file and folder below `src/` is named, by its path from the
/// repository root or, inside a folder's entry, by its own name.
#[test]
fn every_module_is_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tokens = backticked(&layout_section());
    let mut unnamed = Vec::new();
    let mut folders = vec!["src".to_owned()];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(root.join(&dir)).expect("source folder readable") {
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
