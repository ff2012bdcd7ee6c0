//! The dedupe memory's in-memory table: 16 bytes per remembered event,
//! about 20 with the table's free slots.
//!
//! Each slot is one `u128`: an 86-bit fingerprint of the event's identity
//! (the top bits of its 128-bit dedupe key) and the millisecond of its first
//! sighting modulo 2^42 (139 years; the full time is recovered as the one
//! nearest to now, exact for any sighting within 69 years). A fingerprint
//! keeps the odds that any two of a billion remembered events share one
//! near 10⁻⁸, and those of any one event being taken for another below
//! 10⁻¹⁷.
//!
//! The table is split into segments by the fingerprint's top bits. Each
//! segment is an open-addressing table with linear probing and
//! backward-shift deletion (no tombstones), and grows by a quarter when
//! 90% full, so its fill stays between 72% and 90%: a table that doubled
//! would sit half empty after each growth. Growing one segment moves only
//! its own slots, so no single insert pauses long.

/// Bits of a slot that hold the time.
const TIME_BITS: u32 = 42;
const TIME_MASK: u128 = (1 << TIME_BITS) - 1;
/// Segments: 2^SEGMENT_BITS, chosen by the fingerprint's top bits.
const SEGMENT_BITS: u32 = 8;
/// A segment's first capacity.
const MIN_CAPACITY: usize = 16;
/// An empty slot (no fingerprint is 0: see [`fingerprint`]).
const EMPTY: u128 = 0;

/// Remembered events: fingerprint → first sighting.
#[derive(Debug)]
pub(super) struct DedupeTable {
    segments: Vec<Segment>,
    len: usize,
}

#[derive(Debug, Default)]
struct Segment {
    slots: Vec<u128>,
    len: usize,
}

impl Default for DedupeTable {
    fn default() -> Self {
        DedupeTable::with_capacity(0)
    }
}

/// Segment `i`'s share of growth: capacities start at 1.25^(i/256) times
/// the same size, so segments (which fill at the same pace) grow at evenly
/// spread moments and the whole table's fill stays near 81% instead of
/// swinging between 72% and 90% together.
fn spread(segment: usize) -> f64 {
    1.25f64.powf(segment as f64 / f64::from(1u32 << SEGMENT_BITS))
}

impl DedupeTable {
    /// A table sized for `events` without growing (rebuilding from the log
    /// knows its size).
    pub(super) fn with_capacity(events: usize) -> Self {
        let per_segment = events as f64 / f64::from(1u32 << SEGMENT_BITS) / 0.9;
        DedupeTable {
            segments: (0..1 << SEGMENT_BITS)
                .map(|i| {
                    let capacity = (per_segment.max(MIN_CAPACITY as f64) * spread(i)) as usize;
                    Segment {
                        slots: vec![EMPTY; capacity],
                        len: 0,
                    }
                })
                .collect(),
            len: 0,
        }
    }
}

/// The fingerprint of a dedupe key: its top 86 bits, never 0.
fn fingerprint(key: u128) -> u128 {
    (key >> TIME_BITS).max(1)
}

/// A sighting's time as a slot keeps it.
fn stamp(ms: i64) -> u128 {
    (ms as u128) & TIME_MASK
}

/// The time nearest to `now` whose stamp is `stamp`.
fn time_of(stamp: u128, now: i64) -> i64 {
    let age = (stamp_i(now) - stamp as i128).rem_euclid(1 << TIME_BITS);
    let age = if age >= 1 << (TIME_BITS - 1) {
        age - (1 << TIME_BITS)
    } else {
        age
    };
    now - age as i64
}

fn stamp_i(ms: i64) -> i128 {
    stamp(ms) as i128
}

impl DedupeTable {
    /// When the event with dedupe key `key` was first seen, if remembered
    /// (`now` picks the century of the stored time).
    pub(super) fn first_seen(&self, key: u128, now: i64) -> Option<i64> {
        let fp = fingerprint(key);
        self.segment(fp)
            .find(fp)
            .map(|at| time_of(self.segment(fp).slots[at] & TIME_MASK, now))
    }

