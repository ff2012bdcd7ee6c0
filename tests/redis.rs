//! `lamed serve` and `lamed import` on Redis, over real HTTP against the
//! real binary, each test with its own private `redis-server`.

#![cfg(feature = "redis")]

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lamed_load::{self as loadgen, Workload, WorkloadSpec};
use util::redis_server::{free_port, RedisServer};
use util::{run_lamed, Server};

const API_KEY: &str = "redis-test-key-0123456789";

fn workload(namespace: &str, total: usize, seed: u64) -> Workload {
    Workload::generate(&WorkloadSpec::standard(namespace, total, 0.25, seed))
}

fn serve_on(redis: &RedisServer, dir: &std::path::Path, name: &str) -> Server {
    Server::start(
        &dir.join(name),
        &["--redis", &redis.url(), "--api-key", API_KEY],
    )
}

/// Two `lamed serve` instances share one Redis; the same 20,000 events
/// (a quarter duplicates) go to both at once over 64 connections each, so
/// every uuid races against itself across instances: every count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_count_exactly_on_one_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = serve_on(&redis, dir.path(), "a");
    let b = serve_on(&redis, dir.path(), "b");
    let workload = workload("shared", 20_000, 5);
    let paths = Arc::new(workload.paths("/track"));
    let (ra, rb) = tokio::join!(
        loadgen::run(a.addr, Arc::clone(&paths), 64),
        loadgen::run(b.addr, Arc::clone(&paths), 64)
    );
    assert_eq!(ra.count(200), paths.len());
    assert_eq!(rb.count(200), paths.len());
    for server in [&a, &b] {
        let mismatches = workload.mismatches(&server.counts("shared").await);
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}

