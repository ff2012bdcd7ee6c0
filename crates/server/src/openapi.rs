//! The OpenAPI 3.1 document of the HTTP API (`GET /openapi.json`,
//! `lamed openapi`), built so that it cannot drift from what is served:
//!
//! - the paths, their methods, their query parameters and who may call
//!   them come from [`ROUTES`] (a new row is in the document without
//!   anyone editing a second list); the descriptions are the README's;
//! - the bodies' JSON Schemas are derived by `schemars` from the serde
//!   types the handlers read and answer with, so a new field is documented
//!   where it is declared;
//! - what is left is what each endpoint answers (status, body type, media
//!   type), in [`answers`]: a `match` without a wildcard, so a new
//!   endpoint does not compile until it is documented. A third-party
//!   fuzzer (`schemathesis`, `tests/api.rs`) checks every answer of a real
//!   server against it.
//!
//! Why not `utoipa`: its path macros would restate on each handler the
//! path, method and parameters the route table already holds (two places
//! per fact); `schemars` is only asked for the types' schemas, which
//! OpenAPI 3.1 takes as they are (JSON Schema 2020-12).

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::error::{ErrorBody, PreconditionFailedBody};
use crate::handlers::{dashboard, experiments, health, sixpack, track, webhooks, weights};
use crate::ignored::IgnoredSummary;
use crate::routes::{Access, Endpoint, HttpMethod, Param, ParamValues, Route, ROUTES};
use lamed_core::bots::TEST_EVENT_USER_AGENT;
use lamed_core::model::{MAX_NAME_BYTES, NO_CONTROL_PATTERN};
use lamed_core::registry::{Definition, ExperimentRecord};
use lamed_core::results::ResultsEntry;
use lamed_core::sixpack::{ExperimentDetails, Participation};
use lamed_service::alerts::evaluate::OpenAlert;
use lamed_service::registry::Patch;
use lamed_service::report::Report;

/// The security schemes' names: the same key in either header.
const API_KEY_SCHEME: &str = "apiKey";
const BEARER_SCHEME: &str = "bearer";

/// The experiment the document's examples name.
pub const EXAMPLE_EXPERIMENT: &str = "button color";

/// The document as served and printed (`lamed openapi`).
pub fn text() -> String {
    // A `Value` always serializes.
    serde_json::to_string_pretty(&document()).unwrap_or_default()
}

/// The document, as JSON.
pub fn document() -> Value {
    let mut schemas = Schemas::new();
    let mut paths = Map::new();
    for route in &ROUTES {
        let mut item = Map::new();
        for &endpoint in route.endpoints {
            let method = endpoint.method().as_str().to_ascii_lowercase();
            item.insert(method, operation(route, endpoint, &mut schemas));
        }
        paths.insert(route.path.to_owned(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lamed",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted A/B-testing backend for the AlephBet client: \
                tracking (public), results, the experiments registry and reports \
                (API key), Sixpack's API. Every answer carries \
                `Access-Control-Allow-Origin: *`; errors are JSON `{\"error\": \"...\"}` \
                (Sixpack's routes: `{\"status\": \"failed\", \"message\"}`).",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas.definitions(),
            "securitySchemes": {
                API_KEY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "The API key (401 without one, 403 with a wrong one).",
                },
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API key as `Authorization: Bearer <key>`.",
                },
            },
        },
    })
}

