//! The organisation fan-out in the templates: the state machine's shape and bounds, who may
//! assume the member role, and the member role (`infra/member-role.yaml`) granting exactly what
//! the functions that reach member accounts declare. (cfn-lint checks the States Language itself
//! in `make infra-check`.)

use std::collections::BTreeSet;

use finops_checks::permissions::{member_role, MEMBER_FUNCTIONS};
use serde_norway::Value;

use finops_tests::infra::{load, strings};

fn definition() -> Value {
    let t = load("template.yaml");
    let sm = &t["Resources"]["FanOutStateMachine"];
    assert_eq!(sm["Type"].as_str(), Some("AWS::StepFunctions::StateMachine"));
    assert_eq!(
        sm["Condition"].as_str(),
        Some("Org"),
        "single-account mode stays the default"
    );
    sm["Properties"]["Definition"].clone()
}

/// Every state of a definition and of its Map's item processor, by name.
fn states(def: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, s) in def["States"].as_mapping().unwrap() {
        out.push((name.as_str().unwrap().to_string(), s.clone()));
        if let Some(inner) = s.get("ItemProcessor") {
            out.extend(states(inner));
        }
    }
    out
}

#[test]
fn the_fan_out_is_a_distributed_map_bounded_by_the_policy_retried_on_throttling_and_tolerant_of_failures() {
    let def = definition();
    let scan = &def["States"]["Scan"];
    assert_eq!(scan["Type"].as_str(), Some("Map"));
    assert_eq!(
        scan["ItemProcessor"]["ProcessorConfig"]["Mode"].as_str(),
        Some("DISTRIBUTED")
    );
    // The bounds come from the targets step, which reads them from the policy.
    assert_eq!(
        scan["MaxConcurrencyPath"].as_str(),
        Some("$.step.targets.max_concurrency")
    );
    assert_eq!(
        scan["ToleratedFailurePercentagePath"].as_str(),
        Some("$.step.targets.tolerated_failure_percentage")
    );
    assert_eq!(def["States"]["Targets"]["ResultPath"].as_str(), Some("$.step"));
    let defaults = remediation::policy::OrganizationPolicy::default();
    assert_eq!(
        (defaults.max_concurrency, defaults.tolerated_failure_percentage),
        (10, 20)
    );
    // Items from the file the targets step wrote; results to S3 under the run's prefix.
    assert_eq!(
        scan["ItemReader"]["Resource"].as_str(),
        Some("arn:aws:states:::s3:getObject")
    );
    assert_eq!(
        scan["ResultWriter"]["Parameters"]["Prefix.$"].as_str(),
        Some("$.step.targets.prefix")
    );
    // Each item invokes the function the schedule named, with the item event as the payload.
    let item = &scan["ItemProcessor"]["States"]["Item"];
    assert_eq!(item["Parameters"]["FunctionName.$"].as_str(), Some("$.function"));
    assert_eq!(item["Parameters"]["Payload.$"].as_str(), Some("$.item"));
    assert_eq!(scan["ItemSelector"]["item.$"].as_str(), Some("$$.Map.Item.Value"));
    // Every Lambda task retries Lambda's throttling with growing, jittered waits.
    let mut tasks = 0;
    for (name, s) in states(&def) {
        if s["Resource"].as_str() != Some("arn:aws:states:::lambda:invoke") {
            continue;
        }
        tasks += 1;
        let retry = s["Retry"].as_sequence().unwrap_or_else(|| panic!("{name}: no Retry"));
        let throttled = retry
            .iter()
            .find(|r| strings(&r["ErrorEquals"]).contains(&"Lambda.TooManyRequestsException".to_string()))
            .unwrap_or_else(|| panic!("{name}: Lambda.TooManyRequestsException is not retried"));
        assert!(throttled["BackoffRate"].as_f64().unwrap() > 1.0, "{name}");
        assert!(throttled["MaxAttempts"].as_u64().unwrap() >= 3, "{name}");
        assert_eq!(throttled["JitterStrategy"].as_str(), Some("FULL"), "{name}");
        assert!(
            strings(&throttled["ErrorEquals"]).contains(&"Retryable".to_string()),
            "{name}: the functions' own Retryable errors are retried"
        );
    }
    assert_eq!(tasks, 4, "targets, item, summary, summary of a failed run");
    // A Map that fails as a whole still gets its digest, then the execution fails (alarm).
    let catch = &scan["Catch"][0];
    assert_eq!(catch["Next"].as_str(), Some("SummaryOfAFailedRun"));
    assert_eq!(def["States"]["SummaryOfAFailedRun"]["Next"].as_str(), Some("RunFailed"));
    assert_eq!(def["States"]["RunFailed"]["Type"].as_str(), Some("Fail"));
    // Every Next names a state of its own level (a Map's processor is a level of its own).
    fn check_level(level: &Value) {
        let names: BTreeSet<&str> = level["States"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert!(names.contains(level["StartAt"].as_str().unwrap()));
        for (name, s) in level["States"].as_mapping().unwrap() {
            let catches = s["Catch"].as_sequence().cloned().unwrap_or_default();
            let nexts = s
                .get("Next")
                .into_iter()
                .chain(catches.iter().filter_map(|c| c.get("Next")));
            for next in nexts {
                assert!(
                    names.contains(next.as_str().unwrap()),
                    "{name:?} goes to {next:?}, not a state of its level"
                );
            }
            if let Some(inner) = s.get("ItemProcessor") {
                check_level(inner);
            }
        }
    }
    check_level(&def);
}

#[test]
fn each_fanned_out_function_reserves_as_many_executions_as_the_map_may_run_at_once() {
    let t = load("template.yaml");
    let resources = t["Resources"].as_mapping().unwrap();
    for (name, r) in resources {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        if !org_fanout::handler::FAN_OUT_RULES.contains(&binary) {
            continue;
        }
        let reserved = format!("{:?}", r["Properties"]["ReservedConcurrentExecutions"]);
        assert!(
            reserved.contains("\"Org\"") && reserved.contains("FanOutConcurrency"),
            "{name:?}: in organisation mode its reservation must be FanOutConcurrency, got {reserved}"
        );
    }
    // The targets step caps the Map's concurrency at the same number.
    let env = &t["Resources"]["FanOutFunction"]["Properties"]["Environment"]["Variables"];
    assert!(
        format!("{:?}", env[org_fanout::handler::MAX_CONCURRENCY_VAR]).contains("FanOutConcurrency"),
        "{env:?}"
    );
}

#[test]
fn each_fanned_out_rule_has_a_schedule_naming_its_function_and_its_own_schedule_is_off_in_org_mode() {
    let t = load("template.yaml");
    let resources = t["Resources"].as_mapping().unwrap();
    let mut scheduled = BTreeSet::new();
    for (name, r) in resources {
        if r["Type"].as_str() != Some("AWS::Events::Rule") {
            continue;
        }
        let name = name.as_str().unwrap();
        assert!(name.starts_with("FanOut"), "{name}");
        assert_eq!(r["Condition"].as_str(), Some("Org"));
        let target = &r["Properties"]["Targets"][0];
        assert!(format!("{:?}", target["Arn"]).contains("FanOutStateMachine"));
        let input = format!("{:?}", target["Input"]);
        let rule = org_fanout::handler::FAN_OUT_RULES
            .iter()
            .find(|rule| input.contains(&format!("\\\"rule\\\": \\\"{rule}\\\"")))
            .unwrap_or_else(|| panic!("{name}: {input}"));
        scheduled.insert(rule.to_string());
        // The function the input names is that rule's own.
        let logical = format!(
            "{}Function.Arn",
            rule.split('-')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect::<String>()
        );
        assert!(input.contains(&logical), "{name}: {input} does not name {logical}");
    }
    let want: BTreeSet<String> = org_fanout::handler::FAN_OUT_RULES
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(scheduled, want);
    // The functions' own schedules are off in organisation mode (the hub is one of the targets).
    for (_, r) in resources {
        let Some(events) = r["Properties"].get("Events").and_then(Value::as_mapping) else {
            continue;
        };
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        if !want.contains(binary) {
            continue;
        }
        for (_, e) in events {
            if e["Type"].as_str() == Some("Schedule") {
                let state = format!("{:?}", e["Properties"]["State"]);
                assert!(state.contains("Org") && state.contains("DISABLED"), "{binary}: {state}");
            }
        }
    }
}

#[test]
fn only_the_functions_that_reach_member_accounts_may_assume_the_member_role_and_nothing_else() {
    let t = load("template.yaml");
    let access = &t["Resources"]["MemberRoleAccess"];
    assert_eq!(access["Condition"].as_str(), Some("Org"));
    let roles: BTreeSet<String> = access["Properties"]["Roles"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let mut want = BTreeSet::new();
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        // A function on another's role (the approval function's executor) has no role of its own.
        if MEMBER_FUNCTIONS.contains(&binary) && r["Properties"].get("Role").is_none() {
            want.insert(format!(
                "{:?}",
                Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                    tag: serde_norway::value::Tag::new("Ref"),
                    value: Value::String(format!("{}Role", name.as_str().unwrap())),
                }))
            ));
        }
    }
    assert_eq!(want.len(), MEMBER_FUNCTIONS.len());
    assert_eq!(roles, want);
    let statements = access["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(strings(&statements[0]["Action"]), ["sts:AssumeRole"]);
    let resource = format!("{:?}", statements[0]["Resource"]);
    assert!(resource.contains(":role/${MemberRoleName}"), "{resource}");
    // Only inside the organisation, always: the template's Rules refuse organisation mode
    // without the organisation's id.
    let condition = format!("{:?}", statements[0]["Condition"]);
    assert!(
        condition.contains("aws:ResourceOrgID") && condition.contains("OrganizationId") && !condition.contains("If"),
        "{condition}"
    );
    // The rule applies when EnableOrganization is "true" and asserts OrganizationId is not "".
    let rule = &t["Rules"]["OrganisationModeNeedsTheOrganisationsId"];
    let tagged = |v: &Value, tag: &str| -> Value {
        match v {
            Value::Tagged(g) if g.tag == serde_norway::value::Tag::new(tag) => g.value.clone(),
            other => panic!("expected !{tag}, got {other:?}"),
        }
    };
    let when = tagged(&rule["RuleCondition"], "Equals");
    assert_eq!(tagged(&when[0], "Ref").as_str(), Some("EnableOrganization"));
    assert_eq!(when[1].as_str(), Some("true"));
    let asserted = rule["Assertions"].as_sequence().expect("assertions");
    assert_eq!(asserted.len(), 1);
    let not_empty = tagged(&tagged(&asserted[0]["Assert"], "Not")[0], "Equals");
    assert_eq!(tagged(&not_empty[0], "Ref").as_str(), Some("OrganizationId"));
    assert_eq!(not_empty[1].as_str(), Some(""));
    // The member functions' roles carry the path the member role trusts in organisation mode,
    // and only there: a single-account stack's roles are not replaced.
    assert!(
        t["Globals"]["Function"]["RolePath"].is_null(),
        "no path for every stack"
    );
    for (name, r) in t["Resources"].as_mapping().unwrap() {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_default();
        // (The approval function's executor is on the approval function's role, path and all.)
        if MEMBER_FUNCTIONS.contains(&binary) && r["Properties"].get("Role").is_none() {
            // !If [Org, /finops-autopilot/, !Ref AWS::NoValue]
            let path = tagged(&r["Properties"]["RolePath"], "If");
            assert_eq!(path[0].as_str(), Some("Org"), "{name:?}");
            assert_eq!(path[1].as_str(), Some("/finops-autopilot/"), "{name:?}");
            assert_eq!(tagged(&path[2], "Ref").as_str(), Some("AWS::NoValue"), "{name:?}");
        }
    }
}

