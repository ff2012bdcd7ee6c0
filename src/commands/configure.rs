//! `lamed configure`: create the config file from a template when missing,
//! open it in `$EDITOR`, and validate it when the editor exits.
//!
//! JSON has no comments, so the template explains its keys in a top-level
//! `"_comment"` array: the config reader ignores top-level keys that start
//! with `_`, and the explanation sits in the file the editor shows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::ConfigureArgs;
use crate::config::{Config, Overrides};
use crate::settings;

/// The file `lamed configure` writes when none exists: every setting that
/// applies on AWS Lambda at its default, each explained in `_comment` from
/// its definition ([`crate::settings`]), plus a sample `redis` and an empty
/// `extra_wiring`.
pub fn template() -> String {
    let mut values = settings::defaults();
    let mut comment = vec![
        "lamed configuration. JSON has no comments: keys starting with _ are ignored.".to_owned(),
        "redis: where lamed counts on AWS Lambda. redis-py settings (host, port, password, db, ssl, username), a URL string redis://[user:password@]host:port/db (rediss:// for TLS) or a list of cluster nodes. It must be reachable from AWS Lambda.".to_owned(),
    ];
    for info in settings::infos() {
        if !info.on_lambda {
            values.remove(&info.key);
            continue;
        }
        if info.id == "redis" {
            continue;
        }
        let help = info
            .arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        comment.push(format!(
            "{}: {help} (flag --{}, variable {}).",
            info.key,
            info.arg.get_long().unwrap_or_default(),
            info.env
        ));
    }
    values.retain(|_, value| !value.is_null());
    comment.extend(
        [
            "lamed deploy generates an api_key when absent and keeps it as the API Gateway key 'lamed'.",
            "extra_wiring: extra API paths, e.g. {\"lambda\": {\"FunctionName\": \"lamed-track\", \"Handler\": \"lamed.track\", \"MemorySize\": 128, \"Timeout\": 3}, \"api_gateway\": {\"pathPart\": \"my_tracking_endpoint\", \"method\": {\"httpMethod\": \"GET\", \"apiKeyRequired\": false}}}. Handlers: lamed.track, lamed.all (experiments), lamed.delete; apiKeyRequired, when given, must be what the handler does (lamed checks the key itself). MemorySize sets that function's memory (MB, default 128); Timeout (s) may raise its timeout above the request deadline's (request_timeout_ms and a second).",
            "webhooks: alert endpoints, e.g. [{\"url\": \"https://hooks.example.com/lamed\", \"secret\": \"whsec_...\"}]; on AWS, deploy then schedules the alert check every alert_check_seconds.",
            "Then: lamed preflight, lamed deploy.",
        ]
        .map(str::to_owned),
    );
    values.insert("_comment".into(), json!(comment));
    values.insert(
        "redis".into(),
        json!({"host": "localhost", "port": 6379, "db": 0}),
    );
    values.insert("extra_wiring".into(), json!([]));
    let mut text =
        serde_json::to_string_pretty(&Value::Object(values)).expect("the template serializes");
    text.push('\n');
    text
}

/// `~/.lamed/config.json`.
///
/// # Errors
///
/// When `HOME` is not set.
pub fn default_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --config PATH")?;
    Ok(Path::new(&home).join(".lamed").join("config.json"))
}

/// Runs `lamed configure`.
///
/// # Errors
///
/// When the file cannot be created, the editor fails, or the edited file
/// is not a valid configuration.
pub fn run(args: ConfigureArgs) -> anyhow::Result<()> {
    let path = match args.config {
        Some(path) => path,
        None => default_path()?,
    };
    if create_from_template(&path)? {
        eprintln!("lamed: created {} from the template", path.display());
    }
    edit(&path)?;
    let config = validate(&path)?;
    eprintln!(
        "lamed: {} is valid{}",
        path.display(),
        if config.redis.is_some() {
            ""
        } else {
            " (no redis yet: lamed deploy needs one)"
        }
    );
    Ok(())
}

/// Writes the template at `path` (mode 0600, parent directory 0700) unless
/// a file is there. Returns whether it wrote.
///
/// # Errors
///
/// When the directory or file cannot be created.
pub fn create_from_template(path: &Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create config file {}", path.display()))?;
    file.write_all(template().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write config file {}", path.display()))?;
    Ok(true)
}

/// Opens `path` in `$EDITOR` (a command line, run by `sh`), else `vi`.
fn edit(path: &Path) -> anyhow::Result<()> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|e| !e.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .with_context(|| format!("cannot start the editor '{editor}'"))?;
    if !status.success() {
        anyhow::bail!(
            "the editor '{editor}' failed ({status}); {} was not checked",
            path.display()
        );
    }
    Ok(())
}

/// Reads and checks a config file as `lamed deploy` will.
///
/// # Errors
///
/// What is wrong, with the file name, and how to fix it.
pub fn validate(path: &Path) -> anyhow::Result<Config> {
    let fix = |err: String| {
        anyhow::anyhow!(
            "{err}\n  fix it with: lamed configure --config {}",
            path.display()
        )
    };
    let config = Config::load(Overrides {
        config: Some(path.to_owned()),
        ..Overrides::default()
    })
    .map_err(|err| fix(err.to_string()))?;
    if !config.unknown_keys.is_empty() {
        eprintln!(
            "lamed: warning: {} has keys lamed does not know: {}",
            path.display(),
            config.unknown_keys.join(", ")
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    /// The template is a valid configuration without warnings, explains
    /// every setting that applies on Lambda and holds its default.
    #[test]
    fn template_covers_the_lambda_settings() {
        let text = template();
        let file: FileConfig = serde_json::from_str(&text).unwrap();
        let config = Config::resolve(None, file, Overrides::default()).unwrap();
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
        assert!(config.redis.is_some());
        for info in settings::infos() {
            let mentioned = text.contains(&format!("\"{}: ", info.key))
                || text.contains(&format!("\"{}:", info.id));
            assert_eq!(mentioned, info.on_lambda, "{}", info.key);
        }
        assert!(
            text.contains("\"max_experiments_per_namespace\": 200"),
            "{text}"
        );
    }
}
