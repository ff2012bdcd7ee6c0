//! Sixpack's HTTP API: `GET /participate`, `GET /convert`, `GET /_status`,
//! answered in Sixpack's JSON (or JSONP) so its client libraries work
//! unchanged. A Sixpack experiment is a Lamed experiment in the
//! `sixpack_namespace`: a participation is counted as a `participate`
//! event, a conversion as a goal (its KPI), and both are remembered per
//! client for as long as the experiment lives (the store's memberships).

use std::net::IpAddr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::track::store_events;
use crate::error::ApiError;
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_core::bots::Visitor;
use lamed_core::model::{check_field, Event, Ignored, InvalidField, TrackOutcome, PARTICIPATE};
use lamed_core::registry::{ExperimentRecord, Status};
use lamed_core::sixpack::{
    self, choose, conversion_member, conversion_uuid, in_traffic, participation_uuid, valid_name,
    Conversion, ConversionValue, ExperimentDetails, NameKind, Named, Participation, DEFAULT_GOAL,
    EXCLUDED,
};
use lamed_store::{StoreError, StoreExt};

/// Why a Sixpack request fails, answered in Sixpack's error shape.
#[derive(Debug)]
enum Failure {
    /// 400 with Sixpack's message.
    BadRequest(String),
    /// 404 with Sixpack's message.
    NotFound(&'static str),
    /// 503: the store cannot answer now (the client answers its control).
    Unavailable(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Unavailable(err)
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Unavailable(cause) => Failure::Unavailable(cause),
            other => Failure::BadRequest(other.to_string()),
        }
    }
}

impl From<InvalidField> for Failure {
    fn from(err: InvalidField) -> Self {
        Failure::BadRequest(err.to_string())
    }
}

fn bad(message: &str) -> Failure {
    Failure::BadRequest(message.to_owned())
}

/// Choose (and remember) a client's alternative; Sixpack's
/// `{"status": "ok", "alternative": {"name"}, "experiment": {"name"},
/// "client_id"}`, with `"ignored": "<reason>"` added when the answer
/// recorded nothing because of a bot, the experiment's status or a cap.
pub async fn participate(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    answer(query.as_deref(), |params| participate_with(&state, params)).await
}

/// Count a client's conversion once per KPI; Sixpack's answer with
/// `"conversion": {"value": null, "kpi"}`.
pub async fn convert(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    answer(query.as_deref(), |params| convert_with(&state, params)).await
}

