//! Configuration: Lamed's `config.json` (every key it has, plus ours),
//! overridden by `LAMED_*` environment variables and command-line flags.
//! The settings themselves are declared once, in [`crate::settings`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::settings::{Given, Settings};
use lamed_core::bots::{BotFilter, BotRules};
use lamed_core::model::Caps;
use lamed_core::segmenter::Segmenter;
use lamed_core::segments::Dimension;
use lamed_core::sixpack::SixpackConfig;
use lamed_store::redis::RedisSettings;
use lamed_store::StoreOptions;

/// The file name of the generated API key inside the data directory.
const API_KEY_FILE: &str = "api_key";

/// Longest dedupe window: 10 years. Longer windows are surely mistakes,
/// and expiry times computed from them must stay far from overflow.
pub const MAX_UUID_EXPIRY_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file exists but cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde found wrong, with line and column.
        source: serde_json::Error,
    },
    /// A setting of the config file has the wrong type.
    #[error("invalid config file {file}: {problem}")]
    Setting {
        /// The file, as shown.
        file: String,
        /// The key and what is wrong with it.
        problem: crate::settings::SettingError,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The API key file (`api_key_file`) cannot be read.
    #[error("cannot read the API key file {path}: {source}")]
    ApiKeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The generated API key cannot be stored or read.
    #[error("cannot keep the API key in {path}: {source}")]
    ApiKey {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The contents of a `config.json`: Lamed's keys and ours, all optional.
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    /// Extra paths wired to one of the handlers (`lamed.track`, `lamed.all`,
    /// `lamed.delete`); `lamed serve` serves them too. Only in the file.
    #[serde(default)]
    pub extra_wiring: Vec<ExtraWiring>,
    /// Webhook endpoints for alerts. Only in the file.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Every other key: the settings (typed when resolved, see
    /// [`crate::settings`]), comments (`_`-prefixed) and unknown keys,
    /// which are reported as warnings, not errors, so that config files
    /// written for other Lamed versions keep working.
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

/// One webhook endpoint of `config.json`'s `webhooks`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where alerts are POSTed.
    pub url: String,
    /// The Standard Webhooks secret (`whsec_...`); none sends unsigned.
    #[serde(default)]
    pub secret: Option<String>,
    /// The event types it takes (`experiment.srm`, `experiment.decision`,
    /// `experiment.stalled`, `experiment.status`); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// `standard` (signed JSON) or `slack` (`{"text"}`).
    #[serde(default = "standard_format")]
    pub format: String,
}

fn standard_format() -> String {
    "standard".into()
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            // Some endpoints' paths are their secret (Slack's).
            .field(
                "url",
                &self.url.split('/').take(3).collect::<Vec<_>>().join("/"),
            )
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("events", &self.events)
            .field("format", &self.format)
            .finish()
    }
}

/// One `extra_wiring` entry, as Lamed writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ExtraWiring {
    /// The Lambda function settings; we read its `Handler`.
    pub lambda: WiringLambda,
    /// The API Gateway settings; we read `pathPart` and `method.httpMethod`.
    pub api_gateway: WiringGateway,
}

/// The `lambda` part of an `extra_wiring` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct WiringLambda {
    /// `lamed.track`, `lamed.all` or `lamed.delete`.
    #[serde(rename = "Handler")]
    pub handler: String,
    /// The function name (used by `lamed deploy`).
    #[serde(rename = "FunctionName", default)]
    pub function_name: Option<String>,
    /// Everything else (MemorySize, Timeout...), kept for deploy.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The `api_gateway` part of an `extra_wiring` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct WiringGateway {
    /// The path segment, e.g. `my_tracking_endpoint`.
    #[serde(rename = "pathPart")]
    pub path_part: String,
    /// The method settings.
    #[serde(default)]
    pub method: Value,
}

impl ExtraWiring {
    /// The handler this path serves, checked.
    pub fn handler(&self) -> Result<Handler, ConfigError> {
        Handler::from_lamed_name(&self.lambda.handler)
            .map_err(|err| ConfigError::Invalid(format!("extra_wiring {err}")))
    }
}

/// The three handlers of Lamed that `extra_wiring` can point at. What each
/// serves (methods, API key, Lambda function) is the row of
/// `server::routes::route_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `lamed.track`
    Track,
    /// `lamed.all`
    Experiments,
    /// `lamed.delete`
    Delete,
}

