//! The Lambda entry: real API Gateway REST (v1) proxy events, turned into
//! requests by lambda_http, answered through the router exactly as
//! `lamed serve` answers the same requests over HTTP. Each test of
//! `on_each_store!` runs twice, with the function counting on a private
//! redis-server and in a table of a private moto_server (DynamoDB);
//! `lamed serve` counts on its embedded store. The invocations as the
//! runtime makes them (a JSON payload in, a JSON answer out: scheduled
//! events, the key check, the deadline, `lamed report` through a stage
//! URL) run on Redis.
#![cfg(feature = "aws")]

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use http_body_util::BodyExt;
use lambda_http::request::from_str;
use lamed::config::{Config, FileConfig, Overrides};
use lamed::settings::Given;
use lamed_store::dynamodb::testing::{unique_table, Moto};
use util::redis_server::RedisServer;
use util::Server;

/// The key of the events under tests/data/lambda.
const KEY: &str = "lamed-test-key-0123456789";

/// The config both sides run with: one extra path, as Lamed users wire it.
const CONFIG: &str = r#"{
  "api_key": "lamed-test-key-0123456789",
  "extra_wiring": [{"lambda": {"FunctionName": "lamed-track", "Handler": "lamed.track"},
                    "api_gateway": {"pathPart": "my_tracking_endpoint",
                                    "method": {"httpMethod": "GET", "apiKeyRequired": false}}}]
}"#;

/// `lamed serve` on the embedded store in `dir`, with [`CONFIG`]: what
/// the Lambda handler's answers are compared with.
fn serve_with_config(dir: &Path) -> Server {
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, CONFIG).unwrap();
    Server::start(
        &dir.join("served"),
        &["--config", config_path.to_str().unwrap()],
    )
}

fn event(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lambda")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The store a function counts on, as `lamed deploy` configures it.
enum Backend {
    /// A private redis-server (`LAMED_REDIS_URL`).
    Redis(RedisServer),
    /// A table of its own on the shared private moto_server
    /// (`LAMED_DYNAMODB_TABLE`).
    DynamoDb(Arc<Moto>, String),
}

impl Backend {
    fn redis() -> Backend {
        Backend::Redis(RedisServer::start())
    }

    fn dynamodb() -> Backend {
        Backend::DynamoDb(Moto::shared(), unique_table("lambda"))
    }
}

/// Generates, for each test function taking a [`Backend`], a module of
/// two tests: `redis` and `dynamodb`.
macro_rules! on_each_store {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn redis() {
                super::$test(super::Backend::redis()).await;
            }

            #[tokio::test]
            async fn dynamodb() {
                super::$test(super::Backend::dynamodb()).await;
            }
        }
    )*};
}

on_each_store!(
    events_answer_like_lamed_serve,
    stage_prefix_is_stripped_exactly,
    registry_works_on_lambda,
    values_and_weights_work_on_lambda,
);

/// The function's configuration for `backend`, as `lamed deploy` sets it:
/// `LAMED_REDIS_URL` or `LAMED_DYNAMODB_TABLE`, `LAMED_API_KEY` and the
/// `settings` become `Overrides`' given settings; then the store comes
/// from the same `lamed::lambda::open_store` that `lamed::lambda::run`
/// calls (given the emulator's AWS configuration, where the function has
/// its role's).
async fn lambda_store(
    backend: &Backend,
    settings: &[(&str, serde_json::Value)],
) -> (Config, lamed::DynStore) {
    let file: FileConfig = serde_json::from_str(CONFIG).unwrap();
    let (setting, value, aws) = match backend {
        Backend::Redis(redis) => ("redis", redis.url(), None),
        Backend::DynamoDb(moto, table) => ("dynamodb_table", table.clone(), Some(moto.sdk())),
    };
    let mut given = Given::default().with(setting, serde_json::Value::String(value));
    for (name, value) in settings {
        given = given.with(name, value.clone());
    }
    let overrides = Overrides {
        settings: given,
        ..Overrides::default()
    };
    let config = Config::resolve(None, file, overrides).unwrap();
    let store = lamed::lambda::open_store(&config, aws.as_ref())
        .await
        .expect("open the store");
    (config, store)
}

/// The router of the function for `backend`.
async fn lambda_app(backend: &Backend) -> axum::Router {
    let (config, store) = lambda_store(backend, &[]).await;
    lamed::lambda::app(store, &config, KEY).unwrap()
}

