//! The AWS Lambda entry: when `AWS_LAMBDA_RUNTIME_API` is set, the `lamed`
//! binary is a Lambda function that answers API Gateway REST (v1) proxy
//! events through the same router as `lamed serve`, and EventBridge's
//! scheduled events (the rule `lamed deploy` adds when webhooks are
//! configured) with one alert check and delivery pass, the one `lamed
//! serve` runs every `alert_check_seconds`.
//!
//! Configuration comes from the function's environment (`lamed deploy` sets
//! it): `LAMED_API_KEY`, `LAMED_DYNAMODB_TABLE` or `LAMED_REDIS_URL`,
//! `LAMED_UUID_EXPIRY_SECONDS`, `LAMED_MAX_*`, `LAMED_REQUEST_TIMEOUT_MS`,
//! the alerts' `LAMED_WEBHOOK_*` and `LAMED_WEBHOOKS`, and
//! `LAMED_EXTRA_ROUTES` (`path=handler,...`). The store must be DynamoDB or
//! Redis: a Lambda's disk is neither shared nor kept, so the embedded store
//! would count each instance apart and forget on every cold start.

use std::env;

use anyhow::Context;

use lamed_config::config::{Config, FileConfig, Handler, Overrides, Webhook};
use lamed_config::settings::variable;
use lamed_server::RouterOptions;
use serde_json::Value;

/// Set by the Lambda runtime (and by `cargo lambda watch`).
pub const RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";

/// The `extra_wiring` paths of the function, set by `lamed deploy`:
/// `path=lamed.track,other=lamed.all`.
pub const EXTRA_ROUTES_VAR: &str = "LAMED_EXTRA_ROUTES";

/// `config.json`'s `webhooks`, set by `lamed deploy`: a JSON array of
/// `{"url", "secret", "events", "format"}` (the endpoint of `webhook_url`
/// travels in its own variables).
pub const WEBHOOKS_VAR: &str = "LAMED_WEBHOOKS";

/// How long API Gateway waits for a function (its integration timeout,
/// 29 s at most): lamed's own deadline must end before it, so that a slow
/// store is answered 503 with Retry-After by lamed, not 504 by the gateway.
pub const GATEWAY_TIMEOUT_MS: u64 = 29_000;

/// What a function needs beyond lamed's deadline to send its answer.
pub const ANSWER_MARGIN_MS: u64 = 1_000;

/// The longest deadline of a request on AWS Lambda: `request_timeout_ms`
/// may be at most this (`lamed deploy` refuses more), and a delete gets
/// this, where `lamed serve` gives it a minute.
pub const LONGEST_DEADLINE_MS: u64 = GATEWAY_TIMEOUT_MS - ANSWER_MARGIN_MS;

/// Whether this process was started by a Lambda runtime.
pub fn is_lambda_runtime() -> bool {
    env::var_os(RUNTIME_API_VAR).is_some_and(|value| !value.is_empty())
}

/// The configuration of the function, from `LAMED_*` variables and
/// `LAMED_WEBHOOKS` (or a config file only when `LAMED_CONFIG` names one,
/// with its own webhooks).
///
/// # Errors
///
/// When a variable holds a bad value, or the API key is missing: the
/// function cannot generate and keep one (its disk is not kept).
pub fn config_from_env() -> anyhow::Result<(Config, String)> {
    // Every setting's variable (the definition in lamed_config::settings); no
    // ./config.json or ~/.lamed lookup: the function is configured by its
    // environment only.
    let overrides = Overrides::from_env()?;
    let config = match overrides.config {
        Some(_) => Config::load(overrides)?,
        None => {
            let webhooks = match env::var(WEBHOOKS_VAR) {
                // The value holds secrets: never repeated.
                Ok(text) => serde_json::from_str::<Vec<Webhook>>(&text).map_err(|err| {
                    anyhow::anyhow!(
                        "{WEBHOOKS_VAR} is not a JSON array of webhooks (line {}, column {})",
                        err.line(),
                        err.column()
                    )
                })?,
                Err(_) => Vec::new(),
            };
            let file = FileConfig {
                webhooks,
                ..FileConfig::default()
            };
            Config::resolve(None, file, overrides)?
        }
    };
    let api_key = config.api_key.clone().with_context(|| {
        format!(
            "{} is not set; on AWS Lambda the API key must be configured \
             (lamed deploy sets it)",
            variable("api_key")
        )
    })?;
    Ok((config, api_key))
}