/// One method of one path.
fn operation(route: &Route, endpoint: Endpoint, schemas: &mut Schemas) -> Value {
    let mut parameters: Vec<Value> = path_parameters(route.path).collect();
    parameters.extend(endpoint.query().iter().map(query_parameter));
    if endpoint == Endpoint::TrackOne {
        parameters.push(json!({
            "name": "User-Agent",
            "in": "header",
            "required": false,
            "description": "The visitor's browser. A crawler's, a script's (curl's) or none is a bot's: answered `{\"ignored\": \"bot\"}` with a `hint`, not counted (`bot_filter`).",
            "schema": {"type": "string"},
            "example": TEST_EVENT_USER_AGENT,
        }));
    }
    if matches!(endpoint, Endpoint::PutRecord | Endpoint::PatchRecord) {
        parameters.push(json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The record's version as read (its `ETag`, `\"7\"`): 412 when it changed since.",
            "schema": {"type": "string"},
        }));
    }
    let mut responses = Map::new();
    for answer in answers(endpoint, schemas) {
        let mut json = answer.to_json();
        if endpoint == Endpoint::PutRecord && answer.status < 300 {
            json["links"] = registered_links(route.path);
        }
        responses.insert(answer.status.to_string(), json);
    }
    let errors = schemas.response::<ErrorBody>();
    let error = |why: &'static str| Answer::json(0, why, errors.clone());
    let mut common = vec![
        (
            414,
            "The request target is over 60 KiB (over 64 KiB the HTTP parser answers 414 with no body).",
        ),
        (431, "The request headers are over 32 KiB."),
        (
            500,
            "A store fault no retry fixes (damaged data or a bug); logged, no `Retry-After`.",
        ),
        (
            503,
            "The store cannot take it now, the request took too long, or the server is busy: retry (`Retry-After: 1`).",
        ),
    ];
    if route.access == Access::ApiKey {
        common.push((401, "No API key."));
        common.push((403, "A wrong API key."));
    }
    for (status, why) in common {
        let answer = Answer {
            status,
            ..error(why)
        };
        responses
            .entry(status.to_string())
            .or_insert_with(|| answer.to_json());
    }
    let mut operation = json!({
        "operationId": operation_id(endpoint.method(), route.path),
        "description": endpoint.summary(),
        "parameters": parameters,
        "responses": responses,
        "security": match route.access {
            Access::Public => json!([]),
            Access::ApiKey => json!([{API_KEY_SCHEME: []}, {BEARER_SCHEME: []}]),
        },
    });
    if let Some(body) = request_body(endpoint, schemas) {
        operation["requestBody"] = body;
    }
    operation
}

/// What a registered experiment leads to: every other operation of the
/// route table on its path or below (its record, report, weights), with
/// the experiment the `PUT` named.
fn registered_links(path: &str) -> Value {
    let links: Map<String, Value> = ROUTES
        .iter()
        .filter(|route| route.path.starts_with(path))
        .flat_map(|route| {
            route.endpoints.iter().filter_map(move |endpoint| {
                if *endpoint == Endpoint::PutRecord {
                    return None;
                }
                let id = operation_id(endpoint.method(), route.path);
                let link = json!({
                    "operationId": id,
                    "parameters": {"experiment": "$request.path.experiment"},
                });
                Some((id, link))
            })
        })
        .collect();
    Value::Object(links)
}

/// `get_api_experiments_experiment_weights`: unique per method and path.
fn operation_id(method: HttpMethod, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    format!(
        "{}_{}",
        method.as_str().to_ascii_lowercase(),
        words.join("_")
    )
}

/// The `{name}` parameters of a path.
fn path_parameters(path: &'static str) -> impl Iterator<Item = Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                // The dashboard's files, by name.
                "asset" => json!({"type": "string", "enum": dashboard::asset_names()}),
                _ => json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME_BYTES,
                    "pattern": NO_CONTROL_PATTERN,
                }),
            };
            let mut parameter =
                json!({"name": name, "in": "path", "required": true, "schema": schema});
            if name == "experiment" {
                parameter["example"] = EXAMPLE_EXPERIMENT.into();
            }
            parameter
        })
}

/// One query parameter of the route table.
fn query_parameter(param: &Param) -> Value {
    let schema = match param.values {
        ParamValues::Name(max) => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": max,
            "pattern": NO_CONTROL_PATTERN,
        }),
        // A limit in bytes, as characters that fit it whatever they are
        // (at most 4 bytes each): fully percent-encoded, such a value
        // stays within the request target's limit too.
        ParamValues::Text(max_bytes) => json!({"type": "string", "maxLength": max_bytes / 4}),
        ParamValues::AnyText => json!({"type": "string"}),
        ParamValues::OneOf(words) => json!({"type": "string", "enum": words}),
        ParamValues::Decimal => {
            json!({"type": "string", "pattern": "^[0-9]{1,8}(\\.[0-9]{1,6})?$"})
        }
        ParamValues::Repeated => json!({"type": "array", "items": {"type": "string"}}),
    };
    let mut parameter = json!({
        "name": param.name,
        "in": "query",
        "required": param.required,
        "description": param.about,
        "schema": schema,
    });
    if param.values == ParamValues::Repeated {
        parameter["style"] = "form".into();
        parameter["explode"] = true.into();
    }
    parameter
}

