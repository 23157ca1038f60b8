//! The SAM template against the code: every function is deployed, with exactly the IAM actions
//! its code declares (`finops_checks::permissions`), each on the resource it belongs to, and no
//! changing action on `*`.

use std::collections::{BTreeMap, BTreeSet};

use finops_checks::permissions::{for_function, Scope, FUNCTIONS};
use serde_norway::Value;

use finops_tests::infra::strings;

fn template() -> Value {
    finops_tests::infra::load("template.yaml")
}

/// What a statement's `Resource` points at.
fn scopes(resource: &Value) -> Vec<Scope> {
    let items: Vec<&Value> = match resource {
        Value::Sequence(items) => items.iter().collect(),
        one => vec![one],
    };
    items
        .into_iter()
        .map(|r| {
            let shown = format!("{r:?}");
            if shown.contains("TopicKey.Arn") {
                Scope::TopicKey
            } else if shown.contains("StateTable.Arn") {
                Scope::Table
            } else if shown.contains("\"Topic\"") {
                Scope::Topic
            } else if shown.contains("\"DecisionSecret\"") {
                Scope::DecisionSecret
            } else if shown.contains("\"SecretArn\"") {
                Scope::Secret
            } else if shown.contains("\"ReportLinkSecret\"") || shown.contains("report-links") {
                Scope::ReportLinkSecret
            } else if shown.contains("\"LinkSecret\"") || shown.contains("approval-links") {
                Scope::LinkSecret
            } else if shown.contains("ReportBucket.Arn") {
                Scope::ReportBucket
            } else if shown.contains("ResultsBucket.Arn") {
                Scope::ResultsBucket
            } else {
                Scope::Account
            }
        })
        .collect()
}

/// Each deployed binary's grants, from its `Policies` statements.
fn granted() -> BTreeMap<String, BTreeSet<(Scope, String)>> {
    let t = template();
    let mut out = BTreeMap::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        // A function on another's role (the approval function's executor) is checked as that one.
        if r["Type"].as_str() != Some("AWS::Serverless::Function") || r["Properties"].get("Role").is_some() {
            continue;
        }
        assert_eq!(r["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
        let mut grants = BTreeSet::new();
        for policy in r["Properties"]["Policies"].as_sequence().unwrap() {
            for st in policy["Statement"].as_sequence().unwrap() {
                if st["Effect"].as_str() == Some("Deny") {
                    continue;
                }
                assert_eq!(st["Effect"].as_str(), Some("Allow"));
                let actions = strings(&st["Action"]);
                let where_ = scopes(&st["Resource"]);
                for a in &actions {
                    let changes = ["Stop", "Start", "Delete", "Create", "Put"]
                        .iter()
                        .any(|verb| a.split(':').nth(1).is_some_and(|n| n.starts_with(verb)))
                        && a != "config:PutEvaluations";
                    if changes {
                        assert_ne!(
                            st["Resource"].as_str(),
                            Some("*"),
                            "{binary}: {a} must be scoped to a resource type, not *"
                        );
                    }
                    for s in &where_ {
                        grants.insert((*s, a.clone()));
                    }
                }
            }
        }
        out.insert(binary, grants);
    }
    out
}

#[test]
fn every_function_gets_exactly_what_its_code_declares() {
    let granted = granted();
    let deployed: BTreeSet<&str> = granted.keys().map(String::as_str).collect();
    let declared: BTreeSet<&str> = FUNCTIONS.iter().copied().collect();
    assert_eq!(
        deployed, declared,
        "the template deploys exactly the declared functions"
    );
    let crates: BTreeSet<String> = std::fs::read_dir(finops_tests::moto::workspace_root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        crates.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        declared,
        "every function crate is declared"
    );
    for f in FUNCTIONS {
        let want: BTreeSet<(Scope, String)> = for_function(f)
            .unwrap()
            .into_iter()
            .map(|(s, a)| (s, a.to_string()))
            .collect();
        let have = &granted[*f];
        let extra: Vec<_> = have.difference(&want).collect();
        let missing: Vec<_> = want.difference(have).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{f}: granted but not declared {extra:?}; declared but not granted {missing:?}"
        );
    }
}