/// Whether an invocation's payload is EventBridge's scheduled event (the
/// alert check's schedule), rather than an API Gateway request.
pub fn is_scheduled_event(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// The routes beyond the standard ones: `LAMED_EXTRA_ROUTES`, else the
/// config's `extra_wiring`.
///
/// # Errors
///
/// When an entry is malformed or names an unknown handler.
pub fn router_options(config: &Config) -> anyhow::Result<RouterOptions> {
    let mut extra_routes = Vec::new();
    match env::var(EXTRA_ROUTES_VAR) {
        Ok(text) if !text.trim().is_empty() => {
            for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (path, handler) = entry.split_once('=').with_context(|| {
                    format!("{EXTRA_ROUTES_VAR} entry '{entry}' is not path=handler")
                })?;
                extra_routes.push((path.to_owned(), Handler::from_lamed_name(handler.trim())?));
            }
        }
        _ => {
            for wiring in &config.extra_wiring {
                extra_routes.push((wiring.api_gateway.path_part.clone(), wiring.handler()?));
            }
        }
    }
    Ok(RouterOptions {
        extra_routes,
        // The deadline lamed answers 503 at: `lamed deploy` gives the
        // functions a timeout just above it, so the gateway never cuts in.
        request_timeout: std::time::Duration::from_millis(config.request_timeout_ms),
        delete_timeout: std::time::Duration::from_millis(LONGEST_DEADLINE_MS),
        ..RouterOptions::default()
    })
}

#[cfg(feature = "sdk")]
pub use runtime::{app, handle, open_store, run, source_ip, LambdaEntry};

#[cfg(feature = "sdk")]
mod runtime {
    use std::sync::Arc;

    use anyhow::Context;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use axum::response::Response;
    use axum::Router;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    use tower::ServiceExt;

