//! `GET /track` (one event in the query, as AlephBet sends it) and
//! `POST /track` (a JSON array of events, for server-side senders).

use std::fmt;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::params::QueryParams;
use crate::state::AppState;
use crate::visitor::RequestVisitor;
use lamed_core::model::{
    Event, Ignored, InvalidField, TrackOutcome, DEFAULT_NAMESPACE, MAX_NAMESPACE_BYTES,
    MAX_NAME_BYTES, MAX_UUID_BYTES, NO_CONTROL_PATTERN,
};
use lamed_core::value::{Decimal, InvalidValue, Value};
use lamed_service::tracking;

/// Count one event; 200 `{}` for a new event and a duplicate alike, 200
/// `{"ignored": "<reason>"}` for one deliberately not counted (so that the
/// client drops it instead of re-sending it forever).
///
/// Crawlers and ignored networks (see `lamed_core::bots`) are answered
/// `{"ignored": "bot"}` after the input is checked: only `GET` is filtered,
/// since AlephBet's adapters send `GET` from the visitor's browser, while a
/// `POST` batch comes from a site's own server, which filters its visitors
/// itself.
pub async fn track_one(
    State(state): State<AppState>,
    RequestVisitor(visitor): RequestVisitor,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut event = event_from_query(query.as_deref()).inspect_err(|err| {
        state.metrics.reject(err.kind());
    })?;
    if state.bots.check(&visitor).is_some() {
        let why = Ignored::Bot;
        state.metrics.ignore(&why);
        return Ok(answer_ignored(&state, &event, &why));
    }
    // A goal counts in the segment of the request that sends it.
    event.segment = state.segments.segment(&headers, &visitor);
    let outcome = store_events(&state, vec![event]).await?.pop();
    match outcome {
        // Rare: the names are read again from the query rather than copied
        // for every event.
        Some(TrackOutcome::Ignored(why)) => {
            let event = event_from_query(query.as_deref())?;
            Ok(answer_ignored(&state, &event, &why))
        }
        Some(_) => Ok(empty_ok()),
        // A store that answers fewer outcomes than events is broken.
        None => Err(ApiError::Store(lamed_store::StoreError::corrupt(
            "store returned no outcome",
        ))),
    }
}

/// 200 with body `{}`: all AlephBet needs to drop the event from its queue.
pub fn empty_ok() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// 200 with body `{"ignored": "<reason>"}` (and a `hint` where the reason
/// alone puzzles): well-formed, deliberately not counted, and not to be
/// re-sent. The experiment's name is noted for `GET /api/ignored`.
fn answer_ignored(state: &AppState, event: &Event, why: &Ignored) -> Response {
    state.ignored.note(&event.namespace, &event.experiment, why);
    Json(TrackAnswer {
        hint: why.hint(),
        ignored: Some(why.reason()),
    })
    .into_response()
}

/// The answer to one event: `{}` when counted or a duplicate (written as
/// such by [`empty_ok`]), else why it was ignored (fields in wire order:
/// `{"hint", "ignored"}`, as clients have seen them).
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrackAnswer {
    /// What to do about it, where the reason alone puzzles (a bot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
    /// Why the event was not counted: `bot`, `cap`, `unregistered`, or
    /// the experiment's status (`paused`, `stopped`, `archived`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<&'static str>,
}

