//! Prometheus metrics: what was accepted, what was refused or ignored and
//! why, how long the store took and how large batches are, whether the
//! store takes writes, how many requests met a store fault a retry will
//! not fix, how many uuids the dedupe memory holds, how long requests
//! took by status, and the connections: open, waits at their caps,
//! failed accepts, timeouts.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use lamed_core::model::{Ignored, TrackOutcome};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

/// Upper bounds of the request-duration buckets, in seconds: 1-2-5 steps
/// from 0.1 ms to 10 s, so that targets such as "p99 under 50 ms" fall on
/// a bound.
const REQUEST_SECONDS: [f64; 16] = [
    0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0,
];

/// A request-duration histogram.
fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_SECONDS)
}

type RequestDurations = Family<StatusLabel, Histogram, fn() -> Histogram>;

/// The server's metrics; shared through `AppState`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events counted (new within the window).
    counted: Counter,
    /// Events found to be duplicates.
    duplicates: Counter,
    /// Requests or events refused, by reason.
    rejected: Family<ReasonLabel, Counter>,
    /// Well-formed events answered 200 but not counted, by reason.
    ignored: Family<ReasonLabel, Counter>,
    /// Time the store took to take a tracking call.
    store_latency: Histogram,
    /// Events per `POST /track` batch.
    batch_size: Histogram,
    /// 1 when the last write check passed, else 0.
    store_healthy: Gauge,
    /// Write checks done for `/health`, by result (`ok`, `failed`).
    health_checks: Family<ResultLabel, Counter>,
    /// Requests answered 500: corrupt data, an unexpected answer, a bug.
    /// Apart from the 503s, which monitoring reads as load or an outage.
    internal_errors: Counter,
    /// Uuids the dedupe memory holds; registered only for stores that
    /// know it (see [`Metrics::show_dedupe_entries`]).
    dedupe_entries: Gauge,
    /// Time from a request's head read to its answer's head, by status:
    /// the server's own latency, queueing in the kernel excluded.
    request_duration: RequestDurations,
    /// Connections open now.
    connections_open: Gauge,
    /// Times the listener stopped accepting at a cap, by limit
    /// (`connections`, `tls_handshakes`).
    connection_limit_waits: Family<LimitLabel, Counter>,
    /// Accepts that failed for want of resources (file descriptors,
    /// memory), after which the listener backed off.
    accept_errors: Counter,
    /// Connections closed for being too slow, by stage (`request_head`:
    /// idle or slow sending a head; `tls_handshake`).
    connections_timed_out: Family<StageLabel, Counter>,
    /// TLS handshakes that failed (not timed out).
    tls_handshakes_failed: Counter,
    /// Webhook attempts, by result (`delivered`, `retried`, `failed`,
    /// `disabled`).
    webhook_attempts: Family<ResultLabel, Counter>,
    /// Webhook endpoints disabled by a 410 answer, now.
    webhook_endpoints_disabled: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lamed");
        let counted = Counter::default();
        let duplicates = Counter::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let ignored = Family::<ReasonLabel, Counter>::default();
        // Every reason shows from the start, at zero.
        for reason in Ignored::REASONS {
            drop(ignored.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            }));
        }
        let store_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let store_healthy = Gauge::default();
        let health_checks = Family::<ResultLabel, Counter>::default();
        let internal_errors = Counter::default();
        let request_duration =
            RequestDurations::new_with_constructor(request_histogram as fn() -> Histogram);
        let connections_open = Gauge::default();
        let connection_limit_waits = Family::<LimitLabel, Counter>::default();
        let accept_errors = Counter::default();
        let connections_timed_out = Family::<StageLabel, Counter>::default();
        let tls_handshakes_failed = Counter::default();
        let webhook_attempts = Family::<ResultLabel, Counter>::default();
        let webhook_endpoints_disabled = Gauge::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by result",
            webhook_attempts.clone(),
        );
        registry.register(
            "webhook_endpoints_disabled",
            "Webhook endpoints disabled by a 410 answer",
            webhook_endpoints_disabled.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's head read to its answer's head, by status",
            request_duration.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now",
            connections_open.clone(),
        );
        registry.register(
            "connection_limit_waits",
            "Times the listener stopped accepting at a cap (max_connections, TLS handshakes), or a connection waited to read a request (max_in_flight_requests: limit \"requests\"), by limit",
            connection_limit_waits.clone(),
        );
        registry.register(
            "accept_errors",
            "Accepts that failed for want of resources (file descriptors); the listener backed off",
            accept_errors.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Connections closed for being too slow, by stage (request_head, tls_handshake)",
            connections_timed_out.clone(),
        );
        registry.register(
            "tls_handshakes_failed",
            "TLS handshakes that failed",
            tls_handshakes_failed.clone(),
        );
        registry.register(
            "events_counted",
            "Events counted as new within the dedupe window",
            counted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events recognised as duplicates and not counted again",
            duplicates.clone(),
        );
        registry.register(
            "rejected",
            "Requests or events refused, by reason",
            rejected.clone(),
        );
        registry.register(
            "events_ignored",
            "Well-formed events answered 200 but not counted, by reason",
            ignored.clone(),
        );
        registry.register(
            "store_latency_seconds",
            "Time the store took to take a tracking call",
            store_latency.clone(),
        );
        registry.register(
            "batch_size_events",
            "Events per POST /track batch",
            batch_size.clone(),
        );
        registry.register(
            "store_healthy",
            "1 when the store took the last write check, else 0",
            store_healthy.clone(),
        );
        registry.register(
            "store_health_checks",
            "Write checks done for /health (at most one a second), by result",
            health_checks.clone(),
        );
        registry.register(
            "internal_errors",
            "Requests answered 500: a store fault a retry will not fix (corrupt data, a bug)",
            internal_errors.clone(),
        );
        Metrics {
            registry,
            counted,
            duplicates,
            rejected,
            ignored,
            store_latency,
            batch_size,
            store_healthy,
            health_checks,
            internal_errors,
            dedupe_entries: Gauge::default(),
            request_duration,
            connections_open,
            connection_limit_waits,
            accept_errors,
            connections_timed_out,
            tls_handshakes_failed,
            webhook_attempts,
            webhook_endpoints_disabled,
        }
    }
}

