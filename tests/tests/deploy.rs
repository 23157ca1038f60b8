//! The stack deploys on the first try and works as deployed: the template read against what AWS
//! enforces at deployment and at run time (each rule cites AWS's page), resolved by the harness
//! as CloudFormation would resolve it for a given set of parameters.

use std::collections::BTreeSet;

use finops_tests::infra::{load, strings};
use finops_tests::{Moto, Stack};
use serde_json::Value;
use serde_norway::Value as Yaml;

/// The logical id a `!Ref X` or `!GetAtt X.Arn` names.
fn logical(v: &Yaml) -> Option<String> {
    let shown = format!("{v:?}");
    let start = shown.find("value: String(\"")? + "value: String(\"".len();
    let rest = &shown[start..];
    let name = &rest[..rest.find('"')?];
    Some(name.split('.').next().unwrap_or(name).to_string())
}

/// CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed key `alias/aws/sns`
/// (its key policy cannot be changed to let cloudwatch.amazonaws.com use it): the topic needs a
/// customer managed key whose policy does.
/// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
/// ("If you use a KMS key ... CloudWatch ... kms:Decrypt and kms:GenerateDataKey")
/// https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
#[test]
fn every_topic_an_alarm_publishes_to_has_a_key_cloudwatch_may_use() {
    let t = load("template.yaml");
    let resources = t["Resources"].as_mapping().unwrap();
    let mut alarm_topics = BTreeSet::new();
    for (_, r) in resources {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        for action in r["Properties"]["AlarmActions"].as_sequence().into_iter().flatten() {
            alarm_topics.insert(logical(action).expect("an alarm action names a topic"));
        }
    }
    assert!(!alarm_topics.is_empty(), "the template's alarms publish to a topic");
    for topic in &alarm_topics {
        let key = &t["Resources"][topic.as_str()]["Properties"]["KmsMasterKeyId"];
        assert_ne!(
            key.as_str(),
            Some("alias/aws/sns"),
            "{topic}: CloudWatch cannot use the AWS-managed SNS key"
        );
        let Some(key) = logical(key) else {
            // Unencrypted is allowed by CloudWatch, but checkov asks for encryption at rest.
            panic!("{topic} is not encrypted with a key of this stack: {key:?}");
        };
        let key_resource = &t["Resources"][key.as_str()];
        assert_eq!(
            key_resource["Type"].as_str(),
            Some("AWS::KMS::Key"),
            "{topic}'s key {key}"
        );
        let statements = key_resource["Properties"]["KeyPolicy"]["Statement"]
            .as_sequence()
            .unwrap();
        let cloudwatch_may = statements.iter().any(|s| {
            let actions = strings(&s["Action"]);
            s["Effect"].as_str() == Some("Allow")
                && strings(&s["Principal"]["Service"])
                    .iter()
                    .any(|p| p == "cloudwatch.amazonaws.com")
                && actions.iter().any(|a| a == "kms:Decrypt")
                && actions
                    .iter()
                    .any(|a| a == "kms:GenerateDataKey*" || a == "kms:GenerateDataKey")
        });
        assert!(
            cloudwatch_may,
            "{key}'s policy does not let CloudWatch encrypt to {topic}"
        );
        assert_eq!(
            key_resource["Properties"]["EnableKeyRotation"].as_bool(),
            Some(true),
            "{key} rotates"
        );
    }
}

/// Each function's reserved concurrency as `parameters` deploy it.
async fn reservations(moto: &Moto, parameters: &[(&str, &str)]) -> Vec<(String, u64)> {
    let mut stack = Stack::default();
    for (k, v) in parameters {
        stack.parameters.insert(k.to_string(), v.to_string());
    }
    let functions = moto.template(&stack).await;
    functions
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, f)| f["deployed"] == true)
        .filter_map(|(name, f)| f["reserved_concurrency"].as_u64().map(|n| (name.clone(), n)))
        .collect()
}

