//! What every handler can reach: the store, the configuration, the bot
//! rules, the metrics, the last health check.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::health::HealthCheck;
use crate::ignored::IgnoredNames;
use crate::metrics::Metrics;
use lamed_config::config::Config;
use lamed_core::bots::BotFilter;
use lamed_core::segmenter::Segmenter;
use lamed_core::sixpack::SixpackConfig;
use lamed_service::adaptive::Flights;
use lamed_store::DynStore;

/// Shared state. Every request clones it, so it is one reference count:
/// a struct of several `Arc`s would cost an atomic increment and decrement
/// per field per request, on cache lines all cores share.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares, reached through it by `Deref`.
#[derive(Debug)]
pub struct Shared {
    /// Where events are counted.
    pub store: DynStore,
    /// Hash of the API key: compared in constant time, and the key itself
    /// is not kept around in the request path.
    api_key_hash: [u8; 32],
    /// Largest batch accepted by `POST /track`.
    pub max_batch_events: usize,
    /// Which requests are bots' (`bots::Visitor` reads it too).
    pub bots: Arc<BotFilter>,
    /// The segment of a tracking request (device, browser, country).
    pub segments: Arc<Segmenter>,
    /// Request counters and latencies.
    pub metrics: Metrics,
    /// The last write check, which `/health` answers from.
    pub health: HealthCheck,
    /// The names whose events were most often ignored.
    pub ignored: IgnoredNames,
    /// The Sixpack API's namespace and limit.
    pub sixpack: SixpackConfig,
    /// The new periods' adaptive weights being computed: once per
    /// experiment, however many requests ask at the period's start.
    pub weight_flights: Flights,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state `lamed serve` and the Lambda function run on: the batch
    /// limit, the bot rules and the Sixpack API as `config` says.
    pub fn from_config(store: DynStore, api_key: &str, config: &Config) -> Self {
        Self::with_parts(
            store,
            api_key,
            config.max_batch_events,
            Arc::clone(&config.bots),
            config.sixpack(),
        )
        .with_segments(Arc::clone(&config.segments))
    }

    /// This state with other segment rules (the Lambda entry trusts
    /// CloudFront's headers). Call before the state is cloned.
    pub fn with_segments(mut self, segments: Arc<Segmenter>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.0) {
            shared.segments = segments;
        }
        self
    }

    /// State over a store, with the API key that guards private endpoints
    /// and the bot rules (the Sixpack API with its defaults).
    pub fn new(
        store: DynStore,
        api_key: &str,
        max_batch_events: usize,
        bots: Arc<BotFilter>,
    ) -> Self {
        Self::with_parts(
            store,
            api_key,
            max_batch_events,
            bots,
            SixpackConfig::default(),
        )
    }

    fn with_parts(
        store: DynStore,
        api_key: &str,
        max_batch_events: usize,
        bots: Arc<BotFilter>,
        sixpack: SixpackConfig,
    ) -> Self {
        let mut metrics = Metrics::default();
        if store.dedupe_entries().is_some() {
            metrics.show_dedupe_entries();
        }
        AppState(Arc::new(Shared {
            store,
            api_key_hash: *blake3::hash(api_key.as_bytes()).as_bytes(),
            max_batch_events,
            bots,
            segments: Arc::new(
                Segmenter::new(&Segmenter::default_dimensions(), None, false)
                    .unwrap_or_else(|_| Segmenter::off()),
            ),
            metrics,
            health: HealthCheck::default(),
            ignored: IgnoredNames::default(),
            sixpack,
            weight_flights: Flights::default(),
        }))
    }

    /// Checks the API key given in `X-Api-Key` or `Authorization: Bearer`.
    /// Handlers never call it: the route table puts it in front of every
    /// private route.
    ///
    /// # Errors
    ///
    /// [`ApiError::MissingKey`] (401) or [`ApiError::WrongKey`] (403).
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers.get("x-api-key").map(|v| v.as_bytes()).or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        });
        let Some(given) = given else {
            self.metrics.reject("missing_api_key");
            return Err(ApiError::MissingKey);
        };
        // Hashing first makes the comparison independent of the length too.
        let given = blake3::hash(given);
        if bool::from(given.as_bytes().ct_eq(&self.api_key_hash[..])) {
            Ok(())
        } else {
            self.metrics.reject("wrong_api_key");
            Err(ApiError::WrongKey)
        }
    }
}

impl FromRef<AppState> for Arc<BotFilter> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.bots)
    }
}