/// Count a JSON array of events, answering one result per event.
///
/// 200 when every event was counted, a duplicate or ignored; 422 when some
/// were malformed (the others are stored, so re-sending the whole batch is
/// safe).
pub async fn track_batch(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        state.metrics.reject("body_too_large");
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
                "request body is too large: {}",
                rejection.body_text()
            )),
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    })?;
    let items = parse_batch(&body, state.max_batch_events).map_err(|err| match err {
        BatchError::TooMany => {
            state.metrics.reject("batch_too_large");
            ApiError::TooLarge(format!(
                "batch holds more than {limit} events; the limit is {limit}",
                limit = state.max_batch_events
            ))
        }
        BatchError::Malformed(err) => {
            state.metrics.reject("malformed_json");
            ApiError::BadRequest(format!("body must be a JSON array of events: {err}"))
        }
    })?;
    if items.is_empty() {
        state.metrics.reject("empty_batch");
        return Err(ApiError::BadRequest("batch holds no events".into()));
    }
    state.metrics.batch_size(items.len());

    let mut results: Vec<EventResult> = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    let mut valid_positions = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        match item {
            Ok(event) => {
                valid.push(event);
                valid_positions.push(position);
                results.push(EventResult::refused(String::new()));
            }
            Err(err) => {
                state.metrics.reject(err.kind());
                results.push(EventResult::refused(format!("event {position}: {err}")));
            }
        }
    }
    if !valid.is_empty() {
        let outcomes = store_events(&state, valid).await?;
        let mut ignored = Vec::new();
        for (position, outcome) in valid_positions.into_iter().zip(outcomes) {
            if let TrackOutcome::Ignored(why) = &outcome {
                ignored.push((position, why.clone()));
            }
            results[position] = EventResult::from(outcome);
        }
        // Rare: the ignored events' names are read again from the body
        // rather than copied for every event.
        if !ignored.is_empty() {
            let items = parse_batch(&body, state.max_batch_events).unwrap_or_default();
            for (position, why) in ignored {
                if let Some(Ok(event)) = items.get(position) {
                    state
                        .ignored
                        .note(&event.namespace, &event.experiment, &why);
                }
            }
        }
    }
    let summary = BatchResponse::new(results);
    let status = if summary.refused == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(summary)).into_response())
}

/// Hands validated events to the store through the tracking service,
/// which tells the metrics their latency and outcomes.
async fn store_events(state: &AppState, events: Vec<Event>) -> Result<Vec<TrackOutcome>, ApiError> {
    Ok(tracking::track(&*state.store, &state.metrics, events).await?)
}

/// The event in a `GET /track` query string.
fn event_from_query(query: Option<&str>) -> Result<Event, InvalidField> {
    let params = QueryParams::parse(query).map_err(|_| InvalidField::InvalidUtf8("query"))?;
    // A value that is not UTF-8 is passed on as bytes that are not either,
    // so that its field is `Given::Invalid`.
    let pairs = params
        .pairs()
        .map(|(name, value)| (name, value.map_or(&b"\xFF"[..], str::as_bytes)));
    let sent = SentEvent::deserialize(MapDeserializer::<_, QueryError>::new(pairs))
        .map_err(|QueryError(field)| field)?;
    sent.into_event(InvalidField::InvalidUtf8)
}

/// The wire shape of one event: the parameters of `GET /track`'s query
/// string, and each object of `POST /track`'s array.
///
/// Every field is read whatever it holds, so that [`SentEvent::into_event`]
/// can report the first problem in the order of the fields.
///
/// Its JSON Schema (the OpenAPI document's batch element) states what a
/// valid event holds: the fields' kinds and which are required.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(default)]
#[schemars(
    description = "One event: the fields of `GET /track`'s query.",
    extend("required" = ["experiment", "variant", "event", "uuid"])
)]
pub struct SentEvent {
    /// Groups experiments; `alephbet` when not given (or `null`).
    #[schemars(with = "Option<String>", length(min = 1, max = MAX_NAMESPACE_BYTES), pattern(NO_CONTROL_PATTERN))]
    namespace: Given<String>,
    /// The experiment.
    #[schemars(with = "String", length(min = 1, max = MAX_NAME_BYTES), pattern(NO_CONTROL_PATTERN))]
    experiment: Given<String>,
    /// The variant shown.
    #[schemars(with = "String", length(min = 1, max = MAX_NAME_BYTES), pattern(NO_CONTROL_PATTERN))]
    variant: Given<String>,
    /// `participate`, or a goal's name.
    #[schemars(with = "String", length(min = 1, max = MAX_NAME_BYTES), pattern(NO_CONTROL_PATTERN))]
    event: Given<String>,
    /// The visitor's id for this event: counted once per uuid.
    #[schemars(with = "String", length(min = 1, max = MAX_UUID_BYTES), pattern(NO_CONTROL_PATTERN))]
    uuid: Given<String>,
    /// A goal's value: a JSON number or decimal text, from 0 to
    /// 10,000,000 with at most 6 decimal places.
    #[schemars(schema_with = "decimal_schema")]
    value: Given<Decimal>,
}

