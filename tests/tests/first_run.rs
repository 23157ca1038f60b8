//! A first run of every function as the template deploys it: each real binary starts with exactly
//! the environment the template gives it (resolved for the parameters of the configuration, the
//! rest at their defaults), runs as its template role (moto authorises every request as AWS
//! would), and answers its sample event. A configuration the template can produce must never
//! leave a function failing at start-up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use finops_tests::httpserver::{JiraStandIn, Server, SlackStandIn};
use finops_tests::local::Watch;
use finops_tests::moto::workspace_root;
use finops_tests::{seed, Moto, Stack};
use serde_json::{json, Value};

const JIRA_EMAIL: &str = "finops-bot@example.com";
const JIRA_TOKEN: &str = "ATATT3xFfGF0-test-token";

/// The sample event each function is first invoked with (`events/<function>/…`).
fn sample_event(function: &str) -> Option<PathBuf> {
    let function = match function {
        // The approval function's executor: the same binary, on the schedule and SNS.
        "approval-executor" => "approval",
        f => f,
    };
    let file = match function {
        "approval" => "scheduled.json",
        "slack-notify" => "sns-cloudwatch-alarm.json",
        "jira-sync" => "sns-finding.json",
        "s3-public" | "tag-compliance" | "idle-ec2" | "ebs-cleanup" | "cost-alert" | "rightsizing"
        | "savings-report" => "scheduled.json",
        _ => return None,
    };
    Some(workspace_root().join("events").join(function).join(file))
}

/// A deployment's outside pieces in moto and the stand-ins: the table, the topic, the operator's
/// secret (Slack webhook, signing secret, Jira credentials), the link secret the template
/// generates, the report bucket.
struct Deployment {
    moto: Moto,
    stack: Stack,
    _slack: (SlackStandIn, Server),
    jira: (JiraStandIn, Server),
}

async fn deployment() -> Deployment {
    let moto = Moto::start().expect("moto");
    let c = moto.clients().await;
    let slack = SlackStandIn::start().await;
    let jira = JiraStandIn::start("FIN", JIRA_EMAIL, JIRA_TOKEN).await;
    let mut stack = Stack::default();
    seed::create_table(&c.dynamodb, &stack.table).await;
    stack.topic = c
        .sns
        .create_topic()
        .name("finops-events")
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn()
        .unwrap_or_default()
        .to_string();
    seed::encrypt_topic(&c.sns, &stack.topic, &stack.topic_key_arn).await;
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let secret = json!({
        "slack_webhook_url": format!("{}/services/T000/B000/XXXX", slack.1.url()),
        "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
        "jira_email": JIRA_EMAIL,
        "jira_api_token": JIRA_TOKEN,
    });
    stack.secret_arn = seed::create_secret(&sm, "finops/autopilot", &secret.to_string()).await;
    // As the template's LinkSecret: the approval URL and a generated key.
    let link = json!({"approval_url": stack.approval_url, "link_signing_key": "x".repeat(64)});
    stack.link_secret_arn = seed::create_secret(&sm, "finops/approval-links", &link.to_string()).await;
    // As the template's ReportLinkSecret.
    let report = json!({"approval_url": stack.approval_url, "report_link_key": "r".repeat(64)});
    stack.report_link_secret_arn = seed::create_secret(&sm, "finops/report-links", &report.to_string()).await;
    // As the template's DecisionSecret.
    let decisions = json!({"decision_key": "d".repeat(64)});
    stack.decision_secret_arn = seed::create_secret(&sm, "finops/decisions", &decisions.to_string()).await;
    aws_sdk_s3::Client::new(&moto.sdk_config().await)
        .create_bucket()
        .bucket(&stack.report_bucket)
        .send()
        .await
        .expect("CreateBucket");
    Deployment {
        moto,
        stack,
        _slack: slack,
        jira,
    }
}

/// A function binary's environment: exactly the template's (as `deployed`, resolved, says), the
/// local AWS, and the access key of its role there.
async fn binary_env(d: &Deployment, function: &str, deployed: &Value, stack: &Stack) -> Vec<(String, String)> {
    let key = d.moto.role_key(function, stack).await;
    let mut env: Vec<(String, String)> = deployed["environment"]
        .as_object()
        .expect("environment")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    env.extend([
        ("AWS_ENDPOINT_URL".to_string(), d.moto.endpoint()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), key),
        ("AWS_SECRET_ACCESS_KEY".into(), "role-secret".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]);
    env
}

