//! `lamed configure`, `preflight`, `deploy` and `destroy` run as the real
//! binary against a private moto_server (the AWS API emulator) and a
//! private redis-server; what deploy built is checked through the AWS API.
#![cfg(feature = "aws")]

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use lamed::deploy::package::{MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES};
use util::aws::{
    code_sha256, debug_executable, elf_header, fake_bootstrap, free_port, lamed, Moto, Redis,
    CREDENTIALS, REGION,
};

const FUNCTIONS: [&str; 5] = [
    "lamed-track",
    "lamed-all-experiments",
    "lamed-delete-experiment",
    "lamed-report",
    "lamed-dashboard",
];

/// Every path deploy creates for the standard config plus one extra path.
const PATHS: [&str; 19] = [
    "/",
    "/track",
    "/event",
    "/health",
    "/participate",
    "/convert",
    "/_status",
    "/experiments",
    "/experiments/{experiment}",
    "/delete",
    "/api",
    "/api/experiments",
    "/api/experiments/{experiment}",
    "/api/experiments/{experiment}/report",
    "/api/experiments/{experiment}/weights",
    "/api/lifecycle",
    "/dashboard",
    "/dashboard/{asset}",
    "/my_tracking_endpoint",
];

/// The webhook of the full config: its alert check runs every 2 minutes.
const WEBHOOK: &str = r#""alert_check_seconds": 120,
    "webhooks": [{"url": "https://hooks.example.com/lamed", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}],"#;

/// The config of the tests: on `redis_port`; `extra` adds an extra path
/// (its function at 256 MB and 15 s) and a webhook.
fn config_json(redis_port: u16, extra: bool) -> String {
    let wiring = if extra {
        r#"[{"lambda": {"FunctionName": "lamed-track", "Handler": "lamed.track", "MemorySize": 256, "Timeout": 15},
             "api_gateway": {"pathPart": "my_tracking_endpoint",
                             "method": {"httpMethod": "GET", "apiKeyRequired": false,
                                        "requestParameters": {"method.request.querystring.uuid": false}}}}]"#
    } else {
        "[]"
    };
    let webhook = if extra { WEBHOOK } else { "" };
    format!(
        r#"{{"redis": {{"host": "127.0.0.1", "port": {redis_port}}}, "uuid_expiry_seconds": 3600,
            {webhook} "extra_wiring": {wiring}}}"#
    )
}

/// A test workspace: home directory, config file, fake bootstrap.
struct Workspace {
    dir: tempfile::TempDir,
    moto: Moto,
    redis: Redis,
}

impl Workspace {
    fn new() -> Workspace {
        let workspace = Workspace {
            dir: tempfile::tempdir().unwrap(),
            moto: Moto::start(),
            redis: Redis::start(),
        };
        workspace.write_config(&config_json(workspace.redis.port, true));
        fake_bootstrap(workspace.home(), 0x3e);
        fake_bootstrap(workspace.home(), 0xb7);
        workspace
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self, json: &str) {
        std::fs::write(self.home().join("config.json"), json).unwrap();
    }

