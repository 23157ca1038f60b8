//! The approval function's three triggers:
//! - its Function URL: `GET /decide?token=` (confirmation page, no change), `POST /decide`
//!   (the page's form: decide), `POST /slack/actions` (Slack interactivity, signed);
//! - SNS `approval-result` with status `approved` (a Slack approval, executed here);
//! - an EventBridge schedule: expire pending requests past their expiry.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::approval::LinkSigner;
use remediation::config::Deps;
use remediation::decide::{Approvals, AwsExecutor, Preview, Verdict};
use remediation::notify::Message;
use remediation::policy::Approver;
use remediation::Error;
use serde_json::{json, Value};

use crate::page;

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    /// The link-signing key.
    link_key: Vec<u8>,
    /// Slack's signing secret; without it Slack requests are refused.
    pub slack_signing_secret: Option<Vec<u8>>,
    pub executor: AwsExecutor,
}

impl App {
    /// Checks that the deps have what approvals need: the table and the link-signing key.
    /// `FINOPS_APPROVAL_URL` is optional here: a deployed function cannot be told its own URL
    /// (a cycle in the template), so it takes it from each request's domain, or from the
    /// `approval-result` message it published itself.
    pub fn new(deps: Deps) -> Result<App, Error> {
        if deps.state.is_none() {
            return Err(Error::Config(
                "the approval function needs the state table (FINOPS_TABLE)".into(),
            ));
        }
        let link_key = deps
            .secrets
            .link_signing_key
            .clone()
            .or_else(|| std::env::var(remediation::config::LINK_KEY_VAR).ok())
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::Config("the approval function needs link_signing_key in its secret".into()))?
            .into_bytes();
        // Checks the key's length once, at start-up.
        LinkSigner::new(link_key.clone(), "https://approval.invalid")?;
        let executor = AwsExecutor {
            clients: deps.clients.clone(),
            policy: deps.policy.clone(),
        };
        Ok(App {
            slack_signing_secret: deps.secrets.slack_signing_secret.clone().map(String::into_bytes),
            link_key,
            executor,
            deps,
        })
    }

    /// Links to `base` unless the deployment named the URL.
    fn signer(&self, base: Option<&str>) -> Result<LinkSigner, Error> {
        match (&self.deps.links, base) {
            (Some(configured), _) => Ok(configured.clone()),
            (None, Some(b)) => LinkSigner::new(self.link_key.clone(), b),
            // Nothing that needs a link (expiry): any base will do.
            (None, None) => LinkSigner::new(self.link_key.clone(), "https://approval.invalid"),
        }
    }

    fn approvals<'a>(&'a self, links: &'a LinkSigner) -> Result<Approvals<'a>, Error> {
        let state = self
            .deps
            .state
            .as_ref()
            .ok_or_else(|| Error::Config("no state table".into()))?;
        Ok(Approvals {
            store: state,
            state,
            publisher: self.deps.publisher.as_ref().map(|p| p as _),
            links,
            policy: &self.deps.policy,
            executor: &self.executor,
        })
    }
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, app: &App) -> Result<Value, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, app, Utc::now())).await
}

/// Dispatches on the event's shape.
pub async fn handle(payload: Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    if payload.get("requestContext").is_some() && payload.get("rawPath").is_some() {
        return Ok(http(&payload, app, now).await);
    }
    if payload.get("Records").is_some() {
        return sns(&payload, app, now).await;
    }
    let trigger = remediation::events::scheduled(&payload).map_err(|e| {
        Error::Event(format!(
            "neither a Function URL request, an SNS event nor a scheduled event ({e})"
        ))
    })?;
    let links = app.signer(None)?;
    let approvals = app.approvals(&links)?;
    // Each sweep runs even when the other fails; the invocation fails if either did.
    let (expired, resolved) = (approvals.expire(now).await, approvals.resolve_stale(now).await);
    let (expired, resolved) = (expired?, resolved?);
    tracing::info!(account = %trigger.account, expired, resolved, "hourly sweep");
    Ok(json!({"expired": expired, "resolved_stale": resolved}))
}

