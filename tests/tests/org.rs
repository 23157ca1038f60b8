//! Organisation scale against moto: an organisation of three member accounts (and one closed
//! one) besides the hub, two regions, each account-region seeded differently. The fan-out runs as
//! the state machine runs it (targets → Map with its concurrency bound → ResultWriter → summary),
//! each item through the rule's own handler with the item event the Map sends.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use finops_tests::approvals::Loop;
use finops_tests::org::{self, clients_in};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::model::OutcomeKind;
use remediation::policy::{ApprovalsPolicy, Mode, OrganizationPolicy, Policy};
use serde_json::Value;

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const BUCKET: &str = "finops-fanout-results";

fn org_policy(mode: Mode) -> Policy {
    Policy {
        mode,
        organization: Some(OrganizationPolicy {
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            max_concurrency: 3,
            ..OrganizationPolicy::default()
        }),
        approvals: ApprovalsPolicy {
            anyone_with_link: true,
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    }
}

/// Seeds `idle` idle instances and one busy one in `account` and `region`; returns the idle ids.
async fn seed_idle(hub: &remediation::aws::Clients, account: &str, region: &str, idle: usize) -> Vec<String> {
    let c = clients_in(hub, account, region).await;
    let mut ids = Vec::new();
    for _ in 0..idle {
        let id = seed::run_instance(&c.ec2, "m5.large", &[("Owner", account)]).await;
        seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
        ids.push(id);
    }
    let busy = seed::run_instance(&c.ec2, "m5.large", &[("Owner", account)]).await;
    seed::put_usage(&c.cloudwatch, &busy, Usage::BUSY, Utc::now(), 14).await;
    ids
}

struct Org {
    moto: Moto,
    members: Vec<String>,
    closed: String,
    /// The idle instances seeded, by (account, region).
    seeded: BTreeMap<(String, String), Vec<String>>,
}

/// The hub (123456789012) and three members, each region seeded with a different number of idle
/// instances; a fourth member closed (Organizations lists it SUSPENDED).
async fn organisation(moto: Moto) -> Org {
    let hub = moto.clients().await;
    let mut members = org::organisation(&hub, 4).await;
    let closed = members.pop().expect("four members");
    org::close(&hub, &closed).await;
    let own = hub.identity().await.expect("identity").account;
    let mut seeded = BTreeMap::new();
    let counts = [[1, 0], [2, 1], [0, 3], [1, 2]];
    for (n, account) in std::iter::once(&own).chain(members.iter()).enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let ids = seed_idle(&hub, account, region, counts[n][r]).await;
            seeded.insert((account.clone(), region.to_string()), ids);
        }
    }
    // The closed account has idle instances too: a run must not reach them.
    seed_idle(&hub, &closed, "us-east-1", 2).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    Org {
        moto,
        members,
        closed,
        seeded,
    }
}

async fn fanout_app(moto: &Moto, policy: Policy) -> org_fanout::handler::App {
    let deps = finops_tests::deps(moto, "org-fanout", policy, None, None).await;
    org_fanout::handler::App::with_bucket(deps, BUCKET.into()).expect("org-fanout app")
}

/// (account, region, instance id) of every finding in the run's reports.
fn found(run: &org::OrgRun) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (item, report) in &run.reports {
        let at = (item.account.clone(), item.region.clone());
        out.entry(at.clone()).or_default();
        for f in &report.findings {
            assert_eq!((&f.resource.account, &f.resource.region), (&at.0, &at.1), "{f:?}");
            assert_eq!(f.id, format!("idle-ec2:{}:{}:{}", at.0, at.1, f.resource.id));
            out.entry(at.clone()).or_default().insert(f.resource.id.clone());
        }
    }
    out
}

