//! The services under faults: Sixpack participations and conversions,
//! tracking, registry edits and deletes, sent by concurrent seeded tasks
//! through [`FaultyStore`] (calls failed before or after they write,
//! delayed, timed out), each failed request re-sent until answered, as
//! AlephBet and Sixpack clients do (or, one in five participations,
//! conversions and tracking requests, given up at once); the store is
//! checked against what was acknowledged. On the reference, embedded and
//! Redis stores.
//!
//! # What must hold
//!
//! - **No count added twice, none acknowledged lost.** Sixpack: each
//!   experiment's count of `participate` per alternative equals the
//!   clients holding that alternative, and each KPI's count the clients
//!   holding its conversion (a client holds each at most once). Tracking:
//!   a counter is at least the distinct uuids acknowledged for it (counted
//!   or duplicate), and at most those plus the ones ignored after a fault
//!   or given up.
//! - **No membership without its count, no count without membership**
//!   (the counts above), and no conversion without its participation on
//!   the same alternative; every acknowledged participation or conversion
//!   holds its membership, with the alternative it was answered.
//! - **No ghost registration.** An experiment is listed exactly when it
//!   has a record or counters; a tracked one has its automatic record
//!   exactly when it has counters; a delete leaves nothing; and when a
//!   namespace is under its cap, a new experiment is counted.
//! - **No cap exceeded**: experiments per namespace (checked after every
//!   tracking step), variants and goals per experiment.
//! - **No lost record edit**: the last acknowledged edit of an experiment
//!   is its record, until the next edit or delete (compared without the
//!   times the server stamps: see [`as_edited`]).
//!
//! # How the model stays exact
//!
//! Each experiment has a gate: steps hold it shared, a delete or a sweep
//! (the checks above) exclusively, so the experiment is quiet then.
//! Registry edits of one experiment are one at a time (without a version
//! precondition two racing edits may lose one by design). A delete starts
//! a new generation whose clients and uuids are new names, so the dedupe
//! memory of the deleted one (kept by design) does not answer them.
//!
//! A call cut short (or an error the wrapper did not inject) may leave the
//! store working on its own: a write queued for the embedded store's
//! writer, a Redis write's task. Its step waits, still holding the gate,
//! until the experiment settles (two looks [`SETTLE`] apart agree), and
//! checks read settled looks, since a look takes several calls.
//!
//! `LAMED_FAULT_SEED` replays another seed; calls race, so a seed fixes
//! the steps and which call number meets which fault, not which request
//! makes that call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Mutex as EditLock, RwLock};

use lamed_core::clock::Clock;
use lamed_core::model::{Caps, Event, Ignored, TrackOutcome, PARTICIPATE};
use lamed_core::registry::{ExperimentRecord, RegistrationMode, RegistryError, Status};
use lamed_core::sixpack::{
    self, conversion_member, in_traffic, participant_member, SixpackConfig, DEFAULT_GOAL,
};
use lamed_service::registry::{self, EditError, Patch};
use lamed_service::sixpack::{
    convert, participate, ConvertRequest, ParticipateRequest, SixpackError,
};
use lamed_service::tracking::{self, Unmetered};
use lamed_store::faulty::{FaultPlan, FaultyStore, Injected, InjectedFault};
use lamed_store::{DynStore, Store, StoreError};

/// Small caps, so that tracking meets them: five experiments per
/// namespace (of seven tracked names), two variants (of three), two
/// goals (of three).
const CAPS: Caps = Caps {
    registration: RegistrationMode::Open,
    max_namespaces: 3,
    max_experiments_per_namespace: 5,
    max_variants_per_experiment: 2,
    max_goals_per_experiment: 2,
};
/// A day: no uuid leaves the dedupe memory during a run.
const WINDOW_SECONDS: u64 = 86_400;
/// The Sixpack experiments.
const SIXPACK: [&str; 3] = ["e0", "e1", "e2"];
const ALTERNATIVES: [&str; 2] = ["red", "blue"];
/// The KPIs a conversion names (`None`: the default goal); three goals
/// under a cap of two.
const KPIS: [Option<&str>; 3] = [None, Some("buy"), Some("signup")];
/// Clients per Sixpack experiment and generation.
const CLIENTS: usize = 20;
/// The tracking namespace and its experiments, variants, events.
const SITE: &str = "site";
const TRACKED: [&str; 7] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6"];
const VARIANTS: [&str; 3] = ["a", "b", "c"];
const EVENTS: [&str; 4] = [PARTICIPATE, "click", "buy", "share"];
/// Distinct uuids per generation: tasks collide on them.
const UUIDS: usize = 40;
/// Concurrent tasks, epochs (checked in between, all quiet) and steps
/// per task and epoch.
const TASKS: u64 = 4;
const EPOCHS: u64 = 5;
const STEPS: u64 = 200;
/// Each kind of fault, per store call.
const FAULT_SHARE: f64 = 0.03;
/// The longest delay, and the longest deadline of a time-out (tokio's
/// timers tick each millisecond: shorter ones rarely fire).
const MAX_DELAY: Duration = Duration::from_millis(5);
/// Fewest faults of each kind a run must inject to prove anything.
const MIN_FAULTS: u64 = 50;
/// How long an experiment must stay unchanged to count as settled.
const SETTLE: Duration = Duration::from_millis(10);

