//! `finops secrets split`: from the one-secret layout (every credential in the stack's SecretArn)
//! to a secret per function: the approval function's (Slack's signing secret, the identity
//! provider's client secret) and jira-sync's (the Jira token), leaving Slack's delivery credentials
//! in SecretArn for slack-notify alone.
//!
//! Two steps, so that no function is ever without its credentials: first the new secrets are
//! written (the old one unchanged) and the parameters to deploy with are printed; after the
//! deploy, `--prune` removes the moved keys from the old secret, and only once the new secrets
//! hold them.

use aws_sdk_secretsmanager::Client;
use serde_json::{Map, Value};

/// The keys each secret keeps.
pub const SLACK_KEYS: [&str; 3] = ["slack_webhook_url", "slack_bot_token", "slack_channel"];
/// The approval function's: the old shared link key travels too (links it signed are still
/// accepted until `approvals.previous_link_key_until`).
pub const APPROVAL_KEYS: [&str; 4] = [
    "slack_signing_secret",
    "oidc_client_secret",
    "slack_users_token",
    "link_signing_key",
];
pub const JIRA_KEYS: [&str; 2] = ["jira_email", "jira_api_token"];

/// What to split.
pub struct Split<'a> {
    /// The stack's SecretArn (the one-secret layout's secret).
    pub from: &'a str,
    /// The approval function's secret (created when missing).
    pub approval: &'a str,
    /// jira-sync's secret (created when missing; only if the old secret holds Jira keys).
    pub jira: Option<&'a str>,
    /// Remove the moved keys from the old secret (after the deploy).
    pub prune: bool,
}

async fn read(client: &Client, id: &str) -> Result<Option<Map<String, Value>>, String> {
    Ok(read_with_arn(client, id).await?.map(|(_, m)| m))
}

/// The secret's fields and its ARN (`None`: no such secret).
async fn read_with_arn(client: &Client, id: &str) -> Result<Option<(String, Map<String, Value>)>, String> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => {
            let text = out.secret_string().unwrap_or_default();
            let arn = out.arn().unwrap_or(id).to_string();
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => Ok(Some((arn, m))),
                _ => Err(format!("{id} is not a JSON object")),
            }
        }
        Err(e)
            if aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e) == Some("ResourceNotFoundException") =>
        {
            Ok(None)
        }
        Err(e) => Err(format!(
            "{id}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
        )),
    }
}

/// The `keys` of `from` (those present).
fn pick(from: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| from.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect()
}

