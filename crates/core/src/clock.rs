//! Where the stores read the time. Production uses the system clock; tests
//! use a manual clock they step forward, so dedupe-window checks run
//! without sleeping and the same steps can drive every backend.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now" in Unix milliseconds. Clones share a manual clock.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock. The Redis store then reads Redis's own `TIME`, so
    /// that every instance on one Redis agrees on the window.
    #[default]
    System,
    /// A clock that only moves when told to.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms` (Unix milliseconds).
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// A manual clock starting at the current system time.
    pub fn manual_at_now() -> Self {
        Clock::manual(Clock::System.now_ms())
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
                }),
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// The manual time, or `None` for the system clock (whose time a store
    /// may take from elsewhere, such as Redis).
    pub fn manual_ms(&self) -> Option<i64> {
        match self {
            Clock::System => None,
            Clock::Manual(now) => Some(now.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward.
    ///
    /// # Panics
    ///
    /// On the system clock, which cannot be stepped: a test bug.
    pub fn advance(&self, by: Duration) {
        match self {
            Clock::System => panic!("the system clock cannot be advanced"),
            Clock::Manual(now) => {
                let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                now.fetch_add(by, Ordering::SeqCst);
            }
        }
    }
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (proleptic Gregorian;
/// the days-to-civil algorithm of Howard Hinnant's date library).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manual clock moves only when advanced, and its clones move with it.
    #[test]
    fn manual_clock_steps() {
        let clock = Clock::manual(1_000);
        let copy = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        copy.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.manual_ms(), Some(3_500));
        assert_eq!(Clock::System.manual_ms(), None);
        assert!(Clock::System.now_ms() > 1_600_000_000_000);
    }
}