/// The goal a KPI counts under.
fn goal(kpi: Option<&str>) -> &str {
    kpi.unwrap_or(DEFAULT_GOAL)
}

/// Client `k` of a Sixpack experiment's generation `generation`.
fn client_id(k: usize, generation: u64) -> String {
    format!("c{k}.g{generation}")
}

/// What was acknowledged in a Sixpack experiment's generation.
#[derive(Debug, Clone, Default)]
struct SixpackModel {
    /// Client → the alternative it must hold.
    participants: BTreeMap<usize, String>,
    /// (Client, goal) → the alternative its conversion must hold.
    conversions: BTreeMap<(usize, String), String>,
    /// The last acknowledged registry edit's record.
    record: Option<ExperimentRecord>,
}

/// What was acknowledged in a tracked experiment's generation, per
/// `(event, variant)`.
#[derive(Debug, Clone, Default)]
struct TrackedModel {
    /// Uuids answered counted or duplicate: counted once.
    sure: BTreeMap<(String, String), BTreeSet<String>>,
    /// Uuids answered ignored after a failed send, or given up: counted at
    /// most once.
    maybe: BTreeMap<(String, String), BTreeSet<String>>,
}

/// One experiment: its gate, its edit lock and its model.
struct Slot<M> {
    name: &'static str,
    /// The generation, held shared by steps and exclusively by deletes and
    /// sweeps (tokio's lock: held across the store's calls).
    gate: RwLock<u64>,
    /// Registry edits one at a time.
    edits: EditLock<()>,
    /// std mutex: never held across `.await`.
    model: Mutex<M>,
}

impl<M: Default> Slot<M> {
    fn new(name: &'static str) -> Self {
        Slot {
            name,
            gate: RwLock::new(0),
            edits: EditLock::new(()),
            model: Mutex::new(M::default()),
        }
    }
}

/// What the tasks did, for the report.
#[derive(Debug, Default)]
struct Tally {
    steps: BTreeMap<&'static str, u64>,
    /// Sends re-sent after a failure.
    resent: u64,
    /// Requests given up after a failure.
    given_up: u64,
}

/// The store, the model and the tally the tasks share.
struct World {
    /// What the services are given.
    faulty: FaultyStore<dyn Store>,
    /// The same store without faults, for checks.
    checked: DynStore,
    /// The caps the store was opened with.
    caps: Caps,
    config: SixpackConfig,
    sixpack: Vec<Slot<SixpackModel>>,
    tracked: Vec<Slot<TrackedModel>>,
    tally: Mutex<Tally>,
}

/// How a request's sends went.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    /// A send failed.
    faulted: bool,
    /// A failed send may still be writing (cut short while running, or a
    /// failure the wrapper did not inject): the experiment must settle
    /// before it is checked or handed on.
    unsettled: bool,
}

impl Sent {
    fn failed(&mut self, err: &StoreError) {
        self.faulted = true;
        self.unsettled |= !matches!(
            InjectedFault::of(err),
            Some(
                InjectedFault::FailedBefore
                    | InjectedFault::FailedAfter { .. }
                    | InjectedFault::TimedOut { started: false, .. }
            )
        );
    }
}

/// Sends a request until it is answered: evaluates `$call` again while
/// `$failure` finds a store failure in its error, after at most
/// `$patience` failures. Evaluates to the answer (`None` when the sender
/// gave up) and how the sends went.
macro_rules! resend {
    ($world:expr, $patience:expr, $call:expr, $failure:expr) => {{
        let (mut sent, mut failures) = (Sent::default(), 0u32);
        loop {
            let answer = $call;
            match answer.as_ref().err().and_then($failure) {
                None => break (Some(answer), sent),
                Some(err) => {
                    sent.failed(err);
                    if failures >= $patience {
                        $world.tally.lock().unwrap().given_up += 1;
                        break (None, sent);
                    }
                    failures += 1;
                    assert!(failures < 1_000, "a request failed a thousand times");
                    $world.tally.lock().unwrap().resent += 1;
                }
            }
        }
    }};
}

/// The store's failure in a Sixpack error.
fn sixpack_failure(err: &SixpackError) -> Option<&StoreError> {
    match err {
        SixpackError::Store(err) => Some(err),
        _ => None,
    }
}

