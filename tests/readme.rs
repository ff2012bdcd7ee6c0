//! README.md's generated tables are the ones rendered from their single
//! source: the settings table from the settings' definitions (as the
//! command line embeds them), the HTTP API table from the route table.
//! Run with `LAMED_UPDATE_README=1` to rewrite a table that differs.

use std::path::Path;

use clap::CommandFactory;

/// Checks the README's text between `<!-- {name}:begin -->` and
/// `<!-- {name}:end -->` against `expected`, or rewrites it when
/// `LAMED_UPDATE_README` is set.
fn assert_section_is(name: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = format!("<!-- {name}:begin -->\n");
    let end_marker = format!("<!-- {name}:end -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin:?} marker"))
        + begin.len();
    let end = readme
        .find(&end_marker)
        .unwrap_or_else(|| panic!("README has no {end_marker:?} marker"));
    if readme[start..end] == *expected {
        return;
    }
    if std::env::var_os("LAMED_UPDATE_README").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's {name} table is not its source's; run \
         LAMED_UPDATE_README=1 cargo test --test readme, or paste:\n{expected}"
    );
}

/// The settings table is the settings' definitions, as `lamed serve`
/// takes them.
#[test]
fn settings_table_is_current() {
    let cli = lamed::cli::Cli::command();
    assert_section_is("settings", &lamed::settings::readme_table(&cli));
}

/// The HTTP API table is the route table.
#[test]
fn routes_table_is_current() {
    assert_section_is("routes", &lamed::server::routes::readme_table());
}

/// The quick start's test event is the one the banner prints.
#[test]
fn test_event_is_the_banners() {
    let command = lamed::snippet::test_event_command("http://127.0.0.1:8080");
    assert_section_is("test-event", &format!("```sh\n{command}\n```\n"));
}
