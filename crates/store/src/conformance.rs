//! The behaviour every [`Store`] must show, as async functions each backend's
//! tests call with a fresh store. Each function says which settings the
//! store must be opened with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{DynStore, Join, JoinAnswer, Joined, Precondition, PutOutcome, Store, StoreExt};
use lamed_core::clock::Clock;
use lamed_core::model::{CapExceeded, Caps, Event, Ignored, TrackOutcome, PARTICIPATE};
use lamed_core::registry::{Change, Definition, ExperimentRecord, RegistrationMode, Status};
use lamed_core::segments::{Dimension, Segment, SegmentCounter, MAX_VALUES_PER_DIMENSION, OTHER};
use lamed_core::value::{Value, ValueTotals, MAX_UNITS};

/// Generates one `#[tokio::test]` per check of this suite for a backend;
/// the list of checks, each with how its store is opened, is written here
/// once.
///
/// `$fresh` is an async function `(window_seconds, caps, clock) -> (guard, store)`
/// that opens a fresh, empty store; the guard (a temp dir, a redis-server)
/// lives as long as the test. Only for this crate's own tests.
#[cfg(test)]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance::conformance_tests!(@each $fresh;
            counts_each_identity_once: DEFAULTS,
            concurrent_duplicates_count_once: DEFAULTS,
            daily_counters_follow_totals: DEFAULTS,
            delete_removes_one_experiment: DEFAULTS,
            memberships_keep_the_first_value: DEFAULTS,
            joins_are_whole_or_nothing: DEFAULTS,
            ignored_joins_write_nothing: TEST_CAPS,
            required_joins_write_nothing: REQUIRED,
            values_add_once: DEFAULTS,
            weight_history_keeps_the_first: DEFAULTS,
            caps_are_enforced: TEST_CAPS,
            duplicates_create_nothing: TEST_CAPS,
            window_expires: TWO_SECOND_WINDOW,
            no_window_remembers_forever: NO_WINDOW,
            health_and_close: DEFAULTS,
            import_is_idempotent: DEFAULTS,
            registry_lifecycle: DEFAULTS,
            required_registration: REQUIRED,
            experiment_counters_are_the_namespace_filtered: DEFAULTS,
            weights_of_reads_one_period: DEFAULTS,
            record_versions_increase: DEFAULTS,
            refused_record_writes_change_nothing: REQUIRED,
            concurrent_record_writes_lose_nothing: DEFAULTS,
            alert_states_are_claimed_once: DEFAULTS,
            alert_states_list_by_prefix: DEFAULTS,
            segments_count_with_their_event: TEST_CAPS
        );
    };
    (@each $fresh:path; $($check:ident: $setup:ident),* $(,)?) => {
        $(
            /// Conformance: the check of the same name.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let setup = $crate::conformance::$setup;
                let clock = setup.clock();
                let (_guard, store) = $fresh(setup.window_seconds, setup.caps, clock.clone()).await;
                $crate::conformance::$check(std::sync::Arc::new(store), clock).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

/// How a check wants its store opened.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The dedupe window.
    pub window_seconds: u64,
    /// The caps.
    pub caps: Caps,
    /// Whether the check moves time itself (a manual clock).
    pub manual_clock: bool,
}

impl Setup {
    /// The clock to open the store with.
    pub fn clock(&self) -> Clock {
        if self.manual_clock {
            Clock::manual_at_now()
        } else {
            Clock::default()
        }
    }
}

/// A day's window, the default caps.
pub const DEFAULTS: Setup = Setup {
    window_seconds: 86_400,
    caps: Caps::DEFAULT,
    manual_clock: false,
};

/// The caps [`caps_are_enforced`] expects.
pub const TEST_CAPS: Setup = Setup {
    caps: CAPPED,
    ..DEFAULTS
};

/// Required registration, for [`required_registration`].
pub const REQUIRED: Setup = Setup {
    caps: REQUIRED_CAPS,
    ..DEFAULTS
};

/// A 2-second window on a manual clock, for [`window_expires`].
pub const TWO_SECOND_WINDOW: Setup = Setup {
    window_seconds: 2,
    caps: Caps::DEFAULT,
    manual_clock: true,
};

/// No window (remember forever) on a manual clock.
pub const NO_WINDOW: Setup = Setup {
    window_seconds: 0,
    ..TWO_SECOND_WINDOW
};

/// Caps the [`caps_are_enforced`] check expects the store to be opened with.
pub const CAPPED: Caps = Caps {
    registration: RegistrationMode::Open,
    max_namespaces: 2,
    max_experiments_per_namespace: 2,
    max_variants_per_experiment: 2,
    max_goals_per_experiment: 1,
};

fn event(namespace: &str, experiment: &str, event: &str, variant: &str, uuid: &str) -> Event {
    Event {
        segment: Default::default(),
        namespace: namespace.into(),
        experiment: experiment.into(),
        variant: variant.into(),
        event: event.into(),
        uuid: uuid.into(),
        value: None,
    }
}

async fn counts(store: &dyn Store, namespace: &str) -> BTreeMap<(String, String, String), u64> {
    store
        .counters(namespace)
        .await
        .expect("counters readable")
        .into_iter()
        .map(|c| ((c.experiment, c.event, c.variant), c.count))
        .collect()
}

fn key(experiment: &str, event: &str, variant: &str) -> (String, String, String) {
    (experiment.into(), event.into(), variant.into())
}

/// New events count once; the same identity again is a duplicate, while a
/// change of any one field is a new event. Default settings.
pub async fn counts_each_identity_once(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let first = event("ns", "exp:1", PARTICIPATE, "red", "u1");
    let outcomes = store
        .track(vec![
            first.clone(),
            first.clone(),
            Event {
                segment: Default::default(),
                uuid: "u2".into(),
                ..first.clone()
            },
            Event {
                segment: Default::default(),
                variant: "blue".into(),
                ..first.clone()
            },
            Event {
                segment: Default::default(),
                event: "buy".into(),
                ..first.clone()
            },
            Event {
                segment: Default::default(),
                namespace: "other".into(),
                ..first.clone()
            },
        ])
        .await
        .expect("track");
    use TrackOutcome::*;
    assert_eq!(
        outcomes,
        vec![Counted, Duplicate, Counted, Counted, Counted, Counted]
    );
    let again = store.track(vec![first]).await.expect("track");
    assert_eq!(again, vec![Duplicate]);
    let counts = counts(store, "ns").await;
    assert_eq!(counts[&key("exp:1", PARTICIPATE, "red")], 2);
    assert_eq!(counts[&key("exp:1", PARTICIPATE, "blue")], 1);
    assert_eq!(counts[&key("exp:1", "buy", "red")], 1);
    assert_eq!(counts.len(), 3);
    assert_eq!(store.experiments("ns").await.expect("list"), vec!["exp:1"]);
    assert!(store.experiments("unknown").await.expect("list").is_empty());
}

/// Many tasks sending overlapping events at once count each identity
/// exactly once. Default settings.
pub async fn concurrent_duplicates_count_once(store: DynStore, _clock: Clock) {
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for round in 0..50 {
                    // Every task sends the same 50 uuids, in a different order.
                    let n = (round * 7 + task) % 50;
                    let e = event(
                        "race",
                        "e",
                        PARTICIPATE,
                        if n % 2 == 0 { "a" } else { "b" },
                        &format!("u{n}"),
                    );
                    store.track(vec![e]).await.expect("track");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let counts = counts(store.as_ref(), "race").await;
    assert_eq!(counts[&key("e", PARTICIPATE, "a")], 25);
    assert_eq!(counts[&key("e", PARTICIPATE, "b")], 25);
}

/// Daily counters add up to the totals and land on today's UTC day.
/// Default settings.
pub async fn daily_counters_follow_totals(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    store
        .track(vec![
            event("t", "e", PARTICIPATE, "a", "1"),
            event("t", "e", PARTICIPATE, "a", "2"),
            event("t", "e", PARTICIPATE, "a", "2"),
            event("t", "e", "buy", "b", "1"),
            event("t", "other", "buy", "b", "1"),
        ])
        .await
        .expect("track");
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
        / 86_400;
    let daily = store.daily_counters("t", "e").await.expect("daily");
    let got: Vec<_> = daily
        .iter()
        .map(|d| (d.event.as_str(), d.variant.as_str(), d.count))
        .collect();
    assert_eq!(got, vec![("buy", "b", 1), (PARTICIPATE, "a", 2)]);
    // Allow a run that crosses midnight.
    assert!(daily.iter().all(|d| d.day == today || d.day == today + 1));
    assert!(store.delete_experiment("t", "e").await.expect("delete"));
    assert!(store
        .daily_counters("t", "e")
        .await
        .expect("daily")
        .is_empty());
}

/// Deleting removes the experiment's counters and its listing, and only
/// that experiment. Default settings.
pub async fn delete_removes_one_experiment(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    store
        .track(vec![
            event("d", "gone", PARTICIPATE, "a", "1"),
            event("d", "gone", "buy", "a", "1"),
            event("d", "kept", PARTICIPATE, "a", "1"),
        ])
        .await
        .expect("track");
    assert!(store.delete_experiment("d", "gone").await.expect("delete"));
    assert!(!store.delete_experiment("d", "gone").await.expect("delete"));
    assert!(!store
        .delete_experiment("nope", "gone")
        .await
        .expect("delete"));
    assert_eq!(store.experiments("d").await.expect("list"), vec!["kept"]);
    assert_eq!(counts(store, "d").await.len(), 1);
}

/// A membership keeps the first value joined, also among concurrent joins,
/// is separate per experiment, namespace and member,
/// creates no experiment, and goes with its experiment's delete. Default
/// settings.
pub async fn memberships_keep_the_first_value(store: DynStore, _clock: Clock) {
    let held = |ns: &'static str, exp: &'static str, member: &'static str| {
        let store = Arc::clone(&store);
        async move { store.membership(ns, exp, member).await.expect("read") }
    };
    assert_eq!(held("m", "e", "client").await, None);
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .join("m", "e", "client", &format!("v{i}"))
                    .await
                    .expect("join")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("task"));
    }
    let first = held("m", "e", "client").await.expect("remembered");
    assert!(
        answers.iter().all(|a| *a == first),
        "{answers:?} vs {first}"
    );
    assert_eq!(
        store.join("m", "e", "client", "other").await.expect("join"),
        first
    );
    assert_eq!(held("m", "other", "client").await, None);
    assert_eq!(held("n", "e", "client").await, None);
    assert_eq!(held("m", "e", "client\x1fkpi").await, None);
    assert!(store.experiments("m").await.expect("list").is_empty());

    store
        .track(vec![event("m", "e", PARTICIPATE, "a", "1")])
        .await
        .expect("track");
    assert_eq!(store.member_count("m", "e").await.expect("count"), 1);
    assert!(store.delete_experiment("m", "e").await.expect("delete"));
    assert_eq!(held("m", "e", "client").await, None);
    assert_eq!(store.member_count("m", "e").await.expect("count"), 0);
    assert_eq!(
        store.join("m", "e", "client", "again").await.expect("join"),
        "again"
    );
}

