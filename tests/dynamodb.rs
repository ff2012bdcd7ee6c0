//! `lamed serve --dynamodb-table` over real HTTP against the real binary:
//! two instances on one table of a private moto_server.

#![cfg(feature = "dynamodb")]

mod util;

use std::process::{Command, Stdio};
use std::sync::Arc;

use lamed_core::model::Caps;
use lamed_load::{self as loadgen, Workload, WorkloadSpec};
use lamed_store::dynamodb::testing::{Moto, REGION};
use lamed_store::dynamodb::{DynamoDbOptions, DynamoDbStore};
use lamed_store::Store;
use serde_json::json;
use util::Server;

const API_KEY: &str = "dynamodb-test-key-0123456789";

/// The AWS SDK's settings for `moto`: what a user sets for DynamoDB Local
/// or another endpoint.
fn aws_env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

fn serve_on(moto: &Moto, table: &str, dir: &std::path::Path, name: &str) -> Server {
    let env = aws_env(moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(
        "127.0.0.1:0",
        &dir.join(name),
        &["--dynamodb-table", table, "--api-key", API_KEY],
        "warn",
        &env,
    )
}

/// Events of the shared workload, as the issue asks (a quarter re-sent
/// across both instances). Moto's transactions cost what they touch
/// (`scripts/moto_server.py`): about 30 s here, where moto's own copy of
/// the whole table per transaction took 9 minutes.
const EVENTS: usize = 2_000;

/// Two instances on one table, created by the first: the events (a
/// quarter re-sent) sent to both at once are counted exactly on both;
/// valued events re-sent across instances add their values once; a Sixpack
/// participation on one converts on the other; segments are counted with
/// their events (the report by device); a pause from one is honoured by
/// the other, and a third instance with a webhook, which keeps its alert
/// state in the table, raises one status alert for it that the others
/// list; an instance with another dedupe window is refused at start,
/// naming both windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_table() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let table = "lamed-http";
    let a = serve_on(&moto, table, dir.path(), "a");
    let b = serve_on(&moto, table, dir.path(), "b");

    let workload = Workload::generate(&WorkloadSpec::standard("shared", EVENTS, 0.25, 7));
    let paths = Arc::new(workload.paths("/track"));
    let (ra, rb) = tokio::join!(
        loadgen::run(a.addr, Arc::clone(&paths), 4),
        loadgen::run(b.addr, Arc::clone(&paths), 4)
    );
    assert_eq!(ra.count(200), paths.len());
    assert_eq!(rb.count(200), paths.len());
    for server in [&a, &b] {
        let mismatches = workload.mismatches(&server.counts("shared").await);
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }

    // Values: each uuid's first value counts, wherever it is re-sent.
    for uuid in ["v1", "v2"] {
        let path = format!(
            "/track?namespace=shop&experiment=cart&variant=a&event=participate&uuid={uuid}"
        );
        assert_eq!(a.get(&path).await.status, 200);
    }
    for (server, uuid, value) in [(&a, "v1", "19.99"), (&b, "v1", "500"), (&b, "v2", "5.01")] {
        let path = format!(
            "/track?namespace=shop&experiment=cart&variant=a&event=buy&uuid={uuid}&value={value}"
        );
        assert_eq!(server.get(&path).await.status, 200);
    }
    let report = b
        .get_with_key("/api/experiments/cart/report?namespace=shop&by=device")
        .await;
    assert_eq!(report.status, 200);
    let report = report.json().unwrap();
    let values = &report["goals"][0]["values"]["variants"][0];
    assert_eq!(values["sum"], 25.0, "{report}");
    // Both participants came from the test client's desktop User-Agent.
    let devices = &report["segments"]["values"];
    assert_eq!(devices.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(devices[0]["value"], "desktop", "{report}");
    assert_eq!(devices[0]["participants"], json!([2]), "{report}");

    // Sixpack: participate on one instance, convert on the other.
    let participate =
        "/participate?experiment=shape&alternatives=one&alternatives=two&client_id=c1";
    let joined = a.get(participate).await.json().unwrap();
    let shown = joined["alternative"]["name"].clone();
    assert!(shown == "one" || shown == "two", "{joined}");
    let converted = b
        .get("/convert?experiment=shape&client_id=c1&kpi=buy")
        .await
        .json()
        .unwrap();
    assert_eq!(converted["status"], "ok", "{converted}");
    assert_eq!(converted["alternative"]["name"], shown, "{converted}");

    // An instance with a webhook (on a port nobody listens on) checks
    // every second; once its watch of the cart is in the table, the pause
    // below is a status change it raises as one delivery.
    let watching = [
        "--dynamodb-table",
        table,
        "--api-key",
        API_KEY,
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--webhook-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--alert-check-seconds",
        "1",
    ];
    let env = aws_env(&moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = Server::start_with_env(
        "127.0.0.1:0",
        &dir.path().join("c"),
        &watching,
        "warn",
        &env,
    );
    let store = DynamoDbStore::open(DynamoDbOptions {
        sdk: Some(moto.sdk()),
        ..DynamoDbOptions::new(table, 86_400, Caps::DEFAULT)
    })
    .await
    .expect("open the table");
    let watch = r#"watch/["shop","cart"]"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.alert_state(watch).await.expect("read").is_none() {
        assert!(std::time::Instant::now() < deadline, "no watch of the cart");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A pause written through one instance stops counting on the other.
    let paused = a
        .request(
            "PATCH",
            "/api/experiments/cart?namespace=shop",
            &[("x-api-key", API_KEY)],
            json!({"status": "paused"}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    let late = b
        .get("/track?namespace=shop&experiment=cart&variant=a&event=participate&uuid=late")
        .await;
    assert_eq!(late.json().unwrap(), json!({"ignored": "paused"}));
    let status_alerts = || async {
        let listed = b.get_with_key("/api/webhooks/deliveries").await;
        assert_eq!(listed.status, 200, "{:?}", listed.body);
        let listed = listed.json().unwrap();
        listed["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["experiment"] == "cart" && d["event"] == "experiment.status")
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while status_alerts().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no status alert");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Two more checks raise nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(status_alerts().await, 1);
    drop(c);

    // Another window on the same table is refused before serving.
    let mut other = Command::new(util::lamed_bin());
    other
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("c"))
        .args(["--dynamodb-table", table, "--api-key", API_KEY])
        .args(["--uuid-expiry-seconds", "60"])
        .envs(aws_env(&moto))
        .stdin(Stdio::null());
    let output = other.output().expect("run lamed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("uuid_expiry_seconds"), "{stderr}");
    assert!(stderr.contains("60"), "{stderr}");
}

/// `lamed import --to-dynamodb-table` copies an original Lamed's counters
/// (a private redis-server seeded with its layout) into a table it
/// creates; `lamed serve` on that table answers them, and a second run
/// changes nothing.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_writes_into_a_table() {
    use util::redis_server::RedisServer;
    let source = RedisServer::start();
    let client = redis::Client::open(source.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for (variant, event, count) in [
        ("red", "participate", 40),
        ("red", "buy", 7),
        ("blue", "participate", 38),
    ] {
        let key = format!("alephbet:counters:button color:{event}:{variant}");
        pipe.cmd("SET").arg(&key).arg(count).ignore();
        pipe.cmd("SADD")
            .arg("alephbet:counter_keys")
            .arg(&key)
            .ignore();
    }
    pipe.cmd("SADD")
        .arg("alephbet:experiments")
        .arg("button color")
        .ignore();
    pipe.exec_async(&mut conn).await.unwrap();

    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let import = || {
        Command::new(util::lamed_bin())
            .args([
                "import",
                "--redis",
                &source.url(),
                "--to-dynamodb-table",
                "imported",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("unused"))
            .envs(aws_env(&moto))
            .env_remove("LAMED_REDIS_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run lamed import")
    };
    for changed in ["3 changed, 0 unchanged", "0 changed, 3 unchanged"] {
        let output = import();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(changed), "{stdout}");
    }
    let server = serve_on(&moto, "imported", dir.path(), "served");
    let counts = server.counts("alephbet").await;
    let id = |ev: &str, v: &str| ("button color".to_owned(), ev.to_owned(), v.to_owned());
    assert_eq!(counts[&id("participate", "red")], 40);
    assert_eq!(counts[&id("buy", "red")], 7);
    assert_eq!(counts[&id("participate", "blue")], 38);
}