#[tokio::test]
async fn an_org_run_finds_exactly_each_account_regions_seeded_findings_and_skips_the_closed_account() {
    let org = organisation(Moto::start().expect("moto")).await;
    let policy = org_policy(Mode::DryRun);
    let app = fanout_app(&org.moto, policy.clone()).await;
    let deps = finops_tests::deps(&org.moto, "idle-ec2", policy, None, None).await;
    let now = Utc::now();
    let rule = |v: Value| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
        Box::pin(idle_ec2::handler::handle(v, &deps, now))
    };
    let run = org::run(&app, "idle-ec2", "run-1", &rule).await;

    // Items: the hub and the three active members, times two regions; the closed one skipped.
    assert_eq!(run.targets["items"], 8, "{}", run.targets);
    assert_eq!(run.results.len(), 8);
    assert!(
        run.peak_concurrency <= 3,
        "at most max_concurrency items at once: {}",
        run.peak_concurrency
    );
    // The state data carries the count; the accounts and why are in S3, read by the summary.
    assert_eq!(run.targets["skipped"], 1, "{}", run.targets);

    let want: BTreeMap<(String, String), BTreeSet<String>> = org
        .seeded
        .iter()
        .map(|(k, ids)| (k.clone(), ids.iter().cloned().collect()))
        .collect();
    assert_eq!(
        found(&run),
        want,
        "each account-region's findings are exactly its own seeded idle instances"
    );

    // The digest: per account, its findings and dollars; the closed account named as not scanned.
    let d = &run.digest;
    assert_eq!(d.items, 8);
    assert_eq!(d.items_failed, 0, "{:?}", d.failed_targets);
    assert_eq!(d.total_findings, 10);
    for (account, totals) in &d.accounts {
        let seeded: usize = REGIONS
            .iter()
            .map(|r| org.seeded[&(account.clone(), r.to_string())].len())
            .sum();
        assert_eq!(totals.findings, seeded, "{account}");
        assert_eq!(totals.regions, ["eu-west-1", "us-east-1"], "{account}");
        assert!(totals.usd > 0.0 || seeded == 0, "{account}: {totals:?}");
    }
    assert_eq!(d.accounts.len(), 4);
    assert_eq!(d.failed_targets.len(), 1, "{:?}", d.failed_targets);
    assert_eq!(d.failed_targets[0].account, org.closed);
    assert!(
        d.failed_targets[0].reason.starts_with("not scanned:") && d.failed_targets[0].reason.contains("SUSPENDED"),
        "{:?}",
        d.failed_targets
    );
    assert_eq!(d.accounts_skipped, 1);
    assert!(d.has_problems(), "a skipped account is worth a look");
}

/// STS's answer when the member role does not exist or does not trust the hub.
fn access_denied(account: &str) -> Value {
    serde_json::json!({
        "service": "sts", "operation": "AssumeRole", "body_contains": account, "status": 403,
        "content_type": "text/xml",
        "body": format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/finops-IdleEc2FunctionRole/idle-ec2 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{account}:role/FinOpsAutopilotMember</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"),
    })
}

#[tokio::test]
async fn an_account_whose_role_cannot_be_assumed_fails_alone_with_awss_reason() {
    let org = organisation(Moto::start().expect("moto")).await;
    let denied = org.members[1].clone();
    org.moto.fault_rule(access_denied(&denied)).await;
    let policy = org_policy(Mode::DryRun);
    let app = fanout_app(&org.moto, policy.clone()).await;
    let deps = finops_tests::deps(&org.moto, "idle-ec2", policy, None, None).await;
    let now = Utc::now();
    let rule = |v: Value| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
        Box::pin(idle_ec2::handler::handle(v, &deps, now))
    };
    let run = org::run(&app, "idle-ec2", "run-2", &rule).await;
    let d = &run.digest;
    assert_eq!(d.items, 8);
    assert_eq!(
        d.items_failed, 2,
        "both regions of the denied account: {:?}",
        d.failed_targets
    );
    let failed: Vec<_> = d.failed_targets.iter().filter(|f| f.account == denied).collect();
    assert_eq!(failed.len(), 2);
    for f in failed {
        assert!(
            f.reason.contains("sts.AssumeRole failed: AccessDenied") && f.reason.contains("not authorized"),
            "{f:?}"
        );
    }
    // The others went on and found what they hold.
    let want: BTreeMap<(String, String), BTreeSet<String>> = org
        .seeded
        .iter()
        .filter(|((a, _), _)| *a != denied)
        .map(|(k, ids)| (k.clone(), ids.iter().cloned().collect()))
        .collect();
    assert_eq!(found(&run), want);
    assert!(!d.accounts.contains_key(&denied));
    assert_eq!(d.accounts.len(), 3);
}

