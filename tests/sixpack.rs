//! The Sixpack API against the real binary: the PyPI `sixpack-client`
//! (1.2.0) runs a scenario and the counts are read back exactly; Sixpack's
//! wire shapes (JSONP, errors, statuses) over raw HTTP; on Redis, the same
//! client, and 503 when Redis is down.

mod util;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use util::{loadgen, test_venv_bin, Server};

const API_KEY: &str = "sixpack-test-key-0123456789";

/// Runs `tests/sixpack/scenario.py` with the venv's python against
/// `server`: the counts it says the server must hold, as
/// (experiment, event, alternative) → count.
fn run_scenario(
    server: &Server,
    clients: usize,
    assignment_clients: usize,
) -> BTreeMap<(String, String, String), u64> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sixpack/scenario.py");
    let output = Command::new(test_venv_bin().join("python"))
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .arg(clients.to_string())
        .arg(assignment_clients.to_string())
        .output()
        .expect("run the scenario");
    assert!(
        output.status.success(),
        "scenario failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<(String, String, String, u64)> =
        serde_json::from_slice(&output.stdout).expect("scenario prints its counts");
    rows.into_iter()
        .map(|(experiment, event, alternative, count)| ((experiment, event, alternative), count))
        .collect()
}

/// The scenario's counts are the server's, exactly, and no others: goals
/// from `/experiments` (Lamed's results), participants from each
/// experiment's report (`/experiments` lists trials only under goals).
async fn assert_counts(server: &Server, expected: &BTreeMap<(String, String, String), u64>) {
    let mut counted = server.counts("sixpack").await;
    counted.retain(|key, _| key.1 != "participate");
    let experiments: std::collections::BTreeSet<&str> =
        expected.keys().map(|key| key.0.as_str()).collect();
    for experiment in experiments {
        let report = server
            .get_with_key(&format!(
                "/api/experiments/{experiment}/report?namespace=sixpack"
            ))
            .await
            .json()
            .unwrap();
        for variant in report["variants"].as_array().unwrap() {
            let key = (
                experiment.to_owned(),
                "participate".to_owned(),
                variant["label"].as_str().unwrap().to_owned(),
            );
            let n = variant["participants"].as_u64().unwrap();
            if n > 0 {
                counted.insert(key, n);
            }
        }
    }
    let mismatches: Vec<_> = expected
        .iter()
        .filter(|(key, n)| counted.get(*key) != Some(n))
        .map(|(key, n)| format!("{key:?}: expected {n}, counted {:?}", counted.get(key)))
        .chain(
            counted
                .iter()
                .filter(|(key, _)| !expected.contains_key(*key))
                .map(|(key, n)| format!("{key:?}: counted {n}, expected nothing")),
        )
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// 10,000 clients get Sixpack's own alternatives (checked in Python with
/// hashlib), and 1,000 clients run participations, repeated participations,
/// KPIs, repeated conversions, traffic_fraction, force, prefetch, bots and
/// errors through the real client: the counts read back are exact, and the
/// experiments are registered with their alternatives, control first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_scenario_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", API_KEY]);
    let expected = run_scenario(&server, 1_000, 10_000);
    let assigned: u64 = expected
        .iter()
        .filter(|(key, _)| key.0 == "assignment")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(assigned, 10_000);
    assert_counts(&server, &expected).await;

    let record = server
        .get_with_key("/api/experiments/button-color?namespace=sixpack")
        .await;
    assert_eq!(record.status, 200);
    let record = record.json().unwrap();
    let variants: Vec<&str> = record["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["red", "blue", "green"]);
    assert_eq!(record["control"], "red");
}

/// GET `path` and the JSON body.
async fn get_json(server: &Server, path: &str) -> (u16, Value) {
    let answer = server.get(path).await;
    let body = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|err| panic!("{path}: {err}: {:?}", answer.body));
    (answer.status, body)
}

fn failed(message: &str) -> Value {
    json!({"status": "failed", "message": message})
}

