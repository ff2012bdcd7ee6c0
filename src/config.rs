//! Configuration: Lamed's `config.json` (every key it has, plus ours),
//! overridden by command-line flags and `LAMED_*` environment variables.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::model::Caps;
use crate::store::redis::RedisSettings;

/// Default address: loopback, so nothing is exposed until asked for.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "lamed-data";
/// Lamed's default dedupe window: one day.
pub const DEFAULT_UUID_EXPIRY_SECONDS: u64 = 86_400;
/// Default largest batch accepted by `POST /track`.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 1000;

/// The file name of the generated API key inside the data directory.
const API_KEY_FILE: &str = "api_key";

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
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
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
#[serde(default)]
pub struct FileConfig {
    /// Lamed's Redis settings: keyword arguments of redis-py, a URL, or a
    /// list of cluster nodes.
    pub redis: Option<Value>,
    /// Dedupe window in seconds.
    pub uuid_expiry_seconds: Option<u64>,
    /// Extra paths wired to one of the handlers (`lamed.track`, `lamed.all`,
    /// `lamed.delete`); `lamed serve` serves them too.
    pub extra_wiring: Vec<ExtraWiring>,
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store and the generated API key.
    pub data_dir: Option<PathBuf>,
    /// API key for the private endpoints.
    pub api_key: Option<String>,
    /// fsync every commit.
    pub fsync: Option<bool>,
    /// Base URL the world reaches this server at (for the printed snippet).
    pub public_url: Option<String>,
    /// Largest batch accepted by `POST /track`.
    pub max_batch_events: Option<usize>,
    /// Caps on what the public tracking endpoint may create.
    pub limits: Option<Caps>,
    /// Keys we do not know: reported as warnings, not errors, so that
    /// config files written for other Lamed versions keep working.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
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

/// Values given on the command line or in `LAMED_*` variables; they win over
/// the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`
    pub config: Option<PathBuf>,
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--api-key`
    pub api_key: Option<String>,
    /// `--uuid-expiry-seconds`
    pub uuid_expiry_seconds: Option<u64>,
    /// `--fsync`
    pub fsync: Option<bool>,
    /// `--public-url`
    pub public_url: Option<String>,
    /// `--max-batch-events`
    pub max_batch_events: Option<usize>,
    /// `--max-namespaces`
    pub max_namespaces: Option<usize>,
    /// `--max-experiments`
    pub max_experiments: Option<usize>,
    /// `--max-variants`
    pub max_variants: Option<usize>,
    /// `--max-goals`
    pub max_goals: Option<usize>,
    /// `--redis`: URL(s), replacing the file's `redis` setting.
    pub redis: Option<String>,
}

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    /// Where the configuration file was found, if anywhere.
    pub source: Option<PathBuf>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded store and the generated key.
    pub data_dir: PathBuf,
    /// API key given by configuration; `None` means generate or reuse one.
    pub api_key: Option<String>,
    /// Dedupe window in seconds; 0 = forever.
    pub uuid_expiry_seconds: u64,
    /// fsync every commit.
    pub fsync: bool,
    /// Base URL for the printed snippet; defaults to the listen address.
    pub public_url: Option<String>,
    /// Largest batch accepted by `POST /track`.
    pub max_batch_events: usize,
    /// Caps on what tracking may create.
    pub caps: Caps,
    /// Where Redis is, when it is the store.
    pub redis: Option<RedisSettings>,
    /// Extra paths to serve.
    pub extra_wiring: Vec<ExtraWiring>,
    /// Unknown keys found in the file, for a warning.
    pub unknown_keys: Vec<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The API key and Redis password never reach logs.
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("uuid_expiry_seconds", &self.uuid_expiry_seconds)
            .field("fsync", &self.fsync)
            .field("public_url", &self.public_url)
            .field("max_batch_events", &self.max_batch_events)
            .field("caps", &self.caps)
            .field("redis", &self.redis)
            .field("extra_wiring", &self.extra_wiring.len())
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

    /// Layers overrides over a parsed file and defaults, then validates.
    pub fn resolve(
        source: Option<PathBuf>,
        file: FileConfig,
        o: Overrides,
    ) -> Result<Config, ConfigError> {
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse().expect("valid default address");
        let mut caps = file.limits.unwrap_or_default();
        caps.max_namespaces = o.max_namespaces.unwrap_or(caps.max_namespaces);
        caps.max_experiments_per_namespace = o
            .max_experiments
            .unwrap_or(caps.max_experiments_per_namespace);
        caps.max_variants_per_experiment =
            o.max_variants.unwrap_or(caps.max_variants_per_experiment);
        caps.max_goals_per_experiment = o.max_goals.unwrap_or(caps.max_goals_per_experiment);
        // Top-level keys starting with `_` are comments (JSON has none).
        let mut unknown_keys: Vec<String> = file
            .unknown
            .into_keys()
            .filter(|key| !key.starts_with('_'))
            .collect();
        let redis = match (o.redis.as_deref(), &file.redis) {
            (Some(urls), _) => Some(RedisSettings::from_urls(urls)),
            (None, Some(value)) if !value.is_null() => {
                Some(RedisSettings::from_json(value).map(|(settings, ignored)| {
                    unknown_keys.extend(ignored.into_iter().map(|key| format!("redis.{key}")));
                    settings
                }))
            }
            (None, _) => None,
        }
        .transpose()
        .map_err(|err| ConfigError::Invalid(err.to_string()))?;
        let config = Config {
            source,
            listen: o.listen.or(file.listen).unwrap_or(default_listen),
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            api_key: o.api_key.or(file.api_key),
            uuid_expiry_seconds: o
                .uuid_expiry_seconds
                .or(file.uuid_expiry_seconds)
                .unwrap_or(DEFAULT_UUID_EXPIRY_SECONDS),
            fsync: o.fsync.or(file.fsync).unwrap_or(false),
            public_url: o
                .public_url
                .or(file.public_url)
                .map(|url| url.trim_end_matches('/').to_owned()),
            max_batch_events: o
                .max_batch_events
                .or(file.max_batch_events)
                .unwrap_or(DEFAULT_MAX_BATCH_EVENTS),
            caps,
            redis,
            extra_wiring: file.extra_wiring,
            unknown_keys,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(key) = &self.api_key {
            if key.len() < 16 || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(ConfigError::Invalid(
                    "api_key must be at least 16 characters without spaces".into(),
                ));
            }
        }
        if self.max_batch_events == 0 {
            return Err(ConfigError::Invalid(
                "max_batch_events must be at least 1".into(),
            ));
        }
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

    /// The base URL clients reach us at.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
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
            return Ok((key.clone(), ApiKeySource::Configured));
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
    /// Generated on an earlier start and read from this file.
    Stored(PathBuf),
    /// Generated now and written to this file.
    Generated(PathBuf),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> FileConfig {
        serde_json::from_str(json).expect("valid test config")
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
        let overrides = Overrides {
            uuid_expiry_seconds: Some(5),
            max_goals: Some(7),
            ..Overrides::default()
        };
        let config = Config::resolve(None, file, overrides).unwrap();
        assert_eq!(config.uuid_expiry_seconds, 5);
        assert!(config.fsync);
        assert_eq!(config.caps.max_variants_per_experiment, 3);
        assert_eq!(config.caps.max_goals_per_experiment, 7);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.redis.is_none());
    }

    /// `--redis` replaces the file's redis object; a bad value is a
    /// configuration error, and unknown redis-py keys become warnings.
    #[test]
    fn redis_settings_layer() {
        let file = parse(r#"{"redis": {"host": "h", "socket_timeout": 3}}"#);
        let config = Config::resolve(None, file, Overrides::default()).unwrap();
        assert_eq!(config.unknown_keys, vec!["redis.socket_timeout".to_owned()]);
        let file = parse(r#"{"redis": {"host": "h"}}"#);
        let overrides = Overrides {
            redis: Some("redis://127.0.0.1:7000/1".into()),
            ..Overrides::default()
        };
        let config = Config::resolve(None, file, overrides).unwrap();
        assert_eq!(config.redis.unwrap().nodes[0].port, 7000);
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
        let err =
            serde_json::from_str::<FileConfig>(r#"{"limits": {"max_variantz": 3}}"#).unwrap_err();
        assert!(err.to_string().contains("max_variantz"), "{err}");
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
        let overrides = Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        };
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
}
