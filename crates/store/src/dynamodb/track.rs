//! Counting: every event (and every join: Sixpack's participation and
//! conversion) is one transaction, decided as the reference store decides
//! it: the join's member and participant, the registry, the caps, then
//! the dedupe marker.
//!
//! The first attempt of a plain event assumes the common case (a running
//! experiment that knows the event's variant and goal) and sends, with no
//! read first: a condition check of the gate, the dedupe marker's
//! conditional put, the counter's `ADD`. When DynamoDB cancels it, the
//! store reads what the failed conditions depend on and plans again; a
//! plan states every fact its decision relied on as a condition, so
//! whatever another instance changes in between cancels it instead of
//! being overwritten. Only the dedupe marker failing alone means
//! "duplicate": the conditional items come before it (registry, caps,
//! membership), so a duplicate is never answered over an `Ignored` or a
//! `Held` that the reference store would answer first.
//!
//! Segments ride on the same transaction: the gate holds each dimension's
//! named values, so the check (or update) of the gate that every event
//! sends anyway decides the cap, and one `ADD` per value counts it (see
//! [`SegmentChoice`]).

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;

use super::action::Action;
use super::client::{self, Outcome};
use super::keys::{self, Item, SHARDS};
use super::store::{token, DynamoDbStore};
use crate::{Join, JoinAnswer, Joined, StoreError};
use lamed_core::model::{CapExceeded, Event, Ignored, TrackOutcome};
use lamed_core::registry::{ExperimentRecord, RegistrationMode, Status, FIRST_VERSION};
use lamed_core::segments::{capped, Dimension, OTHER};

/// Events of one batch sent at once on the common path.
const PARALLEL: usize = 16;

/// An event's identity, as one string.
fn identity(event: &Event) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        event.namespace, event.experiment, event.event, event.variant, event.uuid
    )
}

/// Plans of one event before the store gives up (each failed plan means
/// another writer changed what it relied on: a contended creation).
const MAX_ROUNDS: u32 = 12;

/// What an experiment's gate says (every shard holds the same).
#[derive(Debug, Clone, Default)]
pub(super) struct Gate {
    /// False when the experiment has no gate: it does not exist.
    pub(super) exists: bool,
    /// The record's status; `None` when it has no record (imported only).
    pub(super) status: Option<Status>,
    /// Variants known: counted or registered.
    pub(super) variants: BTreeSet<String>,
    /// Goals known.
    pub(super) goals: BTreeSet<String>,
    /// The named segment values counted, by [`Dimension::index`]
    /// ([`OTHER`] is never held: it always has its place).
    pub(super) segments: [BTreeSet<String>; 3],
}

impl Gate {
    /// What the optimistic first attempt assumes of `event`'s experiment.
    fn assumed(event: &Event) -> Gate {
        let mut segments: [BTreeSet<String>; 3] = Default::default();
        for (dimension, value) in event.segment.values() {
            if value != OTHER {
                segments[dimension.index()].insert(value.to_owned());
            }
        }
        Gate {
            exists: true,
            status: Some(Status::Running),
            variants: [event.variant.clone()].into(),
            goals: [event.event.clone()].into(),
            segments,
        }
    }
}

/// How one segment value of an event is counted, decided from the gate's
/// set of its dimension as the reference store decides it
/// ([`capped`]); the gate's condition states what the decision read.
#[derive(Debug)]
struct SegmentChoice<'a> {
    dimension: Dimension,
    /// The event's value.
    value: &'a str,
    held: Held,
}

/// What the gate's set says of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The value is [`OTHER`]: counted as itself, whatever the set holds.
    Other,
    /// In the set: condition `contains`.
    Known,
    /// Not in it, and the set has room: added to every gate shard under
    /// a condition on the set's size (as a new variant is).
    New,
    /// Not in it, the set full: counted as [`OTHER`], under the condition
    /// that the set is still full and still lacks it.
    Full,
}

impl SegmentChoice<'_> {
    /// The value the counter is kept under.
    fn counted(&self) -> &str {
        match self.held {
            Held::Full => OTHER,
            _ => self.value,
        }
    }
}