#[tokio::test]
async fn an_approval_executes_in_the_findings_account_and_region_and_nowhere_else() {
    let policy = org_policy(Mode::Approve);
    let lp = Loop::start(policy.clone()).await;
    let hub = lp.moto.clients().await;
    let members = org::organisation(&hub, 2).await;
    // The hub's own account holds an idle instance too: it must not be touched either.
    let hub_idle = seed_idle(&hub, "123456789012", "us-east-1", 1).await.remove(0);
    // The same seed in both members and both regions: one idle instance each.
    let mut all = BTreeMap::new();
    for account in &members {
        for region in REGIONS {
            let ids = seed_idle(&hub, account, region, 1).await;
            all.insert((account.clone(), region.to_string()), ids[0].clone());
        }
    }
    let target = (members[1].clone(), "eu-west-1".to_string());
    let item = org::member_item("run-3", &target.0, &target.1);
    let deps = lp.detector_deps("idle-ec2", policy).await;
    let report = idle_ec2::handler::handle(item, &deps, Utc::now())
        .await
        .expect("the item runs");
    assert_eq!(report.outcomes.len(), 1, "{report:#?}");
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::PendingApproval);
    let published = lp.drain().await;
    let requests = Loop::of_type(&published, "approval-request");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["finding"]["resource"]["account"], target.0.as_str());
    let token = finops_tests::approvals::token_of(request["approve_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &token), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");

    // Stopped in its own account and region; running everywhere else (each account-region
    // also holds a busy instance, which nothing may touch either).
    for ((account, region), id) in &all {
        let c = clients_in(&hub, account, region).await;
        let want = if (account, region) == (&target.0, &target.1) {
            "stopped"
        } else {
            "running"
        };
        assert_eq!(seed::state_of(&c.ec2, id).await, want, "{account} {region} {id}");
        let out = c.ec2.describe_instances().send().await.expect("DescribeInstances");
        let states: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.instance_id() != Some(id))
            .filter_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
            .collect();
        assert_eq!(states, ["running"], "{account} {region}: the busy instance");
    }
    assert_eq!(
        seed::state_of(&hub.ec2, &hub_idle).await,
        "running",
        "the hub's own instance is untouched"
    );

    // Its rollback, too, runs in that account and region: the instance starts again there.
    let published = lp.drain().await;
    let result = &Loop::of_type(&published, "action-result")[0];
    let rollback = finops_tests::approvals::token_of(result["rollback_url"].as_str().expect("a Roll back link"));
    let (status, page) = lp
        .post_form("/decide", &[("token", &rollback), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    let c = clients_in(&hub, &target.0, &target.1).await;
    assert_eq!(
        seed::state_of(&c.ec2, &all[&target]).await,
        "running",
        "started again where it was stopped"
    );
}

#[tokio::test]
async fn ebs_cleanup_keeps_each_account_regions_sightings_so_grace_periods_end_across_runs() {
    // Each item forgets the sightings of volumes it no longer sees: with one scope for every
    // account and region, each item forgot the others', and no grace period ever ended.
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    seed::create_table(&hub.dynamodb, "finops-state").await;
    let members = org::organisation(&hub, 2).await;
    let mut seeded = BTreeSet::new();
    for account in &members {
        for region in REGIONS {
            let c = clients_in(&hub, account, region).await;
            let id = seed::create_volume(&c.ec2, "gp3", 50, None, &format!("{region}a"), &[]).await;
            seeded.insert((account.clone(), region.to_string(), id));
        }
    }
    let policy = org_policy(Mode::DryRun);
    let deps = finops_tests::deps(&moto, "ebs-cleanup", policy, Some("finops-state"), None).await;
    let run = |now: chrono::DateTime<Utc>| {
        let deps = &deps;
        let members = &members;
        async move {
            let mut found = BTreeSet::new();
            for account in members {
                for region in REGIONS {
                    let item = org::member_item("ebs-1", account, region);
                    let report = ebs_cleanup::handler::handle(item, deps, now).await.expect("item");
                    for f in report.findings {
                        found.insert((f.resource.account, f.resource.region, f.resource.id));
                    }
                }
            }
            found
        }
    };
    // Day 0: first seen, in grace. Day 8: past the 7-day grace in every account and region.
    assert!(run(Utc::now() - chrono::Duration::days(8)).await.is_empty());
    assert_eq!(run(Utc::now()).await, seeded);
}

#[tokio::test]
async fn an_item_or_a_finding_for_an_account_these_credentials_are_not_is_refused() {
    let moto = Moto::start().expect("moto");
    let other = "111111111111";
    // No role: the function's own credentials, which are 123456789012's.
    let deps = finops_tests::deps(&moto, "idle-ec2", org_policy(Mode::DryRun), None, None).await;
    let item = serde_json::json!({"source": "finops.fanout", "run_id": "r", "account": other, "region": "us-east-1"});
    let err = idle_ec2::handler::handle(item.clone(), &deps, Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no role_arn, but this function runs in account 123456789012"),
        "{err}"
    );
    // Without an organization section, no item is taken at all.
    let single = finops_tests::deps(&moto, "idle-ec2", Policy::default(), None, None).await;
    let err = idle_ec2::handler::handle(item, &single, Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no organization section"), "{err}");
    // Single-account mode never acts on another account's finding with its own credentials.
    let clients = moto.clients().await;
    let err = remediation::org::reach_finding(&clients, None, other, "us-east-1", "i-0abc")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("acts in its own account 123456789012 only"), "{err}");
    assert!(
        remediation::org::reach_finding(&clients, None, "123456789012", "us-east-1", "i-0abc")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_summary_counts_targets_never_started_unreadable_results_and_the_maps_own_error() {
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    let prefix = "runs/idle-ec2/run-9/results";
    let input = |account: &str| {
        serde_json::json!({"source": "finops.fanout", "run_id": "run-9", "account": account, "region": "eu-west-1"})
            .to_string()
    };
    let succeeded = serde_json::json!([{"Status": "SUCCEEDED", "Input": input("123456789012"),
        "Output": serde_json::json!({"rule": "idle-ec2", "mode": "dry-run", "scanned": 4, "findings": 2, "failed": 0,
            "estimated_monthly_savings_usd": 120.5}).to_string()}]);
    let pending = serde_json::json!([{"Status": "PENDING", "Input": input("222222222222")}]);
    let put = |key: String, body: String| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(body.into_bytes().into())
                .send()
                .await
                .expect("PutObject")
        }
    };
    put(format!("{prefix}/m1/SUCCEEDED_0.json"), succeeded.to_string()).await;
    put(format!("{prefix}/m1/PENDING_0.json"), pending.to_string()).await;
    put(
        format!("{prefix}/m1/manifest.json"),
        serde_json::json!({"DestinationBucket": BUCKET, "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:x/Scan:m1",
            "ResultFiles": {"SUCCEEDED": [{"Key": format!("{prefix}/m1/SUCCEEDED_0.json"), "Size": 1}],
                            "PENDING": [{"Key": format!("{prefix}/m1/PENDING_0.json"), "Size": 1}],
                            "FAILED": [{"Key": format!("{prefix}/m1/FAILED_0.json"), "Size": 1}]}})
        .to_string(),
    )
    .await;
    let app = fanout_app(&moto, org_policy(Mode::DryRun)).await;
    let out = org_fanout::handler::handle(
        // The targets step listed 3 items: the third's result is in the unreadable FAILED file.
        // The payload as the template's SummaryOfAFailedRun builds it.
        org::payload_of(
            "SummaryOfAFailedRun",
            "idle-ec2",
            "run-9",
            &serde_json::json!({"items": 3, "skipped": 0}),
            Some(&serde_json::json!({"Error": "States.ExceedToleratedFailureThreshold", "Cause": "The specified tolerated failure threshold was exceeded"})),
        ),
        &app,
        Utc::now(),
    )
    .await
    .expect("a digest, whatever the results hold");
    assert_eq!(out["items"], 2);
    assert_eq!(out["items_not_started"], 1);
    // The pending one and the lost one: the headline does not say 1 of 2.
    assert_eq!(
        (out["targets"].as_u64(), out["targets_failed"].as_u64()),
        (Some(3), Some(2)),
        "{out}"
    );
    assert_eq!(out["total_findings"], 2);
    assert_eq!(out["total_usd"], 120.5);
    let key = out["digest_key"].as_str().unwrap();
    let body = s3.get_object().bucket(BUCKET).key(key).send().await.expect("digest");
    let d: remediation::org::OrgDigest =
        serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
    assert!(
        d.map_error
            .as_deref()
            .unwrap()
            .starts_with("States.ExceedToleratedFailureThreshold"),
        "{d:?}"
    );
    let reasons: Vec<String> = d
        .failed_targets
        .iter()
        .map(|f| format!("{} {}", f.account, f.reason))
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("222222222222 not started")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("FAILED_0.json could not be read")),
        "a missing results file is a failed target, not a lost digest: {reasons:?}"
    );
}

