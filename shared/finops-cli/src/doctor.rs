//! `finops doctor`: the deployment's preflight and health check, against the account and region
//! of the current credentials. Each check says ok, or what is wrong and the fix; any failure
//! makes the exit code 1. It changes nothing: every call is a read (one Cost Explorer request,
//! $0.01), the Slack webhook is sent an empty message, which Slack refuses without posting
//! (`no_text`) when the webhook is live, and only Amazon's own Bedrock models are asked (a first
//! call to a third-party model would subscribe the account to it).

use std::time::Duration;

use chrono::{Days, Utc};
use remediation::aws::Clients;
use remediation::http::HttpClient;
use remediation::policy::Policy;
use remediation::secrets::Secrets;
use serde_json::json;

/// What the doctor is told about the deployment (the stack's parameters that change what must hold).
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// The operator's secret (`SecretArn`).
    pub secret: Option<String>,
    /// The link secret (`<stack>/approval-links`).
    pub link_secret: Option<String>,
    /// The report-link secret (`<stack>/report-links`).
    pub report_link_secret: Option<String>,
    /// The approval function's own secret (`ApprovalSecretArn`); none: the one-secret layout.
    pub approval_secret: Option<String>,
    /// jira-sync's own secret (`JiraSecretArn`); none: the one-secret layout.
    pub jira_secret: Option<String>,
    /// `EnableConfigRules=true`: a configuration recorder must record.
    pub config_rules: bool,
    /// `ReserveConcurrency=true`: the quota must leave 100 unreserved beside the reservations.
    pub reserve_concurrency: bool,
    /// `SlackInteractive=true`: the signing secret must be there.
    pub slack_interactive: bool,
    /// Organisation mode's fan-out concurrency (`FanOutConcurrency`), when on.
    pub fanout_concurrency: Option<u32>,
    /// Member accounts whose role is tried (at most).
    pub member_sample: usize,
    /// Where Bedrock is asked (a stand-in in tests; AWS's endpoint otherwise).
    pub bedrock_endpoint: Option<String>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but a person should know (nothing fails).
    Note,
    Fail,
}

/// One check's result: what was checked, what was found, and (when not ok) the fix.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub found: String,
    pub fix: String,
}

fn ok(name: &'static str, found: impl Into<String>) -> Check {
    Check {
        name,
        verdict: Verdict::Ok,
        found: found.into(),
        fix: String::new(),
    }
}

fn note(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        verdict: Verdict::Note,
        found: found.into(),
        fix: fix.into(),
    }
}

fn fail(name: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        verdict: Verdict::Fail,
        found: found.into(),
        fix: fix.into(),
    }
}

/// AWS's error code and message, as a person reads them.
fn said<E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::fmt::Debug>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => "no answer from AWS (network or credentials)".to_string(),
    }
}

/// Every check, in the order a newcomer fixes them.
pub async fn run(clients: &Clients, policy: &Policy, asked: &Asked) -> Vec<Check> {
    let mut out = vec![identity(clients).await];
    out.push(config_recorder(clients, asked).await);
    out.push(cost_explorer(clients).await);
    out.push(concurrency(clients, asked).await);
    let secrets = secret(clients, policy, asked, &mut out).await;
    out.push(slack(&secrets).await);
    out.push(bedrock(clients, policy, asked).await);
    out.push(approvers(policy));
    if let Some(org) = &policy.organization {
        out.extend(member_roles(clients, org, asked).await);
    }
    out
}

/// Who may decide, as the policy says: named people, or anyone holding a link (a trial setting:
/// every function that mints links holds the key, so each could type an address too).
fn approvers(policy: &Policy) -> Check {
    const NAME: &str = "Approvers";
    let a = &policy.approvals;
    let named = format!(
        "{} Slack user(s), sign-in {}",
        a.slack_users.len(),
        if a.sign_in_admits_anyone() {
            "by address or domain"
        } else {
            "admits nobody"
        }
    );
    if a.anyone_with_link {
        note(
            NAME,
            format!("{named}; anyone_with_link: true (a typed address decides a one-approver request)"),
            "for trials only: every function that mints links could type an address too; list the people and set anyone_with_link: false in production",
        )
    } else {
        ok(NAME, named)
    }
}

