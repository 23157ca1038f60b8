//! Under faults: AWS answering a seeded share of requests with the errors it sends when
//! overloaded (the fault layer of `tests/moto_server.py`), the scans find nothing the fault-free
//! run does not, and report as failed what they could not assess (issue 12, first part).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::Policy;

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn scheduled_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap()
}

/// `n` idle and `n` busy instances, their usage seeded up to today (so that a run after midnight
/// UTC still sees every day it judges); returns the idle ones.
async fn fleet(moto: &Moto, n: i32) -> BTreeSet<String> {
    let c = moto.clients().await;
    let idle = seed::run_instances(&c.ec2, "t3.large", n, &[("Owner", "ana")], false).await;
    let busy = seed::run_instances(&c.ec2, "t3.large", n, &[("Owner", "bo")], false).await;
    for id in &idle {
        seed::put_usage(&c.cloudwatch, id, Usage::IDLE, now() + chrono::Duration::days(1), 15).await;
    }
    for id in &busy {
        seed::put_usage(&c.cloudwatch, id, Usage::BUSY, now() + chrono::Duration::days(1), 15).await;
    }
    idle.into_iter().collect()
}

fn flagged(r: &RunReport) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.resource.id.clone()).collect()
}

/// No false finding, and every finding of the fault-free run (`clean`) is flagged or reported
/// failed: never silently missing.
fn assert_covers(clean: &BTreeSet<String>, faulty: &RunReport, context: &str) {
    assert!(flagged(faulty).is_subset(clean), "{context}: {faulty:#?}");
    let missing: BTreeSet<String> = clean.difference(&flagged(faulty)).cloned().collect();
    assert!(
        missing.is_subset(&failed(faulty)),
        "{context}: silently missing {missing:?}"
    );
}

/// Each fault rule injected something (the seeds hit every service named).
async fn assert_every_rule_injected(moto: &Moto) {
    let rules = moto.faults().await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["injected"].as_u64().unwrap() > 0),
        "{rules}"
    );
}

fn failed(r: &RunReport) -> BTreeSet<String> {
    r.outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Failed)
        .map(|o| o.finding_id.rsplit(':').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn at_twenty_percent_throttling_the_idle_scan_flags_what_the_fault_free_run_flags() {
    let moto = Moto::start().unwrap();
    // 120 instances, 60 idle: several pages of calls to throttle. Not more: moto's
    // GetMetricData scans every stored datapoint for each query (300 instances took 23 s a call
    // on 2 cores, close to the client's 30 s attempt timeout, which real CloudWatch never nears).
    let idle = fleet(&moto, 60).await;
    let deps = finops_tests::deps(&moto, "idle-ec2", Policy::default(), None, None).await;
    let clean = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    assert_eq!(flagged(&clean), idle);

    moto.inject_fault("ec2", "*", 0.2, 7, "throttle").await;
    moto.inject_fault("monitoring", "GetMetricData", 0.2, 11, "503").await;
    moto.inject_fault("ec2", "DescribeInstanceTypes", 0.2, 13, "drop").await;
    for run in 0..3 {
        let faulty = idle_ec2::handler::handle(scheduled_event(), &deps, now())
            .await
            .unwrap();
        // No false finding; every finding of the fault-free run is flagged or reported failed.
        assert_covers(&idle, &faulty, &format!("run {run}"));
    }
    let rules = moto.faults().await;
    let injected: u64 = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["injected"].as_u64().unwrap())
        .sum();
    assert!(injected > 0, "{rules}");
}

#[tokio::test]
async fn with_get_metric_data_down_nothing_is_flagged_and_each_instance_is_reported_failed() {
    let moto = Moto::start().unwrap();
    let idle = fleet(&moto, 8).await;
    let deps = finops_tests::deps(&moto, "idle-ec2", Policy::default(), None, None).await;
    moto.inject_fault("monitoring", "GetMetricData", 1.0, 1, "503").await;
    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{report:#?}");
    assert_eq!(report.failed, 16, "the response says how many failed");
    for id in &idle {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id.as_str()))
            .unwrap_or_else(|| panic!("no outcome for {id}: {report:#?}"));
        assert_eq!(o.outcome, OutcomeKind::Failed, "{o:?}");
        assert!(o.detail.contains("GetMetricData"), "{}", o.detail);
    }
    // Four attempts each (CloudWatch's retry setting), then the run gave up.
    let rules = moto.faults().await;
    assert!(rules[0]["injected"].as_u64().unwrap() >= 4, "{rules}");

    // What Lambda sees: the invocation fails (so the errors alarm fires and Lambda retries),
    // and says what could not be assessed and why.
    let invoked = idle_ec2::handler::function_handler(invocation(scheduled_event()), &deps).await;
    let err = invoked.expect_err("a scan that assessed nothing is a failed invocation");
    let text = err.to_string();
    assert!(text.contains("none of the 16"), "{text}");
    assert!(text.contains("GetMetricData"), "{text}");
    assert!(text.contains("flagged and changed nothing"), "{text}");
    assert_eq!(lambda_runtime::Diagnostic::from(err).error_type, "Retryable");
}

