//! Turns the system's SNS messages into Jira: a finding, approval request or cost alert opens
//! one issue per finding (a `TICKET#` item keeps it to one, whatever is replayed or re-detected);
//! an action result comments on it and, when the action executed, moves it to Done; a rollback and
//! a rejected or expired approval comment on it. Digests and tag reports summarise findings that
//! have their own messages and are skipped.
//!
//! Any failure fails the invocation (after releasing what it claimed), so Lambda's retries and the
//! on-failure destination keep the message; nothing is dropped silently.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::config::Deps;
use remediation::http::HttpClient;
use remediation::jira::{self, JiraClient};
use remediation::model::{Finding, OutcomeKind};
use remediation::notify::Message;
use remediation::state::{DynamoState, Ticket};
use remediation::Error;
use serde_json::{json, Value};

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    pub jira: JiraClient,
    /// The approval function's URL (the deployment's), for links to its decision pages.
    pub approval_url: Option<String>,
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl App {
    /// A link to the approval function's decision page (`/request?<query>`): it holds no token.
    pub fn decide_page(&self, query: &str) -> Option<String> {
        self.approval_url
            .as_ref()
            .map(|base| format!("{}/request?{query}", base.trim_end_matches('/')))
    }
}

impl App {
    /// Needs the state table, `jira.site_url` in the policy and the Jira credentials in the secret.
    pub fn new(deps: Deps) -> Result<App, Error> {
        if deps.state.is_none() {
            return Err(Error::Config(
                "jira-sync needs the state table (FINOPS_TABLE): it is how one finding gets one issue".into(),
            ));
        }
        let site = deps.policy.jira.site_url.trim().to_string();
        if site.is_empty() {
            return Err(Error::Config("jira-sync needs jira.site_url in the policy".into()));
        }
        let (Some(email), Some(token)) = (&deps.secrets.jira_email, &deps.secrets.jira_api_token) else {
            return Err(Error::Config(
                "jira-sync needs jira_email and jira_api_token in the secret named by FINOPS_SECRET_ID".into(),
            ));
        };
        let jira = JiraClient::new(HttpClient::new(Duration::from_secs(10))?, &site, email, token);
        let approval_url = remediation::config::approval_url(&deps.secrets);
        Ok(App {
            deps,
            jira,
            approval_url,
        })
    }

    fn state(&self) -> Result<&DynamoState, Error> {
        self.deps
            .state
            .as_ref()
            .ok_or_else(|| Error::Config("jira-sync needs the state table (FINOPS_TABLE)".into()))
    }
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, app: &App) -> Result<Value, Error> {
    handle(event.payload, app, Utc::now()).await
}

/// Handles every record of an SNS event; fails on the first that fails.
pub async fn handle(payload: Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    let mut results = Vec::new();
    let rules = &app.deps.policy.jira.rules;
    for (_, message) in remediation::notify::from_sns_event(&payload)? {
        let kind = message.kind();
        if !rules.is_empty() && !rules.iter().any(|r| r == message.rule()) {
            results.push(json!({"kind": kind, "result": format!("rule {} is not in jira.rules", message.rule())}));
            continue;
        }
        let result = sync(&message, app, now).await?;
        tracing::info!(kind, result = %result, "jira-sync");
        results.push(json!({"kind": kind, "result": result}));
    }
    Ok(json!({"results": results}))
}

/// How long after an unanswered create Jira's search is not trusted to show the issue.
const SEARCH_SETTLE_SECONDS: i64 = 60;

