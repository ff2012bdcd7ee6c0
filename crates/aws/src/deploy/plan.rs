//! What `lamed deploy` builds, as plain data: the names, the functions, the
//! paths and their methods, and the function environment. No AWS calls
//! here, so the plan is tested without an emulator.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::Value;

use crate::args::Arch;
use crate::lambda::{ANSWER_MARGIN_MS, GATEWAY_TIMEOUT_MS, LONGEST_DEADLINE_MS};
use lamed_config::config::{Config, FileConfig, Handler, Overrides};
use lamed_config::settings::{infos, Settings};
use lamed_server::routes::{self, Access, Deploy, Endpoint, Function, ROUTES};

/// IAM role and inline policy name.
pub const ROLE_NAME: &str = "lamed";
/// The inline policy of the role.
pub const POLICY_NAME: &str = "lamed";
/// REST API name.
pub const API_NAME: &str = "lamed";
/// The API's only stage.
pub const STAGE: &str = "prod";
/// The alias every integration calls.
pub const ALIAS: &str = "live";
/// API key and usage plan name.
pub const API_KEY_NAME: &str = "lamed";
/// Usage plan name.
pub const USAGE_PLAN_NAME: &str = "lamed";
/// Published versions kept per function (older ones are deleted).
pub const KEEP_VERSIONS: usize = 5;
/// The Lambda runtime: a custom runtime whose `bootstrap` is `lamed`.
pub const RUNTIME: &str = "provided.al2023";
/// The handler name of a custom runtime (informational only).
pub const HANDLER: &str = "bootstrap";
/// The original's memory size (MB).
pub const DEFAULT_MEMORY_MB: i32 = 128;
/// The EventBridge rule that invokes the alert check.
pub const ALERTS_RULE: &str = "lamed-alerts";
/// The function the alert check runs on: never the tracking one, whose
/// instances and concurrency stay for the visitors.
pub const ALERTS_FUNCTION: Function = Function::Report;
/// The timeout of [`ALERTS_FUNCTION`]: one check of every experiment, then
/// deliveries sent at once, each up to 15 s (`ATTEMPT_TIMEOUT`). Its API
/// requests still end at the request deadline.
pub const ALERTS_TIMEOUT_SECONDS: i32 = 60;
/// The DynamoDB table the functions count in when the config names
/// neither a Redis nor a table.
pub const DEFAULT_TABLE: &str = "lamed";

/// Where the functions count: nothing runs on AWS for DynamoDB, so it is
/// the choice when the config names no Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counting {
    /// On the config's Redis.
    Redis,
    /// In this DynamoDB table, which deploy creates when missing.
    DynamoDb(String),
}

impl Counting {
    /// The store of `config` on AWS Lambda: its Redis, else its
    /// `dynamodb_table`, else [`DEFAULT_TABLE`].
    ///
    /// # Errors
    ///
    /// When both are set, or the table's name is not one DynamoDB takes.
    pub fn of(config: &Config) -> anyhow::Result<Counting> {
        match (&config.redis, &config.dynamodb_table) {
            (Some(_), Some(table)) => anyhow::bail!(
                "both redis and dynamodb_table ({table}) are set: choose the store the functions count in"
            ),
            (Some(_), None) => Ok(Counting::Redis),
            (None, table) => {
                let table = table.as_deref().unwrap_or(DEFAULT_TABLE);
                // DynamoDB's rule for table names.
                let valid = (3..=255).contains(&table.len())
                    && table
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !valid {
                    anyhow::bail!(
                        "dynamodb_table '{table}' is not a DynamoDB table name: \
                         3 to 255 letters, digits, '_', '-' or '.'"
                    );
                }
                Ok(Counting::DynamoDb(table.to_owned()))
            }
        }
    }

    /// The table, when counting in DynamoDB.
    pub fn table(&self) -> Option<&str> {
        match self {
            Counting::Redis => None,
            Counting::DynamoDb(table) => Some(table),
        }
    }
}

