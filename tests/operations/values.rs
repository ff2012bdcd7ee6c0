//! Numeric goal values and adaptive weights over real HTTP against `lamed
//! serve`: the `value` parameter and JSON field and their refusals, the
//! report's sums, a re-sent conversion that never adds its value twice
//! (across `kill -9`, on the embedded store and on Redis), and the public
//! weights endpoint.
#![cfg(feature = "redis")]

use crate::util;

use serde_json::{json, Value as Json};
use util::redis_server::RedisServer;
use util::Server;

const KEY: &str = "values-test-key-0123";

/// A `GET /track` path for one goal event with a value (decimal text).
fn purchase(ns: &str, variant: &str, uuid: &str, value: &str) -> String {
    format!(
        "/track?namespace={ns}&experiment=checkout&variant={variant}&event=buy&uuid={uuid}&value={value}"
    )
}

/// The report's figures of goal `buy`'s values, by variant.
async fn value_sums(server: &Server, ns: &str) -> Vec<(String, u64, u64, f64)> {
    let answer = server
        .get_with_key(&format!(
            "/api/experiments/checkout/report?namespace={ns}&control=red"
        ))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let report = answer.json().unwrap();
    let buy = report["goals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["goal"] == "buy")
        .expect("goal buy");
    buy["values"]["variants"]
        .as_array()
        .expect("the goal has values")
        .iter()
        .map(|v| {
            (
                v["label"].as_str().unwrap().to_owned(),
                v["trials"].as_u64().unwrap(),
                v["successes"].as_u64().unwrap(),
                v["sum"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// `value` is read from the query and from JSON (number or string); what
/// cannot be kept exactly is refused with a message naming it, and the
/// report sums what was counted.
#[tokio::test]
async fn values_on_the_wire_and_their_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", KEY]);
    for (path, want) in [
        (purchase("w", "red", "r1", "19.99"), 200),
        (purchase("w", "red", "r1", "500"), 200), // a duplicate: ignored
        (purchase("w", "blue", "b1", "0.000001"), 200),
        (purchase("w", "blue", "b2", "abc"), 400),
        (purchase("w", "blue", "b2", "-1"), 400),
        (purchase("w", "blue", "b2", "1.0000001"), 400),
        (purchase("w", "blue", "b2", "10000000.01"), 400),
        (
            "/track?namespace=w&experiment=checkout&variant=red&event=participate&uuid=p&value=1"
                .to_owned(),
            400,
        ),
    ] {
        let answer = server.get(&path).await;
        assert_eq!(answer.status, want, "{path}: {:?}", answer.body);
        if want == 400 {
            let body = String::from_utf8_lossy(&answer.body);
            assert!(body.contains("parameter 'value'"), "{path}: {body}");
        }
    }
    let batch = json!([
        {"namespace": "w", "experiment": "checkout", "variant": "red", "event": "participate", "uuid": "p1"},
        {"namespace": "w", "experiment": "checkout", "variant": "blue", "event": "participate", "uuid": "p2"},
        {"namespace": "w", "experiment": "checkout", "variant": "red", "event": "participate", "uuid": "p3"},
        {"namespace": "w", "experiment": "checkout", "variant": "blue", "event": "participate", "uuid": "p4"},
        {"namespace": "w", "experiment": "checkout", "variant": "red", "event": "buy", "uuid": "r2", "value": 12.5},
        {"namespace": "w", "experiment": "checkout", "variant": "blue", "event": "buy", "uuid": "b3", "value": "7.25"},
        {"namespace": "w", "experiment": "checkout", "variant": "blue", "event": "buy", "uuid": "b4", "value": true},
        {"namespace": "w", "experiment": "checkout", "variant": "blue", "event": "buy", "uuid": "b5", "value": 1e-7},
    ]);
    let answer = server
        .request("POST", "/track", &[], batch.to_string().as_bytes())
        .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    let body = answer.json().unwrap();
    assert_eq!(body["counted"], 6);
    assert_eq!(body["refused"], 2);
    let errors: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "event 6: parameter 'value' must be a decimal number such as 12.50",
            "event 7: parameter 'value' has more than 6 decimal places"
        ]
    );
    assert_eq!(
        value_sums(&server, "w").await,
        [
            ("blue".to_owned(), 2, 2, (1 + 7_250_000) as f64 / 1e6),
            (
                "red".to_owned(),
                2,
                2,
                (19_990_000 + 12_500_000) as f64 / 1e6
            )
        ]
    );
    // `lamed report` shows them.
    let url = format!("http://{}", server.addr);
    let (code, out, err) = util::run_lamed(
        &[
            "report",
            "checkout",
            "--server",
            &url,
            "--api-key",
            KEY,
            "--namespace",
            "w",
            "--control",
            "red",
        ],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("values of buy"), "{out}");
    let red = out
        .lines()
        .find(|l| l.trim_start().starts_with("red (control)") && l.contains("32.49"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(red.contains("16.25"), "mean per participant: {red}");
}

/// 300 conversions with values; the server is killed (SIGKILL) and
/// restarted, and every conversion is sent again with another value: the
/// counts and sums stay those of the first values. Then on Redis, with
/// the re-sends racing from two servers.
#[tokio::test]
async fn a_resent_conversion_never_adds_its_value_twice() {
    let events: Vec<(String, String, u64)> = (0..300u64)
        .map(|i| {
            let variant = if i % 3 == 0 { "red" } else { "blue" };
            (variant.to_owned(), format!("u{i}"), 1_000_000 + i * 37_777)
        })
        .collect();
    let expected = |variant: &str| -> (u64, f64) {
        let mine: Vec<u64> = events
            .iter()
            .filter(|(v, _, _)| v == variant)
            .map(|&(_, _, m)| m)
            .collect();
        (mine.len() as u64, mine.iter().sum::<u64>() as f64 / 1e6)
    };
    let send = |server: &Server, scale: u64| {
        let paths: Vec<String> = events
            .iter()
            .flat_map(|(variant, uuid, micros)| {
                let value = lamed::value::Value::from_micros(micros * scale).unwrap();
                [
                    format!(
                        "/track?namespace=k&experiment=checkout&variant={variant}&event=participate&uuid={uuid}"
                    ),
                    purchase("k", variant, uuid, &value.to_string()),
                ]
            })
            .collect();
        let addr = server.addr;
        async move {
            for path in paths {
                let answer = lamed_load::request(addr, "GET", &path, &[], b"")
                    .await
                    .unwrap();
                assert_eq!(answer.status, 200, "{path}");
            }
        }
    };
    let check = |sums: Vec<(String, u64, u64, f64)>| {
        for (variant, trials, conversions, sum) in sums {
            let (n, total) = expected(&variant);
            assert_eq!((trials, conversions, sum), (n, n, total), "{variant}");
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--api-key", KEY]);
    send(&server, 1).await;
    server.kill();
    let server = Server::start(&data, &["--api-key", KEY]);
    send(&server, 2).await;
    check(value_sums(&server, "k").await);

    let redis = RedisServer::start();
    let args = ["--redis", &redis.url(), "--api-key", KEY];
    let mut first = Server::start(&dir.path().join("r1"), &args);
    send(&first, 1).await;
    first.kill();
    let one = Server::start(&dir.path().join("r1"), &args);
    let two = Server::start(&dir.path().join("r2"), &args);
    tokio::join!(send(&one, 2), send(&two, 3));
    check(value_sums(&one, "k").await);
    check(value_sums(&two, "k").await);
}

/// The weights endpoint: 404 without registered variants, the registered
/// weights as percents for a fixed experiment, a refused adaptive goal,
/// and for an adaptive one weights summing to 100 (equal during the
/// burn-in), the same on every request of a period, cacheable until it
/// ends, and stored: the report shows the period and the goal's
/// stratified counts. (How the weights move is `adaptive`'s simulation
/// test.)
#[tokio::test]
async fn weights_endpoint_serves_fixed_and_adaptive_weights() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--api-key", KEY]);
    let weights = |name: &'static str| {
        let server = &server;
        async move {
            server
                .get(&format!("/api/experiments/{name}/weights?namespace=a"))
                .await
        }
    };
    assert_eq!(weights("nothing").await.status, 404);

    let put = |name: &str, definition: Json| {
        let server = &server;
        let path = format!("/api/experiments/{name}?namespace=a");
        async move {
            let answer = server
                .request(
                    "PUT",
                    &path,
                    &[("x-api-key", KEY)],
                    definition.to_string().as_bytes(),
                )
                .await;
            assert_eq!(answer.status, 201, "{:?}", answer.body);
        }
    };
    put(
        "fixed",
        json!({"variants": ["a", {"name": "b", "weight": 3}], "goals": ["buy"]}),
    )
    .await;
    let fixed = weights("fixed").await;
    assert_eq!(fixed.status, 200);
    assert_eq!(fixed.json().unwrap()["weights"], json!({"a": 25, "b": 75}));
    assert_eq!(fixed.json().unwrap()["adaptive"], false);

    let bad = server
        .request(
            "PUT",
            "/api/experiments/bad?namespace=a",
            &[("x-api-key", KEY)],
            json!({"variants": ["a", "b"], "goals": ["buy"], "adaptive": {"goal": "nope"}})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("adaptive goal 'nope'"));

    put(
        "bandit",
        json!({"variants": ["x", "y", "z"], "goals": ["buy"],
               "adaptive": {"goal": "buy", "burn_in": 50, "floor": 5}}),
    )
    .await;
    let first = weights("bandit").await;
    assert_eq!(first.status, 200);
    let cache = first
        .headers
        .get("cache-control")
        .and_then(|h| h.to_str().ok())
        .expect("cacheable");
    let max_age: i64 = cache
        .strip_prefix("public, max-age=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{cache}"));
    assert!((1..=3600).contains(&max_age), "{cache}");
    let body = first.json().unwrap();
    assert_eq!(body["adaptive"], true);
    assert_eq!(body["burn_in"], true);
    assert_eq!(body["weights"], json!({"x": 34, "y": 33, "z": 33}));
    assert_eq!(weights("bandit").await.json().unwrap(), body);

    let report = server
        .get_with_key("/api/experiments/bandit/report?namespace=a")
        .await;
    // Nobody took part yet: no report, but the period is stored.
    assert_eq!(report.status, 404);
    for i in 0..60 {
        for variant in ["x", "y", "z"] {
            let uuid = format!("{variant}{i}");
            let path = format!(
                "/track?namespace=a&experiment=bandit&variant={variant}&event=participate&uuid={uuid}"
            );
            assert_eq!(server.get(&path).await.status, 200);
            if variant == "z" && i % 2 == 0 {
                let path =
                    format!("/track?namespace=a&experiment=bandit&variant=z&event=buy&uuid={uuid}");
                assert_eq!(server.get(&path).await.status, 200);
            }
        }
    }
    let report = server
        .get_with_key("/api/experiments/bandit/report?namespace=a")
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    let adaptive = &report.json().unwrap()["adaptive"];
    assert_eq!(adaptive["periods"], 1);
    assert_eq!(adaptive["latest"]["weights"], json!([34, 33, 33]));
    assert_eq!(
        adaptive["rates"]["variants"][2]["successes"], 30,
        "{adaptive}"
    );
}