/// Opens the finding's issue unless it exists; returns its key, or `None` when another run is
/// opening it right now (a concurrent copy of the same message).
async fn ensure_issue(
    app: &App,
    f: &Finding,
    decide_url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Option<String>, bool), Error> {
    let state = app.state()?;
    let unsure = match state.ticket(&f.id, now).await? {
        Ticket::Created { key } => return Ok((Some(key), false)),
        Ticket::Creating => return Ok((None, false)),
        Ticket::None => None,
        Ticket::Unsure { since } => Some(since),
    };
    if !state.claim_ticket(&f.id, now).await? {
        return Ok((None, false));
    }
    let label = jira::finding_label(&f.id);
    if let Some(since) = unsure {
        // An earlier create may have opened it: look before opening another.
        match app.jira.find_by_label(&app.deps.policy.jira.project_key, &label).await {
            Ok(Some(key)) => {
                state.ticket_created(&f.id, &key, "opened", now).await?;
                tracing::info!(finding = %f.id, key, "found the issue an unanswered create had opened");
                return Ok((Some(key), false));
            }
            // Jira's search may not show an issue made seconds ago: wait a while before trusting
            // that nothing was made.
            Ok(None) if since.is_some_and(|t| now - t < chrono::Duration::seconds(SEARCH_SETTLE_SECONDS)) => {
                let e = Error::Http {
                    service: "jira",
                    message: format!(
                        "the issue of {} may have been opened moments ago and Jira's search may not show it yet; retried",
                        f.id
                    ),
                };
                // The window still counts from the unanswered create.
                leave_uncertain(state, f, since.unwrap_or(now), &e).await;
                return Err(e);
            }
            Ok(None) => {}
            Err(e) => {
                leave_uncertain(state, f, now, &e).await;
                return Err(e);
            }
        }
    }
    let body = jira::issue_fields(f, &app.deps.policy.jira, decide_url);
    match app.jira.create_issue(&body).await {
        Ok(key) => {
            state.ticket_created(&f.id, &key, "opened", now).await?;
            Ok((Some(key), true))
        }
        // Unanswered, or a 5xx that may come from a gateway after Jira made the issue: the next
        // try searches first. Only a refusal (4xx) proves nothing was made.
        Err(e @ (Error::Unanswered { .. } | Error::Http { .. })) => {
            leave_uncertain(state, f, now, &e).await;
            Err(e)
        }
        Err(e) if unsure.is_some() => {
            leave_uncertain(state, f, now, &e).await;
            Err(e)
        }
        Err(e) => {
            if let Err(release) = state.release_ticket(&f.id).await {
                tracing::error!(error = %release, finding = %f.id, "could not release the ticket claim; it lapses in 5 minutes");
            }
            Err(e)
        }
    }
}

/// Marks the claim uncertain, so the retry searches before it creates.
async fn leave_uncertain(state: &DynamoState, f: &Finding, now: DateTime<Utc>, e: &Error) {
    if let Err(mark) = state.ticket_uncertain(&f.id, now, &e.to_string()).await {
        tracing::error!(error = %mark, finding = %f.id, "could not mark the ticket uncertain; the claim lapses in 5 minutes and the next run searches then");
    }
}

/// Writes one update (`event` identifies it) to the finding's issue once; resolves the issue too
/// when `resolve`.
async fn update_issue(
    app: &App,
    f: &Finding,
    event: &str,
    comment: Value,
    resolve: bool,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let (key, _) = ensure_issue(app, f, None, now).await?;
    let Some(key) = key else {
        // The issue is being opened by another invocation right now: try again later.
        return Err(Error::Http {
            service: "jira",
            message: format!("the issue of {} is being opened by another invocation; retried", f.id),
        });
    };
    let state = app.state()?;
    if !state.claim_ticket_event(&f.id, event).await? {
        return Ok(format!("{key}: {event} already written"));
    }
    let written = async {
        app.jira.comment(&key, comment).await?;
        if resolve {
            let t = app.jira.resolve(&key, &app.deps.policy.jira.done_transition).await?;
            return Ok::<_, Error>(match t {
                Some(name) => format!("{key}: commented, moved by {name:?}"),
                None => format!("{key}: commented; no Done transition available (already done?)"),
            });
        }
        Ok(format!("{key}: commented"))
    }
    .await;
    match written {
        // Jira may have written it: the claim stays, so a retry does not comment twice.
        Err(e @ Error::Unanswered { .. }) => {
            tracing::error!(error = %e, finding = %f.id, event, "Jira did not answer; the update is not written again");
            Ok(format!("{key}: {event} sent, unanswered ({e}); not repeated"))
        }
        Err(e) => {
            if let Err(release) = state.release_ticket_event(&f.id, event).await {
                tracing::error!(error = %release, finding = %f.id, event, "could not release the event claim");
            }
            Err(e)
        }
        ok => ok,
    }
}