/// Sixpack's answers and errors, byte for byte where Sixpack fixes them.
#[tokio::test]
async fn wire_shapes_match_sixpack() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", API_KEY]);
    let participate = "/participate?experiment=shape&alternatives=one&alternatives=two";

    let (status, body) = get_json(&server, &format!("{participate}&client_id=c1")).await;
    assert_eq!(status, 200);
    let shown = body["alternative"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"status": "ok", "alternative": {"name": shown}, "experiment": {"name": "shape"}, "client_id": "c1"})
    );
    let (_, body) = get_json(&server, "/convert?experiment=shape&client_id=c1&kpi=buy").await;
    assert_eq!(
        body,
        json!({"status": "ok", "alternative": {"name": shown}, "experiment": {"name": "shape"},
               "conversion": {"value": null, "kpi": "buy"}, "client_id": "c1"})
    );

    // JSONP for sixpack-js's <script> tags, errors included.
    let answer = server
        .get(&format!("{participate}&client_id=c1&callback=sixpack.cb_1"))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/javascript");
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(
        text.starts_with("sixpack.cb_1({") && text.ends_with("})"),
        "{text}"
    );
    let answer = server.get("/convert?experiment=shape&callback=cb").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        String::from_utf8(answer.body.to_vec()).unwrap(),
        r#"cb({"message":"missing arguments","status":"failed"})"#
    );
    // A callback off Sixpack's pattern is no callback.
    let answer = server
        .get(&format!("{participate}&client_id=c1&callback=alert(1)"))
        .await;
    assert_eq!(answer.headers["content-type"], "application/json");

    let too_much = format!("{participate}&client_id=c&traffic_fraction=1.5");
    let cases = [
        (
            "/participate?experiment=shape&alternatives=one&alternatives=two",
            "missing arguments",
        ),
        (
            "/participate?client_id=c&alternatives=one&alternatives=two",
            "missing arguments",
        ),
        (
            "/participate?experiment=shape&client_id=c&alternatives=one",
            "experiments require at least two alternatives",
        ),
        (
            "/participate?experiment=shape&client_id=c&alternatives=one&alternatives=tw%20o",
            "invalid alternative name",
        ),
        (
            "/participate?experiment=-shape&client_id=c&alternatives=one&alternatives=two",
            "invalid experiment name",
        ),
        (
            "/participate?experiment=shape&client_id=c&alternatives=one&alternatives=three",
            "experiment alternatives have changed. please delete in the admin",
        ),
        (too_much.as_str(), "invalid traffic fraction range"),
        (
            "/convert?experiment=shape&client_id=stranger",
            "this client was not participating",
        ),
        (
            "/convert?experiment=nothing&client_id=c1",
            "experiment does not exist",
        ),
        (
            "/convert?experiment=shape&client_id=c1&kpi=bad%20kpi",
            "invalid kpi name",
        ),
    ];
    for (path, message) in cases {
        assert_eq!(
            get_json(&server, path).await,
            (400, failed(message)),
            "{path}"
        );
    }

    // Bots: the control, nothing recorded; their conversions excluded.
    let bot = "&user_agent=Googlebot%2F2.1";
    let (_, body) = get_json(&server, &format!("{participate}&client_id=bot{bot}")).await;
    assert_eq!(body["alternative"]["name"], "one");
    let (_, body) = get_json(
        &server,
        &format!("/convert?experiment=shape&client_id=bot{bot}"),
    )
    .await;
    assert_eq!(body, json!({"status": "ok", "excluded": "true"}));
    let (status, body) = get_json(&server, "/_status").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");

    // Paused: the control, no conversions; stopped: the winner.
    let change = |body: &'static str| {
        let server = &server;
        async move {
            let answer = server
                .request(
                    "PATCH",
                    "/api/experiments/shape?namespace=sixpack",
                    &[("x-api-key", API_KEY)],
                    body.as_bytes(),
                )
                .await;
            assert_eq!(answer.status, 200, "{body}");
        }
    };
    change(r#"{"status": "paused"}"#).await;
    let (_, body) = get_json(&server, &format!("{participate}&client_id=c1")).await;
    assert_eq!(body["alternative"]["name"], "one");
    assert_eq!(body["ignored"], "paused");
    assert_eq!(
        get_json(&server, "/convert?experiment=shape&client_id=c1").await,
        (
            400,
            failed("this experiment is paused and can not receive updates.")
        )
    );
    change(r#"{"status": "stopped", "winner": "two"}"#).await;
    let (_, body) = get_json(&server, &format!("{participate}&client_id=new")).await;
    assert_eq!(body["alternative"]["name"], "two");

    // Sixpack's experiment view, behind the API key.
    assert_eq!(server.get("/experiments/shape").await.status, 401);
    let view = server.get_with_key("/experiments/shape").await;
    assert_eq!(view.status, 200);
    let view = view.json().unwrap();
    let created = view["created_at"].as_str().unwrap().to_owned();
    assert_eq!(created.len(), "2026-11-30 19:40".len(), "{created}");
    assert_eq!(
        view,
        json!({"status": "ok", "name": "shape", "alternatives": ["one", "two"],
               "created_at": created, "traffic_fraction": null, "excluded_clients": null,
               "total_participants": 1, "total_conversions": 0, "description": null,
               "winner": "two", "is_archived": false, "is_paused": false})
    );
    let missing = server.get_with_key("/experiments/nothing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json().unwrap(), failed("experiment not found"));

    // One participant and one conversion were counted, nothing else.
    let counted = server.counts("sixpack").await;
    let total: u64 = counted.values().sum();
    assert_eq!(total, 2, "{counted:?}");
}

/// On Redis: the real client's scenario counts exactly, and with Redis
/// down the Sixpack API answers 503 in Sixpack's shape.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_counts_exactly_and_refuses_when_down() {
    let mut redis = util::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--redis", &redis.url(), "--api-key", API_KEY],
    );
    let expected = run_scenario(&server, 200, 0);
    assert_counts(&server, &expected).await;

    redis.kill();
    let answer = server
        .get("/participate?experiment=x&client_id=c&alternatives=a&alternatives=b")
        .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body, failed("redis is not available"));
}