/// One Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Function name.
    pub name: String,
    /// What it is for (the function description).
    pub description: String,
    /// Memory in MB.
    pub memory_mb: i32,
    /// Timeout in seconds.
    pub timeout_seconds: i32,
}

/// One method on one API Gateway path. API Gateway demands no key on any:
/// the function checks it, as `lamed serve` does (the same 401 and 403,
/// `X-Api-Key` or `Authorization: Bearer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Full path, e.g. `/api/experiments/{experiment}/report`.
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// The function it invokes (through its alias).
    pub function: String,
    /// `method.request.querystring.x` → required, as the original wires.
    pub request_parameters: BTreeMap<String, bool>,
}

/// The schedule of the alert check: an EventBridge rule invoking one
/// function with a scheduled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The rule's schedule, `rate(5 minutes)`.
    pub expression: String,
    /// The function it invokes (through its alias).
    pub function: String,
}

impl Schedule {
    /// Every `alert_check_seconds`, in whole minutes (EventBridge's
    /// smallest rate is a minute; a part of a minute rounds up, so the
    /// check never runs more often than asked).
    pub fn every(alert_check_seconds: u64) -> Schedule {
        let minutes = alert_check_seconds.div_ceil(60).max(1);
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        Schedule {
            expression: format!("rate({minutes} {unit})"),
            function: ALERTS_FUNCTION.name().to_owned(),
        }
    }
}

/// The timeout of a function serving API requests: the request deadline
/// and the time to answer, in whole seconds; lamed answers 503 at the
/// deadline, before the function or the gateway gives up.
pub fn function_timeout_seconds(request_timeout_ms: u64) -> i32 {
    let ms = request_timeout_ms.saturating_add(ANSWER_MARGIN_MS);
    i32::try_from(ms.div_ceil(1_000)).unwrap_or(i32::MAX)
}

/// Everything deploy builds, decided from the configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The functions, in creation order.
    pub functions: Vec<FunctionSpec>,
    /// Every method of every path (OPTIONS is added per path).
    pub routes: Vec<Route>,
    /// Extra paths of the config: (path segment, handler) for the router.
    pub extra_routes: Vec<(String, Handler)>,
    /// The processor architecture of the functions.
    pub arch: Arch,
    /// Where the functions count.
    pub counting: Counting,
    /// The alert check's schedule: only with webhooks configured.
    pub alerts: Option<Schedule>,
}

impl Plan {
    /// Every path, each once, parents before children.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for route in &self.routes {
            let mut prefix = String::new();
            for segment in route.path.trim_start_matches('/').split('/') {
                prefix.push('/');
                prefix.push_str(segment);
                if !paths.contains(&prefix) {
                    paths.push(prefix.clone());
                }
            }
        }
        paths
    }

    /// The routes of one path.
    pub fn routes_of<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| r.path == path)
    }

    /// The settings the functions run with: the config's, with the key
    /// deploy keeps in API Gateway and the table they count in.
    pub fn settings(&self, config: &Config, api_key: &str) -> Settings {
        Settings {
            api_key: Some(api_key.to_owned()),
            dynamodb_table: self.counting.table().map(str::to_owned),
            ..config.settings.clone()
        }
    }

    /// The function environment: how the configuration reaches the Lambda.
    pub fn environment(&self, config: &Config, api_key: &str) -> BTreeMap<String, String> {
        // Every setting that applies on Lambda, from its definition
        // (lamed_config::settings).
        let mut env = self.settings(config, api_key).lambda_environment();
        if !config.file_webhooks().is_empty() {
            // Plain structs of strings: serializing cannot fail.
            let webhooks = serde_json::to_string(config.file_webhooks()).unwrap_or_default();
            env.insert(crate::lambda::WEBHOOKS_VAR.to_owned(), webhooks);
        }
        if !self.extra_routes.is_empty() {
            let routes = self
                .extra_routes
                .iter()
                .map(|(path, handler)| format!("{path}={}", handler.lamed_name()))
                .collect::<Vec<_>>()
                .join(",");
            env.insert(crate::lambda::EXTRA_ROUTES_VAR.to_owned(), routes);
        }
        env
    }
}

