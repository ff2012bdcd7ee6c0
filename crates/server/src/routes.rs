//! The route table: every path Lamed answers, listed once. The axum router
//! (`lamed serve` and the Lambda entry) and the API Gateway plan of
//! `lamed deploy` are both built from [`ROUTES`], and so is access: the
//! router puts the API-key check in front of every [`Access::ApiKey`] row,
//! so no handler has to remember it.
//!
//! A new route is one new row here (and its handler in `handlers/`).

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};

use crate::error::ApiError;
use crate::handlers::experiments::MAX_SCOPE_BYTES;
use crate::handlers::{
    dashboard, experiments, health, openapi, registry, report, sixpack, track, webhooks, weights,
};
use crate::state::AppState;
use lamed_config::config::Handler;
use lamed_core::model::{MAX_NAMESPACE_BYTES, MAX_NAME_BYTES, MAX_UUID_BYTES};

/// One path, what answers it, who may call it and where it runs on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path, in the `{name}` syntax axum and API Gateway share.
    pub path: &'static str,
    /// Each method with its handler.
    pub endpoints: &'static [Endpoint],
    /// Whether the API key is needed.
    pub access: Access,
    /// The Lambda function serving it, or why `lamed deploy` leaves it out.
    pub deploy: Deploy,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sites track from visitors' browsers; monitors probe health.
    Public,
    /// Only with the API key, in `X-Api-Key` or `Authorization: Bearer`:
    /// 401 without one, 403 with a wrong one (API Gateway checks it too).
    ApiKey,
}

/// Where a route runs under `lamed deploy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deploy {
    /// On API Gateway, invoking this function.
    Lambda(Function),
    /// Answered by `lamed serve` only; the text says why.
    ServeOnly(&'static str),
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl HttpMethod {
    /// The method's name, as API Gateway spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Patch => MethodFilter::PATCH,
            HttpMethod::Delete => MethodFilter::DELETE,
        }
    }
}

/// One handler with the one method it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET`: one event in the query, as AlephBet sends it.
    TrackOne,
    /// `POST`: a JSON array of events.
    TrackBatch,
    /// `GET`: the counts in Lamed's results shape.
    ListExperiments,
    /// `DELETE`: remove an experiment's counters.
    DeleteExperiment,
    /// `GET`: one experiment's statistics.
    Report,
    /// `GET`: a namespace's registry records.
    ListRecords,
    /// `GET`: one registry record.
    ShowRecord,
    /// `PUT`: register or redefine an experiment.
    PutRecord,
    /// `PATCH`: pause, resume, stop, archive, describe.
    PatchRecord,
    /// `DELETE`: an experiment's counts and record.
    DeleteRecord,
    /// `GET`: the names most often ignored.
    IgnoredNames,
    /// `GET`: the dashboard page.
    Dashboard,
    /// `GET`: a dashboard script or stylesheet.
    DashboardAsset,
    /// `GET`: can the store take a write?
    Health,
    /// `GET`: Prometheus metrics.
    Metrics,
    /// `GET`: Sixpack's participate.
    SixpackParticipate,
    /// `GET`: Sixpack's convert.
    SixpackConvert,
    /// `GET`: Sixpack's status.
    SixpackStatus,
    /// `GET`: one Sixpack experiment in Sixpack's shape.
    SixpackExperiment,
    /// `GET`: the weights a page gives AlephBet's variants.
    Weights,
    /// `GET`: the registry's lifecycle rules, for the dashboard.
    Lifecycle,
    /// `GET`: the recent webhook deliveries of alerts.
    WebhookDeliveries,
    /// `GET`: the open alerts of a namespace's experiments.
    OpenAlerts,
    /// `GET`: the OpenAPI document of this API.
    OpenApi,
}

