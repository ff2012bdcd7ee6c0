//! The command line: one clap-derive enum of subcommands.

use std::path::PathBuf;

use clap::builder::{Resettable, StyledStr};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

pub use lamed_aws::args::{Arch, AwsArgs, DeployArgs, DestroyArgs};

use crate::config::Overrides;
use crate::model::DEFAULT_NAMESPACE;
use crate::segments::Dimension;
use crate::settings::{self, Given};
use crate::stats::Correction;
use crate::store::redis::RedisSettings;
use serde_json::Value;

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
    /// Run the tracking server (embedded store, or Redis when configured)
    ///
    /// Serves GET /track (and /event) for AlephBet, POST /track for
    /// batches, GET /experiments and DELETE /delete (API key), /health and
    /// /metrics. Settings come from flags, then LAMED_* variables, then
    /// config.json (./config.json, else ~/.lamed/config.json), then defaults.
    #[command(after_help = examples::SERVE)]
    Serve(ServeArgs),

    /// Show which variant wins, with statistics, in the terminal
    ///
    /// Reads the local store (the data directory of the configuration) or,
    /// with --server, a running lamed's API. Colours only on a terminal.
    #[command(after_help = examples::REPORT)]
    Report(ReportArgs),

    /// Register experiments and move them through their life
    ///
    /// create, list, show, pause, resume, stop (with a winner or none) and
    /// archive, on the local store (the data directory of the
    /// configuration, or Redis when configured) or, with --server, through
    /// a running lamed's API. While `lamed serve` runs on the local data
    /// directory, use --server.
    #[command(after_help = examples::EXPERIMENTS)]
    Experiments(ExperimentsArgs),

    /// Open the built-in dashboard in a browser (or print its URL)
    Dashboard(DashboardArgs),

    /// Copy counters from a Lamed or Gimel Redis into the configured store
    ///
    /// Reads the keys the original Lamed (integer counters) and Gimel
    /// (HyperLogLog counters, read with PFCOUNT and reported as approximate)
    /// keep in Redis, and sets each as the imported base of the same counter
    /// in the store `lamed serve` would use (embedded, or Redis). Running it
    /// again changes nothing; events tracked since add on top. With
    /// --sixpack it reads a Sixpack server's Redis instead: experiments,
    /// alternatives, participants and conversions per KPI, each client's
    /// alternative, winners, paused and archived states.
    #[command(after_help = examples::IMPORT)]
    Import(ImportArgs),

    /// Copy the embedded store to FILE, consistently, even while serving
    ///
    /// Uses SQLite's online backup API: one snapshot of the counts, the
    /// dedupe memory, the registry and the memberships, taken without
    /// stopping or slowing `lamed serve`. Prints what the copy holds. The
    /// API key file (DATA_DIR/api_key) is not copied. With Redis, back up
    /// Redis itself (README: "Backup and restore").
    #[command(after_help = examples::BACKUP)]
    Backup(BackupArgs),

    /// Put a backup made by `lamed backup` back into the data directory
    ///
    /// Refused while a lamed process (a server) uses the data directory:
    /// stop it first, restore, start it again. Refused too when the store
    /// there counts events, unless --force.
    #[command(after_help = examples::RESTORE)]
    Restore(RestoreArgs),

    /// Create or edit the config file in $EDITOR, then validate it
    ///
    /// Creates ~/.lamed/config.json (or --config PATH) from a template when
    /// it is missing (mode 0600), opens it in $EDITOR (else vi) and checks it
    /// when the editor exits. The template explains every key in its
    /// "_comment" entry (keys starting with "_" are ignored when read).
    #[command(after_help = examples::CONFIGURE)]
    Configure(ConfigureArgs),

    /// Check AWS credentials, region, Redis, config and bootstrap
    ///
    /// Runs every check `lamed deploy` needs and says how to fix each
    /// failure. Exit status 1 when any check fails.
    Preflight(AwsArgs),

    /// Build or update lamed on AWS Lambda + API Gateway
    ///
    /// Creates (or updates in place) the IAM role, the Lambda functions
    /// (this binary, runtime provided.al2023), the REST API "lamed" with
    /// stage prod, its API key and usage plan, then prints the URLs and the
    /// AlephBet snippet. Running it again creates nothing twice.
    #[command(after_help = examples::DEPLOY)]
    Deploy(DeployArgs),

    /// Remove what `lamed deploy` created on AWS, keeping the counts
    ///
    /// Asks for confirmation on the terminal unless --yes is given. The
    /// DynamoDB table the functions counted in stays (destroy says so);
    /// --delete-data deletes it too. Redis data is never touched.
    Destroy(DestroyArgs),

    /// Alerts' webhooks: send a signed test event to every endpoint
    ///
    /// The endpoints are those lamed serve would use: config.json's
    /// "webhooks" and --webhook-url with --webhook-secret.
    #[command(subcommand)]
    Webhooks(WebhooksAction),

    /// Write the man pages: lamed.1 and one page per subcommand
    ///
    /// Generated from the same definitions as --help. Install them where
    /// man looks, e.g. `lamed man /usr/local/share/man/man1`.
    #[command(after_help = examples::MAN)]
    Man(ManArgs),

    /// Print the HTTP API's OpenAPI 3.1 document (JSON)
    ///
    /// The document lamed serve answers at GET /openapi.json: every route,
    /// its parameters, bodies, answers and the API key, generated from the
    /// route table and the bodies' types. Needs no configuration.
    #[command(after_help = examples::OPENAPI)]
    Openapi,
}

