//! Sixpack's operations over a store: a participation, a conversion, and
//! one experiment's details. A Sixpack experiment is a Lamed experiment in
//! [`SixpackConfig::namespace`]: a participation is counted as a
//! `participate` event, a conversion as a goal (its KPI), and both are
//! remembered per client for as long as the experiment lives (the store's
//! memberships). The rules without I/O, and the JSON answers, are
//! [`lamed_core::sixpack`]'s; the HTTP handler parses the query, calls
//! these and writes the answer.
//!
//! Each operation is one function over `&dyn Store`, so that it can
//! become one store call.

use lamed_core::model::{check_field, Event, Ignored, MAX_NAME_BYTES, PARTICIPATE};
use lamed_core::registry::{ExperimentRecord, Status};
use lamed_core::sixpack::{
    self, choose, conversion_member, conversion_uuid, in_traffic, participant_member,
    participation_uuid, valid_name, Conversion, ConversionValue, ExperimentDetails, NameKind,
    Named, Participation, SixpackConfig, DEFAULT_GOAL, EXCLUDED,
};
use lamed_store::{Join, JoinAnswer, Joined, Store, StoreError};

use crate::tracking::{count_join, Meter};

/// Why a Sixpack request fails.
#[derive(Debug, thiserror::Error)]
pub enum SixpackError {
    /// The request breaks one of Sixpack's rules: its message (400).
    #[error("{0}")]
    Invalid(String),
    /// Nothing of that name: Sixpack's message (404).
    #[error("{0}")]
    NotFound(&'static str),
    /// The store failed: 503 when a retry may work, 500 when not (the
    /// client shows its control either way).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: &str) -> SixpackError {
    SixpackError::Invalid(message.to_owned())
}

/// A `/participate` request, as sent (its names not checked yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipateRequest {
    /// The experiment.
    pub experiment: String,
    /// The client.
    pub client_id: String,
    /// The alternatives, in the client's order (the first is the control).
    pub alternatives: Vec<String>,
    /// An alternative to show whatever was chosen (Sixpack's `force`);
    /// ignored unless it is one of the alternatives.
    pub force: Option<String>,
    /// Count the forced alternative too (`record_force`).
    pub record_force: bool,
    /// Answer the choice without remembering or counting it (`prefetch`).
    pub prefetch: bool,
    /// The share of clients that take part, as sent (`traffic_fraction`;
    /// all of them without one).
    pub traffic_fraction: Option<String>,
    /// The visitor is a bot (the caller's bot rules said so).
    pub bot: bool,
    /// When the request arrived, in Unix ms: the creation time of an
    /// experiment it registers.
    pub now_ms: i64,
}

impl ParticipateRequest {
    /// A plain participation: no force, no prefetch, every client, no bot.
    pub fn new(experiment: &str, client_id: &str, alternatives: &[&str]) -> Self {
        ParticipateRequest {
            experiment: experiment.to_owned(),
            client_id: client_id.to_owned(),
            alternatives: alternatives.iter().map(|&a| a.to_owned()).collect(),
            force: None,
            record_force: false,
            prefetch: false,
            traffic_fraction: None,
            bot: false,
            now_ms: 0,
        }
    }
}

/// What a participation did.
#[derive(Debug)]
pub struct Participated {
    /// Sixpack's answer.
    pub answer: Participation,
    /// Why nothing was counted when the bot rule or tracking decided it
    /// (not when the experiment's status did): what the server lists as
    /// ignored for the experiment.
    pub ignored: Option<Ignored>,
}

/// A `/convert` request, as sent (its names not checked yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertRequest {
    /// The experiment.
    pub experiment: String,
    /// The client.
    pub client_id: String,
    /// The KPI; the default goal without one.
    pub kpi: Option<String>,
}

/// What a conversion did.
#[derive(Debug)]
pub struct Converted {
    /// Sixpack's answer.
    pub answer: Conversion,
    /// Why tracking did not count it: what the server lists as ignored.
    pub ignored: Option<Ignored>,
}