/// The store's failure in a registry error.
fn edit_failure(err: &EditError) -> Option<&StoreError> {
    match err {
        EditError::Store(err) => Some(err),
        EditError::Registry(_) | EditError::Moved { .. } | EditError::Contended { .. } => None,
    }
}

/// A tracking error: always the store's.
fn store_failure(err: &StoreError) -> Option<&StoreError> {
    Some(err)
}

/// How often a request is re-sent after a failure: mostly until it is
/// answered, but one sender in five gives up at once (a closed tab), so
/// what a lost request wrote must be whole too.
fn patience(rng: &mut ChaCha8Rng) -> u32 {
    if rng.random_bool(0.2) {
        0
    } else {
        u32::MAX
    }
}

impl World {
    fn new(inner: DynStore, caps: Caps, seed: u64) -> Self {
        let plan = FaultPlan::random(seed, FAULT_SHARE, MAX_DELAY);
        World {
            faulty: FaultyStore::new(Arc::clone(&inner), plan),
            checked: inner,
            caps,
            config: SixpackConfig::default(),
            sixpack: SIXPACK.map(Slot::new).into(),
            tracked: TRACKED.map(Slot::new).into(),
            tally: Mutex::default(),
        }
    }

    fn store(&self) -> &dyn Store {
        &self.faulty
    }

    fn namespace(&self) -> &str {
        &self.config.namespace
    }

    fn count_step(&self, kind: &'static str) {
        *self.tally.lock().unwrap().steps.entry(kind).or_default() += 1;
    }

    /// A client's membership, read without faults.
    async fn held(&self, experiment: &str, member: &str) -> Option<String> {
        let held = self
            .checked
            .membership(self.namespace(), experiment, member);
        held.await.expect("read a membership")
    }

    /// One experiment's counters `(event, variant) → count`.
    async fn counters(&self, namespace: &str, experiment: &str) -> BTreeMap<(String, String), u64> {
        let counters = self
            .checked
            .counters(namespace)
            .await
            .expect("read counters");
        counters
            .into_iter()
            .filter(|c| c.experiment == experiment)
            .map(|c| ((c.event, c.variant), c.count))
            .collect()
    }

    async fn listed(&self, namespace: &str) -> Vec<String> {
        let listed = self.checked.experiments(namespace).await;
        listed.expect("list experiments")
    }

    async fn record(&self, namespace: &str, experiment: &str) -> Option<ExperimentRecord> {
        let record = self.checked.record(namespace, experiment).await;
        record.expect("read a record")
    }

    /// One look at an experiment: listed, record, counters, and what each
    /// of `members` holds.
    async fn look(&self, namespace: &str, name: &str, members: &[String]) -> Seen {
        let mut held = BTreeMap::new();
        for member in members {
            let value = self.checked.membership(namespace, name, member).await;
            held.insert(member.clone(), value.expect("read a membership"));
        }
        Seen {
            listed: self.listed(namespace).await.iter().any(|n| n == name),
            record: self.record(namespace, name).await,
            counters: self.counters(namespace, name).await,
            members: held,
        }
    }

    /// Looks until two looks [`SETTLE`] apart agree: what the store still
    /// did on its own for calls cut short has ended.
    async fn settled(&self, namespace: &str, name: &str, members: &[String]) -> Seen {
        let mut seen = self.look(namespace, name, members).await;
        for _ in 0..200 {
            tokio::time::sleep(SETTLE).await;
            let again = self.look(namespace, name, members).await;
            if again == seen {
                return again;
            }
            seen = again;
        }
        panic!("{name} never settles: {seen:?}");
    }
}

/// What a look saw of one experiment.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    listed: bool,
    record: Option<ExperimentRecord>,
    /// `(event, variant) → count`.
    counters: BTreeMap<(String, String), u64>,
    /// Member → what it holds.
    members: BTreeMap<String, Option<String>>,
}

/// One seeded step of a task.
async fn step(world: &World, rng: &mut ChaCha8Rng) {
    match rng.random_range(0..100) {
        0..35 => participate_step(world, rng).await,
        35..55 => convert_step(world, rng).await,
        55..85 => track_step(world, rng).await,
        85..96 => edit_step(world, rng).await,
        96..98 => delete_step(world, rng).await,
        _ => sweep_step(world, rng).await,
    }
}