/// Sixpack's health answer, `{"status": "ok", "version"}`; 503 when the
/// store takes no writes (from the same check as `/health`).
pub async fn status(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    answer(query.as_deref(), |_| async {
        if state.health.healthy(&*state.store, &state.metrics).await {
            Ok(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
        } else {
            Err(Failure::Unavailable(StoreError::unavailable(
                "the store takes no writes",
            )))
        }
    })
    .await
}

/// One experiment of the Sixpack namespace in Sixpack's shape (API key):
/// what Sixpack's web dashboard reads.
pub async fn experiment(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    answer(query.as_deref(), |_| async move {
        let Path(name) = name.map_err(|rejection| Failure::BadRequest(rejection.body_text()))?;
        let namespace = &state.sixpack.namespace;
        let Some(record) = state.store.record(namespace, &name).await? else {
            return Err(Failure::NotFound("experiment not found"));
        };
        let counters = state.store.counters(namespace).await?;
        let total = |event: &str| -> u64 {
            counters
                .iter()
                .filter(|c| c.experiment == name && c.event == event)
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
    })
    .await
}

/// Runs `serve` on the parsed query and writes its answer or failure as
/// JSON, or as JSONP when `callback` follows Sixpack's pattern (also for
/// errors, as Sixpack does: a `<script>` tag cannot read a status).
async fn answer<F, Fut, T>(query: Option<&str>, serve: F) -> Response
where
    F: FnOnce(QueryParams) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
    T: Serialize,
{
    let params = match QueryParams::parse(query) {
        Ok(params) => params,
        Err(err) => return respond(None, StatusCode::BAD_REQUEST, &failed(&err.to_string())),
    };
    let callback = params
        .optional("callback")
        .ok()
        .flatten()
        .filter(|cb| sixpack::valid_callback(cb))
        .map(str::to_owned);
    match serve(params).await {
        Ok(body) => respond(callback.as_deref(), StatusCode::OK, &body),
        Err(Failure::BadRequest(message)) => respond(
            callback.as_deref(),
            StatusCode::BAD_REQUEST,
            &failed(&message),
        ),
        Err(Failure::NotFound(message)) => {
            respond(callback.as_deref(), StatusCode::NOT_FOUND, &failed(message))
        }
        Err(Failure::Unavailable(cause)) => {
            tracing::error!(cause = cause.chain(), "sixpack: answering 503");
            let mut response = respond(
                callback.as_deref(),
                StatusCode::SERVICE_UNAVAILABLE,
                &failed("redis is not available"),
            );
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
    }
}

/// Sixpack's error body.
fn failed(message: &str) -> serde_json::Value {
    json!({"status": "failed", "message": message})
}

/// The body as JSON, or wrapped as `callback(...)` with
/// `application/javascript`.
fn respond(callback: Option<&str>, status: StatusCode, body: &impl Serialize) -> Response {
    // Serializing our own structs and json! values cannot fail.
    let json = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    match callback {
        Some(callback) => (
            status,
            [(header::CONTENT_TYPE, "application/javascript")],
            format!("{callback}({json})"),
        )
            .into_response(),
        None => (status, [(header::CONTENT_TYPE, "application/json")], json).into_response(),
    }
}

/// A parameter Sixpack requires: absent is its `missing arguments`.
fn required<'a>(params: &'a QueryParams, name: &'static str) -> Result<&'a str, Failure> {
    params
        .optional(name)?
        .ok_or_else(|| bad("missing arguments"))
}

/// The experiment and client of a request, checked.
fn experiment_and_client(params: &QueryParams) -> Result<(String, String), Failure> {
    let experiment = required(params, "experiment")?;
    let client_id = required(params, "client_id")?;
    if !valid_name(NameKind::Experiment, experiment) {
        return Err(bad(NameKind::Experiment.message()));
    }
    check_field("client_id", client_id, lamed_core::model::MAX_NAME_BYTES)?;
    Ok((experiment.to_owned(), client_id.to_owned()))
}

/// Sixpack's bot rule: `user_agent` and `ip_address` are the visitor's,
/// forwarded by the client; without `user_agent` only the address is
/// checked (Sixpack excludes no one for a missing user agent, but does for
/// an empty one).
fn is_bot(state: &AppState, params: &QueryParams) -> Result<bool, Failure> {
    let ip: Option<IpAddr> = params
        .optional("ip_address")?
        .and_then(|ip| ip.trim().parse().ok());
    let found = match params.optional("user_agent")? {
        Some(user_agent) => state
            .bots
            .check(&Visitor {
                user_agent: Some(user_agent.to_owned()),
                client_ip: ip,
            })
            .is_some(),
        None => ip.and_then(|ip| state.bots.check_address(ip)).is_some(),
    };
    if found {
        state.metrics.ignore(&Ignored::Bot);
    }
    Ok(found)
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

async fn participate_with(state: &AppState, params: QueryParams) -> Result<Participation, Failure> {
    let (experiment, client_id) = experiment_and_client(&params)?;
    let alternatives: Vec<String> = params
        .all("alternatives")?
        .into_iter()
        .map(str::to_owned)
        .collect();
    if alternatives.len() < 2 {
        return Err(bad("experiments require at least two alternatives"));
    }
    if alternatives.len() > state.sixpack.max_alternatives {
        return Err(Failure::BadRequest(format!(
            "experiments allow at most {} alternatives",
            state.sixpack.max_alternatives
        )));
    }
    if !alternatives
        .iter()
        .all(|a| valid_name(NameKind::Alternative, a))
    {
        return Err(bad(NameKind::Alternative.message()));
    }
    if (1..alternatives.len()).any(|i| alternatives[..i].contains(&alternatives[i])) {
        return Err(bad("experiment alternatives must be different"));
    }
    let force = params.optional("force")?.map(str::to_owned);
    let record_force = params
        .optional("record_force")?
        .is_some_and(sixpack::to_bool);
    let prefetch = params.optional("prefetch")?.is_some_and(sixpack::to_bool);
    let fraction = params
        .optional("traffic_fraction")?
        .map(sixpack::parse_traffic_fraction)
        .transpose()
        .map_err(bad)?
        .unwrap_or(1.0);
    let bot = is_bot(state, &params)?;

    let namespace = &state.sixpack.namespace;
    let record = state.store.record(namespace, &experiment).await?;
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
    if bot {
        state.ignored.note(namespace, &experiment, &Ignored::Bot);
        return Ok(reply(
            winner_or_control(record.as_ref(), &alternatives),
            Some(Ignored::Bot.reason()),
        ));
    }
    if let Some(record) = record.as_ref().filter(|r| !r.automatic) {
        let mut registered: Vec<&str> = record.variants.iter().map(|v| v.name.as_str()).collect();
        let mut given: Vec<&str> = alternatives.iter().map(String::as_str).collect();
        registered.sort_unstable();
        given.sort_unstable();
        if registered != given {
            return Err(bad(
                "experiment alternatives have changed. please delete in the admin",
            ));
        }
    }
    let defined = record.as_ref().is_some_and(|r| !r.automatic);
    let participation = Participant {
        state,
        experiment: &experiment,
        client_id: &client_id,
        alternatives: &alternatives,
        defined,
    };

    if let Some(forced) = force.filter(|f| alternatives.contains(f)) {
        // Sixpack records a forced alternative only when asked to.
        let ignored = match record_force {
            true => participation.count(&forced).await?.err(),
            false => None,
        };
        return Ok(reply(&forced, ignored.map(|why| why.reason())));
    }
    if let Some(record) = record.as_ref().filter(|r| !r.counts()) {
        let shown = winner_or_control(Some(record), &alternatives);
        return Ok(reply(shown, Some(record.status.as_str())));
    }
    let control = winner_or_control(record.as_ref(), &alternatives);
    match state
        .store
        .membership(namespace, &experiment, &client_id)
        .await?
    {
        Some(held) if held == EXCLUDED => return Ok(reply(control, None)),
        Some(held) => return Ok(reply(&held, None)),
        None => {}
    }
    if !in_traffic(&experiment, &client_id, fraction) {
        if !prefetch {
            state
                .store
                .join(namespace, &experiment, &client_id, EXCLUDED)
                .await?;
        }
        return Ok(reply(control, None));
    }
    let chosen = choose(&experiment, &client_id, &alternatives);
    if prefetch {
        return Ok(reply(chosen, None));
    }
    Ok(match participation.count(chosen).await? {
        Ok(held) if held == EXCLUDED => reply(control, None),
        Ok(held) => reply(&held, None),
        Err(why) => reply(control, Some(why.reason())),
    })
}

/// A client joining an experiment.
struct Participant<'a> {
    state: &'a AppState,
    experiment: &'a str,
    client_id: &'a str,
    alternatives: &'a [String],
    /// The experiment's record already lists the alternatives.
    defined: bool,
}

impl Participant<'_> {
    /// Counts the participation (once: its uuid is the client's), then
    /// remembers the client, then, for a new experiment, registers its
    /// alternatives (control first) over the record tracking created.
    /// Counting first means a failure after it leaves nothing remembered,
    /// so the client's retry counts again and the dedupe absorbs it.
    ///
    /// Answers the alternative remembered, or why tracking ignored it.
    async fn count(&self, alternative: &str) -> Result<Result<String, Ignored>, Failure> {
        let namespace = &self.state.sixpack.namespace;
        let event = Event {
            namespace: namespace.clone(),
            experiment: self.experiment.to_owned(),
            variant: alternative.to_owned(),
            event: PARTICIPATE.to_owned(),
            uuid: participation_uuid(self.experiment, self.client_id),
            value: None,
        };
        if let Some(TrackOutcome::Ignored(why)) = store_events(self.state, vec![event]).await?.pop()
        {
            self.state.ignored.note(namespace, self.experiment, &why);
            return Ok(Err(why));
        }
        let held = self
            .state
            .store
            .join(namespace, self.experiment, self.client_id, alternative)
            .await?;
        if !self.defined {
            self.define().await?;
        }
        Ok(Ok(held))
    }

    /// Registers the alternatives on the record tracking created (keeping
    /// its status), unless someone defined it meanwhile.
    async fn define(&self) -> Result<(), Failure> {
        let namespace = &self.state.sixpack.namespace;
        let store = &self.state.store;
        let Some(record) = store.record(namespace, self.experiment).await? else {
            return Ok(());
        };
        if !record.automatic {
            return Ok(());
        }
        let definition = sixpack::definition(
            self.alternatives,
            record.description.clone(),
            record.goals.clone(),
        );
        let created_ms = record.created_ms;
        let record = ExperimentRecord::register(
            Some(record),
            namespace,
            self.experiment,
            definition,
            created_ms,
        )
        .map_err(|err| Failure::BadRequest(err.to_string()))?;
        store.put_record(record).await?;
        Ok(())
    }
}

async fn convert_with(state: &AppState, params: QueryParams) -> Result<ConvertAnswer, Failure> {
    if is_bot(state, &params)? {
        return Ok(ConvertAnswer::Excluded(
            json!({"status": "ok", "excluded": "true"}),
        ));
    }
    let (experiment, client_id) = experiment_and_client(&params)?;
    let kpi = params.optional("kpi")?;
    let namespace = &state.sixpack.namespace;
    let Some(record) = state.store.record(namespace, &experiment).await? else {
        return Err(bad("experiment does not exist"));
    };
    match record.status {
        Status::Running => {}
        Status::Archived => {
            return Err(bad(
                "this experiment is archived and can no longer be updated",
            ))
        }
        Status::Paused => {
            return Err(bad(
                "this experiment is paused and can not receive updates.",
            ))
        }
        Status::Stopped => {
            return Err(bad(
                "this experiment is stopped and can no longer be updated",
            ))
        }
    }
    let alternative = match state
        .store
        .membership(namespace, &experiment, &client_id)
        .await?
    {
        Some(held) if held != EXCLUDED => held,
        _ => return Err(bad("this client was not participating")),
    };
    if kpi.is_some_and(|kpi| !valid_name(NameKind::Kpi, kpi)) {
        return Err(bad(NameKind::Kpi.message()));
    }
    let goal = kpi.unwrap_or(DEFAULT_GOAL);
    let member = conversion_member(&client_id, goal);
    let mut ignored = None;
    if state
        .store
        .membership(namespace, &experiment, &member)
        .await?
        .is_none()
    {
        let event = Event {
            namespace: namespace.clone(),
            experiment: experiment.clone(),
            variant: alternative.clone(),
            event: goal.to_owned(),
            value: None,
            uuid: conversion_uuid(&experiment, goal, &client_id),
        };
        match store_events(state, vec![event]).await?.pop() {
            Some(TrackOutcome::Ignored(why)) => {
                state.ignored.note(namespace, &experiment, &why);
                ignored = Some(why.reason());
            }
            _ => {
                state
                    .store
                    .join(namespace, &experiment, &member, &alternative)
                    .await?;
            }
        }
    }
    Ok(ConvertAnswer::Converted(Conversion {
        status: "ok",
        alternative: Named { name: alternative },
        experiment: Named { name: experiment },
        conversion: ConversionValue {
            value: None,
            kpi: kpi.map(str::to_owned),
        },
        client_id,
        ignored,
    }))
}

/// A conversion, or Sixpack's answer to a bot's.
#[derive(Serialize)]
#[serde(untagged)]
enum ConvertAnswer {
    Converted(Conversion),
    Excluded(serde_json::Value),
}
