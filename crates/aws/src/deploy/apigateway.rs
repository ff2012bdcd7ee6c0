//! The REST API `lamed`: one resource per path, a method per route with an
//! AWS_PROXY integration to the function's alias, a MOCK `OPTIONS` for CORS
//! on every path, the stage `prod`, and the API key with its usage plan.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_apigateway::types::{
    ApiStage, EndpointConfiguration, EndpointType, GatewayResponseType, IntegrationType, Op,
    PatchOperation,
};
use aws_sdk_apigateway::Client;

use lamed_server::router::{CACHE_CONTROL, CORS_ALLOW_HEADERS};

use super::plan::{Plan, API_KEY_NAME, API_NAME, STAGE, USAGE_PLAN_NAME};
use super::{progress, Answer};

/// The headers the original answers on every path (WIRE.md §2, §5).
const ALLOW_ORIGIN: &str = "'*'";

/// `lamed serve`'s CORS request headers, as an API Gateway literal.
fn allow_headers() -> String {
    format!("'{}'", CORS_ALLOW_HEADERS.join(","))
}

/// `$client.$call()` addressed to one method of a resource, as every
/// method-level call of API Gateway is: `on_method!(client.put_method(api,
/// resource, "GET"))`.
macro_rules! on_method {
    ($client:ident . $call:ident($api:expr, $resource:expr, $method:expr)) => {
        $client
            .$call()
            .rest_api_id($api)
            .resource_id($resource)
            .http_method($method)
    };
}

/// The id of the REST API named `lamed`, if any.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn find_api(client: &Client) -> anyhow::Result<Option<String>> {
    let mut position = None;
    loop {
        let page = client
            .get_rest_apis()
            .limit(500)
            .set_position(position)
            .send()
            .await
            .checked(|| "cannot list REST APIs")?;
        if let Some(api) = page.items().iter().find(|api| api.name() == Some(API_NAME)) {
            return Ok(api.id.clone());
        }
        position = page.position;
        if position.is_none() {
            return Ok(None);
        }
    }
}

/// The REST API `lamed`, created when missing.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn ensure_api(client: &Client) -> anyhow::Result<String> {
    if let Some(id) = find_api(client).await? {
        progress(&format!("REST API {API_NAME}: exists ({id})"));
        return Ok(id);
    }
    let id = client
        .create_rest_api()
        .name(API_NAME)
        .description("lamed: A/B testing backend for AlephBet")
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Regional)
                .build(),
        )
        .send()
        .await
        .checked(|| format!("cannot create REST API {API_NAME}"))?
        .id
        .with_context(|| format!("API Gateway returned no id for REST API {API_NAME}"))?;
    progress(&format!("REST API {API_NAME}: created ({id})"));
    Ok(id)
}

/// A resource of the API: its id and the methods it has.
struct Existing {
    id: String,
    methods: Vec<String>,
}

async fn resources(client: &Client, api: &str) -> anyhow::Result<BTreeMap<String, Existing>> {
    let mut found = BTreeMap::new();
    let mut position = None;
    loop {
        let page = client
            .get_resources()
            .rest_api_id(api)
            .limit(500)
            .embed("methods")
            .set_position(position)
            .send()
            .await
            .checked(|| format!("cannot list the resources of REST API {api}"))?;
        for resource in page.items() {
            if let (Some(path), Some(id)) = (&resource.path, &resource.id) {
                let methods = resource
                    .resource_methods
                    .as_ref()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                found.insert(
                    path.clone(),
                    Existing {
                        id: id.clone(),
                        methods,
                    },
                );
            }
        }
        position = page.position;
        if position.is_none() {
            return Ok(found);
        }
    }
}