#[test]
fn secrets_never_sit_in_plain_environment_variables() {
    let t = template();
    let text = format!("{t:?}").to_ascii_lowercase();
    for name in ["webhook", "bot_token", "signing_secret", "link_signing_key", "xoxb-"] {
        assert!(
            !text.contains(&format!("\"finops_{name}")) && !text.contains("xoxb-"),
            "{name} appears in the template"
        );
    }
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(env.get("FINOPS_LINK_SIGNING_KEY").is_none());
    // Secrets come from Secrets Manager, each function's own: only the functions with a secret
    // are told where theirs is (no global FINOPS_SECRET_ID every function would read).
    assert!(env.get("FINOPS_SECRET_ID").is_none());
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        // A function on another's role (the approval function's executor) is checked as that one.
        if r["Type"].as_str() != Some("AWS::Serverless::Function") || r["Properties"].get("Role").is_some() {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let named = r["Properties"]["Environment"]["Variables"]
            .get("FINOPS_SECRET_ID")
            .is_some();
        assert_eq!(
            named,
            finops_checks::permissions::SECRET_FUNCTIONS.contains(&binary),
            "{binary}: FINOPS_SECRET_ID"
        );
    }
}

#[test]
fn whoever_may_stop_or_delete_is_denied_it_on_exempt_resources() {
    let t = template();
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        // A function on another's role (the approval function's executor) is checked as that one.
        if r["Type"].as_str() != Some("AWS::Serverless::Function") || r["Properties"].get("Role").is_some() {
            continue;
        }
        let statements: Vec<&Value> = r["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().unwrap())
            .collect();
        let allowed: BTreeSet<String> = statements
            .iter()
            .filter(|s| s["Effect"].as_str() == Some("Allow"))
            .flat_map(|s| strings(&s["Action"]))
            .collect();
        for destructive in ["ec2:StopInstances", "ec2:DeleteVolume"] {
            if !allowed.contains(destructive) {
                continue;
            }
            let denied = statements.iter().any(|s| {
                s["Effect"].as_str() == Some("Deny")
                    && strings(&s["Action"]).iter().any(|a| a == destructive)
                    && s["Condition"]["StringEqualsIgnoreCase"]["aws:ResourceTag/finops:exempt"].as_str()
                        == Some("true")
            });
            assert!(
                denied,
                "{name:?} may {destructive} but is not denied it on finops:exempt=true resources"
            );
        }
    }
}