#[tokio::test]
async fn the_summary_reads_and_writes_only_its_own_bucket_and_the_runs_prefix() {
    let moto = Moto::start().expect("moto");
    let app = fanout_app(&moto, org_policy(Mode::DryRun)).await;
    for (bucket, prefix) in [
        ("someone-elses-bucket", "runs/idle-ec2/run-9/results"),
        (BUCKET, "runs/idle-ec2/another-run/results"),
        (BUCKET, "secrets"),
    ] {
        let err = org_fanout::handler::handle(
            serde_json::json!({"source": "finops.summary", "rule": "idle-ec2", "run_id": "run-9",
                "bucket": bucket, "prefix": prefix, "targets": 1, "skipped": 0}),
            &app,
            Utc::now(),
        )
        .await
        .expect_err("a summary pointed elsewhere");
        assert!(err.to_string().contains("reads only s3://"), "{err}");
    }
    // Nor does a manifest under the run's prefix lead it elsewhere: another bucket, or a file
    // outside the prefix, is a failed target, never read.
    let hub = moto.clients().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    s3.create_bucket()
        .bucket("elsewhere")
        .send()
        .await
        .expect("CreateBucket");
    let prefix = "runs/idle-ec2/run-7/results";
    let secret = serde_json::json!([{"Status": "SUCCEEDED", "Input": "{}", "Output": "{}"}]).to_string();
    for (bucket, key) in [("elsewhere", "secret.json"), (BUCKET, "secrets/other.json")] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(secret.clone().into_bytes().into())
            .send()
            .await
            .expect("PutObject");
    }
    for (run, bucket, key) in [("m1", "elsewhere", "secret.json"), ("m2", BUCKET, "secrets/other.json")] {
        let manifest = serde_json::json!({"DestinationBucket": bucket, "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:x/Scan:m",
            "ResultFiles": {"SUCCEEDED": [{"Key": key, "Size": 1}]}});
        s3.put_object()
            .bucket(BUCKET)
            .key(format!("{prefix}/{run}/manifest.json"))
            .body(manifest.to_string().into_bytes().into())
            .send()
            .await
            .expect("PutObject");
    }
    let out = org_fanout::handler::handle(
        serde_json::json!({"source": "finops.summary", "rule": "idle-ec2", "run_id": "run-7", "targets": 1, "skipped": 0}),
        &app,
        Utc::now(),
    )
    .await
    .expect("a digest");
    assert_eq!(out["items"], 0, "nothing was read: {out}");
    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key(out["digest_key"].as_str().unwrap())
        .send()
        .await
        .expect("digest");
    let d: remediation::org::OrgDigest =
        serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
    let reasons: Vec<&str> = d.failed_targets.iter().map(|f| f.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("names bucket elsewhere")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("secrets/other.json") && r.contains("is not under")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn s3_public_items_judge_each_bucket_once_in_its_own_account_and_region() {
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    let members = org::organisation(&hub, 2).await;
    let mut public = BTreeSet::new();
    for account in &members {
        for region in REGIONS {
            let c = clients_in(&hub, account, region).await;
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&c.config)
                    .force_path_style(true)
                    .build(),
            );
            for (name, open) in [("open", true), ("closed", false)] {
                // Bucket names are global: each account-region's own.
                let bucket = format!("{name}-{account}-{region}");
                let mut create = s3.create_bucket().bucket(&bucket);
                if region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                            .build(),
                    );
                }
                create.send().await.expect("CreateBucket");
                if open {
                    s3.put_bucket_acl()
                        .bucket(&bucket)
                        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
                        .send()
                        .await
                        .expect("PutBucketAcl");
                    public.insert((account.clone(), region.to_string(), bucket));
                }
            }
        }
    }
    let deps = finops_tests::deps(&moto, "s3-public", org_policy(Mode::DryRun), None, None).await;
    let mut found = BTreeSet::new();
    let mut scanned = 0;
    for account in &members {
        for region in REGIONS {
            let item = org::member_item("s3-1", account, region);
            let report = s3_public::handler::handle(item, &deps, Utc::now()).await.expect("item");
            scanned += report.scanned;
            for f in report.findings {
                assert_eq!(
                    (&f.resource.account, &f.resource.region),
                    (account, &region.to_string()),
                    "{f:?}"
                );
                assert!(
                    found.insert((f.resource.account, f.resource.region, f.resource.id)),
                    "judged twice"
                );
            }
        }
    }
    assert_eq!(found, public, "every public bucket once, in its own account and region");
    assert_eq!(scanned, 8, "each of the 8 buckets is scanned by one item only");
}

