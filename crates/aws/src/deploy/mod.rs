//! `lamed deploy` and `lamed destroy`: the same `lamed` binary on AWS
//! Lambda behind API Gateway, built idempotently through the AWS SDK.
//!
//! # Layout
//!
//! - [`plan`]: what is built, as plain data (names, functions, paths).
//! - [`preflight`]: every check before a change, each with its fix.
//! - [`package`]: the zip with `bootstrap`, stripped and within AWS
//!   Lambda's size limits.
//! - [`dynamodb`], [`iam`], [`functions`], [`apigateway`], [`schedule`]
//!   (EventBridge): one AWS service each, every step looking up before it
//!   creates.

pub mod apigateway;
pub mod dynamodb;
pub mod functions;
pub mod iam;
pub mod package;
pub mod plan;
pub mod preflight;
pub mod schedule;

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use aws_config::{Region, SdkConfig};
use aws_sdk_lambda::error::SdkError;

use crate::args::{DeployArgs, DestroyArgs};
use lamed_config::config::{Config, Handler, Overrides};
use lamed_config::settings::variable;
use lamed_progress::Steps;
use lamed_server::routes::Function;
use plan::STAGE;

/// One step done: a line on stderr, above the spinner on a terminal.
pub(crate) fn progress(step: &str) {
    lamed_progress::step(step);
}

/// An SDK error with its whole cause chain (the SDK's `Display` says only
/// "service error").
pub(crate) fn sdk_error<E>(err: E) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow::anyhow!("{}", aws_sdk_lambda::error::DisplayErrorContext(&err))
}

/// What every step does with an SDK call's answer: an error carries its
/// cause chain and says what could not be done; a lookup or a delete reads
/// "not found" as `None` instead.
pub(crate) trait Answer<T, E> {
    /// The output, or the error with `what` ("cannot create function x").
    fn checked<C, F>(self, what: F) -> anyhow::Result<T>
    where
        C: std::fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C;

    /// The output, `None` when the service answers that the thing is not
    /// there (see [`NotFound`]), or any other error with `what`.
    fn found<C, F>(self, what: F) -> anyhow::Result<Option<T>>
    where
        E: NotFound,
        C: std::fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C;
}

impl<T, E, R> Answer<T, E> for Result<T, SdkError<E, R>>
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn checked<C, F>(self, what: F) -> anyhow::Result<T>
    where
        C: std::fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        self.map_err(sdk_error).with_context(what)
    }

    fn found<C, F>(self, what: F) -> anyhow::Result<Option<T>>
    where
        E: NotFound,
        C: std::fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        match self {
            Ok(output) => Ok(Some(output)),
            Err(err) if err.as_service_error().is_some_and(E::not_found) => Ok(None),
            Err(err) => Err(err).checked(what),
        }
    }
}

/// The error of an SDK operation, which may say that what the call names
/// is not there.
pub(crate) trait NotFound {
    /// Whether the service answered "not found" (no such role, function,
    /// alias, path, method...).
    fn not_found(&self) -> bool;
}

/// `NotFound` for the errors of the operations that look up or delete:
/// `Type: predicate`, the predicate the SDK generates for the service's
/// "not found" error.
macro_rules! not_found {
    ($($error:ty: $is:ident),* $(,)?) => {$(
        impl NotFound for $error {
            fn not_found(&self) -> bool {
                self.$is()
            }
        }
    )*};
}

not_found! {
    aws_sdk_iam::operation::get_role::GetRoleError: is_no_such_entity_exception,
    aws_sdk_iam::operation::list_role_policies::ListRolePoliciesError: is_no_such_entity_exception,
    aws_sdk_lambda::operation::get_function::GetFunctionError: is_resource_not_found_exception,
    aws_sdk_lambda::operation::get_alias::GetAliasError: is_resource_not_found_exception,
    aws_sdk_lambda::operation::get_policy::GetPolicyError: is_resource_not_found_exception,
    aws_sdk_lambda::operation::delete_function::DeleteFunctionError: is_resource_not_found_exception,
    aws_sdk_apigateway::operation::delete_resource::DeleteResourceError: is_not_found_exception,
    aws_sdk_apigateway::operation::delete_method::DeleteMethodError: is_not_found_exception,
    aws_sdk_apigateway::operation::delete_deployment::DeleteDeploymentError: is_not_found_exception,
    aws_sdk_apigateway::operation::delete_api_key::DeleteApiKeyError: is_not_found_exception,
    aws_sdk_dynamodb::operation::describe_table::DescribeTableError: is_resource_not_found_exception,
    aws_sdk_dynamodb::operation::delete_table::DeleteTableError: is_resource_not_found_exception,
    aws_sdk_eventbridge::operation::describe_rule::DescribeRuleError: is_resource_not_found_exception,
    aws_sdk_eventbridge::operation::list_targets_by_rule::ListTargetsByRuleError: is_resource_not_found_exception,
    aws_sdk_eventbridge::operation::remove_targets::RemoveTargetsError: is_resource_not_found_exception,
    aws_sdk_eventbridge::operation::delete_rule::DeleteRuleError: is_resource_not_found_exception,
}

