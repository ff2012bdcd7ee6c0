//! Alerts delivered as webhooks to real local receivers
//! (`scripts/webhook_receiver.py`), each delivery verified by the
//! reference Standard Webhooks library (PyPI `standardwebhooks`), not by
//! lamed's own code.

mod util;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::receiver::Receiver;
use util::Server;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// POSTs `count` participations of `variant` (and `goals` conversions).
async fn seed(server: &Server, experiment: &str, variant: &str, count: usize, goals: usize) {
    let mut events = Vec::new();
    for i in 0..count {
        let uuid = format!("{experiment}-{variant}-{i}");
        events.push(json!({"namespace": "shop", "experiment": experiment,
            "variant": variant, "event": "participate", "uuid": uuid}));
        if i < goals {
            events.push(json!({"namespace": "shop", "experiment": experiment,
                "variant": variant, "event": "buy", "uuid": uuid}));
        }
    }
    for chunk in events.chunks(1000) {
        let body = serde_json::to_vec(chunk).unwrap();
        let answer = server
            .request(
                "POST",
                "/track",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
}

/// Whether the delivery to `url` has an attempt on record.
async fn attempts_recorded(server: &Server, url: &str) -> bool {
    let listed = server.get_with_key("/api/webhooks/deliveries").await;
    let listed: Value = serde_json::from_slice(&listed.body).unwrap();
    listed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["url"] == url && !d["attempts"].as_array().unwrap().is_empty())
}

fn body(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().expect("a body")).expect("a JSON body")
}

