//! `lamed backup` and `lamed restore` on the real binary: a backup taken
//! while a load is being counted restores to exact counts and a dedupe
//! memory that agrees with them; restore refuses a served data directory.

use crate::util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{loadgen, run_lamed, track, Server};

/// Concurrent senders of the load.
const SENDERS: usize = 8;

/// One event of the load: when it was sent, when its answer came.
struct Sent {
    uuid: String,
    sent: Instant,
    answered: Instant,
    status: u16,
}

/// The events of the load, each a goal completion with its own uuid (a
/// goal, so that `/experiments` shows its count).
fn event(uuid: &str) -> serde_json::Value {
    serde_json::json!({
        "namespace": "backup", "experiment": "load", "variant": "a",
        "event": "done", "uuid": uuid
    })
}

/// The counted total in a `lamed backup` or `lamed restore` line.
fn events_in(line: &str) -> u64 {
    let (_, after) = line.rsplit_once(": ").expect("summary after ': '");
    after
        .split_once(" events counted")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// A backup taken under load restores to the counts of one moment between
/// the backup's start and its end: every event answered 200 before it
/// began is counted, none first sent after it ended is, and the restored
/// total is the one the backup printed. Re-sending every event then shows
/// the dedupe memory agrees: exactly the events the backup counted are
/// duplicates. Restoring into the served data directory is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_exact_counts_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (live, restored) = (dir.path().join("live"), dir.path().join("restored"));
    let file = dir.path().join("lamed-backup.db");
    let server = Server::start(&live, &[]);
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let uuid = format!("s{sender}-{i}");
                    let started = Instant::now();
                    let path = track("backup", "load", "a", "done", &uuid);
                    let status = loadgen::request(addr, "GET", &path, &[], b"")
                        .await
                        .map_or(0, |answer| answer.status);
                    sent.push(Sent {
                        uuid,
                        sent: started,
                        answered: Instant::now(),
                        status,
                    });
                }
                sent
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let began = Instant::now();
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let (file, live) = (file.clone(), live.clone());
        move || {
            run_lamed(
                &[
                    "backup",
                    file.to_str().unwrap(),
                    "--data-dir",
                    live.to_str().unwrap(),
                ],
                Duration::from_secs(30),
            )
        }
    })
    .await
    .unwrap();
    let ended = Instant::now();
    assert_eq!(code, Some(0), "{stderr}");
    let backed_up = events_in(&stdout);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Refused while the server runs, and nothing changed.
    let (code, _, stderr) = run_lamed(
        &[
            "restore",
            file.to_str().unwrap(),
            "--force",
            "--data-dir",
            live.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("a server is running on this data directory"),
        "{stderr}"
    );

    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    drop(server);
    let before: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status == 200 && s.answered < began)
        .collect();
    let after = sent.iter().filter(|s| s.sent > ended).count();
    assert!(
        !before.is_empty() && after > 0,
        "the load ran across the backup"
    );
    assert!(
        backed_up >= before.len() as u64,
        "{backed_up} < {}",
        before.len()
    );

    let (code, stdout, stderr) = run_lamed(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events_in(&stdout), backed_up, "{stdout}");

    let server = Server::start(&restored, &[]);
    let total = |counts: &std::collections::BTreeMap<loadgen::CounterId, u64>| -> u64 {
        counts.values().sum()
    };
    assert_eq!(total(&server.counts("backup").await), backed_up);

    // Every event once more, in batches: the backup's own are duplicates.
    let mut duplicates = std::collections::HashSet::new();
    for chunk in sent.chunks(500) {
        let body = serde_json::Value::Array(chunk.iter().map(|s| event(&s.uuid)).collect());
        let answer = server
            .request(
                "POST",
                "/track",
                &[("content-type", "application/json")],
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let answer: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        for (s, result) in chunk.iter().zip(answer["results"].as_array().unwrap()) {
            match result["status"].as_str() {
                Some("duplicate") => {
                    duplicates.insert(s.uuid.as_str());
                }
                Some("counted") => {}
                other => panic!("{}: {other:?}", s.uuid),
            }
        }
    }
    assert_eq!(duplicates.len() as u64, backed_up, "dedupe memory = counts");
    for s in &before {
        assert!(duplicates.contains(s.uuid.as_str()), "{} lost", s.uuid);
    }
    for s in sent.iter().filter(|s| s.sent > ended) {
        assert!(
            !duplicates.contains(s.uuid.as_str()),
            "{} is from after",
            s.uuid
        );
    }
    assert_eq!(total(&server.counts("backup").await), sent.len() as u64);
}

