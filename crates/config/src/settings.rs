//! Every setting of `lamed`, declared once.
//!
//! Each field of [`Settings`] carries its doc comment (the `--help` text and
//! the README's "meaning"), its default, its flag, its `LAMED_*` variable
//! and, by its name, its `config.json` key (the clap id and the serde name
//! are the field name). From this one definition come: the flags of
//! `lamed serve`, the variables the AWS Lambda entry reads, the variables
//! `lamed deploy` writes, the template of `lamed configure` and the table
//! under "Configuration" in README.md.
//!
//! Precedence (flag, then variable, then `config.json`, then default) is
//! kept by [`Given`]: only what the command line or the environment gave is
//! recorded there, and [`resolve`] lays it over the file and the defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use lamed_core::model::Caps;
use lamed_core::registry::RegistrationMode;
use lamed_store::redis::RedisSettings;
use lamed_store::Durability;

/// The help heading of the settings that only `lamed serve` on a machine
/// uses; `lamed deploy` does not send them to AWS Lambda.
pub const LOCAL_HEADING: &str = "Local server (not sent to AWS Lambda)";
/// The help heading of the settings that also apply on AWS Lambda.
pub const COUNTING_HEADING: &str = "Counting";
/// The help heading of the request deadline: `lamed serve`'s, and on AWS
/// Lambda the router's, which `lamed deploy` sizes the functions' timeout by.
pub const REQUESTS_HEADING: &str = "Requests";
/// The help heading of the alerts' settings: `lamed serve` checks on its
/// own, and on AWS Lambda a scheduled invocation checks (`lamed deploy`).
pub const ALERTS_HEADING: &str = "Alerts";
/// The help heading of the caps, `config.json`'s `limits` object.
pub const LIMITS_HEADING: &str = "Limits (config.json \"limits\")";

/// The default of `request_timeout_ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The default of `max_connections`: more than the 10,000 idle
/// connections of a flood lamed is tested against (`tests/connections.rs`),
/// within common open-file limits (systemd's hard limit is 524,288, the
/// packaged unit sets 65,536).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// The default of `header_timeout_ms`: hyper's own default.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 30_000;

/// The namespace of Sixpack's experiments (declared with its rules).
pub use lamed_core::sixpack::DEFAULT_NAMESPACE as DEFAULT_SIXPACK_NAMESPACE;