    /// Remembers `key` as first seen at `ms`, replacing an older sighting;
    /// returns the replaced slot, for [`DedupeTable::restore`].
    pub(super) fn insert(&mut self, key: u128, ms: i64) -> Option<u128> {
        let fp = fingerprint(key);
        let slot = (fp << TIME_BITS) | stamp(ms);
        let segment = self.segment_mut(fp);
        let previous = segment.insert(fp, slot);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Puts back what [`DedupeTable::insert`] replaced (`None`: the key was
    /// not there), undoing it.
    pub(super) fn restore(&mut self, key: u128, previous: Option<u128>) {
        let fp = fingerprint(key);
        match previous {
            Some(slot) => {
                self.segment_mut(fp).insert(fp, slot);
            }
            None => self.remove_if(key, |_| true),
        }
    }

    /// Forgets `key` if it is remembered as first seen at `ms` (a later
    /// sighting of the same key stays).
    pub(super) fn forget(&mut self, key: u128, ms: i64) {
        self.remove_if(key, |slot| slot & TIME_MASK == stamp(ms));
    }

    fn remove_if(&mut self, key: u128, matches: impl Fn(u128) -> bool) {
        let fp = fingerprint(key);
        let segment = self.segment_mut(fp);
        if let Some(at) = segment.find(fp) {
            if matches(segment.slots[at]) {
                segment.remove(at);
                self.len -= 1;
            }
        }
    }

    /// Events remembered.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the slots take (for tests and the benchmark).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.slots.capacity() * std::mem::size_of::<u128>())
            .sum()
    }

    fn segment(&self, fp: u128) -> &Segment {
        &self.segments[(fp >> (128 - TIME_BITS - SEGMENT_BITS)) as usize]
    }

    fn segment_mut(&mut self, fp: u128) -> &mut Segment {
        &mut self.segments[(fp >> (128 - TIME_BITS - SEGMENT_BITS)) as usize]
    }
}

impl Segment {
    /// The home slot of a fingerprint: its low 64 bits scaled to the
    /// capacity (uniform, since fingerprints are hash bits).
    fn home(&self, fp: u128) -> usize {
        ((u128::from(fp as u64) * self.slots.len() as u128) >> 64) as usize
    }