async fn sync(message: &Message, app: &App, now: DateTime<Utc>) -> Result<String, Error> {
    match message {
        Message::Finding { finding, .. } | Message::CostAlert { finding } => opened(app, finding, None, now).await,
        Message::ApprovalRequest {
            finding, request_id, ..
        } => {
            let url = app.decide_page(&format!("id={}", enc(request_id)));
            opened(app, finding, url.as_deref(), now).await
        }
        Message::ActionResult {
            action_id,
            finding,
            outcome,
            detail,
            decided_by,
            rollback_url,
            rolled_back,
            ..
        } => {
            // The message's Roll back link holds a token: the issue gets the sign-in page instead.
            let rollback_url = rollback_url
                .as_ref()
                .and_then(|_| app.decide_page(&format!("action={}", enc(action_id))));
            let (event, what) = match (rolled_back, outcome) {
                (true, _) => (format!("rolled-back:{action_id}"), "Rolled back"),
                (false, OutcomeKind::Executed) => (format!("executed:{action_id}"), "Action executed"),
                (false, _) => (format!("failed:{action_id}"), "Action did not complete"),
            };
            let mut inline = vec![
                jira::strong(format!("{what}: ")),
                jira::text(format!(
                    "{} on {}. {detail} (decided by {decided_by}).",
                    finding.action.as_str(),
                    finding.resource.id
                )),
            ];
            if let (false, Some(url)) = (rolled_back, rollback_url) {
                inline.push(jira::text(" "));
                inline.push(jira::link("Roll back", &url));
            }
            let resolve = !rolled_back && *outcome == OutcomeKind::Executed;
            update_issue(
                app,
                finding,
                &event,
                jira::doc(vec![jira::paragraph(inline)]),
                resolve,
                now,
            )
            .await
        }
        Message::ApprovalResult {
            request_id,
            finding,
            status,
            decided_by,
            detail,
            ..
        } => {
            let state = app.state()?;
            if !matches!(state.ticket(&finding.id, now).await?, Ticket::Created { .. }) {
                return Ok("no issue for this finding: nothing to comment on".into());
            }
            let comment = jira::doc(vec![jira::paragraph(vec![
                jira::strong(format!("Approval {status}: ")),
                jira::text(format!("{detail} (by {decided_by})")),
            ])]);
            update_issue(
                app,
                finding,
                &format!("approval:{request_id}:{status}"),
                comment,
                false,
                now,
            )
            .await
        }
        Message::Digest { .. }
        | Message::TagReport { .. }
        | Message::SavingsReport { .. }
        | Message::Held { .. }
        | Message::OrgDigest { .. } => Ok("a summary: its findings have their own messages".into()),
    }
}

async fn opened(app: &App, f: &Finding, decide_url: Option<&str>, now: DateTime<Utc>) -> Result<String, Error> {
    Ok(match ensure_issue(app, f, decide_url, now).await? {
        (Some(key), true) => format!("opened {key}"),
        (Some(key), false) => format!("{key} exists"),
        // Another invocation holds a fresh claim (or was stopped mid-create): failing keeps the
        // message for Lambda's retry instead of dropping it.
        (None, _) => {
            return Err(Error::Http {
                service: "jira",
                message: format!("the issue of {} is being opened by another invocation; retried", f.id),
            })
        }
    })
}
