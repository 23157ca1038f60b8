//! Approvals that cannot be forged from inside (issue 25): every write a detector's role is
//! allowed, or would be allowed by a mistaken policy, is tried, and none makes the approval
//! function execute, roll back, or report a decision nobody made.
//!
//! Each test runs the detector as its own template role in the strict local AWS (IAM from
//! `infra/template.yaml`, `tests/aws_iam.py`). Where the template refuses a write, the same write is
//! then made with the operator's unrestricted key, standing for an IAM policy gotten wrong: the
//! approval function must still refuse it (its seals, its own partition of marks).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use finops_tests::approvals::{token_of, Loop, LINK_KEY, TABLE};
use finops_tests::seed::{self, Usage};
use remediation::policy::{ApprovalsPolicy, Approver, Mode, Policy};
use remediation::state::ApprovalStore;
use serde_json::Value;

fn policy(mode: Mode) -> Policy {
    Policy {
        mode,
        approvals: ApprovalsPolicy {
            slack_users: vec!["U0ANA".into(), "U0BO".into()],
            email_domains: vec!["example.com".into()],
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    }
}

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap()
}

fn sweep() -> Value {
    serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap()
}

async fn idle_instance(lp: &Loop, tags: &[(&str, &str)]) -> String {
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", tags).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    id
}

async fn state_of(lp: &Loop, id: &str) -> String {
    seed::state_of(&lp.moto.clients().await.ec2, id).await
}

/// idle-ec2 (as its role) opens one request; its request id and finding.
async fn one_request(lp: &Loop, mode: Mode) -> (String, Value) {
    let deps = lp.detector_deps("idle-ec2", policy(mode)).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let requests = Loop::of_type(&lp.drain().await, "approval-request");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    (
        requests[0]["request_id"].as_str().unwrap().to_string(),
        requests[0]["finding"].clone(),
    )
}

