//! The Lambda entry: real API Gateway REST (v1) proxy events, turned into
//! requests by lambda_http, answered through the router exactly as
//! `lamed serve` answers the same requests over HTTP. Each test runs twice,
//! with the function counting on a private redis-server and in a table of a
//! private moto_server (DynamoDB); `lamed serve` counts on its embedded
//! store.
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
/// `LAMED_REDIS_URL` or `LAMED_DYNAMODB_TABLE`, and `LAMED_API_KEY`, become
/// `Overrides`' given settings; then the store comes from the same
/// `lamed::lambda::open_store` that `lamed::lambda::run` calls (given the
/// emulator's AWS configuration, where the function has its role's).
async fn lambda_app(backend: &Backend) -> axum::Router {
    let file: FileConfig = serde_json::from_str(CONFIG).unwrap();
    let (setting, value, aws) = match backend {
        Backend::Redis(redis) => ("redis", redis.url(), None),
        Backend::DynamoDb(moto, table) => ("dynamodb_table", table.clone(), Some(moto.sdk())),
    };
    let overrides = Overrides {
        settings: Given::default().with(setting, serde_json::Value::String(value)),
        ..Overrides::default()
    };
    let config = Config::resolve(None, file, overrides).unwrap();
    let store = lamed::lambda::open_store(&config, aws.as_ref())
        .await
        .expect("open the store");
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
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, CONFIG).unwrap();
    let server = Server::start(
        &dir.path().join("served"),
        &["--config", config_path.to_str().unwrap()],
    );
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