/// A goal value's schema: a number, or a decimal as text.
fn decimal_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // `null` is no value, as for a participation.
    schemars::json_schema!({
        "type": ["number", "string", "null"],
        "minimum": 0,
        "maximum": 10_000_000
    })
}

/// One field of a [`SentEvent`] as it was sent.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Given<T> {
    /// Not given, or `null`.
    #[default]
    Absent,
    /// Of the field's kind.
    Valid(T),
    /// Anything else (not a string in JSON, not UTF-8 in a query).
    Invalid(IgnoredAny),
}

impl SentEvent {
    /// The event these fields make, checked in the order of the fields (the
    /// first problem is the one reported). `invalid` names the problem of a
    /// field that is [`Given::Invalid`].
    fn into_event(self, invalid: fn(&'static str) -> InvalidField) -> Result<Event, InvalidField> {
        let optional = |given, name| match given {
            Given::Absent => Ok(None),
            Given::Valid(text) => Ok(Some(text)),
            Given::Invalid(_) => Err(invalid(name)),
        };
        let required = |given, name| optional(given, name)?.ok_or(InvalidField::Missing(name));
        let value = match self.value {
            Given::Absent => None,
            Given::Valid(sent) => Some(Value::try_from(sent).map_err(InvalidField::Value)?),
            Given::Invalid(_) => return Err(invalid("value")),
        };
        let event = Event {
            segment: Default::default(),
            namespace: optional(self.namespace, "namespace")?
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            experiment: required(self.experiment, "experiment")?,
            variant: required(self.variant, "variant")?,
            event: required(self.event, "event")?,
            uuid: required(self.uuid, "uuid")?,
            value,
        };
        event.validate()?;
        Ok(event)
    }
}

/// What makes a JSON field [`Given::Invalid`]: not a string, or for `value`
/// neither a number nor a string.
fn not_json_kind(field: &'static str) -> InvalidField {
    match field {
        "value" => InvalidField::Value(InvalidValue::NotANumber),
        _ => InvalidField::NotAString(field),
    }
}

/// The only way a query string fails to be a [`SentEvent`]: a field given
/// more than once.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct QueryError(InvalidField);

impl de::Error for QueryError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        QueryError(InvalidField::InvalidUtf8("query"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        QueryError(InvalidField::Repeated(field))
    }
}

/// Why a `POST /track` body is refused as a whole.
#[derive(Debug)]
enum BatchError {
    /// More events than the limit: counted while parsing, so a huge batch
    /// is refused after `limit + 1` elements, without reading the rest.
    TooMany,
    /// Not a JSON array (or not JSON at all).
    Malformed(serde_json::Error),
}

/// One checked event per element of the JSON array in `body`, refusing the
/// batch as soon as it holds more than `limit` elements.
///
/// An element that is not a valid event (not an object, a field missing or
/// not a string, a bad name) does not spoil the others: it is its own
/// [`InvalidField`].
fn parse_batch(body: &[u8], limit: usize) -> Result<Vec<Result<Event, InvalidField>>, BatchError> {
    let mut too_many = false;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = BatchSeed {
        limit,
        too_many: &mut too_many,
    }
    .deserialize(&mut deserializer)
    .and_then(|items| deserializer.end().map(|()| items));
    match parsed {
        Ok(items) => Ok(items),
        Err(_) if too_many => Err(BatchError::TooMany),
        Err(err) => Err(BatchError::Malformed(err)),
    }
}

/// The event one element of a batch makes. The element is read whole
/// first, as a JSON object is: a repeated key's last value wins, unknown
/// keys are ignored.
fn event_from_json(element: serde_json::Value) -> Result<Event, InvalidField> {
    let serde_json::Value::Object(fields) = element else {
        return Err(InvalidField::NotAnObject);
    };
    SentEvent::deserialize(serde_json::Value::Object(fields))
        .map_err(|_| InvalidField::NotAnObject)?
        .into_event(not_json_kind)
}

/// Deserializes the batch array, counting elements as they come; flags
/// `too_many` (and stops with an error) at element `limit + 1`.
struct BatchSeed<'a> {
    limit: usize,
    too_many: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Result<Event, InvalidField>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Result<Event, InvalidField>>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.limit));
        loop {
            if items.len() == self.limit {
                // One more element (read without keeping it) is one too many.
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    *self.too_many = true;
                    return Err(de::Error::custom("too many events"));
                }
                return Ok(items);
            }
            match seq.next_element()? {
                Some(element) => items.push(event_from_json(element)),
                None => return Ok(items),
            }
        }
    }
}

