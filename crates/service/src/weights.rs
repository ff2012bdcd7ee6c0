//! The weights a page gives AlephBet's variants before it builds an
//! experiment: for an adaptive experiment those of the current period
//! ([`adaptive::current_weights`]), otherwise the registered weights
//! scaled to 100.

use lamed_stats::apportion;
use lamed_store::Store;

use crate::adaptive::{self, WeightsError};

/// An experiment's weights for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    /// False for an experiment whose weights are its registered ones.
    pub adaptive: bool,
    /// The period the weights hold for (adaptive only).
    pub period: Option<i64>,
    /// When they stop holding, in Unix milliseconds (adaptive only).
    pub expires_ms: Option<i64>,
    /// True while the weights wait for every variant's burn-in.
    pub burn_in: bool,
    /// Variant and integer weight, summing to 100, in the registered order.
    pub weights: Vec<(String, u32)>,
}

/// The experiment's weights at `now_ms`: for an adaptive experiment those
/// of the period holding it (computed and stored by its first request),
/// otherwise the registered weights scaled to 100. `None` for an
/// experiment without registered variants.
///
/// # Errors
///
/// A store failure, or stored weights that do not parse.
pub async fn weights(
    store: &dyn Store,
    namespace: &str,
    experiment: &str,
    now_ms: i64,
) -> Result<Option<Weights>, WeightsError> {
    let Some(record) = store
        .record(namespace, experiment)
        .await?
        .filter(|r| !r.variants.is_empty())
    else {
        return Ok(None);
    };
    Ok(Some(match &record.adaptive {
        Some(settings) => {
            let period = adaptive::current_weights(store, &record, settings, now_ms).await?;
            Weights {
                adaptive: true,
                period: Some(period.period),
                expires_ms: Some(settings.period_end_ms(period.period)),
                burn_in: period.burn_in,
                weights: period.variants.into_iter().zip(period.weights).collect(),
            }
        }
        None => {
            let registered: Vec<f64> = record
                .variants
                .iter()
                .map(|v| f64::from(v.weight))
                .collect();
            Weights {
                adaptive: false,
                period: None,
                expires_ms: None,
                burn_in: false,
                weights: record
                    .variants
                    .iter()
                    .map(|v| v.name.clone())
                    .zip(apportion(&registered))
                    .collect(),
            }
        }
    }))
}