impl Handler {
    /// Every handler.
    pub const ALL: [Handler; 3] = [Handler::Track, Handler::Experiments, Handler::Delete];

    /// The name Lamed gives it: in `extra_wiring`'s `Handler` and in
    /// `LAMED_EXTRA_ROUTES`.
    pub const fn lamed_name(self) -> &'static str {
        match self {
            Handler::Track => "lamed.track",
            Handler::Experiments => "lamed.all",
            Handler::Delete => "lamed.delete",
        }
    }

    /// The handler Lamed calls `name`.
    ///
    /// # Errors
    ///
    /// [`UnknownHandler`] for any other name.
    pub fn from_lamed_name(name: &str) -> Result<Handler, UnknownHandler> {
        Handler::ALL
            .into_iter()
            .find(|handler| handler.lamed_name() == name)
            .ok_or_else(|| UnknownHandler(name.to_owned()))
    }
}

/// A handler name Lamed does not have.
#[derive(Debug, Clone, thiserror::Error)]
#[error("handler '{0}' is unknown; use lamed.track, lamed.all or lamed.delete")]
pub struct UnknownHandler(pub String);

/// What the command line and the `LAMED_*` variables say: the config file
/// to read and the settings given explicitly, which win over the file.
#[derive(Debug, Default, Clone, clap::Parser)]
pub struct Overrides {
    /// Config file to read instead of ./config.json or ~/.lamed/config.json
    #[arg(long, env = "LAMED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The settings given by flag or variable.
    #[command(flatten)]
    pub settings: Given,
}

impl Overrides {
    /// The overrides of the environment alone (`LAMED_CONFIG` and every
    /// setting's variable), as the AWS Lambda entry reads them.
    ///
    /// # Errors
    ///
    /// When a variable holds a value its setting does not take; the
    /// message names the variable.
    pub fn from_env() -> Result<Overrides, ConfigError> {
        use clap::error::{ContextKind, ContextValue};
        use clap::CommandFactory;
        <Overrides as clap::Parser>::try_parse_from(["lamed"]).map_err(|err| {
            let context = |kind| match err.get(kind) {
                Some(ContextValue::String(text)) => Some(text.clone()),
                _ => None,
            };
            // clap names the flag (`--max-goals <N>`); say the variable.
            let Some(flag) = context(ContextKind::InvalidArg) else {
                let text = err.to_string();
                return ConfigError::Invalid(text.trim_start_matches("error: ").trim().to_owned());
            };
            let arg = Overrides::command()
                .get_arguments()
                .find(|arg| {
                    arg.get_long()
                        .is_some_and(|long| flag.starts_with(&format!("--{long} ")))
                })
                .cloned();
            let variable = arg
                .as_ref()
                .and_then(|arg| arg.get_env())
                .map_or(flag, |env| env.to_string_lossy().into_owned());
            // A secret's value is never repeated.
            let value = match arg.filter(|arg| !arg.is_hide_env_values_set()) {
                Some(_) => format!(
                    " '{}'",
                    context(ContextKind::InvalidValue).unwrap_or_default()
                ),
                None => String::new(),
            };
            let why = std::error::Error::source(&err)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            ConfigError::Invalid(format!("{variable} has an invalid value{value}{why}"))
        })
    }
}

/// The resolved configuration the server runs with. Every setting is read
/// through it (`config.listen`, `config.redis`...: it dereferences to
/// [`Settings`]).
#[derive(Clone)]
pub struct Config {
    /// Where the configuration file was found, if anywhere.
    pub source: Option<PathBuf>,
    /// Every setting, resolved.
    pub settings: Settings,
    /// Caps on what tracking may create (from `settings.limits`).
    pub caps: Caps,
    /// The bot rules (from the `bot_*` settings), built here so that a bad
    /// pattern or network is a configuration error for every command.
    pub bots: Arc<BotFilter>,
    /// The segment rules (from `segments` and `geoip_db`), built here so
    /// that an unknown dimension or a bad database file is a configuration
    /// error for every command.
    pub segments: Arc<Segmenter>,
    /// Extra paths to serve.
    pub extra_wiring: Vec<ExtraWiring>,
    /// Every webhook endpoint: `webhooks`, then `webhook_url` with
    /// `webhook_secret`.
    pub webhooks: Vec<Webhook>,
    /// Unknown keys found in the file, for a warning.
    pub unknown_keys: Vec<String>,
}

