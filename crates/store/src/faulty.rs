//! A fault-injecting wrapper store for tests, in the spirit of
//! object_store's `ThrottledStore` and `LimitStore`: [`FaultyStore`]
//! implements [`Store`] over any other store and, call by call, fails
//! before the call, fails after it (the write happened, the answer is
//! lost), delays it, or gives up on it after a deadline (a timeout: the
//! call's future is dropped wherever it was, as a server's timeout layer
//! drops a request's).
//!
//! Which call gets which fault is a pure function of the plan's seed and
//! the call's number ([`FaultPlan::fault`]), so one call sequence always
//! meets the same faults; a [`FaultPlan::script`] names faults for given
//! call numbers ("the third call fails after writing"). Counts of what was
//! injected ([`Injected`]) let a test prove its faults happened.
//!
//! Every trait method delegates to the wrapped store through one
//! [`FaultyStore::inject`], one method per trait method and nothing else,
//! so a change to the trait is a mechanical change here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Join, JoinAnswer, Kept, Precondition, PutOutcome, Store, StoreError, Versioned};
use lamed_core::model::{Counter, DailyCounter, Event, TrackOutcome};
use lamed_core::registry::ExperimentRecord;

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call is made and answered as the wrapped store answers.
    None,
    /// The call fails without reaching the wrapped store.
    FailBefore,
    /// The call is made, then fails: what it wrote stays written (a lost
    /// answer).
    FailAfter,
    /// The call is made after this pause.
    Delay(Duration),
    /// The call starts after `latency` and is abandoned (its future
    /// dropped wherever it is) when it has not answered within `deadline`
    /// of the start: an error then, whether it wrote or not. Drawn
    /// latencies are up to twice the deadline, so some time-outs fire
    /// before the call (like [`Fault::FailBefore`]) and some during it.
    TimeOut {
        /// How long the caller waits for the answer.
        deadline: Duration,
        /// How long the call takes to reach the store.
        latency: Duration,
    },
}

/// Which calls fail, and how: probabilities per call, drawn from a seed,
/// and faults for given call numbers.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Seeds the draws: the same seed gives the same fault to the same
    /// call number.
    pub seed: u64,
    /// Probability of [`Fault::FailBefore`] per call.
    pub fail_before: f64,
    /// Probability of [`Fault::FailAfter`] per call.
    pub fail_after: f64,
    /// Probability of [`Fault::Delay`] per call.
    pub delay: f64,
    /// Probability of [`Fault::TimeOut`] per call.
    pub time_out: f64,
    /// The longest delay or deadline; each is drawn between zero and this.
    pub max_delay: Duration,
    /// Faults of given calls (numbered from 0 in the order they reach
    /// the wrapper), over the drawn ones.
    pub script: BTreeMap<u64, Fault>,
}

impl FaultPlan {
    /// No fault at all: the wrapper only delegates.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// Each kind of fault with probability `each` per call, delays and
    /// deadlines up to `max_delay`.
    pub fn random(seed: u64, each: f64, max_delay: Duration) -> Self {
        FaultPlan {
            seed,
            fail_before: each,
            fail_after: each,
            delay: each,
            time_out: each,
            max_delay,
            script: BTreeMap::new(),
        }
    }

    /// The plan with `fault` for call number `call` (0 is the first).
    pub fn with(mut self, call: u64, fault: Fault) -> Self {
        self.script.insert(call, fault);
        self
    }

    /// The fault of call number `call`: the scripted one, else a draw
    /// from the seed and the call number alone (no shared generator, so
    /// concurrent calls need no lock).
    pub fn fault(&self, call: u64) -> Fault {
        if let Some(fault) = self.script.get(&call) {
            return *fault;
        }
        let draw = splitmix64(self.seed ^ splitmix64(call));
        let drawn = unit(draw);
        let micros = u64::try_from(self.max_delay.as_micros()).unwrap_or(u64::MAX);
        let pause = || Duration::from_micros(splitmix64(draw) % micros.saturating_add(1));
        let mut bound = self.fail_before;
        if drawn < bound {
            return Fault::FailBefore;
        }
        bound += self.fail_after;
        if drawn < bound {
            return Fault::FailAfter;
        }
        bound += self.delay;
        if drawn < bound {
            return Fault::Delay(pause());
        }
        bound += self.time_out;
        if drawn < bound {
            let deadline = pause();
            return Fault::TimeOut {
                deadline,
                latency: deadline.saturating_mul(2).mul_f64(unit(splitmix64(!draw))),
            };
        }
        Fault::None
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 53 of `bits`' bits as an exact `f64` in [0, 1).
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// What a [`FaultyStore`] has injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injected {
    /// Calls that reached the wrapper.
    pub calls: u64,
    /// Calls failed before reaching the wrapped store.
    pub failed_before: u64,
    /// Calls made, then failed.
    pub failed_after: u64,
    /// Calls delayed.
    pub delayed: u64,
    /// Calls abandoned at their deadline (time-outs that did not fire are
    /// not counted).
    pub timed_out: u64,
    /// Of those, calls abandoned after they started: they may have
    /// written.
    pub cut_short: u64,
}

/// The counters behind [`Injected`].
#[derive(Debug, Default)]
struct Counts {
    calls: AtomicU64,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
    delayed: AtomicU64,
    timed_out: AtomicU64,
    cut_short: AtomicU64,
}

/// A [`Store`] that injects the faults of a [`FaultPlan`] into the calls
/// it passes to another store. A clone shares the wrapped store, the call
/// numbering and the counts.
#[derive(Debug)]
pub struct FaultyStore<S: ?Sized> {
    inner: Arc<S>,
    plan: FaultPlan,
    counts: Arc<Counts>,
}

impl<S: ?Sized> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        FaultyStore {
            inner: Arc::clone(&self.inner),
            plan: self.plan.clone(),
            counts: Arc::clone(&self.counts),
        }
    }
}