/// A seeded sample-ratio mismatch raises exactly one alert; its endpoint
/// answers 500 three times, lamed is killed with SIGKILL after the first,
/// and after the restart the same `webhook-id` comes four times in all,
/// each verified, the last answered 200. A clear winner raises one
/// decision alert at an endpoint answering 410, which disables it: the
/// later pause is not sent there, and `/metrics` counts it. A Slack
/// endpoint gets the mismatch as `{"text"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_signed_retried_across_a_kill_and_sent_once() {
    let flaky = Receiver::start(SECRET, "500,500,500");
    let gone = Receiver::start(SECRET, "410");
    let slack = Receiver::start("-", "");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"webhooks": [
            {"url": flaky.url, "secret": SECRET, "events": ["experiment.srm"]},
            {"url": gone.url, "secret": SECRET,
             "events": ["experiment.decision", "experiment.status"]},
            {"url": slack.url, "format": "slack", "events": ["experiment.srm"]},
        ]})
        .to_string(),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let args = [
        "--config",
        config,
        "--alert-check-seconds",
        "1",
        "--webhook-first-retry-ms",
        "300",
    ];
    let mut server = Server::start(&data, &args);
    // 600 against 800 on an even split: p ≈ 1e-6.
    seed(&server, "split", "a", 600, 0).await;
    seed(&server, "split", "b", 800, 0).await;
    // 1,000 each, 5% against 12%: far past the sequential boundary.
    seed(&server, "offer", "a", 1000, 50).await;
    seed(&server, "offer", "b", 1000, 120).await;

    let first = flaky.wait_for(1, Duration::from_secs(30));
    // Once the first attempt is recorded (the receiver answers before
    // lamed writes it; killed before, the attempt's lease would hold the
    // retry for 20 s), the crash.
    let recorded = Instant::now();
    while !attempts_recorded(&server, &flaky.url).await {
        assert!(
            recorded.elapsed() < Duration::from_secs(5),
            "the attempt is recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let listen = server.addr.to_string();
    server.kill();
    let server = Server::start_on(&listen, &data, &args);

    let heard = flaky.wait_for(4, Duration::from_secs(40));
    let id = first[0]["id"].as_str().expect("a webhook-id");
    assert!(id.starts_with("msg_"), "{id}");
    for request in &heard {
        assert_eq!(request["id"], id, "one id on every attempt: {heard:#?}");
        assert_eq!(request["verified"], true, "{request:#?}");
        assert_eq!(request["content_type"], "application/json");
    }
    let statuses: Vec<i64> = heard
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let srm = body(&heard[0]);
    assert_eq!(srm["type"], "experiment.srm");
    assert_eq!(srm["data"]["experiment"], "split");
    assert_eq!(srm["data"]["namespace"], "shop");
    assert!(srm["data"]["figures"]["p_value"].as_f64().unwrap() < 0.001);
    assert_eq!(
        srm["data"]["figures"]["observed"],
        json!({"a": 600, "b": 800})
    );
    assert!(srm["data"]["dashboard"]
        .as_str()
        .unwrap()
        .ends_with("/dashboard#namespace=shop"));

    let decision = gone.wait_for(1, Duration::from_secs(30));
    assert_eq!(decision[0]["verified"], true);
    assert_eq!(decision[0]["status"], 410);
    let decided = body(&decision[0]);
    assert_eq!(decided["type"], "experiment.decision");
    assert_eq!(decided["data"]["experiment"], "offer");
    assert_eq!(decided["data"]["figures"]["variant"], "b");
    assert_eq!(decided["data"]["figures"]["direction"], "better");

    let slacked = slack.wait_for(1, Duration::from_secs(30));
    let text = body(&slacked[0]);
    assert_eq!(
        text.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["text"]
    );
    assert!(
        text["text"].as_str().unwrap().contains("*split* (shop)"),
        "{text}"
    );

    // The pause would go to the disabled endpoint: it does not.
    let paused = server
        .request(
            "PATCH",
            "/api/experiments/offer?namespace=shop",
            &[
                ("x-api-key", &server.api_key),
                ("content-type", "application/json"),
            ],
            br#"{"status": "paused"}"#,
        )
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(gone.heard().len(), 1, "a disabled endpoint gets nothing");
    assert_eq!(flaky.heard().len(), 4, "each alert sent once");
    assert_eq!(slack.heard().len(), 1, "each alert sent once");
    let metrics = server.get_with_key("/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("lamed_webhook_endpoints_disabled 1"),
        "{metrics}"
    );
    let listed = server.get_with_key("/api/webhooks/deliveries").await;
    assert_eq!(listed.status, 200);
    let listed: Value = serde_json::from_slice(&listed.body).unwrap();
    let deliveries = listed["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{listed:#}");
    let to = |url: &str| deliveries.iter().find(|d| d["url"] == url).unwrap().clone();
    let retried = to(&flaky.url);
    assert_eq!(
        (&retried["id"], &retried["state"]),
        (&json!(id), &json!("delivered"))
    );
    let statuses: Vec<&Value> = retried["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(500), &json!(500), &json!(200)]
    );
    assert_eq!(to(&gone.url)["state"], "disabled");
    assert_eq!(to(&slack.url)["state"], "delivered");
    assert_eq!(server.get("/api/webhooks/deliveries").await.status, 401);
    let open = server.get_with_key("/api/alerts?namespace=shop").await;
    assert_eq!(open.status, 200);
    let open: Value = serde_json::from_slice(&open.body).unwrap();
    let keys = |experiment: &str| -> Vec<String> {
        open[experiment]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys("split"), ["srm"], "{open:#}");
    assert_eq!(
        keys("offer"),
        ["decision:buy:b", "status:paused"],
        "{open:#}"
    );
    assert_eq!(open["offer"]["status:paused"]["event"], "experiment.status");
}

/// A running experiment that had participants and gets none for
/// `stall_hours` raises one stalled alert, on the injectable clock (the
/// check and the delivery pass called as `lamed serve` calls them), and
/// not again while it stays stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_experiment_raises_one_alert_after_stall_hours() {
    use lamed::alerts::delivery::{Backoff, ATTEMPT_TIMEOUT};
    use lamed::alerts::evaluate::Rules;
    use lamed::alerts::format::Format;
    use lamed::alerts::signing::Secret;
    use lamed::alerts::{check, deliver_due, AlertOptions, Endpoint};
    use lamed::clock::Clock;
    use lamed::model::Caps;
    use lamed_store::reference::ReferenceStore;
    use lamed_store::Store;

    const HOUR: u64 = 3_600_000;
    let receiver = Receiver::start(SECRET, "");
    let clock = Clock::manual_at_now();
    let store = ReferenceStore::new(86_400, Caps::default(), clock.clone());
    let events = (0..10)
        .map(|i| lamed::Event {
            namespace: "shop".into(),
            experiment: "banner".into(),
            variant: if i % 2 == 0 { "a" } else { "b" }.into(),
            event: "participate".into(),
            uuid: format!("u{i}"),
            value: None,
            segment: Default::default(),
        })
        .collect();
    store.track(events).await.expect("track");
    let options = AlertOptions {
        endpoints: vec![Endpoint {
            url: receiver.url.clone(),
            secret: Some(Secret::parse(SECRET).unwrap()),
            events: Vec::new(),
            format: Format::Standard,
        }],
        rules: Rules {
            stall_ms: 6 * HOUR as i64,
        },
        backoff: Backoff::default(),
        public_url: "http://lamed.test".into(),
        timeout: ATTEMPT_TIMEOUT,
    };
    let mut raised = Vec::new();
    for step in [0, 6 * HOUR - 60_000, 60_000, 3 * HOUR, HOUR] {
        clock.advance(Duration::from_millis(step));
        let checked = check(&store, &options, clock.now_ms())
            .await
            .expect("check");
        let sent = deliver_due(&store, &options, clock.now_ms())
            .await
            .expect("deliver");
        raised.push((checked.raised, sent.delivered));
    }
    assert_eq!(raised, [(0, 0), (0, 0), (1, 1), (0, 0), (0, 0)]);
    let heard = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0]["verified"], true, "{heard:#?}");
    let stalled = body(&heard[0]);
    assert_eq!(stalled["type"], "experiment.stalled");
    assert_eq!(stalled["data"]["experiment"], "banner");
    assert_eq!(stalled["data"]["figures"]["participants"], 10);
    assert_eq!(stalled["data"]["figures"]["hours"], 6);
    // A finished delivery is listed for a week, then removed.
    let listed = lamed::alerts::deliveries(&store).await.expect("list");
    assert_eq!(listed.len(), 1);
    clock.advance(Duration::from_millis(7 * 24 * HOUR));
    deliver_due(&store, &options, clock.now_ms())
        .await
        .expect("deliver");
    assert!(lamed::alerts::deliveries(&store)
        .await
        .expect("list")
        .is_empty());
}