impl Endpoint {
    /// The method it answers.
    pub const fn method(self) -> HttpMethod {
        match self {
            Endpoint::TrackBatch => HttpMethod::Post,
            Endpoint::PutRecord => HttpMethod::Put,
            Endpoint::PatchRecord => HttpMethod::Patch,
            Endpoint::DeleteExperiment | Endpoint::DeleteRecord => HttpMethod::Delete,
            Endpoint::TrackOne
            | Endpoint::ListExperiments
            | Endpoint::Report
            | Endpoint::Weights
            | Endpoint::Lifecycle
            | Endpoint::WebhookDeliveries
            | Endpoint::OpenAlerts
            | Endpoint::OpenApi
            | Endpoint::ListRecords
            | Endpoint::ShowRecord
            | Endpoint::IgnoredNames
            | Endpoint::Dashboard
            | Endpoint::DashboardAsset
            | Endpoint::Health
            | Endpoint::Metrics
            | Endpoint::SixpackParticipate
            | Endpoint::SixpackConvert
            | Endpoint::SixpackStatus
            | Endpoint::SixpackExperiment => HttpMethod::Get,
        }
    }

    /// The query parameters API Gateway declares on the method (all
    /// optional), as the original declares them for tracking.
    pub const fn declared_query(self) -> &'static [&'static str] {
        match self {
            Endpoint::TrackOne => &["namespace", "experiment", "variant", "event", "uuid"],
            _ => &[],
        }
    }

    /// The query parameters it reads: the README's API table shows them
    /// after the path, and the OpenAPI document (`crate::openapi`)
    /// declares them.
    pub const fn query(self) -> &'static [Param] {
        match self {
            Endpoint::TrackOne => TRACK_QUERY,
            Endpoint::ListExperiments => RESULTS_QUERY,
            Endpoint::DeleteExperiment => DELETE_QUERY,
            Endpoint::ListRecords => RECORDS_QUERY,
            Endpoint::Report => REPORT_QUERY,
            Endpoint::ShowRecord
            | Endpoint::PutRecord
            | Endpoint::PatchRecord
            | Endpoint::DeleteRecord
            | Endpoint::Weights
            | Endpoint::OpenAlerts
            | Endpoint::IgnoredNames => &[NAMESPACE],
            Endpoint::SixpackParticipate => PARTICIPATE_QUERY,
            Endpoint::SixpackConvert => CONVERT_QUERY,
            Endpoint::SixpackStatus | Endpoint::SixpackExperiment => &[JSONP_CALLBACK],
            Endpoint::TrackBatch
            | Endpoint::Dashboard
            | Endpoint::DashboardAsset
            | Endpoint::Lifecycle
            | Endpoint::Health
            | Endpoint::Metrics
            | Endpoint::OpenApi
            | Endpoint::WebhookDeliveries => &[],
        }
    }

    /// The query string the README's API table shows after the path:
    /// `?namespace=&scope=`.
    fn query_string(self) -> String {
        self.query()
            .iter()
            .enumerate()
            .map(|(i, param)| format!("{}{}=", if i == 0 { "?" } else { "&" }, param.name))
            .collect()
    }

    /// What it does, for the README's API table (Markdown).
    pub const fn summary(self) -> &'static str {
        match self {
            Endpoint::TrackOne => "count one event: `namespace` (default `alephbet`), `experiment`, `variant`, `event` (`participate` or a goal), `uuid`, and for a goal an optional `value` (see [Revenue](#revenue-and-other-numeric-goals)). 200 `{}` for a new event and a duplicate alike; 200 `{\"ignored\": \"<reason>\"}` for a well-formed event deliberately not counted (see [Experiments](#experiments-registry-lifecycle-bots))",
            Endpoint::TrackBatch => "count a JSON array of event objects (same fields; `value` a JSON number or a decimal string); answers `{\"counted\", \"duplicates\", \"ignored\", \"refused\", \"results\": [{\"status\": \"counted\" \\| \"duplicate\" \\| \"ignored\" \\| \"refused\", \"reason\"?, \"error\"?}]}`",
            Endpoint::ListExperiments => "Lamed's results: `[{\"meta\": {\"scope\": null}}, {\"experiment\": \"..\", \"goals\": [{\"goal\": \"..\", \"results\": [{\"label\": \"red\", \"successes\": 31, \"trials\": 402}]}]}]`; `scope` is a comma-separated list of experiments",
            Endpoint::DeleteExperiment => "remove an experiment's counters and record; 200 `{\"namespace\", \"deleted\"}` or 404",
            Endpoint::ListRecords => "the registry records of a namespace; `status` is a comma-separated list or `all` (default: all but `archived`)",
            Endpoint::ShowRecord => "one experiment's registry record; its `ETag` is the record's `version` (`\"7\"`)",
            Endpoint::PutRecord => "register or redefine an experiment (201/200, with the new `ETag`); with `If-Match`, 412 `{\"error\", \"current_version\"}` when the record changed since (see [Concurrent edits](#concurrent-edits))",
            Endpoint::PatchRecord => "change an experiment's status or description (200, with the new `ETag`); with `If-Match`, 412 as for `PUT`",
            Endpoint::DeleteRecord => "delete an experiment with its counts (204)",
            Endpoint::Weights => "the weights a page gives AlephBet's variants: `{\"adaptive\", \"weights\": {\"red\": 60, \"blue\": 40}, \"burn_in\", \"period\"?, \"expires_ms\"?}`, integers summing to 100 in the registered order; an adaptive experiment's current period (see [Adaptive weights](#adaptive-weights)), else the registered weights; 404 without registered variants",
            Endpoint::Report => "one experiment's report: per goal, rates, intervals, tests and a verdict (what the dashboard shows)",
            Endpoint::IgnoredNames => "the experiment names whose events were most often ignored since the server started, and why",
            Endpoint::Dashboard => "the built-in dashboard (the page asks for the API key)",
            Endpoint::DashboardAsset => "the dashboard's scripts and stylesheet",
            Endpoint::Lifecycle => "the registry's lifecycle, as the dashboard reads it: `{\"statuses\", \"transitions\": {\"running\": [\"paused\", \"stopped\", \"archived\"], ..}, \"listed_by_default\"}`",
            Endpoint::Health => "200 `{\"status\": \"ok\"}` when the store took the last write check, else 503 `{\"status\": \"unavailable\"}` (the reason goes to the log and `/metrics`); at most one check a second",
            Endpoint::Metrics => "Prometheus/OpenMetrics text: `lamed_events_counted_total`, `lamed_events_duplicate_total`, `lamed_rejected_total{reason}`, `lamed_events_ignored_total{reason}`, `lamed_store_latency_seconds`, `lamed_batch_size_events`, `lamed_store_healthy` (0/1), `lamed_store_health_checks_total{result}`, `lamed_internal_errors_total`, `lamed_dedupe_entries` (embedded store only), `lamed_request_duration_seconds{status}`, `lamed_connections_open`, `lamed_connection_limit_waits_total{limit}`, `lamed_accept_errors_total`, `lamed_connections_timed_out_total{stage}`, `lamed_tls_handshakes_failed_total`, `lamed_webhook_attempts_total{result}`, `lamed_webhook_endpoints_disabled`",
            Endpoint::SixpackParticipate => "Sixpack's participate, in Sixpack's shape (see [Sixpack API](#sixpack-api-server-side-experiments))",
            Endpoint::SixpackConvert => "Sixpack's convert, in Sixpack's shape",
            Endpoint::SixpackStatus => "Sixpack's status, in Sixpack's shape",
            Endpoint::SixpackExperiment => "one experiment of the Sixpack namespace in Sixpack's shape",
            Endpoint::OpenAlerts => "the open alerts of a namespace's experiments (what the dashboard's badges show): `{\"<experiment>\": {\"<key>\": {\"raised_ms\", \"event\", \"summary\"}}}`; keys `srm`, `decision:<goal>:<variant>`, `stalled`, `status:<status>`; checked only while webhooks are configured (see [Alerts](#alerts-signed-webhooks))",
            Endpoint::OpenApi => "this API's OpenAPI 3.1 document (also printed by `lamed openapi`): every route, parameter, body, answer and the API key, generated from the route table and the bodies' types",
            Endpoint::WebhookDeliveries => "the alerts' webhook deliveries, newest first (at most 100): `{\"deliveries\": [{\"id\", \"url\", \"format\", \"event\", \"namespace\", \"experiment\", \"body\", \"created_ms\", \"state\": \"pending\" \\| \"delivered\" \\| \"failed\" \\| \"disabled\", \"next_ms\", \"attempts\": [{\"at_ms\", \"status\", \"error\"}]}]}` (see [Alerts](#alerts-signed-webhooks))",
        }
    }

    fn method_router(self) -> MethodRouter<AppState> {
        let filter = self.method().filter();
        match self {
            Endpoint::TrackOne => on(filter, track::track_one),
            Endpoint::TrackBatch => on(filter, track::track_batch),
            Endpoint::ListExperiments => on(filter, experiments::list),
            Endpoint::DeleteExperiment => on(filter, experiments::delete),
            Endpoint::Report => on(filter, report::report),
            Endpoint::Weights => on(filter, weights::weights),
            Endpoint::ListRecords => on(filter, registry::list),
            Endpoint::ShowRecord => on(filter, registry::show),
            Endpoint::PutRecord => on(filter, registry::put),
            Endpoint::PatchRecord => on(filter, registry::patch),
            Endpoint::DeleteRecord => on(filter, registry::delete),
            Endpoint::IgnoredNames => on(filter, registry::ignored),
            Endpoint::Dashboard => on(filter, dashboard::index),
            Endpoint::DashboardAsset => on(filter, dashboard::asset),
            Endpoint::Lifecycle => on(filter, dashboard::lifecycle),
            Endpoint::Health => on(filter, health::health),
            Endpoint::Metrics => on(filter, health::metrics),
            Endpoint::SixpackParticipate => on(filter, sixpack::participate),
            Endpoint::SixpackConvert => on(filter, sixpack::convert),
            Endpoint::SixpackStatus => on(filter, sixpack::status),
            Endpoint::SixpackExperiment => on(filter, sixpack::experiment),
            Endpoint::WebhookDeliveries => on(filter, webhooks::deliveries),
            Endpoint::OpenAlerts => on(filter, webhooks::open),
            Endpoint::OpenApi => on(filter, openapi::document),
        }
    }
}

