//! The approval function's three triggers:
//! - its Function URL: `GET /decide?token=` (confirmation page, no change), `POST /decide`
//!   (the page's form: decide), `GET /request?id=` (the page a Jira issue links to: no token, a
//!   sign-in), `GET /oidc/start` and `GET /oidc/callback` (the sign-in round trip),
//!   `POST /slack/actions` (Slack interactivity, signed);
//! - SNS `approval-result` with status `approved` (a Slack approval, executed here);
//! - an EventBridge schedule: expire pending requests, execute approvals the emergency stop held,
//!   resolve executions that never finished.
//!
//! Every link's base is the deployment's approval URL (the link secret, or `FINOPS_APPROVAL_URL`
//! locally), never a request's `Host` or `domainName` nor a field of a message.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use chrono::{DateTime, Utc};
use finops_checks::executor::AwsExecutor;
use lambda_runtime::LambdaEvent;
use remediation::approval::{Decision, LinkSigner};
use remediation::config::Deps;
use remediation::decide::{Approvals, Preview, Verdict};
use remediation::http::HttpClient;
use remediation::notify::Message;
use remediation::oidc::Provider;
use remediation::policy::Approver;
use remediation::state::sign_in::{Session, SignIn, SIGN_IN_MINUTES};
use remediation::Error;
use serde_json::{json, Value};

use crate::page;

/// The largest request body read (Slack's payloads are a few KB; the page's form less).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The identity provider's configuration, and the provider once discovered.
pub struct SignInSetup {
    policy: remediation::policy::OidcPolicy,
    client_secret: String,
    provider: tokio::sync::OnceCell<Provider>,
}

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    /// Signs and checks links; its base is the deployment's approval URL.
    links: LinkSigner,
    /// Seals ballots and sign-ins with the decision key, which only this function reads.
    pub sealer: remediation::approval::Sealer,
    /// Slack's signing secret; without it Slack requests are refused.
    pub slack_signing_secret: Option<Vec<u8>>,
    pub executor: AwsExecutor,
    /// The identity provider, when `approvals.oidc` is configured (its discovery document is read
    /// at the first sign-in, so a provider that is down stops sign-ins only, not Slack decisions,
    /// executions or the sweeps).
    pub oidc: Option<SignInSetup>,
    /// Outbound HTTP to the identity provider.
    pub http: HttpClient,
    /// Outbound HTTP to Slack's `users.info`: short, as Slack waits 3 s for the whole answer.
    pub slack_http: HttpClient,
    /// Slack's Web API base (`https://slack.com/api`; tests point it at a stand-in).
    pub slack_api_base: String,
}