    use super::{config_from_env, is_scheduled_event, router_options};
    use aws_config::SdkConfig;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyResponse;
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Context as Invocation, LambdaEvent};
    use lamed_config::config::Config;
    use lamed_config::settings::variable;
    use lamed_core::clock::Clock;
    use lamed_server::alerting::alert_options;
    use lamed_server::{router, AppState};
    use lamed_service::alerts::{self, AlertOptions, Summary};
    use lamed_store::dynamodb::{DynamoDbOptions, DynamoDbStore};
    use lamed_store::DynStore;
    use serde_json::{json, Value};

    /// Runs the Lambda runtime loop until the runtime stops the process.
    ///
    /// # Errors
    ///
    /// When the configuration is unusable or no DynamoDB table nor Redis
    /// is configured (before the first event is taken), or the runtime API
    /// fails.
    pub async fn run() -> anyhow::Result<()> {
        let (config, api_key) = config_from_env()?;
        // The SDK's usual configuration: the function's role and region.
        let store = open_store(&config, None).await?;
        let entry = LambdaEntry::new(store, &config, &api_key)?;
        tracing::info!(
            alerts = entry.alerts.is_some(),
            "lamed is serving API Gateway and scheduled events"
        );
        lambda_http::lambda_runtime::run(lambda_http::service_fn(
            move |event: LambdaEvent<Value>| {
                let entry = entry.clone();
                // The whole cause, as the function's error (its log and
                // Lambda's Errors metric).
                async move { entry.invoke(event).await.map_err(|err| format!("{err:#}")) }
            },
        ))
        .await
        .map_err(|err| anyhow::anyhow!("lambda runtime failed: {err}"))
    }

    /// What one function answers: API Gateway's requests through the
    /// router, and the alert check's scheduled events.
    #[derive(Clone)]
    pub struct LambdaEntry {
        app: Router,
        store: DynStore,
        alerts: Option<Arc<AlertOptions>>,
    }

    impl LambdaEntry {
        /// The function over `store`, as `config` sets it up.
        ///
        /// # Errors
        ///
        /// When an extra route or a webhook's secret is malformed.
        pub fn new(store: DynStore, config: &Config, api_key: &str) -> anyhow::Result<Self> {
            Ok(LambdaEntry {
                app: app(Arc::clone(&store), config, api_key)?,
                store,
                alerts: alert_options(config)?.map(Arc::new),
            })
        }

        /// Answers one invocation: a scheduled event runs the alert check
        /// and answers its figures; anything else must be an API Gateway
        /// REST proxy request, answered as API Gateway expects.
        ///
        /// # Errors
        ///
        /// A payload that is neither; a store failure of the alert check
        /// (the next schedule tries again: its state is in the store).
        pub async fn invoke(&self, event: LambdaEvent<Value>) -> anyhow::Result<Value> {
            let LambdaEvent { payload, context } = event;
            if is_scheduled_event(&payload) {
                let summary = self.check_alerts().await?;
                return Ok(json!({
                    "checked": summary.checked,
                    "raised": summary.raised,
                    "delivered": summary.delivered,
                    "retried": summary.retried,
                    "failed": summary.failed,
                }));
            }
            let request: LambdaRequest = serde_json::from_value(payload).context(
                "the event is neither an API Gateway REST proxy request nor EventBridge's \
                 scheduled event",
            )?;
            let response = handle(self.app.clone(), request_of(request, context)).await;
            let response = lambda_http::IntoResponse::into_response(response).await;
            Ok(serde_json::to_value(proxy_response(response))?)
        }

        /// One alert check and delivery pass now, logged; without a webhook
        /// there is nothing to check.
        async fn check_alerts(&self) -> anyhow::Result<Summary> {
            let Some(options) = &self.alerts else {
                tracing::info!("scheduled event: no webhook configured, nothing to check");
                return Ok(Summary::default());
            };
            let started = std::time::Instant::now();
            let summary =
                alerts::check_and_deliver(self.store.as_ref(), options, Clock::System.now_ms())
                    .await
                    .map_err(|err| anyhow::anyhow!("alert check failed: {}", err.chain()))?;
            for url in &summary.disabled {
                let url = alerts::redacted(url);
                tracing::warn!(%url, "webhook endpoint answered 410 gone: disabled");
            }
            tracing::info!(
                checked = summary.checked,
                reports = summary.reports,
                raised = summary.raised,
                delivered = summary.delivered,
                retried = summary.retried,
                failed = summary.failed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "alert check"
            );
            Ok(summary)
        }
    }

    /// The request of an API Gateway event, with the invocation's context
    /// beside it (as lambda_http's own adapter does).
    fn request_of(request: LambdaRequest, context: Invocation) -> lambda_http::Request {
        lambda_http::Request::from(request).with_lambda_context(context)
    }

    /// The router's answer in API Gateway REST's proxy shape: every header
    /// in `multiValueHeaders` (API Gateway merges `headers` into it, which
    /// would repeat them), a text body as is, any other base64-encoded.
    fn proxy_response(response: http::Response<lambda_http::Body>) -> ApiGatewayProxyResponse {
        let (parts, body) = response.into_parts();
        let mut answer = ApiGatewayProxyResponse::default();
        answer.status_code = i64::from(parts.status.as_u16());
        answer.multi_value_headers = parts.headers;
        (answer.is_base64_encoded, answer.body) = match body {
            lambda_http::Body::Empty => (false, None),
            text @ lambda_http::Body::Text(_) => (false, Some(text)),
            binary => (true, Some(binary)),
        };
        answer
    }

    /// The store the function counts on: the one seam between the Lambda
    /// entry and the storage backends. `aws` is the AWS SDK configuration
    /// of a DynamoDB store (tests: an emulator's); `None` is the SDK's
    /// usual one.
    ///
    /// # Errors
    ///
    /// When neither a DynamoDB table nor a Redis is configured (the
    /// embedded store makes no sense on Lambda), or the store cannot be
    /// opened.
    pub async fn open_store(config: &Config, aws: Option<&SdkConfig>) -> anyhow::Result<DynStore> {
        let options = config.store_options();
        match (&config.redis, &config.dynamodb_table) {
            (None, Some(table)) => {
                let store = DynamoDbStore::open(DynamoDbOptions {
                    sdk: aws.cloned(),
                    ..options.dynamodb(table)
                })
                .await
                .with_context(|| format!("cannot open the dynamodb store in table {table}"))?;
                Ok(Arc::new(store))
            }
            (Some(redis), None) => lamed_store::open(&options)
                .await
                .with_context(|| format!("cannot open the redis store at {}", redis.redacted())),
            (Some(_), Some(_)) => anyhow::bail!(
                "both {} and {} are set: choose the store the function counts in",
                variable("redis"),
                variable("dynamodb_table")
            ),
            (None, None) => anyhow::bail!(
                "no store configured: on AWS Lambda lamed counts in DynamoDB or on Redis; \
                 set {} or {} (lamed deploy sets them from config.json)",
                variable("dynamodb_table"),
                variable("redis")
            ),
        }
    }

    /// The router of `lamed serve` over `store`, as the function serves it.
    ///
    /// # Errors
    ///
    /// When an extra route is malformed.
    pub fn app(store: DynStore, config: &Config, api_key: &str) -> anyhow::Result<Router> {
        let options = router_options(config).context("invalid extra routes")?;
        // Behind API Gateway's CloudFront, its viewer headers are its own.
        let state = AppState::from_config(Arc::clone(&store), api_key, config)
            .with_segments(Arc::new(config.segments.trusting_cloudfront(true)));
        Ok(router(state, &options))
    }

    /// The client address API Gateway saw (`requestContext.identity.sourceIp`),
    /// which lambda_http keeps in the request's extensions: the peer of
    /// a request on AWS Lambda, handed to the router as the TCP peer is
    /// under `lamed serve`.
    pub fn source_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
        match extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(context)) => {
                context.identity.source_ip.as_deref()?.parse().ok()
            }
            _ => None,
        }
    }

    /// Answers one API Gateway request: the stage prefix that lambda_http
    /// puts in front of REST (v1) paths is removed, so `/prod/track` is
    /// routed as `/track`.
    pub async fn handle(app: Router, request: lambda_http::Request) -> Response {
        let stage = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
            _ => None,
        };
        let (mut parts, body) = request.into_parts();
        if let Some(ip) = source_ip(&parts.extensions) {
            parts
                .extensions
                .insert(ConnectInfo(std::net::SocketAddr::new(ip, 0)));
        }
        if let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") {
            let path = parts.uri.path();
            let prefix = format!("/{stage}");
            let rest = match path.strip_prefix(&prefix) {
                Some("") => Some("/".to_owned()),
                Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
                _ => None,
            };
            if let Some(rest) = rest {
                let path_and_query = match parts.uri.query() {
                    Some(query) => format!("{rest}?{query}"),
                    None => rest,
                };
                match path_and_query.parse() {
                    Ok(uri) => parts.uri = uri,
                    Err(err) => {
                        tracing::warn!(cause = %err, "cannot strip the stage from the path")
                    }
                }
            }
        }
        let body = Body::from(body.to_vec());
        let request = Request::from_parts(parts, body);
        // The router's error type is Infallible.
        match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

