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

use crate::cli::ConfigureArgs;
use crate::config::{Config, Overrides};

/// The file `lamed configure` writes when none exists.
pub const TEMPLATE: &str = r#"{
  "_comment": [
    "lamed configuration. JSON has no comments: keys starting with _ are ignored.",
    "redis: where lamed counts on AWS Lambda. redis-py settings (host, port, password, db, ssl, username) or a URL string redis://[user:password@]host:port/db (rediss:// for TLS). It must be reachable from AWS Lambda.",
    "api_key: the key of /experiments, /delete, the report API and the dashboard, 16+ characters without spaces. lamed deploy generates one when absent and keeps it as the API Gateway key 'lamed'.",
    "uuid_expiry_seconds: the dedupe window: the same event and uuid count once within it (0 = forever).",
    "limits: caps on what the public tracking endpoint may create.",
    "extra_wiring: extra API paths, e.g. {\"lambda\": {\"FunctionName\": \"lamed-track\", \"Handler\": \"lamed.track\", \"MemorySize\": 128, \"Timeout\": 3}, \"api_gateway\": {\"pathPart\": \"my_tracking_endpoint\", \"method\": {\"httpMethod\": \"GET\", \"apiKeyRequired\": false}}}. Handlers: lamed.track, lamed.all (experiments), lamed.delete. MemorySize and Timeout set that function's memory (MB) and timeout (s); the defaults are 128 and 3.",
    "Then: lamed preflight, lamed deploy."
  ],
  "redis": {"host": "localhost", "port": 6379, "db": 0},
  "uuid_expiry_seconds": 86400,
  "limits": {
    "max_namespaces": 100,
    "max_experiments_per_namespace": 200,
    "max_variants_per_experiment": 20,
    "max_goals_per_experiment": 50
  },
  "extra_wiring": []
}
"#;

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
    file.write_all(TEMPLATE.as_bytes())
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
