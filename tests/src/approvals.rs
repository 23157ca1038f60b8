//! The human-in-the-loop harness: moto (table, topic with a queue, secret), a Slack stand-in,
//! slack-notify, and the approval function served over HTTP as its Function URL would be.
//! Tests, the browser test and the demo drive the same loop through it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use remediation::config::Deps;
use remediation::http::HttpClient;
use remediation::policy::Policy;
use remediation::secrets::Secrets;
use remediation::state::DynamoState;
use serde_json::Value;

use crate::httpserver::{from_function_url_response, function_url_event, Response, Server, SlackStandIn};
use crate::oidc::OidcStandIn;
use crate::{seed, Moto, Stack};

pub const TABLE: &str = "finops-state";
pub const SECRET_ID: &str = "finops/autopilot";
pub const LINK_KEY: &str = "k3y-for-signing-approval-links-0123456789";
/// The report-link key (a secret of its own in the template).
pub const REPORT_LINK_KEY: &str = "k3y-for-signing-report-links-0123456789ab";
/// The approval function's decision key (its own secret, deployed).
pub const DECISION_KEY: &str = "k3y-that-seals-ballots-and-sign-ins-0123456789";
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Everything of one loop.
pub struct Loop {
    pub moto: Moto,
    /// Where the template's resources are in this loop (each function runs as its role there).
    pub stack: Stack,
    /// The queue subscribed to the topic as the template subscribes slack-notify (its filter policy).
    pub notify_queue: String,
    pub sqs: aws_sdk_sqs::Client,
    pub topic: String,
    pub queue: String,
    pub slack: SlackStandIn,
    pub slack_server: Server,
    pub approval_server: Server,
    pub approval: Arc<OnceLock<approval::handler::App>>,
    pub notify: slack_notify::handler::App,
    pub http: HttpClient,
    /// The clock the approval function is served with (tests move it for expiry).
    pub clock: Arc<std::sync::Mutex<Option<DateTime<Utc>>>>,
    /// The identity provider stand-in, when the loop was started with sign-ins.
    pub idp: Option<(OidcStandIn, Server)>,
}

/// The secret as an operator stores it in Secrets Manager.
/// A policy in `mode` whose one Slack approver (and snoozer) is `user`.
pub fn slack_policy(mode: remediation::policy::Mode, user: &str) -> Policy {
    Policy {
        mode,
        approvals: remediation::policy::ApprovalsPolicy {
            slack_users: vec![user.to_string()],
            ..Default::default()
        },
        ..Policy::default()
    }
}

pub fn secret_json(webhook: &str) -> String {
    serde_json::json!({
        "link_signing_key": LINK_KEY,
        "slack_webhook_url": webhook,
        "slack_signing_secret": SIGNING_SECRET,
    })
    .to_string()
}

impl Loop {
    /// Starts moto and the servers; `policy` is what every function of the loop obeys.
    pub async fn start(policy: Policy) -> Loop {
        Loop::start_with(policy, false).await
    }

    /// As [`Loop::start`], with an identity provider stand-in configured as `approvals.oidc`
    /// (the policy's address lists are kept).
    pub async fn start_with_sign_in(policy: Policy) -> Loop {
        Loop::start_with(policy, true).await
    }

