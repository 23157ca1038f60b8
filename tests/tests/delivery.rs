//! Slack and Jira stand-ins that fail — 500, 429 with `Retry-After`, a connection reset, an answer
//! that comes too late — under Lambda's retry semantics (an invocation that fails is tried again,
//! three tries in all, and SNS may deliver a message twice): no message reaches Slack twice and no
//! finding gets a second Jira issue, however the failure fell.

use std::time::Duration;

use chrono::Utc;
use finops_tests::approvals::{Loop, SECRET_ID};
use finops_tests::httpserver::{Fate, JiraStandIn, Response, Server};
use finops_tests::seed::{self, Usage};
use remediation::http::HttpClient;
use remediation::jira::JiraClient;
use remediation::policy::{Mode, Policy};
use remediation::secrets::Secrets;
use serde_json::{json, Value};

/// How long the clients wait here; a stalled answer comes later than this.
const PATIENCE: Duration = Duration::from_secs(2);
const STALL: Duration = Duration::from_secs(4);
/// Lambda's asynchronous invocation: the first try and two retries.
const LAMBDA_TRIES: usize = 3;

fn policy(jira_site: Option<&str>) -> Policy {
    let mut p = Policy {
        mode: Mode::Approve,
        approvals: remediation::policy::ApprovalsPolicy {
            anyone_with_link: true,
            ..Default::default()
        },
        ..Policy::default()
    };
    if let Some(site) = jira_site {
        p.jira.site_url = site.to_string();
        p.jira.project_key = "FIN".into();
    }
    p
}

/// A loop whose idle-ec2 run (approve mode, two idle instances) published its messages; the
/// slack-notify client waits `PATIENCE`.
async fn published(jira_site: Option<&str>) -> (Loop, Vec<Value>) {
    let mut lp = Loop::start(policy(jira_site)).await;
    lp.notify.poster.http = HttpClient::new(PATIENCE).expect("http client");
    let c = lp.moto.clients().await;
    for owner in ["ana", "bo"] {
        let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", owner)]).await;
        seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    }
    let deps = lp.detector_deps("idle-ec2", policy(jira_site)).await;
    let event = serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap();
    idle_ec2::handler::handle(event, &deps, Utc::now()).await.unwrap();
    let envelopes = lp.drain().await;
    assert!(envelopes.len() >= 2, "{envelopes:?}");
    (lp, envelopes)
}

/// When Lambda tries an asynchronous invocation: at once, then about a minute and three
/// minutes later.
const LAMBDA_TRY_AT: [i64; LAMBDA_TRIES] = [0, 61, 180];

/// Runs `invoke` as Lambda would: tried again while it fails, three tries in all, each at its
/// time; the last result.
async fn with_lambda_retries<F, Fut>(mut invoke: F) -> Result<Value, remediation::Error>
where
    F: FnMut(chrono::DateTime<Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<Value, remediation::Error>>,
{
    let start = Utc::now();
    let mut last = invoke(start).await;
    for at in &LAMBDA_TRY_AT[1..] {
        if last.is_ok() {
            break;
        }
        last = invoke(start + chrono::Duration::seconds(*at)).await;
    }
    last
}

async fn deliver_to_slack(lp: &Loop, e: &Value) -> Result<Value, remediation::Error> {
    with_lambda_retries(|now| async move { slack_notify::handler::handle(Loop::sns_event(e), &lp.notify, now).await })
        .await
}

fn rate_limited(retry_after: &str) -> Response {
    let mut r = Response::new(429, "text/plain", "rate_limited");
    r.headers.push(("retry-after".into(), retry_after.into()));
    r
}

/// How Slack fails a message's first try.
#[derive(Clone)]
enum SlackFault {
    /// Slack answers this and posts nothing.
    Answer(Response),
    /// Slack posts it; the answer meets this fate.
    AfterPosting(Fate),
}

struct SlackRun {
    lp: Loop,
    envelopes: Vec<Value>,
    results: Vec<Result<Value, remediation::Error>>,
    /// The posts the same messages make when Slack never fails.
    want: usize,
}

impl SlackRun {
    /// Each message's first try meets `fault`; then Slack works.
    async fn of(fault: SlackFault) -> SlackRun {
        let (clean, envelopes) = published(None).await;
        for e in &envelopes {
            deliver_to_slack(&clean, e).await.expect("a Slack that works");
        }
        let want = clean.slack.posted().len();
        assert!(want > 0);
        let (lp, envelopes) = published(None).await;
        let mut results = Vec::new();
        for e in &envelopes {
            match &fault {
                SlackFault::Answer(r) => lp.slack.answer_next(r.clone()),
                SlackFault::AfterPosting(f) => lp.slack.lose_next_answer(*f),
            }
            results.push(deliver_to_slack(&lp, e).await);
        }
        SlackRun {
            lp,
            envelopes,
            results,
            want,
        }
    }

    fn posted(&self) -> usize {
        self.lp.slack.posted().len()
    }

    fn assert_no_message_twice(&self) {
        let mut bodies: Vec<String> = self.lp.slack.posted().iter().map(|r| r.body.clone()).collect();
        let n = bodies.len();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), n, "a message reached the channel twice");
    }

    /// SNS delivers every message again (at-least-once): nothing more is posted.
    async fn replay(&self) {
        let before = self.posted();
        for e in &self.envelopes {
            deliver_to_slack(&self.lp, e).await.expect("a replay succeeds");
        }
        assert_eq!(self.posted(), before, "a replay posted again");
    }

    /// The posts that went unanswered: each invocation failed (so the errors alarm fires), its
    /// retry found the claim and posted nothing, and the claim records why.
    async fn uncertain(&self) -> Vec<String> {
        for r in &self.results {
            let v = r.as_ref().expect("the retry succeeds: it posts nothing");
            let why = &v["results"][0]["why"];
            assert!(
                why == "sent earlier without an answer; not repeated" || why == "in a digest",
                "{v}"
            );
        }
        let items = seed::scan_table(&self.lp.moto.clients().await.dynamodb, finops_tests::approvals::TABLE).await;
        items
            .iter()
            .filter(|i| i["pk"].starts_with("POST#") && i["status"] == "uncertain")
            .map(|i| i["uncertain_why"].clone())
            .collect()
    }
}