/// Makes the API's paths and methods those of the plan: missing resources
/// are created, stale ones deleted, and every method (re)written with its
/// integration. `alias_arns` maps function names to their `live` alias.
///
/// Methods are rewritten rather than compared: changes reach callers only
/// with the next deployment of the stage, so the rewrite is invisible.
///
/// # Errors
///
/// When API Gateway refuses, naming the path and method.
pub async fn wire_routes(
    client: &Client,
    api: &str,
    region: &str,
    plan: &Plan,
    alias_arns: &HashMap<String, String>,
) -> anyhow::Result<()> {
    let mut existing = resources(client, api).await?;
    let paths = plan.paths();
    // Stale paths (a removed extra_wiring entry): deleting a parent
    // deletes its children, so go parents first and skip what is gone.
    let stale: Vec<String> = existing
        .keys()
        .filter(|path| path.as_str() != "/" && !paths.contains(path))
        .cloned()
        .collect();
    for path in &stale {
        let Some(resource) = existing.get(path) else {
            continue;
        };
        let deleted = client
            .delete_resource()
            .rest_api_id(api)
            .resource_id(&resource.id)
            .send()
            .await
            .found(|| format!("cannot delete path {path}"))?;
        if deleted.is_some() {
            progress(&format!("path {path}: removed (no longer configured)"));
        }
        existing.retain(|p, _| p != path && !p.starts_with(&format!("{path}/")));
    }
    let root = existing
        .get("/")
        .map(|r| r.id.clone())
        .with_context(|| format!("REST API {api} has no root resource"))?;
    for path in &paths {
        if existing.contains_key(path) {
            continue;
        }
        let (parent, part) = path.rsplit_once('/').unwrap_or(("", path));
        let parent_id = if parent.is_empty() {
            root.clone()
        } else {
            existing
                .get(parent)
                .map(|r| r.id.clone())
                .with_context(|| format!("parent of path {path} is missing"))?
        };
        let id = client
            .create_resource()
            .rest_api_id(api)
            .parent_id(parent_id)
            .path_part(part)
            .send()
            .await
            .checked(|| format!("cannot create path {path}"))?
            .id
            .with_context(|| format!("API Gateway returned no id for path {path}"))?;
        progress(&format!("path {path}: created"));
        existing.insert(
            path.clone(),
            Existing {
                id,
                methods: Vec::new(),
            },
        );
    }
    for path in &paths {
        let resource = &existing[path];
        let routes: Vec<_> = plan.routes_of(path).collect();
        let mut wanted: Vec<String> = routes.iter().map(|r| r.method.clone()).collect();
        if !routes.is_empty() {
            wanted.push("OPTIONS".to_owned());
        }
        for method in &resource.methods {
            delete_method(client, api, &resource.id, path, method).await?;
        }
        for route in &routes {
            let alias = alias_arns
                .get(&route.function)
                .with_context(|| format!("function {} was not deployed", route.function))?;
            let uri = format!(
                "arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{alias}/invocations"
            );
            let what = || format!("{} {path}", route.method);
            on_method!(client.put_method(api, &resource.id, &route.method))
                .authorization_type("NONE")
                // The function checks the key (Route's doc says why).
                .api_key_required(false)
                .set_request_parameters(
                    (!route.request_parameters.is_empty())
                        .then(|| route.request_parameters.clone().into_iter().collect()),
                )
                .send()
                .await
                .checked(|| format!("cannot create method {}", what()))?;
            on_method!(client.put_integration(api, &resource.id, &route.method))
                .r#type(IntegrationType::AwsProxy)
                .integration_http_method("POST")
                .uri(uri)
                .send()
                .await
                .checked(|| format!("cannot integrate {} with {}", what(), route.function))?;
        }
        if !routes.is_empty() {
            put_cors(client, api, &resource.id, path, &wanted).await?;
        }
        if !wanted.is_empty() {
            progress(&format!("path {path}: {}", wanted.join(", ")));
        }
    }
    put_gateway_responses(client, api).await
}

async fn delete_method(
    client: &Client,
    api: &str,
    resource: &str,
    path: &str,
    method: &str,
) -> anyhow::Result<()> {
    on_method!(client.delete_method(api, resource, method))
        .send()
        .await
        .found(|| format!("cannot replace method {method} {path}"))?;
    Ok(())
}