#[tokio::test]
async fn an_auto_item_stops_its_own_account_regions_idle_instance_and_nothing_elsewhere() {
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    seed::create_table(&hub.dynamodb, "finops-state").await;
    let members = org::organisation(&hub, 2).await;
    let mut idle = BTreeMap::new();
    for account in &members {
        for region in REGIONS {
            idle.insert(
                (account.clone(), region.to_string()),
                seed_idle(&hub, account, region, 1).await.remove(0),
            );
        }
    }
    let target = (members[0].clone(), "eu-west-1".to_string());
    let deps = finops_tests::deps(&moto, "idle-ec2", org_policy(Mode::Auto), Some("finops-state"), None).await;
    let item = org::member_item("auto-1", &target.0, &target.1);
    let report = idle_ec2::handler::handle(item, &deps, Utc::now()).await.expect("item");
    assert_eq!(
        report
            .outcomes
            .iter()
            .filter(|o| o.outcome == OutcomeKind::Executed)
            .count(),
        1,
        "{report:#?}"
    );
    for ((account, region), id) in &idle {
        let c = clients_in(&hub, account, region).await;
        let want = if (account, region) == (&target.0, &target.1) {
            "stopped"
        } else {
            "running"
        };
        assert_eq!(seed::state_of(&c.ec2, id).await, want, "{account} {region}");
    }
}