/// A query parameter an endpoint reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Whether a request without it is refused (400).
    pub required: bool,
    /// The values it takes.
    pub values: ParamValues,
    /// What it means (Markdown).
    pub about: &'static str,
}

/// The values a query parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValues {
    /// A name of 1 to this many bytes (see `lamed_core::names`).
    Name(usize),
    /// Any text of at most this many bytes.
    Text(usize),
    /// Any text.
    AnyText,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A decimal number as text (`19.99`).
    Decimal,
    /// Given once per value (Sixpack's `alternatives`).
    Repeated,
}

impl Param {
    /// A name, checked as names are (1 to `max_bytes` bytes, no control
    /// character).
    const fn name(
        name: &'static str,
        required: bool,
        max_bytes: usize,
        about: &'static str,
    ) -> Param {
        Param {
            name,
            required,
            values: ParamValues::Name(max_bytes),
            about,
        }
    }

    /// Any other parameter.
    const fn text(
        name: &'static str,
        required: bool,
        values: ParamValues,
        about: &'static str,
    ) -> Param {
        Param {
            name,
            required,
            values,
            about,
        }
    }
}

/// `GET /track`'s event.
const TRACK_QUERY: &[Param] = &[
    NAMESPACE,
    Param::name("experiment", true, MAX_NAME_BYTES, "The experiment."),
    Param::name("variant", true, MAX_NAME_BYTES, "The variant shown."),
    Param::name(
        "event",
        true,
        MAX_NAME_BYTES,
        "`participate`, or a goal's name.",
    ),
    Param::name(
        "uuid",
        true,
        MAX_UUID_BYTES,
        "The visitor's id for this event: an event is counted once per uuid.",
    ),
    Param::text(
        "value",
        false,
        ParamValues::Decimal,
        "A goal's value (revenue): a decimal from 0 to 10,000,000, at most 6 decimal \
         places; goals only.",
    ),
];