/// A participation: member `member` joins `namespace/experiment` with
/// `variant`, counted under `uuid`, defining the experiment with variants
/// `a` and `b` unless its owner did.
fn participation(namespace: &str, experiment: &str, member: &str, variant: &str) -> Join {
    let mut definition = registered(namespace, experiment);
    definition.automatic = false;
    definition.description = "defined by a join".into();
    Join {
        event: event(namespace, experiment, PARTICIPATE, variant, member),
        member: member.into(),
        participant: None,
        definition: Some(definition),
    }
}

/// A conversion of `participant` on goal `buy`, sent as on `variant`
/// (the store counts it on the participant's).
fn conversion(namespace: &str, experiment: &str, participant: &str, variant: &str) -> Join {
    Join {
        event: event(namespace, experiment, "buy", variant, participant),
        member: format!("{participant}+buy"),
        participant: Some(participant.into()),
        definition: None,
    }
}

/// Joins count their event and remember their member in one step: among
/// concurrent first joins of one member (with different variants) one is
/// counted and the others answer what it holds; the first counted join
/// defines the experiment, never over an owner's record; a conversion
/// counts on its participant's variant, and without a participant writes
/// nothing; a paused experiment takes nothing. Default settings.
pub async fn joins_are_whole_or_nothing(store: DynStore, _clock: Clock) {
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            let variant = ["a", "b"][i % 2];
            tokio::spawn(async move {
                store
                    .count_join(participation("j", "e", "c1", variant))
                    .await
                    .expect("join")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let answer = racer.await.expect("task");
        answers.push(answer.joined);
    }
    let held = store.membership("j", "e", "c1").await.expect("read");
    let held = held.expect("the member is remembered");
    assert_eq!(
        answers.iter().filter(|a| **a == Joined::Counted).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| *a == Joined::Counted || *a == Joined::Held(held.clone())),
        "{answers:?} vs {held}"
    );
    let participants: u64 = counts(store.as_ref(), "j").await.values().sum();
    assert_eq!(participants, 1, "one client counted in one variant");
    let record = store
        .record("j", "e")
        .await
        .expect("read")
        .expect("defined");
    assert_eq!(
        (record.automatic, record.description.as_str()),
        (false, "defined by a join")
    );
    assert_eq!(record.status, Status::Running);
    assert_eq!(
        record.version, 2,
        "the automatic record, then the definition over it"
    );

    // A conversion of a stranger writes nothing; the participant's counts
    // once, on its variant, whatever variant was sent.
    assert_eq!(
        store
            .count_join(conversion("j", "e", "stranger", "a"))
            .await
            .expect("join"),
        JoinAnswer::new(Joined::NotParticipating, "")
    );
    let other = if held == "a" { "b" } else { "a" };
    assert_eq!(
        store
            .count_join(conversion("j", "e", "c1", other))
            .await
            .expect("join"),
        JoinAnswer::new(Joined::Counted, held.clone())
    );
    assert_eq!(
        store
            .count_join(conversion("j", "e", "c1", &held))
            .await
            .expect("join"),
        JoinAnswer::new(Joined::Held(held.clone()), held.clone())
    );
    assert_eq!(
        store.member_count("j", "e").await.expect("count"),
        2,
        "the participant and its conversion"
    );
    assert_eq!(store.member_count("j", "none").await.expect("count"), 0);
    let buys = counts(store.as_ref(), "j").await;
    assert_eq!(
        buys.get(&("e".into(), "buy".into(), held.clone())),
        Some(&1)
    );
    assert_eq!(buys.len(), 2, "{buys:?}");

    // An owner's record stays as it is; a paused experiment takes nothing.
    let mut owned = registered("j", "owned");
    owned.automatic = false;
    let written = store.put_record(owned.clone(), Precondition::Any).await;
    assert!(matches!(written, Ok(PutOutcome::Written { .. })));
    store
        .count_join(participation("j", "owned", "c2", "a"))
        .await
        .expect("join");
    let kept = store
        .record("j", "owned")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.description, owned.description);
    change(store.as_ref(), "j", "owned", Change::Pause).await;
    assert_eq!(
        store
            .count_join(participation("j", "owned", "c3", "a"))
            .await
            .expect("join")
            .joined,
        Joined::Ignored(Ignored::Inactive(Status::Paused))
    );
    assert_eq!(
        store.membership("j", "owned", "c3").await.expect("read"),
        None
    );
}

