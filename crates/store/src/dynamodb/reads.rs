//! Reads: experiment lists, counters (the shards summed, plus imported
//! bases) and daily counters.

use std::collections::BTreeMap;

use futures_util::future::try_join_all;

use super::client;
use super::keys::{self, Item, SHARDS};
use super::store::DynamoDbStore;
use crate::{StoreError, DAILY_RETENTION_DAYS};
use lamed_core::model::{Counter, DailyCounter};
use lamed_core::value::{ValueTotals, LIMBS};

/// One counter, its shards summed.
#[derive(Debug, Default)]
struct Sum {
    tracked: i128,
    imported: i128,
    limbs: [i64; LIMBS],
    days: BTreeMap<i64, i128>,
}

impl DynamoDbStore {
    /// A namespace's experiments, sorted.
    pub(super) async fn read_experiments(
        &self,
        namespace: &str,
    ) -> Result<Vec<String>, StoreError> {
        match self.get(keys::experiments(namespace)).await? {
            None => Ok(Vec::new()),
            // A BTreeSet: sorted.
            Some(item) => Ok(client::string_set(&item, keys::NAMES)?
                .into_iter()
                .collect()),
        }
    }

    /// Every counter of a namespace, sorted by experiment, event, variant.
    pub(super) async fn read_counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        let names = self.read_experiments(namespace).await?;
        let all = try_join_all(
            names
                .iter()
                .map(|name| self.read_experiment_counters(namespace, name)),
        )
        .await?;
        Ok(all.into_iter().flatten().collect())
    }

    /// One experiment's counters, sorted by event and variant.
    pub(super) async fn read_experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        let sums = self.sums(namespace, experiment).await?;
        sums.into_iter()
            .map(|((event, variant), sum)| {
                let count = u64::try_from(sum.tracked + sum.imported)
                    .map_err(|_| StoreError::corrupt("dynamodb: a negative count"))?;
                Ok(Counter {
                    experiment: experiment.to_owned(),
                    event,
                    variant,
                    count,
                    values: ValueTotals::from_limbs(sum.limbs),
                })
            })
            .collect()
    }

    /// One experiment's counts per UTC day, within the retention, sorted
    /// by day, event and variant.
    pub(super) async fn read_daily(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let oldest = self.now_ms().div_euclid(86_400_000) - i64::from(DAILY_RETENTION_DAYS);
        let sums = self.sums(namespace, experiment).await?;
        let mut daily = Vec::new();
        for ((event, variant), sum) in sums {
            for (day, count) in sum.days.range(oldest..) {
                daily.push(DailyCounter {
                    event: event.clone(),
                    variant: variant.clone(),
                    day: *day,
                    count: u64::try_from(*count)
                        .map_err(|_| StoreError::corrupt("dynamodb: a negative count"))?,
                });
            }
        }
        daily.sort_by(|a, b| (a.day, &a.event, &a.variant).cmp(&(b.day, &b.event, &b.variant)));
        Ok(daily)
    }

    /// Every counter item of an experiment, summed per `(event, variant)`.
    async fn sums(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<BTreeMap<(String, String), Sum>, StoreError> {
        let shards = try_join_all(
            (0..SHARDS).map(|k| self.query(keys::counters_pk(namespace, experiment, k), "")),
        )
        .await?;
        let mut sums: BTreeMap<(String, String), Sum> = BTreeMap::new();
        for item in shards.iter().flatten() {
            add_item(&mut sums, item)?;
        }
        Ok(sums)
    }
}

/// Adds one counter item (tracked shard or imported base) to `sums`.
fn add_item(sums: &mut BTreeMap<(String, String), Sum>, item: &Item) -> Result<(), StoreError> {
    let sk = client::string(item, keys::SK)?.unwrap_or_default();
    let bad = || StoreError::corrupt(format!("dynamodb: counter key {sk:?}"));
    if let Some(rest) = sk.strip_prefix(keys::IMPORTED_PREFIX) {
        let name = keys::split_counter(rest).ok_or_else(bad)?;
        sums.entry(name).or_default().imported += client::number(item, keys::BASE)?.unwrap_or(0);
        return Ok(());
    }
    let rest = sk.strip_prefix(keys::TRACKED_PREFIX).ok_or_else(bad)?;
    let sum = sums
        .entry(keys::split_counter(rest).ok_or_else(bad)?)
        .or_default();
    for name in item.keys() {
        let value = || -> Result<i128, StoreError> { Ok(client::number(item, name)?.unwrap_or(0)) };
        if name == keys::COUNT {
            sum.tracked += value()?;
        } else if let Some(day) = name
            .strip_prefix(keys::DAY_PREFIX)
            .and_then(|d| d.parse::<i64>().ok())
        {
            *sum.days.entry(day).or_default() += value()?;
        } else if let Some(limb) = name
            .strip_prefix(keys::LIMB_PREFIX)
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l < LIMBS)
        {
            sum.limbs[limb] += i64::try_from(value()?)
                .map_err(|_| StoreError::corrupt("dynamodb: a value limb out of range"))?;
        }
    }
    Ok(())
}
