//! tag-compliance end to end: the sweep (report, mark, mark-then-stop) and the Config custom rule
//! (change, oversized, periodic) through the real SDK against moto. moto accepts PutEvaluations
//! only in TestMode and keeps nothing, so the evaluations are checked in the response and the
//! calls counted in the client.

use aws_sdk_s3::types::{Tag, Tagging};
use chrono::{DateTime, Duration, Utc};
use finops_tests::{seed, Moto};
use remediation::config::Deps;
use remediation::model::OutcomeKind;
use remediation::policy::{Mode, Policy, TagAction};

const TABLE: &str = "finops-state";
const FULL: [(&str, &str); 3] = [("Owner", "ana"), ("CostCenter", "cc-42"), ("Environment", "prod")];

fn sweep_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/tag-compliance/scheduled.json")).unwrap()
}

fn config_event(name: &str) -> serde_json::Value {
    let path = finops_tests::moto::workspace_root()
        .join("events/tag-compliance")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Account {
    tagged: String,
    untagged: String,
    blank_owner: String,
    exempt: String,
    asg: String,
}

async fn seed_account(moto: &Moto) -> Account {
    let c = moto.clients().await;
    let tagged = seed::run_instance(&c.ec2, "t3.large", &FULL).await;
    let untagged = seed::run_instance(&c.ec2, "t3.large", &[("Name", "mystery")]).await;
    let blank_owner = seed::run_instance(
        &c.ec2,
        "t3.large",
        &[("Owner", "  "), ("CostCenter", "1"), ("Environment", "dev")],
    )
    .await;
    let exempt = seed::run_instance(&c.ec2, "t3.large", &[("finops:exempt", "true")]).await;
    let asg = seed::run_instance(&c.ec2, "t3.large", &[("aws:autoscaling:groupName", "web")]).await;
    seed::create_volume(&c.ec2, "gp3", 10, None, "us-east-1a", &FULL).await;
    seed::create_volume(&c.ec2, "gp3", 10, None, "us-east-1a", &[("Owner", "bo")]).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    for b in ["tagged-bucket", "bare-bucket"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let mut tagging = Tagging::builder();
    for (k, v) in FULL {
        tagging = tagging.tag_set(Tag::builder().key(k).value(v).build().unwrap());
    }
    s3.put_bucket_tagging()
        .bucket("tagged-bucket")
        .tagging(tagging.build().unwrap())
        .send()
        .await
        .unwrap();
    seed::create_table(&c.dynamodb, TABLE).await;
    Account {
        tagged,
        untagged,
        blank_owner,
        exempt,
        asg,
    }
}

async fn deps(moto: &Moto, policy: Policy, topic: Option<&str>) -> Deps {
    finops_tests::deps(moto, "tag-compliance", policy, Some(TABLE), topic).await
}

/// Auto mode, marking then stopping; the blast radius opened up (these accounts have a handful
/// of instances: 10 % of them is less than one stop), except where a test is about it.
fn mark_and_stop() -> Policy {
    let mut policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    policy.tag_compliance.action = TagAction::MarkAndStop;
    policy
}

fn tag_of(ec2_instance: &aws_sdk_ec2::types::Instance, key: &str) -> Option<String> {
    ec2_instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}

async fn instance(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].clone()
}

#[tokio::test]
async fn the_sweep_reports_missing_keys_and_compliance_by_type() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let deps = deps(&moto, Policy::default(), Some(&topic)).await;

    let report = tag_compliance::handler::handle(sweep_event(), &deps, Utc::now())
        .await
        .unwrap();

    let mut flagged: Vec<&str> = report.findings.iter().map(|f| f.resource.id.as_str()).collect();
    flagged.sort();
    assert!(flagged.contains(&a.untagged.as_str()) && flagged.contains(&a.blank_owner.as_str()));
    assert!(flagged.contains(&"bare-bucket"));
    // Exempt means "do not act", not "do not count".
    assert!(!flagged.contains(&a.tagged.as_str()) && flagged.contains(&a.exempt.as_str()));
    assert!(!flagged.contains(&"tagged-bucket"));
    let blank = report.findings.iter().find(|f| f.resource.id == a.blank_owner).unwrap();
    assert_eq!(
        serde_json::to_value(&blank.evidence).unwrap()["missing"],
        serde_json::json!(["Owner"])
    );
    // Instances: tagged ok; untagged, blank-owner, the ASG one and the exempt one not → 20%.
    // Volumes 50%, buckets 50% (the instances' root volumes carry no tags).
    let figures = &report.notes[1];
    assert!(figures.contains("instances 20.00%"), "{figures}");
    assert!(figures.contains("buckets 50.00%"), "{figures}");
    assert!(figures.contains("KPI 95%"), "{figures}");
    let messages = seed::drain_queue(&sqs, &queue).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["MessageAttributes"]["type"]["Value"], "tag-report");
    let body: serde_json::Value = serde_json::from_str(messages[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["non_compliant_total"], report.findings.len());
    // The sweep's figures are kept for the savings report's trend (one item per day).
    let state = deps.state.as_ref().unwrap();
    let trend = state.compliance_since(Utc::now().date_naive()).await.unwrap();
    assert_eq!(trend.len(), 1);
    assert_eq!(trend[0].by_type.get("AWS::EC2::Instance"), Some(&20.0), "{trend:?}");
    assert_eq!(trend[0].by_type.get("AWS::S3::Bucket"), Some(&50.0), "{trend:?}");
    let _ = a.asg;
}