/// A Sixpack participation: plain, prefetched, by a bot, forced (and
/// maybe recorded) or with a traffic fraction of one half.
async fn participate_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("participate");
    let slot = &world.sixpack[rng.random_range(0..SIXPACK.len())];
    let k = rng.random_range(0..CLIENTS);
    let shape = rng.random_range(0..100);
    let forced = ALTERNATIVES[rng.random_range(0..2)];
    let record_force = rng.random_bool(0.5);
    let patience = patience(rng);
    let generation = slot.gate.read().await;
    let client = client_id(k, *generation);
    let mut request = ParticipateRequest::new(slot.name, &client, &ALTERNATIVES);
    request.now_ms = Clock::System.now_ms();
    match shape {
        0..5 => request.prefetch = true,
        5..8 => request.bot = true,
        8..18 => {
            request.force = Some(forced.into());
            request.record_force = record_force;
        }
        18..30 => request.traffic_fraction = Some("0.5".into()),
        _ => {}
    }
    let member = participant_member(&client);
    let before = world.held(slot.name, &member).await;
    let (answer, sent) = resend!(
        world,
        patience,
        participate(world.store(), &Unmetered, &world.config, request.clone()).await,
        sixpack_failure
    );
    if sent.unsettled {
        let members = [member.clone()];
        world.settled(world.namespace(), slot.name, &members).await;
    }
    let Some(answer) = answer else {
        return;
    };
    let done = answer.unwrap_or_else(|err| panic!("participation refused: {err}"));
    let shown = done.answer.alternative.name;
    let counted = done.answer.ignored.is_none() && !request.bot;
    // What was acknowledged before the read (not after: another task's
    // participation may be acknowledged meanwhile) must be read.
    let acknowledged = slot.model.lock().unwrap().participants.get(&k).cloned();
    let held = world.held(slot.name, &member).await;
    if let Some(acknowledged) = acknowledged {
        assert_eq!(
            held.as_ref(),
            Some(&acknowledged),
            "{}: client {client} lost or changed its alternative",
            slot.name
        );
    }
    let mut model = slot.model.lock().unwrap();
    if request.force.is_some() {
        if counted && request.record_force {
            let held = held.unwrap_or_else(|| {
                panic!(
                    "{}: a recorded forced participation of {client} holds nothing",
                    slot.name
                )
            });
            model.participants.insert(k, held);
        }
        return;
    }
    if let (true, Some(before)) = (counted, &before) {
        assert_eq!(
            &shown, before,
            "{}: {client} shown another alternative",
            slot.name
        );
    }
    let inside = request.traffic_fraction.is_none() || in_traffic(slot.name, &client, 0.5);
    if counted && inside && !request.prefetch {
        assert_eq!(
            held.as_ref(),
            Some(&shown),
            "{}: acknowledged participation of {client} not held",
            slot.name
        );
        model.participants.insert(k, shown);
    }
}

/// A Sixpack conversion on one of the KPIs.
async fn convert_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("convert");
    let slot = &world.sixpack[rng.random_range(0..SIXPACK.len())];
    let k = rng.random_range(0..CLIENTS);
    let kpi = KPIS[rng.random_range(0..KPIS.len())];
    let patience = patience(rng);
    let generation = slot.gate.read().await;
    let client = client_id(k, *generation);
    let request = ConvertRequest {
        experiment: slot.name.into(),
        client_id: client.clone(),
        kpi: kpi.map(str::to_owned),
    };
    let (answer, sent) = resend!(
        world,
        patience,
        convert(world.store(), &Unmetered, &world.config, request.clone()).await,
        sixpack_failure
    );
    let goal = goal(kpi);
    if sent.unsettled {
        let members = [
            conversion_member(&client, goal),
            participant_member(&client),
        ];
        world.settled(world.namespace(), slot.name, &members).await;
    }
    let done = match answer {
        None => return,
        Some(Ok(done)) if done.ignored.is_none() => done,
        // Ignored (a cap, a status), or refused (no participation, not
        // running, no experiment): nothing acknowledged.
        Some(Ok(_) | Err(SixpackError::Invalid(_))) => return,
        Some(Err(err)) => panic!("conversion failed: {err}"),
    };
    let alternative = done.answer.alternative.name;
    let converted = world
        .held(slot.name, &conversion_member(&client, goal))
        .await;
    let participated = world.held(slot.name, &participant_member(&client)).await;
    assert_eq!(
        (converted.as_ref(), participated.as_ref()),
        (Some(&alternative), Some(&alternative)),
        "{}: acknowledged conversion of {client} on {goal} not held",
        slot.name
    );
    let mut model = slot.model.lock().unwrap();
    model.conversions.insert((k, goal.to_owned()), alternative);
}