    async fn start_with(mut policy: Policy, sign_in: bool) -> Loop {
        let idp = if sign_in {
            let (idp, server) = OidcStandIn::start().await;
            policy.approvals.oidc = Some(remediation::policy::OidcPolicy {
                issuer: server.url(),
                client_id: crate::oidc::CLIENT_ID.into(),
                email_verified_required: true,
            });
            Some((idp, server))
        } else {
            None
        };
        let moto = Moto::start().expect("moto");
        let c = moto.clients().await;
        seed::create_table(&c.dynamodb, TABLE).await;
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
        let (slack, slack_server) = SlackStandIn::start().await;
        let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
        let webhook = format!("{}/services/T000/B000/XXXX", slack_server.url());
        let secret_arn = seed::create_secret(&sm, SECRET_ID, &secret_json(&webhook)).await;
        let mut secrets = Secrets::load(&sm, SECRET_ID).await.expect("the secret reads back");
        if idp.is_some() {
            secrets.oidc_client_secret = Some(crate::oidc::CLIENT_SECRET.into());
        }
        secrets.decision_key = Some(DECISION_KEY.into());

        let cell: Arc<OnceLock<approval::handler::App>> = Arc::new(OnceLock::new());
        let clock: Arc<std::sync::Mutex<Option<DateTime<Utc>>>> = Arc::default();
        let (served, served_clock) = (cell.clone(), clock.clone());
        let approval_server = Server::start(Arc::new(move |req| {
            let served = served.clone();
            let served_clock = served_clock.clone();
            Box::pin(async move {
                let Some(app) = served.get() else {
                    return Response::new(503, "text/plain", "starting");
                };
                let now = served_clock.lock().expect("clock").unwrap_or_else(Utc::now);
                match approval::handler::handle(function_url_event(&req), app, now).await {
                    Ok(v) => from_function_url_response(&v),
                    Err(e) => Response::new(500, "text/plain", e.to_string()),
                }
            })
        }))
        .await;
        let stack = Stack {
            table: TABLE.into(),
            topic: topic.clone(),
            secret_arn,
            approval_url: approval_server.url(),
            ..Stack::default()
        };
        // slack-notify's own subscription, with the template's filter policy (resolved), which
        // moto applies as AWS does (tests/moto_server.py).
        seed::encrypt_topic(&c.sns, &topic, &stack.topic_key_arn).await;
        let template = moto.template(&stack).await;
        let subscription = &template["slack-notify"]["events"]["Messages"]["Properties"];
        let mut attributes = Vec::new();
        for name in ["FilterPolicy", "FilterPolicyScope"] {
            match &subscription[name] {
                Value::Null => {}
                Value::String(s) => attributes.push((name, s.clone())),
                v => attributes.push((name, v.to_string())),
            }
        }
        let notify_queue = seed::subscribed_queue(&c.sns, &sqs, &topic, "slack-notify-subscription", &attributes).await;
        let deps = Self::deps_with(&moto, "approval", &stack, policy.clone(), secrets.clone()).await;
        let mut app = approval::handler::App::new(deps).await.expect("approval app");
        app.slack_api_base = format!("{}/api", slack_server.url());
        let _ = cell.set(app);
        let notify_deps = Self::deps_with(&moto, "slack-notify", &stack, policy, secrets).await;
        let notify = slack_notify::handler::App::new(notify_deps).expect("slack-notify app");
        Loop {
            sqs,
            topic,
            queue,
            slack,
            slack_server,
            approval_server,
            approval: cell,
            notify,
            http: HttpClient::new(Duration::from_secs(60)).expect("http client"),
            clock,
            idp,
            moto,
            stack,
            notify_queue,
        }
    }

