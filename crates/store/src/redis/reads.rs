//! Reads: counters (tracked plus imported), daily counters, and the
//! experiments listed in a namespace that still exist.

use std::collections::{BTreeMap, HashMap};

use futures_util::future::try_join_all;
use redis::Value;

use super::keys::{day_key, split_field, split_segment_field, Key};
use super::store::RedisStore;
use crate::StoreError;
use lamed_core::model::{Counter, DailyCounter};
use lamed_core::segments::{sort_counters, Dimension, SegmentCounter};
use lamed_core::value::{ValueTotals, LIMBS};

/// Counter slots: `event \x1f variant` → slot in the counter strings.
type Slots = HashMap<String, usize>;

impl RedisStore {
    /// One experiment's segment counters, from its [`Key::Segments`] hash.
    pub(super) async fn read_segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<SegmentCounter>, StoreError> {
        let mut conn = self.conn();
        let fields: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.experiment_key(namespace, experiment, Key::Segments))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        type Id = (Dimension, String, String, String);
        let mut read: BTreeMap<Id, (u64, [i64; LIMBS])> = BTreeMap::new();
        for (field, number) in &fields {
            let Some((limb, dimension, value, event, variant)) = split_segment_field(field) else {
                continue;
            };
            let dimension: Dimension = dimension.parse().map_err(|err| {
                StoreError::corrupt_because("a stored segment counter is corrupt", err)
            })?;
            let id = (
                dimension,
                value.to_owned(),
                event.to_owned(),
                variant.to_owned(),
            );
            let entry = read.entry(id).or_default();
            match limb {
                None => entry.0 = u64::try_from(*number).unwrap_or(0),
                Some(k) if k < LIMBS => entry.1[k] = *number,
                Some(_) => {}
            }
        }
        let mut counters: Vec<SegmentCounter> = read
            .into_iter()
            .map(
                |((dimension, value, event, variant), (count, limbs))| SegmentCounter {
                    dimension,
                    value,
                    event,
                    variant,
                    count,
                    values: ValueTotals::from_limbs(limbs),
                },
            )
            .collect();
        sort_counters(&mut counters);
        Ok(counters)
    }

    /// The namespace's listed experiments that still exist, sorted.
    pub(super) async fn live_experiments(
        &self,
        namespace: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.namespace_key(namespace))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        names.sort();
        let exists = try_join_all(names.iter().map(|name| {
            let mut conn = self.conn();
            let key = self.experiment_key(namespace, name, Key::Variants);
            async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            }
        }))
        .await
        .map_err(|e| self.error(e))?;
        Ok(names
            .into_iter()
            .zip(exists)
            .filter_map(|(name, exists)| exists.then_some(name))
            .collect())
    }

    /// Every counter of a namespace: tracked plus imported.
    pub(super) async fn read_counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        let names = self.live_experiments(namespace).await?;
        let per_experiment = try_join_all(
            names
                .iter()
                .map(|name| self.read_experiment_counters(namespace, name)),
        )
        .await?;
        Ok(per_experiment.into_iter().flatten().collect())
    }

    /// One experiment's counters, sorted by event and variant: tracked plus
    /// imported. An experiment that does not exist has none of its keys
    /// (delete removes them together), so it reads as empty.
    pub(super) async fn read_experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        let mut conn = self.conn();
        let base = self.experiment_base(namespace, experiment);
        let (slots, tracked, imported, values) = redis::pipe()
            .cmd("HGETALL")
            .arg(Key::Slots.of(&base))
            .cmd("GET")
            .arg(Key::Totals.of(&base))
            .cmd("HGETALL")
            .arg(Key::Imported.of(&base))
            .cmd("GET")
            .arg(Key::Values.of(&base))
            .query_async::<(
                Slots,
                Option<Vec<u8>>,
                HashMap<String, u64>,
                Option<Vec<u8>>,
            )>(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let (tracked, values) = (tracked.unwrap_or_default(), values.unwrap_or_default());
        let mut sums: BTreeMap<(String, String), (u64, Option<ValueTotals>)> = BTreeMap::new();
        for (field, slot) in slots {
            if let Some(id) = split_field(&field) {
                let limbs = std::array::from_fn(|k| slot_i64(&values, slot * LIMBS + k));
                let entry = sums.entry(id).or_default();
                entry.0 += slot_count(&tracked, slot);
                entry.1 = ValueTotals::from_limbs(limbs);
            }
        }
        for (field, count) in imported {
            if let Some(id) = split_field(&field) {
                sums.entry(id).or_default().0 += count;
            }
        }
        Ok(sums
            .into_iter()
            .map(|((event, variant), (count, values))| Counter {
                experiment: experiment.to_owned(),
                event,
                variant,
                count,
                values,
            })
            .collect())
    }

    /// One experiment's counts per listed day, sorted by day, event and
    /// variant.
    pub(super) async fn read_daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let base = self.experiment_base(namespace, experiment);
        let mut conn = self.conn();
        let days: Vec<i64> = redis::cmd("ZRANGE")
            .arg(Key::Days.of(&base))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(Key::Slots.of(&base));
        for day in &days {
            pipe.cmd("GET").arg(day_key(&base, *day));
        }
        let mut answers: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let per_day = answers.split_off(answers.len().min(1));
        let slots: Slots = answers
            .pop()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| self.error(e.into()))?
            .unwrap_or_default();
        let mut daily = Vec::new();
        for (day, counts) in days.into_iter().zip(per_day) {
            let counts: Option<Vec<u8>> =
                redis::from_redis_value(counts).map_err(|e| self.error(e.into()))?;
            let counts = counts.unwrap_or_default();
            let mut rows: Vec<DailyCounter> = slots
                .iter()
                .filter_map(|(field, &slot)| {
                    let count = slot_count(&counts, slot);
                    let (event, variant) = split_field(field)?;
                    (count > 0).then_some(DailyCounter {
                        event,
                        variant,
                        day,
                        count,
                    })
                })
                .collect();
            rows.sort_by(|a, b| (&a.event, &a.variant).cmp(&(&b.event, &b.variant)));
            daily.extend(rows);
        }
        Ok(daily)
    }
}

/// The count at `slot` of a counter string (totals or a day's); a
/// negative count reads as 0.
fn slot_count(counts: &[u8], slot: usize) -> u64 {
    u64::try_from(slot_i64(counts, slot)).unwrap_or(0)
}

/// The integer at `index` of a string of 64-bit big-endian integers, as
/// BITFIELD `i64 #index` writes them; past the end of the string, 0.
fn slot_i64(integers: &[u8], index: usize) -> i64 {
    let mut bytes = [0u8; 8];
    if let Some(stored) = integers.get(index * 8..) {
        let n = stored.len().min(8);
        bytes[..n].copy_from_slice(&stored[..n]);
    }
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::slot_count;

    /// Slots are big-endian 64-bit integers; a string that ends inside a
    /// slot (BITFIELD leaves no trailing zeros) or before it reads as if
    /// padded with zeros; a negative value reads as 0.
    #[test]
    fn slots_read_as_bitfield_writes_them() {
        let mut counts = 5i64.to_be_bytes().to_vec();
        counts.extend(300i64.to_be_bytes());
        assert_eq!(slot_count(&counts, 0), 5);
        assert_eq!(slot_count(&counts, 1), 300);
        assert_eq!(slot_count(&counts, 2), 0);
        let short = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(slot_count(&short, 1), 1 << 32);
        assert_eq!(slot_count(&(-1i64).to_be_bytes(), 0), 0);
    }
}