/// `GET /experiments`'s.
const RESULTS_QUERY: &[Param] = &[
    NAMESPACE,
    Param::text(
        "scope",
        false,
        ParamValues::Text(MAX_SCOPE_BYTES),
        "Comma-separated experiments to answer for (all when absent).",
    ),
];

/// `DELETE /delete`'s.
const DELETE_QUERY: &[Param] = &[
    NAMESPACE,
    Param::name(
        "experiment",
        true,
        MAX_NAME_BYTES,
        "The experiment to delete.",
    ),
];

/// `GET /api/experiments`'s.
const RECORDS_QUERY: &[Param] = &[
    NAMESPACE,
    Param::text(
        "status",
        false,
        ParamValues::AnyText,
        "Comma-separated statuses (`running`, `paused`, `stopped`, `archived`), or `all`; \
         all but `archived` when absent.",
    ),
];

/// The report's.
const REPORT_QUERY: &[Param] = &[
    NAMESPACE,
    Param::name(
        "control",
        false,
        MAX_NAME_BYTES,
        "The variant to compare with, instead of the registered control.",
    ),
    Param::name("goal", false, MAX_NAME_BYTES, "Only this goal."),
    Param::text(
        "weights",
        false,
        ParamValues::AnyText,
        "The expected split for the sample-ratio check, `red:80,blue:20`.",
    ),
    Param::text(
        "by",
        false,
        ParamValues::OneOf(&["device", "browser", "country"]),
        "Break the results down by this dimension.",
    ),
    Param::text(
        "correction",
        false,
        ParamValues::OneOf(&["benjamini-hochberg", "bh", "holm"]),
        "The segments' multiple-testing correction (default Benjamini-Hochberg).",
    ),
];