/// Redis is killed during a load and restarted on the same port (append
/// only file, fsync always). While it is down, tracking answers 503 within
/// a second and /health says unavailable (no detail); afterwards tracking
/// succeeds again without restarting lamed; every event acknowledged with
/// 200 is counted, and after the client-style re-send every count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_answers_503_and_loses_nothing() {
    let mut redis = RedisServer::start_durable();
    let dir = tempfile::tempdir().unwrap();
    // Quiet: the outage makes thousands of 503s, each logged otherwise.
    let server = Server::start_logging(
        "127.0.0.1:0",
        &dir.path().join("data"),
        &["--redis", &redis.url(), "--api-key", API_KEY],
        "off",
    );
    let workload = workload("outage", 20_000, 11);
    let paths = Arc::new(workload.paths("/track"));

    let load = tokio::spawn(loadgen::run(server.addr, Arc::clone(&paths), 32));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    // In a namespace of its own: the workload's counts are compared whole.
    let probe = util::track("outage-probe", "probe", "a", "participate", "p1");
    for _ in 0..3 {
        let started = Instant::now();
        let answer = server.get(&probe).await;
        assert_eq!(answer.status, 503, "{:?}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let health = server.get("/health").await;
    assert_eq!(health.status, 503);
    // What is wrong is for the operator (log, /metrics), not the public.
    assert_eq!(
        health.json().unwrap(),
        serde_json::json!({"status": "unavailable"})
    );
    let metrics = server.get_with_key("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("\nlamed_store_healthy 0\n"), "{text}");
    let report = load.await.unwrap();
    assert!(report.count(503) > 0, "the outage came after the load");
    assert!(
        report.count(200) > 0,
        "nothing was answered before the outage"
    );
    assert_eq!(report.count(200) + report.count(503), paths.len());

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get(&probe).await.status != 200 {
        assert!(Instant::now() < deadline, "lamed did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acknowledged = workload.acknowledged(&report.statuses);
    let counts = server.counts("outage").await;
    for (id, uuids) in &acknowledged {
        let got = counts.get(id).copied().unwrap_or(0);
        assert!(got >= uuids.len() as u64, "{id:?} lost events: {got}");
        assert!(got <= workload.truth[id], "{id:?} over-counted: {got}");
    }
    // Everything sent again, as AlephBet re-sends its queue; what passes
    // the store's deadline on a loaded machine is sent once more.
    let report = loadgen::run(server.addr, Arc::clone(&paths), 32).await;
    util::resend_until_stored(&server, &paths, &report.statuses, 32).await;
    let mismatches = workload.mismatches(&server.counts("outage").await);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// The keys of the registry hashes (one per experiment with a record).
fn registry_keys(redis: &RedisServer) -> std::collections::BTreeSet<String> {
    // A RESP array: "*<n>", then "$<len>" and the key, per key.
    redis
        .cmd("KEYS *:r")
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with(['*', '$']))
        .map(str::to_owned)
        .collect()
}

/// Overwrites the record of the one experiment given a record since
/// `before` (the registry keys then) with text that is not JSON.
fn corrupt_new_record(redis: &RedisServer, before: &std::collections::BTreeSet<String>) {
    let now = registry_keys(redis);
    let new: Vec<&String> = now.difference(before).collect();
    assert_eq!(new.len(), 1, "one new record: {now:?}");
    let reply = redis.cmd(&format!("HSET {} record {{not-json", new[0]));
    assert!(reply.starts_with(':'), "HSET answered {reply:?}");
}

/// A record that does not parse, written straight into Redis, is a fault
/// no retry fixes: reading it answers 500 with a short public message and
/// no `Retry-After` (not the 503 of an outage), on the API and, in
/// Sixpack's shape, on Sixpack's; `/metrics` counts each; an experiment
/// whose record is sound is still served.
#[tokio::test]
async fn a_corrupt_record_answers_500_not_503() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_logging(
        "127.0.0.1:0",
        &dir.path().join("data"),
        &["--redis", &redis.url(), "--api-key", API_KEY],
        // The faults are logged at error level on purpose.
        "off",
    );
    let internal_errors = || async {
        let metrics = server.get_with_key("/metrics").await;
        let text = String::from_utf8_lossy(&metrics.body).into_owned();
        text.lines()
            .find_map(|line| line.strip_prefix("lamed_internal_errors_total "))
            .unwrap_or_else(|| panic!("no internal errors counter in {text}"))
            .to_owned()
    };
    assert_eq!(internal_errors().await, "0");

    // Tracking an unknown experiment writes its record (open mode).
    let before = registry_keys(&redis);
    let track = util::track("n", "broken", "a", "participate", "u1");
    assert_eq!(server.get(&track).await.status, 200);
    corrupt_new_record(&redis, &before);
    let track = util::track("n", "sound", "a", "participate", "u1");
    assert_eq!(server.get(&track).await.status, 200);

    let answer = server
        .get_with_key("/api/experiments/broken?namespace=n")
        .await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert!(answer.headers.get("retry-after").is_none());
    assert_eq!(
        answer.json().unwrap(),
        serde_json::json!({"error": "internal error: see the server log"})
    );
    let answer = server
        .get_with_key("/api/experiments/sound?namespace=n")
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(internal_errors().await, "1");

    let participate = |client: &str| {
        format!(
            "/participate?experiment=shade&client_id={client}&alternatives=red&alternatives=blue"
        )
    };
    let before = registry_keys(&redis);
    assert_eq!(server.get(&participate("c1")).await.status, 200);
    corrupt_new_record(&redis, &before);
    let answer = server.get(&participate("c2")).await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert!(answer.headers.get("retry-after").is_none());
    assert_eq!(
        answer.json().unwrap(),
        serde_json::json!({"status": "failed", "message": "internal error: see the server log"})
    );
    assert_eq!(internal_errors().await, "2");
}

/// Seeds a Redis the way Lamed (integer counters) and Gimel (HyperLogLog
/// counters) lay data out, including names with ':' and spaces.
async fn seed_lamed_and_gimel(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    let lamed = [
        ("button color", "participate", "red", 402),
        ("button color", "participate", "blue", 398),
        ("button color", "checkout", "red", 31),
        ("button color", "checkout", "blue", 45),
        ("pricing:v2", "participate", "cheap", 10),
        ("pricing:v2", "buy now!", "cheap", 3),
    ];
    for (experiment, event, variant, count) in lamed {
        let key = format!("alephbet:counters:{experiment}:{event}:{variant}");
        pipe.cmd("SET").arg(&key).arg(count).ignore();
        pipe.cmd("SADD")
            .arg("alephbet:counter_keys")
            .arg(&key)
            .ignore();
        pipe.cmd("SADD")
            .arg(format!("alephbet:{experiment}:counter_keys"))
            .arg(&key)
            .ignore();
        pipe.cmd("SADD")
            .arg("alephbet:experiments")
            .arg(experiment)
            .ignore();
    }
    // A Lamed dedupe flag: not a counter, never imported.
    pipe.cmd("SET")
        .arg("0123456789abcdef0123456789abcdef01234567")
        .arg(1)
        .arg("EX")
        .arg(86_400)
        .ignore();
    for (event, variant, uniques) in [
        ("participate", "a", 120),
        ("participate", "b", 80),
        ("signup", "a", 12),
    ] {
        let key = format!("gimel:counters:hero:{event}:{variant}");
        let mut pfadd = redis::cmd("PFADD");
        pfadd.arg(&key);
        for i in 0..uniques {
            pfadd.arg(format!("user-{event}-{variant}-{i}"));
        }
        pipe.add_command(pfadd).ignore();
        pipe.cmd("SADD")
            .arg("gimel:counter_keys")
            .arg(&key)
            .ignore();
        pipe.cmd("SADD")
            .arg("gimel:experiments")
            .arg("hero")
            .ignore();
    }
    pipe.exec_async(&mut conn).await.unwrap();
}

/// `lamed import` from a Redis seeded as Lamed and Gimel leave it: a dry
/// run writes nothing; the real run sets every counter (Gimel's marked
/// approximate) in the embedded store and, separately, in a Redis store;
/// `lamed serve` then answers those counts, and a second run changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_lamed_and_gimel_is_idempotent() {
    let source = RedisServer::start();
    seed_lamed_and_gimel(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let limit = Duration::from_secs(20);

    let (code, stdout, stderr) = run_lamed(
        &[
            "import",
            "--redis",
            &source.url(),
            "--dry-run",
            "--data-dir",
            data_arg,
        ],
        limit,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("would import alephbet / pricing:v2 / buy now! / cheap = 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would import gimel / hero / participate / a = 120 (approximate)"),
        "{stdout}"
    );
    assert!(stdout.contains("(approximate)"), "{stdout}");
    assert!(stdout.contains("namespace (all): 9 counters"), "{stdout}");
    assert!(!data.join("lamed.db").exists(), "a dry run wrote the store");

    let target = RedisServer::start();
    let source_url = source.url();
    for target_args in [
        vec!["--data-dir", data_arg],
        vec!["--data-dir", data_arg, "--to-redis", &target.url()],
    ] {
        let mut args = vec!["import", "--redis", &source_url];
        args.extend(&target_args);
        let (code, stdout, stderr) = run_lamed(&args, limit);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains("namespace (all): 9 counters")
                && stdout.contains("9 changed, 0 unchanged"),
            "{stdout}"
        );
        assert!(stdout.contains("3 approximate"), "{stdout}");
        // Progress without a terminal: plain lines, one as each pass ends
        // (the scans through all 16 keys of the source, the counters read
        // and written per namespace), with no bar drawn.
        for line in [
            "lamed: import: namespaces: keys scanned: 16 keys in ",
            "lamed: import: alephbet: keys scanned: 16 keys in ",
            "lamed: import: alephbet: counters read: 6 counters in ",
            "lamed: import: alephbet: counters written: 6 counters in ",
            "lamed: import: gimel: counters written: 3 counters in ",
        ] {
            assert!(stderr.contains(line), "{line}: {stderr}");
        }
        assert!(!stderr.contains('\r') && !stderr.contains("[="), "{stderr}");
        let (code, stdout, stderr) = run_lamed(&args, limit);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("0 changed, 9 unchanged"), "{stdout}");
    }

    for extra in [vec![], vec!["--redis", &target.url()]] {
        let mut args = vec!["--api-key", API_KEY];
        args.extend(extra);
        let server = Server::start(&data, &args);
        let counts = server.counts("alephbet").await;
        let id = |e: &str, ev: &str, v: &str| (e.to_owned(), ev.to_owned(), v.to_owned());
        assert_eq!(counts[&id("button color", "participate", "red")], 402);
        assert_eq!(counts[&id("button color", "checkout", "blue")], 45);
        assert_eq!(counts[&id("pricing:v2", "buy now!", "cheap")], 3);
        let gimel = server.counts("gimel").await;
        let hero_a = gimel[&id("hero", "participate", "a")];
        assert!((118..=122).contains(&hero_a), "{hero_a}");
        assert_eq!(gimel[&id("hero", "signup", "a")], 12);
        // Tracking adds on top of the imported base.
        let answer = server
            .get(&util::track(
                "alephbet",
                "pricing:v2",
                "cheap",
                "participate",
                "new",
            ))
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            server.counts("alephbet").await[&id("pricing:v2", "participate", "cheap")],
            11
        );
    }
}