impl Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Settings' Debug keeps the API key and Redis password out.
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("settings", &self.settings)
            .field("extra_wiring", &self.extra_wiring.len())
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Config {
    /// Reads the config file (the given one, else `./config.json`, else
    /// `~/.lamed/config.json`, else none) and applies the overrides.
    ///
    /// # Errors
    ///
    /// When a file exists but is unreadable or invalid, or a value is out of
    /// range.
    pub fn load(overrides: Overrides) -> Result<Config, ConfigError> {
        let (source, file) = match &overrides.config {
            Some(path) => (Some(path.clone()), read_file(path)?),
            None => match default_config_paths().into_iter().find(|p| p.is_file()) {
                Some(path) => {
                    let file = read_file(&path)?;
                    (Some(path), file)
                }
                None => (None, FileConfig::default()),
            },
        };
        Self::resolve(source, file, overrides)
    }

    /// The configuration of a process configured by its environment (AWS
    /// Lambda): a config file is read only when `--config` or
    /// `LAMED_CONFIG` names one; no `./config.json` or `~/.lamed` lookup.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn load_named_only(overrides: Overrides) -> Result<Config, ConfigError> {
        if overrides.config.is_some() {
            Self::load(overrides)
        } else {
            Self::resolve(None, FileConfig::default(), overrides)
        }
    }

    /// Layers overrides over a parsed file and defaults, then validates.
    ///
    /// # Errors
    ///
    /// When a value of the file has the wrong type, or a value is out of
    /// range.
    pub fn resolve(
        source: Option<PathBuf>,
        file: FileConfig,
        o: Overrides,
    ) -> Result<Config, ConfigError> {
        let (mut settings, unknown) = crate::settings::resolve(&o.settings, &file.settings)
            .map_err(|problem| ConfigError::Setting {
                file: source
                    .as_deref()
                    .unwrap_or(Path::new("config.json"))
                    .display()
                    .to_string(),
                problem,
            })?;
        // Top-level keys starting with `_` are comments (JSON has none).
        let mut unknown_keys: Vec<String> = unknown
            .into_iter()
            .filter(|key| !key.starts_with('_'))
            .collect();
        // redis-py keyword arguments we do not use: warned about, as Lamed's
        // configs carry them.
        if !o.settings.contains("redis") {
            if let Some(value) = file
                .settings
                .get("redis")
                .filter(|v| v.is_object() || v.is_array())
            {
                if let Ok((_, ignored)) = RedisSettings::from_json(value) {
                    unknown_keys.extend(ignored.into_iter().map(|key| format!("redis.{key}")));
                }
            }
        }
        settings.public_url = settings
            .public_url
            .map(|url| url.trim_end_matches('/').to_owned());
        if let Some(path) = &settings.api_key_file {
            if settings.api_key.is_some() {
                return Err(ConfigError::Invalid(
                    "api_key and api_key_file are both set: give one".into(),
                ));
            }
            settings.api_key = Some(read_api_key_file(path)?);
        }
        let mut config = Config {
            source,
            caps: settings.caps(),
            bots: Arc::new(
                BotFilter::new(&BotRules {
                    enabled: settings.bot_filter,
                    user_agent_patterns: &settings.bot_user_agents,
                    ignored_networks: &settings.ignored_networks,
                    trusted_proxies: settings.trusted_proxies,
                })
                .map_err(|err| ConfigError::Invalid(err.to_string()))?,
            ),
            segments: Arc::new(segmenter(&settings)?),
            settings,
            extra_wiring: file.extra_wiring,
            webhooks: file.webhooks,
            unknown_keys,
        };
        if let Some(url) = &config.settings.webhook_url {
            config.webhooks.push(Webhook {
                url: url.clone(),
                secret: config.settings.webhook_secret.clone(),
                events: Vec::new(),
                format: standard_format(),
            });
        } else if config.settings.webhook_secret.is_some() {
            return Err(ConfigError::Invalid(
                "webhook_secret is set without webhook_url".into(),
            ));
        }
        config.validate()?;
        Ok(config)
    }

    /// The endpoints of `config.json`'s `webhooks`, without the one of
    /// `webhook_url` (which [`Config::resolve`] appends last): what
    /// `lamed deploy` sends AWS Lambda beside the `webhook_url` setting.
    pub fn file_webhooks(&self) -> &[Webhook] {
        let from_url = usize::from(self.settings.webhook_url.is_some());
        &self.webhooks[..self.webhooks.len() - from_url]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(key) = &self.api_key {
            if key.len() < 16 || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(ConfigError::Invalid(
                    "api_key must be at least 16 characters without spaces".into(),
                ));
            }
        }
        if self.uuid_expiry_seconds > MAX_UUID_EXPIRY_SECONDS {
            return Err(ConfigError::Invalid(format!(
                "uuid_expiry_seconds must be at most {MAX_UUID_EXPIRY_SECONDS} (10 years; 0 never forgets), not {}",
                self.uuid_expiry_seconds
            )));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "request_timeout_ms must be at least 1".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.header_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "header_timeout_ms must be at least 1".into(),
            ));
        }
        if self.max_batch_events == 0 {
            return Err(ConfigError::Invalid(
                "max_batch_events must be at least 1".into(),
            ));
        }
        lamed_core::model::check_field(
            "sixpack_namespace",
            &self.sixpack_namespace,
            lamed_core::model::MAX_NAMESPACE_BYTES,
        )
        .map_err(|err| ConfigError::Invalid(err.to_string()))?;
        let caps = &self.caps;
        for (name, value) in [
            ("max_namespaces", caps.max_namespaces),
            (
                "max_experiments_per_namespace",
                caps.max_experiments_per_namespace,
            ),
            (
                "max_variants_per_experiment",
                caps.max_variants_per_experiment,
            ),
            ("max_goals_per_experiment", caps.max_goals_per_experiment),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limit {name} must be at least 1"
                )));
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "public_url '{url}' must start with http:// or https://"
                )));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together: give both (HTTPS) or neither (HTTP)".into(),
            ));
        }
        for webhook in &self.webhooks {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "webhook url '{}' must start with http:// or https://",
                    webhook.url
                )));
            }
            if !matches!(webhook.format.as_str(), "standard" | "slack") {
                return Err(ConfigError::Invalid(format!(
                    "webhook format '{}' must be \"standard\" or \"slack\"",
                    webhook.format
                )));
            }
            if webhook.format == "standard"
                && !webhook
                    .secret
                    .as_deref()
                    .is_some_and(|s| s.starts_with("whsec_"))
            {
                return Err(ConfigError::Invalid(format!(
                    "webhook {} needs a secret starting with whsec_ (Standard Webhooks signs every message)",
                    webhook.url
                )));
            }
        }
        if !self.webhooks.is_empty() && self.dynamodb_table.is_some() {
            return Err(ConfigError::Invalid(
                "webhooks need the embedded store or redis: alerts keep no state in dynamodb yet"
                    .into(),
            ));
        }
        if self.alert_check_seconds == 0 {
            return Err(ConfigError::Invalid(
                "alert_check_seconds must be at least 1".into(),
            ));
        }
        for wiring in &self.extra_wiring {
            wiring.handler()?;
            let part = &wiring.api_gateway.path_part;
            if part.is_empty() || part.contains('/') || part.contains('{') {
                return Err(ConfigError::Invalid(format!(
                    "extra_wiring pathPart '{part}' must be one plain path segment"
                )));
            }
        }
        Ok(())
    }

    /// The base URL clients reach us at: `https://` when serving TLS.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls_files().is_some() {
            "https"
        } else {
            "http"
        };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"))
    }

    /// What the store layer needs to open the configured store.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            dynamodb_table: self.dynamodb_table.clone(),
            redis: self.redis.clone(),
            data_dir: self.data_dir.clone(),
            uuid_expiry_seconds: self.uuid_expiry_seconds,
            fsync: self.fsync,
            caps: self.caps,
        }
    }

    /// Where Sixpack's experiments live and how many alternatives they may
    /// have.
    pub fn sixpack(&self) -> SixpackConfig {
        SixpackConfig {
            namespace: self.sixpack_namespace.clone(),
            max_alternatives: self.caps.max_variants_per_experiment,
        }
    }

    /// The certificate and key to serve HTTPS with, when configured.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// The configured API key, or the one generated on a first start and
    /// kept in the data directory (mode 0600). Returns the key and whether
    /// it was generated just now.
    ///
    /// # Errors
    ///
    /// When the key file cannot be read or written.
    pub fn api_key_or_generate(&self) -> Result<(String, ApiKeySource), ConfigError> {
        if let Some(key) = &self.api_key {
            let source = match &self.api_key_file {
                Some(path) => ApiKeySource::File(path.clone()),
                None => ApiKeySource::Configured,
            };
            return Ok((key.clone(), source));
        }
        let path = self.data_dir.join(API_KEY_FILE);
        let io_err = |source| ConfigError::ApiKey {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(key) if !key.trim().is_empty() => {
                return Ok((key.trim().to_owned(), ApiKeySource::Stored(path.clone())))
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(err)),
        }
        std::fs::create_dir_all(&self.data_dir).map_err(io_err)?;
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes)
            .map_err(|err| io_err(std::io::Error::other(err.to_string())))?;
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &key).map_err(io_err)?;
        Ok((key, ApiKeySource::Generated(path)))
    }
}