impl App {
    /// Checks that the deps have what approvals need (the table, the link-signing key and the
    /// deployment's own URL) and reads the identity provider's discovery document when one is
    /// configured.
    pub async fn new(deps: Deps) -> Result<App, Error> {
        if deps.state.is_none() {
            return Err(Error::Config(
                "the approval function needs the state table (FINOPS_TABLE)".into(),
            ));
        }
        let links = deps.links.clone().ok_or_else(|| {
            Error::Config(format!(
                "the approval function needs the link-signing key and its own URL: link_signing_key and approval_url in the link secret ({}), or {} and {} for a local run",
                remediation::secrets::LINK_SECRET_ID_VAR,
                remediation::config::LINK_KEY_VAR,
                remediation::config::APPROVAL_URL_VAR,
            ))
        })?;
        let sealer = deps
            .secrets
            .decision_key
            .clone()
            .or_else(|| std::env::var(remediation::config::DECISION_KEY_VAR).ok().filter(|k| !k.trim().is_empty()))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the approval function needs its decision key: decision_key in its own secret ({}), or {} for a local run",
                    remediation::secrets::DECISION_SECRET_ID_VAR,
                    remediation::config::DECISION_KEY_VAR,
                ))
            })
            .and_then(|k| remediation::approval::Sealer::new(k.into_bytes()))?;
        let http = HttpClient::new(Duration::from_secs(5))?;
        let oidc = match &deps.policy.approvals.oidc {
            None => None,
            Some(o) => Some(SignInSetup {
                policy: o.clone(),
                client_secret: deps.secrets.oidc_client_secret.clone().ok_or_else(|| {
                    Error::Config("approvals.oidc is set but the secret has no oidc_client_secret".into())
                })?,
                provider: tokio::sync::OnceCell::new(),
            }),
        };
        let executor = AwsExecutor {
            clients: deps.clients.clone(),
            policy: deps.policy.clone(),
        };
        Ok(App {
            slack_signing_secret: deps.secrets.slack_signing_secret.clone().map(String::into_bytes),
            links,
            sealer,
            executor,
            oidc,
            http,
            slack_http: HttpClient::new(Duration::from_millis(1500))?,
            slack_api_base: "https://slack.com/api".into(),
            deps,
        })
    }

    fn approvals(&self) -> Result<Approvals<'_>, Error> {
        let state = self
            .deps
            .state
            .as_ref()
            .ok_or_else(|| Error::Config("no state table".into()))?;
        Ok(Approvals {
            store: state,
            state,
            publisher: self.deps.publisher.as_ref().map(|p| p as _),
            links: &self.links,
            sealer: &self.sealer,
            policy: &self.deps.policy,
            executor: &self.executor,
            checks: &finops_checks::CATALOG,
        })
    }

    /// The identity provider, discovered at its first use (a failed discovery is tried again at
    /// the next sign-in). `None`: no sign-in is configured.
    async fn provider(&self) -> Option<Result<&Provider, Error>> {
        let setup = self.oidc.as_ref()?;
        Some(
            setup
                .provider
                .get_or_try_init(|| Provider::discover(self.http.clone(), &setup.policy, setup.client_secret.clone()))
                .await,
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.links.base_url())
    }
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, app: &App) -> Result<Value, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, app, Utc::now())).await
}

/// Dispatches on the event's shape.
pub async fn handle(payload: Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    if payload.get("requestContext").is_some() && payload.get("rawPath").is_some() {
        return Ok(match serde_json::from_value::<LambdaFunctionUrlRequest>(payload) {
            Ok(req) => http(&req, app, now).await,
            Err(e) => {
                // serde's message may quote a value (a token): its category and place only.
                tracing::warn!(kind = ?e.classify(), line = e.line(), column = e.column(), "an unreadable Function URL request");
                bad_request("the request could not be read")
            }
        });
    }
    if payload.get("Records").is_some() {
        return sns(&payload, app, now).await;
    }
    let trigger = remediation::events::scheduled(&payload).map_err(|e| {
        Error::Event(format!(
            "neither a Function URL request, an SNS event nor a scheduled event ({e})"
        ))
    })?;
    let approvals = app.approvals()?;
    // Each sweep runs even when another fails; the invocation fails if any did.
    let expired = approvals.expire(now).await;
    let executed = approvals.execute_waiting(now).await;
    let resolved = approvals.resolve_stale(now).await;
    let confirmed = approvals.confirm_unverified(now).await;
    let (expired, executed, resolved, confirmed) = (expired?, executed?, resolved?, confirmed?);
    tracing::info!(account = %trigger.account, expired, executed, resolved, confirmed, "hourly sweep");
    Ok(
        json!({"expired": expired, "executed_approved": executed, "resolved_stale": resolved, "settled_unverified": confirmed}),
    )
}

/// Executes Slack-approved requests delivered by SNS. Anything else on the topic is ignored
/// (the subscription's filter policy should not send it).
async fn sns(payload: &Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    let mut results = Vec::new();
    for (_, message) in remediation::notify::from_sns_event(payload)? {
        match message {
            Message::ApprovalResult { request_id, status, .. } if status == "approved" => {
                let v = app.approvals()?.execute_approved(&request_id, now).await;
                tracing::info!(request_id = %request_id, status = v.status, title = %v.title, "executed on SNS");
                // 503: the state could not be reached. Fail, so Lambda retries (then the
                // on-failure destination keeps it). Under the emergency stop the request stays
                // `approved` and the hourly sweep executes it once the stop is off.
                if v.status == 503 && v.title != "Emergency stop is on" {
                    return Err(Error::Http {
                        service: "approval",
                        message: format!("request {request_id}: {}", v.message),
                    });
                }
                results.push(json!({"request_id": request_id, "status": v.status, "result": v.title}));
            }
            other => results.push(json!({"ignored": other.kind()})),
        }
    }
    Ok(json!({"results": results}))
}