/// Sixpack's participate.
const PARTICIPATE_QUERY: &[Param] = &[
    Param::text(
        "experiment",
        true,
        ParamValues::AnyText,
        "The experiment (Sixpack's name rules).",
    ),
    Param::text("client_id", true, ParamValues::AnyText, "The client."),
    Param::text(
        "alternatives",
        true,
        ParamValues::Repeated,
        "The alternatives, the control first, repeated: `alternatives=red&alternatives=blue`.",
    ),
    Param::text(
        "force",
        false,
        ParamValues::AnyText,
        "Answer this alternative (recorded only with `record_force`).",
    ),
    Param::text(
        "record_force",
        false,
        ParamValues::AnyText,
        "Record the forced alternative (`true`).",
    ),
    Param::text(
        "prefetch",
        false,
        ParamValues::AnyText,
        "Choose without recording (`true`).",
    ),
    Param::text(
        "traffic_fraction",
        false,
        ParamValues::AnyText,
        "The share of clients in the experiment, 0 to 1.",
    ),
    SIXPACK_USER_AGENT,
    SIXPACK_IP_ADDRESS,
    JSONP_CALLBACK,
];

/// Sixpack's convert.
const CONVERT_QUERY: &[Param] = &[
    Param::text("experiment", true, ParamValues::AnyText, "The experiment."),
    Param::text("client_id", true, ParamValues::AnyText, "The client."),
    Param::text(
        "kpi",
        false,
        ParamValues::AnyText,
        "The KPI converted (Sixpack's default KPI when absent).",
    ),
    SIXPACK_USER_AGENT,
    SIXPACK_IP_ADDRESS,
    JSONP_CALLBACK,
];

/// `namespace`, which every namespaced endpoint reads.
const NAMESPACE: Param = Param::name(
    "namespace",
    false,
    MAX_NAMESPACE_BYTES,
    "The namespace (default `alephbet`).",
);

/// Sixpack's JSONP: a valid callback wraps the answer, errors included.
const JSONP_CALLBACK: Param = Param::text(
    "callback",
    false,
    ParamValues::AnyText,
    "A JSONP function name (`^\\w[\\w'\\-.]*$`): the answer comes as `callback(...)`, `application/javascript`.",
);