/// The choice for each value `event`'s segment carries.
fn segment_choices<'a>(event: &'a Event, view: &Gate) -> Vec<SegmentChoice<'a>> {
    event
        .segment
        .values()
        .map(|(dimension, value)| {
            let held = &view.segments[dimension.index()];
            let known = held.contains(value);
            let held = if value == OTHER {
                Held::Other
            } else if known {
                Held::Known
            } else if capped(value, known, held.len()) == value {
                Held::New
            } else {
                Held::Full
            };
            SegmentChoice {
                dimension,
                value,
                held,
            }
        })
        .collect()
}

/// What segment choices ask of a gate item: conditions, set additions and
/// their placeholders (`#s<i>`, `:s<i>`, `:a<i>` for the `i`-th choice).
#[derive(Debug, Clone, Default)]
struct GateTerms {
    conditions: Vec<String>,
    adds: Vec<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl GateTerms {
    /// The terms of `choices` on a gate that `exists` in the plan's view
    /// (a new gate, created under `attribute_not_exists`, needs no more
    /// condition: its sets start empty).
    fn of(choices: &[SegmentChoice<'_>], exists: bool) -> GateTerms {
        let mut terms = GateTerms::default();
        for (i, choice) in choices.iter().enumerate() {
            let (set, value) = (format!("#s{i}"), format!(":s{i}"));
            let condition = match choice.held {
                Held::Other => continue,
                Held::Known => format!("contains({set}, {value})"),
                Held::New => {
                    terms.adds.push(format!("{set} :a{i}"));
                    terms
                        .values
                        .push((format!(":a{i}"), keys::ss([choice.value])));
                    format!(
                        "(contains({set}, {value}) OR attribute_not_exists({set}) \
                         OR size({set}) < :places)"
                    )
                }
                Held::Full => format!("size({set}) >= :places AND NOT contains({set}, {value})"),
            };
            terms
                .names
                .push((set, keys::segment_values(choice.dimension)));
            if exists {
                terms.conditions.push(condition);
                terms.values.push((value, keys::s(choice.value)));
            }
        }
        if exists && terms.conditions.iter().any(|c| c.contains(":places")) {
            terms
                .values
                .push((":places".to_owned(), keys::n(keys::NAMED_PLACES)));
        }
        terms
    }

    /// Whether the gate must be written (a value to add).
    fn writes(&self) -> bool {
        !self.adds.is_empty()
    }

    /// `action` with the terms' placeholders (each of which the terms'
    /// conditions or additions use: DynamoDB refuses an unused one).
    fn apply(&self, mut action: Action) -> Action {
        for (placeholder, name) in &self.names {
            action = action.name(placeholder, name);
        }
        for (placeholder, value) in &self.values {
            action = action.value(placeholder, value.clone());
        }
        action
    }
}

/// What a join adds to its event, as read in the current round.
#[derive(Debug)]
struct JoinPlan<'a> {
    member: &'a str,
    /// The participant and the variant it holds (the event's).
    participant: Option<&'a str>,
    /// The definition to write, with the version to write it at and the
    /// version it replaces (`None`: no record yet).
    definition: Option<(ExperimentRecord, Option<u64>)>,
}

/// A planned transaction and where its deciding actions are.
struct Plan {
    actions: Vec<Action>,
    /// The dedupe marker's index: failing alone means a duplicate.
    dedupe: usize,
}

/// The result of planning: a decision without writing, or a transaction.
enum Planned {
    Decided(TrackOutcome),
    Write(Plan),
}

impl DynamoDbStore {
    /// Counts a batch as if in order, event by event, each in its own
    /// transaction (all or nothing per event).
    ///
    /// First every event whose identity is new to the batch is tried at
    /// once (up to [`PARALLEL`] at a time) on the common path only: a
    /// running experiment that knows its names, which no event of a batch
    /// can change (tracking never pauses, and events on this path create
    /// nothing), so each such answer (counted, or a duplicate of an event
    /// before the batch) is the one the batch's order gives. The rest (new
    /// names, caps, a paused experiment, identities repeated in the batch)
    /// is then decided one by one, in order. A batch of 1,000 events then
    /// waits for about 1,000 / 16 round trips, not 1,000.
    pub(super) async fn track_events(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<TrackOutcome>, StoreError> {
        use futures_util::stream::{self, StreamExt};
        let mut outcomes: Vec<Option<TrackOutcome>> = vec![None; events.len()];
        let mut identities = std::collections::HashSet::new();
        let firsts: Vec<usize> = (0..events.len())
            .filter(|&i| identities.insert(identity(&events[i])))
            .collect();
        let quick: Vec<(usize, Result<Option<TrackOutcome>, StoreError>)> =
            stream::iter(firsts.into_iter().map(|i| {
                let event = &events[i];
                async move { (i, self.count_common(event).await) }
            }))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (i, outcome) in quick {
            outcomes[i] = outcome?;
        }
        for (event, outcome) in events.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            match self.count(event, None).await {
                Ok(counted) => *outcome = Some(counted),
                Err(Retry::Failed(err)) => return Err(err),
                // Only a join asks to read again.
                Err(Retry::Again) => return Err(self.contended(event)),
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// `event` on the common path only: counted, a duplicate, or `None`
    /// when its experiment is not running with its names known (then
    /// nothing was written).
    async fn count_common(&self, event: &Event) -> Result<Option<TrackOutcome>, StoreError> {
        let shard = keys::shard_of(&event.uuid);
        let now = self.now_ms();
        let seed = self.token_seed(&identity(event));
        let mut view = Gate::assumed(event);
        self.full_segments().apply(event, &mut view.segments);
        let Planned::Write(plan) = self.plan(event, &view, None, None, shard, now) else {
            return Ok(None);
        };
        let dedupe = plan.dedupe;
        Ok(match self.transact(plan.actions, &token(&seed, 0)).await? {
            Outcome::Done => Some(TrackOutcome::Counted),
            Outcome::Cancelled(failed) => {
                let others = failed.iter().enumerate().any(|(i, f)| *f && i != dedupe);
                (!others).then_some(TrackOutcome::Duplicate)
            }
        })
    }

    /// A join: its member, its participant's variant, then the event.
    pub(super) async fn join_event(&self, join: Join) -> Result<JoinAnswer, StoreError> {
        let Join {
            mut event,
            member,
            participant,
            definition,
        } = join;
        let (ns, exp) = (event.namespace.clone(), event.experiment.clone());
        for _ in 0..MAX_ROUNDS {
            if let Some(held) = self.read_member(&ns, &exp, &member).await? {
                return Ok(JoinAnswer::new(Joined::Held(held.clone()), held));
            }
            if let Some(participant) = &participant {
                match self.read_member(&ns, &exp, participant).await? {
                    Some(variant) if !variant.is_empty() => event.variant = variant,
                    _ => return Ok(JoinAnswer::new(Joined::NotParticipating, "")),
                }
            }
            let definition = match &definition {
                Some(definition) => match self.read_record(&ns, &exp).await? {
                    Some((record, _)) if !record.automatic => None,
                    current => {
                        let current = current.map(|(record, _)| record.version);
                        let mut written = definition.clone();
                        written.version = current.unwrap_or(FIRST_VERSION) + 1;
                        Some((written, current))
                    }
                },
                None => None,
            };
            let plan = JoinPlan {
                member: &member,
                participant: participant.as_deref(),
                definition,
            };
            let variant = event.variant.clone();
            let answer = match self.count(&event, Some(plan)).await {
                Ok(TrackOutcome::Counted) => Joined::Counted,
                Ok(TrackOutcome::Duplicate) => Joined::Duplicate,
                Ok(TrackOutcome::Ignored(why)) => Joined::Ignored(why),
                // The member, the participant or the record moved: read again.
                Err(Retry::Again) => continue,
                Err(Retry::Failed(err)) => return Err(err),
            };
            return Ok(JoinAnswer::new(answer, variant));
        }
        Err(self.contended(&event))
    }

    fn contended(&self, event: &Event) -> StoreError {
        StoreError::unavailable(format!(
            "dynamodb table {}: experiment {}/{} changed under {MAX_ROUNDS} attempts to count an event",
            self.table(),
            event.namespace,
            event.experiment
        ))
    }

    /// One event, with a join's extras: plans, sends, and on a
    /// cancellation reads what changed and plans again.
    async fn count(
        &self,
        event: &Event,
        join: Option<JoinPlan<'_>>,
    ) -> Result<TrackOutcome, Retry> {
        let shard = keys::shard_of(&event.uuid);
        let now = self.now_ms();
        let seed = self.token_seed(&identity(event));
        // A join reads first (it has read its member anyway); so does a
        // plain event, which `count_common` tried on the common path.
        let mut gate = Some(self.read_gate(event, shard).await?);
        let mut names = None;
        for round in 0..MAX_ROUNDS {
            let view = gate.clone().unwrap_or_else(|| Gate::assumed(event));
            if !view.exists && names.is_none() {
                names = Some(self.read_names(&event.namespace).await?);
            }
            let plan = match self.plan(event, &view, names.as_ref(), join.as_ref(), shard, now) {
                Planned::Decided(outcome) => return Ok(outcome),
                Planned::Write(plan) => plan,
            };
            let dedupe = plan.dedupe;
            match self.transact(plan.actions, &token(&seed, round)).await? {
                Outcome::Done => return Ok(TrackOutcome::Counted),
                Outcome::Cancelled(failed) => {
                    let others = failed.iter().enumerate().any(|(i, f)| *f && i != dedupe);
                    if !others {
                        return Ok(TrackOutcome::Duplicate);
                    }
                    if join.is_some() {
                        // The member, participant or record may have moved.
                        return Err(Retry::Again);
                    }
                    gate = Some(self.read_gate(event, shard).await?);
                    names = None;
                }
            }
        }
        Err(Retry::Failed(self.contended(event)))
    }

    /// The gate of `event`'s experiment, shard `shard`.
    pub(super) async fn read_gate(&self, event: &Event, shard: u32) -> Result<Gate, StoreError> {
        let item = self
            .get(keys::gate(&event.namespace, &event.experiment, shard))
            .await?;
        let gate = gate_of(item.as_ref())?;
        self.full_segments()
            .learn(&event.namespace, &event.experiment, &gate.segments);
        Ok(gate)
    }

    /// The namespaces of the table and the experiments of `namespace`.
    async fn read_names(
        &self,
        namespace: &str,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), StoreError> {
        let namespaces = self.get(keys::namespaces()).await?;
        let experiments = self.get(keys::experiments(namespace)).await?;
        let set = |item: Option<Item>| match item {
            Some(item) => client::string_set(&item, keys::NAMES),
            None => Ok(BTreeSet::new()),
        };
        Ok((set(namespaces)?, set(experiments)?))
    }

    /// Decides `event` from `view`, or plans the transaction that counts
    /// it, with a condition for every fact the decision took from `view`.
    fn plan(
        &self,
        event: &Event,
        view: &Gate,
        names: Option<&(BTreeSet<String>, BTreeSet<String>)>,
        join: Option<&JoinPlan<'_>>,
        shard: u32,
        now: i64,
    ) -> Planned {
        let caps = &self.options().caps;
        let (ns, exp) = (event.namespace.as_str(), event.experiment.as_str());
        let goal = !event.is_participation();
        // The registry.
        if let Some(status) = view.status.filter(|s| *s != Status::Running) {
            return Planned::Decided(TrackOutcome::Ignored(Ignored::Inactive(status)));
        }
        let new_variant = !view.variants.contains(&event.variant);
        let new_goal = goal && !view.goals.contains(&event.event);
        if caps.registration == RegistrationMode::Required
            && (view.status.is_none() || new_variant || new_goal)
        {
            return Planned::Decided(TrackOutcome::Ignored(Ignored::Unregistered));
        }
        // The caps.
        if !view.exists {
            // `count` reads the names whenever the gate is absent.
            let (namespaces, experiments) = names.expect("names are read for a new experiment");
            if !namespaces.contains(ns) && namespaces.len() >= caps.max_namespaces {
                return Planned::Decided(TrackOutcome::Ignored(Ignored::Cap(
                    CapExceeded::Namespaces {
                        namespace: ns.to_owned(),
                        limit: caps.max_namespaces,
                    },
                )));
            }
            if !experiments.contains(exp) && experiments.len() >= caps.max_experiments_per_namespace
            {
                return Planned::Decided(TrackOutcome::Ignored(Ignored::Cap(
                    CapExceeded::Experiments {
                        namespace: ns.to_owned(),
                        experiment: exp.to_owned(),
                        limit: caps.max_experiments_per_namespace,
                    },
                )));
            }
        }
        if new_variant && view.variants.len() >= caps.max_variants_per_experiment {
            return Planned::Decided(TrackOutcome::Ignored(Ignored::Cap(CapExceeded::Variants {
                experiment: exp.to_owned(),
                variant: event.variant.clone(),
                limit: caps.max_variants_per_experiment,
            })));
        }
        if new_goal && view.goals.len() >= caps.max_goals_per_experiment {
            return Planned::Decided(TrackOutcome::Ignored(Ignored::Cap(CapExceeded::Goals {
                experiment: exp.to_owned(),
                goal: event.event.clone(),
                limit: caps.max_goals_per_experiment,
            })));
        }

        let mut actions = Vec::new();
        let definition = join.and_then(|j| j.definition.as_ref());
        // Tracking's automatic record, unless a definition replaces it.
        let creates_record = view.status.is_none();
        let mut add_variants = BTreeSet::new();
        let mut add_goals = BTreeSet::new();
        if new_variant {
            add_variants.insert(event.variant.clone());
        }
        if new_goal {
            add_goals.insert(event.event.clone());
        }
        if let Some((record, _)) = definition {
            add_variants.extend(record.variants.iter().map(|v| v.name.clone()));
            add_goals.extend(record.goals.iter().map(|g| g.name.clone()));
        }
        let set_status = match definition {
            Some((record, _)) => Some(record.status),
            None => creates_record.then_some(Status::Running),
        };
        let segments = segment_choices(event, view);
        let segment_terms = GateTerms::of(&segments, view.exists);
        let gate_writes = !view.exists
            || !add_variants.is_empty()
            || !add_goals.is_empty()
            || set_status.is_some()
            || segment_terms.writes();

        if !gate_writes {
            let mut conditions = vec!["#st = :running", "contains(#vs, :v)"];
            let mut check = Action::check(keys::gate(ns, exp, shard), "")
                .name("#st", keys::STATUS)
                .name("#vs", keys::VARIANTS)
                .value(":running", keys::s(Status::Running.as_str()))
                .value(":v", keys::s(&event.variant));
            if goal {
                conditions.push("contains(#gs, :g)");
                check = check
                    .name("#gs", keys::GOALS)
                    .value(":g", keys::s(&event.event));
            }
            conditions.extend(segment_terms.conditions.iter().map(String::as_str));
            actions.push(segment_terms.apply(check).when(conditions.join(" AND ")));
        } else {
            for k in 0..SHARDS {
                actions.push(gate_update(
                    keys::gate(ns, exp, k),
                    view,
                    event,
                    (new_variant, new_goal),
                    (&add_variants, &add_goals),
                    set_status,
                    caps,
                    &segment_terms,
                ));
            }
        }
        if !view.exists {
            actions.push(grow_set(keys::namespaces(), ns, caps.max_namespaces));
            actions.push(grow_set(
                keys::experiments(ns),
                exp,
                caps.max_experiments_per_namespace,
            ));
        }
        match definition {
            Some((record, replaces)) => actions.push(record_put(record, *replaces)),
            None if creates_record => {
                let record = ExperimentRecord::automatic(ns, exp, now);
                actions.push(record_put(&record, None));
            }
            None => {}
        }
        if let Some(join) = join {
            if let Some(participant) = join.participant {
                actions.push(
                    Action::check(keys::member(ns, exp, participant), "#value = :variant")
                        .name("#value", keys::VALUE)
                        .value(":variant", keys::s(&event.variant)),
                );
            }
            actions.push(
                Action::put(
                    keys::member(ns, exp, join.member),
                    [(keys::VALUE.to_owned(), keys::s(&event.variant))].into(),
                )
                .when("attribute_not_exists(#pk)")
                .name("#pk", keys::PK),
            );
        }
        let dedupe = actions.len();
        actions.push(self.dedupe_put(event, now));
        actions.push(counter_add(event, shard, now));
        for choice in &segments {
            actions.push(segment_add(event, choice, shard));
        }
        if let Some(join) = join {
            actions.push(
                Action::update(
                    keys::tally(ns, exp, keys::shard_of(join.member)),
                    "ADD #n :one",
                )
                .name("#n", keys::COUNT)
                .value(":one", keys::n(1)),
            );
        }
        Planned::Write(Plan { actions, dedupe })
    }

    /// The dedupe marker: written when absent or expired (compared on
    /// `expires`, never left to TTL), with the window's end.
    fn dedupe_put(&self, event: &Event, now: i64) -> Action {
        let mut item = Item::new();
        let window = self.options().window_ms();
        if window > 0 {
            let expires = now.saturating_add(window);
            item.insert(keys::EXPIRES.to_owned(), keys::n(expires));
            // A second later than the window, in seconds, as TTL wants.
            item.insert(keys::TTL.to_owned(), keys::n(expires / 1000 + 1));
        }
        Action::put(
            keys::seen(
                &event.namespace,
                &event.experiment,
                &event.event,
                &event.variant,
                &event.uuid,
            ),
            item,
        )
        .when("attribute_not_exists(#pk) OR #expires <= :now")
        .name("#pk", keys::PK)
        .name("#expires", keys::EXPIRES)
        .value(":now", keys::n(now))
    }
}

/// Why a join's count stopped: to read again, or failed.
enum Retry {
    Again,
    Failed(StoreError),
}

impl From<StoreError> for Retry {
    fn from(err: StoreError) -> Self {
        Retry::Failed(err)
    }
}

/// A gate item as a [`Gate`] (`None`: no gate).
pub(super) fn gate_of(item: Option<&Item>) -> Result<Gate, StoreError> {
    let Some(item) = item else {
        return Ok(Gate::default());
    };
    let status = match client::string(item, keys::STATUS)? {
        None => None,
        Some(word) => Some(Status::parse(word).ok_or_else(|| {
            StoreError::corrupt(format!("dynamodb: gate status {word:?} is no status"))
        })?),
    };
    let mut segments: [BTreeSet<String>; 3] = Default::default();
    for dimension in Dimension::ALL {
        segments[dimension.index()] = client::string_set(item, &keys::segment_values(dimension))?;
    }
    Ok(Gate {
        exists: true,
        status,
        variants: client::string_set(item, keys::VARIANTS)?,
        goals: client::string_set(item, keys::GOALS)?,
        segments,
    })
}

/// Writes names (and a status, and segment values) to one gate shard,
/// under the conditions the plan read: the gate absent (a new experiment),
/// or present with the status seen, the event's names and segment values
/// held as seen, and room under the caps for each name or value it adds.
#[allow(clippy::too_many_arguments)]
fn gate_update(
    key: Item,
    view: &Gate,
    event: &Event,
    (new_variant, new_goal): (bool, bool),
    (variants, goals): (&BTreeSet<String>, &BTreeSet<String>),
    status: Option<Status>,
    caps: &lamed_core::model::Caps,
    segments: &GateTerms,
) -> Action {
    let mut set = Vec::new();
    let mut add = Vec::new();
    let mut values: Vec<(&str, AttributeValue)> = Vec::new();
    if let Some(status) = status {
        set.push("#st = :st");
        values.push((":st", keys::s(status.as_str())));
    }
    if !variants.is_empty() {
        add.push("#vs :vs");
        values.push((":vs", keys::ss(variants.iter().cloned())));
    }
    if !goals.is_empty() {
        add.push("#gs :gs");
        values.push((":gs", keys::ss(goals.iter().cloned())));
    }
    add.extend(segments.adds.iter().map(String::as_str));
    let mut expression = String::new();
    if !set.is_empty() {
        expression.push_str(&format!("SET {}", set.join(", ")));
    }
    if !add.is_empty() {
        expression.push_str(&format!(" ADD {}", add.join(", ")));
    }
    let mut conditions = Vec::new();
    if !view.exists {
        conditions.push("attribute_not_exists(#pk)".to_owned());
    } else {
        conditions.push("attribute_exists(#pk)".to_owned());
        match view.status {
            None => conditions.push("attribute_not_exists(#st)".to_owned()),
            Some(_) => {
                conditions.push("#st = :running".to_owned());
                values.push((":running", keys::s(Status::Running.as_str())));
            }
        }
        // A name known in the view is still known (not a gate deleted
        // and created again meanwhile); a new one has room.
        values.push((":v", keys::s(&event.variant)));
        conditions.push(if new_variant {
            values.push((":maxv", keys::n(caps.max_variants_per_experiment)));
            "(contains(#vs, :v) OR attribute_not_exists(#vs) OR size(#vs) < :maxv)".to_owned()
        } else {
            "contains(#vs, :v)".to_owned()
        });
        if !event.is_participation() {
            values.push((":g", keys::s(&event.event)));
            conditions.push(if new_goal {
                values.push((":maxg", keys::n(caps.max_goals_per_experiment)));
                "(contains(#gs, :g) OR attribute_not_exists(#gs) OR size(#gs) < :maxg)".to_owned()
            } else {
                "contains(#gs, :g)".to_owned()
            });
        }
        conditions.extend(segments.conditions.iter().cloned());
    }
    let mut action = Action::update(key, expression.trim_start().to_owned())
        .when(conditions.join(" AND "))
        .name("#pk", keys::PK);
    if expression.contains("#st") || conditions.iter().any(|c| c.contains("#st")) {
        action = action.name("#st", keys::STATUS);
    }
    if expression.contains("#vs") || conditions.iter().any(|c| c.contains("#vs")) {
        action = action.name("#vs", keys::VARIANTS);
    }
    if expression.contains("#gs") || conditions.iter().any(|c| c.contains("#gs")) {
        action = action.name("#gs", keys::GOALS);
    }
    for (placeholder, value) in values {
        action = action.value(placeholder, value);
    }
    segments.apply(action)
}

/// Adds `name` to the set at `key` while the set holds fewer than `max`
/// names (or holds it already): a cap, enforced by DynamoDB.
fn grow_set(key: Item, name: &str, max: usize) -> Action {
    Action::update(key, "ADD #names :add")
        .when("contains(#names, :name) OR attribute_not_exists(#names) OR size(#names) < :max")
        .name("#names", keys::NAMES)
        .value(":add", keys::ss([name]))
        .value(":name", keys::s(name))
        .value(":max", keys::n(max))
}

/// Writes `record` whole at its version, over the version it replaces
/// (`None`: only when there is no record).
pub(super) fn record_put(record: &ExperimentRecord, replaces: Option<u64>) -> Action {
    // A record is plain data with string keys: serializing cannot fail.
    let json = serde_json::to_string(record).expect("a record serializes");
    let item: Item = [
        (keys::RECORD.to_owned(), keys::s(json)),
        (keys::VERSION.to_owned(), keys::n(record.version)),
        (
            keys::AUTO.to_owned(),
            AttributeValue::Bool(record.automatic),
        ),
    ]
    .into();
    let action = Action::put(keys::record(&record.namespace, &record.name), item);
    match replaces {
        None => action
            .when("attribute_not_exists(#pk)")
            .name("#pk", keys::PK),
        Some(version) => action
            .when("#version = :read")
            .name("#version", keys::VERSION)
            .value(":read", keys::n(version)),
    }
}

/// Adds one event to its counter shard: the count, the UTC day's count,
/// the value's limbs.
fn counter_add(event: &Event, shard: u32, now: i64) -> Action {
    let day = now.div_euclid(86_400_000);
    let action = Action::update(
        keys::counter(
            &event.namespace,
            &event.experiment,
            shard,
            &event.event,
            &event.variant,
        ),
        "",
    )
    .name("#day", &format!("{}{day}", keys::DAY_PREFIX));
    count_and_limbs(action, "ADD #n :one, #day :one", event)
}

/// Adds one event to the counter shard of one of its segment values, on
/// the value its choice counts it under: the count, the value's limbs.
fn segment_add(event: &Event, choice: &SegmentChoice<'_>, shard: u32) -> Action {
    let key = keys::segment_counter(
        &event.namespace,
        &event.experiment,
        choice.dimension,
        shard,
        (choice.counted(), &event.event, &event.variant),
    );
    count_and_limbs(Action::update(key, ""), "ADD #n :one", event)
}

/// `action` adding one to the count and, when `event` carries a value, its
/// limbs, after `expression` (an `ADD` clause using `#n` and `:one`).
fn count_and_limbs(action: Action, expression: &str, event: &Event) -> Action {
    let mut expression = expression.to_owned();
    let mut action = action.name("#n", keys::COUNT).value(":one", keys::n(1));
    if let Some(value) = event.value {
        for (i, limb) in value.limbs().iter().enumerate() {
            expression.push_str(&format!(", #v{i} :v{i}"));
            action = action
                .name(&format!("#v{i}"), &format!("{}{i}", keys::LIMB_PREFIX))
                .value(&format!(":v{i}"), keys::n(limb));
        }
    }
    action.with_expression(expression)
}
