//! Renders each SNS message (a FinOps message, or a CloudWatch alarm's state change) as Block Kit
//! and posts it to Slack — once: a replayed message finds its post claimed in the state table and
//! is skipped. A failed post releases the claim and fails the invocation, so Lambda's retries and
//! the on-failure destination keep the message. A post Slack may have received without answering
//! (a timeout, a connection cut after sending) keeps its claim, marked `uncertain`, and fails the
//! invocation so the errors alarm fires; the retries find the claim and post nothing: at most
//! once, never twice. A claim another invocation still holds fails the invocation too, so a run
//! stopped mid-post does not drop the message.
//! Messages that a digest summarises are not posted on their own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::config::Deps;
use remediation::http::HttpClient;
use remediation::slack::{render_incoming, Destination, RenderOptions, SlackPoster};
use remediation::state::ApprovalStore;
use remediation::Error;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Environment variable: `true` when the Slack app has interactivity pointed at the approval
/// function (buttons then carry their signed token).
pub const INTERACTIVE_VAR: &str = "FINOPS_SLACK_INTERACTIVE";
/// Environment variable: Slack's Web API base (tests point it at a local server).
pub const API_BASE_VAR: &str = "FINOPS_SLACK_API_BASE";

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    pub poster: SlackPoster,
    pub options: RenderOptions,
}

impl App {
    /// The Slack destination from the secret (webhook, or bot token and channel).
    pub fn new(deps: Deps) -> Result<App, Error> {
        let s = &deps.secrets;
        let destination = match (&s.slack_webhook_url, &s.slack_bot_token, &s.slack_channel) {
            (_, Some(token), Some(channel)) => Destination::Bot {
                bot_token: token.clone(),
                channel: channel.clone(),
            },
            (Some(url), _, _) => Destination::Webhook {
                webhook_url: url.clone(),
            },
            _ => {
                return Err(Error::Config(
                    "the secret needs slack_webhook_url, or slack_bot_token and slack_channel".into(),
                ))
            }
        };
        let mut poster = SlackPoster::new(HttpClient::new(Duration::from_secs(10))?, destination);
        if let Ok(base) = std::env::var(API_BASE_VAR) {
            if !base.trim().is_empty() {
                poster.api_base = base.trim().to_string();
            }
        }
        let options = RenderOptions {
            interactive: std::env::var(INTERACTIVE_VAR).is_ok_and(|v| v.trim() == "true"),
            checks: &finops_checks::CATALOG,
        };
        Ok(App { deps, poster, options })
    }
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, app: &App) -> Result<Value, Error> {
    handle(event.payload, app, Utc::now()).await
}

/// The key a post is deduplicated by: the message's own content (a replay is byte-identical).
pub fn post_key(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Posts every record of an SNS event (FinOps messages and CloudWatch alarms); fails on the first
/// post that fails (after releasing its claim), so the event is retried.
pub async fn handle(payload: Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    let mut results = Vec::new();
    for (body, incoming) in remediation::notify::incoming_from_sns_event(&payload)? {
        if incoming.in_digest() {
            results.push(json!({"kind": incoming.kind(), "posted": false, "why": "in a digest"}));
            continue;
        }
        let key = post_key(&body);
        if let Some(state) = &app.deps.state {
            if !state.claim_post(&key, now).await? {
                match state.post_status(&key).await?.as_deref() {
                    // Another invocation holds a fresh claim: it may be posting now, or have been
                    // stopped mid-post. Failing keeps the message (Lambda's retry, then the
                    // on-failure destination) instead of dropping it.
                    Some("posting") => {
                        return Err(Error::Http {
                            service: "slack",
                            message: format!("another invocation is posting this {} message; retried later", incoming.kind()),
                        })
                    }
                    Some("uncertain") => results.push(
                        json!({"kind": incoming.kind(), "posted": false, "why": "sent earlier without an answer; not repeated"}),
                    ),
                    _ => results.push(json!({"kind": incoming.kind(), "posted": false, "why": "already posted"})),
                }
                continue;
            }
        }
        let rendered = render_incoming(&incoming, app.options);
        match app.poster.post(&rendered).await {
            Ok(()) => {
                if let Some(state) = &app.deps.state {
                    if let Err(e) = state.mark_posted(&key, Utc::now().max(now)).await {
                        tracing::error!(error = %e, key, "posted but not marked");
                    }
                }
                tracing::info!(kind = incoming.kind(), key, "posted to Slack");
                results.push(json!({"kind": incoming.kind(), "posted": true}));
            }
            Err(e @ Error::Unanswered { .. }) => {
                // Slack may have posted it: a retry could post it twice, so the claim stays and
                // the message is reported, not repeated.
                let why = e.to_string();
                if let Some(state) = &app.deps.state {
                    if let Err(mark) = state.mark_post_uncertain(&key, Utc::now().max(now), &why).await {
                        tracing::error!(error = %mark, key, "could not record the uncertain post; the claim lapses in 5 minutes");
                    }
                }
                tracing::error!(error = %why, kind = incoming.kind(), key, "Slack did not answer; the message may or may not be in the channel and is not posted again");
                // The invocation fails, so the errors alarm says a message may be missing; its
                // retries find the claim and post nothing.
                return Err(e);
            }
            Err(e) => {
                if let Some(state) = &app.deps.state {
                    if let Err(release) = state.release_post(&key).await {
                        tracing::error!(error = %release, key, "could not release the claim; it lapses in 5 minutes");
                    }
                }
                tracing::error!(error = %e, kind = incoming.kind(), "post failed; the event will be retried");
                return Err(e);
            }
        }
    }
    Ok(json!({"results": results}))
}