/// `lamed import --sixpack` reads a Sixpack server's Redis (written here in
/// Sixpack's layout, as its `models.py` writes it): the report shows the
/// same participants and conversions per KPI, migrated clients keep their
/// alternative and are neither counted again nor convert twice, a client
/// the traffic fraction left out stays out, the winner and the creation
/// time come along, and a second import changes nothing.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_sixpack_keeps_counts_and_clients() {
    let source = util::redis_server::RedisServer::start();
    let clients = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let mut seed = vec![
        "SADD sixpack:e old-test done-test".to_owned(),
        "RPUSH sixpack:e:old-test:alternatives red blue".to_owned(),
        r#"HSET sixpack:e:old-test created_at "2024-05-01 10:30" traffic_fraction 1"#.to_owned(),
        "SADD sixpack:e:old-test:kpis buy".to_owned(),
        "RPUSH sixpack:e:done-test:alternatives a b".to_owned(),
        r#"HSET sixpack:e:done-test created_at "2024-06-02 08:00""#.to_owned(),
        "SET sixpack:e:done-test:winner b".to_owned(),
        "ZADD sixpack:e:done-test:users 0 d0".to_owned(),
        "SETBIT sixpack:p:done-test:a:all 0 1".to_owned(),
    ];
    for (seq, client) in clients.iter().enumerate() {
        seed.push(format!("ZADD sixpack:e:old-test:users {seq} {client}"));
    }
    let bits = [
        ("sixpack:p:old-test:red:all", &[0, 2, 4][..]),
        ("sixpack:p:old-test:blue:all", &[1, 3]),
        ("sixpack:e:old-test:excluded", &[5]),
        ("sixpack:c:old-test:red:users:all", &[0]),
        ("sixpack:c:old-test/buy:blue:users:all", &[1, 3]),
    ];
    for (key, offsets) in bits {
        for offset in offsets {
            seed.push(format!("SETBIT {key} {offset} 1"));
        }
    }
    for line in &seed {
        let reply = source.cmd(line);
        assert!(!reply.starts_with('-'), "{line}: {reply}");
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "import",
        "--redis",
        &source.url(),
        "--sixpack",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut dry_run = args.to_vec();
    dry_run.push("--dry-run");
    let (code, stdout, stderr) = util::run_lamed(&dry_run, std::time::Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("would import sixpack / old-test / red: 3 participants"),
        "{stdout}"
    );
    assert!(!data.join("lamed.db").exists(), "a dry run wrote the store");
    for _ in 0..2 {
        let (code, stdout, stderr) = util::run_lamed(&args, std::time::Duration::from_secs(30));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains("sixpack: imported 2 experiments, 7 clients into namespace sixpack"),
            "{stdout}"
        );
        // Progress without a terminal: a plain line per experiment's clients.
        assert!(
            stderr
                .contains("lamed: import: sixpack: old-test (2/2): clients written: 6 clients in ")
                && stderr.contains(
                    "lamed: import: sixpack: done-test (1/2): clients written: 1 clients in "
                ),
            "{stderr}"
        );
    }
    let server = Server::start(&data, &["--api-key", API_KEY]);
    let expected: BTreeMap<(String, String, String), u64> = [
        ("old-test", "participate", "red", 3),
        ("old-test", "participate", "blue", 2),
        ("old-test", "(no kpi)", "red", 1),
        ("old-test", "buy", "blue", 2),
        ("done-test", "participate", "a", 1),
    ]
    .into_iter()
    .map(|(e, ev, v, n)| ((e.into(), ev.into(), v.into()), n))
    .collect();
    assert_counts(&server, &expected).await;

    // Migrated clients: the same alternative, nothing counted twice.
    let participate = "/participate?experiment=old-test&alternatives=red&alternatives=blue";
    for (client, alternative) in [("c0", "red"), ("c1", "blue"), ("c5", "red")] {
        let (status, body) = get_json(&server, &format!("{participate}&client_id={client}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["alternative"]["name"], alternative, "{client}");
    }
    for path in [
        "/convert?experiment=old-test&client_id=c0",
        "/convert?experiment=old-test&client_id=c1&kpi=buy",
    ] {
        assert_eq!(get_json(&server, path).await.0, 200, "{path}");
    }
    assert_eq!(
        get_json(&server, "/convert?experiment=old-test&client_id=c5").await,
        (400, failed("this client was not participating"))
    );
    assert_counts(&server, &expected).await;
    // A migrated client's first conversion on a KPI still counts.
    assert_eq!(
        get_json(&server, "/convert?experiment=old-test&client_id=c0&kpi=buy")
            .await
            .0,
        200
    );
    let mut more = expected.clone();
    more.insert(("old-test".into(), "buy".into(), "red".into()), 1);
    assert_counts(&server, &more).await;

    // Sixpack's winner: the experiment is stopped with it.
    let (_, body) = get_json(
        &server,
        "/participate?experiment=done-test&alternatives=a&alternatives=b&client_id=new",
    )
    .await;
    assert_eq!(body["alternative"]["name"], "b");
    let view = server
        .get_with_key("/experiments/old-test")
        .await
        .json()
        .unwrap();
    assert_eq!(view["created_at"], "2024-05-01 10:30");
    assert_eq!(view["alternatives"], json!(["red", "blue"]));
}

/// A flood of `/participate` calls as anonymous traffic could send it:
/// each for an experiment nobody registered, with a new client and
/// `traffic_fraction=0.01`.
fn flood(prefix: &str, calls: usize) -> Arc<Vec<String>> {
    Arc::new(
        (0..calls)
            .map(|i| {
                format!(
                    "/participate?experiment={prefix}-{i}&client_id=visitor-{i}\
                     &alternatives=a&alternatives=b&traffic_fraction=0.01"
                )
            })
            .collect(),
    )
}

const FLOOD_CALLS: usize = 10_000;

/// What a flood may add to the store: a few pages of bookkeeping, nothing
/// per call.
const FLOOD_GROWTH_BYTES: i64 = 64 * 1024;

/// The bytes of the embedded store's database and log.
fn store_bytes(data_dir: &std::path::Path) -> i64 {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("lamed.db"))
        .map(|entry| entry.metadata().unwrap().len() as i64)
        .sum()
}