/// The answer to a batch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchResponse {
    /// Events counted now.
    counted: usize,
    /// Events already seen within the window.
    duplicates: usize,
    /// Well-formed events deliberately not counted; see `results`.
    ignored: usize,
    /// Malformed events; see `results`.
    refused: usize,
    /// Present when something was refused, as for every 4xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// One result per event, in order.
    results: Vec<EventResult>,
}

impl BatchResponse {
    fn new(results: Vec<EventResult>) -> Self {
        let count = |status| results.iter().filter(|r| r.status == status).count();
        let refused = count("refused");
        let error = results.iter().find_map(|r| r.error.as_ref()).map(|first| {
            format!(
                "{refused} of {} events were refused (first: {first}); see results",
                results.len()
            )
        });
        BatchResponse {
            counted: count("counted"),
            duplicates: count("duplicate"),
            ignored: count("ignored"),
            refused,
            error,
            results,
        }
    }
}

/// What happened to one event of a batch.
#[derive(Debug, Serialize, JsonSchema)]
struct EventResult {
    /// `counted`, `duplicate`, `ignored` or `refused`.
    status: &'static str,
    /// Why it was ignored (see [`Ignored::reason`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl EventResult {
    fn refused(error: String) -> Self {
        EventResult {
            status: "refused",
            reason: None,
            error: Some(error),
        }
    }
}