/// Every setting: what `lamed serve` runs with once resolved.
///
/// To add a setting, add a field here (or to [`LimitSettings`]): doc
/// comment, `#[arg(long, env = "LAMED_...", default_value...)]`, and the
/// field name as its `config.json` key. Give it [`LOCAL_HEADING`] when it
/// means nothing on AWS Lambda.
#[derive(Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct Settings {
    /// Address to listen on
    #[arg(
        long,
        env = "LAMED_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        help_heading = LOCAL_HEADING
    )]
    pub listen: SocketAddr,

    /// Directory of the embedded store and the generated API key
    #[arg(
        long,
        env = "LAMED_DATA_DIR",
        value_name = "DIR",
        default_value = "lamed-data",
        help_heading = LOCAL_HEADING
    )]
    pub data_dir: PathBuf,

    /// When the embedded store fsyncs its log, which is what a power cut
    /// costs: "commit" (nothing answered 200; slower), "second" (at most the
    /// last second), "none" (everything since the last checkpoint)
    ///
    /// A crash or kill -9 of lamed alone loses nothing in every mode.
    /// "second" syncs from a thread of its own, so tracking never waits
    /// for the disk. --fsync alone and true mean "commit"; false means
    /// "none" (the earlier boolean). README: "Durability".
    #[arg(
        long,
        env = "LAMED_FSYNC",
        value_name = "WHEN",
        value_enum,
        num_args = 0..=1,
        default_missing_value = "commit",
        default_value_t = Durability::default(),
        action = ArgAction::Set,
        help_heading = LOCAL_HEADING
    )]
    pub fsync: Durability,

    /// Base URL the world reaches this server at, for the printed snippet
    /// [default: http://<listen>]
    #[arg(
        long,
        env = "LAMED_PUBLIC_URL",
        value_name = "URL",
        help_heading = LOCAL_HEADING
    )]
    pub public_url: Option<String>,

    /// Serve HTTPS with this certificate (PEM, with its chain), reloaded
    /// when the file changes or on SIGHUP
    ///
    /// Needs tls_key. Certbot's fullchain.pem works as it is: a renewal is
    /// picked up within seconds, without dropping connections; a new
    /// certificate that does not load is logged and the old one kept.
    #[arg(
        long,
        env = "LAMED_TLS_CERT",
        value_name = "PATH",
        help_heading = LOCAL_HEADING
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of tls_cert
    #[arg(
        long,
        env = "LAMED_TLS_KEY",
        value_name = "PATH",
        help_heading = LOCAL_HEADING
    )]
    pub tls_key: Option<PathBuf>,

    /// Longest a request may take, in milliseconds, before it is answered
    /// 503 with Retry-After (the client sends it again); a delete gets at
    /// least a minute
    ///
    /// Keeps a stuck store from holding connections, and shutdown from
    /// waiting on them.
    #[arg(
        long,
        env = "LAMED_REQUEST_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = DEFAULT_REQUEST_TIMEOUT_MS,
        help_heading = REQUESTS_HEADING
    )]
    pub request_timeout_ms: u64,

    /// Most requests read and served at once; past it no request is read
    /// (it waits in the kernel's socket buffers); 0 for no limit
    ///
    /// Bounds memory, open store work and the server's own latency under
    /// overload at almost no CPU (TCP backpressure, where a 503 costs
    /// nearly as much as an answer). A request head still incomplete 50 ms
    /// after its first bytes is read without a slot, and answered 503
    /// with Retry-After when none is free then; /health is never refused.
    #[arg(
        long,
        env = "LAMED_MAX_IN_FLIGHT_REQUESTS",
        value_name = "N",
        default_value_t = 256,
        help_heading = LOCAL_HEADING
    )]
    pub max_in_flight_requests: usize,

    /// Most connections open at once; at the cap lamed stops accepting and
    /// new connections wait in the kernel's backlog (lowered to fit the
    /// open-file limit)
    ///
    /// An idle connection costs about 1 KB here and a few in the kernel, so
    /// the cap is about file descriptors: lamed raises its open-file limit
    /// to the hard limit at start and keeps 256 of them for the store and
    /// logs. Browsers hold a connection per visitor tab, closed after
    /// header_timeout_ms idle.
    #[arg(
        long,
        env = "LAMED_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        help_heading = LOCAL_HEADING
    )]
    pub max_connections: usize,

    /// Longest a connection may wait for a request, or take to send its
    /// headers, in milliseconds, before it is closed
    ///
    /// Frees the slots of idle keep-alive connections and of clients that
    /// connect and send nothing, or send slowly.
    #[arg(
        long,
        env = "LAMED_HEADER_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = DEFAULT_HEADER_TIMEOUT_MS,
        help_heading = LOCAL_HEADING
    )]
    pub header_timeout_ms: u64,

    /// API key for the private endpoints, at least 16 characters
    /// [default: generated once, kept in DIR/api_key]
    ///
    /// Prefer the LAMED_API_KEY variable or the config file: command lines
    /// are visible to other local users.
    #[arg(
        long,
        env = "LAMED_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        help_heading = COUNTING_HEADING
    )]
    pub api_key: Option<String>,

    /// File whose first line is the API key, such as a systemd credential
    /// ($CREDENTIALS_DIRECTORY/api_key); instead of api_key
    ///
    /// Keeps the key out of command lines, the environment and config.json,
    /// readable only by the service. Read at start; lamed deploy sends the
    /// key itself to AWS Lambda.
    #[arg(
        long,
        env = "LAMED_API_KEY_FILE",
        value_name = "PATH",
        help_heading = LOCAL_HEADING
    )]
    pub api_key_file: Option<PathBuf>,

    /// Dedupe window in seconds; 0 never forgets
    ///
    /// The same (namespace, experiment, event, variant, uuid) is counted once
    /// within this window from its first sighting, as in Lamed. At most
    /// 315360000 (10 years).
    #[arg(
        long,
        env = "LAMED_UUID_EXPIRY_SECONDS",
        value_name = "SECONDS",
        default_value_t = 86_400,
        help_heading = COUNTING_HEADING
    )]
    pub uuid_expiry_seconds: u64,

    /// Who may create experiments: "open" (the first event of an unknown
    /// experiment registers it) or "required" (only registered experiments,
    /// variants and goals count; the rest is ignored)
    #[arg(
        long,
        env = "LAMED_REGISTRATION",
        value_name = "MODE",
        value_enum,
        default_value_t = RegistrationMode::Open,
        help_heading = COUNTING_HEADING
    )]
    pub registration: RegistrationMode,

    /// Most events in one POST /track batch
    #[arg(
        long,
        env = "LAMED_MAX_BATCH_EVENTS",
        value_name = "N",
        default_value_t = 1000,
        help_heading = COUNTING_HEADING
    )]
    pub max_batch_events: usize,

    /// Count on Redis or Redis Cluster at this URL instead of the embedded
    /// store
    ///
    /// redis://[user[:password]@]host[:port][/db], or rediss:// for TLS;
    /// comma-separated URLs are the seed nodes of a cluster. Replaces the
    /// config file's "redis" setting (there also redis-py keyword arguments
    /// or a list of nodes). A single node that is part of a Redis Cluster is
    /// detected and used as a cluster. Prefer the variable when the URL holds
    /// a password.
    #[arg(
        long,
        env = "LAMED_REDIS_URL",
        value_name = "URL",
        hide_env_values = true,
        value_parser = RedisUrls,
        help_heading = COUNTING_HEADING
    )]
    #[serde(default, with = "redis_value")]
    pub redis: Option<RedisSettings>,

    /// Count in this DynamoDB table instead of the embedded store (created
    /// when missing)
    ///
    /// On demand (nothing to pay while idle), TTL on; a table with another
    /// key schema is refused. Region, credentials and endpoint come from
    /// the AWS SDK's usual settings (AWS_REGION, AWS_PROFILE,
    /// AWS_ENDPOINT_URL...). Not with redis. Needs a lamed built with
    /// feature dynamodb. lamed deploy counts in it on AWS Lambda (in a
    /// table named "lamed" when neither this nor redis is set).
    #[arg(
        long,
        env = "LAMED_DYNAMODB_TABLE",
        value_name = "NAME",
        help_heading = COUNTING_HEADING
    )]
    #[serde(default)]
    pub dynamodb_table: Option<String>,

    /// Ignore tracking from bots: crawler user agents, a missing user
    /// agent, bot_user_agents and ignored_networks
    ///
    /// The crawler list is npm isbot's (README: "Bot filtering"). false
    /// counts every request.
    #[arg(
        long,
        env = "LAMED_BOT_FILTER",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = true,
        action = ArgAction::Set,
        help_heading = COUNTING_HEADING
    )]
    pub bot_filter: bool,

    /// More user agents to ignore as bots: regexes, case-insensitive,
    /// comma-separated
    ///
    /// A pattern that holds a comma needs a JSON array here
    /// (["a{1,2}","b"]) or in config.json.
    #[arg(
        long,
        env = "LAMED_BOT_USER_AGENTS",
        value_name = "REGEXES",
        value_parser = List,
        default_value = "[]",
        help_heading = COUNTING_HEADING
    )]
    // `std::vec::Vec`: one value parsed whole by `List`, not one per flag.
    pub bot_user_agents: std::vec::Vec<String>,

    /// Client networks to ignore as bots (monitors, your office): CIDRs
    /// such as 10.0.0.0/8 or 2001:db8::/32, comma-separated
    #[arg(
        long,
        env = "LAMED_IGNORED_NETWORKS",
        value_name = "CIDRS",
        value_parser = List,
        default_value = "[]",
        help_heading = COUNTING_HEADING
    )]
    pub ignored_networks: std::vec::Vec<String>,

    /// Reverse proxies in front of lamed that add to X-Forwarded-For; 0
    /// takes the client address from the connection
    ///
    /// With N, the client is the Nth address from the right of
    /// X-Forwarded-For (the furthest one when it has fewer). Set it only
    /// when every request passes through those proxies: anyone can send
    /// the header.
    #[arg(
        long,
        env = "LAMED_TRUSTED_PROXIES",
        value_name = "N",
        default_value_t = 0,
        help_heading = COUNTING_HEADING
    )]
    pub trusted_proxies: usize,

    /// Dimensions results break down by: device, browser, country;
    /// comma-separated, [] for none
    ///
    /// Recorded with each counted GET /track event, as aggregate counters
    /// only (README: "Segments"). country needs a source: geoip_db, or
    /// CloudFront-Viewer-Country on AWS Lambda.
    #[arg(
        long,
        env = "LAMED_SEGMENTS",
        value_name = "DIMENSIONS",
        value_parser = List,
        default_value = "device,browser,country",
        help_heading = COUNTING_HEADING
    )]
    pub segments: std::vec::Vec<String>,

    /// MaxMind-format country database (.mmdb) for the country segment
    ///
    /// GeoLite2-Country (its own licence) or a CC0 one such as
    /// ip-location-db's geo-whois-asn-country; read once at start. Not on
    /// AWS Lambda, where CloudFront-Viewer-Country gives the country.
    #[arg(
        long,
        env = "LAMED_GEOIP_DB",
        value_name = "FILE",
        help_heading = LOCAL_HEADING
    )]
    pub geoip_db: Option<PathBuf>,

    /// Namespace of the experiments of the Sixpack API (/participate,
    /// /convert)
    ///
    /// A Sixpack experiment is a Lamed experiment in this namespace: the
    /// report, the dashboard and /experiments?namespace=... show it.
    #[arg(
        long,
        env = "LAMED_SIXPACK_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = DEFAULT_SIXPACK_NAMESPACE,
        help_heading = COUNTING_HEADING
    )]
    pub sixpack_namespace: String,

    /// A webhook endpoint to send alerts to (Standard Webhooks, signed with
    /// webhook_secret), besides config.json's "webhooks"
    ///
    /// Alerts: a sample-ratio mismatch (p < 0.001), a decision reached, a
    /// stalled experiment, a status change (README: "Alerts").
    #[arg(
        long,
        env = "LAMED_WEBHOOK_URL",
        value_name = "URL",
        // Some endpoints' paths are their secret (Slack's): kept out of logs.
        hide_env_values = true,
        help_heading = ALERTS_HEADING
    )]
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The signing secret of webhook_url: whsec_ and base64, as Standard
    /// Webhooks secrets are
    #[arg(
        long,
        env = "LAMED_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = ALERTS_HEADING
    )]
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Hours without a new participant after which a running experiment
    /// that had some is stalled
    #[arg(
        long,
        env = "LAMED_STALL_HOURS",
        value_name = "HOURS",
        default_value_t = 6,
        help_heading = ALERTS_HEADING
    )]
    pub stall_hours: u64,
    /// Seconds between two checks of the experiments for alerts
    ///
    /// Each check reads every experiment's counters and makes a report
    /// only for one with events since the last check. Several instances on
    /// one store send each alert once.
    #[arg(
        long,
        env = "LAMED_ALERT_CHECK_SECONDS",
        value_name = "SECONDS",
        default_value_t = 300,
        help_heading = ALERTS_HEADING
    )]
    pub alert_check_seconds: u64,
    /// Milliseconds before a failed webhook is retried the first time;
    /// each later wait is three times longer (up to 10 hours, for 24 hours)
    #[arg(
        long,
        env = "LAMED_WEBHOOK_FIRST_RETRY_MS",
        value_name = "MS",
        default_value_t = 5_000,
        help_heading = ALERTS_HEADING
    )]
    pub webhook_first_retry_ms: u64,
    /// Caps on what the public tracking endpoint may create.
    #[command(flatten)]
    pub limits: LimitSettings,
}