/// Two `lamed serve` instances on one Redis, both checking every second:
/// each alert reaches the endpoint once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_deliver_each_alert_once() {
    let redis = util::redis_server::RedisServer::start();
    let receiver = Receiver::start(SECRET, "");
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let args = [
        "--redis",
        url.as_str(),
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-secret",
        SECRET,
        "--alert-check-seconds",
        "1",
        "--webhook-first-retry-ms",
        "200",
        "--api-key",
        "a-test-key-of-twenty",
    ];
    let first = Server::start(&dir.path().join("one"), &args);
    let second = Server::start(&dir.path().join("two"), &args);
    seed(&first, "split", "a", 600, 0).await;
    seed(&second, "split", "b", 800, 0).await;
    seed(&first, "offer", "a", 1000, 50).await;
    seed(&second, "offer", "b", 1000, 120).await;
    receiver.wait_for(2, Duration::from_secs(30));
    // Several more checks on both.
    std::thread::sleep(Duration::from_millis(3000));
    let heard = receiver.heard();
    let mut types: Vec<String> = heard
        .iter()
        .map(|r| {
            assert_eq!(r["verified"], true, "{r:#?}");
            body(r)["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["experiment.decision", "experiment.srm"],
        "{heard:#?}"
    );
}

/// `lamed webhooks test` sends one signed `webhook.test` event to the
/// endpoint (verified), and exits 1 when the endpoint refuses it.
#[test]
fn webhooks_test_sends_one_signed_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    for (plan, code) in [("", 0), ("500", 1)] {
        let receiver = Receiver::start(SECRET, plan);
        let (status, stdout, stderr) = util::run_lamed(
            &[
                "webhooks",
                "test",
                "--config",
                config.to_str().unwrap(),
                "--webhook-url",
                &receiver.url,
                "--webhook-secret",
                SECRET,
            ],
            Duration::from_secs(20),
        );
        assert_eq!(status, Some(code), "{stdout}{stderr}");
        let heard = receiver.wait_for(1, Duration::from_secs(5));
        assert_eq!(heard.len(), 1);
        assert_eq!(heard[0]["verified"], true, "{heard:#?}");
        assert_eq!(body(&heard[0])["type"], "webhook.test");
        let expected = if code == 0 { "200" } else { "500" };
        assert_eq!(stdout.trim(), format!("{}: {expected}", receiver.url));
    }
}