/// A batch of one to three tracked events, over any experiments.
async fn track_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("track");
    let drawn: Vec<(usize, &str, &str, usize)> = (0..rng.random_range(1..=3))
        .map(|_| {
            (
                rng.random_range(0..TRACKED.len()),
                EVENTS[rng.random_range(0..EVENTS.len())],
                VARIANTS[rng.random_range(0..VARIANTS.len())],
                rng.random_range(0..UUIDS),
            )
        })
        .collect();
    let patience = patience(rng);
    // Gates in one order, so that tasks never wait on each other in a
    // circle.
    let slots: BTreeSet<usize> = drawn.iter().map(|d| d.0).collect();
    let mut generations = BTreeMap::new();
    for &i in &slots {
        generations.insert(i, world.tracked[i].gate.read().await);
    }
    let events: Vec<Event> = drawn
        .iter()
        .map(|&(i, event, variant, uuid)| Event {
            segment: Default::default(),
            namespace: SITE.into(),
            experiment: TRACKED[i].into(),
            variant: variant.into(),
            event: event.into(),
            uuid: format!("u{uuid}.g{}", *generations[&i]),
            value: None,
        })
        .collect();
    let (answer, sent) = resend!(
        world,
        patience,
        tracking::track(world.store(), &Unmetered, events.clone()).await,
        store_failure
    );
    if sent.unsettled {
        for &i in &slots {
            world.settled(SITE, TRACKED[i], &[]).await;
        }
    }
    // Given up: each event was counted once or not at all.
    let outcomes = match answer {
        Some(answer) => answer.expect("answered"),
        None => {
            let lost = Ignored::Unregistered;
            vec![TrackOutcome::Ignored(lost); events.len()]
        }
    };
    let listed = world.listed(SITE).await;
    assert!(
        listed.len() <= world.caps.max_experiments_per_namespace,
        "{listed:?} exceed the cap of {}",
        world.caps.max_experiments_per_namespace
    );
    for (event, outcome) in events.iter().zip(&outcomes) {
        let counted = matches!(outcome, TrackOutcome::Counted | TrackOutcome::Duplicate);
        if counted && !listed.contains(&event.experiment) {
            // An owner's record created while a take-back ran is listed
            // again only afterwards (redis/register.rs).
            let seen = world.settled(SITE, &event.experiment, &[]).await;
            assert!(seen.listed, "{} counted, never listed", event.experiment);
        }
    }
    for ((&(i, ..), event), outcome) in drawn.iter().zip(&events).zip(outcomes) {
        let key = (event.event.clone(), event.variant.clone());
        let mut model = world.tracked[i].model.lock().unwrap();
        let into = match outcome {
            TrackOutcome::Counted | TrackOutcome::Duplicate => &mut model.sure,
            TrackOutcome::Ignored(_) if sent.faulted => &mut model.maybe,
            TrackOutcome::Ignored(_) => continue,
        };
        into.entry(key).or_default().insert(event.uuid.clone());
    }
}

/// A registry edit of a Sixpack experiment: a registration (or
/// redefinition) with its alternatives, a description, a pause, a resume
/// or (rarely, it lasts until a delete) a stop.
async fn edit_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("edit");
    let slot = &world.sixpack[rng.random_range(0..SIXPACK.len())];
    let kind = rng.random_range(0..100);
    let words = format!("note {}", rng.random_range(0..1000));
    let winner = ALTERNATIVES[rng.random_range(0..2)];
    let _generation = slot.gate.read().await;
    let _edits = slot.edits.lock().await;
    let (namespace, name) = (world.namespace(), slot.name);
    let patch = match kind {
        0..30 => None,
        30..55 => Some(Patch {
            description: Some(words.clone()),
            ..Patch::default()
        }),
        55..75 => Some(Patch::status(Status::Paused)),
        75..95 => Some(Patch::status(Status::Running)),
        _ => Some(Patch {
            winner: Some(winner.into()),
            note: Some(words.clone()),
            ..Patch::status(Status::Stopped)
        }),
    };
    let target = patch.as_ref().and_then(|p| p.status);
    let (answer, sent) = resend!(
        world,
        u32::MAX,
        match &patch {
            None => {
                let alternatives = ALTERNATIVES.map(str::to_owned);
                let definition = sixpack::definition(&alternatives, words.clone(), Vec::new());
                let now = Clock::System.now_ms();
                let put = registry::put(world.store(), namespace, name, definition, now);
                put.await.map(|registered| registered.record)
            }
            Some(patch) => {
                let now = Clock::System.now_ms();
                registry::change(world.store(), namespace, name, patch.clone(), now).await
            }
        },
        edit_failure
    );
    let answer = answer.expect("edits are re-sent until answered");
    if sent.unsettled {
        world.settled(namespace, name, &[]).await;
    }
    let stored = world.record(namespace, name).await;
    let mut model = slot.model.lock().unwrap();
    match answer {
        Ok(record) => {
            assert_eq!(
                stored.as_ref().map(as_edited),
                Some(as_edited(&record)),
                "{name}: acknowledged edit lost"
            );
            model.record = Some(record);
        }
        // A re-sent move that had been made before its answer was lost:
        // the client hears "already there", which acknowledges it.
        Err(EditError::Registry(RegistryError::Transition { from, to }))
            if sent.faulted && from == to && Some(to) == target =>
        {
            let stored = stored.unwrap_or_else(|| panic!("{name}: a made move left no record"));
            assert_eq!(stored.status, to, "{name}: acknowledged move lost");
            model.record = Some(stored);
        }
        // Refused (no record yet, a move the lifecycle forbids): nothing
        // written; likewise an edit other writes kept coming between.
        Err(EditError::Registry(_) | EditError::Moved { .. } | EditError::Contended { .. }) => {
            if let Some(record) = &model.record {
                assert_eq!(
                    stored.as_ref().map(as_edited),
                    Some(as_edited(record)),
                    "{name}: a refused edit wrote"
                );
            }
        }
        Err(EditError::Store(_)) => unreachable!("re-sent until answered"),
    }
}