/// Every page's headers: never cached, never framed, no referrer (a URL may hold a token).
fn response(status: u16, content_type: &str, body: String) -> Value {
    json!({
        "statusCode": status,
        "headers": {
            "content-type": content_type,
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

fn redirect(location: &str) -> Value {
    let mut r = response(302, "text/plain; charset=utf-8", "Signing in…".into());
    r["headers"]["location"] = json!(location);
    r
}

/// The cookie that binds a sign-in to the browser that started it, one per sign-in (two tabs may
/// sign in at once): `__Host-` (Secure, this host only, path `/`), HttpOnly, SameSite=Lax (it
/// comes back on the provider's top-level redirect to the callback).
fn sign_in_cookie_name(state: &str) -> String {
    // A digest of the state (base64url, ASCII): the state itself is never a cookie name.
    let tag: String = remediation::oidc::challenge(state).chars().take(12).collect();
    format!("__Host-finops-sign-in-{tag}")
}

fn sign_in_cookie(state: &str, value: &str, max_age: i64) -> String {
    format!(
        "{}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}",
        sign_in_cookie_name(state)
    )
}

/// The value of cookie `name` the request carries (the Function URL's `cookies`, or a `Cookie`
/// header).
fn cookie(req: &LambdaFunctionUrlRequest, name: &str) -> Option<String> {
    let from_header = req
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::to_string);
    req.cookies.iter().flatten().cloned().chain(from_header).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// The weekly report a signed report link names (savings-report mints them with the report-link key):
/// read from the report bucket and shown. A GET that changes nothing; an expired, forged or
/// foreign link shows why and nothing else.
async fn report(app: &App, query: &HashMap<String, String>, now: DateTime<Utc>) -> Value {
    let Some(token) = query.get("token") else {
        return bad_request("the link has no token");
    };
    // The report-link key alone: a report link is never a decision's, and no other key (the
    // approval links' own, or one they replaced) makes one.
    let Some(report_links) = &app.deps.report_links else {
        return html(&Verdict {
            status: 404,
            title: "Reports are not served here".into(),
            message: "This deployment has no report-link key (FINOPS_REPORT_LINK_SECRET_ID).".into(),
        });
    };
    let claims = match report_links.verify_report(token, now) {
        Ok(c) => c,
        Err(remediation::approval::TokenError::Expired) => {
            return html(&Verdict {
                status: 410,
                title: "This report link has expired".into(),
                message: "The weekly message in Slack has a link to the newest report.".into(),
            })
        }
        Err(_) => {
            return html(&Verdict {
                status: 403,
                title: "Not a report link".into(),
                message: "This link was not made by this deployment's weekly report.".into(),
            })
        }
    };
    let bucket = remediation::config::report_bucket(&app.deps.policy);
    let missing = || {
        html(&Verdict {
            status: 404,
            title: "Report not found".into(),
            message: "The report this link names is no longer kept (reports expire after 400 days).".into(),
        })
    };
    if bucket.is_empty() {
        return missing();
    }
    match remediation::aws::s3::object_text(&app.deps.clients, &bucket, &claims.key).await {
        Ok(Some(body)) => response(200, "text/html; charset=utf-8", body),
        Ok(None) => missing(),
        // Without s3:ListBucket, S3 answers a missing key with 403, not 404.
        Err(e) if e.to_string().contains("AccessDenied") => {
            tracing::warn!(error = %e, key = %claims.key, "the report is missing or not readable");
            missing()
        }
        Err(e) => {
            tracing::error!(error = %e, key = %claims.key, "the report could not be read");
            html(&Verdict {
                status: 503,
                title: "The report cannot be shown right now".into(),
                message: "Reading it from S3 failed; try again in a minute.".into(),
            })
        }
    }
}

fn html(v: &Verdict) -> Value {
    response(v.status, "text/html; charset=utf-8", page::result(v))
}

fn bad_request(message: &str) -> Value {
    html(&Verdict {
        status: 400,
        title: "Bad request".into(),
        message: format!("{message}; nothing was changed."),
    })
}

/// Parses a query string or form body; `None` if it is not valid UTF-8 form encoding.
pub fn form(bytes: &[u8]) -> Option<HashMap<String, String>> {
    std::str::from_utf8(bytes).ok()?;
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        // `parse` replaces bad escapes silently; a replacement character means the input was not UTF-8.
        if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
            return None;
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Some(out)
}

/// An address as people type theirs: a local part of letters, digits and `. _ % + - '`, and a
/// domain of at least two labels (letters, digits, inner hyphens) ending in a letters-only TLD.
/// Stricter than RFC 5322 on purpose: nothing Slack reads as markup (`<`, `>`, `|`, `!`, `*`) or a
/// page reads as HTML gets into the audit trail as a "person".
fn plausible_email(e: &str) -> bool {
    let e = e.trim();
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    e.len() <= 254
        && (1..=64).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\''))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

use remediation::approval::plausible_id;

/// A sign-in's `state` or a session id as this function makes them (random, URL-safe).
fn plausible_nonce(id: &str) -> bool {
    (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decision_of(s: &str) -> Option<Decision> {
    match s {
        "approve" => Some(Decision::Approve),
        "reject" => Some(Decision::Reject),
        "rollback" => Some(Decision::Rollback),
        _ => None,
    }
}

fn decision_param(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::Rollback => "rollback",
    }
}

async fn http(req: &LambdaFunctionUrlRequest, app: &App, now: DateTime<Utc>) -> Value {
    let method = req
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let path = req.raw_path.as_deref().unwrap_or("/");
    let query = form(req.raw_query_string.as_deref().unwrap_or("").as_bytes());
    let raw_body = req.body.as_deref().unwrap_or("");
    if raw_body.len() > MAX_BODY_BYTES * 2 {
        return bad_request("the request is too large");
    }
    let body: Vec<u8> = if req.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(raw_body) {
            Ok(b) => b,
            Err(_) => return bad_request("the body is not valid base64"),
        }
    } else {
        raw_body.as_bytes().to_vec()
    };
    if body.len() > MAX_BODY_BYTES {
        return bad_request("the request is too large");
    }
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let approvals = match app.approvals() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "not configured");
            return html(&Verdict {
                status: 500,
                title: "Not available".into(),
                message: "This approval service is not configured to decide; nothing was changed.".into(),
            });
        }
    };
    let Some(query) = query else {
        return bad_request("the address is not valid");
    };
    match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/decide") => {
            let Some(token) = query.get("token") else {
                return bad_request("the link has no token");
            };
            let ways = |_| page::Ways {
                action: app.url("/decide"),
                token: Some(token.clone()),
                sign_in: app
                    .oidc
                    .as_ref()
                    .map(|_| app.url(&format!("/oidc/start?token={}", enc(token)))),
                typed: app.deps.policy.approvals.anyone_with_link,
                ..page::Ways::default()
            };
            preview_page(approvals.preview(token, now).await, true, ways)
        }
        ("GET", "/request") => {
            // The page a Jira issue links to: no token, a decision only after a sign-in.
            let (rid, d) = match (query.get("id"), query.get("action")) {
                (Some(id), _) => (
                    id.clone(),
                    decision_of(query.get("d").map_or("approve", String::as_str)),
                ),
                (None, Some(action)) => (action.clone(), Some(Decision::Rollback)),
                (None, None) => return bad_request("the address names no request"),
            };
            let Some(d) = d else {
                return bad_request("the address names no decision");
            };
            if !plausible_id(&rid) {
                return bad_request("the address names no request this service makes");
            }
            let ways = |decision| page::Ways {
                action: app.url("/decide"),
                sign_in: app
                    .oidc
                    .as_ref()
                    .map(|_| app.url(&format!("/oidc/start?rid={}&d={}", enc(&rid), decision_param(decision)))),
                ..page::Ways::default()
            };
            // Nobody has signed in yet: how many approved, not who.
            preview_page(approvals.preview_of(&rid, d, now).await, false, ways)
        }
        ("GET", "/report") => report(app, &query, now).await,
        ("GET", "/oidc/start") => sign_in_start(app, &approvals, &query, now).await,
        ("GET", "/oidc/callback") => sign_in_callback(app, &approvals, req, &query, now).await,
        ("POST", "/decide") => {
            let Some(fields) = form(&body) else {
                return bad_request("the form is not valid");
            };
            // The page's confirmation of a rollback that re-exposes data under the emergency stop.
            let form = remediation::decide::Form {
                confirmed_under_stop: fields.get(page::CONFIRM_FIELD).is_some_and(|v| v == "yes"),
                shown: fields.get(page::SHOWN_FIELD).cloned(),
            };
            // After a sign-in: the session the callback kept on the server says who and what.
            if let Some(id) = fields.get("session") {
                if !plausible_nonce(id) {
                    return bad_request("the form's sign-in is not one this service makes");
                }
                let Some(store) = app.deps.state.as_ref() else {
                    return html(&unavailable());
                };
                return match store.take_session(id, now, &app.sealer).await {
                    Ok(Some(s)) => html(&approvals.decide_signed_in(&s.rid, s.d, &s.who, &form, now).await),
                    Ok(None) => html(&Verdict {
                        status: 410,
                        title: "Sign-in expired".into(),
                        message: format!(
                            "This sign-in was used already or is older than {SIGN_IN_MINUTES} minutes; open the link and sign in again. Nothing was changed."
                        ),
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "session unreadable");
                        html(&unavailable())
                    }
                };
            }
            let Some(token) = fields.get("token") else {
                return bad_request("the form has no token");
            };
            // A shared link proves nothing about who follows it: the typed address is recorded as
            // unverified (and refused unless the policy lets anyone with the link decide).
            let approver = fields.get("approver").map(|a| a.trim()).unwrap_or("");
            if !plausible_email(approver) {
                return bad_request("give your email address, so the audit trail says who decided");
            }
            let who = Approver::Unverified {
                email: approver.to_string(),
            };
            html(&approvals.decide_link(token, &who, &form, now).await)
        }
        ("POST", "/slack/actions") => slack(&approvals, app, &header, &body, now).await,
        _ => html(&Verdict {
            status: 404,
            title: "Not found".into(),
            message: "This address is not something this service answers.".into(),
        }),
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The confirmation page of `preview` with the ways `ways` offers for its decision (and who
/// approved so far when `show_approvers`), or the page of its refusal.
fn preview_page(preview: Preview, show_approvers: bool, ways: impl FnOnce(Decision) -> page::Ways) -> Value {
    match preview {
        Preview::Refused(v) => html(&v),
        Preview::Confirm {
            decision,
            finding,
            approvers,
            have,
            required,
            expires_at,
            confirm_because,
            will_do,
            shown,
        } => {
            let approvers = if show_approvers { approvers } else { Vec::new() };
            response(
                200,
                "text/html; charset=utf-8",
                page::confirm(&page::Confirm {
                    decision,
                    finding: &finding,
                    approvers: &approvers,
                    have,
                    required,
                    expires: expires_at.map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string()),
                    confirm_because: confirm_because.as_deref(),
                    will_do: will_do.as_deref(),
                    shown: shown.as_deref(),
                    ways: ways(decision),
                }),
            )
        }
    }
}

