//! The HTTP server: runs the router on a listener until a shutdown signal,
//! then closes the store so every accepted event is committed.

pub mod error;
pub mod handlers;
pub mod ignored;
pub mod metrics;
pub mod params;
pub mod router;
pub mod routes;
pub mod state;

use std::future::Future;

use anyhow::Context;
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
    let app = router(state.clone(), options);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("http server failed")?;
    tracing::info!("no more requests in flight; closing the store");
    state
        .store
        .close()
        .await
        .context("failed to close the store")?;
    Ok(())
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
