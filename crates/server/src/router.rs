//! The axum router: the route table's rows (see [`crate::routes`])
//! with the layers every response passes through.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, InternalError};
use crate::handlers::openapi::OpenApiDocument;
use crate::handlers::track;
use crate::in_flight::{HeldSlot, InFlight};
use crate::routes::{route_of, HEALTH_PATH, ROUTES};
use crate::state::AppState;
use lamed_config::config::Handler;
use lamed_config::settings::DEFAULT_REQUEST_TIMEOUT_MS;

/// Largest request body: a full batch of long events fits.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Longest request target (path and query): room for a `scope` of 16 KiB
/// even fully percent-encoded, below hyper's own bound (64 KiB), which
/// answers without our JSON body.
pub const MAX_URI_BYTES: usize = 60 * 1024;

/// Most bytes of request headers (names and values, as on the wire): far
/// more than any browser sends, far less than hyper's own buffer bound.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Routes beyond the standard ones, the request timeout and the in-flight
/// limit.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// `extra_wiring` paths from the config, each serving one handler.
    pub extra_routes: Vec<(String, Handler)>,
    /// Serve `GET /_bench/empty` (200 `{}`, no store), the baseline for
    /// throughput measurements. Never deployed, hence not in the table.
    pub bench_routes: bool,
    /// A request that takes longer is answered 503 (the client retries),
    /// so a stuck store holds no connection and shutdown is never stuck.
    pub request_timeout: Duration,
    /// The least time a delete gets ([`DELETE_TIMEOUT`]; on AWS Lambda
    /// less, what API Gateway waits for allows).
    pub delete_timeout: Duration,
    /// The slots of requests served at once (`max_in_flight_requests`),
    /// shared with the connections' read gate (`in_flight.rs`): a request
    /// read without one takes one here or is answered 503.
    pub in_flight: InFlight,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            extra_routes: Vec::new(),
            bench_routes: false,
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            delete_timeout: DELETE_TIMEOUT,
            // AWS Lambda (the user of the default) runs one request per
            // instance and limits concurrency itself.
            in_flight: InFlight::default(),
        }
    }
}

/// The path of the opt-in benchmark route.
const BENCH_PATH: &str = "/_bench/empty";

/// The whole HTTP API: the rows of the route table, the `extra_wiring`
/// paths (each taking its handler's row), and the layers every response
/// passes through.
pub fn router(state: AppState, options: &RouterOptions) -> Router {
    let mut router = Router::new();
    for route in &ROUTES {
        router = router.route(route.path, route.method_router(&state));
    }
    for (path, handler) in &options.extra_routes {
        router = router.route(
            &format!("/{path}"),
            route_of(*handler).method_router(&state),
        );
    }
    if options.bench_routes {
        router = router.route(BENCH_PATH, get(|| async { track::empty_ok() }));
    }
    router
        .fallback(|| async { ApiError::NotFound("no such path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(OpenApiDocument(crate::openapi::text)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            report_internal_errors,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            (options.request_timeout, options.delete_timeout),
            answer_in_time,
        ))
        .layer(middleware::from_fn_with_state(
            options.in_flight.clone(),
            shed_load,
        ))
        .layer(middleware::from_fn(refuse_oversized_head))
        .layer(TraceLayer::new_for_http())
        // Unless the handler says otherwise (the weights are cacheable).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ))
        .layer(cors())
        .layer(middleware::from_fn_with_state(state.clone(), time_requests))
        .with_state(state)
}

/// Records how long each request took, from its head read to its
/// answer's head (the whole stack, refusals included), by status.
async fn time_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_duration(response.status().as_u16(), started.elapsed());
    response
}

/// Logs each 500 with its whole cause and counts it on `/metrics`: here,
/// once for every handler and API (ours and Sixpack's), since a response
/// cannot reach the metrics.
async fn report_internal_errors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(InternalError(cause)) = response.extensions().get() {
        tracing::error!(
            cause = cause.chain(),
            "store fault a retry will not fix; answering 500"
        );
        state.metrics.internal_error();
    }
    response
}

/// The least time a delete gets. An experiment with a million Sixpack
/// memberships takes the embedded store seconds to remove, paced so that
/// tracking keeps most of the writer, and more on a busy machine: under
/// the request timeout it would answer 503 while it runs on to the end.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the request within the timeout (at least the delete timeout for a
/// delete), else answers 503 with Retry-After like any other 503: nothing
/// was promised, the client sends it again.
async fn answer_in_time(
    State((timeout, delete_timeout)): State<(Duration, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = match *request.method() == axum::http::Method::DELETE {
        true => timeout.max(delete_timeout),
        false => timeout,
    };
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => ApiError::TimedOut.into_response(),
    }
}

/// Paths never refused for load: `/health` answers from the last write
/// check without touching the store, and a busy server answering its
/// probe 503 would be restarted or taken out of rotation, moving its load
/// onto the others.
const UNLIMITED_PATHS: [&str; 1] = [HEALTH_PATH];

/// Serves the request under the slot its connection read it with, else
/// under a free one, else answers 503 with Retry-After at once (never
/// queues: a queue would only grow under overload, and the client re-sends
/// anything not answered 200). The slot is held until the response is
/// produced.
async fn shed_load(State(slots): State<InFlight>, mut request: Request, next: Next) -> Response {
    if let Some(HeldSlot(_slot)) = request.extensions_mut().remove::<HeldSlot>() {
        return next.run(request).await;
    }
    if UNLIMITED_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match slots.try_take() {
        Ok(_slot) => next.run(request).await,
        Err(()) => ApiError::Overloaded.into_response(),
    }
}