/// The caps on what tracking may create: `config.json`'s `limits` object.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = LIMITS_HEADING)]
pub struct LimitSettings {
    /// Most namespaces tracking may create
    #[arg(long, env = "LAMED_MAX_NAMESPACES", value_name = "N",
          default_value_t = Caps::default().max_namespaces)]
    pub max_namespaces: usize,

    /// Most experiments per namespace
    #[arg(long = "max-experiments", env = "LAMED_MAX_EXPERIMENTS", value_name = "N",
          default_value_t = Caps::default().max_experiments_per_namespace)]
    pub max_experiments_per_namespace: usize,

    /// Most variants per experiment
    #[arg(long = "max-variants", env = "LAMED_MAX_VARIANTS", value_name = "N",
          default_value_t = Caps::default().max_variants_per_experiment)]
    pub max_variants_per_experiment: usize,

    /// Most goals per experiment
    #[arg(long = "max-goals", env = "LAMED_MAX_GOALS", value_name = "N",
          default_value_t = Caps::default().max_goals_per_experiment)]
    pub max_goals_per_experiment: usize,
}

impl From<&LimitSettings> for Caps {
    fn from(limits: &LimitSettings) -> Caps {
        Caps {
            registration: RegistrationMode::default(),
            max_namespaces: limits.max_namespaces,
            max_experiments_per_namespace: limits.max_experiments_per_namespace,
            max_variants_per_experiment: limits.max_variants_per_experiment,
            max_goals_per_experiment: limits.max_goals_per_experiment,
        }
    }
}