/// Lambda keeps at least 100 executions of an account's quota unreserved, and a new account's
/// quota can be as low as 10: any reservation then fails the stack's creation.
/// https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
/// https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html ("Lambda ... keeps at
/// least 100 units of concurrency unreserved"; new accounts may have a lower quota)
#[tokio::test]
async fn the_stack_reserves_no_concurrency_unless_asked_and_then_leaves_100_of_1000_free() {
    let moto = Moto::start().expect("moto");
    let by_default = reservations(&moto, &[]).await;
    assert!(by_default.is_empty(), "reserved by default: {by_default:?}");
    let org = [
        ("ReserveConcurrency", "true"),
        ("EnableOrganization", "true"),
        ("OrganizationId", "o-abcdefghij"),
        ("EnableJira", "true"),
        ("FanOutConcurrency", "170"),
    ];
    let asked = reservations(&moto, &org).await;
    assert!(!asked.is_empty(), "ReserveConcurrency=true reserves");
    let total: u64 = asked.iter().map(|(_, n)| n).sum();
    assert!(
        total + 100 <= 1000,
        "{total} reserved at FanOutConcurrency's maximum: {asked:?}"
    );
    // What `finops doctor` tells the operator the stack needs is the template's own figure.
    assert_eq!(
        total,
        u64::from(finops_checks::permissions::reserved_concurrency(Some(170)))
    );
    let single = reservations(&moto, &[("ReserveConcurrency", "true"), ("EnableJira", "true")]).await;
    let total: u64 = single.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total,
        u64::from(finops_checks::permissions::reserved_concurrency(None)),
        "{single:?}"
    );
}

/// `PutConfigRule` fails without a configuration recorder (NoAvailableConfigurationRecorderException),
/// which rolls the whole stack back: the rules are created only when asked, and samconfig does
/// not ask. https://docs.aws.amazon.com/config/latest/APIReference/API_PutConfigRule.html
#[tokio::test]
async fn config_rules_are_created_only_when_asked_and_samconfig_does_not_ask() {
    let t = load("template.yaml");
    assert_eq!(t["Parameters"]["EnableConfigRules"]["Default"].as_str(), Some("false"));
    let samconfig = std::fs::read_to_string(finops_tests::moto::workspace_root().join("infra/samconfig.toml")).unwrap();
    assert!(
        !samconfig.contains("EnableConfigRules=true") && !samconfig.contains("EnableConfigRules=\\\"true"),
        "samconfig.toml turns the Config rules on:\n{samconfig}"
    );
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() == Some("AWS::Config::ConfigRule") {
            assert_eq!(
                r["Condition"].as_str(),
                Some("ConfigRules"),
                "{name:?} is created unconditionally"
            );
        }
    }
}

/// Does the EventBridge `pattern` match `event`? Exact values, nested objects and `prefix`
/// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html).
fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(k, want)| {
        let got = &event[k];
        match want {
            Value::Object(_) => matches(want, got),
            Value::Array(options) => options.iter().any(|o| match o {
                Value::Object(op) if op.contains_key("prefix") => got
                    .as_str()
                    .zip(op["prefix"].as_str())
                    .is_some_and(|(g, p)| g.starts_with(p)),
                other => other == got,
            }),
            other => other == got,
        }
    })
}

fn compliance_change(rule: &str) -> Value {
    serde_json::json!({
        "version": "0", "id": "e9a1c1ba-0000-0000-0000-000000000000",
        "detail-type": "Config Rules Compliance Change", "source": "aws.config",
        "account": "123456789012", "time": "2026-12-07T06:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:s3:::photos"],
        "detail": {
            "resourceId": "photos", "awsRegion": "us-east-1", "awsAccountId": "123456789012",
            "configRuleName": rule, "recordVersion": "1.0",
            "configRuleARN": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-abcdef",
            "messageType": "ComplianceChangeNotification", "resourceType": "AWS::S3::Bucket",
            "newEvaluationResult": {"complianceType": "NON_COMPLIANT"}
        }
    })
}

/// s3-public wakes on its own two Config rules' NON_COMPLIANT buckets, not on any other rule's
/// (this stack's required-tags rule included). The event's shape:
/// https://docs.aws.amazon.com/config/latest/developerguide/monitor-config-with-cloudwatchevents.html
#[tokio::test]
async fn s3_public_wakes_on_its_own_config_rules_and_no_other() {
    let moto = Moto::start().expect("moto");
    let mut stack = Stack::default();
    stack.parameters.insert("EnableConfigRules".into(), "true".into());
    let functions = moto.template(&stack).await;
    let pattern = &functions["s3-public"]["events"]["ComplianceChange"]["Properties"]["Pattern"];
    assert!(pattern.is_object(), "{pattern}");
    for own in [
        "finops-s3-public-read-prohibited",
        "finops-s3-public-write-prohibited",
        "securityhub-s3-bucket-public-read-prohibited-9f8e7d",
    ] {
        assert!(
            matches(pattern, &compliance_change(own)),
            "{own} does not wake s3-public: {pattern}"
        );
    }
    for other in [
        "finops-required-tags",
        "securityhub-s3-bucket-logging-enabled-1a2b3c",
        "s3-bucket-versioning-enabled",
    ] {
        assert!(
            !matches(pattern, &compliance_change(other)),
            "{other} wakes s3-public: {pattern}"
        );
    }
}