/// Where the API key in use came from (said in the start banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// From config, flag or environment.
    Configured,
    /// Read from the `api_key_file` at start.
    File(PathBuf),
    /// Generated on an earlier start and read from this file.
    Stored(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
}

/// The key in an `api_key_file`: its first line, trimmed (a file written
/// by `echo` or an editor ends with a newline).
fn read_api_key_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ApiKeyFile {
        path: path.to_owned(),
        source,
    })?;
    match text.lines().next().map(str::trim) {
        Some(key) if !key.is_empty() => Ok(key.to_owned()),
        _ => Err(ConfigError::Invalid(format!(
            "the API key file {} is empty",
            path.display()
        ))),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// `./config.json`, then `~/.lamed/config.json`, as Lamed looks.
fn default_config_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("config.json")];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".lamed").join("config.json"));
    }
    paths
}

/// The PEM files of the certificate (chain) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate, followed by its intermediates (certbot's
    /// `fullchain.pem`).
    pub cert: PathBuf,
    /// The private key (certbot's `privkey.pem`): PKCS#8, PKCS#1 or SEC1.
    pub key: PathBuf,
}

/// The segment rules of the `segments` and `geoip_db` settings (CloudFront's
/// headers untrusted: the Lambda entry trusts them, see
/// [`Segmenter::trusting_cloudfront`]).
fn segmenter(settings: &Settings) -> Result<Segmenter, ConfigError> {
    let dimensions = settings
        .segments
        .iter()
        .filter(|name| !name.trim().is_empty())
        .map(|name| name.parse::<Dimension>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ConfigError::Invalid(format!("segments: {err}")))?;
    let geoip = match &settings.geoip_db {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|err| {
                ConfigError::Invalid(format!("cannot read geoip_db {}: {err}", path.display()))
            })?;
            Some((path.display().to_string(), bytes))
        }
        None => None,
    };
    Segmenter::new(&dimensions, geoip, false).map_err(|err| ConfigError::Invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> FileConfig {
        serde_json::from_str(json).expect("valid test config")
    }

    /// Overrides from these flags alone: the environment is not read.
    fn flags(args: &[&str]) -> Overrides {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Overrides::command()
            .mut_args(|arg| arg.env(None::<&'static str>))
            .no_binary_name(true)
            .try_get_matches_from(args)
            .unwrap();
        Overrides::from_arg_matches(&matches).unwrap()
    }

    /// A Lamed config.json is accepted as is, and its values are used.
    #[test]
    fn reads_lamed_config() {
        let file = parse(
            r#"{"redis": {"host": "h", "port": 6379, "password": "p"},
                "uuid_expiry_seconds": 60,
                "extra_wiring": [{"lambda": {"FunctionName": "lamed-track", "Handler": "lamed.track",
                                  "MemorySize": 128, "Timeout": 3},
                                  "api_gateway": {"pathPart": "t", "method": {"httpMethod": "GET"}}}]}"#,
        );
        let config = Config::resolve(None, file, Overrides::default()).unwrap();
        assert_eq!(config.uuid_expiry_seconds, 60);
        assert_eq!(config.extra_wiring[0].handler().unwrap(), Handler::Track);
        assert_eq!(
            config.redis.as_ref().unwrap().redacted(),
            "redis://<password>@h:6379/0"
        );
        assert!(!format!("{config:?}").contains("\"p\""));
    }

    /// Overrides win over the file, the file over defaults.
    #[test]
    fn overrides_win() {
        let file = parse(
            r#"{"uuid_expiry_seconds": 60, "fsync": true, "limits": {"max_variants_per_experiment": 3}}"#,
        );
        let overrides = flags(&["--uuid-expiry-seconds", "5", "--max-goals", "7"]);
        let config = Config::resolve(None, file, overrides).unwrap();
        assert_eq!(config.uuid_expiry_seconds, 5);
        // The boolean of earlier config files: true is every commit.
        assert_eq!(config.fsync, lamed_store::Durability::Commit);
        assert_eq!(config.caps.max_variants_per_experiment, 3);
        assert_eq!(config.caps.max_goals_per_experiment, 7);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.redis.is_none());
    }

    /// The dedupe window is bounded by 10 years: the bound itself is
    /// accepted, one second more is refused naming the setting and the
    /// bound, from the file as from a flag.
    #[test]
    fn uuid_expiry_is_bounded() {
        let at_bound = MAX_UUID_EXPIRY_SECONDS.to_string();
        let config = Config::resolve(
            None,
            FileConfig::default(),
            flags(&["--uuid-expiry-seconds", &at_bound]),
        )
        .unwrap();
        assert_eq!(config.uuid_expiry_seconds, 315_360_000);
        let over = (MAX_UUID_EXPIRY_SECONDS + 1).to_string();
        let from_flag = Config::resolve(
            None,
            FileConfig::default(),
            flags(&["--uuid-expiry-seconds", &over]),
        );
        let from_file = Config::resolve(
            None,
            parse(&format!(r#"{{"uuid_expiry_seconds": {over}}}"#)),
            Overrides::default(),
        );
        for result in [from_flag, from_file] {
            let text = result.unwrap_err().to_string();
            assert!(
                text.contains("uuid_expiry_seconds") && text.contains("at most 315360000"),
                "{text}"
            );
        }
    }

    /// TLS takes a certificate and a key together, from flags or the file
    /// alike (one of each is fine); with them the base URL is https://.
    /// The segment settings: an unknown dimension and a missing or bad
    /// geoip file stop the start, naming the setting and the value; `[]`
    /// turns segments off.
    #[test]
    fn segment_settings_are_checked() {
        let resolve = |args: &[&str]| Config::resolve(None, FileConfig::default(), flags(args));
        let err = resolve(&["--segments", "device,os"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("segments") && err.contains("'os'"), "{err}");
        let err = resolve(&["--geoip-db", "/nonexistent/x.mmdb"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("geoip_db /nonexistent/x.mmdb"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.mmdb");
        std::fs::write(&bad, "not a database").unwrap();
        let err = resolve(&["--geoip-db", bad.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no MaxMind-format database"), "{err}");
        assert!(resolve(&["--segments", "[]"]).unwrap().segments.is_off());
        assert!(!resolve(&[]).unwrap().segments.is_off());
    }

    #[test]
    fn tls_needs_both_files() {
        let bound: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        for (file, args) in [
            ("{}", &["--tls-cert", "c.pem"][..]),
            ("{}", &["--tls-key", "k.pem"][..]),
            (r#"{"tls_key": "k.pem"}"#, &[][..]),
        ] {
            let err = Config::resolve(None, parse(file), flags(args)).unwrap_err();
            assert!(
                err.to_string().contains("tls_cert and tls_key go together"),
                "{err}"
            );
        }
        let config = Config::resolve(
            None,
            parse(r#"{"tls_key": "k.pem"}"#),
            flags(&["--tls-cert", "c.pem"]),
        )
        .unwrap();
        assert_eq!(
            config.tls_files(),
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(config.base_url(bound), "https://127.0.0.1:8443");
        let plain = Config::resolve(None, FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(plain.base_url(bound), "http://127.0.0.1:8443");
    }

    /// `--redis` replaces the file's redis object; a bad value is a
    /// configuration error, and unknown redis-py keys become warnings.
    #[test]
    fn redis_settings_layer() {
        let file = parse(r#"{"redis": {"host": "h", "socket_timeout": 3}}"#);
        let config = Config::resolve(None, file, Overrides::default()).unwrap();
        assert_eq!(config.unknown_keys, vec!["redis.socket_timeout".to_owned()]);
        let file = parse(r#"{"redis": {"host": "h"}}"#);
        let overrides = flags(&["--redis", "redis://127.0.0.1:7000/1"]);
        let config = Config::resolve(None, file, overrides).unwrap();
        assert_eq!(config.redis.as_ref().unwrap().nodes[0].port, 7000);
        assert!(config.unknown_keys.is_empty());
        let err = Config::resolve(
            None,
            parse(r#"{"redis": {"port": "x"}}"#),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("redis port"), "{err}");
    }

    /// Bad values are refused with a message naming them.
    #[test]
    fn rejects_bad_values() {
        let err = Config::resolve(None, parse(r#"{"api_key": "short"}"#), Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
        let err = Config::resolve(
            None,
            parse(r#"{"extra_wiring": [{"lambda": {"Handler": "x.y"}, "api_gateway": {"pathPart": "p"}}]}"#),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("x.y"), "{err}");
        let err = Config::resolve(
            None,
            parse(r#"{"limits": {"max_variantz": 3}}"#),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_variantz"), "{err}");
        let err = Config::resolve(
            Some("c.json".into()),
            parse(r#"{"uuid_expiry_seconds": "soon"}"#),
            Overrides::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid config file c.json: uuid_expiry_seconds:"),
            "{text}"
        );
    }

    /// Unknown top-level keys are kept for a warning, not refused; keys
    /// starting with `_` are comments.
    #[test]
    fn unknown_keys_are_reported() {
        let config = Config::resolve(
            None,
            parse(r#"{"colour": 1, "_comment": ["a comment"]}"#),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.unknown_keys, vec!["colour".to_owned()]);
    }

    /// The generated key is stored with mode 0600 and reused.
    #[test]
    fn api_key_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = flags(&["--data-dir", dir.path().to_str().unwrap()]);
        let config = Config::resolve(None, FileConfig::default(), overrides).unwrap();
        let (first, source) = config.api_key_or_generate().unwrap();
        assert!(matches!(source, ApiKeySource::Generated(_)));
        let (second, source) = config.api_key_or_generate().unwrap();
        assert_eq!(first, second);
        assert!(matches!(source, ApiKeySource::Stored(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(API_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// `api_key_file`: the key is the file's first line, named by its path
    /// in the banner; a missing or empty file, or a key given twice, stops
    /// the start with a message naming the problem.
    #[test]
    fn api_key_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "file-key-0123456789abcdef\n").unwrap();
        let file = path.to_str().unwrap();
        let config = Config::resolve(
            None,
            FileConfig::default(),
            flags(&["--api-key-file", file]),
        )
        .unwrap();
        let (key, source) = config.api_key_or_generate().unwrap();
        assert_eq!(key, "file-key-0123456789abcdef");
        assert_eq!(source, ApiKeySource::File(path.clone()));
        let from_json = parse(&format!(
            r#"{{"api_key_file": {}}}"#,
            serde_json::json!(file)
        ));
        let config = Config::resolve(None, from_json, Overrides::default()).unwrap();
        assert_eq!(config.api_key.as_deref(), Some("file-key-0123456789abcdef"));

        let both = flags(&["--api-key-file", file, "--api-key", "other-key-0123456789"]);
        let err = Config::resolve(None, FileConfig::default(), both).unwrap_err();
        assert!(err.to_string().contains("both set"), "{err}");
        let missing = dir.path().join("missing");
        let overrides = flags(&["--api-key-file", missing.to_str().unwrap()]);
        let err = Config::resolve(None, FileConfig::default(), overrides).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read the API key file {}:",
                missing.display()
            )),
            "{err}"
        );
        std::fs::write(&path, "\n").unwrap();
        let err = Config::resolve(
            None,
            FileConfig::default(),
            flags(&["--api-key-file", file]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        std::fs::write(&path, "short\n").unwrap();
        let err = Config::resolve(
            None,
            FileConfig::default(),
            flags(&["--api-key-file", file]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }
}