impl fmt::Debug for Settings {
    /// Every setting, with the values of hidden ones (the API key, the
    /// Redis URL with its password) kept out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = to_object(self);
        for arg in definition().get_arguments() {
            if arg.is_hide_env_values_set() {
                if let Some(slot) = leaf_mut(&mut value, arg.get_id().as_str()) {
                    if !slot.is_null() {
                        *slot = Value::String("<redacted>".into());
                    }
                }
            }
        }
        if let (Some(redis), Some(slot)) = (&self.redis, leaf_mut(&mut value, "redis")) {
            *slot = Value::String(redis.redacted());
        }
        write!(f, "Settings({})", Value::Object(value))
    }
}

/// The clap parser of `--redis`-style values (`LAMED_REDIS_URL`): one URL
/// or comma-separated cluster nodes. Its errors never repeat the value,
/// which may hold a password.
#[derive(Debug, Clone, Copy)]
pub struct RedisUrls;

impl clap::builder::TypedValueParser for RedisUrls {
    type Value = RedisSettings;

    fn parse_ref(
        &self,
        _cmd: &Command,
        arg: Option<&Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RedisSettings, clap::Error> {
        let invalid = |why: String| {
            let name = arg.map(|arg| {
                let env = arg
                    .get_env()
                    .map(|env| format!(" ({})", env.to_string_lossy()));
                format!("'{arg}'{}", env.unwrap_or_default())
            });
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {}: {why}\n", name.unwrap_or_default()),
            )
        };
        let text = value.to_str().ok_or_else(|| invalid("not UTF-8".into()))?;
        RedisSettings::from_urls(text).map_err(|err| invalid(err.to_string()))
    }
}

/// The clap parser of list settings (`--ignored-networks`): comma-separated
/// items, or a JSON array of strings (what `config.json` holds, and what
/// `lamed deploy` writes to AWS Lambda), whose items may hold commas.
#[derive(Debug, Clone, Copy)]
pub struct List;

impl clap::builder::TypedValueParser for List {
    type Value = Vec<String>;

    fn parse_ref(
        &self,
        _cmd: &Command,
        arg: Option<&Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Vec<String>, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            let name = arg.map(ToString::to_string).unwrap_or_default();
            clap::Error::raw(
                clap::error::ErrorKind::InvalidUtf8,
                format!("invalid value for '{name}': not UTF-8\n"),
            )
        })?;
        Ok(parse_list(text))
    }
}