/// The body an endpoint reads, if any.
fn request_body(endpoint: Endpoint, schemas: &mut Schemas) -> Option<Value> {
    let (schema, about) = match endpoint {
        Endpoint::TrackBatch => (
            json!({"type": "array", "minItems": 1, "items": schemas.request::<track::SentEvent>()}),
            "The events, at most `max_batch_events` (413 past it).",
        ),
        Endpoint::PutRecord => {
            let mut schema = schemas.request::<Definition>();
            schema["examples"] = json!([{
                "description": "Is blue better than red?",
                "variants": [{"name": "red", "weight": 1}, {"name": "blue", "weight": 1}],
                "control": "red",
                "goals": [{"name": "checkout", "unique": true}],
            }]);
            (schema, "The experiment's definition.")
        }
        Endpoint::PatchRecord => (schemas.request::<Patch>(), "What changes."),
        _ => return None,
    };
    Some(json!({
        "required": true,
        "description": about,
        "content": {"application/json": {"schema": schema}},
    }))
}

/// One documented answer: its status, why, and its body by media type.
#[derive(Clone)]
struct Answer {
    status: u16,
    about: &'static str,
    content: Vec<(&'static str, Value)>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Answer {
    /// A JSON body of `schema`.
    fn json(status: u16, about: &'static str, schema: Value) -> Answer {
        Answer {
            status,
            about,
            content: vec![("application/json", schema)],
            headers: Vec::new(),
        }
    }

    /// A text body, of any of `media_types`.
    fn text(status: u16, about: &'static str, media_types: &[&'static str]) -> Answer {
        Answer {
            status,
            about,
            content: media_types
                .iter()
                .map(|media| (*media, json!({"type": "string"})))
                .collect(),
            headers: Vec::new(),
        }
    }