/// The event as the Lambda runtime hands it over (no deadline).
fn invocation(payload: serde_json::Value) -> lambda_runtime::LambdaEvent<serde_json::Value> {
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

#[tokio::test]
async fn at_twenty_percent_metric_faults_an_invocation_that_assessed_some_succeeds_and_counts_the_rest() {
    let moto = Moto::start().unwrap();
    let idle = fleet(&moto, 40).await;
    let deps = finops_tests::deps(&moto, "idle-ec2", Policy::default(), None, None).await;
    // Every GetMetricData answer that is not a fault is good; a share of the batches fail for
    // good (one attempt each, so the seeded share shows through CloudWatch's retries).
    moto.inject_fault("monitoring", "GetMetricData", 0.5, 3, "503").await;
    let report = idle_ec2::handler::function_handler(invocation(scheduled_event()), &deps)
        .await
        .expect("a partial failure is reported, not raised");
    assert_covers(&idle, &report, "");
    assert_eq!(report.failed, failed(&report).len());
}

fn ebs_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap()
}

#[tokio::test]
async fn at_twenty_percent_faults_the_volume_scan_flags_what_the_fault_free_run_flags() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    let mut unattached = BTreeSet::new();
    for i in 0..100 {
        let owner = format!("owner-{i}");
        unattached
            .insert(seed::create_volume(&c.ec2, "gp2", 100, None, "us-east-1a", &[("Owner", owner.as_str())]).await);
    }
    let instance = seed::run_instance(&c.ec2, "t3.micro", &[]).await;
    for _ in 0..3 {
        let v = seed::create_volume(&c.ec2, "gp3", 50, None, "us-east-1a", &[]).await;
        seed::attach(&c.ec2, &v, &instance).await;
    }
    seed::create_table(&c.dynamodb, "finops-state").await;
    let deps = finops_tests::deps(&moto, "ebs-cleanup", Policy::default(), Some("finops-state"), None).await;
    let today = Utc::now();
    // The first sighting starts the grace period; a week later the volumes are due.
    ebs_cleanup::handler::handle(ebs_event(), &deps, today).await.unwrap();
    let week = today + chrono::Duration::days(7);
    let clean = ebs_cleanup::handler::handle(ebs_event(), &deps, week).await.unwrap();
    assert_eq!(flagged(&clean), unattached);

    moto.inject_fault("ec2", "*", 0.2, 4, "throttle").await;
    moto.inject_fault("dynamodb", "*", 0.2, 2, "throttle").await;
    for run in 0..3 {
        let faulty = ebs_cleanup::handler::handle(ebs_event(), &deps, week).await.unwrap();
        assert_covers(&unattached, &faulty, &format!("run {run}"));
        // The grace period still counts from the first sighting (a throttled read is not a new one).
        for f in &faulty.findings {
            let e = serde_json::to_value(&f.evidence).unwrap();
            assert_eq!(e["unattached_days"], 7, "run {run}: {e}");
        }
    }
    // The scan makes few calls (one DescribeVolumes page, one sightings Query): over three runs
    // the seeded 20% hits both services.
    assert_every_rule_injected(&moto).await;
}

#[tokio::test]
async fn at_twenty_percent_slow_downs_the_bucket_sweep_flags_what_the_fault_free_run_flags() {
    use aws_sdk_s3::types::BucketCannedAcl;
    let moto = Moto::start().unwrap();
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let mut public = BTreeSet::new();
    for i in 0..60 {
        let b = format!("bucket-{i:02}");
        client.create_bucket().bucket(&b).send().await.unwrap();
        if i % 2 == 0 {
            client
                .put_bucket_acl()
                .bucket(&b)
                .acl(BucketCannedAcl::PublicRead)
                .send()
                .await
                .unwrap();
            public.insert(b);
        }
    }
    let deps = finops_tests::deps(&moto, "s3-public", Policy::default(), None, None).await;
    let sweep: serde_json::Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    let clean = s3_public::handler::handle(sweep.clone(), &deps, now()).await.unwrap();
    assert_eq!(flagged(&clean), public);

    moto.inject_fault("s3", "*", 0.2, 4, "throttle").await;
    for run in 0..3 {
        let faulty = s3_public::handler::handle(sweep.clone(), &deps, now()).await.unwrap();
        assert_covers(&public, &faulty, &format!("run {run}"));
    }
    let rules = moto.faults().await;
    assert!(rules[0]["injected"].as_u64().unwrap() > 0, "{rules}");

    // Most ACL reads failing past every retry: the buckets read are judged, the rest reported
    // failed, and the invocation succeeds (it assessed some), counting them all as scanned.
    moto.clear_faults().await;
    moto.inject_fault("s3", "GetBucketAcl", 0.85, 9, "503").await;
    let partial = s3_public::handler::function_handler(invocation(sweep), &deps)
        .await
        .expect("some buckets were assessed: the run reports, it does not fail");
    assert_covers(&public, &partial, "GetBucketAcl mostly down");
    assert!(partial.failed > 0 && partial.failed < 60, "{partial:#?}");
    assert_eq!(partial.scanned, 60);
}