/// `OPTIONS` answered by API Gateway itself (MOCK) with the CORS headers.
async fn put_cors(
    client: &Client,
    api: &str,
    resource: &str,
    path: &str,
    methods: &[String],
) -> anyhow::Result<()> {
    let what = || format!("CORS OPTIONS {path}");
    let headers = [
        ("Access-Control-Allow-Origin", ALLOW_ORIGIN.to_owned()),
        ("Access-Control-Allow-Headers", allow_headers()),
        (
            "Access-Control-Allow-Methods",
            format!("'{}'", methods.join(",")),
        ),
        ("Cache-Control", format!("'{CACHE_CONTROL}'")),
    ];
    let parameter = |name| format!("method.response.header.{name}");
    on_method!(client.put_method(api, resource, "OPTIONS"))
        .authorization_type("NONE")
        .api_key_required(false)
        .send()
        .await
        .checked(|| format!("cannot create {}", what()))?;
    on_method!(client.put_integration(api, resource, "OPTIONS"))
        .r#type(IntegrationType::Mock)
        .request_templates("application/json", r#"{"statusCode": 200}"#)
        .send()
        .await
        .checked(|| format!("cannot create the integration of {}", what()))?;
    // The method declares the headers; the integration gives their values.
    on_method!(client.put_method_response(api, resource, "OPTIONS"))
        .status_code("200")
        .set_response_parameters(Some(
            headers
                .iter()
                .map(|(name, _)| (parameter(name), false))
                .collect(),
        ))
        .send()
        .await
        .checked(|| format!("cannot create the response of {}", what()))?;
    on_method!(client.put_integration_response(api, resource, "OPTIONS"))
        .status_code("200")
        .response_templates("application/json", "{}")
        .set_response_parameters(Some(
            headers
                .iter()
                .map(|(name, value)| (parameter(name), value.clone()))
                .collect(),
        ))
        .send()
        .await
        .checked(|| format!("cannot create the integration response of {}", what()))?;
    Ok(())
}

/// API Gateway's own errors (a missing API key, throttling) carry the CORS
/// headers too, so a dashboard on another origin can read them.
async fn put_gateway_responses(client: &Client, api: &str) -> anyhow::Result<()> {
    for kind in [
        GatewayResponseType::Default4Xx,
        GatewayResponseType::Default5Xx,
    ] {
        client
            .put_gateway_response()
            .rest_api_id(api)
            .response_type(kind.clone())
            .response_parameters(
                "gatewayresponse.header.Access-Control-Allow-Origin",
                ALLOW_ORIGIN,
            )
            .response_parameters(
                "gatewayresponse.header.Access-Control-Allow-Headers",
                allow_headers(),
            )
            .response_parameters(
                "gatewayresponse.header.Cache-Control",
                format!("'{CACHE_CONTROL}'"),
            )
            .send()
            .await
            .checked(|| format!("cannot set the CORS headers of {kind:?} errors"))?;
    }
    Ok(())
}

/// Deploys the API to the stage and deletes the deployments no stage uses
/// any more. Returns the new deployment id.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn deploy_stage(client: &Client, api: &str) -> anyhow::Result<String> {
    let id = client
        .create_deployment()
        .rest_api_id(api)
        .stage_name(STAGE)
        .description("lamed deploy")
        .send()
        .await
        .checked(|| format!("cannot deploy REST API {api} to stage {STAGE}"))?
        .id
        .context("API Gateway returned no deployment id")?;
    let deployments = client
        .get_deployments()
        .rest_api_id(api)
        .limit(500)
        .send()
        .await
        .checked(|| "cannot list deployments")?;
    for old in deployments.items() {
        let Some(old_id) = old.id.as_deref().filter(|old_id| *old_id != id) else {
            continue;
        };
        let answer = client
            .delete_deployment()
            .rest_api_id(api)
            .deployment_id(old_id)
            .send()
            .await;
        // One still used by another stage (made by hand) stays.
        let in_use = answer.as_ref().is_err_and(|err| {
            err.as_service_error()
                .is_some_and(|e| e.is_bad_request_exception())
        });
        if !in_use {
            answer.found(|| format!("cannot delete old deployment {old_id}"))?;
        }
    }
    progress(&format!("stage {STAGE}: deployed ({id})"));
    Ok(id)
}