/// Every Allow statement of every function, with the function's binary.
fn allow_statements() -> Vec<(String, Value)> {
    let t = template();
    let mut out = Vec::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        // A function on another's role (the approval function's executor) is checked as that one.
        if r["Type"].as_str() != Some("AWS::Serverless::Function") || r["Properties"].get("Role").is_some() {
            continue;
        }
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_string();
        for policy in r["Properties"]["Policies"].as_sequence().unwrap() {
            for st in policy["Statement"].as_sequence().unwrap() {
                if st["Effect"].as_str() == Some("Allow") {
                    out.push((binary.clone(), st.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn tags_can_be_written_only_as_the_code_writes_them_never_finops_exempt() {
    let mut tag_grants = 0;
    for (binary, st) in allow_statements() {
        let actions = strings(&st["Action"]);
        if !actions.iter().any(|a| a == "ec2:CreateTags" || a == "ec2:DeleteTags") {
            continue;
        }
        tag_grants += 1;
        let keys = strings(&st["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]);
        let at_creation = strings(&st["Condition"]["StringEquals"]["ec2:CreateAction"]);
        if actions.iter().any(|a| a == "ec2:DeleteTags") {
            assert!(
                !keys.is_empty(),
                "{binary}: DeleteTags without an aws:TagKeys limit: {st:?}"
            );
        }
        if !keys.is_empty() {
            // ForAllValues alone holds for a request naming no key, and DeleteTags without keys
            // deletes every tag, finops:exempt included.
            assert_eq!(
                st["Condition"]["Null"]["aws:TagKeys"].as_str(),
                Some("false"),
                "{binary}: the tag keys are not required to be named: {st:?}"
            );
        }
        assert!(
            !keys.is_empty() || !at_creation.is_empty(),
            "{binary}: tags writable on existing resources without an aws:TagKeys limit: {st:?}"
        );
        for k in &keys {
            assert!(
                k.starts_with("finops:") && k != "finops:exempt",
                "{binary}: tag key {k} is not one the code writes"
            );
        }
    }
    assert!(tag_grants >= 3, "the tag grants were found ({tag_grants})");
}

#[test]
fn kms_is_usable_only_by_ec2_on_the_functions_behalf() {
    let mut kms = 0;
    for (binary, st) in allow_statements() {
        let actions = strings(&st["Action"]);
        if !actions.iter().any(|a| a.starts_with("kms:")) {
            continue;
        }
        if scopes(&st["Resource"]) == [Scope::TopicKey] {
            // Publishing to the encrypted topic: the topic's key only, through SNS only.
            let via = format!("{:?}", st["Condition"]["StringEquals"]["kms:ViaService"]);
            assert!(
                via.contains("sns."),
                "{binary}: the topic's key without kms:ViaService sns: {st:?}"
            );
            continue;
        }
        kms += 1;
        // `!Sub "ec2.${AWS::Region}.amazonaws.com"`: a tagged value, read as shown.
        let via = format!("{:?}", st["Condition"]["StringLike"]["kms:ViaService"]);
        assert!(via.contains("ec2."), "{binary}: KMS without kms:ViaService ec2: {st:?}");
        if actions.iter().any(|a| a == "kms:CreateGrant") {
            assert_eq!(
                st["Condition"]["Bool"]["kms:GrantIsForAWSResource"].as_str(),
                Some("true"),
                "{binary}: CreateGrant not limited to AWS resources: {st:?}"
            );
        }
    }
    assert!(kms >= 2, "the KMS grants were found ({kms})");
}

/// A function's statements with their effect.
fn statements(binary: &str) -> Vec<Value> {
    let t = template();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        if r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary) && r["Properties"].get("Role").is_none()
        {
            return r["Properties"]["Policies"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|p| p["Statement"].as_sequence().unwrap().clone())
                .collect();
        }
    }
    panic!("no function {binary}");
}

#[test]
fn the_link_key_the_notifiers_keys_and_the_switch_are_each_closed_to_who_does_not_need_them() {
    use finops_checks::permissions::{writable_keys, FUNCTIONS, LINK_FUNCTIONS};
    let t = template();
    // The link key is generated by the template, in a secret of its own, with the approval URL.
    let link = &t["Resources"]["LinkSecret"];
    assert_eq!(link["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    let generated = &link["Properties"]["GenerateSecretString"];
    assert_eq!(generated["GenerateStringKey"].as_str(), Some("link_signing_key"));
    assert!(format!("{:?}", generated["SecretStringTemplate"]).contains("ApprovalFunctionUrl.FunctionUrl"));
    let writes = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"];
    for f in FUNCTIONS {
        let sts = statements(f);
        let reads_link = sts
            .iter()
            .any(|s| s["Effect"].as_str() == Some("Allow") && scopes(&s["Resource"]).contains(&Scope::LinkSecret));
        assert_eq!(reads_link, LINK_FUNCTIONS.contains(f), "{f}: link secret");
        let reads_report_link = sts.iter().any(|s| {
            s["Effect"].as_str() == Some("Allow") && scopes(&s["Resource"]).contains(&Scope::ReportLinkSecret)
        });
        assert_eq!(
            reads_report_link,
            finops_checks::permissions::REPORT_LINK_FUNCTIONS.contains(f),
            "{f}: report-link secret"
        );
        let table_writes: Vec<&Value> = sts
            .iter()
            .filter(|s| {
                s["Effect"].as_str() == Some("Allow")
                    && scopes(&s["Resource"]).contains(&Scope::Table)
                    && strings(&s["Action"]).iter().any(|a| writes.contains(&a.as_str()))
            })
            .collect();
        if let Some(keys) = writable_keys(f) {
            for s in &table_writes {
                let allowed = strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
                assert_eq!(allowed, keys.to_vec(), "{f}: its writes are limited to its own keys");
                for forbidden in ["APPROVAL#", "ACTION#", "CONTROL", "SNOOZES"] {
                    assert!(allowed.iter().all(|k| !k.starts_with(forbidden)), "{f}");
                }
            }
        }
        // Every detector sets snoozed resources aside, so each can read them (the key-limited
        // ones in a read-only statement).
        if !matches!(*f, "slack-notify" | "jira-sync" | "savings-report" | "org-fanout") {
            let reads_snoozes = sts.iter().any(|s| {
                let keys = strings(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
                s["Effect"].as_str() == Some("Allow")
                    && scopes(&s["Resource"]).contains(&Scope::Table)
                    && strings(&s["Action"]).iter().any(|a| a == "dynamodb:Query")
                    && (keys.is_empty() || keys.iter().any(|k| k == "SNOOZES"))
            });
            assert!(reads_snoozes, "{f}: reads the snoozes");
        }
        if *f != "approval" && !table_writes.is_empty() {
            let denied = sts.iter().any(|s| {
                s["Effect"].as_str() == Some("Deny")
                    && writes.iter().all(|w| strings(&s["Action"]).iter().any(|a| a == w))
                    && strings(&s["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"])
                        == finops_checks::permissions::OPERATOR_KEYS
            });
            assert!(
                denied,
                "{f} may write the table: it must be denied the emergency switch and the snoozes"
            );
        }
    }
    // The approval function reaches the link secret by name (a !Ref would be a cycle) and the
    // notifiers never get the key: jira-sync gets the URL only.
    let jira = &t["Resources"]["JiraSyncFunction"]["Properties"]["Environment"]["Variables"];
    assert!(jira.get("FINOPS_LINK_SECRET_ID").is_none());
    assert!(format!("{:?}", jira["FINOPS_APPROVAL_URL"]).contains("ApprovalFunctionUrl"));
}

/// A scan that could assess only part of what it looked at succeeds: the failed-outcomes alarm is
/// what tells the operator. It must watch the very series the scans emit (EMF `Outcomes` with
/// `Rule` and `Outcome=failed`) for every scanning rule.
#[test]
fn the_failed_outcomes_alarm_watches_the_series_every_scan_emits() {
    use remediation::model::{Outcome, OutcomeKind, RunReport};
    let t = template();
    let alarm = &t["Resources"]["FailedOutcomesAlarm"]["Properties"];
    assert!(
        format!("{:?}", alarm["AlarmActions"]).contains("\"Topic\""),
        "{alarm:?}"
    );
    let watched: BTreeSet<(String, String, String)> = alarm["Metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("MetricStat"))
        .map(|s| {
            let metric = &s["Metric"];
            let dims: BTreeMap<String, String> = metric["Dimensions"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|d| (d["Name"].as_str().unwrap().into(), d["Value"].as_str().unwrap().into()))
                .collect();
            assert_eq!(dims.len(), 2, "{dims:?}");
            (
                format!(
                    "{}/{}",
                    metric["Namespace"].as_str().unwrap(),
                    metric["MetricName"].as_str().unwrap()
                ),
                dims["Rule"].clone(),
                dims["Outcome"].clone(),
            )
        })
        .collect();
    let rules = [
        finops_checks::idle_ec2::detect::RULE,
        finops_checks::ebs_cleanup::detect::RULE,
        finops_checks::s3_public::detect::RULE,
        finops_checks::cost_alert::detect::RULE,
        finops_checks::tag_compliance::detect::RULE,
        finops_checks::rightsizing::detect::RULE,
    ];
    let emitted: BTreeSet<(String, String, String)> = rules
        .iter()
        .flat_map(|rule| {
            let report = RunReport {
                rule: rule.to_string(),
                mode: remediation::policy::Mode::DryRun,
                scanned: 1,
                findings: vec![],
                outcomes: vec![Outcome::new("x", OutcomeKind::Failed, "throttled")],
                estimated_monthly_savings_usd: 0.0,
                failed: 1,
                findings_total: 0,
                skipped: 0,
                compliance: None,
                notes: vec![],
                held: 0,
                own_cost_usd: None,
            };
            remediation::telemetry::run_metrics(&report, 0)
        })
        .filter(|r| r.get("Outcome").is_some())
        .map(|r| {
            let m = &r["_aws"]["CloudWatchMetrics"][0];
            (
                format!(
                    "{}/{}",
                    m["Namespace"].as_str().unwrap(),
                    m["Metrics"][0]["Name"].as_str().unwrap()
                ),
                r["Rule"].as_str().unwrap().to_string(),
                r["Outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(watched, emitted);
}