/// The function serving a handler of `extra_wiring`: its row's.
pub fn function_of(handler: Handler) -> Option<Function> {
    match routes::route_of(handler).deploy {
        Deploy::Lambda(function) => Some(function),
        Deploy::ServeOnly(_) => None,
    }
}

/// `method.request.querystring.x` → false for each declared parameter.
fn declared_parameters(endpoint: Endpoint) -> BTreeMap<String, bool> {
    endpoint
        .declared_query()
        .iter()
        .map(|p| (format!("method.request.querystring.{p}"), false))
        .collect()
}

/// The gateway methods of the route table: one per method of every row
/// that is deployed.
fn table_routes() -> Vec<Route> {
    ROUTES
        .iter()
        .filter_map(|row| match row.deploy {
            Deploy::Lambda(function) => Some((row, function)),
            Deploy::ServeOnly(_) => None,
        })
        .flat_map(|(row, function)| {
            row.endpoints.iter().map(move |endpoint| Route {
                path: row.path.to_owned(),
                method: endpoint.method().as_str().to_owned(),
                function: function.name().to_owned(),
                request_parameters: declared_parameters(*endpoint),
            })
        })
        .collect()
}

/// Decides what to build from the configuration.
///
/// # Errors
///
/// When an `extra_wiring` entry is invalid: an unknown handler, a path
/// lamed already uses, a bad method, an `apiKeyRequired` its handler
/// contradicts, or memory/timeout out of Lambda's range; when the request
/// deadline does not end before API Gateway's.
pub fn plan(config: &Config, arch: Arch) -> anyhow::Result<Plan> {
    let counting = Counting::of(config)?;
    let longest = LONGEST_DEADLINE_MS;
    if config.request_timeout_ms > longest {
        anyhow::bail!(
            "request_timeout_ms {} is longer than API Gateway waits for a function ({} s): \
             on AWS Lambda it may be at most {longest}",
            config.request_timeout_ms,
            GATEWAY_TIMEOUT_MS / 1_000
        );
    }
    let alerts = (!config.webhooks.is_empty()).then(|| Schedule::every(config.alert_check_seconds));
    let timeout_seconds = function_timeout_seconds(config.request_timeout_ms);
    let mut functions: Vec<FunctionSpec> = Function::ALL
        .into_iter()
        .map(|function| FunctionSpec {
            name: function.name().to_owned(),
            description: function.description(),
            memory_mb: DEFAULT_MEMORY_MB,
            timeout_seconds: match &alerts {
                Some(_) if function == ALERTS_FUNCTION => {
                    timeout_seconds.max(ALERTS_TIMEOUT_SECONDS)
                }
                _ => timeout_seconds,
            },
        })
        .collect();
    let mut routes = table_routes();
    let mut extra_routes = Vec::new();
    for wiring in &config.extra_wiring {
        let handler = wiring.handler()?;
        let row = routes::route_of(handler);
        let part = &wiring.api_gateway.path_part;
        let Some(function) = function_of(handler) else {
            anyhow::bail!(
                "extra_wiring '{part}': {} is not deployed",
                handler.lamed_name()
            );
        };
        let path = format!("/{part}");
        // Every path lamed serves counts, deployed or not: the function's
        // router answers them all.
        if ROUTES
            .iter()
            .any(|r| r.path == path || r.path.starts_with(&format!("{path}/")))
        {
            anyhow::bail!("extra_wiring pathPart '{part}' is a path lamed already serves");
        }
        let method = &wiring.api_gateway.method;
        let default_method = row.endpoints.first().map_or("GET", |e| e.method().as_str());
        let http_method = match method.get("httpMethod") {
            None | Some(Value::Null) => default_method.to_owned(),
            Some(Value::String(m)) => m.to_ascii_uppercase(),
            Some(_) => anyhow::bail!("extra_wiring '{part}': httpMethod must be a string"),
        };
        if !["GET", "POST", "DELETE"].contains(&http_method.as_str()) {
            anyhow::bail!(
                "extra_wiring '{part}': httpMethod {http_method} is not served; use GET, POST or DELETE"
            );
        }
        // The function checks the key, as the handler's row says: the
        // original's flag is taken only where it says the same.
        let keyed = row.access == Access::ApiKey;
        match method.get("apiKeyRequired") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) if *b == keyed => {}
            Some(Value::Bool(b)) => anyhow::bail!(
                "extra_wiring '{part}': apiKeyRequired {b}, but {} {} \
                 (lamed checks the key itself, as lamed serve does); remove apiKeyRequired",
                handler.lamed_name(),
                if keyed {
                    "requires the API key"
                } else {
                    "is public"
                }
            ),
            Some(_) => anyhow::bail!("extra_wiring '{part}': apiKeyRequired must be true or false"),
        }
        let request_parameters = match method.get("requestParameters") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(value) => serde_json::from_value(value.clone()).with_context(|| {
                format!("extra_wiring '{part}': requestParameters must map names to true/false")
            })?,
        };
        if routes
            .iter()
            .any(|r| r.path == path && r.method == http_method)
        {
            anyhow::bail!("extra_wiring '{part}' {http_method} is given twice");
        }
        routes.push(Route {
            path,
            method: http_method,
            function: function.name().to_owned(),
            request_parameters,
        });
        extra_routes.push((part.clone(), handler));
        // The original sets MemorySize and Timeout per function here.
        let named = wiring
            .lambda
            .function_name
            .as_deref()
            .unwrap_or(function.name());
        if let Some(spec) = functions.iter_mut().find(|f| f.name == named) {
            if let Some(memory) = wiring.lambda.other.get("MemorySize") {
                spec.memory_mb = ranged(memory, 128, 10_240)
                    .with_context(|| format!("extra_wiring '{part}': MemorySize"))?;
            }
            if let Some(timeout) = wiring.lambda.other.get("Timeout") {
                // A shorter one would cut requests before lamed answers:
                // raised to the deadline's.
                let timeout = ranged(timeout, 1, 900)
                    .with_context(|| format!("extra_wiring '{part}': Timeout"))?;
                spec.timeout_seconds = spec.timeout_seconds.max(timeout);
            }
        }
    }
    // A delete's deadline is the longest (`LONGEST_DEADLINE_MS`): the
    // functions serving one wait for it.
    for spec in &mut functions {
        if routes
            .iter()
            .any(|r| r.function == spec.name && r.method == "DELETE")
        {
            spec.timeout_seconds = spec
                .timeout_seconds
                .max(function_timeout_seconds(LONGEST_DEADLINE_MS));
        }
    }
    let plan = Plan {
        functions,
        routes,
        extra_routes,
        arch,
        counting,
        alerts,
    };
    // The functions read their configuration back from their environment:
    // one they would refuse (webhooks on a store that keeps no alert
    // state) stops deploy here, before anything is built.
    let probe_key = "k".repeat(20);
    let api_key = config.api_key.as_deref().unwrap_or(&probe_key);
    function_config(&plan.environment(config, api_key))
        .context("the functions would refuse this configuration")?;
    Ok(plan)
}