    /// No body.
    fn empty(status: u16, about: &'static str) -> Answer {
        Answer {
            status,
            about,
            content: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The same answer, also as Sixpack's JSONP (`callback` given).
    fn or_jsonp(mut self) -> Answer {
        self.content
            .push(("application/javascript", json!({"type": "string"})));
        self
    }

    /// The same answer with a header.
    fn with_header(mut self, name: &'static str, about: &'static str) -> Answer {
        self.headers.push((name, about));
        self
    }

    /// The OpenAPI response object.
    fn to_json(&self) -> Value {
        let mut answer = json!({"description": self.about});
        if !self.content.is_empty() {
            let content: Map<String, Value> = self
                .content
                .iter()
                .map(|(media, schema)| ((*media).to_owned(), json!({"schema": schema})))
                .collect();
            answer["content"] = Value::Object(content);
        }
        if !self.headers.is_empty() {
            let headers: Map<String, Value> = self
                .headers
                .iter()
                .map(|(name, about)| {
                    let header = json!({"description": about, "schema": {"type": "string"}});
                    ((*name).to_owned(), header)
                })
                .collect();
            answer["headers"] = Value::Object(headers);
        }
        answer
    }
}

/// What an endpoint answers, beyond what every route may (414, 431, 500,
/// 503, and 401/403 behind the key: see [`operation`]).
fn answers(endpoint: Endpoint, schemas: &mut Schemas) -> Vec<Answer> {
    let error = schemas.response::<ErrorBody>();
    let bad = Answer::json(
        400,
        "Malformed input; the message names the problem.",
        error.clone(),
    );
    let not_found = |about| Answer::json(404, about, error.clone());
    let sixpack_failure = schemas.response::<sixpack::SixpackFailure<'static>>();
    let sixpack =
        |status, about, schema: &Value| Answer::json(status, about, schema.clone()).or_jsonp();
    let etag = "The record's version, `\"7\"`: send it back in `If-Match`.";
    let record = schemas.response::<ExperimentRecord>();
    match endpoint {
        Endpoint::TrackOne => vec![
            Answer::json(
                200,
                "`{}`: counted, or a duplicate; or `{\"ignored\": \"<reason>\"}` (with a `hint` for a bot): well-formed, deliberately not counted, not to be sent again.",
                schemas.response::<track::TrackAnswer>(),
            ),
            bad,
        ],
        Endpoint::TrackBatch => {
            let batch = schemas.response::<track::BatchResponse>();
            vec![
                Answer::json(200, "Every event counted, a duplicate or ignored.", batch.clone()),
                Answer::json(
                    422,
                    "Some events were malformed (see `results`); the others were stored, so sending the batch again is safe.",
                    batch,
                ),
                Answer::json(400, "The body is not a JSON array of events, or an empty one.", error.clone()),
                Answer::json(413, "More events than `max_batch_events`, or a body over 2 MiB.", error),
            ]
        }
        Endpoint::ListExperiments => vec![
            Answer::json(
                200,
                "Lamed's results: a meta element, then one per experiment.",
                schemas.response::<Vec<ResultsEntry>>(),
            ),
            bad,
            not_found("A namespace (not the default) without experiments."),
        ],
        Endpoint::DeleteExperiment => vec![
            Answer::json(200, "Deleted.", schemas.response::<experiments::Deleted>()),
            bad,
            not_found("No such experiment in the namespace."),
        ],
        Endpoint::ListRecords => vec![
            Answer::json(200, "The records.", schemas.response::<Vec<ExperimentRecord>>()),
            bad,
        ],
        Endpoint::ShowRecord => vec![
            Answer::json(200, "The record.", record).with_header("ETag", etag),
            bad,
            not_found("The experiment is not registered."),
        ],
        Endpoint::PutRecord => vec![
            Answer::json(200, "Redefined.", record.clone()).with_header("ETag", etag),
            Answer::json(201, "Registered.", record).with_header("ETag", etag),
            bad,
            Answer::json(409, "The change removes a variant or goal, or other writes kept coming between.", error.clone()),
            Answer::json(
                412,
                "The record is no longer at the version `If-Match` names.",
                schemas.response::<PreconditionFailedBody>(),
            )
            .with_header("ETag", "The record's version now."),
        ],
        Endpoint::PatchRecord => vec![
            Answer::json(200, "Changed.", record).with_header("ETag", etag),
            bad,
            not_found("The experiment is not registered."),
            Answer::json(409, "The lifecycle forbids the move (resuming a stopped experiment), or other writes kept coming between.", error.clone()),
            Answer::json(
                412,
                "The record is no longer at the version `If-Match` names.",
                schemas.response::<PreconditionFailedBody>(),
            )
            .with_header("ETag", "The record's version now."),
        ],
        Endpoint::DeleteRecord => vec![
            Answer::empty(204, "Deleted, counts and record."),
            bad,
            not_found("The experiment is not registered."),
        ],
        Endpoint::IgnoredNames => vec![
            Answer::json(200, "The most ignored names.", schemas.response::<IgnoredSummary>()),
            bad,
        ],
        Endpoint::Weights => vec![
            Answer::json(200, "The weights.", schemas.response::<weights::WeightsAnswer>())
                .with_header("Cache-Control", "`public, max-age=N`: until the period ends."),
            bad,
            not_found("The experiment has no registered variants."),
        ],
        Endpoint::Report => vec![
            Answer::json(200, "The report.", schemas.response::<Report>()),
            bad,
            not_found("No such experiment in the namespace."),
        ],
        Endpoint::Dashboard => vec![Answer::text(200, "The dashboard's page.", &["text/html"])],
        Endpoint::DashboardAsset => vec![
            Answer::text(200, "The file.", &["text/javascript", "text/css"]),
            not_found("No such file."),
        ],
        Endpoint::Lifecycle => vec![Answer::json(
            200,
            "The lifecycle's rules.",
            schemas.response::<dashboard::Lifecycle>(),
        )],
        Endpoint::Health => {
            let health = schemas.response::<health::Health>();
            vec![
                Answer::json(200, "The store took the last write check.", health.clone()),
                Answer::json(503, "The store did not take the last write check.", health)
                    .with_header("Retry-After", "`1`"),
            ]
        }
        Endpoint::Metrics => vec![Answer::text(
            200,
            "Prometheus/OpenMetrics text.",
            &["application/openmetrics-text"],
        )],
        Endpoint::SixpackParticipate => vec![
            sixpack(200, "The client's alternative.", &schemas.response::<Participation>()),
            sixpack(400, "Missing or invalid arguments.", &sixpack_failure),
            sixpack(503, "The store cannot take it now.", &sixpack_failure),
            sixpack(500, "A store fault no retry fixes.", &sixpack_failure),
        ],
        Endpoint::SixpackConvert => vec![
            sixpack(200, "Converted, or a bot's (excluded).", &schemas.response::<sixpack::ConvertAnswer>()),
            sixpack(400, "Missing or invalid arguments.", &sixpack_failure),
            sixpack(404, "The client is not in the experiment.", &sixpack_failure),
            sixpack(503, "The store cannot take it now.", &sixpack_failure),
            sixpack(500, "A store fault no retry fixes.", &sixpack_failure),
        ],
        Endpoint::SixpackStatus => vec![
            sixpack(200, "Up.", &schemas.response::<sixpack::SixpackStatus>()),
            sixpack(400, "A query that is not valid UTF-8.", &sixpack_failure),
            sixpack(503, "The store takes no writes.", &sixpack_failure),
        ],
        Endpoint::SixpackExperiment => vec![
            sixpack(200, "The experiment.", &schemas.response::<ExperimentDetails>()),
            sixpack(400, "An invalid name.", &sixpack_failure),
            sixpack(404, "No such experiment.", &sixpack_failure),
            sixpack(503, "The store cannot answer now.", &sixpack_failure),
            sixpack(500, "A store fault no retry fixes.", &sixpack_failure),
        ],
        Endpoint::OpenApi => vec![Answer::json(
            200,
            "This document.",
            json!({"type": "object", "required": ["openapi", "paths"]}),
        )],
        Endpoint::WebhookDeliveries => vec![Answer::json(
            200,
            "The deliveries, newest first.",
            schemas.response::<webhooks::Deliveries>(),
        )],
        Endpoint::OpenAlerts => vec![
            Answer::json(
                200,
                "The open alerts by experiment and key.",
                schemas.response::<BTreeMap<String, BTreeMap<String, OpenAlert>>>(),
            ),
            bad,
        ],
    }
}

/// The schemas of the bodies: answers by reference into
/// `components/schemas` (as serialized), request bodies inline (as
/// deserialized: fields with defaults are optional there).
struct Schemas {
    responses: SchemaGenerator,
    requests: SchemaGenerator,
}

impl Schemas {
    fn new() -> Schemas {
        let openapi = |settings: SchemaSettings| {
            settings
                .with(|s| {
                    s.definitions_path = "/components/schemas".into();
                    s.meta_schema = None;
                })
                .into_generator()
        };
        Schemas {
            responses: openapi(SchemaSettings::draft2020_12().for_serialize()),
            requests: openapi(
                SchemaSettings::draft2020_12()
                    .for_deserialize()
                    .with(|s| s.inline_subschemas = true),
            ),
        }
    }

    /// The schema of an answer's body of type `T`.
    fn response<T: JsonSchema>(&mut self) -> Value {
        Value::from(self.responses.subschema_for::<T>())
    }

    /// The schema of a request's body of type `T`.
    fn request<T: JsonSchema>(&mut self) -> Value {
        Value::from(self.requests.subschema_for::<T>())
    }

    /// Every schema the answers refer to.
    fn definitions(&mut self) -> Map<String, Value> {
        self.responses.take_definitions(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (path, method) of the route table is in the document, with
    /// the API-key rows marked secured and answering 401/403, and the
    /// public ones open; every `$ref` resolves.
    #[test]
    fn every_route_is_documented() {
        let document = document();
        for route in &ROUTES {
            for endpoint in route.endpoints {
                let method = endpoint.method().as_str().to_ascii_lowercase();
                let operation = &document["paths"][route.path][&method];
                assert!(operation.is_object(), "{method} {} missing", route.path);
                let secured = operation["security"] != json!([]);
                assert_eq!(
                    secured,
                    route.access == Access::ApiKey,
                    "{method} {}",
                    route.path
                );
                for status in ["401", "403"] {
                    let documented = operation["responses"].get(status).is_some();
                    assert_eq!(documented, secured, "{method} {} {status}", route.path);
                }
                for param in endpoint.query() {
                    let declared = operation["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == param.name);
                    assert!(declared, "{method} {} ?{}", route.path, param.name);
                }
            }
        }
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }

    /// Unchanged from run to run (the README and the served copy agree).
    #[test]
    fn document_is_stable() {
        assert_eq!(document(), document());
    }
}
