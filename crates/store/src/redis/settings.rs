//! Where Redis is, as users write it: Lamed's `"redis": {...}` object (the
//! keyword arguments of redis-py), a `redis://` / `rediss://` URL, or a list
//! of cluster nodes. Pure parsing, so it builds without the `redis` feature
//! and a bad setting is refused before anything is opened.

use std::fmt;

use serde_json::Value;

/// The Redis deployment to count on.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One node, or the seed nodes of a cluster.
    pub nodes: Vec<RedisNode>,
    /// True when several nodes were given: they are a Redis Cluster. A single
    /// node that turns out to be a cluster member is detected when opening.
    pub cluster: bool,
}

/// One Redis node and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisNode {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database number (standalone Redis only; a cluster has only 0).
    pub db: i64,
    /// ACL user name (Redis 6+), if any.
    pub username: Option<String>,
    /// Password, if any; never shown in messages or logs.
    pub password: Option<String>,
    /// Connect over TLS (`ssl: true` or `rediss://`).
    pub tls: bool,
}

/// Why a Redis setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid redis setting: {0}")]
pub struct RedisSettingsError(pub String);

/// redis-py keyword arguments we read; others (timeouts, decode_responses,
/// charset...) are accepted and ignored, since Lamed's configs carry them.
const KNOWN_KEYS: &[&str] = &["host", "port", "password", "db", "ssl", "username", "url"];

impl RedisSettings {
    /// Parses `--redis` / `LAMED_REDIS_URL`: one URL, or several separated
    /// by commas for the seed nodes of a cluster.
    ///
    /// # Errors
    ///
    /// When a URL is malformed or uses another scheme.
    pub fn from_urls(text: &str) -> Result<Self, RedisSettingsError> {
        let nodes = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(RedisNode::from_url)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_nodes(nodes)
    }

    /// Parses the `redis` value of `config.json`: an object of redis-py
    /// keyword arguments, a URL string, or an array of either (cluster).
    ///
    /// Returns the settings and the keys that were ignored (for a warning).
    ///
    /// # Errors
    ///
    /// When the value has another shape or a field has the wrong type.
    pub fn from_json(value: &Value) -> Result<(Self, Vec<String>), RedisSettingsError> {
        let mut ignored = Vec::new();
        let nodes = match value {
            Value::Array(items) => items
                .iter()
                .map(|item| RedisNode::from_json(item, &mut ignored))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![RedisNode::from_json(other, &mut ignored)?],
        };
        Ok((Self::from_nodes(nodes)?, ignored))
    }

    fn from_nodes(nodes: Vec<RedisNode>) -> Result<Self, RedisSettingsError> {
        if nodes.is_empty() {
            return Err(RedisSettingsError("no redis node given".into()));
        }
        let cluster = nodes.len() > 1;
        if cluster && nodes.iter().any(|n| n.db != 0) {
            return Err(RedisSettingsError(
                "a redis cluster has only database 0".into(),
            ));
        }
        Ok(RedisSettings { nodes, cluster })
    }

