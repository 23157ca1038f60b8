//! jira-sync end to end: the real messages of the approval loop (idle-ec2 in approve mode against
//! moto, the approval function, SNS) handed to jira-sync, with a Jira Cloud stand-in that checks
//! each request as Jira does.

use chrono::Utc;
use finops_tests::approvals::{token_of, Loop, SECRET_ID};
use finops_tests::httpserver::{is_adf_doc, JiraStandIn, Response};
use finops_tests::seed::{self, Usage};
use remediation::policy::{Mode, Policy};
use remediation::secrets::Secrets;
use serde_json::{json, Value};

const EMAIL: &str = "finops-bot@example.com";
const TOKEN: &str = "ATATT3xFfGF0-test-token";

fn policy(site: &str) -> Policy {
    let mut p = Policy {
        mode: Mode::Approve,
        approvals: remediation::policy::ApprovalsPolicy {
            anyone_with_link: true,
            ..Default::default()
        },
        ..Policy::default()
    };
    p.jira.site_url = site.to_string();
    p.jira.project_key = "FIN".into();
    p
}

struct Rig {
    lp: Loop,
    jira: JiraStandIn,
    _server: finops_tests::httpserver::Server,
    app: jira_sync::handler::App,
}

async fn rig() -> Rig {
    let (jira, server) = JiraStandIn::start("FIN", EMAIL, TOKEN).await;
    let lp = Loop::start(policy(&server.url())).await;
    let mut deps = lp.detector_deps("jira-sync", policy(&server.url())).await;
    deps.secrets = Secrets::parse(
        SECRET_ID,
        // jira-sync gets the approval URL (never the link key) for links to the decision page.
        &json!({"jira_email": EMAIL, "jira_api_token": TOKEN, "approval_url": lp.approval_server.url()}).to_string(),
    )
    .unwrap();
    let app = jira_sync::handler::App::new(deps).expect("jira-sync app");
    Rig {
        lp,
        jira,
        _server: server,
        app,
    }
}

impl Rig {
    async fn sync(&self, envelopes: &[Value]) -> Vec<Result<Value, remediation::Error>> {
        let mut out = Vec::new();
        for e in envelopes {
            out.push(jira_sync::handler::handle(Loop::sns_event(e), &self.app, Utc::now()).await);
        }
        out
    }

    /// One idle instance owned by ana; idle-ec2 in approve mode; what it published.
    async fn detect(&self) -> (String, Vec<Value>) {
        let c = self.lp.moto.clients().await;
        let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
        seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
        (id, self.scan().await)
    }

    async fn scan(&self) -> Vec<Value> {
        let deps = self.lp.detector_deps("idle-ec2", policy(&self.jira_url())).await;
        let event = serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap();
        idle_ec2::handler::handle(event, &deps, Utc::now()).await.unwrap();
        self.lp.drain().await
    }

    fn jira_url(&self) -> String {
        self.app.deps.policy.jira.site_url.clone()
    }

    fn creates(&self) -> usize {
        self.jira
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path() == "/rest/api/3/issue")
            .count()
    }
}

fn texts(adf: &Value) -> String {
    // All text and link targets of an ADF document, in order.
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        if let Some(t) = v["text"].as_str() {
            out.push_str(t);
        }
        if let Some(marks) = v["marks"].as_array() {
            for m in marks {
                if let Some(h) = m["attrs"]["href"].as_str() {
                    out.push_str(&format!(" <{h}>"));
                }
            }
        }
        if let Some(c) = v["content"].as_array() {
            for n in c {
                walk(n, out);
            }
            out.push('\n');
        }
    }
    walk(adf, &mut out);
    out
}

#[tokio::test]
async fn one_issue_per_finding_with_the_evidence_dollars_and_links() {
    let r = rig().await;
    let (id, published) = r.detect().await;
    let requests = Loop::of_type(&published, "approval-request");
    assert_eq!(requests.len(), 1);
    for res in r.sync(&published).await {
        res.unwrap();
    }
    let issues = r.jira.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(issue.key, "FIN-1");
    let f = &issue.fields;
    assert_eq!(f["project"]["key"], "FIN");
    assert_eq!(f["issuetype"]["name"], "Task");
    assert_eq!(
        f["summary"],
        format!("[FinOps] idle-ec2: {id} (owner ana) $60.74/month")
    );
    // The last label names the finding, so an issue whose create went unanswered is found again.
    let finding_id = requests[0]["finding"]["id"].as_str().unwrap();
    assert_eq!(
        f["labels"],
        json!([
            "finops-autopilot",
            "finops-idle-ec2",
            remediation::jira::finding_label(finding_id)
        ])
    );
    assert_eq!(f["priority"]["name"], "Medium");
    assert!(is_adf_doc(&f["description"]));
    let description = texts(&f["description"]);
    let page = format!(
        "{}/request?id={}",
        r.lp.approval_server.url(),
        requests[0]["request_id"].as_str().unwrap()
    );
    for want in [
        id.as_str(),
        "$60.74 per month",
        "idle days: 14",
        "instance type: t3.large",
        &format!("Open the decision page <{page}>"),
    ] {
        assert!(description.contains(want), "{want:?} not in {description}");
    }
    // Never a decision token: an issue is read by many, for long.
    assert!(!serde_json::to_string(&f).unwrap().contains("token="), "{description}");
    // The page it links to shows the request and holds no token.
    let (status, shown) = r.lp.get(&page).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains(&id) && !shown.contains("name=\"token\""), "{shown}");
    // Every request carried the account's Basic credentials.
    assert!(r
        .jira
        .requests()
        .iter()
        .all(|q| q.header("authorization") == Some(r.jira.authorization.as_str())));

    // The message replayed three times, and the finding detected again by the next run: no new issue.
    for res in r
        .sync(&[published.clone(), published.clone(), published].concat())
        .await
    {
        res.unwrap();
    }
    let again = r.scan().await;
    for res in r.sync(&again).await {
        res.unwrap();
    }
    assert_eq!(r.jira.issues().len(), 1);
    assert_eq!(r.creates(), 1);
}