    /// `function`'s dependencies in this loop, running as its template role in `stack`.
    async fn deps_with(moto: &Moto, function: &str, stack: &Stack, policy: Policy, secrets: Secrets) -> Deps {
        let mut stack = stack.clone();
        if policy.organization.is_some() {
            stack.organisation(moto).await;
        }
        let clients = moto.clients_as(function, &stack).await;
        let topic = stack.topic.as_str();
        let links = remediation::approval::LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &stack.approval_url).ok();
        let report_links =
            remediation::approval::LinkSigner::new(REPORT_LINK_KEY.as_bytes().to_vec(), &stack.approval_url).ok();
        Deps {
            state: Some(DynamoState::new(clients.dynamodb.clone(), TABLE)),
            publisher: Some(remediation::notify::SnsPublisher::new(clients.sns.clone(), topic)),
            links,
            report_links,
            metrics_concurrency: 4,
            config_test_mode: true,
            clients,
            policy,
            policy_source: "test".into(),
            pricing: None,
            secrets,
        }
    }

    /// `function`'s dependencies in this loop, as its template role (links point at the
    /// approval server).
    pub async fn detector_deps(&self, function: &str, policy: Policy) -> Deps {
        let secrets = Secrets::parse(SECRET_ID, &secret_json("unused")).expect("secret");
        Self::deps_with(&self.moto, function, &self.stack, policy, secrets).await
    }

    /// The approval function's state.
    pub fn state(&self) -> &DynamoState {
        self.approval
            .get()
            .and_then(|a| a.deps.state.as_ref())
            .expect("the approval app has a table")
    }

    /// The approval function (its handler takes events directly).
    pub fn approval_app(&self) -> &approval::handler::App {
        self.approval.get().expect("approval app")
    }

    /// Every SNS envelope the template's slack-notify subscription let through since the last
    /// such drain.
    pub async fn drain_for_slack_notify(&self) -> Vec<Value> {
        seed::drain_queue(&self.sqs, &self.notify_queue).await
    }

    /// Every SNS envelope published since the last drain.
    pub async fn drain(&self) -> Vec<Value> {
        seed::drain_queue(&self.sqs, &self.queue).await
    }

    /// The message bodies of `envelopes` whose `type` is `kind`.
    pub fn of_type(envelopes: &[Value], kind: &str) -> Vec<Value> {
        envelopes
            .iter()
            .filter_map(|e| e.get("Message").and_then(Value::as_str))
            .filter_map(|m| serde_json::from_str::<Value>(m).ok())
            .filter(|m| m["type"] == kind)
            .collect()
    }

    /// An SNS Lambda event carrying one envelope, as Lambda delivers it.
    pub fn sns_event(envelope: &Value) -> Value {
        serde_json::json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:finops:sub", "Sns": envelope}]})
    }

    /// Hands each envelope to slack-notify, as its SNS subscription would.
    pub async fn notify_slack(&self, envelopes: &[Value]) -> Vec<Result<Value, remediation::Error>> {
        let mut out = Vec::new();
        for e in envelopes {
            out.push(slack_notify::handler::handle(Self::sns_event(e), &self.notify, Utc::now()).await);
        }
        out
    }

    /// Hands each envelope to the approval function, as its SNS subscription would.
    pub async fn deliver_to_approval(&self, envelopes: &[Value]) -> Vec<Result<Value, remediation::Error>> {
        let mut out = Vec::new();
        for e in envelopes {
            out.push(approval::handler::handle(Self::sns_event(e), self.approval_app(), Utc::now()).await);
        }
        out
    }

    /// GET a URL: the whole answer (status, headers, body).
    /// A GET with `headers` (a cookie, say).
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> remediation::http::Response {
        self.http.send("test", "GET", url, headers, vec![]).await.expect("GET")
    }

    pub async fn get_full(&self, url: &str) -> remediation::http::Response {
        self.http.send("test", "GET", url, &[], vec![]).await.expect("GET")
    }

    /// Follows a confirmation page's "Sign in" as a browser would: the approval function's
    /// redirect to the provider, the provider's back to the callback. Returns the callback's page.
    pub async fn sign_in(&self, page: &str, email: &str) -> (u16, String) {
        let (callback, cookie) = self.sign_in_until_callback(page, email).await;
        let r = self
            .http
            .send("test", "GET", &callback, &[("cookie", cookie.as_str())], vec![])
            .await
            .expect("GET");
        (r.status, r.body)
    }

    /// A sign-in up to the provider's redirect back: the callback URL and the cookie the
    /// approval function gave the browser that started it (`name=value`).
    pub async fn sign_in_until_callback(&self, page: &str, email: &str) -> (String, String) {
        let (idp, _) = self.idp.as_ref().expect("a loop started with sign-in");
        idp.sign_in_as(email);
        let start = crate::oidc::href_of(page, "sign-in").expect("a Sign in link on the page");
        let to_idp = self.get_full(&start).await;
        assert_eq!(to_idp.status, 302, "{}", to_idp.body);
        let cookie = to_idp
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("the sign-in's cookie")
            .to_string();
        let authorize = to_idp.header("location").expect("a redirect").to_string();
        let back = self.get_full(&authorize).await;
        assert_eq!(back.status, 302, "{}", back.body);
        let callback = back
            .header("location")
            .expect("the provider redirects back")
            .to_string();
        assert!(callback.starts_with(&self.approval_server.url()), "{callback}");
        (callback, cookie)
    }

    /// Signs in as `email` from `link`'s confirmation page and presses its button.
    pub async fn decide_signed_in(&self, link: &str, email: &str) -> (u16, String) {
        let (status, page) = self.get(link).await;
        assert_eq!(status, 200, "{page}");
        let (status, page) = self.sign_in(&page, email).await;
        if status != 200 {
            return (status, page);
        }
        let session = crate::oidc::form_session(&page).expect("a form with the sign-in's session");
        // As a browser submits the form: with its hidden fields.
        match crate::oidc::form_shown(&page) {
            Some(shown) => {
                self.post_form("/decide", &[("session", &session), ("shown", &shown)])
                    .await
            }
            None => self.post_form("/decide", &[("session", &session)]).await,
        }
    }

    /// GET a URL: status and body.
    pub async fn get(&self, url: &str) -> (u16, String) {
        let r = self.http.send("test", "GET", url, &[], vec![]).await.expect("GET");
        (r.status, r.body)
    }

    /// POST a form to the approval server: status and body.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        let r = self
            .http
            .send(
                "test",
                "POST",
                &format!("{}{path}", self.approval_server.url()),
                &[("content-type", "application/x-www-form-urlencoded")],
                body.join("&").into_bytes(),
            )
            .await
            .expect("POST");
        (r.status, r.body)
    }

    /// A Slack click on a Snooze (or any) button as Slack sends it: a `block_actions` payload
    /// with the message's reason field in its `state`, signed with the app's signing secret at
    /// `at` (the approval server's clock must be near it).
    pub async fn slack_click(
        &self,
        action_id: &str,
        token: &str,
        user: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> (u16, String) {
        let mut payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase()},
            "actions": [{"action_id": action_id, "block_id": "finops_snooze", "type": "button", "value": token}],
            "response_url": "https://hooks.slack.com/actions/T/1/x",
        });
        if let Some(r) = reason {
            payload["state"] = serde_json::json!({"values": {
                remediation::slack::SNOOZE_REASON_BLOCK: {
                    remediation::slack::SNOOZE_REASON_ACTION: {"type": "plain_text_input", "value": r}
                }
            }});
        }
        let body = format!("payload={}", enc(&payload.to_string()));
        let ts = at.timestamp();
        let sig = remediation::slack::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
        self.post_raw(
            "/slack/actions",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-slack-request-timestamp", &ts.to_string()),
                ("x-slack-signature", &sig),
            ],
            &body,
        )
        .await
    }

    /// Sets the approval server's clock (`None`: the wall clock).
    pub fn set_clock(&self, at: Option<DateTime<Utc>>) {
        *self.clock.lock().expect("clock") = at;
    }

    /// POST raw bytes with headers to the approval server.
    pub async fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let r = self
            .http
            .send(
                "test",
                "POST",
                &format!("{}{path}", self.approval_server.url()),
                headers,
                body.as_bytes().to_vec(),
            )
            .await
            .expect("POST");
        (r.status, r.body)
    }
}

/// Percent-encodes a form component.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token in a link.
pub fn token_of(url: &str) -> String {
    url.split_once("token=").map(|(_, t)| t.to_string()).unwrap_or_default()
}

/// The Snooze buttons of a rendered Slack message: (action id, the token Slack sends back).
pub fn snooze_buttons(post: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in post["blocks"].as_array().into_iter().flatten() {
        for el in block["elements"].as_array().into_iter().flatten() {
            if let (Some(a), Some(v)) = (el["action_id"].as_str(), el["value"].as_str()) {
                if a.starts_with(remediation::slack::SNOOZE_ACTION_PREFIX) {
                    out.push((a.to_string(), v.to_string()));
                }
            }
        }
    }
    out
}

/// The URLs of a rendered Slack message's buttons, by button text.
pub fn button_urls(post: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in post["blocks"].as_array().into_iter().flatten() {
        for el in block["elements"].as_array().into_iter().flatten() {
            if let (Some(t), Some(u)) = (el.pointer("/text/text").and_then(Value::as_str), el["url"].as_str()) {
                out.push((t.to_string(), u.to_string()));
            }
        }
    }
    out
}