/// A configuration on Redis has no data directory to back up: said so.
#[test]
fn backup_refuses_a_redis_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_lamed(
        &[
            "backup",
            dir.path().join("b.db").to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            write_config(dir.path(), r#"{"redis": "redis://127.0.0.1:1/0"}"#).as_str(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("back up Redis itself"), "{stderr}");
}

fn write_config(dir: &std::path::Path, json: &str) -> String {
    let path = dir.join("config.json");
    std::fs::write(&path, json).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A lamed deployment on Redis comes back from a copy of its RDB file in a
/// new Redis: the same counts and records, and the dedupe memory with it
/// (every event sent again counts nothing).
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_deployment_comes_back_from_its_rdb_file() {
    use util::redis_server::RedisServer;

    let dir = tempfile::tempdir().unwrap();
    let (saved, restored) = (dir.path().join("saved"), dir.path().join("restored"));
    std::fs::create_dir(&saved).unwrap();
    std::fs::create_dir(&restored).unwrap();
    let source = RedisServer::start_with(&["--dir", saved.to_str().unwrap()]);
    let key = "redis-backup-key-0123456789";
    let server = Server::start(
        &dir.path().join("a"),
        &["--redis", &source.url(), "--api-key", key],
    );
    let mut paths = Vec::new();
    for i in 0..40 {
        let variant = if i % 2 == 0 { "red" } else { "blue" };
        paths.push(track(
            "rdb",
            "color",
            variant,
            "participate",
            &format!("p{i}"),
        ));
        if i % 3 == 0 {
            paths.push(track("rdb", "color", variant, "checkout", &format!("c{i}")));
        }
    }
    for path in &paths {
        assert_eq!(server.get(path).await.status, 200);
    }
    let registered = server
        .request(
            "PUT",
            "/api/experiments/planned?namespace=rdb",
            &[("x-api-key", key)],
            br#"{"variants": ["a", "b"], "goals": ["signup"], "description": "not started"}"#,
        )
        .await;
    assert_eq!(registered.status, 201);
    let report = |server: &Server| {
        let addr = server.addr;
        async move {
            let results = loadgen::request(
                addr,
                "GET",
                "/experiments?namespace=rdb",
                &[("x-api-key", key)],
                b"",
            )
            .await
            .unwrap();
            let records = loadgen::request(
                addr,
                "GET",
                "/api/experiments?namespace=rdb&status=all",
                &[("x-api-key", key)],
                b"",
            )
            .await
            .unwrap();
            (
                String::from_utf8(results.body.to_vec()).unwrap(),
                String::from_utf8(records.body.to_vec()).unwrap(),
            )
        }
    };
    let before = report(&server).await;
    assert!(before.0.contains("\"successes\":"), "{}", before.0);
    drop(server);

    assert!(source.cmd("SAVE").contains("OK"));
    std::fs::copy(saved.join("dump.rdb"), restored.join("dump.rdb")).unwrap();
    let copy = RedisServer::start_with(&["--dir", restored.to_str().unwrap()]);
    let server = Server::start(
        &dir.path().join("b"),
        &["--redis", &copy.url(), "--api-key", key],
    );
    assert_eq!(report(&server).await, before);
    for path in &paths {
        assert_eq!(server.get(path).await.status, 200);
    }
    assert_eq!(
        report(&server).await,
        before,
        "re-sent events counted again"
    );
}

/// Backing up a data directory without a store, or restoring a file that
/// is no backup, fails with exit 1 and says which.
#[test]
fn backup_and_restore_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("b.db");
    let (code, _, stderr) = run_lamed(
        &[
            "backup",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no store at"), "{stderr}");
    assert!(!file.exists());
    std::fs::write(&file, "not a database").unwrap();
    let (code, _, stderr) = run_lamed(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is not a lamed backup"), "{stderr}");
}