impl<S: Store + ?Sized> FaultyStore<S> {
    /// `inner` with the faults of `plan`.
    pub fn new(inner: Arc<S>, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            plan,
            counts: Arc::default(),
        }
    }

    /// The wrapped store, to look at it without faults.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// What has been injected so far.
    pub fn injected(&self) -> Injected {
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Injected {
            calls: read(&self.counts.calls),
            failed_before: read(&self.counts.failed_before),
            failed_after: read(&self.counts.failed_after),
            delayed: read(&self.counts.delayed),
            timed_out: read(&self.counts.timed_out),
            cut_short: read(&self.counts.cut_short),
        }
    }

    /// Runs one call of `operation` (the trait method's name) with its
    /// fault. `call` has not started: a future does nothing until polled.
    async fn inject<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let number = self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let count = |n: &AtomicU64| n.fetch_add(1, Ordering::Relaxed);
        let injected = |fault: InjectedFault| {
            let context = format!("injected fault: {operation} (call {number})");
            Err(StoreError::caused_by(context, fault))
        };
        match self.plan.fault(number) {
            Fault::None => call.await,
            Fault::FailBefore => {
                count(&self.counts.failed_before);
                injected(InjectedFault::FailedBefore)
            }
            Fault::FailAfter => {
                count(&self.counts.failed_after);
                let answer = call.await;
                injected(InjectedFault::FailedAfter { ok: answer.is_ok() })
            }
            Fault::Delay(pause) => {
                count(&self.counts.delayed);
                tokio::time::sleep(pause).await;
                call.await
            }
            Fault::TimeOut { deadline, latency } => {
                // The call would start at or after its deadline: it never
                // does (no race with the timer's millisecond ticks).
                if latency >= deadline {
                    tokio::time::sleep(deadline).await;
                    count(&self.counts.timed_out);
                    return injected(InjectedFault::TimedOut {
                        deadline,
                        started: false,
                    });
                }
                let started = AtomicBool::new(false);
                let late = async {
                    tokio::time::sleep(latency).await;
                    started.store(true, Ordering::Relaxed);
                    call.await
                };
                match tokio::time::timeout(deadline, late).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        count(&self.counts.timed_out);
                        let started = started.load(Ordering::Relaxed);
                        if started {
                            count(&self.counts.cut_short);
                        }
                        injected(InjectedFault::TimedOut { deadline, started })
                    }
                }
            }
        }
    }
}

/// The fault behind a [`FaultyStore`]'s error (its source), so that a
/// caller knows what the failed call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectedFault {
    /// The call never reached the wrapped store.
    #[error("failed before the call")]
    FailedBefore,
    /// The call was made (and answered `ok` or an error); its answer was
    /// dropped.
    #[error("answer lost after the call")]
    FailedAfter {
        /// Whether the wrapped store answered `Ok`.
        ok: bool,
    },
    /// The caller stopped waiting at the deadline.
    #[error("timed out after {deadline:?}")]
    TimedOut {
        /// How long it waited.
        deadline: Duration,
        /// Whether the call had started: it may then have written, and
        /// what the store does on its own (a queued write, a task) may
        /// still be going on.
        started: bool,
    },
}

