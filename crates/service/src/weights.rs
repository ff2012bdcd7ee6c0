//! The weights a page gives AlephBet's variants before it builds an
//! experiment: for an adaptive experiment those of the current period
//! ([`adaptive::current_weights`]), otherwise the registered weights
//! scaled to 100.

use lamed_stats::apportion;
use lamed_store::Store;

use crate::adaptive::{self, Flights, WeightsError};

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
/// of the period holding it (computed and stored by its first request, the
/// others waiting for it in `flights`), otherwise the registered weights
/// scaled to 100. `None` for an experiment without registered variants.
///
/// # Errors
///
/// A store failure, or stored weights that do not parse.
pub async fn weights(
    store: &dyn Store,
    flights: &Flights,
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
            let period =
                adaptive::current_weights(store, flights, &record, settings, now_ms).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;
    use lamed_core::adaptive::Adaptive;
    use lamed_core::clock::Clock;
    use lamed_core::model::Caps;
    use lamed_core::registry::Definition;
    use lamed_store::reference::ReferenceStore;

    fn definition(json: &str) -> Definition {
        serde_json::from_str(json).unwrap()
    }

    /// Registered weights are scaled to 100 in the registered order; an
    /// experiment without variants has none.
    #[tokio::test]
    async fn registered_weights_scale_to_100() {
        let store = ReferenceStore::new(0, Caps::default(), Clock::manual(0));
        assert_eq!(
            weights(&store, &Flights::default(), "ns", "e", 0)
                .await
                .unwrap(),
            None
        );
        let json = r#"{"variants": [{"name": "b", "weight": 3}, "a"]}"#;
        registry::put(&store, "ns", "e", definition(json), 0)
            .await
            .unwrap();
        let found = weights(&store, &Flights::default(), "ns", "e", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            found,
            Weights {
                adaptive: false,
                period: None,
                expires_ms: None,
                burn_in: false,
                weights: vec![("b".into(), 75), ("a".into(), 25)],
            }
        );
    }

    /// An adaptive experiment's weights hold for the period holding now
    /// and say when it ends; within the burn-in they are even.
    #[tokio::test]
    async fn adaptive_weights_hold_for_their_period() {
        let store = ReferenceStore::new(0, Caps::default(), Clock::manual(0));
        let mut definition = definition(r#"{"variants": ["a", "b"], "goals": ["buy"]}"#);
        let adaptive = Adaptive::on("buy");
        definition.adaptive = Some(adaptive.clone());
        registry::put(&store, "ns", "e", definition, 0)
            .await
            .unwrap();
        let now = 5 * adaptive.period_end_ms(0) + 7;
        let found = weights(&store, &Flights::default(), "ns", "e", now)
            .await
            .unwrap()
            .unwrap();
        let period = adaptive.period_of(now);
        assert!(found.adaptive && found.burn_in);
        assert_eq!(found.period, Some(period));
        assert_eq!(found.expires_ms, Some(adaptive.period_end_ms(period)));
        assert_eq!(found.weights, vec![("a".into(), 50), ("b".into(), 50)]);
        let history = store.weight_history("ns", "e").await.unwrap();
        assert_eq!(history.len(), 1, "the period's weights are stored");
    }
}
