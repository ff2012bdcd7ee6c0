//! The OpenAPI contract (`GET /openapi.json`) against third-party tools:
//! PyPI's `openapi-spec-validator` validates the document, and PyPI's
//! `schemathesis` fuzzes a real `lamed serve` from it, checking that no
//! answer is a 5xx and that every answer's status, content type and body
//! are the documented ones.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lamed::bots::TEST_EVENT_USER_AGENT;
use lamed::server::openapi::EXAMPLE_EXPERIMENT;
use lamed::server::routes::{Access, ROUTES};

use crate::util::{lamed_bin, test_venv_bin, Server};

const API_KEY: &str = "openapi-test-key-0123456789";

/// Longest one schemathesis run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// The served document is the one `lamed openapi` prints, holds every
/// (path, method) of the route table (a key-protected route with its
/// security and 401), and `openapi-spec-validator` finds it valid
/// OpenAPI 3.1.
#[tokio::test]
async fn served_document_is_valid_and_covers_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", API_KEY]);
    let answer = server.get("/openapi.json").await;
    assert_eq!(answer.status, 200);
    let printed = Command::new(lamed_bin()).arg("openapi").output().unwrap();
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim_end(),
        String::from_utf8_lossy(&answer.body),
        "lamed openapi prints what the server serves"
    );
    let document = answer.json().unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for route in &ROUTES {
        for endpoint in route.endpoints {
            let method = endpoint.method().as_str().to_ascii_lowercase();
            let operation = &document["paths"][route.path][&method];
            assert!(operation.is_object(), "{method} {}", route.path);
            let keyed = route.access == Access::ApiKey;
            assert_eq!(operation["responses"]["401"].is_object(), keyed);
            assert_eq!(operation["security"] != serde_json::json!([]), keyed);
        }
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &answer.body).unwrap();
    let validator = Command::new(test_venv_bin().join("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&validator.stdout);
    assert!(
        validator.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&validator.stderr)
    );
    assert!(said.contains("OK"), "{said}");
}

/// Schemathesis' figures of one run: the cases it ran and their answers'
/// statuses (from its HAR report).
struct Run {
    statuses: Vec<u16>,
    /// The bodies of the answers to `GET /track` and `GET /event`.
    tracking: Vec<String>,
    /// What it printed.
    printed: String,
}

/// Runs schemathesis against `server` from its served document, with
/// `args` (headers, operation filters), bounded in time; fails the test
/// on any failure it reports.
fn schemathesis(server: &Server, dir: &Path, name: &str, args: &[&str]) -> Run {
    let har = dir.join(format!("{name}.har"));
    let log = dir.join(format!("{name}.log"));
    let output = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    let mut child = Command::new(test_venv_bin().join("schemathesis"))
        .arg("run")
        .arg(format!("http://{}/openapi.json", server.addr))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            // Its own shapes of the fuzzed cases, then random ones: bounded
            // per operation, with a fixed seed so a run is reproducible.
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--seed",
            "20261207",
            // One worker: CPython 3.11's parser is not thread-safe under
            // hypothesis (a flaky SystemError with two).
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report",
            "har",
            "--report-har-path",
        ])
        .arg(&har)
        .args(args)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        // Its example database (`.schemathesis/`) goes to the test's
        // directory, not into the repository.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start schemathesis");
    let finished = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            // Our own child, stopped by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = finished else {
        panic!("schemathesis {name} ran out of time:\n{printed}");
    };
    assert!(status.success(), "schemathesis {name}:\n{printed}");
    let har: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&har).expect("the HAR report")).unwrap();
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    let statuses = entries
        .iter()
        .map(|entry| entry["response"]["status"].as_u64().unwrap() as u16)
        .collect();
    eprintln!(
        "schemathesis {name}: {} cases in {:.1} s, failures 0",
        entries.len(),
        started.elapsed().as_secs_f64()
    );
    let tracking = entries
        .iter()
        .filter(|entry| {
            let url = entry["request"]["url"].as_str().unwrap_or_default();
            entry["request"]["method"] == "GET"
                && (url.contains("/track?") || url.contains("/event?"))
        })
        .map(|entry| {
            let text = entry["response"]["content"]["text"].as_str();
            text.unwrap_or_default().to_owned()
        })
        .collect();
    Run {
        statuses,
        tracking,
        printed,
    }
}

/// Schemathesis fuzzes every documented operation of a real server from
/// its own document: with the key, no answer is a 5xx or undocumented,
/// and tracking both counts (a browser's User-Agent) and answers bots as
/// documented (schemathesis' own agent); without the key,
/// every key-protected operation answers its documented 401 (403 for
/// the keys schemathesis makes up).
#[tokio::test]
async fn schemathesis_finds_no_answer_outside_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", API_KEY]);
    // The experiment the document's examples name, with participants and
    // a conversion, so that its record, report and weights answer 200.
    let put = server
        .request(
            "PUT",
            &format!(
                "/api/experiments/{}",
                EXAMPLE_EXPERIMENT.replace(' ', "%20")
            ),
            &[("x-api-key", API_KEY)],
            br#"{"variants": ["red", "blue"], "goals": ["checkout"]}"#,
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    for (variant, event, uuid) in [
        ("red", "participate", "u1"),
        ("blue", "participate", "u2"),
        ("blue", "checkout", "u2"),
    ] {
        let experiment = EXAMPLE_EXPERIMENT.replace(' ', "+");
        let path =
            format!("/track?experiment={experiment}&variant={variant}&event={event}&uuid={uuid}");
        let answer = server
            .request("GET", &path, &[("user-agent", TEST_EVENT_USER_AGENT)], b"")
            .await;
        assert_eq!(&answer.body[..], b"{}");
    }
    // The User-Agent is the document's parameter of `GET /track`: its
    // example is a browser's, schemathesis' own agent is a script's.
    let key = format!("X-Api-Key: {API_KEY}");
    let keyed = schemathesis(&server, dir.path(), "with-key", &["-H", &key]);
    assert!(
        keyed.tracking.iter().any(|answer| answer == "{}"),
        "none counted"
    );
    assert!(
        keyed
            .tracking
            .iter()
            .any(|answer| answer.contains(r#""ignored":"bot""#)),
        "no bot answered"
    );
    assert!(keyed.statuses.len() > 200, "{} cases", keyed.statuses.len());
    assert!(keyed.statuses.contains(&200));
    // Every operation but the document's own, which schemathesis leaves.
    let operations: usize = ROUTES.iter().map(|route| route.endpoints.len()).sum();
    let tested = format!("Tested: {}", operations - 1);
    assert!(
        keyed.printed.contains(&tested),
        "{tested} in:\n{}",
        keyed.printed
    );

    let keyless = schemathesis(
        &server,
        dir.path(),
        "without-key",
        &[
            "--exclude-by",
            "/security == []",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "3",
        ],
    );
    // Schemathesis also sends keys of its own making: those are wrong.
    assert!(keyless.statuses.contains(&401));
    assert!(
        keyless
            .statuses
            .iter()
            .all(|status| [401, 403].contains(status)),
        "{:?}",
        keyless.statuses
    );
    let keyed: usize = ROUTES
        .iter()
        .filter(|route| route.access == Access::ApiKey)
        .map(|route| route.endpoints.len())
        .sum();
    let tested = format!("Tested: {keyed}");
    assert!(
        keyless.printed.contains(&tested),
        "{tested} in:\n{}",
        keyless.printed
    );
}
