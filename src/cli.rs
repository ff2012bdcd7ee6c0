//! The command line: one clap-derive enum of subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

/// Lamed: a self-hosted A/B-testing backend for the AlephBet client.
///
/// Counts every unique AlephBet event exactly once on an embedded durable
/// store, and answers the same HTTP API as the original Lamed.
#[derive(Debug, Parser)]
#[command(
    name = "lamed",
    version,
    propagate_version = true,
    args_override_self = true
)]
#[command(after_help = "Use -h for short descriptions and --help for more details.")]
pub struct Cli {
    /// Log format on stderr
    #[arg(long, global = true, env = "LAMED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines
    Human,
    /// One JSON object per line
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tracking server on the embedded store
    ///
    /// Serves GET /track (and /event) for AlephBet, POST /track for
    /// batches, GET /experiments and DELETE /delete (API key), /health and
    /// /metrics. Settings come from flags, then LAMED_* variables, then
    /// config.json (./config.json, else ~/.lamed/config.json), then defaults.
    #[command(
        after_help = "Examples:\n  lamed serve\n  lamed serve --listen 0.0.0.0:8080 --data-dir /var/lib/lamed --fsync"
    )]
    Serve(ServeArgs),

    /// Show which variant wins, with statistics, in the terminal
    ///
    /// Reads the local store (the data directory of the configuration) or,
    /// with --server, a running lamed's API. Colours only on a terminal.
    #[command(
        after_help = "Examples:\n  lamed report\n  lamed report \"button color\" --control red --json\n  lamed report --server http://127.0.0.1:8080 --namespace shop"
    )]
    Report(ReportArgs),

    /// Open the built-in dashboard in a browser (or print its URL)
    Dashboard(DashboardArgs),
}

/// Where a command finds the configuration and the local store.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Config file to read instead of ./config.json or ~/.lamed/config.json
    #[arg(long, env = "LAMED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Data directory of the store [default: from the config, else ./lamed-data]
    #[arg(long, env = "LAMED_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Overrides::default()
        }
    }
}

/// Options of `lamed report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Experiment to report [default: every experiment of the namespace]
    pub experiment: Option<String>,

    /// Namespace of the experiments
    #[arg(long, short, default_value = "alephbet")]
    pub namespace: String,

    /// Variant to compare against [default: one named control/original/
    /// baseline/default/a, else the first by name]
    #[arg(long, value_name = "VARIANT", requires = "experiment")]
    pub control: Option<String>,

    /// Only this goal
    #[arg(long, requires = "experiment")]
    pub goal: Option<String>,

    /// Expected traffic split for the sample-ratio check, e.g. red:80,blue:20
    #[arg(long, value_name = "SPLIT", requires = "experiment")]
    pub weights: Option<String>,

    /// Print JSON (the report API's shape) instead of tables
    #[arg(long)]
    pub json: bool,

    /// Read from a running server's API instead of the local store
    #[arg(long, env = "LAMED_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// API key for --server
    #[arg(
        long,
        env = "LAMED_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Where the local store is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `lamed dashboard`.
#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    /// Dashboard URL [default: from the config's public_url or listen address]
    #[arg(long)]
    pub url: Option<String>,

    /// Only print the URL, do not start a browser
    #[arg(long)]
    pub no_browser: bool,

    /// Where the configuration is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `lamed serve`; each overrides the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Config file to read instead of ./config.json or ~/.lamed/config.json
    #[arg(long, env = "LAMED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "LAMED_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory of the store and the generated API key [default: ./lamed-data]
    #[arg(long, env = "LAMED_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// API key for the private endpoints [default: generated once, kept in DIR/api_key]
    ///
    /// At least 16 characters. Prefer the LAMED_API_KEY variable or the config
    /// file: command lines are visible to other local users.
    #[arg(
        long,
        env = "LAMED_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Dedupe window in seconds; 0 never forgets [default: 86400]
    ///
    /// The same (namespace, experiment, event, variant, uuid) is counted once
    /// within this window from its first sighting, as in Lamed.
    #[arg(long, env = "LAMED_UUID_EXPIRY_SECONDS", value_name = "SECONDS")]
    pub uuid_expiry_seconds: Option<u64>,

    /// fsync every commit, so a 200 also survives power loss (slower)
    ///
    /// Without it a 200 survives a crash or kill -9 of lamed, but the last
    /// commits may be lost if the whole machine loses power.
    #[arg(long, env = "LAMED_FSYNC", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub fsync: Option<bool>,

    /// Base URL the world reaches this server at, for the printed snippet
    #[arg(long, env = "LAMED_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Most events in one POST /track batch [default: 1000]
    #[arg(long, env = "LAMED_MAX_BATCH_EVENTS", value_name = "N")]
    pub max_batch_events: Option<usize>,

    /// Most namespaces tracking may create [default: 100]
    #[arg(long, env = "LAMED_MAX_NAMESPACES", value_name = "N")]
    pub max_namespaces: Option<usize>,

    /// Most experiments per namespace [default: 200]
    #[arg(long, env = "LAMED_MAX_EXPERIMENTS", value_name = "N")]
    pub max_experiments: Option<usize>,

    /// Most variants per experiment [default: 20]
    #[arg(long, env = "LAMED_MAX_VARIANTS", value_name = "N")]
    pub max_variants: Option<usize>,

    /// Most goals per experiment [default: 50]
    #[arg(long, env = "LAMED_MAX_GOALS", value_name = "N")]
    pub max_goals: Option<usize>,

    /// Also serve GET /_bench/empty, a no-op baseline for benchmarks
    #[arg(long, env = "LAMED_BENCH_ROUTES")]
    pub bench_routes: bool,
}

impl ServeArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            api_key: self.api_key.clone(),
            uuid_expiry_seconds: self.uuid_expiry_seconds,
            fsync: self.fsync,
            public_url: self.public_url.clone(),
            max_batch_events: self.max_batch_events,
            max_namespaces: self.max_namespaces,
            max_experiments: self.max_experiments,
            max_variants: self.max_variants,
            max_goals: self.max_goals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn serve(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from([&["lamed", "serve"], args].concat()).unwrap();
        match cli.command {
            Command::Serve(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The clap definition is consistent.
    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    /// Flags default to "not given", so the file and defaults apply.
    #[test]
    fn serve_defaults() {
        let args = serve(&[]);
        assert!(args.listen.is_none() && args.fsync.is_none() && !args.bench_routes);
    }

    /// Long forms parse, `--fsync` alone means true, a later flag wins.
    #[test]
    fn serve_flags() {
        let args = serve(&[
            "--listen",
            "127.0.0.1:1",
            "--fsync",
            "--uuid-expiry-seconds",
            "5",
            "--uuid-expiry-seconds",
            "7",
        ]);
        assert_eq!(args.listen.unwrap().port(), 1);
        assert_eq!(args.fsync, Some(true));
        assert_eq!(args.uuid_expiry_seconds, Some(7));
        assert_eq!(serve(&["--fsync=false"]).fsync, Some(false));
        assert!(Cli::try_parse_from(["lamed", "serve", "--listen", "nope"]).is_err());
    }
}