    /// Runs `lamed <command> --config config.json --endpoint-url moto
    /// --region us-east-1 [args]` with the test credentials.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec![
            command,
            "--endpoint-url",
            &self.moto.url,
            "--region",
            REGION,
        ];
        if command != "destroy" {
            all.extend(["--config", "config.json", "--bootstrap", "bootstrap-3e"]);
        }
        all.extend(args);
        lamed(self.home(), &all, &CREDENTIALS)
    }

    fn deploy(&self, args: &[&str]) -> String {
        let output = self.run("deploy", args);
        assert!(
            output.status.success(),
            "deploy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Everything lamed owns in the emulator, by id: equal snapshots mean
/// nothing was created or removed. API deployments are not compared: each
/// deploy makes a new one and deletes the old ones, but moto refuses to
/// delete a deployment no stage uses any more (an emulator quirk), so they
/// pile up there; on AWS only the current one remains.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    role: Option<String>,
    functions: BTreeSet<String>,
    apis: Vec<String>,
    resources: BTreeMap<String, (String, BTreeSet<String>)>,
    stages: Vec<String>,
    api_keys: Vec<String>,
    usage_plans: Vec<String>,
    plan_keys: Vec<String>,
    /// The DynamoDB tables, with their ARN and creation time.
    tables: Vec<(String, String, String)>,
    /// The role's inline policy, decoded.
    policy: Option<String>,
    /// EventBridge rules: name, schedule, state and target ARNs.
    rules: Vec<(String, String, String, Vec<String>)>,
}

async fn snapshot(moto: &Moto) -> Snapshot {
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let apigw = aws_sdk_apigateway::Client::new(&sdk);
    let role = iam
        .get_role()
        .role_name("lamed")
        .send()
        .await
        .ok()
        .and_then(|r| r.role)
        .map(|r| r.arn);
    let functions = lambda
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .iter()
        .filter_map(|f| f.function_name.clone())
        .collect();
    let apis: Vec<String> = apigw
        .get_rest_apis()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|a| a.name() == Some("lamed"))
        .filter_map(|a| a.id.clone())
        .collect();
    let mut resources = BTreeMap::new();
    let mut stages = Vec::new();
    for api in &apis {
        for resource in apigw
            .get_resources()
            .rest_api_id(api)
            .limit(500)
            .send()
            .await
            .unwrap()
            .items()
        {
            let methods = resource
                .resource_methods
                .as_ref()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            resources.insert(
                resource.path.clone().unwrap(),
                (resource.id.clone().unwrap(), methods),
            );
        }
        stages.extend(
            apigw
                .get_stages()
                .rest_api_id(api)
                .send()
                .await
                .unwrap()
                .item()
                .iter()
                .filter_map(|s| s.stage_name.clone()),
        );
    }
    let api_keys = apigw
        .get_api_keys()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|k| k.id.clone())
        .collect();
    let usage_plans: Vec<String> = apigw
        .get_usage_plans()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|p| p.id.clone())
        .collect();
    let mut plan_keys = Vec::new();
    for plan in &usage_plans {
        plan_keys.extend(
            apigw
                .get_usage_plan_keys()
                .usage_plan_id(plan)
                .send()
                .await
                .unwrap()
                .items()
                .iter()
                .filter_map(|k| k.id.clone()),
        );
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut tables = Vec::new();
    for name in dynamodb.list_tables().send().await.unwrap().table_names() {
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        tables.push((
            name.clone(),
            table.table_arn.unwrap(),
            format!("{:?}", table.creation_date_time),
        ));
    }
    let policy = iam
        .get_role_policy()
        .role_name("lamed")
        .policy_name("lamed")
        .send()
        .await
        .ok()
        .map(|policy| decoded(policy.policy_document()));
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let mut rules = Vec::new();
    for rule in events.list_rules().send().await.unwrap().rules() {
        let name = rule.name().unwrap().to_owned();
        let targets = events
            .list_targets_by_rule()
            .rule(&name)
            .send()
            .await
            .unwrap()
            .targets()
            .iter()
            .map(|t| t.arn().to_owned())
            .collect();
        rules.push((
            name,
            rule.schedule_expression().unwrap_or_default().to_owned(),
            rule.state()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            targets,
        ));
    }
    Snapshot {
        role,
        functions,
        apis,
        resources,
        stages,
        api_keys,
        usage_plans,
        plan_keys,
        tables,
        policy,
        rules,
    }
}

/// A policy document as IAM returns it (URL-encoded), decoded.
fn decoded(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}

fn line_value<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {stdout}"))
        .split_whitespace()
        .next()
        .unwrap()
}