#[tokio::test]
async fn mark_then_stop_waits_its_grace_period_and_goes_through_the_guarded_stop() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let deps = deps(&moto, mark_and_stop(), None).await;
    // The test's own hands (tags a person adds, reads), not the function's role.
    let admin = moto.clients().await;
    let ec2 = &admin.ec2;
    let day0: DateTime<Utc> = Utc::now();

    let first = tag_compliance::handler::handle(sweep_event(), &deps, day0)
        .await
        .unwrap();

    let mark = day0.date_naive().to_string();
    assert_eq!(
        tag_of(&instance(ec2, &a.untagged).await, "finops:untagged-since"),
        Some(mark.clone())
    );
    assert_eq!(tag_of(&instance(ec2, &a.tagged).await, "finops:untagged-since"), None);
    assert!(first
        .outcomes
        .iter()
        .all(|o| o.outcome != OutcomeKind::Executed || o.detail.contains("marked")));
    assert_eq!(seed::state_of(ec2, &a.untagged).await, "running");

    // Meanwhile its owner tags one of them properly.
    for (k, v) in FULL {
        seed::tag(ec2, &a.blank_owner, k, v).await;
    }
    let later = tag_compliance::handler::handle(sweep_event(), &deps, day0 + Duration::days(15))
        .await
        .unwrap();

    assert_eq!(seed::state_of(ec2, &a.untagged).await, "stopped");
    let stop = later
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&format!("{}:stop", a.untagged)))
        .unwrap();
    assert_eq!(stop.outcome, OutcomeKind::Executed, "{stop:?}");
    assert_eq!(seed::state_of(ec2, &a.blank_owner).await, "running");
    assert_eq!(
        tag_of(&instance(ec2, &a.blank_owner).await, "finops:untagged-since"),
        None
    );
    // The ASG member is untagged and marked too, but the guarded stop passes it over.
    assert_eq!(seed::state_of(ec2, &a.asg).await, "running");
    let asg = later
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&format!("{}:stop", a.asg)))
        .unwrap();
    assert!(asg.detail.contains("Auto Scaling"), "{asg:?}");
    // The stop is on record with its rollback.
    let items = seed::scan_table(&moto.clients().await.dynamodb, TABLE).await;
    assert!(items
        .iter()
        .any(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == a.untagged));
}