/// Endpoints that never answer cost about one timeout per delivery pass,
/// not one each: the attempts of a pass are sent at once, and the answering
/// endpoint is delivered in the same pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_delays_no_other() {
    use lamed::alerts::delivery::Backoff;
    use lamed::alerts::evaluate::Rules;
    use lamed::alerts::format::Format;
    use lamed::alerts::signing::Secret;
    use lamed::alerts::{check, deliver_due, AlertOptions, Endpoint};
    use lamed::clock::Clock;
    use lamed::model::Caps;
    use lamed_store::reference::ReferenceStore;
    use lamed_store::{Precondition, Store};

    let receiver = Receiver::start(SECRET, "");
    // Accepted by the kernel, never read or answered.
    let silent: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut urls: Vec<String> = silent
        .iter()
        .map(|l| format!("http://{}/hook", l.local_addr().unwrap()))
        .collect();
    urls.push(receiver.url.clone());
    let clock = Clock::manual_at_now();
    let store = ReferenceStore::new(86_400, Caps::default(), clock.clone());
    let record = lamed::registry::ExperimentRecord::automatic("shop", "banner", clock.now_ms());
    let _ = store
        .put_record(record, Precondition::Absent)
        .await
        .unwrap();
    let options = AlertOptions {
        endpoints: urls
            .iter()
            .map(|url| Endpoint {
                url: url.clone(),
                secret: Some(Secret::parse(SECRET).unwrap()),
                events: Vec::new(),
                format: Format::Standard,
            })
            .collect(),
        rules: Rules {
            stall_ms: 3_600_000,
        },
        backoff: Backoff::default(),
        public_url: "http://lamed.test".into(),
        timeout: Duration::from_millis(1000),
    };
    check(&store, &options, clock.now_ms()).await.unwrap();
    // Paused: one status alert to each of the four endpoints.
    let mut record = store.record("shop", "banner").await.unwrap().unwrap();
    record.status = lamed::registry::Status::Paused;
    let _ = store.put_record(record, Precondition::Any).await.unwrap();
    let checked = check(&store, &options, clock.now_ms()).await.unwrap();
    assert_eq!(checked.raised, 1);
    let started = Instant::now();
    let sent = deliver_due(&store, &options, clock.now_ms()).await.unwrap();
    let took = started.elapsed();
    assert_eq!((sent.delivered, sent.retried), (1, 6));
    // One after the other, they would take six timeouts.
    assert!(
        took < Duration::from_millis(4500),
        "timeouts in a row: {took:?}"
    );
    assert_eq!(
        receiver.wait_for(1, Duration::from_secs(1))[0]["verified"],
        true
    );
}
