//! The IAM role `lamed`: trusted by Lambda and API Gateway, with an inline
//! policy allowing logs and invoking lamed's functions.

use anyhow::Context;
use aws_sdk_iam::Client;

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

/// What the role may do: write its logs and invoke lamed's functions.
const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:*:*:*"},
    {"Effect": "Allow",
     "Action": ["lambda:InvokeFunction"],
     "Resource": "arn:aws:lambda:*:*:function:lamed-*"}
  ]
}"#;

/// Creates the role or updates its trust policy, then puts the inline
/// policy. Returns the role ARN.
///
/// # Errors
///
/// When IAM refuses, naming the role.
pub async fn ensure_role(iam: &Client) -> anyhow::Result<String> {
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
        .policy_document(POLICY)
        .send()
        .await
        .checked(|| format!("cannot put inline policy {POLICY_NAME} on IAM role {ROLE_NAME}"))?;
    progress(&format!("IAM policy {POLICY_NAME}: logs and invoke"));
    Ok(arn)
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