/// Checks the experiment's name and the client's.
fn check_experiment_and_client(experiment: &str, client_id: &str) -> Result<(), SixpackError> {
    if !valid_name(NameKind::Experiment, experiment) {
        return Err(invalid(NameKind::Experiment.message()));
    }
    check_field("client_id", client_id, MAX_NAME_BYTES)
        .map_err(|err| SixpackError::Invalid(err.to_string()))
}

/// Checks the alternatives: two to the configured most, each a valid name,
/// all different.
fn check_alternatives(config: &SixpackConfig, alternatives: &[String]) -> Result<(), SixpackError> {
    if alternatives.len() < 2 {
        return Err(invalid("experiments require at least two alternatives"));
    }
    if alternatives.len() > config.max_alternatives {
        return Err(SixpackError::Invalid(format!(
            "experiments allow at most {} alternatives",
            config.max_alternatives
        )));
    }
    if !alternatives
        .iter()
        .all(|a| valid_name(NameKind::Alternative, a))
    {
        return Err(invalid(NameKind::Alternative.message()));
    }
    if (1..alternatives.len()).any(|i| alternatives[..i].contains(&alternatives[i])) {
        return Err(invalid("experiment alternatives must be different"));
    }
    Ok(())
}

/// The winner of a stopped experiment.
fn winner(record: Option<&ExperimentRecord>) -> Option<&str> {
    record
        .filter(|r| r.status == Status::Stopped)
        .and_then(|r| r.decision.as_ref())
        .and_then(|d| d.winner.as_deref())
}

/// The alternative a client gets when nothing is recorded for it: the
/// winner of a stopped experiment, else the control.
fn winner_or_control<'a>(
    record: Option<&'a ExperimentRecord>,
    alternatives: &'a [String],
) -> &'a str {
    winner(record)
        .or_else(|| record.and_then(|r| r.control.as_deref()))
        .unwrap_or(&alternatives[0])
}