/// The AWS configuration from the standard chain (environment, profile,
/// SSO, instance role...), with `--region` and `--endpoint-url` on top.
pub async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = lamed_store::dynamodb::sdk::defaults();
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The clients of the services lamed uses.
pub struct Clients {
    /// IAM (the role).
    pub iam: aws_sdk_iam::Client,
    /// Lambda (the functions).
    pub lambda: aws_sdk_lambda::Client,
    /// API Gateway (the REST API, key and usage plan).
    pub apigateway: aws_sdk_apigateway::Client,
    /// DynamoDB (the table, when the functions count in one).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// EventBridge (the alert check's schedule).
    pub events: aws_sdk_eventbridge::Client,
}

impl Clients {
    /// Clients sharing one configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Clients {
            iam: aws_sdk_iam::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            apigateway: aws_sdk_apigateway::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }
}

/// The base URL of the stage.
pub fn stage_url(api: &str, region: &str) -> String {
    format!("https://{api}.execute-api.{region}.amazonaws.com/{STAGE}")
}

/// What `lamed deploy` built: what the binary shows its user.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The region of the functions.
    pub region: String,
    /// The REST API's id.
    pub api: String,
    /// The stage's base URL.
    pub base_url: String,
    /// The `extra_wiring` paths, with the handler each serves.
    pub extra_routes: Vec<(String, Handler)>,
    /// The API key the management API requires.
    pub api_key: String,
    /// The DynamoDB table the functions count in; `None` on Redis.
    pub table: Option<String>,
    /// The alert check's schedule; `None` without webhooks.
    pub alerts: Option<plan::Schedule>,
}

/// Runs `lamed deploy`.
///
/// # Errors
///
/// A failed check before anything changes, or the step that failed, naming
/// the resource and the reason.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<Deployed> {
    let steps = Steps::start("deploying");
    let ready = preflight::prepare(&args.aws, !args.no_preflight).await?;
    let plan = plan::plan(&ready.config, args.aws.arch)?;
    let zip = &ready.package.zip;
    progress(&format!(
        "packaged {} as bootstrap ({})",
        ready.bootstrap.display(),
        ready.package.summary()
    ));
    let clients = Clients::new(&ready.sdk);
    let region = ready.region.as_str();

    let table_arn = match plan.counting.table() {
        Some(table) => Some(dynamodb::ensure_table(&ready.sdk, &ready.config, table).await?),
        None => None,
    };
    let role_arn = iam::ensure_role(&clients.iam, table_arn.as_deref()).await?;
    let (key_id, api_key) =
        apigateway::ensure_api_key(&clients.apigateway, ready.config.api_key.as_deref()).await?;
    let api = apigateway::ensure_api(&clients.apigateway).await?;
    let mut environment = plan.environment(&ready.config, &api_key);
    // The alerts' dashboard links: the configured public_url, else the
    // stage's URL.
    let public_url = ready
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| stage_url(&api, region));
    environment.insert(variable("public_url"), public_url);
    let mut alias_arns = HashMap::new();
    for spec in &plan.functions {
        let deployed = functions::ensure_function(
            &clients.lambda,
            functions::FunctionInput {
                spec,
                role_arn: &role_arn,
                zip,
                arch: plan.arch,
                environment: &environment,
            },
        )
        .await?;
        alias_arns.insert(spec.name.clone(), deployed.alias_arn);
    }

    apigateway::wire_routes(&clients.apigateway, &api, region, &plan, &alias_arns).await?;
    // arn:aws:iam::<account>:role/lamed
    let mut arn = role_arn.split(':');
    let partition = arn.nth(1).unwrap_or("aws");
    let account = arn.nth(1).unwrap_or("*");
    let source_arn = format!("arn:{partition}:execute-api:{region}:{account}:{api}/*");
    let statement_id = format!("lamed-apigateway-{api}");
    let gateway = functions::Invoker {
        principal: "apigateway.amazonaws.com",
        source_arn: &source_arn,
        statement_id: &statement_id,
    };
    for spec in &plan.functions {
        if functions::ensure_permission(&clients.lambda, &spec.name, gateway).await? {
            progress(&format!(
                "function {}: API Gateway may invoke {}",
                spec.name,
                plan::ALIAS
            ));
        }
    }
    apigateway::deploy_stage(&clients.apigateway, &api).await?;
    apigateway::ensure_usage_plan(&clients.apigateway, &api, &key_id).await?;
    match &plan.alerts {
        Some(alerts) => {
            let alias = alias_arns
                .get(&alerts.function)
                .with_context(|| format!("function {} was not deployed", alerts.function))?;
            schedule::ensure(&clients.events, &clients.lambda, alerts, alias).await?;
        }
        None => {
            if schedule::remove(&clients.events).await? {
                progress(&format!(
                    "EventBridge rule {}: removed (no webhook configured)",
                    plan::ALERTS_RULE
                ));
            }
        }
    }

    drop(steps);
    Ok(Deployed {
        region: region.to_owned(),
        base_url: stage_url(&api, region),
        api,
        extra_routes: plan.extra_routes,
        api_key,
        table: plan.counting.table().map(str::to_owned),
        alerts: plan.alerts,
    })
}