/// A record as its owner's edits made it, without the times the server
/// stamps on each send: on Redis, a re-sent edit's first send, cut short,
/// may still write after the re-send (the same edit, stamped a few
/// milliseconds earlier), and the last write wins. A version
/// precondition on `put_record` would refuse that late write; until then
/// the times are not compared.
fn as_edited(record: &ExperimentRecord) -> ExperimentRecord {
    let mut record = record.clone();
    record.created_ms = 0;
    record.started_ms = None;
    record.paused_ms = None;
    record.stopped_ms = None;
    record.archived_ms = None;
    if let Some(decision) = &mut record.decision {
        decision.decided_ms = 0;
    }
    record
}

/// Deletes a Sixpack or a tracked experiment while it is quiet, checks
/// that nothing of it is left, and starts its next generation.
async fn delete_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("delete");
    let which = rng.random_range(0..SIXPACK.len() + TRACKED.len());
    if which < SIXPACK.len() {
        let slot = &world.sixpack[which];
        let mut generation = slot.gate.write().await;
        let model = slot.model.lock().unwrap().clone();
        let had = !model.participants.is_empty() || model.record.is_some();
        let members = sixpack_members(*generation);
        let members: Vec<String> = members.into_iter().map(|m| m.2).collect();
        delete(world, world.namespace(), slot.name, had, &members).await;
        *slot.model.lock().unwrap() = SixpackModel::default();
        *generation += 1;
    } else {
        let slot = &world.tracked[which - SIXPACK.len()];
        let mut generation = slot.gate.write().await;
        let had = !slot.model.lock().unwrap().sure.is_empty();
        delete(world, SITE, slot.name, had, &[]).await;
        *slot.model.lock().unwrap() = TrackedModel::default();
        *generation += 1;
    }
}

/// Deletes an experiment through the registry, re-sent until answered,
/// and checks that nothing of it is left, `members` included; `had`: the
/// model knows it exists.
async fn delete(world: &World, namespace: &str, name: &str, had: bool, members: &[String]) {
    let (answer, sent) = resend!(
        world,
        u32::MAX,
        registry::delete(world.store(), namespace, name).await,
        edit_failure
    );
    match answer.expect("deletes are re-sent until answered") {
        Ok(()) => {}
        // Nothing there, or deleted by a send whose answer was lost.
        Err(EditError::Registry(RegistryError::NotRegistered { .. })) => {
            assert!(
                sent.faulted || !had,
                "{name}: delete found nothing to delete"
            );
        }
        Err(err) => panic!("{name}: delete refused: {err}"),
    }
    let seen = world.settled(namespace, name, members).await;
    assert!(!seen.listed, "{name}: still listed");
    assert_eq!(seen.record, None, "{name}: record left");
    assert!(seen.counters.is_empty(), "{name}: counters left: {seen:?}");
    let held: Vec<_> = seen.members.values().flatten().collect();
    assert!(held.is_empty(), "{name}: memberships left: {held:?}");
}

/// Every membership of a Sixpack experiment's generation: `(client,
/// goal, member)`, the goal `None` for the participation.
fn sixpack_members(generation: u64) -> Vec<(usize, Option<&'static str>, String)> {
    let mut members = Vec::new();
    for k in 0..CLIENTS {
        let client = client_id(k, generation);
        members.push((k, None, participant_member(&client)));
        for kpi in KPIS {
            let goal = goal(kpi);
            members.push((k, Some(goal), conversion_member(&client, goal)));
        }
    }
    members
}

/// Checks one experiment, quiet meanwhile.
async fn sweep_step(world: &World, rng: &mut ChaCha8Rng) {
    world.count_step("sweep");
    let which = rng.random_range(0..SIXPACK.len() + TRACKED.len());
    if which < SIXPACK.len() {
        sweep_sixpack(world, &world.sixpack[which]).await;
    } else {
        sweep_tracked(world, &world.tracked[which - SIXPACK.len()]).await;
    }
}