/// On a terminal (a pseudo-terminal made by util-linux's `script`),
/// `lamed import` draws progress bars, each naming its pass with the count
/// out of the total, the rate and the time left, and clears them when the
/// pass ends, leaving its plain closing line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_draws_bars_on_a_terminal() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        eprintln!("SKIPPED: no /usr/bin/script (util-linux) to make a terminal");
        return;
    }
    let source = RedisServer::start();
    seed_lamed_and_gimel(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let command = format!(
        "stty cols 120 rows 40; exec {} import --redis {} --data-dir {}",
        util::lamed_bin(),
        source.url(),
        data.display()
    );
    let mut child = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .env_remove("LAMED_REDIS_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lamed import on a terminal still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for drawn in [
        "lamed: import: namespaces: keys scanned [",
        "lamed: import: alephbet: counters written [",
        "/6 counters (",
        "/s, ",
        " left)",
        // Cleared when done: erase the line.
        "\x1b[2K",
        "lamed: import: alephbet: counters written: 6 counters in ",
    ] {
        assert!(screen.contains(drawn), "{drawn:?} not drawn: {screen:?}");
    }
    assert!(screen.contains("9 changed, 0 unchanged"), "{screen}");
}

/// A Redis that may evict lamed's keys (the managed-Redis default
/// `volatile-lru`) stops `lamed serve` with exit code 1 before it binds or
/// prints its banner, the message naming the policy and the fix.
#[test]
fn an_evicting_redis_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_with_policy("volatile-lru");
    let (code, stdout, stderr) = run_lamed(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--redis",
            &redis.url(),
        ],
        Duration::from_secs(15),
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    for needle in [
        "lamed: cannot open the redis store at",
        "maxmemory-policy is volatile-lru",
        "CONFIG SET maxmemory-policy noeviction",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

/// Bad Redis settings stop `lamed serve` at start with exit code 1 and a
/// message naming the problem (no panic, no hang, no password echoed):
/// nothing listening, a wrong password, TLS to a plain port, a malformed
/// config object.
#[test]
fn bad_redis_settings_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let locked = RedisServer::start_with(&["--appendonly", "no", "--requirepass", "right-pass"]);
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let wrong_password = format!("redis://:wrong-pass@127.0.0.1:{}", locked.port);
    let tls_to_plain = format!("rediss://127.0.0.1:{}", locked.port);
    for (url, needle) in [
        (closed.as_str(), "cannot connect"),
        (wrong_password.as_str(), "pass"),
        (tls_to_plain.as_str(), "rediss://127.0.0.1"),
    ] {
        let started = Instant::now();
        let (code, stdout, stderr) = run_lamed(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data_arg,
                "--redis",
                url,
            ],
            Duration::from_secs(15),
        );
        assert_eq!(code, Some(1), "{url}: {stdout}{stderr}");
        assert!(
            stderr.contains("lamed: cannot open the redis store at"),
            "{url}: {stderr}"
        );
        assert!(stderr.to_lowercase().contains(needle), "{url}: {stderr}");
        assert!(
            !stderr.contains("wrong-pass") && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{url}: {:?}",
            started.elapsed()
        );
    }
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"redis": {"host": "127.0.0.1", "port": "six"}}"#,
    )
    .unwrap();
    let (code, _, stderr) = run_lamed(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        Duration::from_secs(15),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("redis port must be an integer"), "{stderr}");
}