#[cfg(all(test, feature = "sdk"))]
mod tests {
    use std::sync::Arc;

    use axum::extract::State;
    use axum::Router;
    use http_body_util::BodyExt;
    use serde_json::json;

    use lamed_config::config::{Config, FileConfig, Overrides};
    use lamed_core::bots::BotFilter;
    use lamed_server::visitor::RequestVisitor;

    /// The client address the `Visitor` extractor finds, and its rule.
    async fn echo(
        State(bots): State<Arc<BotFilter>>,
        RequestVisitor(visitor): RequestVisitor,
    ) -> String {
        let client = visitor
            .client_ip
            .map_or("-".to_owned(), |ip| ip.to_string());
        let rule = bots.check(&visitor).map_or("person", |m| m.kind());
        format!("{client} {rule}")
    }

    /// A recorded API Gateway event, through lambda_http and `handle`:
    /// the peer is the event's `sourceIp` (here changed to differ from
    /// its `X-Forwarded-For`), and a trusted proxy takes the header's.
    #[tokio::test]
    async fn the_visitor_is_api_gateways_source_ip() {
        let event = include_str!("../../../tests/data/lambda/health.json").replace(
            r#""sourceIp": "203.0.113.7""#,
            r#""sourceIp": "192.0.2.55""#,
        );
        for (trusted_proxies, expected) in
            [(0, "192.0.2.55 ignored_network"), (1, "203.0.113.7 person")]
        {
            let file = FileConfig {
                settings: json!({
                    "trusted_proxies": trusted_proxies,
                    "ignored_networks": ["192.0.2.0/24"]
                })
                .as_object()
                .unwrap()
                .clone(),
                ..FileConfig::default()
            };
            let config = Config::resolve(None, file, Overrides::default()).unwrap();
            let app = Router::new()
                .fallback(echo)
                .with_state(Arc::clone(&config.bots));
            let request = lambda_http::request::from_str(&event).unwrap();
            let response = super::handle(app, request).await;
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, expected.as_bytes(), "{trusted_proxies} proxies");
        }
    }

    /// On Lambda, CloudFront's viewer headers name the country and the
    /// device of a recorded track event (here given a tablet's and
    /// Germany's, and a desktop browser's User-Agent); the event counts in
    /// those segments, and a re-sent one adds nothing.
    #[tokio::test]
    async fn cloudfront_headers_name_the_segment_on_lambda() {
        use lamed_core::segments::Dimension;
        use lamed_store::reference::ReferenceStore;
        use lamed_store::Store;

        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/data/lambda/track-participate.json"
        ))
        .unwrap();
        for (name, value) in [
            ("CloudFront-Viewer-Country", "DE"),
            ("CloudFront-Is-Tablet-Viewer", "true"),
            ("CloudFront-Is-Desktop-Viewer", "false"),
            (
                "User-Agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            ),
        ] {
            event["headers"][name] = json!(value);
            event["multiValueHeaders"][name] = json!([value]);
        }
        let event = event.to_string();
        let config = Config::resolve(None, FileConfig::default(), Overrides::default()).unwrap();
        let store = Arc::new(ReferenceStore::new(60, config.caps, Default::default()));
        let app = super::app(store.clone(), &config, &"k".repeat(20)).unwrap();
        for _ in 0..2 {
            let request = lambda_http::request::from_str(&event).unwrap();
            let response = super::handle(app.clone(), request).await;
            assert_eq!(response.status(), 200);
        }
        let counters = store
            .segment_counters("alephbet", "button color")
            .await
            .unwrap();
        let found: Vec<(Dimension, &str, u64)> = counters
            .iter()
            .map(|c| (c.dimension, c.value.as_str(), c.count))
            .collect();
        assert_eq!(
            found,
            [
                (Dimension::Device, "tablet", 1),
                (Dimension::Browser, "Chrome", 1),
                (Dimension::Country, "DE", 1)
            ]
        );
    }
}

#[cfg(not(feature = "sdk"))]
/// Without the `aws` feature there is no Lambda runtime in this binary.
///
/// # Errors
///
/// Always.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("this lamed was built without the aws feature; it cannot run on AWS Lambda")
}