/// A first deploy creates every resource — the role and its policy, five
/// functions (provided.al2023, handler bootstrap, 128 MB and the request
/// deadline's timeout, 11 s for 10 s, unless extra_wiring sets more, 29 s
/// where a delete's 28 s deadline applies, and 60 s for lamed-report,
/// which runs the alert check; x86_64, the
/// configuration in their environment) published behind alias `live` with
/// API Gateway's invoke permission, the REST API with one resource per
/// path, AWS_PROXY methods on which API Gateway demands no key (the
/// function checks it), MOCK CORS OPTIONS with the original's headers,
/// stage prod, the API key and its usage plan, and the EventBridge rule
/// invoking lamed-report's alias every 2 minutes (alert_check_seconds
/// 120) with its invoke permission — and prints the URLs and the
/// AlephBet snippet.
#[tokio::test]
async fn first_deploy_creates_everything() {
    let ws = Workspace::new();
    let stdout = ws.deploy(&[]);
    let sdk = ws.moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let apigw = aws_sdk_apigateway::Client::new(&sdk);

    let role = iam
        .get_role()
        .role_name("lamed")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    let trust = percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap())
        .decode_utf8_lossy()
        .into_owned();
    assert!(trust.contains("lambda.amazonaws.com") && trust.contains("apigateway.amazonaws.com"));
    let policy = iam
        .get_role_policy()
        .role_name("lamed")
        .policy_name("lamed")
        .send()
        .await
        .unwrap();
    let policy = percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8_lossy()
        .into_owned();
    assert!(policy.contains("logs:PutLogEvents"), "{policy}");
    assert!(policy.contains("lambda:InvokeFunction"), "{policy}");
    // Counting on Redis, the functions get no DynamoDB access at all.
    assert!(!policy.contains("dynamodb"), "{policy}");

    let api_key = line_value(&stdout, "API key:");
    for name in FUNCTIONS {
        let config = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            config.runtime().unwrap().as_str(),
            "provided.al2023",
            "{name}"
        );
        assert_eq!(config.handler(), Some("bootstrap"), "{name}");
        assert_eq!(config.role(), Some(role.arn()), "{name}");
        let (memory, timeout) = match name {
            "lamed-track" => (256, 15),
            "lamed-report" => (128, 60),
            "lamed-delete-experiment" => (128, 29),
            _ => (128, 11),
        };
        assert_eq!(config.memory_size(), Some(memory), "{name}");
        assert_eq!(config.timeout(), Some(timeout), "{name}");
        assert_eq!(config.architectures()[0].as_str(), "x86_64", "{name}");
        let env = config.environment().unwrap().variables().unwrap();
        assert_eq!(env["LAMED_API_KEY"], api_key, "{name}");
        assert_eq!(
            env["LAMED_REDIS_URL"],
            format!("redis://127.0.0.1:{}/0", ws.redis.port)
        );
        assert_eq!(env["LAMED_UUID_EXPIRY_SECONDS"], "3600");
        assert_eq!(
            env["LAMED_EXTRA_ROUTES"],
            "my_tracking_endpoint=lamed.track"
        );
        assert!(
            env["LAMED_WEBHOOKS"].contains("https://hooks.example.com/lamed"),
            "{name}"
        );
        let api = apigw.get_rest_apis().send().await.unwrap().items()[0]
            .id
            .clone()
            .unwrap();
        assert_eq!(
            env["LAMED_PUBLIC_URL"],
            format!("https://{api}.execute-api.{REGION}.amazonaws.com/prod"),
            "{name}: the alerts' dashboard links"
        );
        let alias = lambda
            .get_alias()
            .function_name(name)
            .name("live")
            .send()
            .await
            .unwrap();
        assert_eq!(alias.function_version(), Some("1"), "{name}");
        let permission = lambda
            .get_policy()
            .function_name(name)
            .qualifier("live")
            .send()
            .await
            .unwrap();
        assert!(
            permission
                .policy()
                .unwrap()
                .contains("apigateway.amazonaws.com"),
            "{name}"
        );
    }

    let snap = snapshot(&ws.moto).await;
    let report_alias = lambda
        .get_alias()
        .function_name("lamed-report")
        .name("live")
        .send()
        .await
        .unwrap();
    let rule_arn = format!("arn:aws:events:{REGION}:123456789012:rule/lamed-alerts");
    assert_eq!(
        snap.rules,
        [(
            "lamed-alerts".to_owned(),
            "rate(2 minutes)".to_owned(),
            "ENABLED".to_owned(),
            vec![report_alias.alias_arn().unwrap().to_owned()]
        )]
    );
    let report_policy = lambda
        .get_policy()
        .function_name("lamed-report")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    let report_policy = report_policy.policy().unwrap();
    assert!(
        report_policy.contains("events.amazonaws.com") && report_policy.contains(&rule_arn),
        "{report_policy}"
    );
    assert_eq!(snap.apis.len(), 1);
    let api = &snap.apis[0];
    assert_eq!(
        snap.resources
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        PATHS.into_iter().collect()
    );
    assert_eq!(snap.stages, ["prod"]);
    let expect: &[(&str, &str, &str)] = &[
        ("/track", "GET", "lamed-track"),
        ("/track", "POST", "lamed-track"),
        ("/event", "GET", "lamed-track"),
        ("/event", "POST", "lamed-track"),
        ("/health", "GET", "lamed-track"),
        ("/participate", "GET", "lamed-track"),
        ("/convert", "GET", "lamed-track"),
        ("/_status", "GET", "lamed-track"),
        (
            "/api/experiments/{experiment}/weights",
            "GET",
            "lamed-track",
        ),
        ("/experiments", "GET", "lamed-all-experiments"),
        ("/experiments/{experiment}", "GET", "lamed-all-experiments"),
        ("/delete", "DELETE", "lamed-delete-experiment"),
        (
            "/api/experiments/{experiment}/report",
            "GET",
            "lamed-report",
        ),
        ("/api/experiments", "GET", "lamed-report"),
        ("/api/experiments/{experiment}", "GET", "lamed-report"),
        ("/api/experiments/{experiment}", "PUT", "lamed-report"),
        ("/api/experiments/{experiment}", "PATCH", "lamed-report"),
        ("/api/experiments/{experiment}", "DELETE", "lamed-report"),
        ("/dashboard", "GET", "lamed-dashboard"),
        ("/dashboard/{asset}", "GET", "lamed-dashboard"),
        ("/my_tracking_endpoint", "GET", "lamed-track"),
    ];
    for (path, method, function) in expect {
        let resource = &snap.resources[*path].0;
        let found = apigw
            .get_method()
            .rest_api_id(api)
            .resource_id(resource)
            .http_method(*method)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err:?}"));
        // The function checks the key (tests/lambda.rs): API Gateway never.
        assert_eq!(found.api_key_required(), Some(false), "{method} {path}");
        let integration = found.method_integration().unwrap();
        assert_eq!(integration.r#type().unwrap().as_str(), "AWS_PROXY");
        assert!(
            integration
                .uri()
                .unwrap()
                .contains(&format!("function:{function}:live/invocations")),
            "{method} {path}: {:?}",
            integration.uri()
        );
        let options = apigw
            .get_integration_response()
            .rest_api_id(api)
            .resource_id(resource)
            .http_method("OPTIONS")
            .status_code("200")
            .send()
            .await
            .unwrap();
        let headers = options.response_parameters().unwrap();
        assert_eq!(
            headers["method.response.header.Access-Control-Allow-Origin"],
            "'*'"
        );
        assert_eq!(
            headers["method.response.header.Access-Control-Allow-Headers"],
            "'Content-Type,X-Api-Key,Authorization,If-Match'"
        );
        assert_eq!(
            headers["method.response.header.Cache-Control"],
            "'no-cache, no-store, must-revalidate'"
        );
        assert!(headers["method.response.header.Access-Control-Allow-Methods"].contains(method));
        let cors = apigw
            .get_integration()
            .rest_api_id(api)
            .resource_id(resource)
            .http_method("OPTIONS")
            .send()
            .await
            .unwrap();
        assert_eq!(cors.r#type().unwrap().as_str(), "MOCK");
    }
    let extra = apigw
        .get_method()
        .rest_api_id(api)
        .resource_id(&snap.resources["/my_tracking_endpoint"].0)
        .http_method("GET")
        .send()
        .await
        .unwrap();
    assert!(extra
        .request_parameters()
        .unwrap()
        .contains_key("method.request.querystring.uuid"));

    let keys = apigw
        .get_api_keys()
        .include_values(true)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.items().len(), 1);
    assert_eq!(keys.items()[0].name(), Some("lamed"));
    assert_eq!(keys.items()[0].value(), Some(api_key));
    let plans = apigw.get_usage_plans().send().await.unwrap();
    assert_eq!(plans.items().len(), 1);
    let plan = &plans.items()[0];
    assert_eq!(plan.name(), Some("lamed"));
    assert!(plan
        .api_stages()
        .iter()
        .any(|s| s.api_id() == Some(api) && s.stage() == Some("prod")));
    assert_eq!(snap.plan_keys, [keys.items()[0].id().unwrap()]);

    let base = format!("https://{api}.execute-api.{REGION}.amazonaws.com/prod");
    assert_eq!(
        line_value(&stdout, "tracking URL:"),
        format!("{base}/track")
    );
    assert_eq!(
        line_value(&stdout, "experiments URL:"),
        format!("{base}/experiments")
    );
    assert_eq!(
        line_value(&stdout, "dashboard URL:"),
        format!("{base}/dashboard")
    );
    assert!(stdout.contains(&format!(
        r#"new AlephBet.AlephbetAdapter("{base}/track", "alephbet")"#
    )));
    assert!(
        stdout.contains("alert check:     rate(2 minutes) on lamed-report"),
        "{stdout}"
    );
}

