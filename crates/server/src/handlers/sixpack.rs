//! Sixpack's HTTP API: `GET /participate`, `GET /convert`, `GET /_status`,
//! answered in Sixpack's JSON (or JSONP) so its client libraries work
//! unchanged. The handlers parse the query, apply the bot rules, call
//! [`lamed_service::sixpack`] (which decides and counts) and write its
//! answer or failure in Sixpack's shape.

use std::net::IpAddr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{ApiError, InternalError, INTERNAL_ERROR_MESSAGE};
use crate::params::QueryParams;
use crate::state::AppState;
use lamed_core::bots::Visitor;
use lamed_core::model::{Ignored, InvalidField};
use lamed_core::sixpack::{self, Conversion, Participation};
use lamed_service::sixpack::{
    self as service, ConvertRequest, Converted, ParticipateRequest, Participated, SixpackError,
};
use lamed_store::StoreError;

/// Why a Sixpack request fails, answered in Sixpack's error shape.
#[derive(Debug)]
enum Failure {
    /// 400 with Sixpack's message.
    BadRequest(String),
    /// 404 with Sixpack's message.
    NotFound(&'static str),
    /// The store failed: 503 when it may pass, 500 when it will not (the
    /// client answers its control either way).
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Store(cause) => Failure::Store(cause),
            other => Failure::BadRequest(other.to_string()),
        }
    }
}

impl From<SixpackError> for Failure {
    fn from(err: SixpackError) -> Self {
        match err {
            SixpackError::Invalid(message) => Failure::BadRequest(message),
            SixpackError::NotFound(message) => Failure::NotFound(message),
            SixpackError::Store(cause) => Failure::Store(cause),
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
            Ok(SixpackStatus {
                status: "ok",
                version: env!("CARGO_PKG_VERSION"),
            })
        } else {
            Err(Failure::Store(StoreError::unavailable(
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
        Ok(service::details(&*state.store, &state.sixpack, name).await?)
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
        Err(Failure::Store(cause)) if !cause.is_transient() => {
            let mut response = respond(
                callback.as_deref(),
                StatusCode::INTERNAL_SERVER_ERROR,
                &failed(INTERNAL_ERROR_MESSAGE),
            );
            InternalError::attach(&mut response, &cause);
            response
        }
        Err(Failure::Store(cause)) => {
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
fn failed(message: &str) -> SixpackFailure<'_> {
    SixpackFailure {
        message,
        status: "failed",
    }
}

/// Sixpack's error body: `{"message", "status": "failed"}` (fields in
/// the order they go on the wire: sorted, as clients have seen them).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SixpackFailure<'a> {
    /// What is wrong, in Sixpack's words.
    message: &'a str,
    /// Always `failed`.
    status: &'static str,
}

/// Sixpack's status answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SixpackStatus {
    /// Always `ok` (a store that takes no writes answers 503).
    status: &'static str,
    /// Lamed's version.
    version: &'static str,
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

/// The experiment and client of a request (checked by the service).
fn experiment_and_client(params: &QueryParams) -> Result<(String, String), Failure> {
    let experiment = required(params, "experiment")?;
    let client_id = required(params, "client_id")?;
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
    Ok(match params.optional("user_agent")? {
        Some(user_agent) => state
            .bots
            .check(&Visitor {
                user_agent: Some(user_agent.to_owned()),
                client_ip: ip,
            })
            .is_some(),
        None => ip.and_then(|ip| state.bots.check_address(ip)).is_some(),
    })
}

/// Notes why an experiment's request counted nothing, for
/// `GET /api/ignored`.
fn note(state: &AppState, experiment: &str, ignored: Option<&Ignored>) {
    if let Some(why) = ignored {
        state
            .ignored
            .note(&state.sixpack.namespace, experiment, why);
    }
}

async fn participate_with(state: &AppState, params: QueryParams) -> Result<Participation, Failure> {
    let (experiment, client_id) = experiment_and_client(&params)?;
    let request = ParticipateRequest {
        experiment,
        client_id,
        alternatives: params
            .all("alternatives")?
            .into_iter()
            .map(str::to_owned)
            .collect(),
        force: params.optional("force")?.map(str::to_owned),
        record_force: params
            .optional("record_force")?
            .is_some_and(sixpack::to_bool),
        prefetch: params.optional("prefetch")?.is_some_and(sixpack::to_bool),
        traffic_fraction: params.optional("traffic_fraction")?.map(str::to_owned),
        bot: is_bot(state, &params)?,
        now_ms: lamed_core::clock::Clock::System.now_ms(),
    };
    let bot = request.bot;
    let participated =
        service::participate(&*state.store, &state.metrics, &state.sixpack, request).await;
    // A bot is counted as ignored once the request is found valid.
    if bot && !matches!(participated, Err(SixpackError::Invalid(_))) {
        state.metrics.ignore(&Ignored::Bot);
    }
    let Participated { answer, ignored } = participated?;
    note(state, &answer.experiment.name, ignored.as_ref());
    Ok(answer)
}

async fn convert_with(state: &AppState, params: QueryParams) -> Result<ConvertAnswer, Failure> {
    // A bot's conversion is answered before anything else is read.
    if is_bot(state, &params)? {
        state.metrics.ignore(&Ignored::Bot);
        return Ok(ConvertAnswer::Excluded(Excluded {
            excluded: "true",
            status: "ok",
        }));
    }
    let (experiment, client_id) = experiment_and_client(&params)?;
    let request = ConvertRequest {
        experiment,
        client_id,
        kpi: params.optional("kpi")?.map(str::to_owned),
    };
    let Converted { answer, ignored } =
        service::convert(&*state.store, &state.metrics, &state.sixpack, request).await?;
    note(state, &answer.experiment.name, ignored.as_ref());
    Ok(ConvertAnswer::Converted(answer))
}

/// A conversion, or Sixpack's answer to a bot's.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ConvertAnswer {
    /// Counted, or ignored with a reason.
    Converted(Conversion),
    /// A bot's: nothing read, nothing counted.
    Excluded(Excluded),
}

/// Sixpack's answer to a bot's conversion (fields in wire order).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Excluded {
    /// Always `"true"`, a string as Sixpack sends it.
    excluded: &'static str,
    /// Always `ok`.
    status: &'static str,
}