/// A join that tracking would ignore writes nothing: over the experiments
/// cap, no experiment, record or membership appears. [`TEST_CAPS`].
pub async fn ignored_joins_write_nothing(store: DynStore, _clock: Clock) {
    for name in ["e1", "e2"] {
        let joined = store
            .count_join(participation("capped", name, "c", "a"))
            .await
            .expect("join")
            .joined;
        assert_eq!(joined, Joined::Counted);
    }
    let over = store
        .count_join(participation("capped", "e3", "c", "a"))
        .await
        .expect("join")
        .joined;
    assert!(
        matches!(
            over,
            Joined::Ignored(Ignored::Cap(CapExceeded::Experiments { .. }))
        ),
        "{over:?}"
    );
    assert_eq!(store.record("capped", "e3").await.expect("read"), None);
    assert_eq!(
        store.membership("capped", "e3", "c").await.expect("read"),
        None
    );
    assert_eq!(
        store.experiments("capped").await.expect("list"),
        vec!["e1", "e2"]
    );
}

/// In required mode a join for an unknown experiment writes nothing, and
/// one for a registered experiment counts. [`REQUIRED`].
pub async fn required_joins_write_nothing(store: DynStore, _clock: Clock) {
    let joined = store
        .count_join(participation("r", "unknown", "c", "a"))
        .await
        .expect("join")
        .joined;
    assert_eq!(joined, Joined::Ignored(Ignored::Unregistered));
    assert_eq!(store.record("r", "unknown").await.expect("read"), None);
    assert_eq!(
        store.membership("r", "unknown", "c").await.expect("read"),
        None
    );
    assert!(store.experiments("r").await.expect("list").is_empty());

    let mut owned = registered("r", "known");
    owned.automatic = false;
    let written = store.put_record(owned, Precondition::Any).await;
    assert!(matches!(written, Ok(PutOutcome::Written { .. })));
    let joined = store
        .count_join(participation("r", "known", "c", "a"))
        .await
        .expect("join")
        .joined;
    assert_eq!(joined, Joined::Counted);
    assert_eq!(
        store.membership("r", "known", "c").await.expect("read"),
        Some("a".to_owned())
    );
}

/// A goal with values, as a store must keep it: of every identity only the
/// first value counts (in one batch, across batches and among concurrent
/// re-sends), sums are exact up to the largest value, events without a
/// value count but add none, and delete removes the sums. Default settings.
pub async fn values_add_once(store: DynStore, _clock: Clock) {
    let valued = |uuid: &str, variant: &str, micros: u64| Event {
        segment: Default::default(),
        value: Some(Value::from_micros(micros).expect("within limits")),
        ..event("v", "shop", "buy", variant, uuid)
    };
    let max = MAX_UNITS * lamed_core::value::MICROS_PER_UNIT;
    let mut batch = vec![
        valued("a", "red", 12_500_000),
        valued("a", "red", 99_000_000),
        valued("zero", "red", 0),
        event("v", "shop", "buy", "red", "no value"),
        event("v", "shop", PARTICIPATE, "red", "p"),
    ];
    batch.extend((0..300).map(|i| valued(&format!("max{i}"), "blue", max)));
    store.track(batch).await.expect("track");
    store
        .track(vec![valued("a", "red", 7)])
        .await
        .expect("track");
    let racers: Vec<_> = (1..=16u64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let event = valued("raced", "red", i * 1_000_000);
                store.track(vec![event]).await.expect("track")
            })
        })
        .collect();
    for racer in racers {
        racer.await.expect("task");
    }

    let totals = |counters: &[lamed_core::model::Counter], event: &str, variant: &str| {
        counters
            .iter()
            .find(|c| c.experiment == "shop" && c.event == event && c.variant == variant)
            .map(|c| (c.count, c.values))
            .expect("counter exists")
    };
    let counters = store.counters("v").await.expect("counters");
    let (count, red) = totals(&counters, "buy", "red");
    assert_eq!(count, 4, "a, zero, no value, raced");
    let red = red.expect("red has values");
    assert_eq!(red.valued, 3);
    let raced = red.sum - 12_500_000;
    assert!(
        (1..=16).any(|i| raced == i * 1_000_000),
        "one racer's value: {raced}"
    );
    assert_eq!(red.sum_of_squares, 12_500_000i128.pow(2) + raced * raced);
    let (count, blue) = totals(&counters, "buy", "blue");
    assert_eq!(count, 300);
    assert_eq!(
        blue,
        Some(ValueTotals {
            valued: 300,
            sum: 300 * max as i128,
            sum_of_squares: 300 * (max as i128).pow(2),
        })
    );
    assert_eq!(totals(&counters, PARTICIPATE, "red").1, None);

    assert!(store.delete_experiment("v", "shop").await.expect("delete"));
    store
        .track(vec![event("v", "shop", "buy", "red", "after delete")])
        .await
        .expect("track");
    let counters = store.counters("v").await.expect("counters");
    assert_eq!(totals(&counters, "buy", "red"), (1, None));
}