/// Chooses (and remembers) a client's alternative.
///
/// - A bot gets the winner or the control, and nothing is counted.
/// - A registered experiment must list the same alternatives.
/// - A forced alternative is shown, and counted only with `record_force`.
/// - An experiment that does not count (paused, stopped, archived) shows
///   its winner or control, its status as the reason.
/// - A client keeps what it was given (the control when the traffic
///   fraction left it out); a new client outside the fraction is
///   remembered as left out, unless prefetching.
/// - Otherwise Sixpack's choice is counted, remembered, and for a new
///   experiment its alternatives registered (control first).
///
/// # Errors
///
/// A rule broken ([`SixpackError::Invalid`], Sixpack's message) or the
/// store failing.
pub async fn participate(
    store: &dyn Store,
    meter: &dyn Meter,
    config: &SixpackConfig,
    request: ParticipateRequest,
) -> Result<Participated, SixpackError> {
    let ParticipateRequest {
        experiment,
        client_id,
        alternatives,
        force,
        record_force,
        prefetch,
        traffic_fraction,
        bot,
        now_ms,
    } = request;
    check_experiment_and_client(&experiment, &client_id)?;
    check_alternatives(config, &alternatives)?;
    let fraction = traffic_fraction
        .as_deref()
        .map(sixpack::parse_traffic_fraction)
        .transpose()
        .map_err(invalid)?
        .unwrap_or(1.0);

    let namespace = &config.namespace;
    let record = store.record(namespace, &experiment).await?;
    let reply = |alternative: &str, ignored: Option<&'static str>| Participation {
        status: "ok",
        alternative: Named {
            name: alternative.to_owned(),
        },
        experiment: Named {
            name: experiment.clone(),
        },
        client_id: client_id.clone(),
        ignored,
    };
    let shown = |answer: Participation| Participated {
        answer,
        ignored: None,
    };
    if bot {
        let why = Ignored::Bot;
        return Ok(Participated {
            answer: reply(
                winner_or_control(record.as_ref(), &alternatives),
                Some(why.reason()),
            ),
            ignored: Some(why),
        });
    }
    if let Some(record) = record.as_ref().filter(|r| !r.automatic) {
        let mut registered: Vec<&str> = record.variants.iter().map(|v| v.name.as_str()).collect();
        let mut given: Vec<&str> = alternatives.iter().map(String::as_str).collect();
        registered.sort_unstable();
        given.sort_unstable();
        if registered != given {
            return Err(invalid(
                "experiment alternatives have changed. please delete in the admin",
            ));
        }
    }
    let participant = Participant {
        store,
        meter,
        namespace,
        experiment: &experiment,
        client_id: &client_id,
        alternatives: &alternatives,
        defined: record.as_ref().is_some_and(|r| !r.automatic),
        now_ms,
    };

    if let Some(forced) = force.filter(|f| alternatives.contains(f)) {
        // Sixpack records a forced alternative only when asked to.
        let ignored = match record_force {
            true => participant.count(&forced).await?.err(),
            false => None,
        };
        return Ok(Participated {
            answer: reply(&forced, ignored.as_ref().map(Ignored::reason)),
            ignored,
        });
    }
    if let Some(record) = record.as_ref().filter(|r| !r.counts()) {
        let control = winner_or_control(Some(record), &alternatives);
        return Ok(shown(reply(control, Some(record.status.as_str()))));
    }
    let control = winner_or_control(record.as_ref(), &alternatives);
    let chosen = choose(&experiment, &client_id, &alternatives);
    // Left out by the fraction: a pure function of the client, so nothing
    // needs remembering (and anonymous traffic writes nothing).
    let included = in_traffic(&experiment, &client_id, fraction);
    // What the client holds comes first. A join answers it itself (one
    // store operation); a client that will not join reads it.
    if prefetch || !included {
        return Ok(shown(match participant.held().await? {
            Some(held) if held == EXCLUDED => reply(control, None),
            Some(held) => reply(&held, None),
            None if included => reply(chosen, None),
            None => reply(control, None),
        }));
    }
    Ok(match participant.count(chosen).await? {
        Ok(held) if held == EXCLUDED => shown(reply(control, None)),
        Ok(held) => shown(reply(&held, None)),
        Err(why) => Participated {
            answer: reply(control, Some(why.reason())),
            ignored: Some(why),
        },
    })
}

/// A client joining an experiment.
struct Participant<'a> {
    store: &'a dyn Store,
    meter: &'a dyn Meter,
    namespace: &'a str,
    experiment: &'a str,
    client_id: &'a str,
    alternatives: &'a [String],
    /// The experiment's record already lists the alternatives.
    defined: bool,
    /// When the request arrived.
    now_ms: i64,
}

impl Participant<'_> {
    /// What the client joined with, if it did.
    async fn held(&self) -> Result<Option<String>, StoreError> {
        let member = participant_member(self.client_id);
        self.store
            .membership(self.namespace, self.experiment, &member)
            .await
    }

    /// Counts the participation and remembers the client in one store
    /// operation, with, for a new experiment, its alternatives registered
    /// (control first): all of it or nothing, so a retry after a failure
    /// counts once.
    ///
    /// Answers the alternative remembered, or why tracking ignored it.
    async fn count(&self, alternative: &str) -> Result<Result<String, Ignored>, SixpackError> {
        let definition = match self.defined {
            true => None,
            false => Some(
                ExperimentRecord::register(
                    None,
                    self.namespace,
                    self.experiment,
                    sixpack::definition(self.alternatives, String::new(), Vec::new()),
                    self.now_ms,
                )
                .map_err(|err| SixpackError::Invalid(err.to_string()))?,
            ),
        };
        let join = Join {
            event: Event {
                segment: Default::default(),
                namespace: self.namespace.to_owned(),
                experiment: self.experiment.to_owned(),
                variant: alternative.to_owned(),
                event: PARTICIPATE.to_owned(),
                uuid: participation_uuid(self.experiment, self.client_id),
                value: None,
            },
            member: participant_member(self.client_id),
            participant: None,
            definition,
        };
        Ok(
            match count_join(self.store, self.meter, join).await?.joined {
                Joined::Counted | Joined::Duplicate | Joined::NotParticipating => {
                    Ok(alternative.to_owned())
                }
                Joined::Held(held) => Ok(held),
                Joined::Ignored(why) => Err(why),
            },
        )
    }
}