/// DynamoDB as idle-ec2's role, and as the operator (no IAM restriction: a policy gotten wrong).
async fn tables(lp: &Loop) -> (aws_sdk_dynamodb::Client, aws_sdk_dynamodb::Client) {
    (
        lp.moto.clients_as("idle-ec2", &lp.stack).await.dynamodb,
        lp.moto.clients().await.dynamodb,
    )
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn refused<T, E: std::fmt::Debug>(r: Result<T, E>) -> bool {
    match r {
        Ok(_) => false,
        Err(e) => format!("{e:?}").contains("AccessDenied"),
    }
}

/// A sign-in session naming `email` for `rid`, as the approval function would keep one.
fn session_item(id: &str, rid: &str, email: &str) -> std::collections::HashMap<String, AttributeValue> {
    let session = remediation::state::sign_in::Session {
        rid: rid.into(),
        d: remediation::approval::Decision::Approve,
        who: Approver::SignedIn {
            email: email.into(),
            issuer: "https://idp.example.com".into(),
            subject: format!("sub-{email}"),
        },
        started_at: Utc::now(),
    };
    std::collections::HashMap::from([
        ("pk".to_string(), s(&format!("SESSION#{id}"))),
        ("sk".to_string(), s("OIDC")),
        ("kind".to_string(), s("session")),
        ("body".to_string(), s(&serde_json::to_string(&session).unwrap())),
        (
            "expires_at".to_string(),
            AttributeValue::N((Utc::now() + Duration::minutes(10)).timestamp().to_string()),
        ),
    ])
}

/// Session ids shaped as the approval function makes them (43 URL-safe characters).
const FORGED: [&str; 2] = [
    "forgedSessionOne-0123456789abcdefghijklmnop",
    "forgedSessionTwo-0123456789abcdefghijklmnop",
];

#[tokio::test]
async fn a_detectors_role_cannot_fake_two_signed_in_approvers() {
    let lp = Loop::start_with_sign_in(policy(Mode::Approve)).await;
    // Production: two people must approve.
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (rid, _) = one_request(&lp, Mode::Approve).await;
    let (detector, operator) = tables(&lp).await;

    // As idle-ec2's role: the template refuses a session.
    let put = detector
        .put_item()
        .table_name(TABLE)
        .set_item(Some(session_item(FORGED[0], &rid, "ana@example.com")))
        .send()
        .await;
    assert!(refused(put), "idle-ec2's role wrote a sign-in session");

    // Written anyway (an IAM policy gotten wrong): the approval function does not believe them.
    for (sid, email) in [(FORGED[0], "ana@example.com"), (FORGED[1], "bo@example.com")] {
        operator
            .put_item()
            .table_name(TABLE)
            .set_item(Some(session_item(sid, &rid, email)))
            .send()
            .await
            .unwrap();
        let (status, page) = lp.post_form("/decide", &[("session", sid)]).await;
        assert_eq!(status, 410, "{page}");
    }
    assert_eq!(state_of(&lp, &id).await, "running");
    let stored = lp.state().approval(&rid).await.unwrap().unwrap();
    assert_eq!(stored.status, "pending");
    assert!(stored.ballots.is_empty(), "{:?}", stored.ballots);
}

#[tokio::test]
async fn a_request_a_detector_wrote_approved_is_not_executed_by_the_sweep_nor_after_it() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (rid, _) = one_request(&lp, Mode::Approve).await;
    let (detector, _) = tables(&lp).await;
    // Two listed Slack users' ballots, as a vote would store them, without the approval
    // function's seal (it cannot be had without its key).
    let ballots: Vec<remediation::identity::Ballot> = ["U0ANA", "U0BO"]
        .iter()
        .map(|u| {
            Approver::Slack {
                user_id: (*u).into(),
                name: (*u).into(),
                email: None,
                paired: false,
            }
            .ballot(Utc::now() - Duration::hours(1))
        })
        .collect();
    let approve = || async {
        detector
            .update_item()
            .table_name(TABLE)
            .key("pk", s(&format!("APPROVAL#{rid}")))
            .key("sk", s("REQUEST"))
            .update_expression(
                "SET #st = :approved, ballots = :b, decided_at = :at, decided_by = :by, version = :v, approvers = :who",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":approved", s("approved"))
            .expression_attribute_values(":b", s(&serde_json::to_string(&ballots).unwrap()))
            .expression_attribute_values(":at", s(&(Utc::now() - Duration::hours(1)).to_rfc3339()))
            .expression_attribute_values(":by", s("slack:U0ANA, slack:U0BO"))
            .expression_attribute_values(":v", AttributeValue::N("2".into()))
            .expression_attribute_values(
                ":who",
                AttributeValue::Ss(vec!["slack:U0ANA".into(), "slack:U0BO".into()]),
            )
            .send()
            .await
    };
    // Its own request's item is the detector's to write (it opens requests): IAM lets it.
    approve().await.unwrap();
    let swept = approval::handler::handle(sweep(), lp.approval_app(), Utc::now())
        .await
        .unwrap();
    assert_eq!(state_of(&lp, &id).await, "running", "{swept}");
    let stored = lp.state().approval(&rid).await.unwrap().unwrap();
    assert_eq!(stored.status, "failed");
    assert!(
        stored.detail.as_deref().unwrap_or_default().contains("0 of the 1"),
        "{stored:?}"
    );
    // Nothing reported a decision: no action, and the request is announced as not executed,
    // decided by nobody (not by the names the detector wrote).
    let published = lp.drain().await;
    assert!(Loop::of_type(&published, "action-result").is_empty(), "{published:#?}");
    let closed = Loop::of_type(&published, "approval-result");
    assert_eq!(closed.len(), 1, "{published:#?}");
    assert_eq!(closed[0]["status"], "not-executed");
    assert_eq!(closed[0]["decided_by"], "nobody", "{closed:#?}");

    // Written back to `approved`, or to `pending` for a fresh vote, after it was closed: still
    // nothing (its end is marked where the detector cannot write).
    approve().await.unwrap();
    approval::handler::handle(sweep(), lp.approval_app(), Utc::now())
        .await
        .unwrap();
    assert_eq!(state_of(&lp, &id).await, "running");
    detector
        .update_item()
        .table_name(TABLE)
        .key("pk", s(&format!("APPROVAL#{rid}")))
        .key("sk", s("REQUEST"))
        .update_expression("SET #st = :pending REMOVE ballots, version, approvers, decided_at")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":pending", s("pending"))
        .send()
        .await
        .unwrap();
    let links = remediation::approval::LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &lp.stack.approval_url).unwrap();
    let token = links.token(
        &rid,
        remediation::approval::Decision::Approve,
        Utc::now() + Duration::hours(1),
    );
    let (status, reply) = lp
        .slack_click("finops_approve", &token, "U0ANA", None, Utc::now())
        .await;
    assert!(!reply.contains("Approved"), "{status} {reply}");
    approval::handler::handle(sweep(), lp.approval_app(), Utc::now())
        .await
        .unwrap();
    for envelope in lp.drain().await {
        approval::handler::handle(Loop::sns_event(&envelope), lp.approval_app(), Utc::now())
            .await
            .ok();
    }
    assert_eq!(state_of(&lp, &id).await, "running");
}

