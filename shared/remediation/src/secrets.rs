//! Secrets from AWS Secrets Manager: one JSON secret (named by `FINOPS_SECRET_ID`) holding the
//! link-signing key and the Slack credentials, read once per container. Never logged.

use serde::Deserialize;

use crate::error::{Error, Result};

/// Environment variable: the secret's name or ARN.
pub const SECRET_ID_VAR: &str = "FINOPS_SECRET_ID";
/// Environment variable: the link secret's name or ARN (`link_signing_key`, `approval_url`).
pub const LINK_SECRET_ID_VAR: &str = "FINOPS_LINK_SECRET_ID";
/// Environment variable: the report-link secret (`report_link_key` and the approval URL), apart
/// from the link secret so that the function that signs report links can never sign a decision.
pub const REPORT_LINK_SECRET_ID_VAR: &str = "FINOPS_REPORT_LINK_SECRET_ID";

/// The secret's fields; each optional, each function uses what it needs.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Signs approval links (at least 32 bytes). Deployed, it lives in the link secret of its own
    /// (`FINOPS_LINK_SECRET_ID`), readable only by the functions that mint or verify links.
    #[serde(default)]
    pub link_signing_key: Option<String>,
    /// The approval function's URL, fixed by the deployment (the template writes it into the link
    /// secret); links never take their base from a request or a message.
    #[serde(default)]
    pub approval_url: Option<String>,
    /// A link key from before the link secret (the shared secret's `link_signing_key`): links it
    /// signed are still accepted, new links are signed with the link secret's key. Set by
    /// [`Secrets::with_links`], never read from a secret.
    #[serde(skip)]
    pub previous_link_signing_key: Option<String>,
    /// The identity provider's client secret (`approvals.oidc`).
    #[serde(default)]
    pub oidc_client_secret: Option<String>,
    /// Slack incoming webhook URL.
    #[serde(default)]
    pub slack_webhook_url: Option<String>,
    /// Slack bot token (`xoxb-...`) for `chat.postMessage`, with `slack_channel`.
    #[serde(default)]
    pub slack_bot_token: Option<String>,
    #[serde(default)]
    pub slack_channel: Option<String>,
    /// Slack app signing secret (verifies interactivity requests).
    #[serde(default)]
    pub slack_signing_secret: Option<String>,
    /// The Atlassian account's email, with `jira_api_token` (Basic auth to Jira Cloud).
    #[serde(default)]
    pub jira_email: Option<String>,
    #[serde(default)]
    pub jira_api_token: Option<String>,
    /// Signs the weekly report's links (at least 32 bytes); in a secret of its own
    /// (`FINOPS_REPORT_LINK_SECRET_ID`), readable by savings-report and the approval function only.
    #[serde(default)]
    pub report_link_key: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "set" } else { "unset" };
        f.debug_struct("Secrets")
            .field("link_signing_key", &set(&self.link_signing_key))
            .field("approval_url", &self.approval_url)
            .field("previous_link_signing_key", &set(&self.previous_link_signing_key))
            .field("oidc_client_secret", &set(&self.oidc_client_secret))
            .field("slack_webhook_url", &set(&self.slack_webhook_url))
            .field("slack_bot_token", &set(&self.slack_bot_token))
            .field("slack_channel", &self.slack_channel)
            .field("slack_signing_secret", &set(&self.slack_signing_secret))
            .field("jira_email", &self.jira_email)
            .field("jira_api_token", &set(&self.jira_api_token))
            .field("report_link_key", &set(&self.report_link_key))
            .finish()
    }
}

impl Secrets {
    /// Parses the secret's JSON; the error names the secret, never its content.
    pub fn parse(secret_id: &str, text: &str) -> Result<Secrets> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            Error::Config(format!(
                "secret {secret_id} is not the expected JSON object ({}: {})",
                e.path(),
                // serde's message may quote an unknown field name, never a value.
                e.inner().to_string().split(" at line").next().unwrap_or_default()
            ))
        })
    }

    /// Reads `secret_id` from Secrets Manager.
    pub async fn load(client: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<Secrets> {
        let out = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| Error::aws("secretsmanager", "GetSecretValue", e))?;
        let text = out.secret_string().ok_or_else(|| {
            Error::unexpected(
                "secretsmanager",
                "GetSecretValue",
                format!("{secret_id} has no string value"),
            )
        })?;
        Secrets::parse(secret_id, text)
    }

    /// The secret named by `FINOPS_SECRET_ID` (empty when unset), with the link secret named by
    /// `FINOPS_LINK_SECRET_ID` over it.
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Secrets> {
        let id = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        let client = aws_sdk_secretsmanager::Client::new(config);
        let main = match id(SECRET_ID_VAR) {
            Some(id) => Secrets::load(&client, id.trim()).await?,
            None => Secrets::default(),
        };
        let main = match id(LINK_SECRET_ID_VAR) {
            Some(id) => main.with_links(Secrets::load(&client, id.trim()).await?),
            None => main,
        };
        // The report-link key comes from its own secret only: one in the shared secret (which every
        // function reads) is never used.
        let main = Secrets {
            report_link_key: None,
            ..main
        };
        match id(REPORT_LINK_SECRET_ID_VAR) {
            // Unreadable, it costs the report links only (savings-report refuses to run without
            // them); the approval function still decides, executes and sweeps.
            Some(id) => match Secrets::load(&client, id.trim()).await {
                Ok(report) => Ok(Secrets {
                    report_link_key: report.report_link_key,
                    // The template writes the approval URL into both secrets; the report secret's
                    // is the one report links are made for.
                    approval_url: report.approval_url.or(main.approval_url.clone()),
                    ..main
                }),
                Err(e) => {
                    tracing::error!(error = %e, secret = %id.trim(), "the report-link secret cannot be read: no report links");
                    Ok(main)
                }
            },
            None => Ok(main),
        }
    }

    /// These secrets with the link secret's fields over them.
    pub fn with_links(self, links: Secrets) -> Secrets {
        let previous = match (&links.link_signing_key, &self.link_signing_key) {
            (Some(new), Some(old)) if new != old => Some(old.clone()),
            _ => None,
        };
        Secrets {
            previous_link_signing_key: previous,
            link_signing_key: links.link_signing_key.or(self.link_signing_key),
            approval_url: links.approval_url.or(self.approval_url),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_secret_is_named_without_its_content() {
        let err = Secrets::parse(
            "finops/slack",
            r#"{"slack_webhok_url": "https://hooks.slack.com/services/SECRET"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("finops/slack"), "{err}");
        assert!(!err.contains("hooks.slack.com"), "{err}");
        let debug = format!(
            "{:?}",
            Secrets::parse("s", r#"{"slack_bot_token": "xoxb-123", "slack_channel": "C1"}"#).unwrap()
        );
        assert!(!debug.contains("xoxb"), "{debug}");
    }
}