fn tag_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/tag-compliance/scheduled.json")).unwrap()
}

/// 100 instances (and their 100 untagged root volumes), 100 more volumes and 40 buckets, half of
/// each missing the required tags; returns the non-compliant ones.
async fn tag_account(moto: &Moto, s3: &aws_sdk_s3::Client) -> BTreeSet<String> {
    use aws_sdk_s3::types::{Tag, Tagging};
    const FULL: [(&str, &str); 3] = [("Owner", "ana"), ("CostCenter", "cc-42"), ("Environment", "prod")];
    let c = moto.clients().await;
    let mut bad: BTreeSet<String> = seed::run_instances(&c.ec2, "t3.micro", 50, &[("Name", "x")], false)
        .await
        .into_iter()
        .collect();
    seed::run_instances(&c.ec2, "t3.micro", 50, &FULL, false).await;
    let mut good_volumes = BTreeSet::new();
    for i in 0..100 {
        let tags: &[(&str, &str)] = if i % 2 == 0 { &FULL } else { &[("Owner", "bo")] };
        let v = seed::create_volume(&c.ec2, "gp3", 10, None, "us-east-1a", tags).await;
        if i % 2 == 0 {
            good_volumes.insert(v);
        }
    }
    // The instances' root volumes carry no tags: they are non-compliant too.
    let volumes = c.ec2.describe_volumes().send().await.unwrap();
    for v in volumes.volumes() {
        let id = v.volume_id().unwrap_or_default();
        if !good_volumes.contains(id) {
            bad.insert(id.to_string());
        }
    }
    for i in 0..40 {
        let b = format!("tags-{i:02}");
        s3.create_bucket().bucket(&b).send().await.unwrap();
        if i % 2 == 0 {
            let mut tagging = Tagging::builder();
            for (k, v) in FULL {
                tagging = tagging.tag_set(Tag::builder().key(k).value(v).build().unwrap());
            }
            s3.put_bucket_tagging()
                .bucket(&b)
                .tagging(tagging.build().unwrap())
                .send()
                .await
                .unwrap();
        } else {
            bad.insert(b);
        }
    }
    bad
}

fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

#[tokio::test]
async fn at_twenty_percent_faults_the_tag_sweep_flags_what_the_fault_free_run_flags() {
    let moto = Moto::start().unwrap();
    let s3 = s3_client(&moto.sdk_config().await);
    let bad = tag_account(&moto, &s3).await;
    let deps = finops_tests::deps(&moto, "tag-compliance", Policy::default(), None, None).await;
    let clean = tag_compliance::handler::handle(tag_event(), &deps, now())
        .await
        .unwrap();
    assert_eq!(flagged(&clean), bad);
    assert_eq!(clean.scanned, 340);

    moto.inject_fault("ec2", "*", 0.2, 5, "throttle").await;
    moto.inject_fault("s3", "*", 0.2, 6, "throttle").await;
    for run in 0..3 {
        let faulty = tag_compliance::handler::handle(tag_event(), &deps, now())
            .await
            .unwrap();
        assert_covers(&bad, &faulty, &format!("run {run}"));
        assert_eq!(faulty.scanned, 340, "run {run}");
    }
    assert_every_rule_injected(&moto).await;
}

#[tokio::test]
async fn with_bucket_tagging_down_the_sweep_still_judges_instances_and_volumes_and_reports_each_bucket_failed() {
    let moto = Moto::start().unwrap();
    let s3 = s3_client(&moto.sdk_config().await);
    let bad = tag_account(&moto, &s3).await;
    let deps = finops_tests::deps(&moto, "tag-compliance", Policy::default(), None, None).await;
    moto.inject_fault("s3", "GetBucketTagging", 1.0, 1, "503").await;
    let report = tag_compliance::handler::function_handler(invocation(tag_event()), &deps)
        .await
        .expect("instances and volumes were assessed: the run reports, it does not fail");
    let buckets: BTreeSet<String> = (0..40).map(|i| format!("tags-{i:02}")).collect();
    let expected: BTreeSet<String> = bad.difference(&buckets).cloned().collect();
    assert_eq!(
        flagged(&report),
        expected,
        "instances and volumes judged, no bucket flagged"
    );
    assert_eq!(failed(&report), buckets, "every bucket reported failed");
    assert_eq!(report.failed, 40);
    assert!(report
        .outcomes
        .iter()
        .filter(|o| o.outcome == OutcomeKind::Failed)
        .all(|o| o.detail.contains("GetBucketTagging")));
    assert!(
        report.notes.iter().any(|n| n.contains("40 bucket(s) not assessed")),
        "{:?}",
        report.notes
    );
}