async fn identity(clients: &Clients) -> Check {
    match clients.sts.get_caller_identity().send().await {
        Ok(who) => ok(
            "AWS credentials",
            format!(
                "{} in account {}, region {}",
                who.arn().unwrap_or("?"),
                who.account().unwrap_or("?"),
                clients.region
            ),
        ),
        Err(e) => fail(
            "AWS credentials",
            said(&e),
            "set AWS credentials and AWS_REGION for the account the stack is in",
        ),
    }
}

async fn config_recorder(clients: &Clients, asked: &Asked) -> Check {
    const NAME: &str = "AWS Config recorder";
    let status = clients
        .config_service
        .describe_configuration_recorder_status()
        .send()
        .await;
    let recording: Vec<String> = match &status {
        Ok(s) => s
            .configuration_recorders_status()
            .iter()
            .filter(|r| r.recording())
            .filter_map(|r| r.name().map(str::to_string))
            .collect(),
        Err(e) if asked.config_rules => {
            return fail(
                NAME,
                said(e),
                "allow config:DescribeConfigurationRecorderStatus, or check it in the console",
            )
        }
        Err(e) => return note(NAME, said(e), "needed only with EnableConfigRules=true"),
    };
    match (recording.is_empty(), asked.config_rules) {
        (false, _) => ok(NAME, format!("recording ({})", recording.join(", "))),
        (true, true) => fail(
            NAME,
            "no configuration recorder is recording in this region",
            "set up AWS Config in this region (a recorder that records S3 buckets, EC2 instances and volumes), or deploy with EnableConfigRules=false: creating the rules without one rolls the stack back",
        ),
        (true, false) => note(
            NAME,
            "none recording (fine: EnableConfigRules=false)",
            "the schedule sweeps find public buckets and missing tags without Config",
        ),
    }
}

async fn cost_explorer(clients: &Clients) -> Check {
    const NAME: &str = "Cost Explorer";
    let today = Utc::now().date_naive();
    let yesterday = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let interval = aws_sdk_costexplorer::types::DateInterval::builder()
        .start(yesterday.to_string())
        .end(today.to_string())
        .build();
    let Ok(interval) = interval else {
        return fail(NAME, "no date interval could be built", "report this as a bug");
    };
    // One request ($0.01, Cost Explorer's price per API request).
    let asked = clients
        .costexplorer
        .get_cost_and_usage()
        .time_period(interval)
        .granularity(aws_sdk_costexplorer::types::Granularity::Daily)
        .metrics("UnblendedCost")
        .send()
        .await;
    match asked {
        Ok(_) => ok(NAME, "enabled (yesterday's cost read; one request, $0.01)"),
        Err(e) => {
            let text = said(&e);
            if text.contains("DataUnavailable") {
                note(
                    NAME,
                    text,
                    "Cost Explorer was enabled recently: data appears within about 24 hours",
                )
            } else if text.to_ascii_lowercase().contains("not enabled") {
                fail(
                    NAME,
                    text,
                    "open Cost Explorer once in the AWS Billing console (the API cannot enable it); data appears within about 24 hours",
                )
            } else {
                fail(
                    NAME,
                    text,
                    "allow ce:GetCostAndUsage for these credentials, or enable Cost Explorer",
                )
            }
        }
    }
}