#[tokio::test]
async fn an_executed_action_comments_and_resolves_a_rollback_comments_again() {
    let r = rig().await;
    let (id, published) = r.detect().await;
    for res in r.sync(&published).await {
        res.unwrap();
    }
    let request = &Loop::of_type(&published, "approval-request")[0];
    let approve = request["approve_url"].as_str().unwrap();
    let (status, page) =
        r.lp.post_form(
            "/decide",
            &[("token", &token_of(approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let after = r.lp.drain().await;
    let results = Loop::of_type(&after, "action-result");
    assert_eq!(results.len(), 1);
    // Delivered twice (SNS delivers at least once): one comment, one transition.
    for res in r.sync(&[after.clone(), after].concat()).await {
        res.unwrap();
    }
    let issue = &r.jira.issues()[0];
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.comments.len(), 1);
    let comment = texts(&issue.comments[0]);
    let rollback_url = results[0]["rollback_url"].as_str().unwrap();
    assert!(
        comment.contains("Action executed: stop on") && comment.contains(&id),
        "{comment}"
    );
    let rollback_page = format!(
        "{}/request?action={}",
        r.lp.approval_server.url(),
        results[0]["action_id"].as_str().unwrap()
    );
    assert!(comment.contains(&format!("Roll back <{rollback_page}>")), "{comment}");
    assert!(!comment.contains("token="), "{comment}");

    // Roll back, approved like any action: a second comment saying so.
    let (status, page) =
        r.lp.post_form(
            "/decide",
            &[("token", &token_of(rollback_url)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    for res in r.sync(&r.lp.drain().await).await {
        res.unwrap();
    }
    let issue = &r.jira.issues()[0];
    assert_eq!(issue.comments.len(), 2);
    assert!(
        texts(&issue.comments[1]).contains("Rolled back: stop on"),
        "{}",
        texts(&issue.comments[1])
    );
    assert_eq!(seed::state_of(&r.lp.moto.clients().await.ec2, &id).await, "running");
}

#[tokio::test]
async fn jira_answering_429_is_waited_for_and_the_issue_opened_once() {
    let r = rig().await;
    let (_, published) = r.detect().await;
    let mut rate_limited = Response::new(
        429,
        "application/json",
        r#"{"errorMessages":["Rate limit exceeded."],"errors":{}}"#,
    );
    rate_limited.headers.push(("retry-after".into(), "1".into()));
    r.jira.answer_next(rate_limited);
    for res in r.sync(&published).await {
        res.unwrap();
    }
    let reqs = r.jira.requests();
    assert_eq!(reqs.len(), 2, "the 429, then the create");
    assert!(reqs[1].received - reqs[0].received >= std::time::Duration::from_secs(1));
    assert_eq!(r.jira.issues().len(), 1);
}

#[tokio::test]
async fn a_400_fails_the_invocation_with_jiras_words_and_the_retry_opens_the_issue() {
    let r = rig().await;
    let (_, published) = r.detect().await;
    r.jira.answer_next(Response::new(
        400,
        "application/json;charset=UTF-8",
        r#"{"errorMessages":[],"errors":{"priority":"Specify the Priority (name) in the string format"}}"#,
    ));
    let results = r.sync(&published).await;
    let err = results.into_iter().find_map(Result::err).expect("the invocation fails");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("priority: Specify the Priority"),
        "{text}"
    );
    assert!(!err.is_retryable(), "a 400 is not a transient failure: {text}");
    assert!(r.jira.issues().is_empty());
    // Lambda's retry (or a redrive from the on-failure destination) opens it: the claim was released.
    for res in r.sync(&published).await {
        res.unwrap();
    }
    assert_eq!(r.jira.issues().len(), 1);
}

#[tokio::test]
async fn only_the_rules_listed_open_issues() {
    let mut r = rig().await;
    let (_, published) = r.detect().await;
    r.app.deps.policy.jira.rules = vec!["s3-public".into()];
    for res in r.sync(&published).await {
        res.unwrap();
    }
    assert!(r.jira.issues().is_empty());
    r.app.deps.policy.jira.rules = vec!["idle-ec2".into()];
    for res in r.sync(&published).await {
        res.unwrap();
    }
    assert_eq!(r.jira.issues().len(), 1);
}

#[tokio::test]
async fn a_bad_event_and_a_missing_configuration_are_named() {
    let r = rig().await;
    let err = jira_sync::handler::handle(json!({"detail": {}}), &r.app, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an SNS event"), "{err}");
    let mut deps = r.lp.detector_deps("jira-sync", Policy::default()).await;
    deps.secrets = Secrets::default();
    let err = jira_sync::handler::App::new(deps).err().expect("refused").to_string();
    assert!(err.contains("jira.site_url"), "{err}");
    let mut deps =
        r.lp.detector_deps("jira-sync", policy("https://example.atlassian.net"))
            .await;
    deps.secrets = Secrets::default();
    let err = jira_sync::handler::App::new(deps).err().expect("refused").to_string();
    assert!(err.contains("jira_email and jira_api_token"), "{err}");
    assert!(r.jira.requests().is_empty());
}
