//! Reads: experiment lists, counters (the shards summed, plus imported
//! bases), daily counters and segment counters (their shards summed).

use std::collections::BTreeMap;

use futures_util::future::try_join_all;

use super::client;
use super::keys::{self, Item, SHARDS};
use super::store::DynamoDbStore;
use crate::{StoreError, DAILY_RETENTION_DAYS};
use lamed_core::model::{Counter, DailyCounter};
use lamed_core::segments::{sort_counters, Dimension, SegmentCounter};
use lamed_core::value::{ValueTotals, LIMBS};

/// `(dimension, value, event, variant)`: one segment counter.
type SegmentKey = (Dimension, String, String, String);

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

    /// One experiment's segment counters, sorted by dimension, value,
    /// event and variant: a query per dimension and shard, at once.
    pub(super) async fn read_segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<SegmentCounter>, StoreError> {
        let partitions: Vec<(Dimension, u32)> = Dimension::ALL
            .into_iter()
            .flat_map(|dimension| (0..SHARDS).map(move |k| (dimension, k)))
            .collect();
        let shards = try_join_all(partitions.iter().map(|&(dimension, k)| {
            self.query(keys::segments_pk(namespace, experiment, dimension, k), "")
        }))
        .await?;
        let mut sums: BTreeMap<SegmentKey, (i128, [i64; LIMBS])> = BTreeMap::new();
        for (&(dimension, _), items) in partitions.iter().zip(&shards) {
            for item in items {
                let sk = client::string(item, keys::SK)?.unwrap_or_default();
                let (value, event, variant) = keys::split_segment(sk).ok_or_else(|| {
                    StoreError::corrupt(format!("dynamodb: segment counter key {sk:?}"))
                })?;
                let (count, limbs) = sums.entry((dimension, value, event, variant)).or_default();
                *count += client::number(item, keys::COUNT)?.unwrap_or(0);
                add_limbs(limbs, item)?;
            }
        }
        let mut counters = sums
            .into_iter()
            .map(|((dimension, value, event, variant), (count, limbs))| {
                Ok(SegmentCounter {
                    dimension,
                    value,
                    event,
                    variant,
                    count: u64::try_from(count)
                        .map_err(|_| StoreError::corrupt("dynamodb: a negative count"))?,
                    values: ValueTotals::from_limbs(limbs),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Dimensions sort by their order, not their names: sorted here.
        sort_counters(&mut counters);
        Ok(counters)
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
        }
    }
    add_limbs(&mut sum.limbs, item)
}

/// Adds the value limbs (`v0`..`v5`) of one counter item to `limbs`.
fn add_limbs(limbs: &mut [i64; LIMBS], item: &Item) -> Result<(), StoreError> {
    for (limb, sum) in limbs.iter_mut().enumerate() {
        let name = format!("{}{limb}", keys::LIMB_PREFIX);
        if let Some(value) = client::number(item, &name)? {
            *sum += i64::try_from(value)
                .map_err(|_| StoreError::corrupt("dynamodb: a value limb out of range"))?;
        }
    }
    Ok(())
}