fn no_sign_in() -> Value {
    html(&Verdict {
        status: 404,
        title: "Sign-in not configured".into(),
        message: "This deployment has no identity provider: decide in Slack. Nothing was changed.".into(),
    })
}

/// Starts a sign-in for a decision named by a token or by `rid` and `d`: records state, nonce
/// and PKCE verifier, and sends the browser to the provider.
/// The provider, or the page that says why there is none.
async fn provider_or_page(app: &App) -> Result<&Provider, Value> {
    match app.provider().await {
        None => Err(no_sign_in()),
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => {
            tracing::error!(error = %e, "the identity provider cannot be reached");
            Err(html(&Verdict {
                status: 503,
                title: "Sign-in unavailable".into(),
                message: "The identity provider cannot be reached just now; nothing was changed. Try again later, or decide in Slack.".into(),
            }))
        }
    }
}

async fn sign_in_start(app: &App, approvals: &Approvals<'_>, q: &HashMap<String, String>, now: DateTime<Utc>) -> Value {
    let provider = match provider_or_page(app).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    // A sign-in that admits nobody would only waste the person's time (and, tokenless, it would
    // let anyone start one for any request).
    if !app.deps.policy.approvals.sign_in_admits_anyone() {
        return html(&Verdict {
            status: 403,
            title: "Sign-in admits nobody".into(),
            message: "No address or domain is listed for sign-ins (approvals.emails, approvals.email_domains); decide in Slack. Nothing was changed.".into(),
        });
    }
    let (rid, d) = match (q.get("token"), q.get("rid"), q.get("d").and_then(|d| decision_of(d))) {
        (Some(token), _, _) => match app.links.verify(token, now) {
            Ok(c) => (c.rid, c.d),
            Err(_) => return bad_request("the link is not valid"),
        },
        (None, Some(rid), Some(d)) => (rid.clone(), d),
        _ => return bad_request("the address names no decision"),
    };
    if !plausible_id(&rid) {
        return bad_request("the address names no request this service makes");
    }
    // Only for something that can still be decided.
    if let Preview::Refused(v) = approvals.preview_of(&rid, d, now).await {
        return html(&v);
    }
    let (Ok(state), Ok(nonce), Ok(verifier), Ok(browser)) = (
        remediation::oidc::random(),
        remediation::oidc::random(),
        remediation::oidc::random(),
        remediation::oidc::random(),
    ) else {
        return html(&unavailable());
    };
    let Some(store) = app.deps.state.as_ref() else {
        return html(&unavailable());
    };
    let sign_in = SignIn {
        rid,
        d,
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        started_at: now,
        browser: browser.clone(),
    };
    if let Err(e) = store.start_sign_in(&state, &sign_in, &app.sealer).await {
        tracing::error!(error = %e, "sign-in not recorded");
        return html(&unavailable());
    }
    let mut r = redirect(&provider.authorize_url(&app.url("/oidc/callback"), &state, &nonce, &verifier));
    r["cookies"] = json!([sign_in_cookie(&state, &browser, SIGN_IN_MINUTES * 60)]);
    r
}