/// Writes `id` with `fields` merged over what it holds; its ARN.
async fn write(client: &Client, id: &str, fields: &Map<String, Value>) -> Result<String, String> {
    let err = |e: String| format!("{id}: {e}");
    match read(client, id).await? {
        Some(mut existing) => {
            // A value already there and different (rotated since, say) is never overwritten.
            let differing: Vec<&str> = fields
                .iter()
                .filter(|(k, v)| existing.get(*k).is_some_and(|have| have != *v))
                .map(|(k, _)| k.as_str())
                .collect();
            if !differing.is_empty() {
                return Err(format!(
                    "{id} already holds {} with another value: nothing was written (remove it there, or keep that secret's value in the old one too)",
                    differing.join(", ")
                ));
            }
            for (k, v) in fields {
                existing.insert(k.clone(), v.clone());
            }
            let out = client
                .put_secret_value()
                .secret_id(id)
                .secret_string(Value::Object(existing).to_string())
                .send()
                .await
                .map_err(|e| err(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
            Ok(out.arn().unwrap_or(id).to_string())
        }
        None => {
            let out = client
                .create_secret()
                .name(id)
                .description("FinOps Autopilot: one function's credentials (finops secrets split)")
                .secret_string(Value::Object(fields.clone()).to_string())
                .send()
                .await
                .map_err(|e| err(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
            Ok(out.arn().unwrap_or(id).to_string())
        }
    }
}

/// Runs the split; what was done, as people read it.
pub async fn run(client: &Client, split: &Split<'_>) -> Result<String, String> {
    let (from_arn, old) = read_with_arn(client, split.from)
        .await?
        .ok_or_else(|| format!("{}: no such secret", split.from))?;
    // The same secret under two names would be emptied by --prune.
    for (flag, id) in [("--approval", Some(split.approval)), ("--jira", split.jira)] {
        if let Some(id) = id {
            if id == split.from || read_with_arn(client, id).await?.is_some_and(|(arn, _)| arn == from_arn) {
                return Err(format!(
                    "{flag} names {}, the secret it moves from: name a new secret",
                    split.from
                ));
            }
        }
    }
    let approval_fields = pick(&old, &APPROVAL_KEYS);
    let jira_fields = pick(&old, &JIRA_KEYS);
    if !jira_fields.is_empty() && split.jira.is_none() {
        return Err(format!(
            "{} holds jira_email/jira_api_token: name jira-sync's secret with --jira",
            split.from
        ));
    }
    let mut out = String::new();
    if !split.prune {
        let approval_arn = write(client, split.approval, &approval_fields).await?;
        out.push_str(&format!(
            "wrote {} key(s) to the approval function's secret {approval_arn}\n",
            approval_fields.len()
        ));
        let mut params = format!("ApprovalSecretArn={approval_arn}");
        if let (Some(jira), false) = (split.jira, jira_fields.is_empty()) {
            let jira_arn = write(client, jira, &jira_fields).await?;
            out.push_str(&format!(
                "wrote {} key(s) to jira-sync's secret {jira_arn}\n",
                jira_fields.len()
            ));
            params.push_str(&format!(" JiraSecretArn={jira_arn}"));
        }
        out.push_str(&format!(
            "{} is unchanged. Deploy with:\n  --parameter-overrides {params}\nthen run this again with --prune to remove the moved keys from it.\n",
            split.from
        ));
        out.push_str(
            "Every function could read these keys until now: once deployed, rotate them (Slack app > Basic Information > \
             Regenerate the signing secret; a new client secret at the identity provider; a new Jira API token) and put \
             the new values in the new secrets.\n",
        );
        if old.contains_key("slack_bot_token") && !approval_fields.contains_key("slack_users_token") {
            out.push_str(
                "The approval function no longer reads the bot token: to keep telling Slack users' addresses, add \
                 slack_users_token (users:read and users:read.email only) to its secret, or pair people in approvals.people.\n",
            );
        }
        return Ok(out);
    }
    // Pruning: only what the new secrets already hold, equal, is removed.
    let approval = read(client, split.approval)
        .await?
        .ok_or_else(|| format!("{}: no such secret: run without --prune first", split.approval))?;
    let jira = match split.jira {
        Some(id) => read(client, id).await?.unwrap_or_default(),
        None => Map::new(),
    };
    let missing: Vec<&str> = approval_fields
        .iter()
        .filter(|(k, v)| approval.get(*k) != Some(v))
        .chain(jira_fields.iter().filter(|(k, v)| jira.get(*k) != Some(v)))
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not pruned: the new secrets do not hold {} as {} does; run without --prune first",
            missing.join(", "),
            split.from
        ));
    }
    let kept = pick(&old, &SLACK_KEYS);
    let others: Vec<&str> = old
        .keys()
        .map(String::as_str)
        .filter(|k| !SLACK_KEYS.contains(k) && !APPROVAL_KEYS.contains(k) && !JIRA_KEYS.contains(k))
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "not pruned: {} also holds {}, which no function reads from it; remove them by hand",
            split.from,
            others.join(", ")
        ));
    }
    let removed = old.len() - kept.len();
    client
        .put_secret_value()
        .secret_id(split.from)
        .secret_string(Value::Object(kept).to_string())
        .send()
        .await
        .map_err(|e| {
            format!(
                "{}: {}",
                split.from,
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    out.push_str(&format!(
        "removed {removed} key(s) from {}: it now holds Slack's delivery credentials only (slack-notify's)\n",
        split.from
    ));
    Ok(out)
}
