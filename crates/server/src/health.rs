//! The store's health as `/health` and `/metrics` show it: one write check
//! a second at most, shared by every caller, whatever the call rate.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::metrics::Metrics;
use lamed_store::Store;

/// How long one write check answers for.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The last write check: whether it passed, and when it ended.
#[derive(Debug, Default)]
pub struct HealthCheck {
    last: Mutex<Option<(Instant, bool)>>,
}

impl HealthCheck {
    /// Whether the store takes writes: the last check's answer when it is
    /// younger than [`HEALTH_CHECK_INTERVAL`], else a new check. Callers
    /// arriving during a check wait for it and share its answer.
    pub async fn healthy(&self, store: &dyn Store, metrics: &Metrics) -> bool {
        let mut last = self.last.lock().await;
        if let Some((checked, healthy)) = *last {
            if checked.elapsed() < HEALTH_CHECK_INTERVAL {
                return healthy;
            }
        }
        let healthy = match store.check_writable().await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(
                    cause = err.chain(),
                    "health check: the store takes no writes"
                );
                false
            }
        };
        metrics.health_check(healthy);
        *last = Some((Instant::now(), healthy));
        healthy
    }
}