/// The configuration a function resolves from the environment `env`, as
/// [`crate::lambda::config_from_env`] reads it (the variables given here
/// as flags, through the same parsers).
///
/// # Errors
///
/// What the function would refuse at its start.
pub fn function_config(env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
    use clap::{CommandFactory, FromArgMatches};
    let on_lambda: Vec<_> = infos().into_iter().filter(|i| i.on_lambda).collect();
    let args: Vec<String> = env
        .iter()
        .filter_map(|(name, value)| {
            let info = on_lambda.iter().find(|i| &i.env == name)?;
            Some(format!("--{}={value}", info.arg.get_long()?))
        })
        .collect();
    let matches = Overrides::command()
        .mut_args(|arg| arg.env(None::<&'static str>))
        .no_binary_name(true)
        .try_get_matches_from(&args)?;
    let overrides = Overrides::from_arg_matches(&matches)?;
    let webhooks = match env.get(crate::lambda::WEBHOOKS_VAR) {
        Some(text) => serde_json::from_str(text)?,
        None => Vec::new(),
    };
    let file = FileConfig {
        webhooks,
        ..FileConfig::default()
    };
    Ok(Config::resolve(None, file, overrides)?)
}

fn ranged(value: &Value, low: i32, high: i32) -> anyhow::Result<i32> {
    value
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| (low..=high).contains(n))
        .with_context(|| format!("must be a whole number from {low} to {high}, not {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamed_config::config::{FileConfig, Overrides};
    use lamed_config::settings::infos;

    fn config(json: &str) -> Config {
        let file: FileConfig = serde_json::from_str(json).unwrap();
        Config::resolve(None, file, Overrides::default()).unwrap()
    }

    /// The standard plan: five functions at 128 MB, each with the request
    /// deadline's timeout (10 s and a second to answer), or a delete's
    /// (28 s and a second) where it serves one; no alert schedule without
    /// webhooks, parents listed before children.
    #[test]
    fn standard_plan() {
        let plan = plan(&config("{}"), Arch::X86_64).unwrap();
        let functions: Vec<(&str, i32, i32)> = plan
            .functions
            .iter()
            .map(|f| (f.name.as_str(), f.memory_mb, f.timeout_seconds))
            .collect();
        assert_eq!(
            functions,
            [
                ("lamed-track", 128, 11),
                ("lamed-all-experiments", 128, 11),
                ("lamed-delete-experiment", 128, 29),
                ("lamed-report", 128, 29),
                ("lamed-dashboard", 128, 11)
            ]
        );
        assert_eq!(plan.alerts, None);
        let paths = plan.paths();
        let pos = |p: &str| paths.iter().position(|x| x == p).unwrap();
        assert!(
            pos("/api") < pos("/api/experiments") && pos("/dashboard") < pos("/dashboard/{asset}")
        );
        // GET /track keeps the tracking parameters the original declares.
        let get_track = plan
            .routes
            .iter()
            .find(|r| r.path == "/track" && r.method == "GET")
            .unwrap();
        assert_eq!(
            get_track.request_parameters.keys().collect::<Vec<_>>(),
            [
                "method.request.querystring.event",
                "method.request.querystring.experiment",
                "method.request.querystring.namespace",
                "method.request.querystring.uuid",
                "method.request.querystring.variant",
            ]
        );
    }

    /// `/event` (alephbet-rails' path) and `/health` are deployed on the
    /// tracking function, public.
    #[test]
    fn event_and_health_are_deployed() {
        let plan = plan(&config("{}"), Arch::X86_64).unwrap();
        let on = |path: &'static str| -> Vec<(String, String)> {
            plan.routes_of(path)
                .map(|r| (r.method.clone(), r.function.clone()))
                .collect()
        };
        let track = |method: &str| (method.to_owned(), "lamed-track".to_owned());
        assert_eq!(on("/event"), [track("GET"), track("POST")]);
        assert_eq!(on("/health"), [track("GET")]);
        assert!(plan.functions[0].description.contains("/event"));
    }

    /// Every method `lamed serve` answers from the route table is on API
    /// Gateway, unless its row says why it is serve-only; and nothing else
    /// is deployed.
    #[test]
    fn every_served_route_is_deployed() {
        let plan = plan(&config("{}"), Arch::X86_64).unwrap();
        let mut served = 0;
        for row in &ROUTES {
            for endpoint in row.endpoints {
                let method = endpoint.method().as_str();
                let deployed = plan
                    .routes
                    .iter()
                    .find(|r| r.path == row.path && r.method == method);
                match (row.deploy, deployed) {
                    (Deploy::Lambda(function), Some(route)) => {
                        served += 1;
                        assert_eq!(route.function, function.name(), "{method} {}", row.path);
                    }
                    (Deploy::ServeOnly(why), None) => assert!(!why.is_empty()),
                    (deploy, deployed) => {
                        panic!(
                            "{method} {}: {deploy:?} but deployed {deployed:?}",
                            row.path
                        )
                    }
                }
            }
        }
        assert_eq!(plan.routes.len(), served);
    }

    /// An extra_wiring entry becomes a path on its handler's function and
    /// sets that function's memory, and its timeout when longer than the
    /// request deadline's (here 5 s is raised to 11 s); clashes are
    /// refused, and so is an apiKeyRequired its handler contradicts.
    #[test]
    fn extra_wiring() {
        let plan = plan(
            &config(
                r#"{"extra_wiring": [{"lambda": {"FunctionName": "lamed-track", "Handler": "lamed.track",
                     "MemorySize": 256, "Timeout": 5},
                   "api_gateway": {"pathPart": "t", "method": {"httpMethod": "GET", "apiKeyRequired": false,
                     "requestParameters": {"method.request.querystring.uuid": false}}}}]}"#,
            ),
            Arch::Arm64,
        )
        .unwrap();
        let route = plan.routes.iter().find(|r| r.path == "/t").unwrap();
        assert_eq!(route.function, "lamed-track");
        let track = &plan.functions[0];
        assert_eq!((track.memory_mb, track.timeout_seconds), (256, 11));
        let env = plan.environment(
            &config(r#"{"redis": {"host": "r", "password": "pw"}}"#),
            "k".repeat(20).as_str(),
        );
        assert_eq!(env["LAMED_EXTRA_ROUTES"], "t=lamed.track");
        assert_eq!(env["LAMED_REDIS_URL"], "redis://:pw@r:6379/0");
        for taken in ["track", "event", "health", "metrics", "api"] {
            let clash = config(&format!(
                r#"{{"extra_wiring": [{{"lambda": {{"Handler": "lamed.all"}}, "api_gateway": {{"pathPart": "{taken}"}}}}]}}"#
            ));
            assert!(plan_err(&clash).contains("already serves"), "{taken}");
        }
        for (handler, flag, says) in [
            ("lamed.track", true, "lamed.track is public"),
            ("lamed.all", false, "lamed.all requires the API key"),
        ] {
            let contradicted = config(&format!(
                r#"{{"extra_wiring": [{{"lambda": {{"Handler": "{handler}"}},
                     "api_gateway": {{"pathPart": "x", "method": {{"apiKeyRequired": {flag}}}}}}}]}}"#
            ));
            let err = plan_err(&contradicted);
            assert!(
                err.contains(says) && err.contains("remove apiKeyRequired"),
                "{err}"
            );
        }
    }

    /// Without httpMethod, an extra path takes its handler's row: lamed.all
    /// is GET, lamed.delete is DELETE, each on its function.
    #[test]
    fn extra_wiring_defaults_follow_the_handler_row() {
        let plan = plan(
            &config(
                r#"{"extra_wiring": [
                     {"lambda": {"Handler": "lamed.all"}, "api_gateway": {"pathPart": "all"}},
                     {"lambda": {"Handler": "lamed.delete"}, "api_gateway": {"pathPart": "del"}}]}"#,
            ),
            Arch::X86_64,
        )
        .unwrap();
        let only = |path: &str| {
            let routes: Vec<_> = plan.routes_of(path).collect();
            assert_eq!(routes.len(), 1, "{path}");
            let r = routes[0];
            (r.method.clone(), r.function.clone())
        };
        assert_eq!(only("/all"), ("GET".into(), "lamed-all-experiments".into()));
        assert_eq!(
            only("/del"),
            ("DELETE".into(), "lamed-delete-experiment".into())
        );
        assert_eq!(
            plan.extra_routes,
            [
                ("all".to_owned(), Handler::Experiments),
                ("del".to_owned(), Handler::Delete)
            ]
        );
    }

    /// Every setting that applies on Lambda reaches it: the environment
    /// deploy writes, read back as the function reads its variables, gives
    /// the settings the functions run with (those that stay local keep
    /// their defaults). The two stores are exclusive, so every setting is
    /// sent by one of the two deployments: on Redis, and on DynamoDB (with
    /// the default table, then a named one).
    #[test]
    fn environment_round_trip() {
        let common = r#""uuid_expiry_seconds": 60, "max_batch_events": 7,
                "bot_filter": false, "bot_user_agents": ["^acme/", "x{1,2}"],
                "ignored_networks": ["10.0.0.0/8", "2001:db8::/32"], "trusted_proxies": 2,
                "limits": {"max_namespaces": 3, "max_experiments_per_namespace": 4,
                           "max_variants_per_experiment": 5, "max_goals_per_experiment": 6}"#;
        let on_lambda: Vec<_> = infos().into_iter().filter(|i| i.on_lambda).collect();
        let mut sent = std::collections::BTreeSet::new();
        for (store, table) in [
            // Webhooks need a store with alert state: sent with Redis.
            (
                r#""redis": {"host": "r", "port": 7000, "password": "p w", "db": 2},
                   "webhook_url": "https://hooks.example.com/a",
                   "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                   "stall_hours": 3, "alert_check_seconds": 90, "webhook_first_retry_ms": 7,
                   "request_timeout_ms": 4000"#,
                None,
            ),
            ("", Some(DEFAULT_TABLE)),
            (r#""dynamodb_table": "counts.prod""#, Some("counts.prod")),
        ] {
            let separator = if store.is_empty() { "" } else { "," };
            let config = config(&format!("{{{store}{separator} {common}}}"));
            let key = "k".repeat(20);
            let plan = plan(&config, Arch::X86_64).unwrap();
            assert_eq!(plan.counting.table(), table);
            let env = plan.environment(&config, &key);
            sent.extend(env.keys().cloned());
            assert!(!env.contains_key("LAMED_LISTEN"));
            // The function's reader.
            let read = function_config(&env).unwrap();
            assert_eq!(read.settings, plan.settings(&config, &key), "{store}");
            assert_eq!(read.dynamodb_table.as_deref(), table);
            assert_eq!(read.caps, config.caps);
        }
        for info in &on_lambda {
            assert!(sent.contains(&info.env), "{} is not sent", info.env);
        }
    }

    /// The store of a deployment: Redis when configured, else DynamoDB in
    /// the named table or "lamed"; both, or a name DynamoDB refuses, are
    /// refused before anything is built.
    #[test]
    fn counting_follows_the_config() {
        let counting = |json: &str| Counting::of(&config(json)).map_err(|e| format!("{e:#}"));
        assert_eq!(counting(r#"{"redis": {"host": "r"}}"#), Ok(Counting::Redis));
        assert_eq!(counting("{}"), Ok(Counting::DynamoDb("lamed".into())));
        assert_eq!(
            counting(r#"{"dynamodb_table": "a_b-c.d"}"#),
            Ok(Counting::DynamoDb("a_b-c.d".into()))
        );
        let both = counting(r#"{"redis": {"host": "r"}, "dynamodb_table": "t"}"#).unwrap_err();
        assert!(both.contains("choose"), "{both}");
        for bad in ["ab", "a b c", "tä ble"] {
            let err = counting(&format!(r#"{{"dynamodb_table": "{bad}"}}"#)).unwrap_err();
            assert!(err.contains("not a DynamoDB table name"), "{err}");
        }
    }

    /// With webhooks, the plan schedules the alert check on lamed-report
    /// (every alert_check_seconds in whole minutes, rounded up; that
    /// function's timeout covers a check and its deliveries) and sends the
    /// endpoints: config.json's in LAMED_WEBHOOKS, webhook_url's in its own
    /// variables, read back as the same endpoints. A deadline the gateway
    /// would cut is refused, and so is a configuration the functions would
    /// refuse (webhooks on a store without alert state), before anything
    /// is built.
    #[test]
    fn webhooks_schedule_the_alert_check() {
        let with_webhooks = |extra: &str| {
            config(&format!(
                r#"{{"redis": {{"host": "r"}}, {extra}
                "webhook_url": "https://hooks.example.com/a",
                "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "webhooks": [{{"url": "https://hooks.slack.com/services/T0/B0/X", "format": "slack",
                               "events": ["experiment.srm"]}}]}}"#
            ))
        };
        let config = with_webhooks(r#""alert_check_seconds": 90,"#);
        let plan = plan(&config, Arch::X86_64).unwrap();
        let schedule = plan.alerts.clone().unwrap();
        assert_eq!(schedule.expression, "rate(2 minutes)");
        assert_eq!(schedule.function, "lamed-report");
        let timeouts: Vec<(&str, i32)> = plan
            .functions
            .iter()
            .map(|f| (f.name.as_str(), f.timeout_seconds))
            .collect();
        assert_eq!(
            timeouts,
            [
                ("lamed-track", 11),
                ("lamed-all-experiments", 11),
                ("lamed-delete-experiment", 29),
                ("lamed-report", ALERTS_TIMEOUT_SECONDS),
                ("lamed-dashboard", 11)
            ]
        );
        let env = plan.environment(&config, &"k".repeat(20));
        let sent: serde_json::Value = serde_json::from_str(&env["LAMED_WEBHOOKS"]).unwrap();
        assert_eq!(sent.as_array().unwrap().len(), 1, "{sent}");
        assert_eq!(env["LAMED_WEBHOOK_URL"], "https://hooks.example.com/a");
        assert_eq!(function_config(&env).unwrap().webhooks, config.webhooks);
        assert_eq!(config.webhooks.len(), 2);
        assert_eq!(Schedule::every(1).expression, "rate(1 minute)");
        assert_eq!(Schedule::every(300).expression, "rate(5 minutes)");

        let slow = with_webhooks(r#""request_timeout_ms": 28001,"#);
        assert!(
            plan_err(&slow).contains("at most 28000"),
            "{}",
            plan_err(&slow)
        );
        let edge = with_webhooks(r#""request_timeout_ms": 28000,"#);
        let track = &plan_of(&edge).functions[0];
        assert_eq!(track.timeout_seconds, 29);

        // Deploy refuses exactly what the functions would: webhooks on the
        // default table are refused while the DynamoDB store keeps no
        // alert state.
        let on_dynamodb = config_dynamodb_with_webhook();
        let functions_refuse = Config::resolve(
            None,
            FileConfig::default(),
            Overrides {
                settings: lamed_config::settings::Given::default()
                    .with("dynamodb_table", DEFAULT_TABLE.into())
                    .with("webhook_url", "https://hooks.example.com/a".into())
                    .with(
                        "webhook_secret",
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                    ),
                ..Overrides::default()
            },
        )
        .is_err();
        match super::plan(&on_dynamodb, Arch::X86_64) {
            Ok(_) => assert!(!functions_refuse),
            Err(err) => {
                assert!(functions_refuse, "{err:#}");
                assert!(
                    format!("{err:#}").contains("the functions would refuse"),
                    "{err:#}"
                );
            }
        }
    }

    fn plan_of(config: &Config) -> Plan {
        plan(config, Arch::X86_64).unwrap()
    }

    /// The default deployment (DynamoDB table `lamed`) with a webhook.
    fn config_dynamodb_with_webhook() -> Config {
        config(
            r#"{"webhook_url": "https://hooks.example.com/a",
                "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
        )
    }

    fn plan_err(config: &Config) -> String {
        format!("{:#}", plan(config, Arch::X86_64).unwrap_err())
    }
}