/// Starts every function `parameters` deploy with the template's environment and its role, and
/// invokes it with its sample event: what each answered (or why it failed).
async fn first_runs(d: &Deployment, parameters: &[(&str, String)]) -> BTreeMap<String, Result<Value, String>> {
    let mut stack = d.stack.clone();
    for (k, v) in parameters {
        stack.parameters.insert(k.to_string(), v.clone());
    }
    if parameters
        .iter()
        .any(|(k, v)| *k == "EnableOrganization" && v == "true")
    {
        stack.organisation(&d.moto).await;
    }
    let template = d.moto.template(&stack).await;
    let mut out = BTreeMap::new();
    for (function, deployed) in template.as_object().expect("functions") {
        if deployed["deployed"] != true {
            continue;
        }
        let Some(event) = sample_event(function) else {
            continue;
        };
        let env = binary_env(d, function, deployed, &stack).await;
        // The approval function's executor runs the approval binary.
        let binary = deployed["binary"].as_str().unwrap_or(function);
        let answer = Watch::start(binary, &env).and_then(|w| w.invoke(binary, &event));
        out.insert(function.clone(), answer);
    }
    out
}

/// Every function answered its sample event, and no request of theirs was refused by IAM (a
/// refusal a function reported as a failed outcome would otherwise pass unseen).
async fn assert_all_answered(d: &Deployment, runs: &BTreeMap<String, Result<Value, String>>, configuration: &str) {
    let refused = d.moto.iam_refusals().await;
    assert!(
        refused.is_empty(),
        "{configuration}: refused by the template's roles: {refused:#?}"
    );
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|(f, r)| r.as_ref().err().map(|e| format!("{f}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{configuration}: functions that did not answer their sample event:\n{}",
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_starts_and_answers_as_the_default_parameters_deploy_it() {
    let d = deployment().await;
    let runs = first_runs(&d, &[]).await;
    assert!(runs.len() >= 9, "{runs:?}");
    assert_all_answered(&d, &runs, "defaults").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jira_on_jira_sync_starts_and_files_the_sample_finding() {
    let d = deployment().await;
    let policy = json!({"jira": {"site_url": d.jira.1.url(), "project_key": "FIN"}}).to_string();
    let runs = first_runs(&d, &[("EnableJira", "true".into()), ("PolicyYaml", policy)]).await;
    assert!(runs.contains_key("jira-sync"), "{runs:?}");
    assert_all_answered(&d, &runs, "EnableJira=true").await;
    assert_eq!(d.jira.0.issues().len(), 1, "the sample finding filed one issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_organisation_mode_every_function_starts_and_answers() {
    let d = deployment().await;
    let org = aws_sdk_organizations::Client::new(&d.moto.sdk_config().await);
    org.create_organization().send().await.expect("CreateOrganization");
    let policy = json!({"organization": {"accounts_from": "organizations"}}).to_string();
    let runs = first_runs(&d, &[("EnableOrganization", "true".into()), ("PolicyYaml", policy)]).await;
    assert_all_answered(&d, &runs, "EnableOrganization=true").await;
}

/// Without its report-link secret (deleted, or not yet created while a stack update runs), the
/// approval function still starts and sweeps (only its report links go), and savings-report
/// refuses to run rather than send a presigned link that dies with its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_report_link_secret_approvals_go_on_and_the_report_refuses_clearly() {
    let d = deployment().await;
    let mut stack = d.stack.clone();
    stack.report_link_secret_arn =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops/report-links-Gone00".into();
    aws_sdk_secretsmanager::Client::new(&d.moto.sdk_config().await)
        .delete_secret()
        .secret_id("finops/report-links")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("DeleteSecret");
    let template = d.moto.template(&stack).await;
    let mut answers = BTreeMap::new();
    for function in ["approval", "savings-report"] {
        let env = binary_env(&d, function, &template[function], &stack).await;
        let event = sample_event(function).expect("a sample event");
        answers.insert(
            function,
            Watch::start(function, &env).and_then(|w| w.invoke(function, &event)),
        );
    }
    assert!(answers["approval"].is_ok(), "{:?}", answers["approval"]);
    let refused = answers["savings-report"].as_ref().expect_err("savings-report refuses");
    assert!(refused.contains("no report-link key"), "{refused}");
}