/// Every experiment the namespace lists, whatever its status.
async fn listed(server: &Server) -> Vec<String> {
    let answer = server
        .get_with_key("/api/experiments?namespace=sixpack&status=all")
        .await;
    assert_eq!(answer.status, 200);
    let list = answer.json().unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// In required mode, a flood of participations for unknown experiments is
/// answered (every call, 200, the control) and writes nothing: the store
/// grows by less than 64 KB. In open mode the same flood creates at most
/// the capped number of experiments, each of them listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participate_flood_stays_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("required");
    let server = Server::start(&data, &["--registration", "required", "--api-key", API_KEY]);
    let before = store_bytes(&data);
    let report = loadgen::run(server.addr, flood("flood", FLOOD_CALLS), 8).await;
    assert_eq!(report.count(200), FLOOD_CALLS);
    let grown = store_bytes(&data) - before;
    assert!(
        grown < FLOOD_GROWTH_BYTES,
        "the store grew by {grown} bytes"
    );
    assert!(listed(&server).await.is_empty());
    drop(server);

    let cap = 20;
    let data = dir.path().join("open");
    let server = Server::start(
        &data,
        &["--max-experiments", &cap.to_string(), "--api-key", API_KEY],
    );
    let report = loadgen::run(server.addr, flood("flood", FLOOD_CALLS), 8).await;
    assert_eq!(report.count(200), FLOOD_CALLS);
    let names = listed(&server).await;
    assert_eq!(names.len(), cap, "{names:?}");
    for name in names {
        let report = server
            .get_with_key(&format!("/api/experiments/{name}/report?namespace=sixpack"))
            .await
            .json()
            .unwrap();
        let participants: u64 = report["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["participants"].as_u64().unwrap())
            .sum();
        assert_eq!(participants, 1, "{name} counted its one participant");
    }
}

/// On Redis, the required-mode flood writes no key and leaves
/// `used_memory` within 64 KB.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participate_flood_writes_nothing_to_redis() {
    let redis = util::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "--registration",
            "required",
            "--api-key",
            API_KEY,
        ],
    );
    let used_memory = || -> i64 {
        let info = redis.cmd("INFO memory");
        let line = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .expect("used_memory in INFO");
        line.trim().parse().unwrap()
    };
    // A small flood first, so that the connections are open and Redis has
    // met every command once (Redis 7 allocates a latency histogram per
    // command on its first call). The scripts' Lua heap (garbage until Lua
    // collects it) is emptied before each measure (lamed loads the scripts
    // again), so only data is compared.
    loadgen::run(server.addr, flood("warm-up", 1_000), 8).await;
    redis.cmd("SCRIPT FLUSH");
    let (before, keys) = (used_memory(), redis.cmd("DBSIZE"));
    let paths = flood("flood", FLOOD_CALLS);
    let report = loadgen::run(server.addr, Arc::clone(&paths), 8).await;
    // A 503 (Redis past the store's deadline on a loaded machine) is sent
    // again, as a client would; every call ends answered 200.
    assert_eq!(report.count(200) + report.count(503), FLOOD_CALLS);
    util::resend_until_stored(&server, &paths, &report.statuses, 8).await;
    redis.cmd("SCRIPT FLUSH");
    let grown = used_memory() - before;
    assert!(grown < FLOOD_GROWTH_BYTES, "Redis grew by {grown} bytes");
    assert_eq!(redis.cmd("DBSIZE"), keys, "no key was written");
    assert!(listed(&server).await.is_empty());
}