/// Re-running deploy updates in place: every later run creates nothing
/// (same role, functions, API, resource ids and methods, stage, key,
/// plan, alert rule and target), each run publishes a version behind
/// `live`, and at most 5 versions are kept. Removing the extra_wiring
/// entry removes its path, removing the webhook removes the alert rule;
/// a configured api_key replaces the generated one everywhere.
#[tokio::test]
async fn redeploy_updates_in_place_and_keeps_five_versions() {
    let ws = Workspace::new();
    ws.deploy(&[]);
    let first = snapshot(&ws.moto).await;
    for _ in 0..6 {
        ws.deploy(&[]);
    }
    let later = snapshot(&ws.moto).await;
    assert_eq!(first, later);

    let sdk = ws.moto.sdk().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    for name in FUNCTIONS {
        // moto numbers a new version len(versions)+1 once old ones were
        // deleted (AWS never reuses numbers), so only the count and the
        // alias are compared.
        let versions = lamed::deploy::functions::versions(&lambda, name)
            .await
            .unwrap();
        assert!((4..=5).contains(&versions.len()), "{name}: {versions:?}");
        let alias = lambda
            .get_alias()
            .function_name(name)
            .name("live")
            .send()
            .await
            .unwrap();
        let live: u64 = alias.function_version().unwrap().parse().unwrap();
        assert_eq!(Some(&live), versions.last(), "{name}: {versions:?}");
    }

    ws.write_config(&config_json(ws.redis.port, false).replace(
        "\"uuid_expiry_seconds\"",
        "\"api_key\": \"configured-key-0123456789\", \"uuid_expiry_seconds\"",
    ));
    let stdout = ws.deploy(&[]);
    let after = snapshot(&ws.moto).await;
    assert!(!after.resources.contains_key("/my_tracking_endpoint"));
    assert_eq!(after.resources.len(), PATHS.len() - 1);
    assert_eq!(line_value(&stdout, "API key:"), "configured-key-0123456789");
    let apigw = aws_sdk_apigateway::Client::new(&sdk);
    let keys = apigw
        .get_api_keys()
        .include_values(true)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.items().len(), 1);
    assert_eq!(keys.items()[0].value(), Some("configured-key-0123456789"));
    assert_eq!(after.plan_keys, [keys.items()[0].id().unwrap()]);
    let config = lambda
        .get_function_configuration()
        .function_name("lamed-track")
        .send()
        .await
        .unwrap();
    let env = config.environment().unwrap().variables().unwrap();
    assert_eq!(env["LAMED_API_KEY"], "configured-key-0123456789");
    assert!(!env.contains_key("LAMED_EXTRA_ROUTES"));
    assert!(!env.contains_key("LAMED_WEBHOOKS"));
    assert_eq!(
        (config.memory_size(), config.timeout()),
        (Some(128), Some(11))
    );
    assert_eq!(after.rules, []);
}