#[tokio::test]
async fn an_action_whose_way_back_names_another_resource_rolls_nothing_back() {
    let lp = Loop::start(policy(Mode::Auto)).await;
    let idle = idle_instance(&lp, &[("Owner", "ana")]).await;
    // Stopped on purpose by its owner; not idle-ec2's finding.
    let c = lp.moto.clients().await;
    let other = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "bo"), ("finops:exempt", "true")]).await;
    seed::stop(&c.ec2, &other).await;
    let deps = lp.detector_deps("idle-ec2", policy(Mode::Auto)).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    assert_eq!(state_of(&lp, &idle).await, "stopped");
    let results = Loop::of_type(&lp.drain().await, "action-result");
    assert_eq!(results.len(), 1, "{results:#?}");
    let action_id = results[0]["action_id"].as_str().unwrap().to_string();
    let rollback_url = results[0]["rollback_url"].as_str().unwrap().to_string();

    // As idle-ec2's role: the action record's way back now names the other instance.
    let (detector, _) = tables(&lp).await;
    let foreign = remediation::act::Rollback::StartInstance {
        instance_id: other.clone(),
        region: "us-east-1".into(),
        hibernated: false,
        launched_at: None,
    };
    detector
        .update_item()
        .table_name(TABLE)
        .key("pk", s(&format!("ACTION#{action_id}")))
        .key("sk", s("RECORD"))
        .update_expression("SET #rb = :rb")
        .expression_attribute_names("#rb", "rollback")
        .expression_attribute_values(":rb", s(&serde_json::to_string(&foreign).unwrap()))
        .send()
        .await
        .unwrap();
    let (status, page) = lp
        .slack_click("finops_rollback", &token_of(&rollback_url), "U0ANA", None, Utc::now())
        .await;
    assert!(!page.contains("Rolled back"), "{status} {page}");
    assert_eq!(state_of(&lp, &other).await, "stopped", "the other instance was started");
    assert_eq!(state_of(&lp, &idle).await, "stopped");
}

#[tokio::test]
async fn a_detectors_role_cannot_delete_the_audit_trail_or_mark_a_decision() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let (rid, finding) = one_request(&lp, Mode::Approve).await;
    let (detector, operator) = tables(&lp).await;
    let fid = finding["id"].as_str().unwrap();
    let trail = operator
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(&format!("AUDIT#{fid}")))
        .send()
        .await
        .unwrap();
    let first = trail.items().first().expect("an audit item").clone();
    let deleted = detector
        .delete_item()
        .table_name(TABLE)
        .key("pk", first["pk"].clone())
        .key("sk", first["sk"].clone())
        .send()
        .await;
    assert!(refused(deleted), "idle-ec2's role deleted an audit item");
    // Nor may it mark the request's decision over (or clear that mark).
    let mark = detector
        .delete_item()
        .table_name(TABLE)
        .key("pk", s(&format!("SPENT#{rid}")))
        .key("sk", s("CLOSED"))
        .send()
        .await;
    assert!(refused(mark), "idle-ec2's role touched the decisions' marks");
    let audit = lp.state().audit_trail(fid).await.unwrap();
    assert!(!audit.is_empty());
}