/// A period's weights are set once, also among concurrent writers; the
/// history lists periods in order, per experiment, creates no experiment,
/// and goes with its experiment's delete. Default settings.
pub async fn weight_history_keeps_the_first(store: DynStore, _clock: Clock) {
    assert!(store
        .weight_history("w", "e")
        .await
        .expect("read")
        .is_empty());
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let weights = format!("[{i}]");
                store.put_weights("w", "e", 5, &weights).await.expect("put")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("task"));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(
        store.put_weights("w", "e", 5, "[99]").await.expect("put"),
        answers[0]
    );
    store.put_weights("w", "e", 3, "[3]").await.expect("put");
    store.put_weights("w", "e", 40, "[40]").await.expect("put");
    assert_eq!(
        store.weight_history("w", "e").await.expect("read"),
        vec![
            (3, "[3]".to_owned()),
            (5, answers[0].clone()),
            (40, "[40]".to_owned())
        ]
    );
    assert!(store
        .weight_history("w", "other")
        .await
        .expect("read")
        .is_empty());
    assert!(store.experiments("w").await.expect("list").is_empty());

    store
        .track(vec![event("w", "e", PARTICIPATE, "a", "1")])
        .await
        .expect("track");
    assert!(store.delete_experiment("w", "e").await.expect("delete"));
    assert!(store
        .weight_history("w", "e")
        .await
        .expect("read")
        .is_empty());
}