/// What each command's help ends with (also in its man page).
mod examples {
    pub const SERVE: &str = "Examples:\n  lamed serve\n  lamed serve --listen 0.0.0.0:8080 --data-dir /var/lib/lamed --fsync\n  lamed serve --redis redis://127.0.0.1:6379/0";
    pub const REPORT: &str = "Examples:\n  lamed report\n  lamed report \"button color\" --control red --json\n  lamed report --server http://127.0.0.1:8080 --namespace shop";
    pub const EXPERIMENTS: &str = "Examples:\n  lamed experiments create \"button color\" --variants red,blue --goals checkout\n  lamed experiments list --status all\n  lamed experiments pause \"button color\" --server http://127.0.0.1:8080";
    pub const IMPORT: &str = "Examples:\n  lamed import --redis redis://old-host:6379/0 --dry-run\n  lamed import --redis redis://old-host:6379/0 --namespace alephbet\n  lamed import --redis redis://sixpack-host:6379/0 --sixpack";
    pub const BACKUP: &str = "Examples:\n  lamed backup /var/backups/lamed-$(date +%F).db\n  lamed backup --data-dir /var/lib/lamed lamed.db";
    pub const RESTORE: &str = "Examples:\n  lamed restore /var/backups/lamed-2026-11-30.db\n  lamed restore --force --data-dir /var/lib/lamed lamed.db";
    pub const CONFIGURE: &str =
        "Examples:\n  lamed configure\n  EDITOR=nano lamed configure --config ./config.json";
    pub const DEPLOY: &str = "Examples:\n  lamed deploy\n  lamed deploy --arch arm64 --bootstrap target/lambda/lamed/bootstrap\n  lamed deploy --endpoint-url http://127.0.0.1:5000 --region us-east-1";
    pub const OPENAPI: &str =
        "Examples:\n  lamed openapi > openapi.json\n  curl http://127.0.0.1:8080/openapi.json";
    pub const MAN: &str =
        "Examples:\n  lamed man\n  sudo lamed man /usr/local/share/man/man1 && man lamed-serve";
    pub const EXPERIMENTS_CREATE: &str = "Examples:\n  lamed experiments create \"button color\" --variants red,blue:3 --goals checkout\n  lamed experiments create headline --variants long,short --control short --description \"shorter converts\"";
    pub const EXPERIMENTS_STOP: &str = "Examples:\n  lamed experiments stop \"button color\" --winner blue --note \"+12% checkouts\"\n  lamed experiments stop headline --no-winner";
}