/// `--arch arm64` builds arm64 functions from an arm64 bootstrap, and
/// refuses an x86_64 one before changing anything.
#[tokio::test]
async fn arm64_deploy() {
    let ws = Workspace::new();
    let output = ws.run("deploy", &["--arch", "arm64"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("built for x86_64, not arm64"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&ws.moto).await.functions.len(), 0);
    ws.deploy(&["--arch", "arm64", "--bootstrap", "bootstrap-b7"]);
    let lambda = aws_sdk_lambda::Client::new(&ws.moto.sdk().await);
    for name in FUNCTIONS {
        let config = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(config.architectures()[0].as_str(), "arm64", "{name}");
    }
}

/// The names of an ELF file's debug sections (DWARF, not loaded at run
/// time).
fn debug_sections(elf: &[u8]) -> Vec<String> {
    object::build::elf::Builder::read(elf)
        .unwrap()
        .sections
        .iter()
        .filter(|section| !section.is_alloc())
        .map(|section| String::from_utf8_lossy(&section.name).into_owned())
        .filter(|name| name.starts_with(".debug"))
        .collect()
}

/// What deploy uploads is what AWS accepts, checked here since moto
/// enforces neither limit: from a real executable with debug info, every
/// function gets the same code (moto's `CodeSha256` and `CodeSize` are
/// those of the zip lamed makes of it), a zip within 50 MB holding only a
/// `bootstrap` within 250 MB, and that bootstrap is the executable without
/// its debug sections.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn deploy_uploads_a_stripped_bootstrap_within_aws_limits() {
    let ws = Workspace::new();
    let executable = debug_executable(ws.home(), "hello");
    let original = std::fs::read(&executable).unwrap();
    assert!(!debug_sections(&original).is_empty());
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    ws.deploy(&["--arch", arch, "--bootstrap", "hello"]);

    let package = lamed::deploy::package::package(&executable).unwrap();
    let zip_path = ws.home().join("expected.zip");
    std::fs::write(&zip_path, &package.zip).unwrap();
    let sha256 = code_sha256(&zip_path);
    let lambda = aws_sdk_lambda::Client::new(&ws.moto.sdk().await);
    for name in FUNCTIONS {
        let config = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .unwrap()
            .configuration
            .unwrap();
        assert_eq!(config.code_sha256(), Some(sha256.as_str()), "{name}");
        assert_eq!(
            config.code_size(),
            i64::try_from(package.zip.len()).unwrap(),
            "{name}"
        );
    }

    assert!(package.zip.len() as u64 <= MAX_ZIPPED_BYTES);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&package.zip)).unwrap();
    assert_eq!(archive.len(), 1);
    let mut bootstrap = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("bootstrap").unwrap(), &mut bootstrap).unwrap();
    assert!(bootstrap.len() as u64 <= MAX_UNZIPPED_BYTES);
    assert_eq!(debug_sections(&bootstrap), Vec::<String>::new());
    assert!(bootstrap.len() < original.len());
    assert_eq!(package.unzipped_bytes, bootstrap.len() as u64);
}