#[test]
fn the_member_role_grants_exactly_what_the_member_functions_declare_and_trusts_only_the_hub() {
    let m = load("member-role.yaml");
    let role = &m["Resources"]["MemberRole"]["Properties"];
    let statements: Vec<&Value> = role["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
        .collect();
    let allowed: BTreeSet<String> = statements
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    let want: BTreeSet<String> = member_role().into_iter().map(str::to_string).collect();
    assert_eq!(
        allowed,
        want,
        "granted but not declared {:?}; declared but not granted {:?}",
        allowed.difference(&want).collect::<Vec<_>>(),
        want.difference(&allowed).collect::<Vec<_>>()
    );
    for s in statements.iter().filter(|s| s["Effect"].as_str() == Some("Allow")) {
        for a in strings(&s["Action"]) {
            let changes = ["Stop", "Start", "Delete", "Create", "Put"]
                .iter()
                .any(|verb| a.split(':').nth(1).is_some_and(|n| n.starts_with(verb)))
                && a != "config:PutEvaluations";
            if changes {
                assert_ne!(s["Resource"].as_str(), Some("*"), "{a} on *");
            }
            if a == "ec2:CreateTags" || a == "ec2:DeleteTags" {
                let keys = strings(&s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]);
                let at_creation = format!("{:?}", s["Condition"]["StringEquals"]);
                assert!(
                    keys == ["finops:untagged-since"] || at_creation.contains("ec2:CreateAction"),
                    "{a}: {s:?}"
                );
                if !keys.is_empty() {
                    assert_eq!(
                        s["Condition"]["Null"]["aws:TagKeys"].as_str(),
                        Some("false"),
                        "{a}: keys must be named"
                    );
                }
            }
        }
    }
    for destructive in ["ec2:StopInstances", "ec2:DeleteVolume"] {
        assert!(
            statements.iter().any(|s| s["Effect"].as_str() == Some("Deny")
                && strings(&s["Action"]).iter().any(|a| a == destructive)
                && s["Condition"]["StringEqualsIgnoreCase"]["aws:ResourceTag/finops:exempt"].as_str() == Some("true")),
            "{destructive} is not denied on finops:exempt=true"
        );
    }
    // Trust: the hub's account, only its stack's roles, only inside the organisation, with the
    // external id when one is set.
    let st = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert!(
        format!("{:?}", st["Principal"]["AWS"]).contains("${HubAccountId}:root"),
        "{st:?}"
    );
    assert_eq!(strings(&st["Action"]), ["sts:AssumeRole"]);
    // `!If [HasExternalId, with, without]`: both branches limit the principal and the organisation;
    // the first asks for the external id.
    let Value::Tagged(cond) = &st["Condition"] else {
        panic!("the trust condition is not an !If: {st:?}")
    };
    let branches = cond.value.as_sequence().unwrap();
    assert_eq!(branches[0].as_str(), Some("HasExternalId"));
    for b in &branches[1..] {
        assert!(
            format!("{:?}", b["ArnLike"]["aws:PrincipalArn"]).contains(":role/finops-autopilot/*"),
            "{b:?}"
        );
        assert!(
            format!("{:?}", b["StringEquals"]["aws:PrincipalOrgID"]).contains("OrganizationId"),
            "{b:?}"
        );
    }
    assert!(format!("{:?}", branches[1]["StringEquals"]["sts:ExternalId"]).contains("ExternalId"));
    assert!(branches[2]["StringEquals"].get("sts:ExternalId").is_none());
    assert_eq!(
        role["MaxSessionDuration"].as_u64(),
        Some(3600),
        "the functions ask for one hour"
    );
}

