//! The HTTP server: runs the router on a listener until a shutdown signal,
//! then closes the store so every accepted event is committed.
//!
//! HTTP only: the route table, thin handlers (parse, call a service,
//! answer), errors, metrics and TLS. It may import the services, the
//! settings, the store (for its handle and error) and the core: never the
//! AWS crate or the binary; the Lambda entry calls this router.
//!
//! # Layout
//!
//! - [`routes`]: every path once; [`router`]: the axum router built from
//!   it; [`handlers`]: one file per resource; [`openapi`]: the OpenAPI
//!   document, from the route table and the bodies' types.
//! - [`connections`]: accepting and serving connections within caps.
//! - [`state`], [`error`], [`params`], [`etag`], [`visitor`],
//!   [`health`], [`metrics`], [`ignored`], [`tls`].
//! - [`alerting`]: the alerts' options, for `lamed serve` and the Lambda
//!   entry alike.

pub mod alerting;
pub mod connections;
pub mod error;
pub mod etag;
pub mod handlers;
pub mod health;
pub mod ignored;
pub mod in_flight;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod router;
pub mod routes;
pub mod state;
pub mod tls;
pub mod visitor;

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;

pub use connections::ConnectionLimits;
pub use in_flight::InFlight;
pub use router::{router, RouterOptions};
pub use state::AppState;

/// Serves until `shutdown` completes, within `limits`: stops accepting,
/// lets in-flight requests finish, then flushes and closes the store.
///
/// # Errors
///
/// When the store cannot be closed cleanly.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: &RouterOptions,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(state.clone(), options);
    let meter = std::sync::Arc::new(state.clone());
    connections::serve(listener, app, None, limits, meter, shutdown).await;
    close_store(state).await
}

/// [`run`] over HTTPS, with `tls`'s certificate (reloaded as it changes).
///
/// # Errors
///
/// When SIGHUP cannot be listened for or the store cannot be closed
/// cleanly.
pub async fn run_tls(
    listener: TcpListener,
    tls: tls::Tls,
    state: AppState,
    options: &RouterOptions,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let serving = tls.start()?;
    let app = router(state.clone(), options);
    let meter = std::sync::Arc::new(state.clone());
    let acceptor = Some(serving.acceptor.clone());
    connections::serve(listener, app, acceptor, limits, meter, shutdown).await;
    drop(serving);
    close_store(state).await
}

/// Once serving has ended, closes the store, so that every accepted event
/// is committed.
async fn close_store(state: AppState) -> anyhow::Result<()> {
    tracing::info!("no more requests in flight; closing the store");
    state
        .store
        .close()
        .await
        .context("failed to close the store")?;
    Ok(())
}

/// Listens for Ctrl-C (SIGINT) and SIGTERM from the call on, and returns
/// a future that completes on the first of them. Listening starts here,
/// not when the future is first polled, so that a signal sent as soon as
/// the banner is out still shuts down cleanly instead of killing.
///
/// # Errors
///
/// When the signal handlers cannot be installed.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("ctrl-c received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}

/// Completes on Ctrl-C.
///
/// # Errors
///
/// Never here; the signature matches the Unix one.
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("ctrl-c received; shutting down");
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::extract::State;
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::visitor::RequestVisitor;
    use lamed_config::config::{Config, FileConfig, Overrides};

    /// The client address the `Visitor` extractor finds, and the bot rule
    /// it matches.
    async fn echo(
        State(state): State<AppState>,
        RequestVisitor(visitor): RequestVisitor,
    ) -> String {
        let client = visitor
            .client_ip
            .map_or("-".to_owned(), |ip| ip.to_string());
        let rule = state.bots.check(&visitor).map_or("person", |m| m.kind());
        format!("{client} {rule}")
    }

    /// Over real HTTP on a socket, served as `run` serves: the extractor
    /// sees the TCP peer (127.0.0.1), or with trusted proxies the client
    /// of `X-Forwarded-For`, which the ignored networks then match.
    #[tokio::test]
    async fn the_visitor_is_the_peer_or_the_forwarded_client() {
        let dir = tempfile::tempdir().unwrap();
        let forwarded = [
            ("x-forwarded-for", "203.0.113.9, 198.51.100.4"),
            (
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            ),
        ];
        for (trusted_proxies, headers, expected) in [
            (0, &forwarded[..], "127.0.0.1 person"),
            (0, &forwarded[1..], "127.0.0.1 person"),
            (1, &forwarded[..], "198.51.100.4 ignored_network"),
            (2, &forwarded[..], "203.0.113.9 person"),
            (3, &forwarded[..], "203.0.113.9 person"),
            (1, &forwarded[1..], "127.0.0.1 person"),
            (1, &[("user-agent", "")][..], "127.0.0.1 empty_user_agent"),
        ] {
            let file = FileConfig {
                settings: json!({
                    "data_dir": dir.path(),
                    "trusted_proxies": trusted_proxies,
                    "ignored_networks": ["198.51.100.0/24"]
                })
                .as_object()
                .unwrap()
                .clone(),
                ..FileConfig::default()
            };
            let config = Config::resolve(None, file, Overrides::default()).unwrap();
            let store = lamed_store::open(&config.store_options()).await.unwrap();
            let state = AppState::new(
                Arc::clone(&store),
                "server-test-key-0123456789",
                10,
                Arc::clone(&config.bots),
            );
            let state_for_meter = state.clone();
            let app = axum::Router::new()
                .route("/visitor", get(echo))
                .with_state(state);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let meter = Arc::new(state_for_meter);
            let limits = ConnectionLimits::default();
            let server = tokio::spawn(async move {
                connections::serve(listener, app, None, &limits, meter, async {
                    stopped.await.ok();
                })
                .await;
            });
            let answer = lamed_client::request(addr, "GET", "/visitor", headers, b"")
                .await
                .unwrap();
            assert_eq!(answer.status, 200);
            let body = String::from_utf8_lossy(&answer.body);
            assert_eq!(body, expected, "{trusted_proxies} proxies, {headers:?}");
            stop.send(()).unwrap();
            server.await.unwrap();
            store.close().await.unwrap();
        }
    }
}