/// `make deploy` works from the repository root whatever `CARGO_TARGET_DIR` says: SAM's
/// cargo-lambda builder copies each binary from `<CodeUri>/target/lambda/<bin>` (aws-lambda-builders'
/// rust_cargo workflow), so `sam build` must build there; the template is found in `infra/`.
#[test]
fn make_deploy_builds_where_sam_copies_from_and_finds_the_template() {
    let root = finops_tests::moto::workspace_root();
    let out = std::process::Command::new("make")
        .current_dir(&root)
        .args(["-n", "deploy"])
        .env("CARGO_TARGET_DIR", "/tmp/a-cache-elsewhere")
        .output()
        .expect("make runs");
    let plan = String::from_utf8_lossy(&out.stdout);
    let build = plan
        .lines()
        .find(|l| l.contains("sam build"))
        .unwrap_or_else(|| panic!("no sam build in:\n{plan}"));
    assert!(
        build.contains(&format!("CARGO_TARGET_DIR={}/target ", root.display())) && build.starts_with("cd infra &&"),
        "{build}"
    );
    assert!(root.join("infra/template.yaml").is_file());
    let deploy = plan.lines().find(|l| l.contains("sam deploy")).expect("a sam deploy");
    assert!(deploy.contains("--guided"), "the first deploy asks: {deploy}");
}

/// The template as SAM transforms it for CloudFormation (`tests/sam_rehearsal.py`: the SAM
/// translator `sam deploy` runs, offline, from the SAM CLI's venv `make test` installs).
fn transformed(parameters: &serde_json::Value) -> Value {
    let root = finops_tests::moto::workspace_root();
    let python = root.join(".venv-sam/bin/python");
    assert!(
        python.is_file(),
        "no SAM venv: run make test (make infra-check installs it)"
    );
    let out = std::process::Command::new(python)
        .arg(root.join("tests/sam_rehearsal.py"))
        .arg(parameters.to_string())
        .output()
        .expect("the SAM translator runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("CloudFormation JSON")
}

/// The deploy rehearsal: for the default parameters, Jira on and organisation mode, the
/// CloudFormation SAM makes deploys each function our resolver says it does, with the same
/// environment, a role that Lambda may assume holding the template's statements (and SAM's own:
/// logs, the dead-letter queue), and the subscriptions and rules as the code expects them.
#[tokio::test]
async fn the_transformed_stack_deploys_each_function_with_its_environment_role_and_events() {
    let moto = Moto::start().expect("moto");
    let sets = [
        serde_json::json!({}),
        serde_json::json!({"EnableJira": "true"}),
        serde_json::json!({"EnableOrganization": "true", "OrganizationId": "o-abcdefghij", "EnableConfigRules": "true"}),
    ];
    for parameters in sets {
        let cfn = transformed(&parameters);
        let resources = cfn["Resources"].as_object().expect("resources");
        let mut stack = Stack::default();
        for (k, v) in parameters.as_object().unwrap() {
            stack.parameters.insert(k.clone(), v.as_str().unwrap().to_string());
        }
        let ours = moto.template(&stack).await;
        for (binary, f) in ours.as_object().unwrap() {
            let logical = f["logical"].as_str().unwrap();
            let function = &resources.get(logical).cloned().unwrap_or(Value::Null);
            if f["deployed"] != true {
                // A Condition-gated function: deployed by CloudFormation only when it holds.
                let condition = function["Condition"].as_str();
                assert!(
                    condition.is_some(),
                    "{binary} is deployed unconditionally by SAM ({parameters})"
                );
                continue;
            }
            assert_eq!(function["Type"], "AWS::Lambda::Function", "{binary} ({parameters})");
            // The same variables, by name, as the resolver (Globals merged under the function's).
            let want: BTreeSet<&str> = f["environment"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let have: BTreeSet<&str> = function["Properties"]["Environment"]["Variables"]
                .as_object()
                .map(|v| v.keys().map(String::as_str).collect())
                .unwrap_or_default();
            assert_eq!(have, want, "{binary}: environment ({parameters})");
            // Its role: assumable by Lambda, with logs, the dead-letter queue and every action
            // the template grants it.
            let role_name = function["Properties"]["Role"]["Fn::GetAtt"][0]
                .as_str()
                .expect("a role of the stack");
            let role = &resources[role_name]["Properties"];
            assert!(
                role["AssumeRolePolicyDocument"]
                    .to_string()
                    .contains("lambda.amazonaws.com"),
                "{binary}"
            );
            assert!(
                role["ManagedPolicyArns"]
                    .to_string()
                    .contains("AWSLambdaBasicExecutionRole"),
                "{binary}: logs"
            );
            let actions: BTreeSet<String> = role["Policies"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
                .flat_map(|s| match &s["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => vec![],
                })
                .collect();
            assert!(actions.contains("sqs:SendMessage"), "{binary}: the dead-letter queue");
            // And the managed policies the stack attaches to the role (the member role's access).
            let mut actions = actions;
            for r in resources.values().filter(|r| r["Type"] == "AWS::IAM::ManagedPolicy") {
                let attached = r["Properties"]["Roles"]
                    .as_array()
                    .is_some_and(|roles| roles.iter().any(|x| x["Ref"] == role_name));
                if attached {
                    for st in r["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap() {
                        match &st["Action"] {
                            Value::String(a) => {
                                actions.insert(a.clone());
                            }
                            Value::Array(a) => actions.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string))),
                            _ => {}
                        }
                    }
                }
            }
            for st in f["statements"].as_array().unwrap() {
                let listed = match &st["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => vec![],
                };
                for a in listed {
                    assert!(
                        actions.contains(&a) || st["Effect"] == "Deny" || role_name.is_empty(),
                        "{binary}: {a} granted in the template but not in SAM's role ({parameters})"
                    );
                }
            }
        }
        // slack-notify's subscription filters the body, so alarms (no attributes) reach it.
        let subscription = &resources["SlackNotifyFunctionMessages"]["Properties"];
        assert_eq!(subscription["FilterPolicyScope"], "MessageBody");
        assert_eq!(subscription["FilterPolicy"]["in_digest"][0]["exists"], false);
        // Only the approval function has a public URL.
        let urls: Vec<&Value> = resources.values().filter(|r| r["Type"] == "AWS::Lambda::Url").collect();
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0]["Properties"]["TargetFunctionArn"]["Ref"], "ApprovalFunction");
    }
}