#[tokio::test]
async fn slack_failing_with_500_or_429_then_recovering_gets_every_message_once() {
    for (name, failure) in [
        ("500", Response::new(500, "text/plain", "internal_error")),
        ("429, Retry-After 1 s", rate_limited("1")),
        ("429, Retry-After 120 s", rate_limited("120")),
    ] {
        let run = SlackRun::of(SlackFault::Answer(failure)).await;
        assert!(run.results.iter().all(Result::is_ok), "{name}: {:?}", run.results);
        assert_eq!(run.posted(), run.want, "{name}: every message once");
        run.assert_no_message_twice();
        run.replay().await;
    }
}

#[tokio::test]
async fn slack_posting_but_answering_too_late_or_cutting_the_connection_gets_no_second_post() {
    for (name, fate) in [
        ("answer too late", Fate::Stall(STALL)),
        ("connection reset", Fate::Reset),
    ] {
        let run = SlackRun::of(SlackFault::AfterPosting(fate)).await;
        // Every message is in the channel once: the unanswered post was not tried again.
        assert_eq!(run.posted(), run.want, "{name}");
        run.assert_no_message_twice();
        let uncertain = run.uncertain().await;
        assert_eq!(uncertain.len(), run.want, "{name}: each unanswered post says so");
        for why in &uncertain {
            assert!(
                why.contains("slack may have received the request but did not answer"),
                "{name}: {why}"
            );
        }
        run.replay().await;
    }
}

#[tokio::test]
async fn a_reset_before_slack_posted_is_reported_uncertain_not_repeated() {
    // Slack cut the connection before posting. From the client's side this is the reset above:
    // whether it posted cannot be known, so it is not posted again (at most once); the failed
    // invocation (the errors alarm), the log and the post's claim say that it may be missing.
    let run = SlackRun::of(SlackFault::Answer(Response::reset())).await;
    assert_eq!(run.posted(), 0);
    assert_eq!(run.uncertain().await.len(), run.want);
    run.replay().await;
}

// ---------------------------------------------------------------------------------------------
// Jira

const EMAIL: &str = "finops-bot@example.com";
const TOKEN: &str = "ATATT3xFfGF0-test-token";

struct JiraRig {
    lp: Loop,
    jira: JiraStandIn,
    _server: Server,
    app: jira_sync::handler::App,
    envelopes: Vec<Value>,
}

impl JiraRig {
    async fn start() -> JiraRig {
        let (jira, server) = JiraStandIn::start("FIN", EMAIL, TOKEN).await;
        let (lp, envelopes) = published(Some(&server.url())).await;
        let mut deps = lp.detector_deps("jira-sync", policy(Some(&server.url()))).await;
        deps.secrets = Secrets::parse(
            SECRET_ID,
            &json!({"jira_email": EMAIL, "jira_api_token": TOKEN, "approval_url": lp.approval_server.url()})
                .to_string(),
        )
        .unwrap();
        let mut app = jira_sync::handler::App::new(deps).expect("jira-sync app");
        app.jira = JiraClient::new(HttpClient::new(PATIENCE).unwrap(), &server.url(), EMAIL, TOKEN);
        JiraRig {
            lp,
            jira,
            _server: server,
            app,
            envelopes,
        }
    }

    async fn sync(&self, e: &Value) -> Result<Value, remediation::Error> {
        with_lambda_retries(|now| async move { jira_sync::handler::handle(Loop::sns_event(e), &self.app, now).await })
            .await
    }