/// Runs `lamed destroy`: everything deploy built except the counts. A
/// DynamoDB table is deleted only with `--delete-data`, once confirmed.
///
/// # Errors
///
/// When not confirmed, when AWS cannot be reached, or a removal fails.
pub async fn destroy(args: DestroyArgs) -> anyhow::Result<()> {
    // Refused before any AWS call: nobody can answer the question.
    if !args.yes && !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to destroy without confirmation: standard input is not a terminal; pass --yes"
        );
    }
    let sdk = sdk_config(args.region.as_deref(), args.endpoint_url.as_deref()).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .context(preflight::NO_REGION)?;
    let clients = Clients::new(&sdk);
    let table = deployed_table(&clients.lambda, &args).await?;
    if !args.yes {
        confirm(&args, table.as_deref())?;
    }
    let _steps = Steps::start("removing");
    progress(&format!("removing lamed from region {region}"));
    if schedule::remove(&clients.events).await? {
        progress(&format!("EventBridge rule {}: removed", plan::ALERTS_RULE));
    }
    for what in apigateway::destroy(&clients.apigateway).await? {
        progress(&format!("{what}: removed"));
    }
    for name in Function::ALL.map(Function::name) {
        if functions::delete_function(&clients.lambda, name).await? {
            progress(&format!("function {name}: removed with its versions"));
        }
    }
    if iam::delete_role(&clients.iam).await? {
        progress(&format!("IAM role {}: removed", plan::ROLE_NAME));
    }
    match (&table, args.delete_data) {
        (Some(table), true) => {
            if dynamodb::delete_table(&clients.dynamodb, table).await? {
                progress(&format!(
                    "DynamoDB table {table}: deleted with every count in it"
                ));
            } else {
                progress(&format!("DynamoDB table {table}: not there"));
            }
        }
        (Some(table), false) => {
            if dynamodb::describe(&clients.dynamodb, table)
                .await?
                .is_some()
            {
                progress(&format!(
                    "DynamoDB table {table}: kept with its counts (lamed destroy --delete-data deletes it)"
                ));
            }
        }
        (None, true) => {
            progress("--delete-data: the functions counted on Redis, which lamed leaves as it is")
        }
        (None, false) => {}
    }
    progress("done; CloudWatch log groups /aws/lambda/lamed-* are kept (delete them in the console if unwanted)");
    Ok(())
}

/// The DynamoDB table of the deployment: the one its functions were given
/// (`LAMED_DYNAMODB_TABLE`), else, when none is left, the one deploy would
/// choose from the config. `None` when it counts on Redis.
///
/// # Errors
///
/// When Lambda cannot be asked; with `--delete-data`, also when the
/// config cannot be read (without it, the table is only mentioned).
async fn deployed_table(
    lambda: &aws_sdk_lambda::Client,
    args: &DestroyArgs,
) -> anyhow::Result<Option<String>> {
    let variable = variable("dynamodb_table");
    let mut deployed = false;
    for name in Function::ALL.map(Function::name) {
        let Some(function) = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .found(|| format!("cannot read function {name}"))?
        else {
            continue;
        };
        deployed = true;
        let table = function
            .configuration
            .and_then(|c| c.environment)
            .and_then(|e| e.variables)
            .and_then(|mut variables| variables.remove(&variable));
        if table.is_some() {
            return Ok(table);
        }
    }
    if deployed {
        return Ok(None);
    }
    let from_config = Config::load(Overrides {
        config: args.config.clone(),
        ..Overrides::default()
    })
    .map_err(anyhow::Error::from)
    .and_then(|config| plan::Counting::of(&config));
    match from_config {
        Ok(counting) => Ok(counting.table().map(str::to_owned)),
        Err(err) if args.delete_data => {
            Err(err).context("no function is left to name the table; cannot read the config")
        }
        Err(_) => Ok(None),
    }
}

/// Asks on the terminal; with `--delete-data`, the table's name must be
/// typed: deleting counts is never one keystroke away.
fn confirm(args: &DestroyArgs, table: Option<&str>) -> anyhow::Result<()> {
    let (kept, answer) = match (table, args.delete_data) {
        (Some(table), true) => (
            format!("AND DynamoDB table {table} with every count in it"),
            table,
        ),
        (Some(table), false) => (
            format!("(DynamoDB table {table} and its counts stay)"),
            "yes",
        ),
        (None, _) => ("(the Redis data stays)".to_owned(), "yes"),
    };
    eprint!(
        "lamed: this removes lamed's REST API, API key, usage plan, alert schedule, Lambda functions \
         and IAM role {kept}. Type '{answer}' to continue: "
    );
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the confirmation")?;
    if line.trim() != answer {
        anyhow::bail!("not confirmed; nothing was removed");
    }
    Ok(())
}
