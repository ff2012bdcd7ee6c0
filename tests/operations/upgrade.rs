//! Upgrades: a data directory written by a released lamed
//! (`tests/data/upgrade/`, made by `scripts/make-upgrade-fixture.sh`) is
//! served by this binary with the same counts and records, and the events
//! it had counted still count once.

use crate::util;

use std::path::{Path, PathBuf};

use util::Server;

/// The fixture's API key (the script passes it with `--api-key`).
const KEY: &str = "upgrade-fixture-key-0123456789";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade")
}

fn read_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What must not change of a registry record: its name, status,
/// description, control, variants and goals by name.
fn essentials(records: &serde_json::Value) -> Vec<serde_json::Value> {
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    records
        .as_array()
        .expect("records are a list")
        .iter()
        .map(|record| {
            serde_json::json!({
                "name": record["name"], "status": record["status"],
                "description": record["description"], "control": record["control"],
                "variants": names(&record["variants"]), "goals": names(&record["goals"]),
            })
        })
        .collect()
}

/// Each namespace's `/experiments` answer and its records' essentials.
async fn answers(
    server: &Server,
    namespaces: &[&'static str],
) -> Vec<(&'static str, serde_json::Value, Vec<serde_json::Value>)> {
    let json = |answer: util::Answer| -> serde_json::Value {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).unwrap()
    };
    let mut answers = Vec::new();
    for &ns in namespaces {
        let results = json(
            server
                .get_with_key(&format!("/experiments?namespace={ns}"))
                .await,
        );
        let records = json(
            server
                .get_with_key(&format!("/api/experiments?namespace={ns}&status=all"))
                .await,
        );
        answers.push((ns, results, essentials(&records)));
    }
    answers
}

/// The released data directory, copied and served by this binary: the
/// same `/experiments` answers and records in every namespace; every
/// event the release counted (tracking and Sixpack alike) sent again
/// changes nothing; a new event counts.
#[tokio::test]
async fn a_data_directory_of_the_last_release_serves_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(fixture().join("data/lamed.db"), data.join("lamed.db")).unwrap();
    // The window of the fixture: its events stay remembered however old.
    let server = Server::start(
        &data,
        &[
            "--api-key",
            KEY,
            "--uuid-expiry-seconds",
            "0",
            "--bot-filter=false",
        ],
    );
    let namespaces = ["alephbet", "shop", "sixpack"];
    let expected: Vec<_> = namespaces
        .iter()
        .map(|&ns| {
            (
                ns,
                read_json(&format!("experiments-{ns}.json")),
                essentials(&read_json(&format!("registry-{ns}.json"))),
            )
        })
        .collect();
    assert_eq!(answers(&server, &namespaces).await, expected);

    let events = std::fs::read_to_string(fixture().join("events.txt")).unwrap();
    for path in events.lines().filter(|line| !line.is_empty()) {
        let answer = server.get(path).await;
        assert_eq!(
            answer.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert_eq!(
        answers(&server, &namespaces).await,
        expected,
        "re-sent events counted again"
    );

    let answer = server
        .get(&util::track(
            "alephbet",
            "button color",
            "red",
            "participate",
            "new-visitor",
        ))
        .await;
    assert_eq!(answer.status, 200);
    let counts = server.counts("alephbet").await;
    let before = util::loadgen::counts_from_results(&expected[0].1).unwrap();
    let key = |event: &str| -> util::loadgen::CounterId {
        ("button color".into(), event.into(), "red".into())
    };
    assert_eq!(counts[&key("participate")], before[&key("participate")] + 1);
}