/// The number a function reserves in each mode: (organisation, single account). A plain number
/// is both.
fn reservations(r: &Value, fan_out: u64) -> (u64, u64) {
    let v = &r["Properties"]["ReservedConcurrentExecutions"];
    if let Some(n) = v.as_u64() {
        return (n, n);
    }
    let Value::Tagged(outer) = v else { panic!("{v:?}") };
    // `!If [Reserve, <the reservation>, !Ref AWS::NoValue]`: reserved only when asked.
    assert_eq!(outer.tag, serde_norway::value::Tag::new("If"), "{v:?}");
    let asked = outer.value.as_sequence().expect("[condition, then, else]");
    assert_eq!(asked[0].as_str(), Some("Reserve"), "{v:?}");
    assert!(format!("{:?}", asked[2]).contains("AWS::NoValue"), "{v:?}");
    let v = &asked[1];
    if let Some(n) = v.as_u64() {
        return (n, n);
    }
    let Value::Tagged(tagged) = v else { panic!("{v:?}") };
    assert_eq!(tagged.tag, serde_norway::value::Tag::new("If"), "{v:?}");
    let branches = tagged.value.as_sequence().expect("[condition, then, else]");
    assert_eq!(branches[0].as_str(), Some("Org"), "{v:?}");
    let then = match &branches[1] {
        Value::Tagged(r) if r.tag == serde_norway::value::Tag::new("Ref") => {
            assert_eq!(r.value.as_str(), Some("FanOutConcurrency"));
            fan_out
        }
        other => other.as_u64().expect("a number"),
    };
    (then, branches[2].as_u64().expect("a number"))
}