/// A bootstrap over AWS Lambda's 250 MB unzipped limit (a sparse file with
/// nothing to strip) is refused by preflight and deploy, naming the limit
/// and how to build a smaller one, before any AWS call: the endpoint is a
/// listener that must see no connection.
#[test]
fn too_large_bootstrap_is_refused_before_any_aws_call() {
    let ws = Workspace::new();
    let huge = ws.home().join("bootstrap-huge");
    std::fs::write(&huge, elf_header(0x3e)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(MAX_UNZIPPED_BYTES + 1)
        .unwrap();
    // A stand-in for AWS that counts connections and closes each at once,
    // so a call made by mistake fails fast instead of waiting for an answer.
    let aws = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", aws.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    std::thread::spawn(move || {
        for stream in aws.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    for command in ["preflight", "deploy"] {
        let output = lamed(
            ws.home(),
            &[
                command,
                "--endpoint-url",
                &endpoint,
                "--region",
                REGION,
                "--config",
                "config.json",
                "--bootstrap",
                "bootstrap-huge",
            ],
            &CREDENTIALS,
        );
        let err = stderr(&output);
        assert!(!output.status.success(), "{command} should fail: {err}");
        for text in [
            "FAIL  bootstrap",
            "is 250.1 MB without debug info, above AWS Lambda's limit of 250 MB unzipped",
            "CARGO_PROFILE_RELEASE_STRIP=symbols",
            "nothing was changed",
        ] {
            assert!(err.contains(text), "{command}: '{text}' missing in: {err}");
        }
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{command} called AWS"
        );
    }
}