/// What one side answered: status, body, and the headers clients rely on.
#[derive(Debug, PartialEq)]
struct Answered {
    status: u16,
    body: String,
    cors: Option<String>,
    cache: Option<String>,
}

/// A body with the times of registry records (`*_ms`) zeroed: the two
/// sides register an experiment at slightly different moments.
fn without_times(body: String) -> String {
    fn zero(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if key.ends_with("_ms") && field.is_number() {
                        *field = 0.into();
                    } else {
                        zero(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(zero),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(mut json) => {
            zero(&mut json);
            json.to_string()
        }
        Err(_) => body,
    }
}

/// Sends one event through the Lambda handler, and the same request to
/// `lamed serve`; returns both answers.
async fn both(app: &axum::Router, server: &Server, name: &str) -> (Answered, Answered) {
    let request = from_str(&event(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    let method = request.method().to_string();
    // What `lamed serve` would be sent: the path without the stage.
    let uri = request.uri().clone();
    let path = uri.path().strip_prefix("/prod").unwrap_or(uri.path());
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter(|(name, _)| *name != "host")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = request.body().to_vec();

    let response = lamed::lambda::handle(app.clone(), request).await;
    let header =
        |h: &axum::http::HeaderMap, name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    let lambda = Answered {
        status: response.status().as_u16(),
        cors: header(response.headers(), "access-control-allow-origin"),
        cache: header(response.headers(), "cache-control"),
        body: without_times(
            String::from_utf8(
                response
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap(),
        ),
    };
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let answer = server
        .request(&method, &path_and_query, &header_refs, &body)
        .await;
    let served = Answered {
        status: answer.status,
        cors: header(&answer.headers, "access-control-allow-origin"),
        cache: header(&answer.headers, "cache-control"),
        body: without_times(String::from_utf8(answer.body.to_vec()).unwrap()),
    };
    (lambda, served)
}

/// Every committed event (track, duplicate, goal, Unicode, `/event`,
/// batch, extra path, experiments with/without/wrong key, CORS preflight,
/// report, delete, dashboard, health, bad input, unknown path, Sixpack's
/// participate and convert) gets the same status, body
/// and CORS/cache headers from the Lambda handler as from `lamed serve`;
/// the stage prefix `/prod` is stripped before routing.
async fn events_answer_like_lamed_serve(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_config(dir.path());
    let app = lambda_app(&backend).await;

    let expectations: &[(&str, u16)] = &[
        ("track-participate", 200),
        ("track-participate", 200), // a duplicate: 200, counted once
        ("track-goal", 200),
        ("track-hebrew", 200),
        ("event-participate", 200), // alephbet-rails' path, deployed too
        ("extra-path-track", 200),
        ("track-batch", 422), // the third event has no uuid
        ("track-bad-input", 400),
        ("experiments-with-key", 200),
        ("experiments-without-key", 401),
        ("experiments-wrong-key", 403),
        ("cors-preflight", 200),
        ("report-with-key", 200),
        ("delete-with-key", 200),
        ("dashboard", 200),
        ("health", 200),
        ("unknown-path", 404),
        // Sixpack: repeated `alternatives` arrive as multi-value parameters.
        ("sixpack-participate", 200),
        ("sixpack-convert", 200), // JSONP
    ];
    for (name, status) in expectations {
        let (lambda, served) = both(&app, &server, name).await;
        assert_eq!(lambda, served, "{name}: lambda vs lamed serve");
        assert_eq!(lambda.status, *status, "{name}: {}", lambda.body);
        if *name != "cors-preflight" {
            assert_eq!(
                lambda.cache.as_deref(),
                Some("no-cache, no-store, must-revalidate"),
                "{name}"
            );
        }
        assert_eq!(lambda.cors.as_deref(), Some("*"), "{name}");
    }
    // The counts themselves: the duplicate counted once, the `/event`
    // participant counted, names intact.
    let (lambda, _) = both(&app, &server, "experiments-with-key").await;
    let results: serde_json::Value = serde_json::from_str(&lambda.body).unwrap();
    assert_eq!(
        results,
        serde_json::json!([
            {"meta": {"scope": null}},
            {"experiment": "button color", "goals": [
                {"goal": "buy now!", "results": [
                    {"label": "blue", "successes": 0, "trials": 1},
                    {"label": "red", "successes": 1, "trials": 2},
                    {"label": "כחול", "successes": 0, "trials": 1}]}]}
        ])
    );
}

/// The stage prefix is removed only when it is the first path segment:
/// `/prod/track` routes as `/track`, a path merely starting with "prod"
/// is left alone.
async fn stage_prefix_is_stripped_exactly(backend: Backend) {
    let app = lambda_app(&backend).await;
    let health = event("unknown-path").replace("\"/nope\"", "\"/health\"");
    let response = lamed::lambda::handle(app.clone(), from_str(&health).unwrap()).await;
    assert_eq!(response.status(), 200);
    let odd = event("unknown-path").replace("\"/nope\"", "\"/production\"");
    let response = lamed::lambda::handle(app, from_str(&odd).unwrap()).await;
    assert_eq!(response.status(), 404);
}

/// A private API request as API Gateway sends it, made from a committed
/// event with another method, path, query and body.
fn api_event(method: &str, path: &str, query: &[(&str, &str)], body: Option<&str>) -> String {
    let mut event: serde_json::Value = serde_json::from_str(&event("delete-with-key")).unwrap();
    let query: serde_json::Map<String, serde_json::Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let multi: serde_json::Map<String, serde_json::Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!([v])))
        .collect();
    event["httpMethod"] = method.into();
    event["path"] = path.into();
    event["resource"] = path.into();
    event["requestContext"]["httpMethod"] = method.into();
    event["requestContext"]["path"] = format!("/prod{path}").into();
    event["queryStringParameters"] = query.into();
    event["multiValueQueryStringParameters"] = multi.into();
    event["body"] = body.into();
    event.to_string()
}

/// One API Gateway event through the Lambda handler: its status, body and
/// Cache-Control header.
async fn call(app: &axum::Router, event: &str) -> (u16, String, Option<String>) {
    let response = lamed::lambda::handle(app.clone(), from_str(event).unwrap()).await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), cache)
}

/// The registry works behind Lambda as under `lamed serve`: an experiment
/// registered and paused through the API, then its events answered 200
/// `{"ignored":"paused"}` and not counted.
async fn registry_works_on_lambda(backend: Backend) {
    let app = lambda_app(&backend).await;
    let call = |event: String| {
        let app = app.clone();
        async move {
            let (status, body, _) = call(&app, &event).await;
            (status, body)
        }
    };
    let ns = [("namespace", "shop")];
    let (status, body) = call(api_event(
        "PUT",
        "/api/experiments/hero",
        &ns,
        Some(r#"{"variants": ["a", "b"], "goals": ["buy"]}"#),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let track = |uuid: &'static str| {
        api_event(
            "GET",
            "/track",
            &[
                ("namespace", "shop"),
                ("experiment", "hero"),
                ("variant", "a"),
                ("event", "participate"),
                ("uuid", uuid),
            ],
            None,
        )
    };
    assert_eq!(call(track("u1")).await, (200, "{}".to_owned()));
    let (status, body) = call(api_event(
        "PATCH",
        "/api/experiments/hero",
        &ns,
        Some(r#"{"status": "paused"}"#),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        call(track("u2")).await,
        (200, r#"{"ignored":"paused"}"#.to_owned())
    );
    let (status, body) = call(api_event("GET", "/api/experiments", &ns, None)).await;
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["name"], "hero");
    assert_eq!(list[0]["status"], "paused");
    // The report reads the registered control; the paused event is not counted.
    let (_, body) = call(api_event("GET", "/api/experiments/hero/report", &ns, None)).await;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["variants"],
        serde_json::json!([{"label": "a", "participants": 1}]),
        "{body}"
    );
}

/// Values and adaptive weights behind Lambda: a goal's value counts once
/// (a re-send with another value adds nothing), a batch's values count,
/// the report sums them, and an adaptive experiment's weights are answered
/// public and cacheable.
async fn values_and_weights_work_on_lambda(backend: Backend) {
    let app = lambda_app(&backend).await;
    let call = |event: String| {
        let app = app.clone();
        async move { call(&app, &event).await }
    };
    let track = |variant: &'static str, event: &'static str, uuid: &'static str, value| {
        let mut query = vec![
            ("namespace", "shop"),
            ("experiment", "cart"),
            ("variant", variant),
            ("event", event),
            ("uuid", uuid),
        ];
        if let Some(value) = value {
            query.push(("value", value));
        }
        api_event("GET", "/track", &query, None)
    };
    for (event, want) in [
        (track("a", "participate", "u1", None), 200),
        (track("a", "buy", "u1", Some("19.99")), 200),
        (track("a", "buy", "u1", Some("500")), 200),
        (track("a", "buy", "u2", Some("-3")), 400),
    ] {
        let (status, body, _) = call(event).await;
        assert_eq!(status, want, "{body}");
    }
    let batch = r#"[{"namespace": "shop", "experiment": "cart", "variant": "a", "event": "participate", "uuid": "u3"},
        {"namespace": "shop", "experiment": "cart", "variant": "a", "event": "buy", "uuid": "u3", "value": 5.01}]"#;
    let (status, body, _) = call(api_event("POST", "/track", &[], Some(batch))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = call(api_event(
        "GET",
        "/api/experiments/cart/report",
        &[("namespace", "shop")],
        None,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values = &report["goals"][0]["values"]["variants"][0];
    assert_eq!(values["sum"], 25.0, "{body}");
    assert_eq!(values["successes"], 2, "{body}");

    let (status, body, _) = call(api_event(
        "PUT",
        "/api/experiments/hero",
        &[("namespace", "shop")],
        Some(r#"{"variants": ["a", "b"], "goals": ["buy"], "adaptive": {"goal": "buy"}}"#),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body, cache) = call(api_event(
        "GET",
        "/api/experiments/hero/weights",
        &[("namespace", "shop")],
        None,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let weights: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(weights["weights"], serde_json::json!({"a": 50, "b": 50}));
    assert!(cache.unwrap().starts_with("public, max-age="));
}

/// Started as a Lambda function (AWS_LAMBDA_RUNTIME_API set) without a
/// store, without an API key, or with an unreachable Redis, the binary
/// refuses with a clear message (never the Redis password) and a non-zero
/// exit, before taking any event.
#[test]
fn lambda_without_a_store_or_key_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut command = Command::new(util::lamed_bin());
        command
            .current_dir(dir.path())
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("HOME", dir.path())
            .env_remove("LAMED_API_KEY")
            .env_remove("LAMED_REDIS_URL")
            .env_remove("LAMED_DYNAMODB_TABLE")
            .env_remove("LAMED_CONFIG")
            .stdin(Stdio::null());
        for (name, value) in envs {
            command.env(name, value);
        }
        let output = command.output().expect("run lamed");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(&[("LAMED_API_KEY", KEY)]);
    assert!(!status.success());
    assert!(stderr.contains("no store configured"), "{stderr}");
    assert!(stderr.contains("LAMED_DYNAMODB_TABLE"), "{stderr}");
    assert!(stderr.contains("LAMED_REDIS_URL"), "{stderr}");
    let (status, stderr) = run(&[("LAMED_REDIS_URL", "redis://:s3cret-pw@127.0.0.1:9/0")]);
    assert!(!status.success());
    assert!(stderr.contains("LAMED_API_KEY"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "secret in logs: {stderr}");
    let (status, stderr) = run(&[
        ("LAMED_API_KEY", KEY),
        ("LAMED_REDIS_URL", "redis://:s3cret-pw@127.0.0.1:9/0"),
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("cannot open the redis store at redis://<password>@127.0.0.1:9/0"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "secret in logs: {stderr}");
}

/// An API Gateway request with these headers (no API key unless given),
/// made from a committed event.
fn gateway_event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> serde_json::Value {
    let mut event: serde_json::Value =
        serde_json::from_str(&api_event(method, path, query, body)).unwrap();
    for field in ["headers", "multiValueHeaders"] {
        event[field].as_object_mut().unwrap().remove("X-Api-Key");
    }
    for (name, value) in headers {
        event["headers"][*name] = (*value).into();
        event["multiValueHeaders"][*name] = serde_json::json!([value]);
    }
    event
}

/// One invocation as the runtime makes it: the JSON payload in, the
/// function's JSON answer out.
async fn invoke(
    entry: &lamed::lambda::LambdaEntry,
    payload: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let context = lambda_http::Context::default();
    entry
        .invoke(lambda_http::LambdaEvent::new(payload, context))
        .await
}

/// An API Gateway proxy answer's status, header (its values joined) and
/// body.
fn proxy_answer(answer: &serde_json::Value, header: &str) -> (u64, Option<String>, String) {
    assert_eq!(answer["isBase64Encoded"], false, "{answer}");
    let header = answer["multiValueHeaders"][header]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(",")
        });
    (
        answer["statusCode"].as_u64().unwrap(),
        header,
        answer["body"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Tracks `count` participants of each variant of `experiment` through the
/// function (POST /track batches), as visitors' pages would.
async fn track_through(
    entry: &lamed::lambda::LambdaEntry,
    experiment: &str,
    counts: &[(&str, usize)],
) {
    let mut events = Vec::new();
    for (variant, count) in counts {
        for i in 0..*count {
            events.push(
                serde_json::json!({"namespace": "shop", "experiment": experiment,
                "variant": variant, "event": "participate", "uuid": format!("{variant}-{i}")}),
            );
        }
    }
    for chunk in events.chunks(1000) {
        let body = serde_json::to_string(chunk).unwrap();
        let event = gateway_event("POST", "/track", &[], &[], Some(&body));
        let answer = invoke(entry, event).await.unwrap();
        let (status, _, body) = proxy_answer(&answer, "content-type");
        assert_eq!(status, 200, "{body}");
    }
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The `lamed` binary as AWS Lambda runs it (`AWS_LAMBDA_RUNTIME_API`
/// pointing at a local stand-in of the runtime API, configured by the
/// variables `lamed deploy` sets, `LAMED_WEBHOOKS` among them): API
/// Gateway events track a sample-ratio mismatch (600 against 800) and
/// nothing is sent; then a scheduled event (EventBridge's, as the rule
/// `lamed deploy` adds sends it) runs the alert check, whose alert reaches
/// a real local endpoint once, its signature verified by PyPI's
/// `standardwebhooks`; the next scheduled event raises nothing new; a
/// payload of neither kind is answered as the invocation's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_delivers_the_alerts() {
    let receiver = util::receiver::Receiver::start(WEBHOOK_SECRET, "");
    let redis = RedisServer::start();
    let scheduled: serde_json::Value = serde_json::from_str(&event("scheduled-event")).unwrap();
    let mut events = Vec::new();
    for variant in ["a", "b"] {
        let count = if variant == "a" { 600 } else { 800 };
        let batch: Vec<serde_json::Value> = (0..count)
            .map(|i| {
                serde_json::json!({"namespace": "shop", "experiment": "split",
                    "variant": variant, "event": "participate", "uuid": format!("{variant}-{i}")})
            })
            .collect();
        let body = serde_json::to_string(&batch).unwrap();
        events.push(gateway_event("POST", "/track", &[], &[], Some(&body)));
    }
    events.push(scheduled.clone());
    events.push(scheduled);
    events.push(serde_json::json!({"source": "aws.s3"}));
    let mut runtime = RuntimeApi::start(events).await;
    let webhooks = serde_json::json!([{"url": receiver.url, "secret": WEBHOOK_SECRET}]);
    let dir = tempfile::tempdir().unwrap();
    let mut function = Command::new(util::lamed_bin())
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "lamed-report")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("LAMED_API_KEY", KEY)
        .env("LAMED_REDIS_URL", redis.url())
        .env("LAMED_WEBHOOKS", webhooks.to_string())
        .env_remove("LAMED_CONFIG")
        .env_remove("LAMED_DYNAMODB_TABLE")
        .env_remove("LAMED_WEBHOOK_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lamed as a Lambda function");
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(runtime.answer().await);
    }
    function.kill().unwrap();
    function.wait().unwrap();

    for (kind, answer) in &answers[..2] {
        assert_eq!(kind, "response");
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }
    let (kind, checked) = &answers[2];
    assert_eq!(kind, "response", "{checked}");
    assert_eq!(
        (&checked["raised"], &checked["delivered"]),
        (&1.into(), &1.into()),
        "{checked}"
    );
    let heard = receiver.wait_for(1, std::time::Duration::from_secs(5));
    assert_eq!(heard[0]["verified"], true, "{heard:#?}");
    let body: serde_json::Value = serde_json::from_str(heard[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "experiment.srm");
    assert_eq!(body["data"]["experiment"], "split");
    assert_eq!(
        body["data"]["figures"]["observed"],
        serde_json::json!({"a": 600, "b": 800})
    );
    let (kind, again) = &answers[3];
    assert_eq!(kind, "response", "{again}");
    assert_eq!(
        (&again["raised"], &again["delivered"]),
        (&0.into(), &0.into())
    );
    assert_eq!(receiver.heard().len(), 1);
    let (kind, refused) = &answers[4];
    assert_eq!(kind, "error", "{refused}");
    assert!(refused.to_string().contains("neither"), "{refused}");
}

/// A stand-in for the AWS Lambda runtime API on 127.0.0.1: hands out its
/// events in order to the function's polls (then holds the next poll),
/// and passes on what the function answers.
struct RuntimeApi {
    addr: std::net::SocketAddr,
    answers: tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    async fn start(events: Vec<serde_json::Value>) -> RuntimeApi {
        use axum::extract::{Path, State};
        use axum::routing::{get, post};
        type Events = Arc<std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>>;
        type Answers = tokio::sync::mpsc::UnboundedSender<(String, serde_json::Value)>;
        let (sender, answers) = tokio::sync::mpsc::unbounded_channel();
        let queue: Events = Arc::new(std::sync::Mutex::new(events.into()));
        let app = axum::Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                get(|State((queue, _)): State<(Events, Answers)>| async move {
                    let Some(event) = queue.lock().unwrap().pop_front() else {
                        return std::future::pending().await;
                    };
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                        + 60_000;
                    axum::http::Response::builder()
                        .header("lambda-runtime-aws-request-id", "request-1")
                        .header("lambda-runtime-deadline-ms", deadline.to_string())
                        .header(
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:lamed-report:live",
                        )
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(event.to_string()))
                        .unwrap()
                }),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/{kind}",
                post(
                    |State((_, answers)): State<(Events, Answers)>,
                     Path((_, kind)): Path<(String, String)>,
                     body: String| async move {
                        let body = serde_json::from_str(&body).unwrap_or(body.into());
                        answers.send((kind, body)).unwrap();
                        axum::http::StatusCode::ACCEPTED
                    },
                ),
            )
            .with_state((queue, sender));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RuntimeApi {
            addr,
            answers,
            task,
        }
    }

    /// The function's next answer: its kind (`response`, `error`) and body.
    async fn answer(&mut self) -> (String, serde_json::Value) {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.answers.recv())
            .await
            .expect("the function answered in time")
            .expect("the runtime API runs")
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One key contract on Lambda and under `lamed serve`: the function
/// checks the key itself (API Gateway no longer does), in `X-Api-Key` or
/// `Authorization: Bearer`, and answers a missing key 401 and a wrong one
/// 403 with the same JSON as `lamed serve`.
#[tokio::test]
async fn the_function_checks_the_key_as_lamed_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with_config(dir.path());
    let backend = Backend::redis();
    let (config, store) = lambda_store(&backend, &[]).await;
    let entry = lamed::lambda::LambdaEntry::new(store, &config, KEY).unwrap();
    let bearer = format!("Bearer {KEY}");
    let cases: [(&[(&str, &str)], u64); 5] = [
        (&[], 401),
        (&[("X-Api-Key", "wrong-key-0123456789")], 403),
        (&[("Authorization", "Bearer wrong-key-0123456789")], 403),
        (&[("X-Api-Key", KEY)], 200),
        (&[("Authorization", &bearer)], 200),
    ];
    for (headers, status) in cases {
        let event = gateway_event("GET", "/api/experiments", &[], headers, None);
        let answer = invoke(&entry, event).await.unwrap();
        let (got, content_type, body) = proxy_answer(&answer, "content-type");
        assert_eq!(got, status, "{headers:?}: {body}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{headers:?}"
        );
        let served = server
            .request("GET", "/api/experiments", headers, b"")
            .await;
        assert_eq!(u64::from(served.status), got, "{headers:?}");
        assert_eq!(body.as_bytes(), &served.body[..], "{headers:?}");
        if status != 200 {
            let error: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(error["error"].is_string(), "{body}");
        }
    }
}

/// A store slower than the request deadline (`request_timeout_ms`, which
/// the function reads from its environment; 300 ms here) is answered 503
/// with `Retry-After` by lamed at the deadline, long before the store
/// answers and before the function's timeout (`lamed deploy` sets it
/// above the deadline, tests/deploy.rs).
#[tokio::test]
async fn a_slow_store_is_answered_503_at_the_deadline() {
    use lamed_store::faulty::{Fault, FaultPlan, FaultyStore};
    let backend = Backend::redis();
    let (config, store) = lambda_store(&backend, &[("request_timeout_ms", 300.into())]).await;
    let slow = (0..8).fold(FaultPlan::none(), |plan, call| {
        plan.with(call, Fault::Delay(std::time::Duration::from_secs(5)))
    });
    let store: lamed::DynStore = Arc::new(FaultyStore::new(store, slow));
    let entry = lamed::lambda::LambdaEntry::new(store, &config, KEY).unwrap();
    let event = gateway_event("GET", "/experiments", &[], &[("X-Api-Key", KEY)], None);
    let started = std::time::Instant::now();
    let answer = invoke(&entry, event).await.unwrap();
    let elapsed = started.elapsed();
    let (status, retry_after, body) = proxy_answer(&answer, "retry-after");
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string());
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
}

/// `lamed report --server <stage URL>` keeps the URL's path: through a
/// local stand-in for API Gateway's stage URL (`/prod/...` turned into
/// REST proxy events for the function, as API Gateway does), the report
/// of an experiment tracked through the function prints, and a wrong key
/// prints lamed's own 403 message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamed_report_works_through_a_stage_url() {
    let backend = Backend::redis();
    let (config, store) = lambda_store(&backend, &[]).await;
    let entry = Arc::new(lamed::lambda::LambdaEntry::new(store, &config, KEY).unwrap());
    track_through(&entry, "hero", &[("a", 40), ("b", 45)]).await;
    let gateway = StageUrl::start(Arc::clone(&entry)).await;
    let report = |key: &'static str| {
        let url = gateway.url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(util::lamed_bin())
                .args(["report", "--server", &url, "--api-key", key])
                .args(["--namespace", "shop", "hero"])
                .stdin(Stdio::null())
                .output()
                .expect("run lamed report")
        })
    };
    let output = report(KEY).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("hero"), "{stdout}");
    assert!(stdout.contains("40") && stdout.contains("45"), "{stdout}");
    assert!(
        gateway.paths().iter().all(|p| p.starts_with("/prod/")),
        "{:?}",
        gateway.paths()
    );
    let output = report("wrong-key-0123456789").await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("invalid API key"), "{stderr}");
}

/// A stand-in for an API Gateway stage URL on 127.0.0.1: each request to
/// `/prod/...` becomes a REST proxy event (stage `prod`) for the function,
/// and its proxy answer the HTTP response.
struct StageUrl {
    url: String,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StageUrl {
    async fn start(entry: Arc<lamed::lambda::LambdaEntry>) -> StageUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heard = Arc::clone(&paths);
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let entry = Arc::clone(&entry);
            let heard = Arc::clone(&heard);
            async move {
                let (parts, body) = request.into_parts();
                let path = parts.uri.path().to_owned();
                heard.lock().unwrap().push(path.clone());
                let query: Vec<(String, String)> =
                    parts.uri.query().map(url_decoded_pairs).unwrap_or_default();
                let query: Vec<(&str, &str)> = query
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let headers: Vec<(String, String)> = parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let body = body.collect().await.unwrap().to_bytes();
                let body = (!body.is_empty()).then(|| String::from_utf8(body.to_vec()).unwrap());
                let resource = path.strip_prefix("/prod").unwrap_or(&path);
                let mut event = gateway_event(
                    parts.method.as_str(),
                    resource,
                    &query,
                    &headers,
                    body.as_deref(),
                );
                event["requestContext"]["path"] = path.clone().into();
                let answer = invoke(&entry, event).await.unwrap();
                let mut response = axum::http::Response::builder()
                    .status(answer["statusCode"].as_u64().unwrap() as u16);
                for (name, values) in answer["multiValueHeaders"].as_object().unwrap() {
                    for value in values.as_array().unwrap() {
                        response = response.header(name, value.as_str().unwrap());
                    }
                }
                response
                    .body(axum::body::Body::from(
                        answer["body"].as_str().unwrap_or_default().to_owned(),
                    ))
                    .unwrap()
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        StageUrl {
            url: format!("http://{addr}/prod"),
            paths,
            task,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for StageUrl {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A query string's pairs, percent-decoded.
fn url_decoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(&text.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(name), decode(value))
        })
        .collect()
}