/// The API key `lamed`: its id and value. `wanted` is the configured key;
/// without one, an existing key's value is kept, else a new one generated.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn ensure_api_key(
    client: &Client,
    wanted: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let keys = client
        .get_api_keys()
        .name_query(API_KEY_NAME)
        .include_values(true)
        .limit(500)
        .send()
        .await
        .checked(|| "cannot list API keys")?;
    let existing = keys
        .items()
        .iter()
        .find(|k| k.name() == Some(API_KEY_NAME))
        .and_then(|k| Some((k.id.clone()?, k.value.clone()?)));
    match (existing, wanted) {
        (Some((id, value)), None) => {
            progress(&format!("API key {API_KEY_NAME}: exists"));
            Ok((id, value))
        }
        (Some((id, value)), Some(wanted)) if value == wanted => {
            progress(&format!("API key {API_KEY_NAME}: exists"));
            Ok((id, value))
        }
        (existing, wanted) => {
            // A key's value cannot be changed: a new configured value
            // replaces the key (the usage plan is re-bound below).
            if let Some((id, _)) = existing {
                delete_api_key(client, &id).await?;
                progress(&format!(
                    "API key {API_KEY_NAME}: replaced by the configured key"
                ));
            }
            let value = match wanted {
                Some(value) => value.to_owned(),
                None => generate_key()?,
            };
            let id = client
                .create_api_key()
                .name(API_KEY_NAME)
                .description("lamed: private endpoints and the dashboard")
                .enabled(true)
                .value(&value)
                .send()
                .await
                .checked(|| format!("cannot create API key {API_KEY_NAME}"))?
                .id
                .with_context(|| {
                    format!("API Gateway returned no id for API key {API_KEY_NAME}")
                })?;
            progress(&format!("API key {API_KEY_NAME}: created"));
            Ok((id, value))
        }
    }
}

fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("cannot generate an API key: {err}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn delete_api_key(client: &Client, id: &str) -> anyhow::Result<()> {
    client
        .delete_api_key()
        .api_key(id)
        .send()
        .await
        .found(|| format!("cannot delete API key {API_KEY_NAME}"))?;
    Ok(())
}

/// The usage plan `lamed`, if any: its id and API stages.
async fn find_usage_plan(client: &Client) -> anyhow::Result<Option<(String, Vec<ApiStage>)>> {
    let plans = client
        .get_usage_plans()
        .limit(500)
        .send()
        .await
        .checked(|| "cannot list usage plans")?;
    Ok(plans
        .items()
        .iter()
        .find(|p| p.name() == Some(USAGE_PLAN_NAME))
        .and_then(|p| Some((p.id.clone()?, p.api_stages().to_vec()))))
}

/// The patch of a usage plan that binds (`Op::Add`) or unbinds
/// (`Op::Remove`) the stage `stage` of the REST API `api`.
fn stage_patch(op: Op, api: &str, stage: &str) -> PatchOperation {
    PatchOperation::builder()
        .op(op)
        .path("/apiStages")
        .value(format!("{api}:{stage}"))
        .build()
}

