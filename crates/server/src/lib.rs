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
//!   it; [`handlers`]: one file per resource.
//! - [`state`], [`error`], [`params`], [`etag`], [`visitor`],
//!   [`health`], [`metrics`], [`ignored`], [`tls`].

pub mod error;
pub mod etag;
pub mod handlers;
pub mod health;
pub mod ignored;
pub mod metrics;
pub mod params;
pub mod router;
pub mod routes;
pub mod state;
pub mod tls;
pub mod visitor;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

pub use router::{router, RouterOptions};
pub use state::AppState;

/// Serves until `shutdown` completes: stops accepting, lets in-flight
/// requests finish, then flushes and closes the store.
///
/// # Errors
///
/// When serving fails or the store cannot be closed cleanly.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: &RouterOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let served = serve(listener, router(state.clone(), options), shutdown).await;
    close_after(served, state).await
}

/// [`run`] over HTTPS, with `tls`'s certificate (reloaded as it changes).
///
/// # Errors
///
/// When SIGHUP cannot be listened for, serving fails or the store cannot
/// be closed cleanly.
pub async fn run_tls(
    listener: TcpListener,
    tls: tls::Tls,
    state: AppState,
    options: &RouterOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tls.listen(listener)?;
    let served = serve_tls(listener, router(state.clone(), options), shutdown).await;
    close_after(served, state).await
}

/// Once serving has ended, closes the store, so that every accepted event
/// is committed.
async fn close_after(served: anyhow::Result<()>, state: AppState) -> anyhow::Result<()> {
    served?;
    tracing::info!("no more requests in flight; closing the store");
    state
        .store
        .close()
        .await
        .context("failed to close the store")?;
    Ok(())
}

/// Serves `app` until `shutdown` completes, recording each connection's
/// peer address (`ConnectInfo`), where the bot rules find the client.
async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("http server failed")
}

/// [`serve`] over TLS.
async fn serve_tls(
    listener: tls::TlsListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` is a no-op here: axum gives the peer address of a wrapped
    // listener as `ConnectInfo<SocketAddr>` (not of a listener of ours).
    axum::serve(
        listener.tap_io(|_| ()),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("https server failed")
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(cause = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
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
            let app = Router::new().route("/visitor", get(echo)).with_state(state);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, app, async {
                stopped.await.ok();
            }));
            let answer = lamed_client::request(addr, "GET", "/visitor", headers, b"")
                .await
                .unwrap();
            assert_eq!(answer.status, 200);
            let body = String::from_utf8_lossy(&answer.body);
            assert_eq!(body, expected, "{trusted_proxies} proxies, {headers:?}");
            stop.send(()).unwrap();
            server.await.unwrap().unwrap();
            store.close().await.unwrap();
        }
    }
}