/// Caps refuse what would create too many namespaces, experiments, variants
/// or goals, and nothing refused is stored. Open the store with
/// [`CAPPED`].
pub async fn caps_are_enforced(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let outcomes = store
        .track(vec![
            event("n1", "e1", PARTICIPATE, "a", "1"),
            event("n2", "e1", PARTICIPATE, "a", "1"),
            event("n3", "e1", PARTICIPATE, "a", "1"),
            event("n1", "e2", PARTICIPATE, "a", "1"),
            event("n1", "e3", PARTICIPATE, "a", "1"),
            event("n1", "e1", PARTICIPATE, "b", "1"),
            event("n1", "e1", PARTICIPATE, "c", "1"),
            event("n1", "e1", "g1", "a", "1"),
            event("n1", "e1", "g2", "a", "1"),
            // Existing names stay usable at the cap.
            event("n1", "e1", "g1", "b", "2"),
        ])
        .await
        .expect("track");
    let refused: Vec<_> = outcomes
        .iter()
        .map(|o| match o {
            TrackOutcome::Ignored(Ignored::Cap(cap)) => Some(cap.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            None,
            None,
            Some("namespaces_cap"),
            None,
            Some("experiments_cap"),
            None,
            Some("variants_cap"),
            None,
            Some("goals_cap"),
            None
        ]
    );
    assert!(matches!(
        &outcomes[2],
        TrackOutcome::Ignored(Ignored::Cap(CapExceeded::Namespaces { limit: 2, .. }))
    ));
    assert!(store.experiments("n3").await.expect("list").is_empty());
    // A refused event was not remembered: once room is made, it counts.
    assert!(store.delete_experiment("n1", "e2").await.expect("delete"));
    let outcomes = store
        .track(vec![event("n1", "e3", PARTICIPATE, "a", "1")])
        .await
        .expect("track");
    assert_eq!(outcomes, vec![TrackOutcome::Counted]);
}

/// The dedupe memory outlives a delete, so an event re-sent after its
/// experiment was deleted is a duplicate; being one, it creates nothing:
/// neither its experiment nor its namespace is listed, or takes a place
/// under the caps. Open the store with [`CAPPED`].
pub async fn duplicates_create_nothing(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    use TrackOutcome::*;
    let gone = event("g", "e", PARTICIPATE, "a", "1");
    assert_eq!(track_one(store, &gone).await, Counted);
    assert!(store.delete_experiment("g", "e").await.expect("delete"));
    assert_eq!(track_one(store, &gone).await, Duplicate);
    assert!(store.experiments("g").await.expect("list").is_empty());
    // Namespace "g" holds nothing: two others fit under the cap of two.
    let outcomes = store
        .track(vec![
            event("h", "e1", PARTICIPATE, "a", "1"),
            event("h", "e2", PARTICIPATE, "a", "1"),
            event("i", "e1", PARTICIPATE, "a", "1"),
        ])
        .await
        .expect("track");
    assert_eq!(outcomes, vec![Counted, Counted, Counted]);
    // Experiment "h"/"e1" deleted then re-sent holds nothing either.
    assert!(store.delete_experiment("h", "e1").await.expect("delete"));
    let again = event("h", "e1", PARTICIPATE, "a", "1");
    assert_eq!(track_one(store, &again).await, Duplicate);
    let third = event("h", "e3", PARTICIPATE, "a", "1");
    assert_eq!(track_one(store, &third).await, Counted);
    assert_eq!(
        store.experiments("h").await.expect("list"),
        vec!["e2", "e3"]
    );
}

/// Tracks one event, returning its outcome.
async fn track_one(store: &dyn Store, event: &Event) -> TrackOutcome {
    let mut outcomes = store.track(vec![event.clone()]).await.expect("track");
    assert_eq!(outcomes.len(), 1, "one outcome per event");
    outcomes.remove(0)
}

/// Within the window a uuid is a duplicate; after it, it counts again. The
/// window runs from the first sighting (a duplicate does not extend it),
/// and an event first seen exactly one window ago is outside it. Open the
/// store with a 2-second window and `clock`, a manual clock this check
/// steps.
pub async fn window_expires(store: DynStore, clock: Clock) {
    let (store, clock) = (store.as_ref(), &clock);
    use TrackOutcome::*;
    let e = event("w", "e", PARTICIPATE, "a", "u");
    let ms = Duration::from_millis;
    assert_eq!(track_one(store, &e).await, Counted);
    clock.advance(ms(1000));
    assert_eq!(track_one(store, &e).await, Duplicate);
    clock.advance(ms(999));
    assert_eq!(track_one(store, &e).await, Duplicate, "1999 ms old");
    clock.advance(ms(1));
    assert_eq!(track_one(store, &e).await, Counted, "2000 ms old");
    assert_eq!(track_one(store, &e).await, Duplicate);
    clock.advance(ms(1999));
    assert_eq!(track_one(store, &e).await, Duplicate);
    clock.advance(ms(2001));
    assert_eq!(track_one(store, &e).await, Counted, "4000 ms old");
    assert_eq!(counts(store, "w").await[&key("e", PARTICIPATE, "a")], 3);
}

/// With window 0, a uuid stays a duplicate however much time passes. Open
/// the store with window 0 and `clock`, a manual clock this check steps.
pub async fn no_window_remembers_forever(store: DynStore, clock: Clock) {
    let (store, clock) = (store.as_ref(), &clock);
    let e = event("f", "e", PARTICIPATE, "a", "u");
    assert_eq!(track_one(store, &e).await, TrackOutcome::Counted);
    clock.advance(Duration::from_secs(365 * 86_400));
    assert_eq!(track_one(store, &e).await, TrackOutcome::Duplicate);
    assert_eq!(counts(store, "f").await[&key("e", PARTICIPATE, "a")], 1);
}

/// The store proves it is writable, and refuses work once closed.
pub async fn health_and_close(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    store.check_writable().await.expect("writable");
    store.close().await.expect("close");
    assert!(store
        .track(vec![event("c", "e", PARTICIPATE, "a", "1")])
        .await
        .is_err());
    assert!(store.check_writable().await.is_err());
}

/// An imported count is a base that tracked events add to; importing the
/// same count again changes nothing, a new count replaces the base, the
/// experiment is listed, and deleting removes the base too. Default
/// settings.
pub async fn import_is_idempotent(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let import = |event: &'static str, variant: &'static str, count: u64| async move {
        store
            .import_counter("imp", "old:exp", event, variant, count)
            .await
            .expect("import")
    };
    assert_eq!(import(PARTICIPATE, "a", 40).await, None);
    assert_eq!(import("buy", "a", 7).await, None);
    store
        .track(vec![event("imp", "old:exp", PARTICIPATE, "a", "new")])
        .await
        .expect("track");
    assert_eq!(import(PARTICIPATE, "a", 40).await, Some(40));
    let got = counts(store, "imp").await;
    assert_eq!(got[&key("old:exp", PARTICIPATE, "a")], 41);
    assert_eq!(got[&key("old:exp", "buy", "a")], 7);
    assert_eq!(import(PARTICIPATE, "a", 50).await, Some(40));
    assert_eq!(
        counts(store, "imp").await[&key("old:exp", PARTICIPATE, "a")],
        51
    );
    assert_eq!(
        store.experiments("imp").await.expect("list"),
        vec!["old:exp"]
    );
    assert!(store
        .delete_experiment("imp", "old:exp")
        .await
        .expect("delete"));
    assert!(counts(store, "imp").await.is_empty());
    assert!(store.experiments("imp").await.expect("list").is_empty());
}

/// Default caps in required mode, for [`required_registration`].
pub const REQUIRED_CAPS: Caps = Caps {
    registration: RegistrationMode::Required,
    ..Caps::DEFAULT
};

/// A record as its owner registers it: variants `a` and `b`, goal `buy`.
fn registered(namespace: &str, name: &str) -> ExperimentRecord {
    let mut record = ExperimentRecord::automatic(namespace, name, 1_000);
    let definition: Definition =
        serde_json::from_str(r#"{"variants": ["a", "b"], "goals": ["buy"], "description": "d"}"#)
            .expect("definition");
    record
        .redefine(definition.validated().expect("valid"))
        .expect("adds only");
    record
}

/// Moves a stored record through `change` and writes it back.
async fn change(store: &dyn Store, namespace: &str, name: &str, change: Change) {
    let mut record = store
        .record(namespace, name)
        .await
        .expect("read")
        .expect("has a record");
    let read = record.version;
    record.apply(change, 2_000).expect("allowed");
    let written = store
        .put_record(record, Precondition::Version(read))
        .await
        .expect("write");
    assert_eq!(written, PutOutcome::Written { version: read + 1 });
}

/// Records round-trip; tracking registers what it creates (open mode);
/// only a running experiment counts, and an ignored event is not
/// remembered; delete removes the record. Default caps.
pub async fn registry_lifecycle(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    use TrackOutcome::{Counted, Ignored as Skipped};
    let auto = event("ns", "auto", PARTICIPATE, "a", "1");
    assert_eq!(track_one(store, &auto).await, Counted);
    let record = store
        .record("ns", "auto")
        .await
        .expect("read")
        .expect("registered");
    assert!(record.automatic && record.counts() && record.created_ms > 0);
    assert_eq!(
        (record.namespace.as_str(), record.name.as_str()),
        ("ns", "auto")
    );

    let planned = registered("ns", "planned");
    let written = store
        .put_record(planned.clone(), Precondition::Any)
        .await
        .expect("put");
    assert_eq!(written, PutOutcome::Written { version: 1 });
    assert_eq!(
        store.record("ns", "planned").await.expect("read"),
        Some(planned)
    );
    assert_eq!(
        store.experiments("ns").await.expect("list"),
        vec!["auto".to_owned(), "planned".to_owned()],
        "a registered experiment is listed before any event"
    );
    let names: Vec<String> = store
        .records("ns")
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["auto", "planned"]);

    let visit = event("ns", "planned", PARTICIPATE, "b", "v1");
    change(store, "ns", "planned", Change::Pause).await;
    assert_eq!(
        track_one(store, &visit).await,
        Skipped(Ignored::Inactive(Status::Paused))
    );
    assert!(!counts(store, "ns")
        .await
        .contains_key(&key("planned", PARTICIPATE, "b")));
    change(store, "ns", "planned", Change::Resume).await;
    assert_eq!(
        track_one(store, &visit).await,
        Counted,
        "an ignored event was not remembered"
    );
    let stop = Change::Stop {
        winner: Some("b".into()),
        note: "won".into(),
    };
    change(store, "ns", "planned", stop).await;
    let late = event("ns", "planned", "buy", "b", "v1");
    assert_eq!(
        track_one(store, &late).await,
        Skipped(Ignored::Inactive(Status::Stopped))
    );
    change(store, "ns", "planned", Change::Archive).await;
    assert_eq!(
        track_one(store, &late).await,
        Skipped(Ignored::Inactive(Status::Archived))
    );
    assert_eq!(
        counts(store, "ns")
            .await
            .get(&key("planned", PARTICIPATE, "b")),
        Some(&1)
    );

    assert!(store
        .delete_experiment("ns", "planned")
        .await
        .expect("delete"));
    assert_eq!(store.record("ns", "planned").await.expect("read"), None);
    assert_eq!(
        store.experiments("ns").await.expect("list"),
        vec!["auto".to_owned()]
    );
}

/// In required mode only registered experiments, variants and goals count:
/// the rest is ignored and creates nothing. Open with [`REQUIRED`].
pub async fn required_registration(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    use TrackOutcome::{Counted, Ignored as Skipped};
    let unknown = event("ns", "typo", PARTICIPATE, "a", "1");
    assert_eq!(
        track_one(store, &unknown).await,
        Skipped(Ignored::Unregistered)
    );
    assert!(store.experiments("ns").await.expect("list").is_empty());
    assert_eq!(store.record("ns", "typo").await.expect("read"), None);

    let written = store
        .put_record(registered("ns", "reg"), Precondition::Absent)
        .await
        .expect("put");
    assert_eq!(written, PutOutcome::Written { version: 1 });
    let outcomes = store
        .track(vec![
            event("ns", "reg", PARTICIPATE, "a", "1"),
            event("ns", "reg", PARTICIPATE, "c", "2"),
            event("ns", "reg", "other goal", "a", "3"),
            event("ns", "reg", "buy", "a", "1"),
        ])
        .await
        .expect("track");
    assert_eq!(
        outcomes,
        vec![
            Counted,
            Skipped(Ignored::Unregistered),
            Skipped(Ignored::Unregistered),
            Counted
        ]
    );
    assert_eq!(counts(store, "ns").await.len(), 2);
    change(store, "ns", "reg", Change::Pause).await;
    let paused = event("ns", "reg", PARTICIPATE, "b", "4");
    assert_eq!(
        track_one(store, &paused).await,
        Skipped(Ignored::Inactive(Status::Paused))
    );
}

/// One experiment's counters are the namespace's counters of that
/// experiment, in the same order (by event and variant), values and
/// imported bases included; an unknown experiment, or one deleted, has
/// none; and the same name in another namespace is another experiment.
/// Default settings.
pub async fn experiment_counters_are_the_namespace_filtered(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let valued = |uuid: &str, micros: u64| Event {
        segment: Default::default(),
        value: Some(Value::from_micros(micros).expect("within limits")),
        ..event("x", "shop", "buy", "b", uuid)
    };
    store
        .track(vec![
            event("x", "shop", PARTICIPATE, "b", "1"),
            event("x", "shop", PARTICIPATE, "a", "2"),
            event("x", "shop", PARTICIPATE, "a", "3"),
            valued("1", 2_500_000),
            event("x", "shop", "add", "a", "2"),
            event("x", "other", PARTICIPATE, "a", "1"),
            event("x", "shop:2", PARTICIPATE, "a", "1"),
            event("y", "shop", PARTICIPATE, "a", "1"),
        ])
        .await
        .expect("track");
    store
        .import_counter("x", "shop", "buy", "a", 7)
        .await
        .expect("import");
    store
        .import_counter("x", "imported only", PARTICIPATE, "a", 3)
        .await
        .expect("import");
    let of = |experiment: &'static str| async move {
        store
            .experiment_counters("x", experiment)
            .await
            .expect("read")
    };
    let namespace = store.counters("x").await.expect("read");
    for experiment in ["shop", "other", "shop:2", "imported only"] {
        let filtered: Vec<_> = namespace
            .iter()
            .filter(|c| c.experiment == experiment)
            .cloned()
            .collect();
        assert!(!filtered.is_empty(), "{experiment} has counters");
        assert_eq!(of(experiment).await, filtered, "{experiment}");
    }
    let shop: Vec<_> = of("shop")
        .await
        .into_iter()
        .map(|c| (c.event, c.variant, c.count, c.values.map(|v| v.sum)))
        .collect();
    let row =
        |event: &str, variant: &str, count, sum| (event.to_owned(), variant.to_owned(), count, sum);
    assert_eq!(
        shop,
        vec![
            row("add", "a", 1, None),
            row("buy", "a", 7, None),
            row("buy", "b", 1, Some(2_500_000)),
            row(PARTICIPATE, "a", 2, None),
            row(PARTICIPATE, "b", 1, None),
        ]
    );
    assert!(of("unknown").await.is_empty());
    assert!(of("sho").await.is_empty(), "a prefix is another name");
    assert_eq!(
        store
            .experiment_counters("y", "shop")
            .await
            .expect("read")
            .len(),
        1
    );
    assert!(store
        .experiment_counters("unknown", "shop")
        .await
        .expect("read")
        .is_empty());
    assert!(store.delete_experiment("x", "shop").await.expect("delete"));
    assert!(of("shop").await.is_empty());
    assert_eq!(of("other").await.len(), 1);
}