async fn concurrency(clients: &Clients, asked: &Asked) -> Check {
    const NAME: &str = "Lambda concurrency";
    let lambda = aws_sdk_lambda::Client::new(&clients.config);
    let settings = match lambda.get_account_settings().send().await {
        Ok(s) => s,
        Err(e) => {
            return fail(
                NAME,
                said(&e),
                "allow lambda:GetAccountSettings, or read it in the Lambda console",
            )
        }
    };
    let limit = settings.account_limit().map(|l| l.concurrent_executions()).unwrap_or(0);
    let unreserved = settings
        .account_limit()
        .and_then(|l| l.unreserved_concurrent_executions())
        .unwrap_or(limit);
    let needs = finops_checks::permissions::reserved_concurrency(asked.fanout_concurrency);
    let found = format!("account quota {limit}, unreserved {unreserved}");
    // Lambda keeps 100 unreserved: the stack's reservations must fit in what other functions of
    // the account have not reserved already, above that.
    let fits = i64::from(unreserved) >= i64::from(needs) + 100;
    match (asked.reserve_concurrency, fits) {
        (true, true) | (false, true) => ok(NAME, format!("{found} (ReserveConcurrency=true would reserve {needs})")),
        (true, false) => fail(
            NAME,
            format!("{found}: the stack reserves {needs} and Lambda keeps 100 unreserved"),
            format!(
                "deploy with ReserveConcurrency=false, or ask for a quota that leaves {} unreserved (Service Quotas, Lambda, Concurrent executions)",
                needs + 100
            ),
        ),
        (false, false) => note(
            NAME,
            found,
            format!("fine with ReserveConcurrency=false; true would need {} unreserved", needs + 100),
        ),
    }
}