impl From<TrackOutcome> for EventResult {
    fn from(outcome: TrackOutcome) -> Self {
        let (status, reason) = match outcome {
            TrackOutcome::Counted => ("counted", None),
            TrackOutcome::Duplicate => ("duplicate", None),
            TrackOutcome::Ignored(why) => ("ignored", Some(why.reason())),
        };
        EventResult {
            status,
            reason,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uuid: &str) -> Event {
        Event {
            segment: Default::default(),
            namespace: lamed_core::model::DEFAULT_NAMESPACE.into(),
            experiment: "e".into(),
            variant: "v".into(),
            event: "participate".into(),
            uuid: uuid.into(),
            value: None,
        }
    }

    /// Up to the limit every element becomes its own result; one more is
    /// refused as too many, even when a later element is not JSON at all.
    #[test]
    fn counts_elements_while_parsing() {
        let one = r#"{"experiment":"e","variant":"v","event":"participate","uuid":"1"}"#;
        let body = format!("[{one},{one}]");
        let items = parse_batch(body.as_bytes(), 2).unwrap();
        assert_eq!(items, vec![Ok(event("1")), Ok(event("1"))]);
        assert!(matches!(
            parse_batch(body.as_bytes(), 1),
            Err(BatchError::TooMany)
        ));
        let body = format!("[{one},{one},{one}, this is not JSON");
        assert!(matches!(
            parse_batch(body.as_bytes(), 2),
            Err(BatchError::TooMany)
        ));
        assert!(matches!(
            parse_batch(body.as_bytes(), 3),
            Err(BatchError::Malformed(_))
        ));
        assert_eq!(parse_batch(b" [ ] ", 2).unwrap(), vec![]);
    }

    /// The query form reads the same shape: the same event, the same
    /// problems, and its own (a parameter repeated or not UTF-8).
    #[test]
    fn the_query_form_reads_the_same_shape() {
        let ok = "experiment=e&variant=v&event=participate&uuid=1";
        assert_eq!(event_from_query(Some(ok)), Ok(event("1")));
        assert_eq!(
            event_from_query(Some(&format!("{ok}&namespace=alephbet&other=1&other=2"))),
            Ok(event("1"))
        );
        let goal = "experiment=e&variant=v&event=buy&uuid=1";
        let valued = event_from_query(Some(&format!("{goal}&value=12.50"))).unwrap();
        assert_eq!(valued.value, Value::parse("12.5").ok());
        for (query, problem) in [
            (None, InvalidField::Missing("experiment")),
            (
                Some("experiment=e&variant=v&event=participate"),
                InvalidField::Missing("uuid"),
            ),
            (Some("uuid=1&uuid=2"), InvalidField::Repeated("uuid")),
            (
                Some("experiment=e&variant=%FF&event=participate&uuid=1"),
                InvalidField::InvalidUtf8("variant"),
            ),
            (Some("%FF=1"), InvalidField::InvalidUtf8("query")),
            (
                Some(&format!("{goal}&value=1e3")),
                InvalidField::Value(InvalidValue::NotANumber),
            ),
            (
                Some(&format!("{goal}&value=%FF")),
                InvalidField::InvalidUtf8("value"),
            ),
            (
                Some(&format!("{ok}&value=1")),
                InvalidField::ValueOnParticipation,
            ),
            (
                Some(&format!("{ok}&namespace=")),
                InvalidField::Empty("namespace"),
            ),
        ] {
            assert_eq!(event_from_query(query), Err(problem), "{query:?}");
        }
    }

    /// A batch's `value` is a JSON number or decimal text.
    #[test]
    fn a_batch_value_is_a_number_or_text() {
        let body = br#"[
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": 12.5},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": "12.50"},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": 12},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": null},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": -1},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": true},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": {"a": 1}},
            {"experiment": "e", "variant": "v", "event": "buy", "uuid": "1", "value": 1e-7}
        ]"#;
        let values: Vec<_> = parse_batch(body, 100)
            .unwrap()
            .into_iter()
            .map(|item| item.map(|event| event.value.map(|value| value.to_string())))
            .collect();
        let not_a_number = Err(InvalidField::Value(InvalidValue::NotANumber));
        assert_eq!(
            values,
            vec![
                Ok(Some("12.5".into())),
                Ok(Some("12.5".into())),
                Ok(Some("12".into())),
                Ok(None),
                Err(InvalidField::Value(InvalidValue::Negative)),
                not_a_number.clone(),
                not_a_number,
                Err(InvalidField::Value(InvalidValue::TooPrecise)),
            ]
        );
    }

    /// A body that is not one JSON array is malformed.
    #[test]
    fn refuses_what_is_not_an_array() {
        for body in [
            &b"{\"experiment\": \"e\"}"[..],
            b"",
            b"[",
            b"[1,]",
            b"[] []",
            b"\"x\"",
        ] {
            assert!(
                matches!(parse_batch(body, 10), Err(BatchError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// Each bad element is its own problem, named as for a single event;
    /// the first bad field in field order is the one reported; unknown keys
    /// are ignored and a repeated key's last value wins.
    #[test]
    fn each_element_is_checked_on_its_own() {
        let body = br#"[
            5, "s", null, [1, {"a": 2}], true,
            {"experiment": "e", "variant": "v", "event": "participate", "uuid": 1},
            {"experiment": {"x": [1]}, "variant": "v", "event": "participate"},
            {"namespace": 3, "experiment": "e", "variant": "v", "event": "participate", "uuid": "1"},
            {"experiment": "e", "variant": "v", "event": "participate"},
            {"experiment": "e", "variant": "", "event": "participate", "uuid": "1"},
            {"experiment": "e", "variant": "v", "event": "participate", "uuid": "x", "uuid": "2", "extra": {"deep": [null]}},
            {"namespace": null, "experiment": "e", "variant": "v", "event": "participate", "uuid": "3", "uuid": null}
        ]"#;
        let items = parse_batch(body, 100).unwrap();
        let expected = vec![
            Err(InvalidField::NotAnObject),
            Err(InvalidField::NotAnObject),
            Err(InvalidField::NotAnObject),
            Err(InvalidField::NotAnObject),
            Err(InvalidField::NotAnObject),
            Err(InvalidField::NotAString("uuid")),
            Err(InvalidField::NotAString("experiment")),
            Err(InvalidField::NotAString("namespace")),
            Err(InvalidField::Missing("uuid")),
            Err(InvalidField::Empty("variant")),
            Ok(event("2")),
            Err(InvalidField::Missing("uuid")),
        ];
        assert_eq!(items, expected);
    }
}