/// A desktop browser: the bot filter lets it through.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// The first participations of a new experiment create it and register
/// its alternatives; a pause sent meanwhile (retried until the experiment
/// exists) stays, whenever it lands: each participation writes its
/// definition only over the version of the record it read, and the
/// `PATCH` without `If-Match` is applied to the current record. A few
/// experiments in turn, since the pause lands in the window that matters
/// (between a participation's read of the record and its write) only in
/// some races.
async fn a_pause_outlives_first_participations(server: &Server) {
    const ROUNDS: usize = 5;
    const CLIENTS: usize = 50;
    for round in 0..ROUNDS {
        let experiment = format!("race-{round}");
        let record_url = format!("/api/experiments/{experiment}?namespace=sixpack");
        let participations: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let addr = server.addr;
                let path = format!(
                    "/participate?experiment={experiment}&client_id=c{n}&alternatives=a&alternatives=b"
                );
                tokio::spawn(async move {
                    let headers = [("user-agent", BROWSER)];
                    util::loadgen::request(addr, "GET", &path, &headers, b"")
                        .await
                        .expect("participate")
                })
            })
            .collect();
        let mut misses = 0;
        let paused = loop {
            let answer = server
                .request(
                    "PATCH",
                    &record_url,
                    &[("x-api-key", &server.api_key)],
                    br#"{"status": "paused"}"#,
                )
                .await;
            match answer.status {
                200 => break answer,
                404 => misses += 1,
                other => panic!("PATCH answered {other}: {:?}", answer.body),
            }
        };
        assert_eq!(paused.json().unwrap()["status"], "paused");
        for participation in participations {
            let answer = participation.await.expect("participation task");
            assert_eq!(answer.status, 200, "{:?}", answer.body);
        }
        let record = server.get_with_key(&record_url).await.json().unwrap();
        assert_eq!(
            record["status"], "paused",
            "{experiment}, paused after {misses} PATCHes found no experiment: {record}"
        );
    }
}

/// On the embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_outlives_first_participations_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", API_KEY]);
    a_pause_outlives_first_participations(&server).await;
}

/// On Redis.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_outlives_first_participations_on_redis() {
    let redis = util::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--redis", &redis.url(), "--api-key", API_KEY],
    );
    a_pause_outlives_first_participations(&server).await;
}