impl InjectedFault {
    /// The fault behind `err`, when a [`FaultyStore`] injected it.
    pub fn of(err: &StoreError) -> Option<InjectedFault> {
        match err {
            StoreError::Unavailable {
                source: Some(source),
                ..
            } => source.downcast_ref::<InjectedFault>().copied(),
            _ => None,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: Store + ?Sized> Store for FaultyStore<S> {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.inject("track", self.inner.track(events)).await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        self.inject("counters", self.inner.counters(namespace))
            .await
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let call = self.inner.daily_counters(namespace, experiment);
        self.inject("daily_counters", call).await
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.inject("experiments", self.inner.experiments(namespace))
            .await
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        let call = self.inner.delete_experiment(namespace, experiment);
        self.inject("delete_experiment", call).await
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        let call = self
            .inner
            .import_counter(namespace, experiment, event, variant, count);
        self.inject("import_counter", call).await
    }

    async fn record(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Option<ExperimentRecord>, StoreError> {
        let call = self.inner.record(namespace, experiment);
        self.inject("record", call).await
    }

    async fn records(&self, namespace: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        self.inject("records", self.inner.records(namespace)).await
    }

    async fn put_record(
        &self,
        record: ExperimentRecord,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let call = self.inner.put_record(record, precondition);
        self.inject("put_record", call).await
    }

    async fn member_count(&self, namespace: &str, experiment: &str) -> Result<u64, StoreError> {
        let call = self.inner.member_count(namespace, experiment);
        self.inject("member_count", call).await
    }

    async fn experiment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<Counter>, StoreError> {
        let call = self.inner.experiment_counters(namespace, experiment);
        self.inject("experiment_counters", call).await
    }

    async fn segment_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<lamed_core::segments::SegmentCounter>, StoreError> {
        let call = self.inner.segment_counters(namespace, experiment);
        self.inject("segment_counters", call).await
    }

    async fn weights_of(
        &self,
        namespace: &str,
        experiment: &str,
        period: i64,
    ) -> Result<Option<String>, StoreError> {
        let call = self.inner.weights_of(namespace, experiment, period);
        self.inject("weights_of", call).await
    }

    async fn namespaces(&self) -> Result<Vec<String>, StoreError> {
        let call = self.inner.namespaces();
        self.inject("namespaces", call).await
    }

    async fn alert_state(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let call = self.inner.alert_state(key);
        self.inject("alert_state", call).await
    }

    async fn alert_states(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let call = self.inner.alert_states(prefix);
        self.inject("alert_states", call).await
    }

    async fn put_alert_state(
        &self,
        key: &str,
        value: Option<&str>,
        precondition: Precondition,
    ) -> Result<PutOutcome, StoreError> {
        let call = self.inner.put_alert_state(key, value, precondition);
        self.inject("put_alert_state", call).await
    }

    async fn membership(
        &self,
        namespace: &str,
        experiment: &str,
        member: &str,
    ) -> Result<Option<String>, StoreError> {
        let call = self.inner.membership(namespace, experiment, member);
        self.inject("membership", call).await
    }

    async fn put_once(
        &self,
        namespace: &str,
        experiment: &str,
        key: &Kept,
        value: &str,
    ) -> Result<String, StoreError> {
        let call = self.inner.put_once(namespace, experiment, key, value);
        self.inject("put_once", call).await
    }

    async fn count_join(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        self.inject("count_join", self.inner.count_join(join)).await
    }

    async fn weight_history(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let call = self.inner.weight_history(namespace, experiment);
        self.inject("weight_history", call).await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.inject("check_writable", self.inner.check_writable())
            .await
    }

    fn dedupe_entries(&self) -> Option<u64> {
        self.inner.dedupe_entries()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inject("close", self.inner.close()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::reference::ReferenceStore;
    use lamed_core::clock::Clock;
    use lamed_core::model::{Caps, PARTICIPATE};

    /// A reference store behind a wrapper that injects nothing.
    async fn fresh(window: u64, caps: Caps, clock: Clock) -> ((), FaultyStore<ReferenceStore>) {
        let inner = Arc::new(ReferenceStore::new(window, caps, clock));
        ((), FaultyStore::new(inner, FaultPlan::none()))
    }

    // Without faults the wrapper is the store it wraps: the whole suite
    // passes through it, which proves every method delegates.
    conformance::conformance_tests!(fresh);

    fn event(uuid: &str) -> Event {
        Event {
            segment: Default::default(),
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
            value: None,
        }
    }

    async fn count(store: &ReferenceStore) -> u64 {
        let counters = store.counters("n").await.unwrap();
        counters.iter().map(|c| c.count).sum()
    }

    /// A failure before the call writes nothing; a failure after it
    /// writes, and the re-sent event is then a duplicate; a delayed call
    /// answers as usual; each is counted.
    #[tokio::test]
    async fn scripted_faults_hit_their_calls() {
        let inner = Arc::new(ReferenceStore::new(0, Caps::default(), Clock::manual(0)));
        let plan = FaultPlan::none()
            .with(0, Fault::FailBefore)
            .with(2, Fault::FailAfter)
            .with(4, Fault::Delay(Duration::from_millis(1)));
        let store = FaultyStore::new(Arc::clone(&inner), plan);

        assert!(store.track(vec![event("1")]).await.is_err());
        assert_eq!(count(&inner).await, 0, "failed before: nothing written");
        assert_eq!(
            store.track(vec![event("1")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        let lost = store.track(vec![event("2")]).await.unwrap_err();
        assert_eq!(
            InjectedFault::of(&lost),
            Some(InjectedFault::FailedAfter { ok: true })
        );
        assert_eq!(count(&inner).await, 2, "failed after: written");
        assert_eq!(
            store.track(vec![event("2")]).await.unwrap(),
            [TrackOutcome::Duplicate]
        );
        assert_eq!(
            store.track(vec![event("3")]).await.unwrap(),
            [TrackOutcome::Counted]
        );
        assert_eq!(
            store.injected(),
            Injected {
                calls: 5,
                failed_before: 1,
                failed_after: 1,
                delayed: 1,
                timed_out: 0,
                cut_short: 0,
            }
        );
    }

    /// A time-out abandons its call: before it reaches the store (the
    /// latency outlasts the deadline), nothing is written; during it (here
    /// a slow store: a second wrapper that delays), the store's write may
    /// or may not happen, and the caller hears an error either way.
    #[tokio::test]
    async fn a_time_out_abandons_the_call() {
        let inner = Arc::new(ReferenceStore::new(0, Caps::default(), Clock::manual(0)));
        let ms = Duration::from_millis;
        let early = FaultPlan::none().with(
            0,
            Fault::TimeOut {
                deadline: ms(1),
                latency: ms(50),
            },
        );
        let store = FaultyStore::new(Arc::clone(&inner), early);
        let err = store.track(vec![event("1")]).await.unwrap_err();
        assert_eq!(
            InjectedFault::of(&err),
            Some(InjectedFault::TimedOut {
                deadline: ms(1),
                started: false
            })
        );
        assert!(
            err.chain().contains("timed out after 1ms"),
            "{}",
            err.chain()
        );
        assert_eq!(count(&inner).await, 0);
        assert_eq!(store.injected().timed_out, 1);

        let slow = FaultyStore::new(
            Arc::clone(&inner),
            // Slower than any pause of this process: only the deadline ends it.
            FaultPlan::none().with(0, Fault::Delay(Duration::from_secs(60))),
        );
        let during = FaultPlan::none().with(
            0,
            Fault::TimeOut {
                deadline: ms(5),
                latency: Duration::ZERO,
            },
        );
        let store = FaultyStore::new(Arc::new(slow.clone()), during);
        let err = store.track(vec![event("1")]).await.unwrap_err();
        assert!(matches!(
            InjectedFault::of(&err),
            Some(InjectedFault::TimedOut { started: true, .. })
        ));
        assert_eq!(
            (store.injected().cut_short, slow.injected().delayed),
            (1, 1),
            "abandoned while the store was slow"
        );
        assert_eq!(count(&inner).await, 0, "dropped before the write");
    }

    /// The same seed gives the same faults to the same call numbers, in
    /// about the planned shares; another seed gives others.
    #[test]
    fn draws_follow_the_seed() {
        let plan = FaultPlan::random(7, 0.1, Duration::from_millis(3));
        let faults: Vec<Fault> = (0..10_000).map(|n| plan.fault(n)).collect();
        let again: Vec<Fault> = (0..10_000).map(|n| plan.fault(n)).collect();
        assert_eq!(faults, again);
        let other = FaultPlan::random(8, 0.1, Duration::from_millis(3));
        assert_ne!(
            faults,
            (0..10_000).map(|n| other.fault(n)).collect::<Vec<_>>()
        );
        let share = |f: fn(&Fault) -> bool| faults.iter().filter(|x| f(x)).count();
        for n in [
            share(|f| *f == Fault::FailBefore),
            share(|f| *f == Fault::FailAfter),
            share(|f| matches!(f, Fault::Delay(_))),
            share(|f| matches!(f, Fault::TimeOut { .. })),
        ] {
            assert!(
                (800..1200).contains(&n),
                "{n} of 10,000, about 1,000 expected"
            );
        }
        assert!(faults.iter().all(|f| match f {
            Fault::Delay(d) => *d <= Duration::from_millis(3),
            Fault::TimeOut { deadline, latency } =>
                *deadline <= Duration::from_millis(3) && *latency <= *deadline * 2,
            _ => true,
        }));
        assert!((0..1000).all(|n| FaultPlan::none().fault(n) == Fault::None));
    }
}
