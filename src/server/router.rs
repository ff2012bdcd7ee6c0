//! Every route in one place, with the layers every response passes through.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{delete, get, MethodRouter};
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Handler;
use crate::server::error::ApiError;
use crate::server::handlers::{dashboard, experiments, health, report, track};
use crate::server::state::AppState;

/// Largest request body: a full batch of long events fits.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A request that takes longer is answered 408 so shutdown is never stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Routes beyond the standard ones.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// `extra_wiring` paths from the config, each serving one handler.
    pub extra_routes: Vec<(String, Handler)>,
    /// Serve `GET /_bench/empty` (200 `{}`, no store), the baseline for
    /// throughput measurements.
    pub bench_routes: bool,
}

/// The whole HTTP API.
pub fn router(state: AppState, options: &RouterOptions) -> Router {
    let mut router = Router::new()
        // Public, used by the AlephBet client (and alephbet-rails' path).
        .route("/track", handler_routes(Handler::Track))
        .route("/event", handler_routes(Handler::Track))
        // Private (API key), used by dashboards and the CLI.
        .route("/experiments", handler_routes(Handler::Experiments))
        .route("/delete", handler_routes(Handler::Delete))
        .route("/metrics", get(health::metrics))
        .route("/api/experiments/{experiment}/report", get(report::report))
        // The built-in dashboard (public assets; it asks for the key).
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/{asset}", get(dashboard::asset))
        // Public, for load balancers and monitors.
        .route("/health", get(health::health));
    for (path, handler) in &options.extra_routes {
        router = router.route(&format!("/{path}"), handler_routes(*handler));
    }
    if options.bench_routes {
        router = router.route("/_bench/empty", get(|| async { track::empty_ok() }));
    }
    router
        .fallback(|| async { ApiError::NotFound("no such path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        ))
        .layer(cors())
        .with_state(state)
}

/// The methods each of Lamed's handlers answers.
fn handler_routes(handler: Handler) -> MethodRouter<AppState> {
    match handler {
        Handler::Track => get(track::track_one).post(track::track_batch),
        Handler::Experiments => get(experiments::list),
        Handler::Delete => delete(experiments::delete),
    }
}

/// Any origin may call us (sites track from their own origin; hosted
/// dashboards send `X-Api-Key` from theirs).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            header::AUTHORIZATION,
        ])
        .max_age(Duration::from_secs(86_400))
}