/// The secret's and the link secret's keys, as the functions need them; the parsed secret.
async fn secret(clients: &Clients, policy: &Policy, asked: &Asked, out: &mut Vec<Check>) -> Option<Secrets> {
    const NAME: &str = "Secret";
    let Some(id) = asked.secret.as_deref() else {
        out.push(fail(
            NAME,
            "no secret named",
            "pass --secret or set FINOPS_SECRET_ID (the stack's SecretArn)",
        ));
        return None;
    };
    let parsed = match Secrets::load(&aws_sdk_secretsmanager::Client::new(&clients.config), id).await {
        Ok(s) => s,
        Err(e) => {
            out.push(fail(
                NAME,
                e.to_string(),
                "create it (README, Deploy) and give these credentials secretsmanager:GetSecretValue on it",
            ));
            return None;
        }
    };
    let sm = aws_sdk_secretsmanager::Client::new(&clients.config);
    // Each function's keys, from its own secret when it has one, else from the shared one.
    let own = |id: Option<&str>| {
        let sm = sm.clone();
        let id = id.map(str::to_string);
        async move {
            match id {
                None => Ok(None),
                Some(id) => Secrets::load(&sm, &id).await.map(|s| Some((id, s))),
            }
        }
    };
    let approval = match own(asked.approval_secret.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            out.push(fail(
                "Approval secret",
                e.to_string(),
                "the ApprovalSecretArn parameter's secret (finops secrets split writes it)",
            ));
            return Some(parsed);
        }
    };
    let jira = match own(asked.jira_secret.as_deref()).await {
        Ok(j) => j,
        Err(e) => {
            out.push(fail(
                "Jira secret",
                e.to_string(),
                "the JiraSecretArn parameter's secret (finops secrets split writes it)",
            ));
            return Some(parsed);
        }
    };
    let mut missing = Vec::new();
    if parsed.slack_webhook_url.is_none() && (parsed.slack_bot_token.is_none() || parsed.slack_channel.is_none()) {
        missing.push(format!(
            "{id} lacks slack_webhook_url (or slack_bot_token and slack_channel)"
        ));
    }
    let (approval_id, approval_keys) = approval.as_ref().map_or((id, &parsed), |(i, s)| (i.as_str(), s));
    if asked.slack_interactive && approval_keys.slack_signing_secret.is_none() {
        missing.push(format!(
            "{approval_id} lacks slack_signing_secret (SlackInteractive=true)"
        ));
    }
    if policy.approvals.oidc.is_some() && approval_keys.oidc_client_secret.is_none() {
        missing.push(format!(
            "{approval_id} lacks oidc_client_secret (approvals.oidc is set)"
        ));
    }
    let (jira_id, jira_keys) = jira.as_ref().map_or((id, &parsed), |(i, s)| (i.as_str(), s));
    if !policy.jira.site_url.trim().is_empty() && (jira_keys.jira_email.is_none() || jira_keys.jira_api_token.is_none())
    {
        missing.push(format!(
            "{jira_id} lacks jira_email and jira_api_token (jira.site_url is set)"
        ));
    }
    if missing.is_empty() {
        out.push(ok(NAME, format!("{id}: every key its functions read is there")));
    } else {
        out.push(fail(NAME, missing.join("; "), "add the keys to the secret's JSON"));
    }
    // Who can read what: a key left in Slack's secret is readable by slack-notify.
    let shared: Vec<&str> = [
        ("slack_signing_secret", parsed.slack_signing_secret.is_some()),
        ("oidc_client_secret", parsed.oidc_client_secret.is_some()),
        ("jira_api_token", parsed.jira_api_token.is_some()),
        ("link_signing_key", parsed.link_signing_key.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    match (approval.is_some(), shared.is_empty()) {
        (false, _) => out.push(note(
            "Secrets per function",
            format!("one secret ({id}) for slack-notify, the approval function and jira-sync"),
            "finops secrets split --from <SecretArn> --approval <stack>/approval [--jira <stack>/jira], deploy with the parameters it prints, then run it again with --prune",
        )),
        (true, false) => out.push(fail(
            "Secrets per function",
            format!("{id} (slack-notify's) still holds {}", shared.join(", ")),
            "finops secrets split ... --prune (after deploying with ApprovalSecretArn and JiraSecretArn)",
        )),
        (true, true) => out.push(ok(
            "Secrets per function",
            "Slack's delivery, the approval function's and jira-sync's credentials apart",
        )),
    }
    if let Some(link) = asked.link_secret.as_deref() {
        match Secrets::load(&aws_sdk_secretsmanager::Client::new(&clients.config), link).await {
            Ok(l) if l.link_signing_key.as_ref().is_some_and(|k| k.len() >= 32) && l.approval_url.is_some() => {
                out.push(ok("Link secret", format!("{link}: the link key and the approval URL")))
            }
            Ok(_) => out.push(fail(
                "Link secret",
                format!("{link} lacks link_signing_key (32 bytes or more) or approval_url"),
                "the template generates both: redeploy, or restore the secret",
            )),
            Err(e) => out.push(fail(
                "Link secret",
                e.to_string(),
                "the stack's <stack>/approval-links secret",
            )),
        }
    }
    if let Some(report) = asked.report_link_secret.as_deref() {
        match Secrets::load(&aws_sdk_secretsmanager::Client::new(&clients.config), report).await {
            Ok(r) if r.report_link_key.as_ref().is_some_and(|k| k.len() >= 32) && r.approval_url.is_some() => {
                out.push(ok(
                    "Report-link secret",
                    format!("{report}: the report links' key and the approval URL"),
                ))
            }
            Ok(_) => out.push(fail(
                "Report-link secret",
                format!("{report} lacks report_link_key (32 bytes or more) or approval_url"),
                "the template generates both: redeploy, or restore the secret",
            )),
            Err(e) => out.push(fail(
                "Report-link secret",
                e.to_string(),
                "the stack's <stack>/report-links secret: without it the weekly report is not sent",
            )),
        }
    }
    Some(parsed)
}

/// The webhook is sent an empty message: a live webhook refuses it without posting (400
/// `no_text` or `invalid_payload`); a revoked or wrong one says so (403, 404, 410). A bot token is
/// checked with `auth.test`.
async fn slack(secrets: &Option<Secrets>) -> Check {
    const NAME: &str = "Slack";
    let Some(s) = secrets else {
        return fail(
            NAME,
            "not checked: the secret could not be read",
            "fix the secret first",
        );
    };
    let Ok(http) = HttpClient::new(Duration::from_secs(10)) else {
        return fail(NAME, "no HTTP client", "report this as a bug");
    };
    if let Some(url) = &s.slack_webhook_url {
        let answer = http
            .send(
                "slack",
                "POST",
                url,
                &[("content-type", "application/json")],
                b"{}".to_vec(),
            )
            .await;
        return match answer {
            Ok(r) if r.status == 400 && (r.body.contains("no_text") || r.body.contains("invalid_payload")) => ok(
                NAME,
                "the webhook answers (an empty test message was refused, nothing posted)",
            ),
            Ok(r) => fail(
                NAME,
                format!("the webhook answered {} {}", r.status, r.body.trim()),
                "create a new incoming webhook for the channel and put it in slack_webhook_url",
            ),
            // The error names the URL, which is the secret itself: never printed.
            Err(e) => fail(
                NAME,
                format!(
                    "the webhook could not be reached ({})",
                    e.to_string().replace(url.as_str(), "<webhook>")
                ),
                "check that this network reaches hooks.slack.com and that slack_webhook_url is a URL",
            ),
        };
    }
    if let Some(token) = &s.slack_bot_token {
        let api = std::env::var("FINOPS_SLACK_API_BASE").unwrap_or_else(|_| "https://slack.com/api".into());
        let auth = format!("Bearer {token}");
        let answer = http
            .send(
                "slack",
                "POST",
                &format!("{api}/auth.test"),
                &[("authorization", auth.as_str())],
                vec![],
            )
            .await;
        return match answer {
            Ok(r) if r.body.contains("\"ok\":true") => ok(NAME, "the bot token is valid (auth.test)"),
            Ok(r) => fail(
                NAME,
                format!("auth.test answered {}", r.body.trim()),
                "put a valid bot token in slack_bot_token",
            ),
            Err(e) => fail(NAME, e.to_string(), "check that this network reaches slack.com"),
        };
    }
    fail(
        NAME,
        "no webhook and no bot token",
        "add slack_webhook_url to the secret",
    )
}

async fn bedrock(clients: &Clients, policy: &Policy, asked: &Asked) -> Check {
    const NAME: &str = "Bedrock model";
    let model = policy.rightsizing.bedrock_model_id.trim();
    if model.is_empty() {
        return ok(NAME, "none configured: the rules explain rightsizing");
    }
    // A third-party model's first call subscribes the account to it (AWS Marketplace): the doctor
    // changes nothing, so it asks Amazon's own models only.
    let amazons = model.starts_with("amazon.") || model.split_once('.').is_some_and(|(_, m)| m.starts_with("amazon."));
    if !amazons {
        return note(
            NAME,
            format!("{model}: not called (a first call to a third-party model subscribes the account to it)"),
            "its first use needs aws-marketplace:Subscribe and ViewSubscriptions (and Anthropic's use-case form); rightsizing falls back to the rules until then",
        );
    }
    let mut config = aws_sdk_bedrockruntime::config::Builder::from(&clients.config);
    if let Some(endpoint) = &asked.bedrock_endpoint {
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_bedrockruntime::Client::from_conf(config.build());
    let message = aws_sdk_bedrockruntime::types::Message::builder()
        .role(aws_sdk_bedrockruntime::types::ConversationRole::User)
        .content(aws_sdk_bedrockruntime::types::ContentBlock::Text(
            "Answer with the word ok.".into(),
        ))
        .build();
    let Ok(message) = message else {
        return fail(NAME, "no request could be built", "report this as a bug");
    };
    let limit = aws_sdk_bedrockruntime::types::InferenceConfiguration::builder()
        .max_tokens(5)
        .build();
    match client
        .converse()
        .model_id(model)
        .messages(message)
        .inference_config(limit)
        .send()
        .await
    {
        Ok(_) => ok(NAME, format!("{model} answers")),
        Err(e) => {
            let text = said(&e);
            let fix = if text.contains("aws-marketplace") || text.contains("use case") {
                "a third-party model needs aws-marketplace:Subscribe and ViewSubscriptions on its first call (and Anthropic's use-case form): or use the default, Amazon's global.amazon.nova-2-lite-v1:0"
            } else if text.contains("end of its life")
                || text.contains("ResourceNotFound")
                || text.contains("Validation")
            {
                "choose an active model or inference profile in rightsizing.bedrock_model_id (the default: global.amazon.nova-2-lite-v1:0)"
            } else {
                "allow bedrock:InvokeModel on the model, or set rightsizing.bedrock_model_id to \"\" (the rules explain)"
            };
            note(
                NAME,
                format!("{model}: {text} (rightsizing falls back to the rules)"),
                fix,
            )
        }
    }
}

async fn member_roles(clients: &Clients, org: &remediation::policy::OrganizationPolicy, asked: &Asked) -> Vec<Check> {
    const NAME: &str = "Member roles";
    let (hub, partition) = match clients.identity().await {
        Ok(i) => (i.account, i.partition),
        Err(e) => return vec![fail(NAME, e.to_string(), "fix the AWS credentials first")],
    };
    let accounts: Vec<String> = if org.accounts.is_empty() {
        let organizations = aws_sdk_organizations::Client::new(&clients.config);
        match organizations.list_accounts().send().await {
            Ok(l) => l
                .accounts()
                .iter()
                .filter(|a| a.status().map(|s| s.as_str()) == Some("ACTIVE"))
                .filter_map(|a| a.id().map(str::to_string))
                .filter(|id| *id != hub)
                .collect(),
            Err(e) => {
                return vec![fail(
                    NAME,
                    said(&e),
                    "run from the management account or a delegated administrator (organizations:ListAccounts)",
                )]
            }
        }
    } else {
        org.accounts.clone()
    };
    let mut out = Vec::new();
    for account in accounts.iter().take(asked.member_sample.max(1)) {
        let arn = format!("arn:{partition}:iam::{account}:role/{}", org.role_name);
        let mut assume = clients
            .sts
            .assume_role()
            .role_arn(&arn)
            .role_session_name("finops-doctor")
            .duration_seconds(900);
        if !org.external_id.is_empty() {
            assume = assume.external_id(&org.external_id);
        }
        out.push(match assume.send().await {
            Ok(_) => ok(NAME, format!("{arn} can be assumed")),
            // The member role trusts only the stack's function roles (role/finops-autopilot/*):
            // a person's credentials are refused whether or not the role is there.
            Err(e) if said(&e).contains("AccessDenied") => note(
                NAME,
                format!("{arn}: not assumable with these credentials ({})", said(&e)),
                "expected when run as a person: the role trusts only the stack's functions; the fan-out's run in finops status shows whether they reach it",
            ),
            Err(e) => fail(
                NAME,
                format!("{arn}: {}", said(&e)),
                "deploy infra/member-role.yaml to the account (StackSets) with this hub's account and the external id",
            ),
        });
    }
    if out.is_empty() {
        out.push(note(
            NAME,
            "no member account to try",
            "organization.accounts or the organisation lists none",
        ));
    }
    out
}

/// The checks as a person reads them: one line each, the fix beneath what is not ok.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in checks {
        let mark = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Note => "note",
            Verdict::Fail => "FAIL",
        };
        out.push_str(&format!("{mark}  {:width$}  {}\n", c.name, c.found));
        if c.verdict != Verdict::Ok && !c.fix.is_empty() {
            out.push_str(&format!("      {:width$}  fix: {}\n", "", c.fix));
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    out.push_str(&if failed == 0 {
        "\nEverything the deployment needs is in place.\n".to_string()
    } else {
        format!("\n{failed} check(s) failed: fix them, then run finops doctor again.\n")
    });
    out
}

/// The checks as JSON, for scripts.
pub fn to_json(checks: &[Check]) -> serde_json::Value {
    json!(checks
        .iter()
        .map(|c| json!({
            "check": c.name,
            "verdict": match c.verdict { Verdict::Ok => "ok", Verdict::Note => "note", Verdict::Fail => "fail" },
            "found": c.found,
            "fix": c.fix,
        }))
        .collect::<Vec<_>>())
}