#[tokio::test]
async fn tag_compliance_across_the_organisation_adds_each_accounts_counts_into_one_figure() {
    let org = organisation(Moto::start().expect("moto")).await;
    let policy = org_policy(Mode::DryRun);
    let app = fanout_app(&org.moto, policy.clone()).await;
    let deps = finops_tests::deps(&org.moto, "tag-compliance", policy, None, None).await;
    let now = Utc::now();
    let rule = |v: Value| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
        Box::pin(tag_compliance::handler::handle(v, &deps, now))
    };
    let run = org::run(&app, "tag-compliance", "tags-1", &rule).await;
    assert_eq!(run.reports.len(), 8, "{:?}", run.digest.failed_targets);
    // Each item's counts, as its own report gives them, reach the digest through the template's
    // ResultSelector: per account and for the organisation.
    let mut want: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (item, report) in &run.reports {
        let c = report.compliance.expect("a sweep's counts");
        let e = want.entry(item.account.clone()).or_default();
        e.0 += c.compliant;
        e.1 += c.total;
    }
    let d = &run.digest;
    for (account, (compliant, total)) in &want {
        let c = d.accounts[account].compliance.expect("the account's counts");
        assert_eq!((c.compliant, c.total), (*compliant, *total), "{account}");
    }
    let whole = d.compliance.expect("the organisation's counts");
    assert_eq!(whole.total, want.values().map(|c| c.1).sum::<usize>());
    // Every seeded instance (idle and busy) is judged: 1+0, 2+1, 0+3, 1+2 idle, one busy each.
    assert!(whole.total >= 10 + 8, "{whole:?}");
    assert!(
        whole.compliant < whole.total,
        "instances tagged Owner only miss the other required tags"
    );
}

