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

/// Eight idle and eight busy instances; returns the idle ones.
async fn fleet(moto: &Moto) -> BTreeSet<String> {
    let c = moto.clients().await;
    let idle = seed::run_instances(&c.ec2, "t3.large", 8, &[("Owner", "ana")], false).await;
    let busy = seed::run_instances(&c.ec2, "t3.large", 8, &[("Owner", "bo")], false).await;
    for id in &idle {
        seed::put_usage(&c.cloudwatch, id, Usage::IDLE, now(), 14).await;
    }
    for id in &busy {
        seed::put_usage(&c.cloudwatch, id, Usage::BUSY, now(), 14).await;
    }
    idle.into_iter().collect()
}

fn flagged(r: &RunReport) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.resource.id.clone()).collect()
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
    let idle = fleet(&moto).await;
    let deps = finops_tests::deps(&moto, Policy::default(), None, None).await;
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
        assert!(flagged(&faulty).is_subset(&idle), "run {run}: {faulty:#?}");
        let missing: BTreeSet<String> = idle.difference(&flagged(&faulty)).cloned().collect();
        assert!(
            missing.is_subset(&failed(&faulty)),
            "run {run}: silently missing {missing:?}"
        );
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
    let idle = fleet(&moto).await;
    let deps = finops_tests::deps(&moto, Policy::default(), None, None).await;
    moto.inject_fault("monitoring", "GetMetricData", 1.0, 1, "503").await;
    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{report:#?}");
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
}

fn ebs_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap()
}

#[tokio::test]
async fn at_twenty_percent_faults_the_volume_scan_flags_what_the_fault_free_run_flags() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    let mut unattached = BTreeSet::new();
    for i in 0..10 {
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
    let deps = finops_tests::deps(&moto, Policy::default(), Some("finops-state"), None).await;
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
        assert!(flagged(&faulty).is_subset(&unattached), "run {run}: {faulty:#?}");
        let missing: BTreeSet<String> = unattached.difference(&flagged(&faulty)).cloned().collect();
        assert!(
            missing.is_subset(&failed(&faulty)),
            "run {run}: silently missing {missing:?}"
        );
        // The grace period still counts from the first sighting (a throttled read is not a new one).
        for f in &faulty.findings {
            let e = serde_json::to_value(&f.evidence).unwrap();
            assert_eq!(e["unattached_days"], 7, "run {run}: {e}");
        }
    }
    // The scan makes few calls (one DescribeVolumes page, one sightings Query): over three runs
    // the seeded 20% hits both services.
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
    for i in 0..12 {
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
    let deps = finops_tests::deps(&moto, Policy::default(), None, None).await;
    let sweep: serde_json::Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    let clean = s3_public::handler::handle(sweep.clone(), &deps, now()).await.unwrap();
    assert_eq!(flagged(&clean), public);

    moto.inject_fault("s3", "*", 0.2, 4, "throttle").await;
    for run in 0..3 {
        let faulty = s3_public::handler::handle(sweep.clone(), &deps, now()).await.unwrap();
        assert!(flagged(&faulty).is_subset(&public), "run {run}: {faulty:#?}");
        let missing: BTreeSet<String> = public.difference(&flagged(&faulty)).cloned().collect();
        assert!(
            missing.is_subset(&failed(&faulty)),
            "run {run}: silently missing {missing:?}"
        );
    }
    let rules = moto.faults().await;
    assert!(rules[0]["injected"].as_u64().unwrap() > 0, "{rules}");
}
