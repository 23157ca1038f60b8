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
    let deps = finops_tests::deps(moto, policy, None, None).await;
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
    let deps = finops_tests::deps(&org.moto, policy, None, None).await;
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
    let skipped = run.targets["skipped"].to_string();
    assert!(
        skipped.contains(&org.closed) && skipped.contains("SUSPENDED"),
        "{skipped}"
    );

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
        d.failed_targets[0].reason.starts_with("not scanned:"),
        "{:?}",
        d.failed_targets
    );
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
    let deps = finops_tests::deps(&org.moto, policy, None, None).await;
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
    // The same seed in both members and both regions: one idle instance each.
    let mut all = BTreeMap::new();
    for account in &members {
        for region in REGIONS {
            let ids = seed_idle(&hub, account, region, 1).await;
            all.insert((account.clone(), region.to_string()), ids[0].clone());
        }
    }
    let target = (members[1].clone(), "eu-west-1".to_string());
    let item = serde_json::json!({"source": "finops.fanout", "run_id": "run-3", "account": target.0,
        "region": target.1, "role_arn": remediation::org::role_arn("aws", &target.0, org::ROLE)});
    let deps = lp.detector_deps(policy).await;
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
    // The hub's own region holds nothing of the members.
    let own = hub.ec2.describe_instances().send().await.expect("DescribeInstances");
    assert!(own.reservations().is_empty(), "the hub's account is untouched");
}