    /// The approval requests' envelopes: each opens its finding's issue.
    fn requests(&self) -> Vec<Value> {
        self.envelopes
            .iter()
            .filter(|e| {
                e["Message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<Value>(m).ok())
                    .is_some_and(|m| m["type"] == "approval-request")
            })
            .cloned()
            .collect()
    }

    fn findings(&self) -> usize {
        self.requests().len()
    }
}

/// How Jira fails the first create of each finding.
enum JiraFault {
    /// Jira answers this and creates nothing.
    Answer(Response),
    /// Jira creates the issue; the answer meets this fate.
    AfterCreating(Fate),
}

async fn jira_with(fault: JiraFault) -> JiraRig {
    let rig = JiraRig::start().await;
    assert!(rig.findings() >= 2, "{:?}", rig.envelopes);
    for e in rig.requests() {
        match &fault {
            JiraFault::Answer(r) => rig.jira.answer_next(r.clone()),
            JiraFault::AfterCreating(f) => rig.jira.lose_next_answer(*f),
        }
        let r = rig.sync(&e).await;
        assert!(r.is_ok(), "Lambda's retries open the issue: {r:?}");
    }
    // SNS delivers everything again, and nothing new is opened.
    for e in &rig.envelopes {
        rig.sync(e).await.expect("a replay succeeds");
    }
    rig
}

fn assert_one_issue_per_finding(rig: &JiraRig, name: &str) {
    let issues = rig.jira.issues();
    assert_eq!(issues.len(), rig.findings(), "{name}: one issue per finding");
    let mut labels: Vec<String> = issues
        .iter()
        .flat_map(|i| i.fields["labels"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l.as_str().map(str::to_string))
        .filter(|l| l.starts_with("finops-id-"))
        .collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), issues.len(), "{name}: each issue names its own finding");
}

#[tokio::test]
async fn jira_failing_with_500_429_or_a_reset_before_creating_opens_each_issue_once() {
    for (name, fault) in [
        (
            "500",
            Response::new(
                500,
                "application/json",
                r#"{"errorMessages":["Internal server error"],"errors":{}}"#,
            ),
        ),
        ("429, Retry-After 120 s", rate_limited("120")),
        ("reset before creating", Response::reset()),
    ] {
        let rig = jira_with(JiraFault::Answer(fault)).await;
        assert_one_issue_per_finding(&rig, name);
    }
}

#[tokio::test]
async fn jira_creating_but_not_answering_is_found_by_its_label_not_opened_twice() {
    for (name, fate) in [
        ("answer too late", Fate::Stall(STALL)),
        ("connection reset", Fate::Reset),
    ] {
        let rig = jira_with(JiraFault::AfterCreating(fate)).await;
        assert_one_issue_per_finding(&rig, name);
        // The retry looked before it created: one search per unanswered create.
        let searches = rig
            .jira
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path() == "/rest/api/3/search/jql")
            .count();
        assert_eq!(searches, rig.findings(), "{name}");
        // And the ticket knows its key: the approval's later comments go to that issue.
        let id = Loop::of_type(&rig.envelopes, "approval-request")[0]["finding"]["id"]
            .as_str()
            .map(str::to_string)
            .expect("a finding id");
        let ticket = rig.lp.state().ticket(&id, Utc::now()).await.unwrap();
        assert!(
            matches!(ticket, remediation::state::Ticket::Created { .. }),
            "{name}: {ticket:?}"
        );
    }
}

#[tokio::test]
async fn a_message_whose_poster_was_stopped_mid_post_is_kept_for_a_redrive_not_dropped() {
    use remediation::state::ApprovalStore;
    let (lp, envelopes) = published(None).await;
    let e = envelopes
        .iter()
        .find(|e| {
            e["Message"]
                .as_str()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
                .is_some_and(|m| m["type"] == "approval-request")
        })
        .expect("an approval request")
        .clone();
    // An invocation claimed the post and was stopped (its timeout) before posting.
    let key = slack_notify::handler::post_key(e["Message"].as_str().unwrap());
    assert!(lp.state().claim_post(&key, Utc::now()).await.unwrap());
    // Lambda's three tries all meet the fresh claim: each fails, so the message goes to the
    // on-failure destination instead of being dropped as "already posted".
    let r = deliver_to_slack(&lp, &e).await;
    let err = r.expect_err("the message is kept, not dropped");
    assert!(err.to_string().contains("another invocation is posting"), "{err}");
    assert!(err.is_retryable());
    assert_eq!(lp.slack.posted().len(), 0);
    // Redriven once the claim has lapsed (5 minutes): posted, once.
    let later = Utc::now() + chrono::Duration::minutes(6);
    slack_notify::handler::handle(Loop::sns_event(&e), &lp.notify, later)
        .await
        .expect("the redrive posts");
    slack_notify::handler::handle(Loop::sns_event(&e), &lp.notify, later)
        .await
        .expect("a second redrive finds it posted");
    assert_eq!(lp.slack.posted().len(), 1);
}