/// One period's weights read back as stored (the first stored for it),
/// `None` for a period, an experiment or a namespace without any, and
/// `None` after the experiment's delete. Default settings.
pub async fn weights_of_reads_one_period(store: DynStore, _clock: Clock) {
    let of = |namespace: &'static str, experiment: &'static str, period: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .weights_of(namespace, experiment, period)
                .await
                .expect("read")
        }
    };
    assert_eq!(of("w", "e", 5).await, None);
    for (period, weights) in [(5, "[5]"), (-2, "[-2]"), (40, "[40]"), (5, "[again]")] {
        store
            .put_weights("w", "e", period, weights)
            .await
            .expect("put");
    }
    assert_eq!(of("w", "e", 5).await.as_deref(), Some("[5]"));
    assert_eq!(of("w", "e", -2).await.as_deref(), Some("[-2]"));
    assert_eq!(of("w", "e", 40).await.as_deref(), Some("[40]"));
    assert_eq!(of("w", "e", 4).await, None);
    assert_eq!(of("w", "other", 5).await, None);
    assert_eq!(of("v", "e", 5).await, None);
    let history = store.weight_history("w", "e").await.expect("history");
    for (period, weights) in history {
        assert_eq!(of("w", "e", period).await, Some(weights), "{period}");
    }

    store
        .track(vec![event("w", "e", PARTICIPATE, "a", "1")])
        .await
        .expect("track");
    assert!(store.delete_experiment("w", "e").await.expect("delete"));
    assert_eq!(of("w", "e", 5).await, None);
}

/// The stored record of `namespace`/`name`, which must exist.
async fn stored(store: &dyn Store, namespace: &str, name: &str) -> ExperimentRecord {
    store
        .record(namespace, name)
        .await
        .expect("read")
        .expect("has a record")
}