/// Counts a client's conversion once per KPI, on the alternative it
/// participates in. The experiment must exist and be running, and the
/// client must participate (not be left out by the traffic fraction).
///
/// # Errors
///
/// A rule broken ([`SixpackError::Invalid`], Sixpack's message) or the
/// store failing.
pub async fn convert(
    store: &dyn Store,
    meter: &dyn Meter,
    config: &SixpackConfig,
    request: ConvertRequest,
) -> Result<Converted, SixpackError> {
    let ConvertRequest {
        experiment,
        client_id,
        kpi,
    } = request;
    check_experiment_and_client(&experiment, &client_id)?;
    let namespace = &config.namespace;
    let Some(record) = store.record(namespace, &experiment).await? else {
        return Err(invalid("experiment does not exist"));
    };
    match record.status {
        Status::Running => {}
        Status::Archived => {
            return Err(invalid(
                "this experiment is archived and can no longer be updated",
            ))
        }
        Status::Paused => {
            return Err(invalid(
                "this experiment is paused and can not receive updates.",
            ))
        }
        Status::Stopped => {
            return Err(invalid(
                "this experiment is stopped and can no longer be updated",
            ))
        }
    }
    if kpi
        .as_deref()
        .is_some_and(|kpi| !valid_name(NameKind::Kpi, kpi))
    {
        return Err(invalid(NameKind::Kpi.message()));
    }
    let goal = kpi.as_deref().unwrap_or(DEFAULT_GOAL);
    let join = Join {
        event: Event {
            segment: Default::default(),
            namespace: namespace.clone(),
            experiment: experiment.clone(),
            // The store counts on the participant's alternative.
            variant: String::new(),
            event: goal.to_owned(),
            value: None,
            uuid: conversion_uuid(&experiment, goal, &client_id),
        },
        member: conversion_member(&client_id, goal),
        participant: Some(participant_member(&client_id)),
        definition: None,
    };
    let JoinAnswer {
        joined,
        variant: alternative,
    } = count_join(store, meter, join).await?;
    let ignored = match joined {
        // Never joined, or left out by the traffic fraction (as Sixpack
        // remembered it: an empty alternative).
        Joined::NotParticipating => return Err(invalid("this client was not participating")),
        Joined::Counted | Joined::Duplicate | Joined::Held(_) => None,
        Joined::Ignored(why) => Some(why),
    };
    Ok(Converted {
        answer: Conversion {
            status: "ok",
            alternative: Named { name: alternative },
            experiment: Named { name: experiment },
            conversion: ConversionValue { value: None, kpi },
            client_id,
            ignored: ignored.as_ref().map(Ignored::reason),
        },
        ignored,
    })
}