/// The visitor's User-Agent, which Sixpack's clients forward.
const SIXPACK_USER_AGENT: Param = Param::text(
    "user_agent",
    false,
    ParamValues::AnyText,
    "The visitor's User-Agent, for the bot rules.",
);

/// The visitor's address, which Sixpack's clients forward.
const SIXPACK_IP_ADDRESS: Param = Param::text(
    "ip_address",
    false,
    ParamValues::AnyText,
    "The visitor's address, for `ignored_networks`.",
);

/// The Lambda functions `lamed deploy` creates (and `lamed destroy`
/// removes); each serves the rows that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Tracking (AlephBet's and Sixpack's), and the health probes.
    Track,
    /// The results.
    Experiments,
    /// Deleting an experiment.
    Delete,
    /// The experiments API: registry and report.
    Report,
    /// The built-in dashboard.
    Dashboard,
}

impl Function {
    /// Every function, in creation order.
    pub const ALL: [Function; 5] = [
        Function::Track,
        Function::Experiments,
        Function::Delete,
        Function::Report,
        Function::Dashboard,
    ];

    /// The function's name on AWS (Lamed's names).
    pub const fn name(self) -> &'static str {
        match self {
            Function::Track => "lamed-track",
            Function::Experiments => "lamed-all-experiments",
            Function::Delete => "lamed-delete-experiment",
            Function::Report => "lamed-report",
            Function::Dashboard => "lamed-dashboard",
        }
    }

    const fn purpose(self) -> &'static str {
        match self {
            Function::Track => "count AlephBet and Sixpack events",
            Function::Experiments => "results",
            Function::Delete => "delete an experiment",
            Function::Report => "experiments API (registry, report)",
            Function::Dashboard => "built-in dashboard",
        }
    }

    /// The function's description: what it is for and the routes it
    /// serves, e.g. `lamed: results (GET /experiments)`.
    pub fn description(self) -> String {
        let served = ROUTES
            .iter()
            .filter(|route| route.deploy == Deploy::Lambda(self))
            .map(|route| {
                let methods: Vec<_> = route
                    .endpoints
                    .iter()
                    .map(|e| e.method().as_str())
                    .collect();
                format!("{} {}", methods.join("/"), route.path)
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("lamed: {} ({served})", self.purpose())
    }
}

/// AlephBet's tracking path; `extra_wiring`'s `lamed.track` borrows it.
/// The health probe's path: also exempt from the in-flight limit.
pub const HEALTH_PATH: &str = "/health";

const TRACK: Route = Route {
    path: "/track",
    endpoints: &[Endpoint::TrackOne, Endpoint::TrackBatch],
    access: Access::Public,
    deploy: Deploy::Lambda(Function::Track),
};

/// The results; `extra_wiring`'s `lamed.all` borrows it.
const EXPERIMENTS: Route = Route {
    path: "/experiments",
    endpoints: &[Endpoint::ListExperiments],
    access: Access::ApiKey,
    deploy: Deploy::Lambda(Function::Experiments),
};

/// Deleting; `extra_wiring`'s `lamed.delete` borrows it.
const DELETE: Route = Route {
    path: "/delete",
    endpoints: &[Endpoint::DeleteExperiment],
    access: Access::ApiKey,
    deploy: Deploy::Lambda(Function::Delete),
};

/// Why the webhook deliveries are not on Lambda.
const ALERTS_IN_SERVE: &str = "alerts are checked and sent by lamed serve only, so far";

/// Why per-process counters are not deployed on AWS Lambda.
const PROCESS_MEMORY: &str = "it lives in one process's memory: behind Lambda every instance \
     counts apart and is recycled, so a request would see a random fraction";

/// Every route `lamed serve` answers, beyond `extra_wiring` paths and the
/// opt-in `/_bench/empty`.
pub const ROUTES: [Route; 21] = [
    // Public, used by the AlephBet client.
    TRACK,
    // The same, on alephbet-rails' path (AlephBet's AlephbetAdapter).
    Route {
        path: "/event",
        ..TRACK
    },
    // Private, used by dashboards and the CLI.
    EXPERIMENTS,
    // Sixpack's experiment view, always in the Sixpack namespace: Lamed's
    // `/experiments` answers every namespace's results, `/experiments/{name}`
    // is Sixpack's path for one of its experiments (handlers/sixpack.rs).
    Route {
        path: "/experiments/{experiment}",
        endpoints: &[Endpoint::SixpackExperiment],
        access: Access::ApiKey,
        deploy: Deploy::Lambda(Function::Experiments),
    },
    DELETE,
    Route {
        path: "/api/experiments",
        endpoints: &[Endpoint::ListRecords],
        access: Access::ApiKey,
        deploy: Deploy::Lambda(Function::Report),
    },
    Route {
        path: "/api/experiments/{experiment}",
        endpoints: &[
            Endpoint::ShowRecord,
            Endpoint::PutRecord,
            Endpoint::PatchRecord,
            Endpoint::DeleteRecord,
        ],
        access: Access::ApiKey,
        deploy: Deploy::Lambda(Function::Report),
    },
    Route {
        path: "/api/alerts",
        endpoints: &[Endpoint::OpenAlerts],
        access: Access::ApiKey,
        deploy: Deploy::ServeOnly(ALERTS_IN_SERVE),
    },
    Route {
        path: "/api/webhooks/deliveries",
        endpoints: &[Endpoint::WebhookDeliveries],
        access: Access::ApiKey,
        deploy: Deploy::ServeOnly(ALERTS_IN_SERVE),
    },
    Route {
        path: "/api/ignored",
        endpoints: &[Endpoint::IgnoredNames],
        access: Access::ApiKey,
        deploy: Deploy::ServeOnly(PROCESS_MEMORY),
    },
    // Public: pages read an experiment's weights before building it.
    Route {
        path: "/api/experiments/{experiment}/weights",
        endpoints: &[Endpoint::Weights],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Track),
    },
    Route {
        path: "/api/experiments/{experiment}/report",
        endpoints: &[Endpoint::Report],
        access: Access::ApiKey,
        deploy: Deploy::Lambda(Function::Report),
    },
    // The built-in dashboard: public files; the page asks for the key.
    Route {
        path: "/dashboard",
        endpoints: &[Endpoint::Dashboard],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Dashboard),
    },
    Route {
        path: "/dashboard/{asset}",
        endpoints: &[Endpoint::DashboardAsset],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Dashboard),
    },
    Route {
        path: "/api/lifecycle",
        endpoints: &[Endpoint::Lifecycle],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Dashboard),
    },
    // Public, for load balancers and monitors; on AWS it checks Redis
    // from the tracking function, the one whose health matters most.
    Route {
        path: HEALTH_PATH,
        endpoints: &[Endpoint::Health],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Track),
    },
    // Public, Sixpack's API for its client libraries (handlers/sixpack.rs).
    Route {
        path: "/participate",
        endpoints: &[Endpoint::SixpackParticipate],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Track),
    },
    Route {
        path: "/convert",
        endpoints: &[Endpoint::SixpackConvert],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Track),
    },
    Route {
        path: "/_status",
        endpoints: &[Endpoint::SixpackStatus],
        access: Access::Public,
        deploy: Deploy::Lambda(Function::Track),
    },
    Route {
        path: "/metrics",
        endpoints: &[Endpoint::Metrics],
        access: Access::ApiKey,
        deploy: Deploy::ServeOnly(PROCESS_MEMORY),
    },
    // Public: the API's contract (crate::openapi).
    Route {
        path: "/openapi.json",
        endpoints: &[Endpoint::OpenApi],
        access: Access::Public,
        deploy: Deploy::ServeOnly(
            "the same document for every server, which `lamed openapi` prints: \
             no function needs to run for it",
        ),
    },
];