/// Options of `lamed man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing)
    #[arg(default_value = "man")]
    pub dir: PathBuf,
}

/// Options of `lamed configure`.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("config", |arg| with_help_of(config_arg(), &arg)))]
pub struct ConfigureArgs {
    /// Config file to create or edit [default: ~/.lamed/config.json]
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Options of `lamed backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The backup file to write (replaced whole when it exists)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where the local store is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `lamed restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup file to restore
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replace a store that already counts events
    #[arg(long)]
    pub force: bool,

    /// Where the local store is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `lamed import`.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("to_redis", |arg| {
    with_help_of(settings::arg("redis"), &arg).id("to_redis").long("to-redis")
}))]
#[command(mut_arg("to_dynamodb_table", |arg| {
    with_help_of(settings::arg("dynamodb_table"), &arg)
        .id("to_dynamodb_table")
        .long("to-dynamodb-table")
        .conflicts_with("to_redis")
}))]
pub struct ImportArgs {
    /// Redis of the Lamed or Gimel deployment to read from (a URL)
    #[arg(long, value_name = "URL")]
    pub redis: String,

    /// Import only this namespace [default: every namespace found]
    #[arg(long, value_name = "NS", conflicts_with = "sixpack")]
    pub namespace: Option<String>,

    /// Read a Sixpack server's keys (with this key prefix, Sixpack's
    /// redis_prefix) into the sixpack_namespace [default prefix: sixpack]
    #[arg(long, value_name = "PREFIX", num_args = 0..=1, default_missing_value = "sixpack")]
    pub sixpack: Option<String>,

    /// Show what would be imported; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Where the target store is (as for lamed serve)
    #[command(flatten)]
    pub store: StoreArgs,

    /// Target Redis instead of the embedded store (as lamed serve --redis)
    #[arg(long, value_parser = settings::RedisUrls)]
    pub to_redis: Option<RedisSettings>,

    /// Target DynamoDB table instead of the embedded store (as lamed serve
    /// --dynamodb-table; created when missing)
    #[arg(long)]
    pub to_dynamodb_table: Option<String>,
}

impl ImportArgs {
    /// The settings that choose the target store.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = self.store.overrides();
        if let Some(redis) = &self.to_redis {
            overrides.settings = overrides
                .settings
                .with("redis", settings::redis_urls(redis));
        }
        if let Some(table) = &self.to_dynamodb_table {
            overrides.settings = overrides
                .settings
                .with("dynamodb_table", Value::String(table.clone()));
        }
        overrides
    }
}

/// `--config` as [`Overrides`] defines it: flag, `LAMED_CONFIG`, value name
/// and help.
fn config_arg() -> Arg {
    Overrides::command()
        .get_arguments()
        .find(|arg| arg.get_id() == "config")
        .expect("Overrides has --config")
        .clone()
}