/// Executes Slack-approved requests delivered by SNS. Anything else on the topic is ignored
/// (the subscription's filter policy should not send it).
async fn sns(payload: &Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    let mut results = Vec::new();
    for (_, message) in remediation::notify::from_sns_event(payload)? {
        match message {
            Message::ApprovalResult {
                request_id,
                status,
                links_base,
                ..
            } if status == "approved" => {
                let links = app.signer(links_base.as_deref())?;
                let v = app.approvals(&links)?.execute_approved(&request_id, now).await;
                tracing::info!(request_id = %request_id, status = v.status, title = %v.title, "executed on SNS");
                // 503 means the decision could not be carried out now (state unreachable, or
                // the emergency stop): fail, so Lambda retries and then the on-failure destination keeps it.
                if v.status == 503 {
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

fn response(status: u16, content_type: &str, body: String) -> Value {
    json!({
        "statusCode": status,
        "headers": {
            "content-type": content_type,
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        },
        "body": body,
        "isBase64Encoded": false,
    })
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

/// Percent-decodes one `application/x-www-form-urlencoded` component.
fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses a query string or form body; `None` if it is not valid form encoding.
pub fn form(s: &str) -> Option<HashMap<String, String>> {
    let mut out = HashMap::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(url_decode(k)?, url_decode(v)?);
    }
    Some(out)
}

fn plausible_email(e: &str) -> bool {
    let e = e.trim();
    e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.') && !domain.starts_with('.'))
}

async fn http(req: &Value, app: &App, now: DateTime<Utc>) -> Value {
    let method = req
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let path = req.get("rawPath").and_then(Value::as_str).unwrap_or("/");
    let query = req.get("rawQueryString").and_then(Value::as_str).unwrap_or("");
    let headers: HashMap<String, String> = req
        .get("headers")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.to_ascii_lowercase(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let raw_body = req.get("body").and_then(Value::as_str).unwrap_or("");
    let body: Vec<u8> = if req.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        match base64::engine::general_purpose::STANDARD.decode(raw_body) {
            Ok(b) => b,
            Err(_) => return bad_request("the body is not valid base64"),
        }
    } else {
        raw_body.as_bytes().to_vec()
    };
    let domain = req
        .pointer("/requestContext/domainName")
        .and_then(Value::as_str)
        .map(|d| format!("https://{d}"));
    let links = match app.signer(domain.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            return html(&Verdict {
                status: 500,
                title: "Not configured".into(),
                message: e.to_string(),
            })
        }
    };
    let approvals = match app.approvals(&links) {
        Ok(a) => a,
        Err(e) => {
            return html(&Verdict {
                status: 500,
                title: "Not configured".into(),
                message: e.to_string(),
            })
        }
    };
    match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/decide") => {
            let Some(token) = form(query).and_then(|q| q.get("token").cloned()) else {
                return bad_request("the link has no token");
            };
            match approvals.preview(&token, now).await {
                Preview::Confirm {
                    decision,
                    finding,
                    approvers,
                    required,
                    expires_at,
                } => response(
                    200,
                    "text/html; charset=utf-8",
                    page::confirm(
                        decision,
                        &finding,
                        &token,
                        &approvers,
                        required,
                        expires_at
                            .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string())
                            .as_deref(),
                    ),
                ),
                Preview::Refused(v) => html(&v),
            }
        }
        ("POST", "/decide") => {
            let Some(fields) = std::str::from_utf8(&body).ok().and_then(form) else {
                return bad_request("the form is not valid");
            };
            let Some(token) = fields.get("token") else {
                return bad_request("the form has no token");
            };
            let approver = fields.get("approver").map(|a| a.trim()).unwrap_or("");
            if !plausible_email(approver) {
                return bad_request("give your email address, so the audit trail says who decided");
            }
            let v = approvals
                .decide_link(token, &Approver::Email(approver.to_string()), now)
                .await;
            html(&v)
        }
        ("POST", "/slack/actions") => slack(&approvals, app, &headers, &body, now).await,
        _ => html(&Verdict {
            status: 404,
            title: "Not found".into(),
            message: format!("{method} {path} is not something this function answers"),
        }),
    }
}

async fn slack(
    approvals: &Approvals<'_>,
    app: &App,
    headers: &HashMap<String, String>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Value {
    let text = |status: u16, t: &str| response(status, "text/plain; charset=utf-8", t.to_string());
    let Some(secret) = &app.slack_signing_secret else {
        return text(401, "Slack requests are not accepted: no signing secret is configured");
    };
    if let Err(e) = remediation::slack::verify_signature(
        secret,
        headers.get("x-slack-request-timestamp").map(String::as_str),
        headers.get("x-slack-signature").map(String::as_str),
        body,
        now,
    ) {
        tracing::warn!(error = %e, "refused a Slack request");
        return text(401, &format!("refused: {e}"));
    }
    let Some(payload) = std::str::from_utf8(body)
        .ok()
        .and_then(form)
        .and_then(|f| f.get("payload").cloned())
    else {
        return text(400, "no payload");
    };
    let Ok(p) = serde_json::from_str::<Value>(&payload) else {
        return text(400, "the payload is not JSON");
    };
    let user_id = p.pointer("/user/id").and_then(Value::as_str).unwrap_or_default();
    let user_name = p
        .pointer("/user/username")
        .or_else(|| p.pointer("/user/name"))
        .and_then(Value::as_str)
        .unwrap_or(user_id);
    let Some(action) = p.pointer("/actions/0") else {
        return text(200, "");
    };
    // A plain link button (no value) only opens the confirmation page: acknowledge, decide nothing.
    let Some(token) = action.get("value").and_then(Value::as_str) else {
        return text(200, "");
    };
    if user_id.is_empty() {
        return text(400, "the payload names no user");
    }
    let who = Approver::Slack {
        user_id: user_id.to_string(),
        name: user_name.to_string(),
    };
    let v = approvals.decide_slack(token, &who, now).await;
    // Slack shows a 200's body to the clicker; other statuses as an error.
    let reply =
        json!({"response_type": "ephemeral", "replace_original": false, "text": format!("{}: {}", v.title, v.message)});
    response(200, "application/json", reply.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_garbage_is_refused() {
        let f = form("token=a%2Eb_c&approver=ana%40example.com&x=1+2").unwrap();
        assert_eq!(f["token"], "a.b_c");
        assert_eq!(f["approver"], "ana@example.com");
        assert_eq!(f["x"], "1 2");
        assert!(form("token=%zz").is_none());
        assert!(form("token=%E2%28").is_none());
    }

    #[test]
    fn only_plausible_addresses_are_taken() {
        assert!(plausible_email("ana@example.com"));
        assert!(!plausible_email("ana"));
        assert!(!plausible_email("ana @example.com"));
        assert!(!plausible_email("@example.com"));
    }
}