/// A list as a flag or variable holds it: a JSON array of strings, else
/// comma-separated items (blank ones dropped), so `[a-z]bot,x` is two
/// patterns.
pub fn parse_list(text: &str) -> Vec<String> {
    if let Ok(items) = serde_json::from_str::<Vec<String>>(text) {
        return items;
    }
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A Redis setting as `config.json` and [`Given`] hold it: its URLs,
/// comma-separated.
pub fn redis_urls(redis: &RedisSettings) -> Value {
    Value::String(
        redis
            .nodes
            .iter()
            .map(|node| node.url())
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `redis` in `config.json`: redis-py keyword arguments, a URL (or
/// comma-separated URLs) or a list of nodes; written back as URLs.
mod redis_value {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use lamed_store::redis::RedisSettings;

    pub fn serialize<S: Serializer>(
        redis: &Option<RedisSettings>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match redis {
            Some(redis) => super::redis_urls(redis).serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<RedisSettings>, D::Error> {
        let parsed = match Value::deserialize(deserializer)? {
            Value::Null => return Ok(None),
            Value::String(urls) => RedisSettings::from_urls(&urls),
            other => RedisSettings::from_json(&other).map(|(settings, _ignored)| settings),
        };
        parsed.map(Some).map_err(serde::de::Error::custom)
    }
}

/// The settings a command line or the environment gave explicitly (not
/// the defaults), by id (= `config.json` key), as JSON values.
///
/// `#[command(flatten)]` it into a command to take every setting as a flag
/// and variable.
#[derive(Clone, Default, PartialEq)]
pub struct Given(BTreeMap<String, Value>);

impl Given {
    /// Records `id` as given, with its value as `config.json` would hold it.
    ///
    /// # Panics
    ///
    /// When `id` is not a setting (a programming error).
    pub fn with(mut self, id: &str, value: Value) -> Given {
        assert!(
            leaf_mut(&mut defaults(), id).is_some(),
            "'{id}' is not a setting"
        );
        self.0.insert(id.to_owned(), value);
        self
    }

    /// The ids given.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether `id` was given.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }
}

impl fmt::Debug for Given {
    /// Only the ids: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ids()).finish()
    }
}

impl Args for Given {
    fn augment_args(cmd: Command) -> Command {
        Settings::augment_args(cmd)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        Settings::augment_args_for_update(cmd)
    }
}

impl FromArgMatches for Given {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut parsed = to_object(&Settings::from_arg_matches(matches)?);
        let mut given = BTreeMap::new();
        for arg in definition().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                if let Some(value) = leaf_mut(&mut parsed, id) {
                    given.insert(id.to_owned(), value.take());
                }
            }
        }
        Ok(Given(given))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let update = Given::from_arg_matches(matches)?;
        self.0.extend(update.0);
        Ok(())
    }
}

/// Why settings cannot be resolved: a value of the file has the wrong type
/// or an unknown `limits` key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {source}")]
pub struct SettingError {
    /// The `config.json` key, dotted (`limits.max_goals_per_experiment`).
    pub key: String,
    /// What serde found wrong.
    pub source: serde_json::Error,
}

/// Settings resolved: what `given` says, else what the file's object
/// (`config.json` minus `extra_wiring`) says, else the defaults. Also
/// returns the file's top-level keys that are no setting.
///
/// # Errors
///
/// When a value of the file has the wrong type, or `limits` holds an
/// unknown key.
pub fn resolve(
    given: &Given,
    file: &Map<String, Value>,
) -> Result<(Settings, Vec<String>), SettingError> {
    let mut merged = defaults();
    let mut unknown = Vec::new();
    for (key, value) in file.iter().filter(|(_, value)| !value.is_null()) {
        match (merged.get_mut(key), value) {
            // A group (limits): key by key, unknown keys left for serde to
            // refuse by name.
            (Some(Value::Object(group)), Value::Object(values)) => {
                group.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            (Some(slot), _) => *slot = value.clone(),
            (None, _) => unknown.push(key.clone()),
        }
    }
    for (id, value) in &given.0 {
        if let Some(slot) = leaf_mut(&mut merged, id) {
            *slot = value.clone();
        }
    }
    let settings: Settings =
        serde_path_to_error::deserialize(Value::Object(merged)).map_err(|err| SettingError {
            key: err.path().to_string(),
            source: err.into_inner(),
        })?;
    Ok((settings, unknown))
}

/// The definition as a clap command (only the settings).
pub fn definition() -> Command {
    Settings::augment_args(Command::new("settings"))
}

/// One setting's clap argument, for commands that take only some of them.
///
/// # Panics
///
/// When `id` is not a setting (a programming error).
pub fn arg(id: &str) -> Arg {
    definition()
        .get_arguments()
        .find(|arg| arg.get_id() == id)
        .unwrap_or_else(|| panic!("'{id}' is not a setting"))
        .clone()
}

/// Every setting's default, shaped as `config.json` (the environment is
/// not read).
pub fn defaults() -> Map<String, Value> {
    let matches = definition()
        .mut_args(|arg| arg.env(None::<&'static str>))
        .no_binary_name(true)
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("the defaults parse");
    to_object(&Settings::from_arg_matches(&matches).expect("the defaults parse"))
}

/// What one setting is, for documentation and deploy.
#[derive(Debug, Clone)]
pub struct SettingInfo {
    /// The clap id, the field name.
    pub id: String,
    /// The `config.json` key, dotted inside a group: `limits.max_goals_per_experiment`.
    pub key: String,
    /// The `LAMED_*` variable.
    pub env: String,
    /// The clap argument (flag, value name, help, default).
    pub arg: Arg,
    /// Whether it means something on AWS Lambda (deploy sends it there).
    pub on_lambda: bool,
}

/// Every setting, in definition order.
pub fn infos() -> Vec<SettingInfo> {
    let defaults = defaults();
    definition()
        .get_arguments()
        .map(|arg| {
            let id = arg.get_id().as_str().to_owned();
            SettingInfo {
                key: key_path(&defaults, &id).unwrap_or_else(|| id.clone()),
                env: arg
                    .get_env()
                    .map(|env| env.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                on_lambda: arg.get_help_heading() != Some(LOCAL_HEADING),
                arg: arg.clone(),
                id,
            }
        })
        .collect()
}

/// The `LAMED_*` variable of the setting whose field is `id` (`redis`,
/// `api_key`...), read from its definition.
///
/// # Panics
///
/// When no setting has that id: a typo in lamed's own code, caught by its
/// tests.
pub fn variable(id: &str) -> String {
    infos()
        .into_iter()
        .find(|info| info.id == id)
        .map(|info| info.env)
        .unwrap_or_else(|| panic!("no setting '{id}'"))
}

impl Settings {
    /// The `LAMED_*` variables that carry these settings to AWS Lambda:
    /// every setting that applies there and has a value.
    pub fn lambda_environment(&self) -> BTreeMap<String, String> {
        let mut values = to_object(self);
        infos()
            .into_iter()
            .filter(|info| info.on_lambda)
            .filter_map(|info| {
                let text = match leaf_mut(&mut values, &info.id)?.take() {
                    Value::Null => return None,
                    Value::String(text) => text,
                    // Numbers, booleans; lists as JSON arrays (see `List`).
                    other => other.to_string(),
                };
                Some((info.env, text))
            })
            .collect()
    }

    /// The caps, as the stores take them.
    pub fn caps(&self) -> Caps {
        Caps {
            registration: self.registration,
            ..Caps::from(&self.limits)
        }
    }
}

/// The README table of the settings: `config.json` key, flag / variable,
/// default, meaning. Rows are the options of `lamed serve` (settings
/// first), then the file-only `extra_wiring`, then the global options.
/// `cli` is the whole `lamed` command, which embeds the settings.
pub fn readme_table(cli: &Command) -> String {
    let serve = cli
        .find_subcommand("serve")
        .expect("lamed has a serve command");
    let keys: BTreeMap<String, String> = infos()
        .into_iter()
        .map(|info| (info.id, info.key))
        .collect();
    let row = |arg: &Arg| readme_row(arg, keys.get(arg.get_id().as_str()).map(String::as_str));
    let (settings, others): (Vec<&Arg>, Vec<&Arg>) = serve
        .get_arguments()
        .filter(|arg| !is_builtin(arg))
        .partition(|arg| keys.contains_key(arg.get_id().as_str()));
    let mut table = String::from(
        "| config.json key | flag / variable | default | meaning |\n|---|---|---|---|\n",
    );
    table.extend(settings.into_iter().map(row));
    table.extend(others.into_iter().map(row));
    table.push_str(
        "| `extra_wiring` | | `[]` | extra paths, each serving `lamed.track`, `lamed.all` or `lamed.delete` (config.json only) |\n",
    );
    table.push_str(
        "| `webhooks` | | `[]` | webhook endpoints for alerts, each `{\"url\", \"secret\", \"events\", \"format\"}`: `events` a list of event types (all when missing), `format` `standard` (signed) or `slack` (config.json only) |\n",
    );
    table.extend(cli.get_arguments().filter(|arg| !is_builtin(arg)).map(row));
    table
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn readme_row(arg: &Arg, key: Option<&str>) -> String {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let (meaning, stated_default) = match help.split_once(" [default: ") {
        Some((meaning, rest)) => (meaning.to_owned(), rest.strip_suffix(']')),
        None => (help.clone(), None),
    };
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let default = match (defaults.is_empty(), stated_default) {
        (false, _) => format!("`{}`", defaults.join(",")),
        // A plain switch: clap adds its `false` only when building.
        (true, None) if matches!(arg.get_action(), ArgAction::SetTrue) => "`false`".to_owned(),
        (true, Some(stated)) => stated.to_owned(),
        (true, None) => "none".to_owned(),
    };
    let long = arg.get_long().unwrap_or_default();
    let takes_optional_value =
        arg.get_num_args().is_some_and(|n| n.min_values() == 0) && arg.get_action().takes_values();
    let mut flag = if takes_optional_value {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(ToString::to_string)
            .unwrap_or_else(|| "VALUE".to_owned());
        format!("`--{long}[={name}]`")
    } else {
        format!("`--{long}`")
    };
    if let Some(env) = arg.get_env() {
        flag.push_str(&format!(" / `{}`", env.to_string_lossy()));
    }
    let key = key.map(|k| format!("`{k}`")).unwrap_or_default();
    // Plain text in a Markdown cell: `|` ends the cell, `<...>` is HTML.
    let cell = |text: &str| {
        text.replace('|', "\\|")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "| {key} | {flag} | {} | {} |\n",
        cell(&default),
        cell(&meaning)
    )
}

/// A value serialized as its JSON object.
fn to_object<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value).expect("settings serialize") {
        Value::Object(map) => map,
        _ => unreachable!("settings serialize as an object"),
    }
}

/// The value of setting `id`: a top-level key, or a key of a group.
fn leaf_mut<'a>(object: &'a mut Map<String, Value>, id: &str) -> Option<&'a mut Value> {
    if object.contains_key(id) {
        return object.get_mut(id);
    }
    object
        .values_mut()
        .filter_map(Value::as_object_mut)
        .find_map(|group| group.get_mut(id))
}

/// The dotted `config.json` key of setting `id`.
fn key_path(object: &Map<String, Value>, id: &str) -> Option<String> {
    if object.contains_key(id) {
        return Some(id.to_owned());
    }
    object.iter().find_map(|(name, value)| {
        value
            .as_object()
            .filter(|group| group.contains_key(id))
            .map(|_| format!("{name}.{id}"))
    })
}

/// The setting ids, for tests.
#[cfg(test)]
fn ids() -> std::collections::BTreeSet<String> {
    definition()
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `args` as flags, with no environment, as a command would.
    fn given(args: &[&str]) -> Given {
        let matches = definition()
            .mut_args(|arg| arg.env(None::<&'static str>))
            .no_binary_name(true)
            .try_get_matches_from(args)
            .unwrap();
        Given::from_arg_matches(&matches).unwrap()
    }

    fn file(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    /// Every setting has a flag, a LAMED_ variable, a help text and a
    /// config.json key, and the ids are the keys.
    #[test]
    fn every_setting_is_complete() {
        let infos = infos();
        assert_eq!(infos.len(), ids().len());
        for info in &infos {
            assert!(info.arg.get_long().is_some(), "{} has no flag", info.id);
            assert!(
                info.env.starts_with("LAMED_"),
                "{} has no variable",
                info.id
            );
            assert!(info.arg.get_help().is_some(), "{} has no help", info.id);
            assert!(info.key.ends_with(&info.id), "{}", info.key);
        }
        let limits = infos.iter().find(|i| i.id == "max_goals_per_experiment");
        assert_eq!(limits.unwrap().key, "limits.max_goals_per_experiment");
    }

    /// A flag wins over the file, the file over the default; one setting
    /// of each heading.
    #[test]
    fn flag_then_file_then_default() {
        let file = file(json!({
            "listen": "127.0.0.1:9",
            "data_dir": "from-file",
            "uuid_expiry_seconds": 60,
            "max_batch_events": 5,
            "limits": {"max_goals_per_experiment": 3, "max_variants_per_experiment": 4}
        }));
        let flags = given(&[
            "--listen",
            "127.0.0.1:1",
            "--max-goals",
            "7",
            "--max-batch-events",
            "9",
        ]);
        let (settings, unknown) = resolve(&flags, &file).unwrap();
        assert!(unknown.is_empty());
        // Flags.
        assert_eq!(settings.listen.port(), 1);
        assert_eq!(settings.limits.max_goals_per_experiment, 7);
        assert_eq!(settings.max_batch_events, 9);
        // File.
        assert_eq!(settings.data_dir, PathBuf::from("from-file"));
        assert_eq!(settings.uuid_expiry_seconds, 60);
        assert_eq!(settings.limits.max_variants_per_experiment, 4);
        // Defaults.
        assert_eq!(settings.fsync, Durability::Second);
        assert_eq!(
            settings.limits.max_namespaces,
            Caps::default().max_namespaces
        );
        assert_eq!(settings.api_key, None);
    }

    /// A variable wins over the file and loses to a flag, for one setting
    /// of each heading. The settings read variables of this test's own
    /// (no other test reads them), so setting them races with nothing.
    #[test]
    fn variable_between_flag_and_file() {
        let vars = [
            ("listen", "LAMED_TEST_PRECEDENCE_LISTEN", "127.0.0.1:6"),
            ("uuid_expiry_seconds", "LAMED_TEST_PRECEDENCE_UUID", "6"),
            ("max_namespaces", "LAMED_TEST_PRECEDENCE_NAMESPACES", "6"),
        ];
        for (_, var, value) in vars {
            std::env::set_var(var, value);
        }
        let parse = |args: &[&str]| {
            let matches = definition()
                .mut_args(|arg| {
                    let var = vars
                        .iter()
                        .find(|(id, _, _)| arg.get_id() == *id)
                        .map(|(_, var, _)| *var);
                    arg.env(var)
                })
                .no_binary_name(true)
                .try_get_matches_from(args)
                .unwrap();
            Given::from_arg_matches(&matches).unwrap()
        };
        let file = file(json!({
            "listen": "127.0.0.1:1", "uuid_expiry_seconds": 1, "fsync": true,
            "limits": {"max_namespaces": 1}
        }));
        let (settings, _) = resolve(&parse(&[]), &file).unwrap();
        assert_eq!(settings.listen.port(), 6);
        assert_eq!(settings.uuid_expiry_seconds, 6);
        assert_eq!(settings.limits.max_namespaces, 6);
        assert_eq!(settings.fsync, Durability::Commit);
        let flags = [
            "--listen=127.0.0.1:8",
            "--uuid-expiry-seconds=8",
            "--max-namespaces=8",
        ];
        let (settings, _) = resolve(&parse(&flags), &file).unwrap();
        assert_eq!(settings.listen.port(), 8);
        assert_eq!(settings.uuid_expiry_seconds, 8);
        assert_eq!(settings.limits.max_namespaces, 8);
        for (_, var, _) in vars {
            std::env::remove_var(var);
        }
        let (settings, _) = resolve(&parse(&[]), &file).unwrap();
        assert_eq!(settings.listen.port(), 1);
        assert_eq!(settings.uuid_expiry_seconds, 1);
        assert_eq!(settings.limits.max_namespaces, 1);
    }

    /// The bot settings: on by default; `--bot-filter false` (a space,
    /// not only `=`), a variable and the file turn it off; lists come
    /// comma-separated or as JSON arrays from flags and variables, as
    /// arrays from the file.
    #[test]
    fn bot_settings() {
        let (settings, _) = resolve(&Given::default(), &Map::new()).unwrap();
        assert!(settings.bot_filter);
        assert!(settings.bot_user_agents.is_empty() && settings.ignored_networks.is_empty());
        assert_eq!(settings.trusted_proxies, 0);
        let flags = given(&[
            "--bot-filter",
            "false",
            "--bot-user-agents",
            "^acme/, [a-c]bot ,",
            "--ignored-networks",
            r#"["10.0.0.0/8", "::1"]"#,
            "--trusted-proxies",
            "2",
        ]);
        let (settings, _) = resolve(&flags, &Map::new()).unwrap();
        assert!(!settings.bot_filter);
        assert_eq!(settings.bot_user_agents, ["^acme/", "[a-c]bot"]);
        assert_eq!(settings.ignored_networks, ["10.0.0.0/8", "::1"]);
        assert_eq!(settings.trusted_proxies, 2);
        for (args, expected) in [
            (&["--bot-filter"][..], true),
            (&["--bot-filter=false"], false),
        ] {
            let (settings, _) = resolve(&given(args), &Map::new()).unwrap();
            assert_eq!(settings.bot_filter, expected, "{args:?}");
        }
        let from_file = file(json!({
            "bot_filter": false, "bot_user_agents": ["x{1,2}"], "trusted_proxies": 1
        }));
        let (settings, _) = resolve(&Given::default(), &from_file).unwrap();
        assert!(!settings.bot_filter);
        assert_eq!(settings.bot_user_agents, ["x{1,2}"]);
        assert_eq!(settings.trusted_proxies, 1);
        let err = resolve(
            &Given::default(),
            &file(json!({"ignored_networks": "10.0.0.0/8"})),
        );
        assert_eq!(err.unwrap_err().key, "ignored_networks");
        // A variable of this test's own (no other test reads it).
        std::env::set_var("LAMED_TEST_BOT_FILTER", "false");
        let matches = definition()
            .mut_args(|arg| {
                let var = (arg.get_id() == "bot_filter").then_some("LAMED_TEST_BOT_FILTER");
                arg.env(var)
            })
            .no_binary_name(true)
            .try_get_matches_from(std::iter::empty::<String>())
            .unwrap();
        std::env::remove_var("LAMED_TEST_BOT_FILTER");
        let (settings, _) =
            resolve(&Given::from_arg_matches(&matches).unwrap(), &Map::new()).unwrap();
        assert!(!settings.bot_filter);
    }

    /// Wrong types in the file and unknown limits are refused by name;
    /// unknown top-level keys are returned.
    #[test]
    fn file_errors_name_the_key() {
        let err = resolve(
            &Given::default(),
            &file(json!({"uuid_expiry_seconds": "soon"})),
        )
        .unwrap_err();
        assert_eq!(err.key, "uuid_expiry_seconds");
        let err = resolve(
            &Given::default(),
            &file(json!({"limits": {"max_variantz": 3}})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_variantz"), "{err}");
        let (_, unknown) = resolve(&Given::default(), &file(json!({"colour": 1}))).unwrap();
        assert_eq!(unknown, ["colour"]);
    }

    /// The hidden values never reach Debug output.
    #[test]
    fn debug_hides_secrets() {
        let given = given(&[
            "--api-key",
            "secret-secret-secret",
            "--redis",
            "redis://:pw@h:1/0",
        ]);
        let (settings, _) = resolve(&given, &Map::new()).unwrap();
        let text = format!("{settings:?} {given:?}");
        assert!(
            !text.contains("secret-secret") && !text.contains("pw"),
            "{text}"
        );
        assert!(
            text.contains("redis://h:1/0") || text.contains("h:1"),
            "{text}"
        );
    }

    /// A setting's variable comes from its definition.
    #[test]
    fn variables_are_the_definitions() {
        assert_eq!(variable("redis"), "LAMED_REDIS_URL");
        assert_eq!(variable("api_key"), "LAMED_API_KEY");
    }
}