/// The distinct variants and goals of counters, each under its cap.
fn check_names_capped(name: &str, counters: &BTreeMap<(String, String), u64>) {
    let variants: BTreeSet<&str> = counters.keys().map(|k| k.1.as_str()).collect();
    let goals: BTreeSet<&str> = counters
        .keys()
        .map(|k| k.0.as_str())
        .filter(|&event| event != PARTICIPATE)
        .collect();
    assert!(
        variants.len() <= CAPS.max_variants_per_experiment,
        "{name}: variants {variants:?} exceed the cap"
    );
    assert!(
        goals.len() <= CAPS.max_goals_per_experiment,
        "{name}: goals {goals:?} exceed the cap"
    );
}

/// A Sixpack experiment: counts equal memberships; acknowledged
/// participations, conversions and edits are held; listed exactly when
/// it has a record or counters.
async fn sweep_sixpack(world: &World, slot: &Slot<SixpackModel>) {
    let generation = slot.gate.write().await;
    let (namespace, name) = (world.namespace(), slot.name);
    let model = slot.model.lock().unwrap().clone();
    let members = sixpack_members(*generation);
    let ids: Vec<String> = members.iter().map(|m| m.2.clone()).collect();
    let seen = world.settled(namespace, name, &ids).await;
    let holds = |member: &str| seen.members[member].as_ref();
    let mut held: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (k, goal, member) in &members {
        let client = client_id(*k, *generation);
        let participant = holds(&participant_member(&client));
        let value = holds(member);
        if let Some(alternative) = value {
            let event = goal.unwrap_or(PARTICIPATE);
            *held.entry((event.into(), alternative.clone())).or_default() += 1;
            assert_eq!(
                participant,
                Some(alternative),
                "{name}: {client} converted on {goal:?} without that participation"
            );
        }
        let acknowledged = match goal {
            None => model.participants.get(k),
            Some(goal) => model.conversions.get(&(*k, (*goal).to_owned())),
        };
        if let Some(acknowledged) = acknowledged {
            assert_eq!(
                value,
                Some(acknowledged),
                "{name}: acknowledged {goal:?} of {client} lost"
            );
        }
    }
    assert_eq!(
        seen.counters, held,
        "{name}: counts differ from memberships"
    );
    check_names_capped(name, &seen.counters);
    if let Some(edited) = &model.record {
        assert_eq!(
            seen.record.as_ref().map(as_edited),
            Some(as_edited(edited)),
            "{name}: acknowledged edit lost"
        );
    }
    let exists = seen.record.is_some() || !seen.counters.is_empty();
    assert_eq!(seen.listed, exists, "{name}: listed ≠ exists: {seen:?}");
}

/// A tracked experiment: each counter between its acknowledged uuids and
/// those plus the ones ignored after a fault; listed, with its automatic
/// record, exactly when it has counters.
async fn sweep_tracked(world: &World, slot: &Slot<TrackedModel>) {
    let _generation = slot.gate.write().await;
    let name = slot.name;
    let model = slot.model.lock().unwrap().clone();
    let seen = world.settled(SITE, name, &[]).await;
    let keys: BTreeSet<&(String, String)> = seen
        .counters
        .keys()
        .chain(model.sure.keys())
        .chain(model.maybe.keys())
        .collect();
    for key in keys {
        let count = seen.counters.get(key).copied().unwrap_or(0);
        let sure = model.sure.get(key).cloned().unwrap_or_default();
        let mut at_most = sure.clone();
        at_most.extend(model.maybe.get(key).into_iter().flatten().cloned());
        assert!(
            count >= sure.len() as u64,
            "{name} {key:?}: {count} counted, {} acknowledged: a count lost",
            sure.len()
        );
        assert!(
            count <= at_most.len() as u64,
            "{name} {key:?}: {count} counted, at most {} sent: a count added twice",
            at_most.len()
        );
    }
    check_names_capped(name, &seen.counters);
    let counted = !seen.counters.is_empty();
    assert_eq!(
        (seen.listed, seen.record.is_some()),
        (counted, counted),
        "{name}: (listed, record) without counters, or counters without them"
    );
}