/// Versions: a new record is at 1, each write raises it by one whatever
/// the writer put in the record, and a deleted record starts over; the
/// record tracking creates is at 1 too. `Absent` writes only a new
/// record, `Version(v)` only over version `v`, and a refused write
/// answers the current version. Default caps.
pub async fn record_versions_increase(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let put = |record: ExperimentRecord, precondition: Precondition| async move {
        store
            .put_record(record, precondition)
            .await
            .expect("put_record")
    };
    let written = |version: u64| PutOutcome::Written { version };
    let conflict = |current: Option<u64>| PutOutcome::Conflict { current };

    let mut record = registered("ns", "v");
    record.version = 99;
    assert_eq!(put(record.clone(), Precondition::Absent).await, written(1));
    assert_eq!(stored(store, "ns", "v").await.version, 1);
    assert_eq!(
        put(record.clone(), Precondition::Absent).await,
        conflict(Some(1))
    );
    assert_eq!(
        put(record.clone(), Precondition::Version(1)).await,
        written(2)
    );
    assert_eq!(put(record.clone(), Precondition::Any).await, written(3));
    assert_eq!(
        put(record.clone(), Precondition::Version(2)).await,
        conflict(Some(3))
    );
    assert_eq!(
        put(record.clone(), Precondition::Version(3)).await,
        written(4)
    );
    assert_eq!(stored(store, "ns", "v").await.version, 4);
    let listed = store.records("ns").await.expect("records");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, 4);

    assert!(store.delete_experiment("ns", "v").await.expect("delete"));
    assert_eq!(
        put(record.clone(), Precondition::Version(4)).await,
        conflict(None)
    );
    assert_eq!(put(record, Precondition::Any).await, written(1));

    let auto = event("ns", "auto", PARTICIPATE, "a", "1");
    assert_eq!(track_one(store, &auto).await, TrackOutcome::Counted);
    let mut created = stored(store, "ns", "auto").await;
    assert_eq!(created.version, 1);
    assert_eq!(
        put(created.clone(), Precondition::Absent).await,
        conflict(Some(1))
    );
    created.apply(Change::Pause, 2_000).expect("allowed");
    assert_eq!(put(created, Precondition::Version(1)).await, written(2));
    assert_eq!(stored(store, "ns", "auto").await.status, Status::Paused);
}

/// A write whose precondition fails changes nothing: not the record, not
/// the names it would register (in required mode a variant counts only
/// once registered), not the list of experiments. Open with [`REQUIRED`].
pub async fn refused_record_writes_change_nothing(store: DynStore, _clock: Clock) {
    let store = store.as_ref();
    let first = registered("ns", "reg");
    let written = store
        .put_record(first.clone(), Precondition::Absent)
        .await
        .expect("put");
    assert_eq!(written, PutOutcome::Written { version: 1 });

    let mut stale = first.clone();
    stale.apply(Change::Pause, 2_000).expect("allowed");
    stale.variants.push(lamed_core::registry::VariantSpec {
        name: "c".into(),
        weight: 1,
    });
    stale.description = "stale".into();
    for precondition in [Precondition::Absent, Precondition::Version(2)] {
        let refused = store
            .put_record(stale.clone(), precondition)
            .await
            .expect("put");
        assert_eq!(refused, PutOutcome::Conflict { current: Some(1) });
    }
    assert_eq!(stored(store, "ns", "reg").await, first);
    let outcomes = store
        .track(vec![
            event("ns", "reg", PARTICIPATE, "c", "1"),
            event("ns", "reg", PARTICIPATE, "a", "2"),
        ])
        .await
        .expect("track");
    assert_eq!(
        outcomes,
        [
            TrackOutcome::Ignored(Ignored::Unregistered),
            TrackOutcome::Counted
        ],
        "the refused write registered no variant and paused nothing"
    );

    let refused = store
        .put_record(registered("ns", "ghost"), Precondition::Version(1))
        .await
        .expect("put");
    assert_eq!(refused, PutOutcome::Conflict { current: None });
    assert_eq!(store.record("ns", "ghost").await.expect("read"), None);
    assert_eq!(store.experiments("ns").await.expect("list"), vec!["reg"]);
}

/// Tasks editing one record at once, each reading it and writing it back
/// on the version it read (retrying when refused), lose no edit: every
/// write that succeeds got its own version, and the last version counts
/// them all. Default settings.
pub async fn concurrent_record_writes_lose_nothing(store: DynStore, _clock: Clock) {
    const TASKS: usize = 6;
    const EDITS: usize = 5;
    let created = store
        .put_record(registered("race", "r"), Precondition::Absent)
        .await
        .expect("put");
    assert_eq!(created, PutOutcome::Written { version: 1 });
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for edit in 0..EDITS {
                    loop {
                        let mut record = stored(store.as_ref(), "race", "r").await;
                        let read = record.version;
                        record.description = format!("{task}/{edit}");
                        match store
                            .put_record(record, Precondition::Version(read))
                            .await
                            .expect("put")
                        {
                            PutOutcome::Written { version } => {
                                assert_eq!(version, read + 1);
                                versions.push(version);
                                break;
                            }
                            PutOutcome::Conflict { current } => {
                                assert!(current.is_some_and(|c| c > read), "{current:?}");
                            }
                        }
                    }
                }
                versions
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.expect("task"));
    }
    versions.sort_unstable();
    let expected: Vec<u64> = (2..=(1 + TASKS * EDITS) as u64).collect();
    assert_eq!(
        versions, expected,
        "each successful write had its own version"
    );
    assert_eq!(
        stored(store.as_ref(), "race", "r").await.version,
        1 + (TASKS * EDITS) as u64
    );
}

/// Alert state: a set-once claim that exactly one of concurrent writers
/// wins, versions raised by each write, a write on a stale version and a
/// removal under a precondition.
pub async fn alert_states_are_claimed_once(store: DynStore, _clock: Clock) {
    const TASKS: usize = 8;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .put_alert_state(
                        "delivery/msg_1",
                        Some(&format!("{task}")),
                        Precondition::Absent,
                    )
                    .await
                    .expect("claim")
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let PutOutcome::Written { version } = task.await.expect("task") {
            winners.push(version);
        }
    }
    assert_eq!(winners, [1], "one claim wins");
    let held = store
        .alert_state("delivery/msg_1")
        .await
        .expect("read")
        .expect("held");
    assert_eq!(held.version, 1);
    let stale = store
        .put_alert_state("delivery/msg_1", Some("x"), Precondition::Version(2))
        .await
        .expect("put");
    assert_eq!(stale, PutOutcome::Conflict { current: Some(1) });
    let next = store
        .put_alert_state(
            "delivery/msg_1",
            Some("{\"a\":\"b:c\"}"),
            Precondition::Version(1),
        )
        .await
        .expect("put");
    assert_eq!(next, PutOutcome::Written { version: 2 });
    let held = store
        .alert_state("delivery/msg_1")
        .await
        .expect("read")
        .expect("held");
    assert_eq!((held.version, held.value.as_str()), (2, "{\"a\":\"b:c\"}"));
    let removed = store
        .put_alert_state("delivery/msg_1", None, Precondition::Version(2))
        .await
        .expect("remove");
    assert_eq!(removed, PutOutcome::Written { version: 0 });
    assert_eq!(
        store.alert_state("delivery/msg_1").await.expect("read"),
        None
    );
    assert_eq!(
        store
            .put_alert_state("nothing", None, Precondition::Version(1))
            .await
            .expect("remove"),
        PutOutcome::Conflict { current: None }
    );
}

