//! The IAM role `lamed`: trusted by Lambda and API Gateway, with an inline
//! policy allowing logs, invoking lamed's functions and, on DynamoDB, the
//! store's actions on its table only.

use anyhow::Context;
use aws_sdk_iam::Client;
use lamed_store::dynamodb::IAM_ACTIONS;
use serde_json::json;

use super::plan::{POLICY_NAME, ROLE_NAME};
use super::{progress, Answer};

/// Who may assume the role.
const TRUST_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Principal": {"Service": ["lambda.amazonaws.com", "apigateway.amazonaws.com"]},
    "Action": "sts:AssumeRole"
  }]
}"#;

/// What the role may do: write its logs, invoke lamed's functions and,
/// when they count in DynamoDB, use the table `table_arn` with the actions
/// the store sends ([`IAM_ACTIONS`]) and nothing else.
pub fn policy(table_arn: Option<&str>) -> String {
    let mut statements = vec![
        json!({"Effect": "Allow",
               "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
               "Resource": "arn:aws:logs:*:*:*"}),
        json!({"Effect": "Allow",
               "Action": ["lambda:InvokeFunction"],
               "Resource": "arn:aws:lambda:*:*:function:lamed-*"}),
    ];
    if let Some(arn) = table_arn {
        statements.push(json!({"Effect": "Allow", "Action": IAM_ACTIONS, "Resource": arn}));
    }
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// Creates the role or updates its trust policy, then puts the inline
/// policy ([`policy`] of `table_arn`). Returns the role ARN.
///
/// # Errors
///
/// When IAM refuses, naming the role.
pub async fn ensure_role(iam: &Client, table_arn: Option<&str>) -> anyhow::Result<String> {
    let existing = iam
        .get_role()
        .role_name(ROLE_NAME)
        .send()
        .await
        .found(|| format!("cannot read IAM role {ROLE_NAME}"))?
        .and_then(|output| output.role)
        .map(|role| role.arn);
    let arn = match existing {
        Some(arn) => {
            iam.update_assume_role_policy()
                .role_name(ROLE_NAME)
                .policy_document(TRUST_POLICY)
                .send()
                .await
                .checked(|| format!("cannot update the trust policy of IAM role {ROLE_NAME}"))?;
            progress(&format!(
                "IAM role {ROLE_NAME}: exists, trust policy updated"
            ));
            arn
        }
        None => {
            let output = iam
                .create_role()
                .role_name(ROLE_NAME)
                .description("lamed: Lambda functions and API Gateway")
                .assume_role_policy_document(TRUST_POLICY)
                .send()
                .await
                .checked(|| format!("cannot create IAM role {ROLE_NAME}"))?;
            progress(&format!("IAM role {ROLE_NAME}: created"));
            output
                .role
                .map(|role| role.arn)
                .with_context(|| format!("IAM returned no ARN for role {ROLE_NAME}"))?
        }
    };
    iam.put_role_policy()
        .role_name(ROLE_NAME)
        .policy_name(POLICY_NAME)
        .policy_document(policy(table_arn))
        .send()
        .await
        .checked(|| format!("cannot put inline policy {POLICY_NAME} on IAM role {ROLE_NAME}"))?;
    progress(&match table_arn {
        Some(arn) => format!("IAM policy {POLICY_NAME}: logs, invoke, and table {arn} only"),
        None => format!("IAM policy {POLICY_NAME}: logs and invoke"),
    });
    Ok(arn)
}

/// What the functions may do with `table`, in words.
pub fn scope(table: &str) -> String {
    format!(
        "the functions may use table {table} only, with {}",
        IAM_ACTIONS
            .map(|a| a.trim_start_matches("dynamodb:"))
            .join(", ")
    )
}

/// What preflight says of the policy deploy will put: whether the role is
/// there to scope, and that these credentials may read IAM (deploy also
/// needs to create the role and put its policy).
///
/// # Errors
///
/// When IAM refuses to answer, with the permissions deploy needs.
pub async fn check_policy(iam: &Client, table: &str) -> Result<String, String> {
    let role = iam
        .get_role()
        .role_name(ROLE_NAME)
        .send()
        .await
        .found(|| format!("cannot read IAM role {ROLE_NAME}"))
        .map_err(|err| {
            format!(
                "{err:#}\n  fix: the credentials need iam:GetRole, CreateRole, \
                 UpdateAssumeRolePolicy and PutRolePolicy on role {ROLE_NAME}"
            )
        })?;
    let role = match role {
        Some(_) => format!("role {ROLE_NAME} exists, its policy is replaced"),
        None => format!("role {ROLE_NAME} is created"),
    };
    Ok(format!("{role}: {}", scope(table)))
}

/// Removes the role and its inline policies. Returns whether it existed.
///
/// # Errors
///
/// When IAM refuses.
pub async fn delete_role(iam: &Client) -> anyhow::Result<bool> {
    let Some(policies) = iam
        .list_role_policies()
        .role_name(ROLE_NAME)
        .send()
        .await
        .found(|| format!("cannot list the policies of IAM role {ROLE_NAME}"))?
        .map(|output| output.policy_names)
    else {
        return Ok(false);
    };
    for policy in policies {
        iam.delete_role_policy()
            .role_name(ROLE_NAME)
            .policy_name(&policy)
            .send()
            .await
            .checked(|| format!("cannot delete policy {policy} of IAM role {ROLE_NAME}"))?;
    }
    iam.delete_role()
        .role_name(ROLE_NAME)
        .send()
        .await
        .checked(|| format!("cannot delete IAM role {ROLE_NAME}"))?;
    Ok(true)
}