/// Every function of the template (as its role, in the strict local AWS) asked for every secret:
/// the readers of each, exactly. Slack's delivery credentials: slack-notify's; Slack's signing
/// secret and the identity provider's: the approval function's; the Jira token: jira-sync's; the
/// link key: the functions that mint or verify links; the decision key: the approval function's.
#[tokio::test]
async fn each_secret_is_readable_by_exactly_the_functions_that_need_it() {
    let moto = finops_tests::Moto::start().expect("moto");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let create = |name: &'static str, value: &'static str| {
        let sm = sm.clone();
        async move { seed::create_secret(&sm, name, value).await }
    };
    let approval = create("finops/approval", r#"{"slack_signing_secret": "s"}"#).await;
    let jira = create(
        "finops/jira",
        r#"{"jira_email": "a@example.com", "jira_api_token": "t"}"#,
    )
    .await;
    let mut stack = finops_tests::Stack {
        secret_arn: create(
            "finops/slack",
            r#"{"slack_webhook_url": "https://hooks.slack.com/services/T/B/X"}"#,
        )
        .await,
        link_secret_arn: create("finops/approval-links", r#"{"link_signing_key": "k"}"#).await,
        report_link_secret_arn: create("finops/report-links", r#"{"report_link_key": "r"}"#).await,
        decision_secret_arn: create("finops/decisions", r#"{"decision_key": "d"}"#).await,
        ..finops_tests::Stack::default()
    };
    stack.parameters.insert("EnableJira".into(), "true".into());
    let secrets = |stack: &finops_tests::Stack| {
        vec![
            ("SecretArn", stack.secret_arn.clone()),
            ("ApprovalSecretArn", approval.clone()),
            ("JiraSecretArn", jira.clone()),
            ("LinkSecret", stack.link_secret_arn.clone()),
            ("ReportLinkSecret", stack.report_link_secret_arn.clone()),
            ("DecisionSecret", stack.decision_secret_arn.clone()),
        ]
    };
    let readers = |stack: finops_tests::Stack| {
        let moto = &moto;
        let secrets = secrets(&stack);
        async move {
            let functions = moto.template(&stack).await;
            let mut readers: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
            for (name, f) in functions.as_object().unwrap() {
                if f["deployed"] != true {
                    continue;
                }
                let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config_as(name, &stack).await);
                for (secret, arn) in &secrets {
                    if sm.get_secret_value().secret_id(arn).send().await.is_ok() {
                        readers.entry(secret).or_default().push(name.clone());
                    }
                }
            }
            readers
        }
    };
    let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();

    // A secret per function.
    let mut split = stack.clone();
    split.parameters.insert("ApprovalSecretArn".into(), approval.clone());
    split.parameters.insert("JiraSecretArn".into(), jira.clone());
    let r = readers(split).await;
    assert_eq!(r.get("SecretArn"), Some(&list(&["slack-notify"])), "{r:?}");
    // The approval function and its executor are one role (the same code without the URL).
    assert_eq!(
        r.get("ApprovalSecretArn"),
        Some(&list(&["approval", "approval-executor"])),
        "{r:?}"
    );
    assert_eq!(r.get("JiraSecretArn"), Some(&list(&["jira-sync"])), "{r:?}");
    assert_eq!(
        r.get("LinkSecret"),
        Some(&list(&[
            "approval",
            "approval-executor",
            "ebs-cleanup",
            "idle-ec2",
            "s3-public",
            "tag-compliance"
        ])),
        "{r:?}"
    );
    assert_eq!(
        r.get("ReportLinkSecret"),
        Some(&list(&["approval", "approval-executor", "savings-report"])),
        "{r:?}"
    );
    assert_eq!(
        r.get("DecisionSecret"),
        Some(&list(&["approval", "approval-executor"])),
        "{r:?}"
    );

    // The one-secret layout, before `finops secrets split`: the shared secret is read by the
    // three functions that need one of its keys, no other.
    let r = readers(stack.clone()).await;
    assert_eq!(
        r.get("SecretArn"),
        Some(&list(&["approval", "approval-executor", "jira-sync", "slack-notify"])),
        "{r:?}"
    );
    assert_eq!(r.get("ApprovalSecretArn"), None, "{r:?}");
}

/// The public Function URL cannot starve the executor (issue 25, item 12): the approvals made in
/// Slack (through SNS) and the hourly sweep run in a function of their own, the approval
/// function's code and role without the URL, whose concurrency a flood on the URL never takes.
#[tokio::test]
async fn the_public_url_and_the_executor_do_not_share_their_concurrency() {
    let moto = finops_tests::Moto::start().expect("moto");
    let mut stack = finops_tests::Stack::default();
    stack.parameters.insert("ReserveConcurrency".into(), "true".into());
    let t = moto.template(&stack).await;
    let (url, executor) = (&t["approval"], &t["approval-executor"]);
    assert_eq!(executor["deployed"], true);
    assert_eq!(executor["binary"], "approval");
    let kinds = |f: &Value| -> Vec<String> {
        f["events"]
            .as_object()
            .map(|m| {
                m.values()
                    .map(|e| e["Type"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The URL's function answers the URL only; the executor the SNS approvals and the schedule.
    assert!(kinds(url).is_empty(), "{:?}", url["events"]);
    let mut executor_kinds = kinds(executor);
    executor_kinds.sort();
    assert_eq!(executor_kinds, ["SNS", "Schedule"]);
    assert_eq!(url["reserved_concurrency"], 20);
    assert_eq!(executor["reserved_concurrency"], 2);
    // The same role: what one may do, the other may (and no more).
    assert_eq!(url["statements"], executor["statements"]);
    assert_eq!(url["environment"], executor["environment"]);
}

/// The state as the approval function sees it, where another role writes between two of its
/// reads: the request item is written `approved` right after the function read the switch
/// (which it does between reading the request and taking it).
struct WrittenBetween<'a> {
    inner: &'a remediation::state::DynamoState,
    detector: aws_sdk_dynamodb::Client,
    request_id: String,
}

#[async_trait::async_trait]
impl remediation::state::StateStore for WrittenBetween<'_> {
    async fn open_approval(
        &self,
        r: &remediation::state::ApprovalRequest,
    ) -> remediation::Result<remediation::state::ApprovalOpened> {
        self.inner.open_approval(r).await
    }
    async fn mark_notified(&self, id: &str) -> remediation::Result<()> {
        self.inner.mark_notified(id).await
    }
    async fn mark_unsent(&self, id: &str) -> remediation::Result<()> {
        self.inner.mark_unsent(id).await
    }
    async fn lock_resource(
        &self,
        resource: &str,
        holder: &str,
        now: chrono::DateTime<Utc>,
        read_at: chrono::DateTime<Utc>,
    ) -> remediation::Result<Option<String>> {
        self.inner.lock_resource(resource, holder, now, read_at).await
    }
    async fn lock_done(&self, resource: &str, holder: &str, at: chrono::DateTime<Utc>) -> remediation::Result<()> {
        self.inner.lock_done(resource, holder, at).await
    }
    async fn resource_lock(&self, resource: &str, now: chrono::DateTime<Utc>) -> remediation::Result<Option<String>> {
        self.inner.resource_lock(resource, now).await
    }
    async fn unlock_resource(&self, resource: &str, holder: &str) -> remediation::Result<()> {
        self.inner.unlock_resource(resource, holder).await
    }
    async fn register_scanned(
        &self,
        rule: &str,
        period: &remediation::state::budget::Period,
        now: chrono::DateTime<Utc>,
    ) -> remediation::Result<()> {
        self.inner.register_scanned(rule, period, now).await
    }
    async fn draw_action(
        &self,
        rule: &str,
        period: &remediation::state::budget::Period,
        limits: remediation::state::budget::Limits,
        resource: &str,
        now: chrono::DateTime<Utc>,
    ) -> remediation::Result<remediation::state::budget::Grant> {
        self.inner.draw_action(rule, period, limits, resource, now).await
    }
    async fn begin_action(&self, r: &remediation::state::ActionRecord) -> remediation::Result<()> {
        self.inner.begin_action(r).await
    }
    async fn finish_action(
        &self,
        r: &remediation::state::ActionRecord,
        end: remediation::state::ActionEnd,
        detail: &str,
        at: chrono::DateTime<Utc>,
    ) -> remediation::Result<()> {
        self.inner.finish_action(r, end, detail, at).await
    }
    async fn claim_alert(&self, s: &str, m: &str, l: u32, at: chrono::DateTime<Utc>) -> remediation::Result<bool> {
        self.inner.claim_alert(s, m, l, at).await
    }
    async fn confirm_alert(&self, s: &str, m: &str, l: u32, at: chrono::DateTime<Utc>) -> remediation::Result<()> {
        self.inner.confirm_alert(s, m, l, at).await
    }
    async fn release_alert(&self, s: &str, m: &str, at: chrono::DateTime<Utc>) -> remediation::Result<()> {
        self.inner.release_alert(s, m, at).await
    }
    async fn first_seen(
        &self,
        scope: &str,
        present: &[String],
        now: chrono::DateTime<Utc>,
    ) -> remediation::Result<std::collections::HashMap<String, chrono::DateTime<Utc>>> {
        self.inner.first_seen(scope, present, now).await
    }
    async fn retire_sightings(&self, from: &str, to: &str, present: &[String]) -> remediation::Result<usize> {
        self.inner.retire_sightings(from, to, present).await
    }
    async fn record_compliance(&self, p: &remediation::state::CompliancePoint) -> remediation::Result<()> {
        self.inner.record_compliance(p).await
    }
    async fn sighting(&self, scope: &str, id: &str) -> remediation::Result<Option<chrono::DateTime<Utc>>> {
        self.inner.sighting(scope, id).await
    }
    async fn emergency_stop(&self) -> remediation::Result<Option<remediation::state::EmergencyStop>> {
        let stop = self.inner.emergency_stop().await;
        // The other role's write, between the function's read of the request and its take.
        self.detector
            .update_item()
            .table_name(TABLE)
            .key("pk", s(&format!("APPROVAL#{}", self.request_id)))
            .key("sk", s("REQUEST"))
            .update_expression("SET #st = :approved")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":approved", s("approved"))
            .send()
            .await
            .expect("the detector's role writes its request");
        stop
    }
    async fn snoozes(&self, now: chrono::DateTime<Utc>) -> remediation::Result<Vec<remediation::state::Snooze>> {
        self.inner.snoozes(now).await
    }
    async fn snoozes_of(
        &self,
        id: &str,
        now: chrono::DateTime<Utc>,
    ) -> remediation::Result<Vec<remediation::state::Snooze>> {
        self.inner.snoozes_of(id, now).await
    }
    async fn snooze_ends(
        &self,
        resources: &[&remediation::model::Resource],
        now: chrono::DateTime<Utc>,
    ) -> remediation::Result<std::collections::HashMap<String, chrono::DateTime<Utc>>> {
        self.inner.snooze_ends(resources, now).await
    }
    async fn record_run(&self, run: &remediation::state::RunRecord) -> remediation::Result<()> {
        self.inner.record_run(run).await
    }
}

/// The hostile review's race: a request nobody approved reads `pending`, and is written
/// `approved` before the function takes it. Only a request that reads `approved` (and whose
/// sealed ballots make the quorum) is judged, and only what was judged is taken.
#[tokio::test]
async fn a_request_written_approved_between_two_reads_is_not_executed() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (rid, _) = one_request(&lp, Mode::Approve).await;
    let (detector, _) = tables(&lp).await;
    let app = lp.approval_app();
    let state = lp.state();
    let between = WrittenBetween {
        inner: state,
        detector,
        request_id: rid.clone(),
    };
    let p = policy(Mode::Approve);
    let links = remediation::approval::LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &lp.stack.approval_url).unwrap();
    let approvals = remediation::decide::Approvals {
        store: state,
        state: &between,
        publisher: None,
        links: &links,
        sealer: &app.sealer,
        policy: &p,
        executor: &app.executor,
        checks: &finops_checks::CATALOG,
    };
    let verdict = approvals.execute_approved(&rid, Utc::now()).await;
    assert_ne!(verdict.status, 200, "{verdict:?}");
    assert_eq!(state_of(&lp, &id).await, "running", "{verdict:?}");
}

/// An approved action's record is the approval function's, sealed: rewritten by another role
/// (its finding and way back moved to another instance together, so that the way back is
/// "its own"), it is not rolled back, from Slack or from its page.
#[tokio::test]
async fn an_approved_actions_record_rewritten_by_another_role_is_not_rolled_back() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let c = lp.moto.clients().await;
    let other = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "bo")]).await;
    seed::stop(&c.ec2, &other).await;
    let (rid, _) = one_request(&lp, Mode::Approve).await;
    let links = remediation::approval::LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &lp.stack.approval_url).unwrap();
    let approve = links.token(
        &rid,
        remediation::approval::Decision::Approve,
        Utc::now() + Duration::hours(1),
    );
    let (_, reply) = lp
        .slack_click("finops_approve", &approve, "U0ANA", None, Utc::now())
        .await;
    assert!(reply.contains("Approved"), "{reply}");
    for r in lp.deliver_to_approval(&lp.drain().await).await {
        r.unwrap();
    }
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let results = Loop::of_type(&lp.drain().await, "action-result");
    let action_id = results[0]["action_id"].as_str().unwrap().to_string();
    let rollback_link = results[0]["rollback_url"].as_str().unwrap().to_string();
    // As idle-ec2's role: the record now says the other instance was stopped, and its way back
    // starts it.
    let (detector, operator) = tables(&lp).await;
    let item = operator
        .get_item()
        .table_name(TABLE)
        .key("pk", s(&format!("ACTION#{action_id}")))
        .key("sk", s("RECORD"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let AttributeValue::S(finding) = &item["finding"] else {
        panic!("a finding")
    };
    let moved = finding.replace(&id, &other);
    let way_back = remediation::act::Rollback::StartInstance {
        instance_id: other.clone(),
        region: "us-east-1".into(),
        hibernated: false,
        launched_at: None,
    };
    detector
        .update_item()
        .table_name(TABLE)
        .key("pk", s(&format!("ACTION#{action_id}")))
        .key("sk", s("RECORD"))
        .update_expression("SET finding = :f, #rb = :rb, resource_id = :r")
        .expression_attribute_names("#rb", "rollback")
        .expression_attribute_values(":f", s(&moved))
        .expression_attribute_values(":rb", s(&serde_json::to_string(&way_back).unwrap()))
        .expression_attribute_values(":r", s(&other))
        .send()
        .await
        .unwrap();
    let (_, reply) = lp
        .slack_click("finops_rollback", &token_of(&rollback_link), "U0ANA", None, Utc::now())
        .await;
    assert!(!reply.contains("Rolled back"), "{reply}");
    let (status, page) = lp.get(&rollback_link).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(state_of(&lp, &other).await, "stopped", "the other instance was started");
}

/// A record a detector writes as its own automatic action, with a made-up seal, for a bucket its
/// rule never blocked (the rule is not even in auto mode): no Slack button and no page rolls it
/// back.
#[tokio::test]
async fn a_detectors_made_up_auto_record_with_a_fake_seal_rolls_nothing_back() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let c = lp.moto.clients().await;
    let instance = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::stop(&c.ec2, &instance).await;
    let (_, finding) = {
        idle_instance(&lp, &[("Owner", "bo")]).await;
        one_request(&lp, Mode::Approve).await
    };
    // The finding of a real request, pointed at the stopped instance, as an "auto" action.
    let mut finding: remediation::model::Finding = serde_json::from_value(finding).unwrap();
    finding.resource.id = instance.clone();
    let (detector, _) = tables(&lp).await;
    let way_back = remediation::act::Rollback::StartInstance {
        instance_id: instance.clone(),
        region: "us-east-1".into(),
        hibernated: false,
        launched_at: None,
    };
    let action_id = "forgedautoaction000001";
    detector
        .put_item()
        .table_name(TABLE)
        .item("pk", s(&format!("ACTION#{action_id}")))
        .item("sk", s("RECORD"))
        .item("kind", s("action"))
        .item("status", s("executed"))
        .item("finding_id", s(&finding.id))
        .item("rule", s("idle-ec2"))
        .item("resource_id", s(&instance))
        .item("action", s("stop"))
        .item("mode", s("auto"))
        .item("decided_by", s("auto"))
        .item("finding", s(&serde_json::to_string(&finding).unwrap()))
        .item("pre_state", s("{}"))
        .item("rollback", s(&serde_json::to_string(&way_back).unwrap()))
        .item("started_at", s(&Utc::now().to_rfc3339()))
        .item("seal", s("bm90IGEgcmVhbCBzZWFs"))
        .send()
        .await
        .unwrap();
    let links = remediation::approval::LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &lp.stack.approval_url).unwrap();
    let link = links.link(
        action_id,
        remediation::approval::Decision::Rollback,
        Utc::now() + Duration::days(1),
    );
    let (_, reply) = lp
        .slack_click("finops_rollback", &token_of(&link), "U0ANA", None, Utc::now())
        .await;
    assert!(!reply.contains("Rolled back"), "{reply}");
    let (status, page) = lp.get(&link).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(state_of(&lp, &instance).await, "stopped", "started on a made-up record");
}