/// Issue 26, problem 2: the blast radius held per item, so an organisation run could stop far more
/// than `max_actions` (and a small account all it had). Six accounts (the hub and five members),
/// one region, each 3 idle of 40 instances: each item is within its own limit (4 of 40), 18 in
/// all. In auto mode the run draws from one budget: at most 10 stops in all, each account at most
/// its share (10 over 6 accounts: 2); the rest asked about, and the digest counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_org_run_stops_at_most_max_actions_in_all_and_each_account_its_share() {
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    seed::create_table(&hub.dynamodb, "finops-state").await;
    let own = hub.identity().await.expect("identity").account;
    let members = org::organisation(&hub, 5).await;
    let accounts: Vec<String> = std::iter::once(own).chain(members).collect();
    let mut idle: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for account in &accounts {
        let c = clients_in(&hub, account, "us-east-1").await;
        idle.insert(account.clone(), seed_idle(&hub, account, "us-east-1", 3).await);
        // 36 more (with the busy one seed_idle adds: 40), without metrics: scanned, not idle.
        seed::run_instances(&c.ec2, "t3.micro", 36, &[("Owner", account)], false).await;
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.expect("CreateBucket");
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, _queue) = seed::topic_with_queue(&hub.sns, &sqs, "finops").await;
    let mut policy = org_policy(Mode::Auto);
    if let Some(o) = policy.organization.as_mut() {
        o.regions = vec!["us-east-1".into()];
    }
    let app = fanout_app(&moto, policy.clone()).await;
    let deps = finops_tests::deps(&moto, "idle-ec2", policy, Some("finops-state"), Some(&topic)).await;
    let now = Utc::now();
    let rule = |v: Value| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
        Box::pin(idle_ec2::handler::handle(v, &deps, now))
    };
    moto.clear_metrics_requested().await;
    let run = org::run(&app, "idle-ec2", "budget-1", &rule).await;
    assert_eq!(run.results.len(), 6, "{}", run.targets);
    // Issue 30: the items ran side by side on one set of clients, yet each run record counts its
    // own metrics: together exactly what the server saw.
    let records = deps.state.as_ref().unwrap().runs("idle-ec2", None, None).await.unwrap();
    assert_eq!(records.len(), 6);
    let recorded: u64 = records
        .iter()
        .map(|r| r.cost.as_ref().map_or(0, |c| c.usage.metrics_requested))
        .sum();
    assert_eq!(recorded, moto.metrics_requested().await.1);
    for r in &records {
        // 40 CPU metrics, 6 network metrics of the 3 idle, and the re-check of its stops.
        let metrics = r.cost.as_ref().map_or(0, |c| c.usage.metrics_requested);
        assert!((46..=46 + 3 * 3).contains(&metrics), "{}: {metrics}", r.account);
    }
    for (item, report) in &run.reports {
        assert_eq!(report.scanned, 40, "{}: {report:#?}", item.account);
        assert_eq!(report.findings_total, 3, "{}: {report:#?}", item.account);
    }

    let mut stopped_total = 0;
    for (account, ids) in &idle {
        let c = clients_in(&hub, account, "us-east-1").await;
        let mut stopped = 0;
        for id in ids {
            stopped += usize::from(seed::state_of(&c.ec2, id).await == "stopped");
        }
        assert!(stopped <= 2, "account {account} stopped {stopped}: over its share of 2");
        stopped_total += stopped;
    }
    assert_eq!(stopped_total, 10, "one budget for the run: max_actions 10");
    let executed: usize = run
        .reports
        .iter()
        .flat_map(|(_, r)| &r.outcomes)
        .filter(|o| o.outcome == OutcomeKind::Executed)
        .count();
    assert_eq!(executed, 10);
    let pending: usize = run
        .reports
        .iter()
        .flat_map(|(_, r)| &r.outcomes)
        .filter(|o| o.outcome == OutcomeKind::PendingApproval && o.detail.contains(" spent"))
        .count();
    assert_eq!(pending, 8, "the rest asked about, saying why");
    assert_eq!(run.digest.total_held, 8, "the digest says what was held back");
    // Issue 30: the digest carries the run's own cost: each item's, as its function recorded it
    // (its metrics at least), and the run's Step Functions transitions (Targets, Scan, Summary and
    // one per item of the six).
    assert!(
        run.digest.items_cost_usd >= 6.0 * 40.0 * 0.00001,
        "{}",
        run.digest.items_cost_usd
    );
    assert_eq!(run.digest.state_transitions, 9);
    let message = remediation::notify::Message::OrgDigest {
        digest: Box::new(run.digest.clone()),
    };
    let slack = remediation::slack::render(
        &message,
        remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
    )
    .to_string();
    assert!(
        slack.contains("This run cost about $0.")
            && slack.contains("the calls of the 6 items that answered, and 9 Step Functions transitions"),
        "{slack}"
    );
}