fn cost_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/cost-alert/scheduled.json")).unwrap()
}

#[tokio::test]
async fn with_cost_explorer_down_the_cost_check_alerts_nothing_and_the_invocation_fails_with_awss_error() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, "finops-state").await;
    let deps = finops_tests::deps(&moto, "cost-alert", Policy::default(), Some("finops-state"), None).await;
    moto.inject_fault("ce", "*", 1.0, 1, "throttle").await;
    let err = cost_alert::handler::function_handler(invocation(cost_event()), &deps)
        .await
        .expect_err("no spend read, nothing to judge");
    assert!(err.to_string().contains("ThrottlingException"), "{err}");
    assert!(err.is_retryable());
    // Nothing claimed: the next run may alert.
    let items = seed::scan_table(&c.dynamodb, "finops-state").await;
    assert!(items.iter().all(|i| !i["pk"].starts_with("ALERT#")), "{items:?}");
}

#[tokio::test]
async fn at_twenty_percent_throttling_the_cost_check_alerts_what_the_fault_free_run_alerts_or_fails_whole() {
    let moto = Moto::start().unwrap();
    // Month to date $10,500 on EC2: over the default threshold.
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-26",
        &[("Amazon Elastic Compute Cloud - Compute", 10_500.0)],
    );
    let deps = finops_tests::deps(&moto, "cost-alert", Policy::default(), None, None).await;
    let at: DateTime<Utc> = "2026-11-26T06:00:00Z".parse().unwrap();
    let clean = cost_alert::handler::handle(cost_event(), &deps, at).await.unwrap();
    assert_eq!(clean.findings.len(), 1, "{clean:#?}");
    let ids = |r: &RunReport| r.findings.iter().map(|f| f.id.clone()).collect::<BTreeSet<_>>();

    moto.inject_fault("ce", "*", 0.2, 2, "throttle").await;
    for run in 0..5 {
        // One account judged: either the same alert, or the whole check failed with AWS's error
        // (Lambda retries it) — never another alert, never silence.
        match cost_alert::handler::handle(cost_event(), &deps, at).await {
            Ok(faulty) => assert_eq!(ids(&faulty), ids(&clean), "run {run}: {faulty:#?}"),
            Err(e) => assert!(
                e.is_retryable() && e.to_string().contains("Throttling"),
                "run {run}: {e}"
            ),
        }
    }
    assert_every_rule_injected(&moto).await;
}

fn sizing_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/rightsizing/scheduled.json")).unwrap()
}

#[tokio::test]
async fn at_twenty_percent_faults_rightsizing_recommends_what_the_fault_free_run_recommends() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    let now = now();
    let mut oversized = BTreeSet::new();
    for i in 0..12 {
        let id = seed::run_instance(&c.ec2, "m5.2xlarge", &[("Owner", "ana")]).await;
        let peak = if i % 3 == 0 { 90.0 } else { 20.0 };
        seed::put_hourly(&c.cloudwatch, "AWS/EC2", "CPUUtilization", &id, now, 14, |_| peak).await;
        seed::put_hourly(&c.cloudwatch, "CWAgent", "mem_used_percent", &id, now, 14, |_| 30.0).await;
        if i % 3 != 0 {
            oversized.insert(id);
        }
    }
    let deps = finops_tests::deps(&moto, "rightsizing", Policy::default(), None, None).await;
    let clean = rightsizing::handler::handle(sizing_event(), &deps, None, now)
        .await
        .unwrap();
    assert_eq!(flagged(&clean), oversized);

    moto.inject_fault("ec2", "*", 0.2, 8, "throttle").await;
    moto.inject_fault("monitoring", "*", 0.2, 9, "503").await;
    for run in 0..3 {
        let faulty = rightsizing::handler::handle(sizing_event(), &deps, None, now)
            .await
            .unwrap();
        assert_covers(&oversized, &faulty, &format!("run {run}"));
        // The same recommendation as the fault-free run, for each one flagged.
        for f in &faulty.findings {
            let twin = clean.findings.iter().find(|c| c.id == f.id).unwrap();
            assert_eq!(f.estimated_monthly_savings_usd, twin.estimated_monthly_savings_usd);
        }
    }
    let rules = moto.faults().await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["injected"].as_u64().unwrap() > 0),
        "{rules}"
    );
}