#[tokio::test]
async fn an_exempt_instance_missing_tags_is_reported_and_counted_but_never_marked() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let mut policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    policy.tag_compliance.action = TagAction::Mark;
    let deps = deps(&moto, policy, None).await;

    let report = tag_compliance::handler::handle(sweep_event(), &deps, Utc::now())
        .await
        .unwrap();

    assert!(
        report.findings.iter().any(|f| f.resource.id == a.exempt),
        "{:#?}",
        report.findings
    );
    let o = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(a.exempt.as_str()))
        .unwrap();
    assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
    assert!(o.detail.contains("exempt"), "{o:?}");
    assert_eq!(
        tag_of(&instance(&deps.clients.ec2, &a.exempt).await, "finops:untagged-since"),
        None
    );
    // Instances: 1 tagged of 5 (untagged, blank owner, ASG and the exempt one count against it).
    let figures = report.notes.iter().find(|n| n.starts_with("tag compliance")).unwrap();
    assert!(figures.contains("instances 20.00%"), "{figures}");
    let trend = deps
        .state
        .as_ref()
        .unwrap()
        .compliance_since(Utc::now().date_naive())
        .await
        .unwrap();
    assert_eq!(trend[0].by_type.get("AWS::EC2::Instance"), Some(&20.0), "{trend:?}");
}

#[tokio::test]
async fn the_config_rule_finds_an_exempt_instance_missing_tags_non_compliant() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let deps = deps(&moto, Policy::default(), None).await;

    let report = tag_compliance::handler::handle(config_event("config-scheduled.json"), &deps, Utc::now())
        .await
        .unwrap();

    let exempt = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(a.exempt.as_str()))
        .unwrap();
    assert!(exempt.detail.starts_with("NON_COMPLIANT"), "{exempt:?}");
    assert!(report.findings.iter().any(|f| f.resource.id == a.exempt));
}

#[tokio::test]
async fn dry_run_marks_nothing() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let mut policy = Policy::default();
    policy.tag_compliance.action = TagAction::Mark;
    let deps = deps(&moto, policy, None).await;
    let report = tag_compliance::handler::handle(sweep_event(), &deps, Utc::now())
        .await
        .unwrap();
    let o = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(a.untagged.as_str()))
        .unwrap();
    assert_eq!(o.outcome, OutcomeKind::DryRun);
    assert_eq!(
        tag_of(&instance(&deps.clients.ec2, &a.untagged).await, "finops:untagged-since"),
        None
    );
}

#[tokio::test]
async fn a_config_change_is_evaluated_and_sent_with_the_result_token() {
    let moto = Moto::start().unwrap();
    seed_account(&moto).await;
    let deps = deps(&moto, Policy::default(), None).await;
    let before = deps
        .clients
        .calls
        .snapshot()
        .get("Config Service.PutEvaluations")
        .copied()
        .unwrap_or(0);

    let report = tag_compliance::handler::handle(config_event("config-item-change.json"), &deps, Utc::now())
        .await
        .unwrap();

    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(
        report.outcomes[0].detail,
        "NON_COMPLIANT: missing required tags: CostCenter"
    );
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].resource.id, "i-0123456789abcdef0");
    assert_eq!(
        deps.clients.calls.snapshot()["Config Service.PutEvaluations"],
        before + 1
    );
    // Its run record is the event's account and region, as a sweep's is (not a place of its own).
    let state = deps.state.as_ref().unwrap();
    let runs = state.runs("tag-compliance", None, None).await.unwrap();
    assert_eq!(
        (runs[0].account.as_str(), runs[0].region.as_str()),
        ("123456789012", "us-east-1"),
        "{runs:#?}"
    );

    // Left scope: NOT_APPLICABLE.
    let mut left = config_event("config-item-change.json");
    left["eventLeftScope"] = true.into();
    let r = tag_compliance::handler::handle(left, &deps, Utc::now()).await.unwrap();
    assert!(r.outcomes[0].detail.starts_with("NOT_APPLICABLE"), "{:?}", r.outcomes);
}