/// Answers 414 for a request target over [`MAX_URI_BYTES`] and 431 for
/// headers over [`MAX_HEADER_BYTES`], with our JSON body (hyper's own
/// bounds are far higher and answer with an empty one).
async fn refuse_oversized_head(request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "request target of {uri_bytes} bytes exceeds the limit of {MAX_URI_BYTES}"
        ))
        .into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        // "name: value\r\n"
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge(format!(
            "request headers of {header_bytes} bytes exceed the limit of {MAX_HEADER_BYTES}"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The request headers browsers may send cross-origin: `lamed serve`'s
/// CORS layer and `lamed deploy`'s API Gateway answer the same.
pub const CORS_ALLOW_HEADERS: [&str; 4] =
    ["Content-Type", "X-Api-Key", "Authorization", "If-Match"];

/// The response headers a cross-origin page may read beyond the safelisted
/// ones: a record's version, to send back in `If-Match`.
pub const CORS_EXPOSE_HEADERS: [&str; 1] = ["ETag"];

/// Every response's `Cache-Control` but the weights' (WIRE.md), here and
/// on API Gateway.
pub const CACHE_CONTROL: &str = "no-cache, no-store, must-revalidate";

/// Any origin may call us (sites track from their own origin; hosted
/// dashboards send `X-Api-Key` from theirs).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(CORS_ALLOW_HEADERS.map(header_name))
        .expose_headers(CORS_EXPOSE_HEADERS.map(header_name))
        .max_age(Duration::from_secs(86_400))
}

/// A constant header name.
fn header_name(name: &str) -> HeaderName {
    // Constant names of valid header characters.
    HeaderName::from_bytes(name.as_bytes()).expect("a valid header name")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use std::sync::Arc;

    use super::*;
    use crate::routes::Access;
    use lamed_config::config::{Config, FileConfig, Overrides};
    use lamed_config::settings::Given;

    const KEY: &str = "router-test-key-0123456789";

    /// The router over an embedded store in `dir`, with one `extra_wiring`
    /// path to the (private) experiments handler.
    async fn app(dir: &std::path::Path) -> (Router, AppState) {
        let data_dir = serde_json::Value::String(dir.display().to_string());
        let overrides = Overrides {
            settings: Given::default().with("data_dir", data_dir),
            ..Overrides::default()
        };
        let config = Config::resolve(None, FileConfig::default(), overrides).unwrap();
        let store = lamed_store::open(&config.store_options()).await.unwrap();
        let state = AppState::new(store, KEY, 100, Arc::clone(&config.bots));
        let options = RouterOptions {
            extra_routes: vec![("mine".to_owned(), Handler::Experiments)],
            ..RouterOptions::default()
        };
        (router(state.clone(), &options), state)
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A row's path with its parameters filled in.
    fn concrete(path: &str) -> String {
        path.replace("{experiment}", "e")
            .replace("{asset}", "app.js")
    }

    /// Every private row of the table, and an extra path borrowing one,
    /// answers 401 without a key and 403 with a wrong one (counted as
    /// rejects) before its handler runs; the right key, in either header,
    /// gets through. Public rows need no key; a wrong method stays 405 and
    /// CORS preflight needs no key.
    #[tokio::test]
    async fn private_rows_need_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (app, state) = app(dir.path()).await;
        let bearer = format!("Bearer {KEY}");
        let mut private = 0;
        let rows = ROUTES
            .iter()
            .map(|row| (concrete(row.path), row))
            .chain([("/mine".to_owned(), route_of(Handler::Experiments))]);
        for (path, row) in rows {
            for endpoint in row.endpoints {
                let method = endpoint.method().as_str();
                let (status, body) = send(&app, method, &path, &[]).await;
                let with_key = send(&app, method, &path, &[("x-api-key", KEY)]).await.0;
                assert!(
                    with_key != 401 && with_key != 403,
                    "{method} {path}: {with_key}"
                );
                if row.access == Access::Public {
                    assert!(status != 401 && status != 403, "{method} {path}: {status}");
                    continue;
                }
                private += 1;
                assert_eq!(status, 401, "{method} {path}: {body}");
                assert!(body.contains("X-Api-Key"), "{body}");
                let wrong = send(&app, method, &path, &[("x-api-key", "not-the-key-000000")]);
                assert_eq!(wrong.await.0, 403, "{method} {path}");
                let bearer = send(&app, method, &path, &[("authorization", &bearer)])
                    .await
                    .0;
                assert!(bearer != 401 && bearer != 403, "{method} {path}: {bearer}");
            }
        }
        assert!(private >= 5, "{private} private methods");
        let metrics = state.metrics.encode();
        for reason in ["missing_api_key", "wrong_api_key"] {
            let line = format!("lamed_rejected_total{{reason=\"{reason}\"}} {private}");
            assert!(metrics.contains(&line), "{line} in {metrics}");
        }
        assert_eq!(send(&app, "PUT", "/experiments", &[]).await.0, 405);
        let preflight = [
            ("origin", "https://site.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-api-key"),
        ];
        assert_eq!(send(&app, "OPTIONS", "/metrics", &preflight).await.0, 200);
    }
}