/// Listing by prefix: only the keys that start with it, sorted; keys hold
/// any character (`%`, `_`, quotes); the namespaces with records.
pub async fn alert_states_list_by_prefix(store: DynStore, _clock: Clock) {
    for key in [
        "watch/[\"n\",\"b\"]",
        "watch/[\"n\",\"a_%\"]",
        "watcher",
        "delivery/x",
    ] {
        let written = store
            .put_alert_state(key, Some(key), Precondition::Any)
            .await
            .expect("put");
        assert_eq!(written, PutOutcome::Written { version: 1 });
    }
    let listed: Vec<String> = store
        .alert_states("watch/")
        .await
        .expect("list")
        .into_iter()
        .map(|(key, doc)| {
            assert_eq!(doc.value, key);
            key
        })
        .collect();
    assert_eq!(listed, ["watch/[\"n\",\"a_%\"]", "watch/[\"n\",\"b\"]"]);
    assert_eq!(
        store
            .alert_states("watch/[\"n\",\"a_")
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(store.alert_states("none/").await.expect("list").is_empty());
    assert!(store.namespaces().await.expect("namespaces").is_empty());
    for namespace in ["zeta", "alpha"] {
        let written = store
            .put_record(registered(namespace, "e"), Precondition::Absent)
            .await
            .expect("put");
        assert_eq!(written, PutOutcome::Written { version: 1 });
    }
    assert_eq!(
        store.namespaces().await.expect("namespaces"),
        ["alpha", "zeta"]
    );
}

/// Segments (issue 26): a counted event adds to the counter of each of its segment values, with
/// its value; a duplicate, a paused experiment's event and an event over a
/// cap add nothing; past [`MAX_VALUES_PER_DIMENSION`] values (`other`
/// included) a new value counts as `other`; a delete removes them. Open
/// with [`TEST_CAPS`].
pub async fn segments_count_with_their_event(store: DynStore, _clock: Clock) {
    let segmented =
        |experiment: &str, event_name: &str, variant: &str, uuid: &str, device: &str| {
            let mut e = event("seg", experiment, event_name, variant, uuid);
            e.segment = Segment::NONE
                .with(Dimension::Device, device)
                .with(Dimension::Browser, "Chrome");
            e
        };
    let mut buy = segmented("e", "buy", "red", "u3", "mobile");
    buy.value = Value::from_micros(2_500_000);
    let batch = vec![
        segmented("e", PARTICIPATE, "red", "u1", "desktop"),
        segmented("e", PARTICIPATE, "red", "u2", "mobile"),
        segmented("e", PARTICIPATE, "red", "u1", "desktop"),
        buy.clone(),
        // Over the variants cap (2): ignored, so no segment either.
        segmented("e", PARTICIPATE, "blue", "u4", "tablet"),
        segmented("e", PARTICIPATE, "green", "u5", "tablet"),
    ];
    let outcomes = store.track(batch).await.expect("track");
    assert_eq!(outcomes[2], TrackOutcome::Duplicate);
    assert!(matches!(
        outcomes[5],
        TrackOutcome::Ignored(Ignored::Cap(_))
    ));
    // Re-sent later, in another call: still nothing.
    assert_eq!(track_one(&*store, &buy).await, TrackOutcome::Duplicate);
    let counter =
        |dimension, value: &str, event: &str, variant: &str, count, values| SegmentCounter {
            dimension,
            value: value.to_owned(),
            event: event.to_owned(),
            variant: variant.to_owned(),
            count,
            values,
        };
    let buy_totals = Some(ValueTotals {
        valued: 1,
        sum: 2_500_000,
        sum_of_squares: 2_500_000i128 * 2_500_000,
    });
    let expected = vec![
        counter(Dimension::Device, "desktop", PARTICIPATE, "red", 1, None),
        counter(Dimension::Device, "mobile", "buy", "red", 1, buy_totals),
        counter(Dimension::Device, "mobile", PARTICIPATE, "red", 1, None),
        counter(Dimension::Device, "tablet", PARTICIPATE, "blue", 1, None),
        counter(Dimension::Browser, "Chrome", "buy", "red", 1, buy_totals),
        counter(Dimension::Browser, "Chrome", PARTICIPATE, "blue", 1, None),
        counter(Dimension::Browser, "Chrome", PARTICIPATE, "red", 2, None),
    ];
    let mut sorted = expected.clone();
    lamed_core::segments::sort_counters(&mut sorted);
    assert_eq!(
        store.segment_counters("seg", "e").await.expect("read"),
        sorted
    );

    // A paused experiment adds nothing anywhere.
    change(&*store, "seg", "e", Change::Pause).await;
    let paused = segmented("e", PARTICIPATE, "red", "u9", "desktop");
    assert!(matches!(
        track_one(&*store, &paused).await,
        TrackOutcome::Ignored(_)
    ));
    assert_eq!(
        store.segment_counters("seg", "e").await.expect("read"),
        sorted
    );

    // The cap: devices d0.. fill the named places, the rest is "other";
    // a held value and "other" itself stay themselves.
    let many: Vec<Event> = (0..MAX_VALUES_PER_DIMENSION + 3)
        .map(|i| segmented("f", PARTICIPATE, "red", &format!("c{i}"), &format!("d{i}")))
        .chain([
            segmented("f", PARTICIPATE, "red", "held", "d0"),
            segmented("f", PARTICIPATE, "red", "other", OTHER),
        ])
        .collect();
    store.track(many).await.expect("track");
    let devices: BTreeMap<String, u64> = store
        .segment_counters("seg", "f")
        .await
        .expect("read")
        .into_iter()
        .filter(|c| c.dimension == Dimension::Device)
        .map(|c| (c.value, c.count))
        .collect();
    assert_eq!(devices.len(), MAX_VALUES_PER_DIMENSION, "{devices:?}");
    assert_eq!(devices.get("d0"), Some(&2));
    assert_eq!(
        devices.get(&format!("d{}", MAX_VALUES_PER_DIMENSION - 2)),
        Some(&1)
    );
    assert_eq!(devices.get(OTHER), Some(&(4 + 1)));

    // Removed with the experiment; the other one keeps its counters.
    assert!(store.delete_experiment("seg", "f").await.expect("delete"));
    assert!(store
        .segment_counters("seg", "f")
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        store.segment_counters("seg", "e").await.expect("read"),
        sorted
    );
    // A new experiment of the same name starts with room for every value.
    store
        .track(vec![segmented("f", PARTICIPATE, "red", "again", "d99")])
        .await
        .expect("track");
    let again = store.segment_counters("seg", "f").await.expect("read");
    assert!(again.iter().any(|c| c.value == "d99"), "{again:?}");
}