#[tokio::test]
async fn test_mode_is_an_explicit_setting_and_without_it_moto_refuses() {
    let moto = Moto::start().unwrap();
    let mut deps = deps(&moto, Policy::default(), None).await;
    deps.config_test_mode = false;
    // moto answers HTTP 500 (not implemented); no retries needed to see it.
    let no_retry = aws_sdk_config::config::Builder::from(&moto.sdk_config_with_attempts(1).await)
        .interceptor(deps.clients.calls.clone())
        .build();
    deps.clients.config_service = aws_sdk_config::Client::from_conf(no_retry);
    let err = tag_compliance::handler::handle(config_event("config-item-change.json"), &deps, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PutEvaluations"), "{err}");
}

#[tokio::test]
async fn the_periodic_notification_evaluates_every_resource() {
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let deps = deps(&moto, Policy::default(), None).await;

    let report = tag_compliance::handler::handle(config_event("config-scheduled.json"), &deps, Utc::now())
        .await
        .unwrap();

    // 5 instances, 7 volumes (2 + 5 root volumes), 2 buckets.
    assert_eq!(report.outcomes.len(), 14, "{:#?}", report.outcomes);
    let verdict = |id: &str| {
        &report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id))
            .unwrap()
            .detail
    };
    assert!(verdict(&a.tagged).starts_with("COMPLIANT"));
    assert!(verdict(&a.untagged).starts_with("NON_COMPLIANT"));
    assert!(verdict(&a.exempt).starts_with("NON_COMPLIANT"));
    assert!(verdict("bare-bucket").starts_with("NON_COMPLIANT"));
}

#[tokio::test]
async fn an_oversized_change_asks_config_for_the_item_and_one_it_never_recorded_is_not_applicable() {
    // moto answers GetResourceConfigHistory for recorded resources with a capture time that is not
    // RFC 3339 (a space for the `T`), which the SDK rightly refuses; its answer for a resource it
    // never recorded (ResourceNotDiscoveredException) is what AWS sends too.
    let moto = Moto::start().unwrap();
    seed_account(&moto).await;
    let deps = deps(&moto, Policy::default(), None).await;

    let report = tag_compliance::handler::handle(config_event("config-oversized-change.json"), &deps, Utc::now())
        .await
        .unwrap();

    assert!(deps
        .clients
        .calls
        .snapshot()
        .contains_key("Config Service.GetResourceConfigHistory"));
    assert_eq!(report.outcomes.len(), 1);
    assert!(report.outcomes[0].finding_id.ends_with(":vol-0123456789abcdef0"));
    assert!(
        report.outcomes[0].detail.starts_with("NOT_APPLICABLE"),
        "{:?}",
        report.outcomes
    );
    assert!(report.notes.iter().any(|n| n.contains("Config has no item")));
}