/// `destroy --yes` leaves nothing of lamed behind (role, functions, API,
/// key, usage plan, alert rule) and a second destroy is a no-op; without --yes and
/// with no terminal it refuses and removes nothing.
#[tokio::test]
async fn destroy_leaves_nothing_behind() {
    let ws = Workspace::new();
    ws.deploy(&[]);
    let refused = ws.run("destroy", &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        stderr(&refused)
    );
    let deployed = snapshot(&ws.moto).await;
    assert_eq!(deployed.functions.len(), 5);
    assert_eq!(deployed.rules.len(), 1);

    for _ in 0..2 {
        let output = ws.run("destroy", &["--yes"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let sdk = ws.moto.sdk().await;
    let empty = snapshot(&ws.moto).await;
    assert_eq!(
        empty,
        Snapshot {
            role: None,
            functions: BTreeSet::new(),
            apis: Vec::new(),
            resources: BTreeMap::new(),
            stages: Vec::new(),
            api_keys: Vec::new(),
            usage_plans: Vec::new(),
            plan_keys: Vec::new(),
            tables: Vec::new(),
            policy: None,
            rules: Vec::new(),
        }
    );
    let iam = aws_sdk_iam::Client::new(&sdk);
    assert!(iam
        .get_role_policy()
        .role_name("lamed")
        .policy_name("lamed")
        .send()
        .await
        .is_err());
}

/// With no Redis in the config, deploy counts in DynamoDB: preflight
/// says the table will be created and the policy scoped to it; deploy
/// creates table "lamed" (on demand, lamed's key, TTL on `ttl`,
/// point-in-time recovery on), gives the functions a policy allowing
/// exactly the store's actions on that table's ARN, and tells them the
/// table. A second deploy changes nothing. `destroy` keeps the table and
/// says so; `destroy --delete-data` without a terminal or --yes refuses,
/// and with --yes deletes it (the table named by the config, once no
/// function is left to name it).
#[tokio::test]
async fn no_redis_deploys_on_dynamodb() {
    use aws_sdk_dynamodb::types::{
        BillingMode, PointInTimeRecoverySpecification, PointInTimeRecoveryStatus,
        TimeToLiveSpecification, TimeToLiveStatus,
    };
    let ws = Workspace::new();
    ws.write_config(r#"{"uuid_expiry_seconds": 3600}"#);
    let output = ws.run("preflight", &[]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(!err.contains("redis"), "{err}");
    assert!(
        err.contains("ok    dynamodb: table lamed is not there yet: deploy creates it"),
        "{err}"
    );
    assert!(
        err.contains(
            "ok    dynamodb policy: role lamed is created: the functions may use table lamed only"
        ),
        "{err}"
    );

    let stdout = ws.deploy(&[]);
    assert!(
        stdout.contains("counts in:       DynamoDB table lamed"),
        "{stdout}"
    );
    let sdk = ws.moto.sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamodb
        .describe_table()
        .table_name("lamed")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name("lamed")
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    let recovery = dynamodb
        .describe_continuous_backups()
        .table_name("lamed")
        .send()
        .await
        .unwrap()
        .continuous_backups_description
        .and_then(|b| b.point_in_time_recovery_description)
        .and_then(|r| r.point_in_time_recovery_status);
    assert_eq!(recovery, Some(PointInTimeRecoveryStatus::Enabled));

    // The policy: logs and invoke as on Redis, and the store's actions on
    // this table's ARN alone.
    let first = snapshot(&ws.moto).await;
    let policy: serde_json::Value = serde_json::from_str(first.policy.as_deref().unwrap()).unwrap();
    let table_arn = table.table_arn().unwrap();
    assert_eq!(
        table_arn,
        "arn:aws:dynamodb:us-east-1:123456789012:table/lamed"
    );
    let on_dynamodb: Vec<_> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.to_string().contains("dynamodb"))
        .collect();
    assert_eq!(on_dynamodb.len(), 1, "{policy}");
    assert_eq!(on_dynamodb[0]["Resource"], table_arn, "{policy}");
    let actions: BTreeSet<&str> = on_dynamodb[0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        lamed_store::dynamodb::IAM_ACTIONS.into_iter().collect()
    );
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    for name in FUNCTIONS {
        let config = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        let env = config.environment().unwrap().variables().unwrap();
        assert_eq!(env["LAMED_DYNAMODB_TABLE"], "lamed", "{name}");
        assert!(!env.contains_key("LAMED_REDIS_URL"), "{name}");
    }

    // A second deploy changes nothing.
    ws.deploy(&[]);
    assert_eq!(snapshot(&ws.moto).await, first);
    let output = ws.run("preflight", &[]);
    let err = stderr(&output);
    assert!(
        err.contains(
            "ok    dynamodb: table lamed exists, lamed's key schema; point-in-time recovery on"
        ),
        "{err}"
    );
    assert!(
        err.contains("ok    dynamodb policy: role lamed exists"),
        "{err}"
    );

    // A table restored from a backup comes back without TTL and recovery:
    // deploy turns both on again.
    dynamodb
        .update_time_to_live()
        .table_name("lamed")
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(false)
                .attribute_name("ttl")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    dynamodb
        .update_continuous_backups()
        .table_name("lamed")
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let output = ws.run("deploy", &[]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("DynamoDB table lamed: TTL turned on"), "{err}");
    assert!(
        err.contains("DynamoDB table lamed: point-in-time recovery turned on"),
        "{err}"
    );

    // destroy keeps the table, and says so.
    let output = ws.run("destroy", &["--yes"]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(
            "DynamoDB table lamed: kept with its counts (lamed destroy --delete-data deletes it)"
        ),
        "{err}"
    );
    let after = snapshot(&ws.moto).await;
    assert_eq!((after.role, after.functions.len()), (None, 0));
    assert_eq!(after.tables, first.tables);

    // --delete-data: never without a confirmation.
    let refused = ws.run("destroy", &["--delete-data"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(snapshot(&ws.moto).await.tables, first.tables);
    let output = ws.run("destroy", &["--delete-data", "--yes"]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("DynamoDB table lamed: deleted with every count in it"),
        "{err}"
    );
    assert!(snapshot(&ws.moto).await.tables.is_empty());
}

/// A table of that name that is not lamed's (another key schema) stops
/// preflight and deploy before any change, naming its key and the fix;
/// the table is left as it was.
#[tokio::test]
async fn a_foreign_table_stops_deploy() {
    let ws = Workspace::new();
    ws.write_config(r#"{"dynamodb_table": "orders"}"#);
    let dynamodb = aws_sdk_dynamodb::Client::new(&ws.moto.sdk().await);
    lamed_store::dynamodb::testing::create_foreign_table(&dynamodb, "orders").await;
    let before = snapshot(&ws.moto).await;
    for command in ["preflight", "deploy"] {
        let output = ws.run(command, &[]);
        let err = stderr(&output);
        assert!(!output.status.success(), "{command}: {err}");
        assert!(err.contains("FAIL  dynamodb: "), "{command}: {err}");
        assert!(
            err.contains("dynamodb table orders: its key schema is id (N, HASH), not lamed's"),
            "{command}: {err}"
        );
        assert!(err.contains("nothing was changed"), "{command}: {err}");
    }
    assert_eq!(snapshot(&ws.moto).await, before);
}

/// Preflight passes on a good setup and names each check.
#[test]
fn preflight_passes() {
    let ws = Workspace::new();
    let output = ws.run("preflight", &[]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    for check in [
        "config",
        "redis",
        "aws region",
        "aws credentials",
        "aws identity",
        "bootstrap",
    ] {
        assert!(err.contains(&format!("ok    {check}:")), "{check}: {err}");
    }
}

/// Missing credentials, a missing region, an unreachable Redis and an
/// invalid config each make preflight and deploy fail with a message that
/// says how to fix it, a non-zero exit, and nothing created in AWS.
#[tokio::test]
async fn failures_stop_before_any_change() {
    let ws = Workspace::new();
    let home = ws.home();
    let base = |command: &'static str| {
        vec![
            command,
            "--endpoint-url",
            ws.moto.url.as_str(),
            "--config",
            "config.json",
            "--bootstrap",
            "bootstrap-3e",
        ]
    };
    let check = |output: Output, wanted: &[&str]| {
        let err = stderr(&output);
        assert!(!output.status.success(), "should fail: {err}");
        for text in wanted {
            assert!(err.contains(text), "'{text}' missing in: {err}");
        }
    };
    for command in ["preflight", "deploy"] {
        // No credentials anywhere (no variables, no profile files, no IMDS).
        let mut args = base(command);
        args.extend(["--region", REGION]);
        check(
            lamed(home, &args, &[]),
            &[
                "FAIL  aws credentials",
                "AWS_ACCESS_KEY_ID",
                "nothing was changed",
            ],
        );
        // No region.
        check(
            lamed(home, &base(command), &CREDENTIALS),
            &["FAIL  aws region", "--region", "AWS_REGION"],
        );
        // Redis not listening.
        ws.write_config(&config_json(free_port(), false));
        check(
            lamed(home, &args, &CREDENTIALS),
            &["FAIL  redis", "fix: start Redis"],
        );
        // Invalid config (a bad value, then both stores).
        ws.write_config(r#"{"redis": {"host": "127.0.0.1"}, "api_key": "short"}"#);
        check(
            lamed(home, &args, &CREDENTIALS),
            &["FAIL  config", "api_key", "fix: lamed configure"],
        );
        ws.write_config(r#"{"redis": {"host": "127.0.0.1"}, "dynamodb_table": "t"}"#);
        check(
            lamed(home, &args, &CREDENTIALS),
            &["FAIL  config", "choose the store", "fix: lamed configure"],
        );
        ws.write_config(&config_json(ws.redis.port, true));
    }
    let snap = snapshot(&ws.moto).await;
    assert_eq!(
        (snap.role, snap.functions.len(), snap.apis.len()),
        (None, 0, 0)
    );
    assert!(snap.tables.is_empty(), "{:?}", snap.tables);
}

/// `lamed configure` creates the config from its commented template (mode
/// 0600) when missing, runs $EDITOR on it, and validates the result: a
/// valid file exits 0, a broken edit exits non-zero saying what is wrong.
#[test]
fn configure_creates_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let output = lamed(home, &["configure"], &[("EDITOR", "true")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let path = home.join(".lamed/config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"_comment\""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(stderr(&output).contains("is valid"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    // An "editor" that breaks the JSON.
    let editor = home.join("break.sh");
    std::fs::write(&editor, "#!/bin/sh\nprintf '{\"redis\": ' > \"$1\"\n").unwrap();
    let output = lamed(
        home,
        &["configure", "--config", "other.json"],
        &[("EDITOR", &format!("sh {}", editor.display()))],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("invalid config file other.json"), "{err}");
    assert!(
        err.contains("fix it with: lamed configure --config other.json"),
        "{err}"
    );

    // A failing editor: the file is not declared valid.
    let output = lamed(home, &["configure"], &[("EDITOR", "false")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("editor"), "{}", stderr(&output));
}
