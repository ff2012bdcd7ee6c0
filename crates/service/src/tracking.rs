//! Counting events: the one way a service hands events to the store, and
//! how the caller hears what counting did (the server's metrics, kept out
//! of the services: it implements [`Meter`]).

use std::time::{Duration, Instant};

use lamed_core::model::{Event, TrackOutcome};
use lamed_store::{Join, JoinAnswer, Joined, Store, StoreError};

/// Hears each call that counts events: how long it took and what it
/// counted, or that it failed. `lamed serve` records them as metrics.
pub trait Meter: Send + Sync {
    /// One call counted `outcomes` (one per event, in order) in `elapsed`.
    fn tracked(&self, elapsed: Duration, outcomes: &[TrackOutcome]);
    /// One call failed.
    fn failed(&self, err: &StoreError);
}

/// A [`Meter`] that hears nothing: for commands and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmetered;

impl Meter for Unmetered {
    fn tracked(&self, _: Duration, _: &[TrackOutcome]) {}
    fn failed(&self, _: &StoreError) {}
}

/// Counts already validated events, one outcome per event in order, and
/// tells `meter`.
///
/// # Errors
///
/// The store's failure (nothing is known to be counted), or
/// [`StoreError::Corrupt`] when it answers another number of outcomes than
/// events (callers pair them by position).
pub async fn track(
    store: &dyn Store,
    meter: &dyn Meter,
    events: Vec<Event>,
) -> Result<Vec<TrackOutcome>, StoreError> {
    let started = Instant::now();
    let sent = events.len();
    let outcomes = store
        .track(events)
        .await
        .and_then(|outcomes| {
            if outcomes.len() == sent {
                Ok(outcomes)
            } else {
                Err(StoreError::corrupt(format!(
                    "store answered {} outcomes for {sent} events",
                    outcomes.len()
                )))
            }
        })
        .inspect_err(|err| meter.failed(err))?;
    meter.tracked(started.elapsed(), &outcomes);
    Ok(outcomes)
}

/// A member joining an experiment with the event that counts it, in one
/// store operation ([`Store::count_join`]); tells `meter` what tracking
/// decided (a member that had joined adds nothing).
///
/// # Errors
///
/// The store's failure (nothing was written).
pub async fn count_join(
    store: &dyn Store,
    meter: &dyn Meter,
    join: Join,
) -> Result<JoinAnswer, StoreError> {
    let started = Instant::now();
    let answer = store
        .count_join(join)
        .await
        .inspect_err(|err| meter.failed(err))?;
    let outcome = match &answer.joined {
        Joined::Counted => Some(TrackOutcome::Counted),
        Joined::Duplicate => Some(TrackOutcome::Duplicate),
        Joined::Ignored(why) => Some(TrackOutcome::Ignored(why.clone())),
        Joined::Held(_) | Joined::NotParticipating => None,
    };
    if let Some(outcome) = outcome {
        meter.tracked(started.elapsed(), &[outcome]);
    }
    Ok(answer)
}