#[tokio::test]
async fn a_snooze_that_ended_or_was_lifted_gives_the_grace_period_again_before_a_stop() {
    use remediation::state::{ApprovalStore, DynamoState};
    let moto = Moto::start().unwrap();
    let a = seed_account(&moto).await;
    let policy = mark_and_stop();
    let grace = i64::from(policy.tag_compliance.stop_after_days);
    let deps = deps(&moto, policy, None).await;
    // The operator's hands (snoozes are theirs and the approval function's alone), not the role.
    let admin = moto.clients().await;
    let ec2 = &admin.ec2;
    let state = DynamoState::new(admin.dynamodb.clone(), TABLE);
    let now = Utc::now();
    let day0 = now - Duration::days(30);

    // Marked 30 days ago; snoozed the day after, one until yesterday, one for weeks but lifted now.
    tag_compliance::handler::handle(sweep_event(), &deps, day0)
        .await
        .unwrap();
    let snooze =
        |id: &str, until| finops_tests::snooze(id, "ana", "cli", "renaming tags", day0 + Duration::days(1), until);
    state
        .snooze(
            &snooze(&a.untagged, now - Duration::days(1)),
            false,
            &finops_checks::CATALOG,
        )
        .await
        .unwrap();
    state
        .snooze(
            &snooze(&a.blank_owner, now + Duration::days(40)),
            false,
            &finops_checks::CATALOG,
        )
        .await
        .unwrap();
    // A sweep while both are snoozed moves their marks to that day.
    let during = now - Duration::days(5);
    let swept = tag_compliance::handler::handle(sweep_event(), &deps, during)
        .await
        .unwrap();
    let moved = during.date_naive().to_string();
    for id in [&a.untagged, &a.blank_owner] {
        assert_eq!(
            tag_of(&instance(ec2, id).await, "finops:untagged-since"),
            Some(moved.clone())
        );
        let o = swept
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id.as_str()))
            .unwrap();
        assert!(
            o.detail.contains("its mark moved") && o.detail.contains("snoozed until"),
            "{o:?}"
        );
    }
    let lifted = state
        .unsnooze(&snooze(&a.blank_owner, now + Duration::days(40)), "ana", "done", now)
        .await
        .unwrap();
    assert!(matches!(lifted, remediation::state::Unsnoozed::Lifted(_)), "{lifted:?}");
    // The ended snooze's record is gone (as DynamoDB's TTL would have it): the mark alone holds.
    admin
        .dynamodb
        .delete_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("SNOOZES".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(a.untagged.clone()))
        .send()
        .await
        .unwrap();

    // The first sweep after: neither is stopped, and each says why.
    let after = tag_compliance::handler::handle(sweep_event(), &deps, now + Duration::hours(1))
        .await
        .unwrap();
    let detail = |id: &str| {
        after
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id))
            .map(|o| o.detail.clone())
            .unwrap_or_default()
    };
    for id in [&a.untagged, &a.blank_owner] {
        assert_eq!(seed::state_of(ec2, id).await, "running", "{after:#?}");
        assert!(detail(id).contains(&format!("marked since {moved}")), "{after:#?}");
    }

    // A full grace period after the mark's last move: the untagged one (whose snooze record is
    // gone) is stopped; the lifted one, lifted five days after that move, waits for its own.
    let sweep = |at| tag_compliance::handler::handle(sweep_event(), &deps, at);
    let marked_long_enough = during + Duration::days(grace) + Duration::days(1);
    let report = sweep(marked_long_enough).await.unwrap();
    assert_eq!(seed::state_of(ec2, &a.untagged).await, "stopped", "{report:#?}");
    assert_eq!(seed::state_of(ec2, &a.blank_owner).await, "running", "{report:#?}");
    let waits = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(a.blank_owner.as_str()))
        .unwrap();
    let due = (now + Duration::days(grace)).date_naive();
    assert!(
        waits.detail.contains(&format!(
            "its snooze ended {}: mark moved there, stopped no sooner than {due}",
            now.date_naive()
        )),
        "{waits:?}"
    );
    // The mark carries the end, so a stop approved and carried out later counts from there too.
    assert_eq!(
        tag_of(&instance(ec2, &a.blank_owner).await, "finops:untagged-since"),
        Some(now.date_naive().to_string())
    );
    sweep(now + Duration::days(grace) + Duration::hours(1)).await.unwrap();
    assert_eq!(seed::state_of(ec2, &a.blank_owner).await, "stopped");
}

/// Issue 26, problem 9: tag-compliance's stop limit counted volumes and buckets, which it never
/// stops, so 2 untagged instances among 40 buckets were both stopped (10 % of 42 rounds up to
/// 5). The share is of the instances it may stop: 2 due of 2 is over 10 %, so neither is
/// stopped automatically.
#[tokio::test]
async fn the_stop_limit_is_a_share_of_the_instances_not_of_volumes_and_buckets() {
    let moto = Moto::start().unwrap();
    let admin = moto.clients().await;
    seed::create_table(&admin.dynamodb, TABLE).await;
    let untagged = seed::run_instances(&admin.ec2, "t3.micro", 2, &[], false).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    for n in 0..40 {
        s3.create_bucket()
            .bucket(format!("reported-only-{n:02}"))
            .send()
            .await
            .expect("CreateBucket");
    }
    let policy = Policy {
        max_actions_percent: 10.0,
        ..mark_and_stop()
    };
    let deps = deps(&moto, policy, None).await;
    let day0: DateTime<Utc> = Utc::now();
    tag_compliance::handler::handle(sweep_event(), &deps, day0)
        .await
        .unwrap();
    let later = tag_compliance::handler::handle(sweep_event(), &deps, day0 + Duration::days(15))
        .await
        .unwrap();

    for id in &untagged {
        assert_eq!(seed::state_of(&admin.ec2, id).await, "running", "{later:#?}");
    }
    assert!(
        later
            .notes
            .iter()
            .any(|n| n.contains("blast radius") && n.contains("of 2 scanned")),
        "{:#?}",
        later.notes
    );
}