fn unavailable() -> Verdict {
    Verdict {
        status: 503,
        title: "Try again".into(),
        message: "The sign-in could not be started just now; nothing was changed. Try again in a minute.".into(),
    }
}

fn sign_in_refused(message: &str) -> Value {
    html(&Verdict {
        status: 403,
        title: "Sign-in refused".into(),
        message: format!("{message}; nothing was changed."),
    })
}

/// The provider sends the browser back here: takes the sign-in (once), exchanges the code,
/// verifies the ID token and shows the confirmation as the person it proves.
async fn sign_in_callback(
    app: &App,
    approvals: &Approvals<'_>,
    req: &LambdaFunctionUrlRequest,
    q: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Value {
    let page = sign_in_callback_page(app, approvals, req, q, now).await;
    // The binding cookie is spent whatever the outcome.
    match (q.get("state"), page) {
        (Some(state), mut page) if plausible_nonce(state) => {
            page["cookies"] = json!([sign_in_cookie(state, "", 0)]);
            page
        }
        (_, page) => page,
    }
}

async fn sign_in_callback_page(
    app: &App,
    approvals: &Approvals<'_>,
    req: &LambdaFunctionUrlRequest,
    q: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Value {
    let provider = match provider_or_page(app).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let Some(state) = q.get("state") else {
        return bad_request("the sign-in came back without its state");
    };
    if !plausible_nonce(state) {
        return bad_request("the sign-in came back with a state this service does not make");
    }
    let Some(store) = app.deps.state.as_ref() else {
        return html(&unavailable());
    };
    // Only the browser that started this sign-in may finish it (a sign-in link sent to someone
    // else, or a login CSRF, finishes in a browser without the cookie); checked before the
    // sign-in is spent, so that whoever sees a `state` cannot burn someone else's.
    let started_here = match store.peek_sign_in(state, now, &app.sealer).await {
        Ok(Some(s)) => {
            let cookie = cookie(req, &sign_in_cookie_name(state));
            cookie.is_some_and(|c| {
                !s.browser.is_empty()
                    && c.len() == s.browser.len()
                    && c.bytes().zip(s.browser.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            })
        }
        // None: the take below says it is gone; an error: so does the take, or it fails alike.
        Ok(None) | Err(_) => true,
    };
    if !started_here {
        tracing::warn!("a sign-in finished in a browser other than the one that started it: refused");
        return sign_in_refused("This sign-in was started in another browser: open the link and sign in from this one");
    }
    let sign_in = match store.take_sign_in(state, now, &app.sealer).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return html(&Verdict {
                status: 410,
                title: "Sign-in expired".into(),
                message: format!(
                    "This sign-in was used already or took longer than {SIGN_IN_MINUTES} minutes; open the link again. Nothing was changed."
                ),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in unreadable");
            return html(&unavailable());
        }
    };
    // The sign-in taken is the one whose browser was checked (a state works once).
    let bound =
        cookie(req, &sign_in_cookie_name(state)).is_some_and(|c| c == sign_in.browser) && !sign_in.browser.is_empty();
    if !bound {
        return sign_in_refused("This sign-in was started in another browser: open the link and sign in from this one");
    }
    if let Some(error) = q.get("error") {
        tracing::info!(error = %error, "the identity provider refused the sign-in");
        return sign_in_refused("The identity provider did not sign you in");
    }
    let Some(code) = q.get("code") else {
        return bad_request("the sign-in came back without a code");
    };
    let who = match provider
        .exchange(code, &app.url("/oidc/callback"), &sign_in.verifier)
        .await
    {
        Ok(id_token) => provider.verify(&id_token, &sign_in.nonce, now).await,
        Err(e) => Err(e),
    };
    let who = match who {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in not verified");
            return sign_in_refused("The sign-in could not be verified");
        }
    };
    if let Err(why) = app.deps.policy.approvals.allows(&who) {
        return sign_in_refused(&why);
    }
    let (Some(store), Ok(session)) = (app.deps.state.as_ref(), remediation::oidc::random()) else {
        return html(&unavailable());
    };
    let kept = Session {
        rid: sign_in.rid.clone(),
        d: sign_in.d,
        who: who.clone(),
        started_at: now,
    };
    if let Err(e) = store.start_session(&session, &kept, &app.sealer).await {
        tracing::error!(error = %e, "session not recorded");
        return html(&unavailable());
    }
    let ways = |_| page::Ways {
        action: app.url("/decide"),
        session: Some(session),
        signed_in_as: Some(who.id()),
        ..page::Ways::default()
    };
    preview_page(approvals.preview_of(&sign_in.rid, sign_in.d, now).await, true, ways)
}

async fn slack<'h>(
    approvals: &Approvals<'_>,
    app: &App,
    header: &impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Value {
    let text = |status: u16, t: &str| response(status, "text/plain; charset=utf-8", t.to_string());
    let Some(secret) = &app.slack_signing_secret else {
        return text(401, "Slack requests are not accepted: no signing secret is configured");
    };
    if let Err(e) = remediation::slack::verify_signature(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        now,
    ) {
        tracing::warn!(error = %e, "refused a Slack request");
        return text(401, "refused: this request is not signed by the Slack app");
    }
    let Some(payload) = form(body).and_then(|f| f.get("payload").cloned()) else {
        return text(400, "no payload");
    };
    let p = match serde_json::from_str::<SlackInteraction>(&payload) {
        Ok(p) => p,
        Err(e) => {
            // serde's message may quote a value (a token): its category and place only.
            tracing::warn!(kind = ?e.classify(), column = e.column(), "an unreadable Slack payload");
            return text(400, "the payload is not a Slack interaction");
        }
    };
    let user_id = p.user.id.trim();
    let user_name = p
        .user
        .username
        .clone()
        .or_else(|| p.user.name.clone())
        .unwrap_or_else(|| user_id.to_string());
    let Some(action) = p.actions.first() else {
        return text(200, "");
    };
    // A plain link button (no value) only opens the confirmation page: acknowledge, decide nothing.
    let Some(token) = action.value.as_deref() else {
        return text(200, "");
    };
    if user_id.is_empty() {
        return text(400, "the payload names no user");
    }
    let (email, paired) = slack_email(app, user_id).await;
    let who = Approver::Slack {
        user_id: user_id.to_string(),
        name: user_name.to_string(),
        email,
        paired,
    };
    let v = if action.action_id.starts_with(remediation::slack::SNOOZE_ACTION_PREFIX) {
        approvals.snooze_slack(token, &who, &p.snooze_reason(), now).await
    } else {
        approvals.decide_slack(token, &who, now).await
    };
    // Slack shows a 200's body to the clicker; other statuses as an error.
    let reply = json!({"response_type": "ephemeral", "replace_original": false, "text": remediation::slack::escape(&format!("{}: {}", v.title, v.message))});
    response(200, "application/json", reply.to_string())
}

/// The parts of a Slack `block_actions` interaction this function reads.
#[derive(Debug, serde::Deserialize)]
struct SlackInteraction {
    user: SlackUser,
    #[serde(default)]
    actions: Vec<SlackAction>,
    /// The message's input fields as they were at the click (Slack sends them with every
    /// `block_actions`): the Snooze reason.
    #[serde(default)]
    state: Option<Value>,
}

impl SlackInteraction {
    /// The text in the Snooze reason field, or empty.
    fn snooze_reason(&self) -> String {
        let pointer = format!(
            "/values/{}/{}/value",
            remediation::slack::SNOOZE_REASON_BLOCK,
            remediation::slack::SNOOZE_REASON_ACTION
        );
        self.state
            .as_ref()
            .and_then(|s| s.pointer(&pointer))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Debug, serde::Deserialize)]
struct SlackUser {
    #[serde(default)]
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct SlackAction {
    #[serde(default)]
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// The address of a Slack user and whether the policy's pairing proves it (`true`), or only
/// Slack's `users.info` says it (bot token; `false`: it may merge the user with a sign-in, never
/// set them apart). Unknown (no pairing, no token, Slack did not say) is `None`: the count then
/// treats the user as possibly anyone who signed in.
async fn slack_email(app: &App, user_id: &str) -> (Option<String>, bool) {
    if let Some(e) = app.deps.policy.approvals.email_of(user_id) {
        return (Some(e.to_string()), true);
    }
    // Its own read-only token; the one-secret layout's bot token until the secret is split.
    let Some(token) = app
        .deps
        .secrets
        .slack_users_token
        .as_deref()
        .or(app.deps.secrets.slack_bot_token.as_deref())
    else {
        return (None, false);
    };
    match remediation::slack::user_email(&app.slack_http, &app.slack_api_base, token, user_id).await {
        Ok(e) => (e, false),
        Err(e) => {
            tracing::warn!(error = %e, user_id, "users.info failed: the user's address is unknown");
            (None, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_garbage_is_refused() {
        let f = form(b"token=a%2Eb_c&approver=ana%40example.com&x=1+2").unwrap();
        assert_eq!(f["token"], "a.b_c");
        assert_eq!(f["approver"], "ana@example.com");
        assert_eq!(f["x"], "1 2");
        assert!(form(b"token=%E2%28").is_none());
        assert!(form(b"token=\xff").is_none());
    }

    #[test]
    fn only_plausible_addresses_are_taken() {
        assert!(plausible_email("ana@example.com"));
        assert!(!plausible_email("ana"));
        assert!(!plausible_email("ana @example.com"));
        assert!(!plausible_email("@example.com"));
    }
}