/// `shared` (a setting's argument, or `--config`: its flag, variable, value
/// name, parser and secrecy) as a command's own option `own`: with `own`'s
/// id and help, and no heading.
fn with_help_of(shared: Arg, own: &Arg) -> Arg {
    shared
        .id(own.get_id().clone())
        .help(resettable(own.get_help()))
        .long_help(resettable(own.get_long_help()))
        .help_heading(None::<&'static str>)
}

fn resettable(text: Option<&StyledStr>) -> Resettable<StyledStr> {
    text.cloned().map_or(Resettable::Reset, Resettable::Value)
}

/// Where a command finds the configuration and the local store:
/// `--config` and the `data_dir` setting, as `lamed serve` takes them.
#[derive(Debug, Clone, Default)]
pub struct StoreArgs {
    /// Config file to read instead of ./config.json or ~/.lamed/config.json
    pub config: Option<PathBuf>,
    /// The data directory, when given by flag or variable.
    pub data_dir: Option<PathBuf>,
}

impl Args for StoreArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(config_arg())
            .arg(settings::arg("data_dir").help_heading(None::<&'static str>))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for StoreArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = matches!(
            matches.value_source("data_dir"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        Ok(StoreArgs {
            config: matches.get_one::<PathBuf>("config").cloned(),
            data_dir: matches
                .get_one::<PathBuf>("data_dir")
                .filter(|_| given)
                .cloned(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl StoreArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        let mut settings = Given::default();
        if let Some(dir) = &self.data_dir {
            settings = settings.with("data_dir", serde_json::json!(dir));
        }
        Overrides {
            config: self.config.clone(),
            settings,
        }
    }
}

/// Options of `lamed report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Experiment to report [default: every experiment of the namespace]
    pub experiment: Option<String>,

    /// Namespace of the experiments
    #[arg(long, short, default_value = DEFAULT_NAMESPACE)]
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

    /// Also break the results down by device, browser or country
    /// (exploratory)
    ///
    /// Per value: participants, conversions and rates of each variant, the
    /// uplift against the control with p-values corrected across values ×
    /// variants × goals, and the sample-ratio check. Values with fewer
    /// than 30 participants in a variant are shown without tests.
    #[arg(long, value_name = "DIMENSION", requires = "experiment")]
    pub by: Option<Dimension>,

    /// Correction of the breakdown's p-values: benjamini-hochberg (bh) or
    /// holm
    #[arg(long, value_name = "METHOD", default_value = "benjamini-hochberg",
          value_parser = |name: &str| crate::report::segments::parse_correction(name))]
    pub correction: Correction,

    /// Print JSON (the report API's shape) instead of tables
    #[arg(long)]
    pub json: bool,

    /// A running server to read from instead of the local store
    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Where the local store is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A running lamed to talk to through its API, instead of the local store.
#[derive(Debug, Clone, Default, Args)]
#[command(mut_arg("api_key", |arg| with_help_of(settings::arg("api_key"), &arg)))]
pub struct RemoteArgs {
    /// Use a running server's API instead of the local store
    #[arg(long, env = "LAMED_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// API key for --server
    #[arg(long)]
    pub api_key: Option<String>,

    /// Also trust this PEM certificate for an https:// --server: a private
    /// CA, or the server's self-signed certificate
    ///
    /// The system's trusted roots are always trusted. A self-signed
    /// certificate must name the host in its subjectAltName and not be a
    /// CA (README, "HTTPS").
    #[arg(long, env = "LAMED_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// Options of `lamed experiments`.
#[derive(Debug, Clone, Args)]
pub struct ExperimentsArgs {
    /// What to do with the experiments
    #[command(subcommand)]
    pub action: ExperimentsAction,
}

/// The subcommands of `lamed experiments`.
#[derive(Debug, Clone, Subcommand)]
pub enum ExperimentsAction {
    /// Register an experiment, or redefine a registered one
    ///
    /// A redefinition keeps the status, times and decision; it may add
    /// variants and goals, never remove one (counts carry them).
    #[command(after_help = examples::EXPERIMENTS_CREATE)]
    Create(CreateArgs),

    /// List the experiments of a namespace
    List(ListArgs),

    /// Show one experiment's record
    Show(ShowArgs),

    /// Stop counting an experiment until it is resumed
    Pause(NamedArgs),

    /// Count a paused experiment again
    Resume(NamedArgs),

    /// End an experiment with a decision: a winner, or no winner
    ///
    /// A stopped experiment keeps its counts as they were and never runs
    /// again.
    #[command(after_help = examples::EXPERIMENTS_STOP)]
    Stop(StopArgs),

    /// Put an experiment away: it counts nothing and leaves the default list
    Archive(NamedArgs),
}

impl ExperimentsAction {
    /// Where the subcommand acts.
    pub fn target(&self) -> &Target {
        match self {
            ExperimentsAction::Create(args) => &args.target,
            ExperimentsAction::List(args) => &args.target,
            ExperimentsAction::Show(args) => &args.target,
            ExperimentsAction::Stop(args) => &args.target,
            ExperimentsAction::Pause(args)
            | ExperimentsAction::Resume(args)
            | ExperimentsAction::Archive(args) => &args.target,
        }
    }
}

/// Where the experiments are: a namespace of the local store or of a
/// running server.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Namespace of the experiments
    #[arg(long, short, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,

    /// A running server to use instead of the local store
    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Where the local store is
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Options of `lamed experiments create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The experiment's name, as the client sends it
    pub name: String,

    /// Variants in AlephBet's order, each with an optional weight: a,b:3
    #[arg(long, value_name = "LIST")]
    pub variants: String,

    /// The variant the others are compared with [default: the first]
    #[arg(long, value_name = "VARIANT")]
    pub control: Option<String>,

    /// Goals, comma-separated: buy,share
    #[arg(long, value_name = "LIST")]
    pub goals: Option<String>,

    /// What it tests, or its hypothesis
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,

    /// Adapt the weights toward the variant that wins this goal, hourly
    #[arg(long, value_name = "GOAL")]
    pub adaptive: Option<String>,

    /// Where the experiment is
    #[command(flatten)]
    pub target: Target,
}

/// Options of `lamed experiments list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Statuses to list, comma-separated, or all [default: all but archived]
    #[arg(long, value_name = "LIST")]
    pub status: Option<String>,

    /// Print the records as JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Where the experiments are
    #[command(flatten)]
    pub target: Target,
}

/// Options of `lamed experiments show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The experiment's name
    pub name: String,

    /// Print the record as JSON
    #[arg(long)]
    pub json: bool,

    /// Where the experiment is
    #[command(flatten)]
    pub target: Target,
}

/// Options of the lifecycle moves that need only a name.
#[derive(Debug, Clone, Args)]
pub struct NamedArgs {
    /// The experiment's name
    pub name: String,

    /// Where the experiment is
    #[command(flatten)]
    pub target: Target,
}

/// Options of `lamed experiments stop`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("decision").required(true).args(["winner", "no_winner"]))]
pub struct StopArgs {
    /// The experiment's name
    pub name: String,

    /// The winning variant
    #[arg(long, value_name = "VARIANT")]
    pub winner: Option<String>,

    /// No variant won
    #[arg(long)]
    pub no_winner: bool,

    /// Why, in your words
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub note: String,

    /// Where the experiment is
    #[command(flatten)]
    pub target: Target,
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

/// The subcommands of `lamed webhooks`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksAction {
    /// Send a signed test event (type webhook.test) to every endpoint now
    ///
    /// Prints each endpoint's answer; exit status 1 when one did not answer
    /// 2xx. Nothing is kept in the store and nothing is retried.
    Test(WebhooksTestArgs),
}

/// Options of `lamed webhooks test`.
#[derive(Debug, Clone, Default, Args)]
pub struct WebhooksTestArgs {
    /// The config file and every setting
    #[command(flatten)]
    pub overrides: Overrides,
}

/// Options of `lamed serve`: every setting (see [`crate::settings`]),
/// each overriding the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Also serve GET /_bench/empty, a no-op baseline for benchmarks
    #[arg(long, env = "LAMED_BENCH_ROUTES")]
    pub bench_routes: bool,

    /// The config file and every setting
    #[command(flatten)]
    pub overrides: Overrides,
}

impl ServeArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        self.overrides.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, FileConfig};
    use crate::store::Durability;

    fn resolved(args: &ServeArgs) -> Config {
        Config::resolve(None, FileConfig::default(), args.overrides()).unwrap()
    }

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

    /// The options that are also settings (or `--config`) take their flag,
    /// variable and secrecy from there, with their own help.
    #[test]
    fn shared_options_come_from_the_settings() {
        let cli = Cli::command();
        let option = |command: &str, id: &str| {
            let mut found = None;
            for sub in cli.get_subcommands() {
                let sub = std::iter::once(sub).chain(sub.get_subcommands());
                for sub in sub.filter(|sub| sub.get_name() == command) {
                    found = sub.get_arguments().find(|a| a.get_id() == id).cloned();
                }
            }
            found.unwrap_or_else(|| panic!("{command} has no {id}"))
        };
        let env = |arg: &Arg| arg.get_env().map(|e| e.to_string_lossy().into_owned());
        for (command, id, setting, long) in [
            ("report", "api_key", settings::arg("api_key"), "api-key"),
            ("list", "api_key", settings::arg("api_key"), "api-key"),
            ("import", "to_redis", settings::arg("redis"), "to-redis"),
            (
                "import",
                "to_dynamodb_table",
                settings::arg("dynamodb_table"),
                "to-dynamodb-table",
            ),
            ("configure", "config", config_arg(), "config"),
        ] {
            let arg = option(command, id);
            assert_eq!(arg.get_long(), Some(long));
            assert_eq!(env(&arg), env(&setting), "{command} {id}");
            assert_eq!(
                arg.is_hide_env_values_set(),
                setting.is_hide_env_values_set()
            );
            assert_ne!(arg.get_help(), setting.get_help(), "{command} {id}");
        }
    }

    /// Flags default to "not given", so the file and defaults apply.
    #[test]
    fn serve_defaults() {
        let args = serve(&[]);
        assert!(!args.bench_routes);
        let given: Vec<&str> = args.overrides.settings.ids().collect();
        assert!(
            !given.contains(&"listen") && !given.contains(&"fsync"),
            "{given:?}"
        );
    }

    /// Deploy's flags parse; the architecture defaults to x86_64 and a
    /// later --arch wins.
    #[test]
    fn deploy_flags() {
        let cli = Cli::try_parse_from([
            "lamed",
            "deploy",
            "--no-preflight",
            "--region",
            "eu-west-1",
            "--arch",
            "arm64",
            "--arch",
            "x86_64",
            "--endpoint-url",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert!(args.no_preflight);
        assert_eq!(args.aws.arch, Arch::X86_64);
        assert_eq!(args.aws.region.as_deref(), Some("eu-west-1"));
        let cli = Cli::try_parse_from(["lamed", "deploy"]).unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert!(!args.no_preflight && args.aws.arch == Arch::X86_64);
        assert!(Cli::try_parse_from(["lamed", "deploy", "--arch", "mips"]).is_err());
    }

    /// Long forms parse, `--fsync` alone means every commit, a later flag
    /// wins.
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
        let config = resolved(&args);
        assert_eq!(config.listen.port(), 1);
        assert_eq!(config.fsync, Durability::Commit);
        assert_eq!(config.uuid_expiry_seconds, 7);
        for (flag, mode) in [
            ("--fsync=false", Durability::None),
            ("--fsync=none", Durability::None),
            ("--fsync=second", Durability::Second),
            ("--fsync=commit", Durability::Commit),
        ] {
            assert_eq!(resolved(&serve(&[flag])).fsync, mode, "{flag}");
        }
        assert!(Cli::try_parse_from(["lamed", "serve", "--fsync=always"]).is_err());
        assert!(Cli::try_parse_from(["lamed", "serve", "--listen", "nope"]).is_err());
        let config = resolved(&serve(&["--redis", "redis://a", "--redis", "redis://b"]));
        assert_eq!(config.redis.as_ref().unwrap().nodes[0].host, "b");
        let store = serve(&["--data-dir", "d", "--max-experiments", "3"]);
        assert_eq!(resolved(&store).data_dir, PathBuf::from("d"));
        assert_eq!(resolved(&store).caps.max_experiments_per_namespace, 3);
    }

    /// `experiments` subcommands parse; the namespace defaults to
    /// alephbet, a later flag wins, and stop needs exactly one decision.
    #[test]
    fn experiments_flags() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["lamed", "experiments"], args].concat()).map(|cli| {
                match cli.command {
                    Command::Experiments(args) => args.action,
                    other => panic!("parsed as {other:?}"),
                }
            })
        };
        let ExperimentsAction::Create(create) = parse(&[
            "create",
            "b",
            "--variants",
            "x,y:3",
            "-n",
            "a",
            "--namespace",
            "shop",
        ])
        .unwrap() else {
            panic!("not create")
        };
        assert_eq!(
            (create.name.as_str(), create.variants.as_str()),
            ("b", "x,y:3")
        );
        assert_eq!(create.target.namespace, "shop");
        assert!(parse(&["create", "b"]).is_err(), "--variants is required");
        let ExperimentsAction::List(list) = parse(&["list"]).unwrap() else {
            panic!("not list")
        };
        assert_eq!(
            (list.target.namespace.as_str(), list.status, list.json),
            ("alephbet", None, false)
        );
        let ExperimentsAction::Stop(stop) = parse(&["stop", "b", "--winner", "y"]).unwrap() else {
            panic!("not stop")
        };
        assert_eq!((stop.winner.as_deref(), stop.no_winner), (Some("y"), false));
        assert!(parse(&["stop", "b"]).is_err(), "a decision is required");
        assert!(parse(&["stop", "b", "--winner", "y", "--no-winner"]).is_err());
        assert!(matches!(
            parse(&["pause", "b", "--server", "http://127.0.0.1:1"]).unwrap(),
            ExperimentsAction::Pause(NamedArgs {
                target: Target {
                    remote: RemoteArgs {
                        server: Some(_),
                        ..
                    },
                    ..
                },
                ..
            })
        ));
    }

    /// `import` needs --redis; --dry-run and --namespace are optional.
    #[test]
    fn import_flags() {
        assert!(Cli::try_parse_from(["lamed", "import"]).is_err());
        let cli = Cli::try_parse_from([
            "lamed",
            "import",
            "--redis",
            "redis://127.0.0.1:1",
            "--dry-run",
            "--namespace",
            "ns",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import")
        };
        assert!(args.dry_run);
        assert_eq!(args.namespace.as_deref(), Some("ns"));
        assert_eq!(
            args.overrides().settings.contains("redis"),
            args.to_redis.is_some()
        );
        let cli = Cli::try_parse_from([
            "lamed",
            "import",
            "--redis",
            "redis://127.0.0.1:1",
            "--to-redis",
            "redis://127.0.0.1:2",
            "--data-dir",
            "d",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import")
        };
        let config = Config::resolve(None, FileConfig::default(), args.overrides()).unwrap();
        assert_eq!(config.redis.as_ref().unwrap().nodes[0].port, 2);
        assert_eq!(config.data_dir, PathBuf::from("d"));
        assert!(Cli::try_parse_from([
            "lamed",
            "import",
            "--redis",
            "redis://127.0.0.1:1",
            "--to-redis",
            "http://x"
        ])
        .is_err());
        let to_table = |extra: &[&str]| {
            let mut args = vec!["lamed", "import", "--redis", "redis://127.0.0.1:1"];
            args.extend(extra);
            Cli::try_parse_from(args)
        };
        let Command::Import(args) = to_table(&["--to-dynamodb-table", "t"]).unwrap().command else {
            panic!("not import")
        };
        let config = Config::resolve(None, FileConfig::default(), args.overrides()).unwrap();
        assert_eq!(config.dynamodb_table.as_deref(), Some("t"));
        assert!(to_table(&["--to-dynamodb-table", "t", "--to-redis", "redis://h"]).is_err());
    }
}