/// Instances sharing a Redis must share the dedupe window: with one
/// `lamed serve` running at the default window, a second with
/// `--uuid-expiry-seconds 60` exits 1 before printing its banner, and
/// `lamed import` into that Redis with a config of 60 s fails too, each
/// naming both windows and the fix. The first instance keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_window_on_the_same_redis_fails_at_start() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let first = serve_on(&redis, dir.path(), "first");
    let config = dir.path().join("sixty.json");
    std::fs::write(&config, r#"{"uuid_expiry_seconds": 60}"#).unwrap();
    let data = dir.path().join("second");
    let (data, config) = (data.to_str().unwrap(), config.to_str().unwrap());
    let url = redis.url();
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--redis",
        &url,
        "--uuid-expiry-seconds",
        "60",
    ];
    let import = [
        "import",
        "--redis",
        &url,
        "--to-redis",
        &url,
        "--config",
        config,
        "--data-dir",
        data,
    ];
    for (args, context) in [
        (&serve[..], "lamed: cannot open the redis store at"),
        (&import[..], "cannot open the target store"),
    ] {
        let (code, stdout, stderr) = run_lamed(args, Duration::from_secs(15));
        assert_eq!(code, Some(1), "{args:?}: {stdout}{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
        for needle in [
            context,
            "uuid_expiry_seconds = 86400,",
            "configured with 60;",
            "fix: set uuid_expiry_seconds = 86400",
        ] {
            assert!(stderr.contains(needle), "{args:?}: {needle}: {stderr}");
        }
    }
    let answer = first
        .get(&util::track("n", "e", "a", "participate", "u1"))
        .await;
    assert_eq!(answer.status, 200);
}