/// Lambda limits all of a function's environment variables together to 4 KB
/// (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html), and the policy
/// travels in one of them (`FINOPS_POLICY`, the PolicyYaml parameter). With the longest names
/// and ARNs a deployment gives, every function leaves at least 3,000 bytes for the policy, and the
/// README's example policy fits everywhere with room to spare.
#[tokio::test]
async fn every_functions_environment_leaves_room_for_the_policy_within_lambdas_4_kb() {
    let moto = Moto::start().expect("moto");
    let mut stack = Stack::default();
    // The longest a deployment makes them: a 128-character stack name in every name and ARN.
    let long = "x".repeat(128);
    stack.table = format!("{long}-StateTable-ABCDEFGHIJKL");
    stack.topic = format!("arn:aws:sns:ap-southeast-5:123456789012:{long}-events");
    stack.secret_arn = format!("arn:aws:secretsmanager:ap-southeast-5:123456789012:secret:{long}/autopilot-AbCdEf");
    stack.link_secret_arn =
        format!("arn:aws:secretsmanager:ap-southeast-5:123456789012:secret:{long}/approval-links-AbCdEf");
    stack.report_link_secret_arn =
        format!("arn:aws:secretsmanager:ap-southeast-5:123456789012:secret:{long}/report-links-AbCdEf");
    stack.decision_secret_arn =
        format!("arn:aws:secretsmanager:ap-southeast-5:123456789012:secret:{long}/decisions-AbCdEf");
    stack.approval_url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.ap-southeast-5.on.aws/".into();
    stack.report_bucket = format!("{}-reportbucket-abcdefghijkl", &long[..30]);
    let example = "{idle_ec2: {mode: approve}, approvals: {slack_users: [U0ANA, U0BO]}}";
    for jira in ["false", "true"] {
        stack.parameters.insert("EnableJira".into(), jira.into());
        stack.parameters.insert("PolicyYaml".into(), String::new());
        let functions = moto.template(&stack).await;
        for (name, f) in functions.as_object().unwrap() {
            if f["deployed"] != true {
                continue;
            }
            // Lambda counts each name and value.
            let used: usize = f["environment"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| k.len() + v.as_str().unwrap_or_default().len())
                .sum();
            assert!(
                4096 - used >= 3000,
                "{name}: {used} bytes without the policy leave too little for it"
            );
            assert!(used + example.len() < 4096, "{name}");
        }
    }
}