/// A detector's own (auto) record, swapped for another between the page a person reads and their
/// POST: the rollback runs only on the record the page showed.
#[tokio::test]
async fn an_auto_record_swapped_after_the_page_was_shown_rolls_nothing_back() {
    let mut p = policy(Mode::Auto);
    p.approvals.anyone_with_link = true;
    let lp = Loop::start(p.clone()).await;
    let first = idle_instance(&lp, &[("Owner", "ana")]).await;
    let deps = lp.detector_deps("idle-ec2", p.clone()).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let results = Loop::of_type(&lp.drain().await, "action-result");
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(state_of(&lp, &first).await, "stopped");
    let action_id = results[0]["action_id"].as_str().unwrap().to_string();
    let link = results[0]["rollback_url"].as_str().unwrap().to_string();
    // A second instance, stopped too (its owner's doing, say).
    let c = lp.moto.clients().await;
    let second = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "bo")]).await;
    seed::stop(&c.ec2, &second).await;
    // The person reads the page: the first instance.
    let (status, page) = lp.get(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&first), "{page}");
    let shown = finops_tests::oidc::form_shown(&page).expect("the record's digest");
    // As idle-ec2's role, before the POST: the record now names the second instance.
    let (detector, operator) = tables(&lp).await;
    let item = operator
        .get_item()
        .table_name(TABLE)
        .key("pk", s(&format!("ACTION#{action_id}")))
        .key("sk", s("RECORD"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let AttributeValue::S(finding) = &item["finding"] else {
        panic!("a finding")
    };
    let way_back = remediation::act::Rollback::StartInstance {
        instance_id: second.clone(),
        region: "us-east-1".into(),
        hibernated: false,
        launched_at: None,
    };
    detector
        .update_item()
        .table_name(TABLE)
        .key("pk", s(&format!("ACTION#{action_id}")))
        .key("sk", s("RECORD"))
        .update_expression("SET finding = :f, #rb = :rb")
        .expression_attribute_names("#rb", "rollback")
        .expression_attribute_values(":f", s(&finding.replace(&first, &second)))
        .expression_attribute_values(":rb", s(&serde_json::to_string(&way_back).unwrap()))
        .send()
        .await
        .unwrap();
    let (status, page) = lp
        .post_form(
            "/decide",
            &[
                ("token", &token_of(&link)),
                ("approver", "ana@example.com"),
                ("shown", &shown),
            ],
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(
        state_of(&lp, &second).await,
        "stopped",
        "the other instance was started"
    );
}