/// The README's HTTP API table, rendered from [`ROUTES`]: one row per
/// endpoint, naming every path that serves it, whether the API key is
/// needed, and what it does. A test (`tests/readme.rs`) keeps the README's
/// copy current.
pub fn readme_table() -> String {
    let mut table = String::from("| method and path | key | what |\n|---|---|---|\n");
    let mut done: Vec<Endpoint> = Vec::new();
    for route in &ROUTES {
        for &endpoint in route.endpoints {
            if done.contains(&endpoint) {
                continue;
            }
            done.push(endpoint);
            let serving: Vec<&Route> = ROUTES
                .iter()
                .filter(|r| r.endpoints.contains(&endpoint))
                .collect();
            let paths: Vec<String> = serving
                .iter()
                .map(|r| {
                    format!(
                        "`{} {}{}`",
                        endpoint.method().as_str(),
                        r.path,
                        endpoint.query_string()
                    )
                })
                .collect();
            let key = match route.access {
                Access::Public => "no",
                Access::ApiKey => "yes",
            };
            table.push_str(&format!(
                "| {} | {key} | {} |\n",
                paths.join(", "),
                endpoint.summary()
            ));
        }
    }
    table
}

/// The row whose methods, access and function an `extra_wiring` path of
/// `handler` takes.
pub const fn route_of(handler: Handler) -> &'static Route {
    match handler {
        Handler::Track => &TRACK,
        Handler::Experiments => &EXPERIMENTS,
        Handler::Delete => &DELETE,
    }
}