    /// The nodes without their passwords, for messages.
    pub fn redacted(&self) -> String {
        self.nodes
            .iter()
            .map(RedisNode::redacted)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisSettings({})", self.redacted())
    }
}

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl RedisNode {
    /// Parses `redis://[user[:password]@]host[:port][/db]` (or `rediss://`).
    ///
    /// # Errors
    ///
    /// When the URL is malformed or uses another scheme.
    pub fn from_url(text: &str) -> Result<Self, RedisSettingsError> {
        // The message never repeats the URL: it may hold a password.
        let url = url::Url::parse(text)
            .map_err(|err| RedisSettingsError(format!("malformed redis url: {err}")))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(RedisSettingsError(format!(
                    "redis url scheme '{other}' is not redis:// or rediss://"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| RedisSettingsError("redis url has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db.parse().map_err(|_| {
                RedisSettingsError(format!("redis database '{db}' is not a number"))
            })?,
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok(RedisNode {
            host,
            port: url.port().unwrap_or(6379),
            db,
            username: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
            password: url.password().map(decode),
            tls,
        })
    }

    fn from_json(value: &Value, ignored: &mut Vec<String>) -> Result<Self, RedisSettingsError> {
        let object = match value {
            Value::String(url) => return Self::from_url(url),
            Value::Object(object) => object,
            _ => {
                return Err(RedisSettingsError(
                    "redis must be an object like {\"host\": ..., \"port\": ...}, a redis:// url, or a list of them".into(),
                ))
            }
        };
        if let Some(url) = object.get("url") {
            let url = url
                .as_str()
                .ok_or_else(|| RedisSettingsError("redis url must be a string".into()))?;
            return Self::from_url(url);
        }
        for key in object.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                ignored.push(key.clone());
            }
        }
        let string = |key: &str| -> Result<Option<String>, RedisSettingsError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(RedisSettingsError(format!("redis {key} must be a string"))),
            }
        };
        // redis-py accepts numbers given as strings ("port": "6379").
        let number = |key: &str| -> Result<Option<i64>, RedisSettingsError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| RedisSettingsError(format!("redis {key} must be an integer"))),
                Some(Value::String(s)) => s
                    .parse()
                    .map(Some)
                    .map_err(|_| RedisSettingsError(format!("redis {key} must be an integer"))),
                Some(_) => Err(RedisSettingsError(format!(
                    "redis {key} must be an integer"
                ))),
            }
        };
        let port = match number("port")? {
            None => 6379,
            Some(port) => u16::try_from(port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| RedisSettingsError(format!("redis port {port} is out of range")))?,
        };
        let tls = match object.get("ssl") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RedisSettingsError("redis ssl must be true or false".into())),
        };
        let db = number("db")?.unwrap_or(0);
        if db < 0 {
            return Err(RedisSettingsError(format!("redis db {db} is negative")));
        }
        Ok(RedisNode {
            host: string("host")?.unwrap_or_else(|| "localhost".into()),
            port,
            db,
            username: string("username")?,
            password: string("password")?,
            tls,
        })
    }

    /// The node as a URL the redis client accepts, credentials included.
    pub fn url(&self) -> String {
        let encode = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let auth = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(user), None) => format!("{}@", encode(user)),
            (user, Some(password)) => format!(
                "{}:{}@",
                user.as_deref().map(encode).unwrap_or_default(),
                encode(password)
            ),
        };
        format!(
            "{}://{auth}{}:{}/{}",
            if self.tls { "rediss" } else { "redis" },
            self.host_for_url(),
            self.port,
            self.db
        )
    }

    /// The node as a URL without its password, for messages and logs.
    pub fn redacted(&self) -> String {
        let user = match (&self.username, &self.password) {
            (Some(user), _) => format!("{user}@"),
            (None, Some(_)) => "<password>@".into(),
            (None, None) => String::new(),
        };
        format!(
            "{}://{user}{}:{}/{}",
            if self.tls { "rediss" } else { "redis" },
            self.host_for_url(),
            self.port,
            self.db
        )
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lamed's config object is read with redis-py's defaults, and its
    /// password never shows in the redacted form.
    #[test]
    fn reads_lamed_object() {
        let (settings, ignored) = RedisSettings::from_json(&serde_json::json!(
            {"host": "127.0.0.1", "port": "6380", "password": "s3cret", "db": 2,
             "ssl": true, "socket_timeout": 5}
        ))
        .unwrap();
        let node = &settings.nodes[0];
        assert_eq!((node.port, node.db, node.tls), (6380, 2, true));
        assert!(!settings.cluster);
        assert_eq!(ignored, vec!["socket_timeout".to_owned()]);
        assert_eq!(settings.redacted(), "rediss://<password>@127.0.0.1:6380/2");
        assert!(!format!("{settings:?}").contains("s3cret"));
        assert_eq!(node.url(), "rediss://:s3cret@127.0.0.1:6380/2");
        let (defaults, _) = RedisSettings::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(defaults.nodes[0].url(), "redis://localhost:6379/0");
    }

    /// URLs parse with user, password and database; a list is a cluster.
    #[test]
    fn reads_urls_and_lists() {
        let settings = RedisSettings::from_urls("rediss://me:p%40ss@h:7000/3").unwrap();
        let node = &settings.nodes[0];
        assert_eq!(node.username.as_deref(), Some("me"));
        assert_eq!(node.password.as_deref(), Some("p@ss"));
        assert_eq!((node.port, node.db, node.tls), (7000, 3, true));
        assert_eq!(node.url(), "rediss://me:p%40ss@h:7000/3");
        let cluster =
            RedisSettings::from_urls("redis://127.0.0.1:7000, redis://127.0.0.1:7001").unwrap();
        assert!(cluster.cluster);
        let (json, _) =
            RedisSettings::from_json(&serde_json::json!(["redis://a:1", {"host": "b", "port": 2}]))
                .unwrap();
        assert!(json.cluster);
        assert_eq!(json.nodes[1].redacted(), "redis://b:2/0");
    }

    /// Bad settings are refused with a message that names the problem and
    /// does not echo a password.
    #[test]
    fn rejects_bad_settings() {
        for (value, needle) in [
            (serde_json::json!({"port": 70000}), "port"),
            (serde_json::json!({"ssl": "yes"}), "ssl"),
            (serde_json::json!(42), "object"),
            (serde_json::json!("http://h"), "scheme"),
            (
                serde_json::json!(["redis://a/1", "redis://b"]),
                "database 0",
            ),
        ] {
            let err = RedisSettings::from_json(&value).unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
        let err = RedisSettings::from_urls("redis://:hunter2@/").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