#[test]
fn config_keeps_its_executions_beside_the_map_and_lambdas_unreserved_hundred_stays_free() {
    let t = load("template.yaml");
    let max = t["Parameters"]["FanOutConcurrency"]["MaxValue"]
        .as_u64()
        .expect("MaxValue");
    // The functions Config rules invoke (SourceIdentifier !GetAtt <Function>.Arn).
    let config_rule_functions: BTreeSet<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Config::ConfigRule"))
        .filter_map(|r| match &r["Properties"]["Source"]["SourceIdentifier"] {
            Value::Tagged(g) if g.tag == serde_norway::value::Tag::new("GetAtt") => g
                .value
                .as_str()
                .and_then(|v| v.strip_suffix(".Arn"))
                .map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(config_rule_functions.len(), 1, "{config_rule_functions:?}");
    for fan_out in [1, 10, max] {
        let mut org_total = 0;
        for (name, r) in t["Resources"].as_mapping().unwrap() {
            if r["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let (org, single) = reservations(r, fan_out);
            org_total += org;
            let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
            // Triggered by AWS Config: a Config rule's own function, or a compliance-change rule.
            let config_triggered = format!("{:?}", r["Properties"]["Events"]).contains("aws.config")
                || config_rule_functions.contains(name.as_str().unwrap());
            let headroom = org_fanout::handler::CONFIG_HEADROOM
                .iter()
                .find(|(rule, _)| *rule == binary)
                .map(|(_, h)| u64::from(*h));
            if org_fanout::handler::FAN_OUT_RULES.contains(&binary) {
                let bound = u64::from(org_fanout::handler::map_bound(binary, fan_out as u32));
                assert!(bound >= 1 && bound <= org, "{name:?} at {fan_out}");
                assert_eq!(headroom.is_some(), config_triggered, "{name:?}: Config's executions");
                if let Some(h) = headroom {
                    // As many as it has outside organisation mode stay Config's, when there are that many.
                    assert_eq!(h, single, "{name:?}");
                    if org > h {
                        assert_eq!(org - bound, h, "{name:?} at {fan_out}");
                    }
                }
            }
        }
        assert!(
            org_total + 100 <= 1000,
            "at FanOutConcurrency {fan_out}, {org_total} of 1,000 executions are reserved"
        );
    }
}