/// All quiet: every experiment is swept; each namespace lists exactly its
/// experiments with a record or counters, under the cap; and when the
/// tracked namespace is under its cap, a new experiment is counted.
async fn check_quiet(world: &World, epoch: u64) {
    // Each experiment settled once: the namespaces read in three calls
    // are then still.
    for slot in &world.sixpack {
        sweep_sixpack(world, slot).await;
    }
    for slot in &world.tracked {
        sweep_tracked(world, slot).await;
    }
    for namespace in [world.namespace(), SITE] {
        let listed: BTreeSet<String> = world.listed(namespace).await.into_iter().collect();
        assert!(listed.len() <= world.caps.max_experiments_per_namespace);
        let records = world.checked.records(namespace).await.expect("records");
        let counters = world.checked.counters(namespace).await.expect("counters");
        let existing: BTreeSet<String> = records
            .into_iter()
            .map(|r| r.name)
            .chain(counters.into_iter().map(|c| c.experiment))
            .collect();
        assert_eq!(listed, existing, "{namespace}: listed ≠ existing");
    }
    let listed = world.listed(SITE).await;
    if listed.len() < world.caps.max_experiments_per_namespace {
        let slot = world
            .tracked
            .iter()
            .find(|s| !listed.iter().any(|n| n == s.name))
            .expect("an unlisted name");
        let generation = slot.gate.read().await;
        let event = Event {
            segment: Default::default(),
            namespace: SITE.into(),
            experiment: slot.name.into(),
            variant: VARIANTS[0].into(),
            event: PARTICIPATE.into(),
            uuid: format!("probe{epoch}.g{}", *generation),
            value: None,
        };
        let outcome = world
            .checked
            .track(vec![event.clone()])
            .await
            .expect("probe");
        assert_eq!(
            outcome,
            [TrackOutcome::Counted],
            "{}: refused with {listed:?} listed under a cap of {}",
            slot.name,
            world.caps.max_experiments_per_namespace
        );
        let mut model = slot.model.lock().unwrap();
        let key = (event.event, event.variant);
        model.sure.entry(key).or_default().insert(event.uuid);
    }
}

/// The seed: `LAMED_FAULT_SEED`, else a fixed one.
fn seed() -> u64 {
    std::env::var("LAMED_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(23)
}

/// Runs every epoch's tasks on `store` (opened with `caps`), checks
/// after each, and returns what was injected.
async fn run(label: &str, store: DynStore, caps: Caps) -> Injected {
    let seed = seed();
    eprintln!("{label}: seed {seed} (LAMED_FAULT_SEED replays one)");
    let started = Instant::now();
    let world = Arc::new(World::new(store, caps, seed));
    for epoch in 0..EPOCHS {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let world = Arc::clone(&world);
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch << 32) ^ task);
                tokio::spawn(async move {
                    for _ in 0..STEPS {
                        step(&world, &mut rng).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                std::panic::resume_unwind(err.into_panic());
            }
        }
        check_quiet(&world, epoch).await;
    }
    let injected = world.faulty.injected();
    eprintln!(
        "{label}: {:?} in {:.1?}; {:?}",
        world.tally.lock().unwrap(),
        started.elapsed(),
        injected
    );
    for (kind, n) in [
        ("failed before", injected.failed_before),
        ("failed after", injected.failed_after),
        ("delayed", injected.delayed),
        ("timed out", injected.timed_out),
    ] {
        assert!(n >= MIN_FAULTS, "{label}: only {n} calls {kind}");
    }
    injected
}

/// The services keep every invariant over the reference store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_reference_store() {
    let store = lamed_store::reference::ReferenceStore::new(WINDOW_SECONDS, CAPS, Clock::System);
    run("reference", Arc::new(store), CAPS).await;
}

/// The services keep every invariant over the embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = lamed_store::EmbeddedStore::open(lamed_store::EmbeddedOptions {
        data_dir: dir.path().to_owned(),
        uuid_expiry_seconds: WINDOW_SECONDS,
        fsync: lamed_store::Durability::default(),
        caps: CAPS,
        clock: Clock::System,
    })
    .expect("open the embedded store");
    let store: DynStore = Arc::new(store);
    run("embedded", Arc::clone(&store), CAPS).await;
    store.close().await.expect("close");
}

/// A Redis store on a private server, with `caps`.
async fn redis_store(caps: Caps) -> (lamed_store::redis::testing::RedisServer, DynStore) {
    use lamed_store::redis::testing::RedisServer;
    use lamed_store::redis::{RedisOptions, RedisSettings, RedisStore};
    let server = RedisServer::start();
    let settings = RedisSettings::from_urls(&server.url()).expect("a redis url");
    let options = RedisOptions::new(settings, WINDOW_SECONDS, caps);
    let store = RedisStore::open(options)
        .await
        .expect("open the redis store");
    (server, Arc::new(store))
}

/// The services keep every invariant over Redis, with room under the
/// experiments cap for every tracked name (see the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_redis() {
    let caps = Caps {
        max_experiments_per_namespace: TRACKED.len(),
        ..CAPS
    };
    let (_server, store) = redis_store(caps).await;
    run("redis", store, caps).await;
}

/// The same on Redis at the experiments cap, where take-backs race
/// creations (see `register.rs` in crates/store/src/redis: a take-back
/// once freed its place for a moment, and about one run in fifty listed
/// an experiment past the cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_redis_at_the_experiments_cap() {
    let (_server, store) = redis_store(CAPS).await;
    run("redis at the cap", store, CAPS).await;
}