/// One experiment of the Sixpack namespace in Sixpack's shape: what
/// Sixpack's web dashboard reads.
///
/// # Errors
///
/// [`SixpackError::NotFound`] without a record, or the store failing.
pub async fn details(
    store: &dyn Store,
    config: &SixpackConfig,
    name: String,
) -> Result<ExperimentDetails, SixpackError> {
    let namespace = &config.namespace;
    let Some(record) = store.record(namespace, &name).await? else {
        return Err(SixpackError::NotFound("experiment not found"));
    };
    let counters = store.experiment_counters(namespace, &name).await?;
    let total = |event: &str| -> u64 {
        counters
            .iter()
            .filter(|c| c.event == event)
            .map(|c| c.count)
            .sum()
    };
    Ok(ExperimentDetails {
        status: "ok",
        alternatives: record.variants.iter().map(|v| v.name.clone()).collect(),
        created_at: sixpack::created_at(record.created_ms),
        traffic_fraction: None,
        excluded_clients: None,
        total_participants: total(PARTICIPATE),
        total_conversions: total(DEFAULT_GOAL),
        description: Some(record.description.clone()).filter(|d| !d.is_empty()),
        winner: winner(Some(&record)).unwrap_or_default().to_owned(),
        is_archived: record.status == Status::Archived,
        is_paused: record.status == Status::Paused,
        name,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::registry::{self, Patch};
    use crate::tracking::Unmetered;
    use lamed_core::clock::Clock;
    use lamed_core::model::{Caps, TrackOutcome};
    use lamed_store::reference::ReferenceStore;

    const ALTERNATIVES: [&str; 2] = ["red", "blue"];

    fn store() -> ReferenceStore {
        ReferenceStore::new(0, Caps::default(), Clock::manual(0))
    }

    /// What counting told the meter.
    #[derive(Default)]
    struct Heard(Mutex<Vec<TrackOutcome>>);

    impl Meter for Heard {
        fn tracked(&self, _: Duration, outcomes: &[TrackOutcome]) {
            self.0.lock().unwrap().extend_from_slice(outcomes);
        }
        fn failed(&self, err: &StoreError) {
            panic!("counting failed: {err}");
        }
    }

    /// The count of one event on one alternative of experiment `e`.
    async fn count(store: &ReferenceStore, event: &str, alternative: &str) -> u64 {
        store
            .counters(&SixpackConfig::default().namespace)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.experiment == "e" && c.event == event && c.variant == alternative)
            .map(|c| c.count)
            .sum()
    }

    async fn join(store: &ReferenceStore, request: ParticipateRequest) -> Participated {
        participate(store, &Unmetered, &SixpackConfig::default(), request)
            .await
            .unwrap()
    }

    async fn convert_kpi(
        store: &ReferenceStore,
        client: &str,
        kpi: Option<&str>,
    ) -> Result<Converted, SixpackError> {
        let request = ConvertRequest {
            experiment: "e".into(),
            client_id: client.into(),
            kpi: kpi.map(str::to_owned),
        };
        convert(store, &Unmetered, &SixpackConfig::default(), request).await
    }

    fn message(result: Result<impl std::fmt::Debug, SixpackError>) -> String {
        match result {
            Err(SixpackError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The `n`th client left out (or let in) by a traffic fraction of one
    /// half.
    fn client(inside: bool, n: usize) -> String {
        (0..)
            .map(|i| format!("client-{i}"))
            .filter(|id| in_traffic("e", id, 0.5) == inside)
            .nth(n)
            .unwrap()
    }

    /// A client keeps Sixpack's choice; its participation and each KPI's
    /// conversion are counted once however often they are sent; the new
    /// experiment is registered with the alternatives, control first.
    #[tokio::test]
    async fn a_participation_then_conversions_count_once() {
        let store = store();
        let heard = Heard::default();
        let config = SixpackConfig::default();
        let alternatives: Vec<String> = ALTERNATIVES.map(str::to_owned).to_vec();
        let chosen = choose("e", "c1", &alternatives).to_owned();
        for _ in 0..2 {
            let request = ParticipateRequest::new("e", "c1", &ALTERNATIVES);
            let done = participate(&store, &heard, &config, request).await.unwrap();
            assert_eq!(done.answer.alternative.name, chosen);
            assert_eq!((done.answer.ignored, done.ignored), (None, None));
        }
        for kpi in [None, None, Some("buy"), Some("buy")] {
            let request = ConvertRequest {
                experiment: "e".into(),
                client_id: "c1".into(),
                kpi: kpi.map(str::to_owned),
            };
            let done = convert(&store, &heard, &config, request).await.unwrap();
            assert_eq!(done.answer.alternative.name, chosen);
            assert_eq!(done.answer.conversion.kpi.as_deref(), kpi);
            assert!(done.ignored.is_none());
        }
        assert_eq!(count(&store, PARTICIPATE, &chosen).await, 1);
        assert_eq!(count(&store, DEFAULT_GOAL, &chosen).await, 1);
        assert_eq!(count(&store, "buy", &chosen).await, 1);
        // Counted once each: the participation and two KPIs.
        assert_eq!(
            *heard.0.lock().unwrap(),
            vec![TrackOutcome::Counted; 3],
            "repeats never reach the store"
        );
        let record = store.record(&config.namespace, "e").await.unwrap().unwrap();
        assert!(!record.automatic);
        assert_eq!(record.control.as_deref(), Some("red"));
        let names: Vec<&str> = record.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ALTERNATIVES);

        let details = details(&store, &config, "e".into()).await.unwrap();
        assert_eq!(
            (details.total_participants, details.total_conversions),
            (1, 1)
        );
        assert_eq!(details.alternatives, ALTERNATIVES);
        assert!(matches!(
            super::details(&store, &config, "nothing".into()).await,
            Err(SixpackError::NotFound("experiment not found"))
        ));
    }

    /// A client the traffic fraction leaves out sees the control, counts
    /// nothing, is remembered nowhere (the fraction decides again, the
    /// same way) and cannot convert; a prefetch leaves nothing remembered.
    #[tokio::test]
    async fn a_client_outside_the_traffic_fraction_is_left_out() {
        let store = store();
        let namespace = SixpackConfig::default().namespace;
        let (out, prefetched) = (client(false, 0), client(false, 1));
        let with_half = |id: &str| {
            let mut request = ParticipateRequest::new("e", id, &ALTERNATIVES);
            request.traffic_fraction = Some("0.5".into());
            request
        };
        let mut request = with_half(&prefetched);
        request.prefetch = true;
        let done = join(&store, request).await;
        assert_eq!(done.answer.alternative.name, "red");
        let member = participant_member(&prefetched);
        let held = store.membership(&namespace, "e", &member).await;
        assert_eq!(held.unwrap(), None);

        for _ in 0..2 {
            let done = join(&store, with_half(&out)).await;
            assert_eq!(done.answer.alternative.name, "red");
            assert_eq!(done.answer.ignored, None);
        }
        let member = participant_member(&out);
        let held = store.membership(&namespace, "e", &member).await.unwrap();
        assert_eq!(held, None, "a left-out client takes no row");
        assert_eq!(count(&store, PARTICIPATE, "red").await, 0);
        // Nothing was counted, so there is no experiment to convert in.
        assert_eq!(
            message(convert_kpi(&store, &out, None).await),
            "experiment does not exist"
        );

        // A client inside the fraction takes part.
        let inside = client(true, 0);
        let done = join(&store, with_half(&inside)).await;
        let shown = done.answer.alternative.name;
        assert_eq!(count(&store, PARTICIPATE, &shown).await, 1);
        assert!(convert_kpi(&store, &inside, None).await.is_ok());
        // The client left out still cannot convert.
        assert_eq!(
            message(convert_kpi(&store, &out, None).await),
            "this client was not participating"
        );
    }

    /// A bot sees the control, counts nothing and is remembered nowhere;
    /// the reason is the bot rule's.
    #[tokio::test]
    async fn a_bot_counts_nothing() {
        let store = store();
        let mut request = ParticipateRequest::new("e", "crawler", &ALTERNATIVES);
        request.bot = true;
        let done = join(&store, request).await;
        assert_eq!(done.answer.alternative.name, "red");
        assert_eq!(done.answer.ignored, Some("bot"));
        assert_eq!(done.ignored, Some(Ignored::Bot));
        assert!(store.counters("sixpack").await.unwrap().is_empty());
        assert!(store.record("sixpack", "e").await.unwrap().is_none());
    }

    /// A forced alternative is shown, and counted only with
    /// `record_force`.
    #[tokio::test]
    async fn a_forced_alternative_counts_only_when_asked() {
        let store = store();
        let mut request = ParticipateRequest::new("e", "c", &ALTERNATIVES);
        request.force = Some("blue".into());
        let done = join(&store, request.clone()).await;
        assert_eq!(done.answer.alternative.name, "blue");
        assert_eq!(count(&store, PARTICIPATE, "blue").await, 0);
        request.record_force = true;
        join(&store, request).await;
        assert_eq!(count(&store, PARTICIPATE, "blue").await, 1);
        let member = participant_member("c");
        let held = store.membership("sixpack", "e", &member).await.unwrap();
        assert_eq!(held.as_deref(), Some("blue"));
    }

    /// A stopped experiment shows its winner to everyone, counts nothing
    /// and refuses conversions.
    #[tokio::test]
    async fn a_stopped_experiment_shows_its_winner() {
        let store = store();
        let definition =
            sixpack::definition(&ALTERNATIVES.map(str::to_owned), String::new(), Vec::new());
        registry::put(&store, "sixpack", "e", definition, 0)
            .await
            .unwrap();
        join(&store, ParticipateRequest::new("e", "early", &ALTERNATIVES)).await;
        let patch = Patch {
            winner: Some("blue".into()),
            ..Patch::status(Status::Stopped)
        };
        registry::change(&store, "sixpack", "e", patch, 1)
            .await
            .unwrap();
        let before = store.counters("sixpack").await.unwrap();
        let done = join(&store, ParticipateRequest::new("e", "late", &ALTERNATIVES)).await;
        assert_eq!(done.answer.alternative.name, "blue");
        assert_eq!(done.answer.ignored, Some("stopped"));
        assert_eq!(done.ignored, None, "the status, not tracking, said no");
        assert_eq!(store.counters("sixpack").await.unwrap(), before);
        assert_eq!(
            message(convert_kpi(&store, "early", None).await),
            "this experiment is stopped and can no longer be updated"
        );
        let details = details(&store, &SixpackConfig::default(), "e".into())
            .await
            .unwrap();
        assert_eq!(details.winner, "blue");
    }

    /// Each broken rule is refused with Sixpack's message, before anything
    /// is counted.
    #[tokio::test]
    async fn broken_rules_are_refused_with_sixpacks_messages() {
        let store = store();
        let config = SixpackConfig {
            max_alternatives: 3,
            ..SixpackConfig::default()
        };
        let refused = |request: ParticipateRequest| {
            let (store, config) = (&store, &config);
            async move { message(participate(store, &Unmetered, config, request).await) }
        };
        let with = |alternatives: &[&str]| ParticipateRequest::new("e", "c", alternatives);
        assert_eq!(
            refused(with(&["red"])).await,
            "experiments require at least two alternatives"
        );
        assert_eq!(
            refused(with(&["a", "b", "c", "d"])).await,
            "experiments allow at most 3 alternatives"
        );
        assert_eq!(
            refused(with(&["red", "bl ue"])).await,
            "invalid alternative name"
        );
        assert_eq!(
            refused(with(&["red", "red"])).await,
            "experiment alternatives must be different"
        );
        assert_eq!(
            refused(ParticipateRequest::new("-e", "c", &ALTERNATIVES)).await,
            "invalid experiment name"
        );
        let mut request = with(&ALTERNATIVES);
        request.traffic_fraction = Some("1.5".into());
        assert_eq!(refused(request).await, "invalid traffic fraction range");
        assert!(store.counters("sixpack").await.unwrap().is_empty());

        assert_eq!(
            message(convert_kpi(&store, "c", None).await),
            "experiment does not exist"
        );
        join(&store, with(&ALTERNATIVES)).await;
        assert_eq!(
            refused(with(&["red", "green"])).await,
            "experiment alternatives have changed. please delete in the admin"
        );
        assert_eq!(
            message(convert_kpi(&store, "c", Some("b(uy)")).await),
            "invalid kpi name"
        );
        assert_eq!(
            message(convert_kpi(&store, "stranger", None).await),
            "this client was not participating"
        );
        // A paused experiment takes no conversion.
        registry::change(&store, "sixpack", "e", Patch::status(Status::Paused), 1)
            .await
            .unwrap();
        assert_eq!(
            message(convert_kpi(&store, "c", None).await),
            "this experiment is paused and can not receive updates."
        );
    }
}