/// The usage plan `lamed` bound to the stage, with the key in it.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn ensure_usage_plan(client: &Client, api: &str, key_id: &str) -> anyhow::Result<String> {
    let stage = ApiStage::builder().api_id(api).stage(STAGE).build();
    let id = match find_usage_plan(client).await? {
        Some((id, stages)) => {
            let bound = stages
                .iter()
                .any(|s| s.api_id() == Some(api) && s.stage() == Some(STAGE));
            if !bound {
                client
                    .update_usage_plan()
                    .usage_plan_id(&id)
                    .patch_operations(stage_patch(Op::Add, api, STAGE))
                    .send()
                    .await
                    .checked(|| {
                        format!("cannot bind usage plan {USAGE_PLAN_NAME} to stage {STAGE}")
                    })?;
            }
            progress(&format!("usage plan {USAGE_PLAN_NAME}: exists"));
            id
        }
        None => {
            let id = client
                .create_usage_plan()
                .name(USAGE_PLAN_NAME)
                .description("lamed: the API key of the private endpoints")
                .api_stages(stage)
                .send()
                .await
                .checked(|| format!("cannot create usage plan {USAGE_PLAN_NAME}"))?
                .id
                .with_context(|| {
                    format!("API Gateway returned no id for usage plan {USAGE_PLAN_NAME}")
                })?;
            progress(&format!(
                "usage plan {USAGE_PLAN_NAME}: created for stage {STAGE}"
            ));
            id
        }
    };
    let keys = client
        .get_usage_plan_keys()
        .usage_plan_id(&id)
        .limit(500)
        .send()
        .await
        .checked(|| format!("cannot list the keys of usage plan {USAGE_PLAN_NAME}"))?;
    // The plan is lamed's own: a key replaced by a newly configured one
    // leaves it.
    for stale in keys
        .items()
        .iter()
        .filter_map(|k| k.id())
        .filter(|id| *id != key_id)
    {
        client
            .delete_usage_plan_key()
            .usage_plan_id(&id)
            .key_id(stale)
            .send()
            .await
            .checked(|| format!("cannot remove an old key from usage plan {USAGE_PLAN_NAME}"))?;
    }
    if !keys.items().iter().any(|k| k.id() == Some(key_id)) {
        client
            .create_usage_plan_key()
            .usage_plan_id(&id)
            .key_id(key_id)
            .key_type("API_KEY")
            .send()
            .await
            .checked(|| {
                format!("cannot add API key {API_KEY_NAME} to usage plan {USAGE_PLAN_NAME}")
            })?;
        progress(&format!(
            "usage plan {USAGE_PLAN_NAME}: API key {API_KEY_NAME} added"
        ));
    }
    Ok(id)
}

/// Removes the usage plan, the API key and the REST API. Returns what was
/// removed, for the progress lines.
///
/// # Errors
///
/// When API Gateway refuses.
pub async fn destroy(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Some((id, stages)) = find_usage_plan(client).await? {
        for stage in stages {
            let (Some(api), Some(name)) = (stage.api_id(), stage.stage()) else {
                continue;
            };
            client
                .update_usage_plan()
                .usage_plan_id(&id)
                .patch_operations(stage_patch(Op::Remove, api, name))
                .send()
                .await
                .checked(|| format!("cannot unbind usage plan {USAGE_PLAN_NAME}"))?;
        }
        client
            .delete_usage_plan()
            .usage_plan_id(&id)
            .send()
            .await
            .checked(|| format!("cannot delete usage plan {USAGE_PLAN_NAME}"))?;
        removed.push(format!("usage plan {USAGE_PLAN_NAME}"));
    }
    let keys = client
        .get_api_keys()
        .name_query(API_KEY_NAME)
        .limit(500)
        .send()
        .await
        .checked(|| "cannot list API keys")?;
    for key in keys
        .items()
        .iter()
        .filter(|k| k.name() == Some(API_KEY_NAME))
    {
        if let Some(id) = key.id() {
            delete_api_key(client, id).await?;
            removed.push(format!("API key {API_KEY_NAME}"));
        }
    }
    while let Some(id) = find_api(client).await? {
        client
            .delete_rest_api()
            .rest_api_id(&id)
            .send()
            .await
            .checked(|| format!("cannot delete REST API {API_NAME} ({id})"))?;
        removed.push(format!(
            "REST API {API_NAME} ({id}) with its paths and stage {STAGE}"
        ));
    }
    Ok(removed)
}