    fn find(&self, fp: u128) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut at = self.home(fp);
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            if slot >> TIME_BITS == fp {
                return Some(at);
            }
            at = self.next(at);
        }
    }

    /// Stores `slot` for `fp`; returns the slot it replaced.
    fn insert(&mut self, fp: u128, slot: u128) -> Option<u128> {
        if let Some(at) = self.find(fp) {
            return Some(std::mem::replace(&mut self.slots[at], slot));
        }
        if (self.len + 1) * 10 > self.slots.len() * 9 {
            self.grow();
        }
        let mut at = self.home(fp);
        while self.slots[at] != EMPTY {
            at = self.next(at);
        }
        self.slots[at] = slot;
        self.len += 1;
        None
    }

    /// Empties slot `at`, shifting back the slots after it that would
    /// otherwise no longer be found from their home.
    fn remove(&mut self, mut at: usize) {
        self.slots[at] = EMPTY;
        self.len -= 1;
        let mut next = self.next(at);
        while self.slots[next] != EMPTY {
            let home = self.home(self.slots[next] >> TIME_BITS);
            // Move it back unless its home lies cyclically in (at, next].
            let stays = if at <= next {
                at < home && home <= next
            } else {
                at < home || home <= next
            };
            if !stays {
                self.slots[at] = self.slots[next];
                self.slots[next] = EMPTY;
                at = next;
            }
            next = self.next(next);
        }
    }

    fn next(&self, at: usize) -> usize {
        if at + 1 == self.slots.len() {
            0
        } else {
            at + 1
        }
    }

    /// Grows by a quarter and re-inserts.
    fn grow(&mut self) {
        let capacity = (self.slots.len() + self.slots.len() / 4).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; capacity]);
        self.len = 0;
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            let mut at = self.home(slot >> TIME_BITS);
            while self.slots[at] != EMPTY {
                at = self.next(at);
            }
            self.slots[at] = slot;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A stream of keys like blake3's: uniform bits.
    fn keys(n: usize, seed: u64) -> Vec<u128> {
        (0..n as u64)
            .map(|i| {
                let h = blake3::hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat());
                u128::from_le_bytes(h.as_bytes()[..16].try_into().unwrap())
            })
            .collect()
    }

    /// The table answers as a map does through inserts, replacements,
    /// forgets and undos, and fills up to near 20 bytes an entry.
    #[test]
    fn behaves_as_a_map() {
        let now = 1_796_000_000_000;
        let mut table = DedupeTable::default();
        let mut map: HashMap<u128, i64> = HashMap::new();
        let all = keys(60_000, 1);
        for (i, &key) in all.iter().enumerate() {
            let ms = now - (i as i64 % 5_000);
            assert_eq!(
                table.insert(key, ms).is_some(),
                map.insert(key, ms).is_some()
            );
        }
        let per_entry = table.bytes() as f64 / table.len() as f64;
        assert!(per_entry < 22.5, "{per_entry} bytes per entry");
        for (i, &key) in all.iter().enumerate().step_by(3) {
            // Forgetting needs the very sighting: a wrong time keeps it.
            table.forget(key, now - 999_999);
            let ms = now - (i as i64 % 5_000);
            table.forget(key, ms);
            map.remove(&key);
        }
        let undo: Vec<(u128, Option<u128>)> = all[..5_000]
            .iter()
            .map(|&key| (key, table.insert(key, now + 1)))
            .collect();
        for (key, previous) in undo.into_iter().rev() {
            table.restore(key, previous);
        }
        assert_eq!(table.len(), map.len());
        for &key in &all {
            assert_eq!(
                table.first_seen(key, now),
                map.get(&key).copied(),
                "{key:x}"
            );
        }
        for &key in &keys(10_000, 2) {
            assert_eq!(table.first_seen(key, now), None);
        }
    }

    /// The benchmark of `bench/dedupe-index.sh`: fills the table with
    /// `LAMED_BENCH_EVENTS` (default 10⁸) unique events, and reports bytes
    /// per event, the fill rate and the lookup rate. Not run by the suite.
    #[test]
    #[ignore = "a benchmark: bench/dedupe-index.sh"]
    fn fill_benchmark() {
        let events: u64 = std::env::var("LAMED_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000_000);
        let key = |i: u64| {
            // SplitMix64 twice: uniform 128-bit keys, cheaply.
            let mix = |mut z: u64| {
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            (u128::from(mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))) << 64)
                | u128::from(mix(i ^ 0x5555_5555_5555_5555))
        };
        let now = 1_796_000_000_000;
        let mut table = DedupeTable::default();
        let started = std::time::Instant::now();
        for i in 0..events {
            table.insert(key(i), now);
        }
        let fill = started.elapsed();
        let started = std::time::Instant::now();
        let found = (0..events)
            .step_by(97)
            .filter(|&i| table.first_seen(key(i), now).is_some())
            .count();
        let lookups = started.elapsed();
        assert_eq!(found as u64, events.div_ceil(97));
        println!(
            "dedupe table: {events} events, {:.1} bytes per event, filled in {:.1} s \
             ({:.0} inserts/s), {:.0} lookups/s",
            table.bytes() as f64 / events as f64,
            fill.as_secs_f64(),
            events as f64 / fill.as_secs_f64(),
            found as f64 / lookups.as_secs_f64()
        );
    }

    /// Times are recovered exactly around now, across the stamp's wrap.
    #[test]
    fn times_round_trip_near_now() {
        for now in [0, 5, 1 << 42, (1 << 42) + 7, 1_796_000_000_000] {
            for ms in [
                now,
                now - 1,
                now - 86_400_000,
                now - 315_360_000_000,
                now + 2,
            ] {
                assert_eq!(time_of(stamp(ms), now), ms, "now {now} ms {ms}");
            }
        }
    }
}