impl Metrics {
    /// Records what the store did with some events.
    pub fn outcomes<'a>(&self, outcomes: impl IntoIterator<Item = &'a TrackOutcome>) {
        for outcome in outcomes {
            match outcome {
                TrackOutcome::Counted => {
                    self.counted.inc();
                }
                TrackOutcome::Duplicate => {
                    self.duplicates.inc();
                }
                TrackOutcome::Ignored(why) => self.ignore(why),
            }
        }
    }

    /// Records one ignored event.
    pub fn ignore(&self, why: &Ignored) {
        self.ignored
            .get_or_create(&ReasonLabel {
                reason: why.reason().to_owned(),
            })
            .inc();
    }

    /// Records what a webhook delivery pass did: attempts by result, and
    /// how many endpoints a 410 disabled (`disabled_now`, in all).
    pub fn webhooks(
        &self,
        delivered: u64,
        retried: u64,
        failed: u64,
        disabled: u64,
        disabled_now: u64,
    ) {
        for (result, n) in [
            ("delivered", delivered),
            ("retried", retried),
            ("failed", failed),
            ("disabled", disabled),
        ] {
            self.webhook_attempts
                .get_or_create(&ResultLabel { result })
                .inc_by(n);
        }
        self.webhook_endpoints_disabled
            .set(i64::try_from(disabled_now).unwrap_or(i64::MAX));
    }

    /// Records one refusal.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records how long one store call took.
    pub fn store_latency(&self, elapsed: Duration) {
        self.store_latency.observe(elapsed.as_secs_f64());
    }

    /// Records a batch size.
    pub fn batch_size(&self, events: usize) {
        self.batch_size.observe(events as f64);
    }

    /// Records the result of one write check.
    pub fn health_check(&self, healthy: bool) {
        self.store_healthy.set(i64::from(healthy));
        let result = if healthy { "ok" } else { "failed" };
        self.health_checks
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Records one request answered 500.
    pub fn internal_error(&self) {
        self.internal_errors.inc();
    }

    /// Adds the dedupe memory gauge, for a store that knows its size.
    pub fn show_dedupe_entries(&mut self) {
        self.registry.register(
            "dedupe_entries",
            "Uuids the dedupe memory holds now",
            self.dedupe_entries.clone(),
        );
    }

    /// Records how many uuids the dedupe memory holds.
    pub fn dedupe_entries(&self, entries: u64) {
        self.dedupe_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Records how long one request took to answer, with its status.
    pub fn request_duration(&self, status: u16, elapsed: Duration) {
        self.request_duration
            .get_or_create(&StatusLabel { status })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a connection opened (`true`) or closed (`false`).
    pub fn connection_opened(&self, opened: bool) {
        if opened {
            self.connections_open.inc();
        } else {
            self.connections_open.dec();
        }
    }

    /// Records that the listener waited at `limit`.
    pub fn connection_limit_reached(&self, limit: &'static str) {
        self.connection_limit_waits
            .get_or_create(&LimitLabel { limit })
            .inc();
    }

    /// Records an accept that failed for want of resources.
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Records a connection closed for being too slow in `stage`.
    pub fn connection_timed_out(&self, stage: &'static str) {
        self.connections_timed_out
            .get_or_create(&StageLabel { stage })
            .inc();
    }

    /// Records a failed TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshakes_failed.inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a string");
        out
    }
}

/// What the tracking service tells: the store's latency and the outcomes,
/// or a refusal when the store failed.
impl lamed_service::tracking::Meter for Metrics {
    fn tracked(&self, elapsed: Duration, outcomes: &[TrackOutcome]) {
        self.store_latency(elapsed);
        self.outcomes(outcomes);
    }

    /// A permanent failure is counted as an internal error when it is
    /// answered (500), not as a refusal.
    fn failed(&self, err: &lamed_store::StoreError) {
        if err.is_transient() {
            self.reject("store_unavailable");
        }
    }
}