impl Route {
    /// The row's methods for the router, behind the API-key check when the
    /// row is private. The check wraps the row's methods only: a wrong
    /// method still answers 405, and CORS preflight (answered by the CORS
    /// layer outside the router) needs no key.
    pub fn method_router(&self, state: &AppState) -> MethodRouter<AppState> {
        let methods = self
            .endpoints
            .iter()
            .fold(MethodRouter::new(), |methods, endpoint| {
                methods.merge(endpoint.method_router())
            });
        match self.access {
            Access::Public => methods,
            Access::ApiKey => methods.route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_api_key,
            )),
        }
    }
}

/// Lets the request through only with the right API key.
async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.authorize(request.headers())?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No path is listed twice, every row answers some method, and none
    /// answers a method twice (axum would panic at start).
    #[test]
    fn paths_and_methods_are_unique() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert!(
                !route.endpoints.is_empty(),
                "{} answers nothing",
                route.path
            );
            assert!(
                ROUTES[i + 1..].iter().all(|other| other.path != route.path),
                "{} listed twice",
                route.path
            );
            for (j, endpoint) in route.endpoints.iter().enumerate() {
                assert!(
                    route.endpoints[j + 1..]
                        .iter()
                        .all(|other| other.method() != endpoint.method()),
                    "{} answers {} twice",
                    route.path,
                    endpoint.method().as_str()
                );
            }
        }
    }

    /// Each `extra_wiring` handler borrows a row of the table.
    #[test]
    fn handlers_borrow_table_rows() {
        for handler in Handler::ALL {
            assert!(ROUTES.contains(route_of(handler)), "{handler:?}");
        }
        assert_eq!(route_of(Handler::Track).access, Access::Public);
        assert_eq!(route_of(Handler::Experiments).access, Access::ApiKey);
        assert_eq!(route_of(Handler::Delete).access, Access::ApiKey);
    }

    /// Every function serves something, and says what.
    #[test]
    fn every_function_serves_a_route() {
        for function in Function::ALL {
            let description = function.description();
            assert!(description.contains(" /"), "{description}");
        }
        assert_eq!(
            Function::Experiments.description(),
            "lamed: results (GET /experiments, GET /experiments/{experiment})"
        );
        let track = Function::Track.description();
        assert!(track.contains("GET/POST /event"), "{track}");
        assert!(track.contains("GET /health"), "{track}");
        // Lambda refuses descriptions over 256 characters.
        for function in Function::ALL {
            assert!(function.description().len() <= 256, "{function:?}");
        }
    }
}
