//! The acting paths under faults (issue 12, item 5): auto idle-ec2, ebs-cleanup's snapshot and
//! delete, s3-public's block, and an approval executed and rolled back, with a seeded 20 % of EC2,
//! S3, CloudWatch and DynamoDB requests throttled and some answers lost after AWS carried the
//! request out. Each run is repeated three times (EventBridge and Lambda retries deliver the same
//! event again), then once more without faults. Whatever fell where: every action has its record
//! before it happens, none runs twice, every finding is acted on or says why not, and each audit
//! trail reads in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use finops_checks::ebs_cleanup::act::SOURCE_VOLUME_TAG;
use finops_tests::approvals::{token_of, Loop};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::policy::{Mode, Policy};
use remediation::state::{ApprovalStore, DynamoState};

const TABLE: &str = "finops-state";

fn auto() -> Policy {
    Policy {
        mode: Mode::Auto,
        max_actions: 100,
        max_actions_percent: 100.0,
        ..Policy::default()
    }
}

fn event(rule: &str) -> serde_json::Value {
    let text = match rule {
        "idle-ec2" => include_str!("../../events/idle-ec2/scheduled.json"),
        "ebs-cleanup" => include_str!("../../events/ebs-cleanup/scheduled.json"),
        _ => include_str!("../../events/s3-public/scheduled.json"),
    };
    serde_json::from_str(text).unwrap()
}

/// The fault rules most runs here meet: 20 % of every service's requests throttled.
async fn throttle_everything(moto: &Moto, seed: u64) {
    for (i, service) in ["ec2", "dynamodb", "monitoring", "s3", "sns"].iter().enumerate() {
        moto.inject_fault(service, "*", 0.2, seed + i as u64, "throttle").await;
    }
}

/// How many `operation` requests whose body holds `needle` reached moto and were carried out: the
/// counting rule (share 0, placed after the fault rules) sees those no fault stopped, and a lost
/// answer was carried out too.
fn carried_out(rules: &serde_json::Value, operation: &str, needle: &str) -> u64 {
    let rules = rules.as_array().expect("fault rules");
    let counted: u64 = rules
        .iter()
        .filter(|r| r["operation"] == operation && r["share"] == 0.0 && r["body_contains"] == needle)
        .map(|r| r["seen"].as_u64().unwrap_or(0))
        .sum();
    let lost: u64 = rules
        .iter()
        .filter(|r| r["operation"] == operation && r["fault"] == "lost" && r["body_contains"] == needle)
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum();
    counted + lost
}

/// Counts, per resource, the `operation` requests that reach moto.
async fn count(moto: &Moto, service: &str, operation: &str, needle: &str) {
    let rule = serde_json::json!({"service": service, "operation": operation, "share": 0.0, "body_contains": needle});
    moto.fault_rule(rule).await;
}

/// Loses the answer to a seeded `share` of `operation` requests holding `needle`, after AWS
/// carried them out.
async fn lose(moto: &Moto, service: &str, operation: &str, needle: &str, share: f64, seed: u64) {
    let rule = serde_json::json!({"service": service, "operation": operation, "share": share, "seed": seed,
        "fault": "lost", "body_contains": needle});
    moto.fault_rule(rule).await;
}

/// The ACTION records, by the resource they act on.
fn actions_by_resource(items: &[HashMap<String, String>]) -> BTreeMap<String, Vec<HashMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<HashMap<String, String>>> = BTreeMap::new();
    for a in items.iter().filter(|i| i["pk"].starts_with("ACTION#")) {
        out.entry(a["resource_id"].clone()).or_default().push(a.clone());
    }
    out
}

/// One record executed for the resource; any other is an attempt that failed or was deferred and
/// says why (the next run tried again).
fn assert_executed_once(resource: &str, records: &[HashMap<String, String>]) {
    let summary: Vec<(String, String)> = records
        .iter()
        .map(|r| (r["status"].clone(), r.get("detail").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(
        records.iter().filter(|r| r["status"] == "executed").count(),
        1,
        "{resource}: {summary:#?}"
    );
    for r in records.iter().filter(|r| r["status"] != "executed") {
        assert!(
            matches!(r["status"].as_str(), "failed" | "deferred"),
            "{resource}: {summary:#?}"
        );
        assert!(
            r.get("detail").is_some_and(|d| !d.is_empty()),
            "{resource}: {summary:#?}"
        );
    }
}

/// A finding's audit trail reads in order: times never go back, and the action is recorded as
/// starting before it is recorded as done, once.
async fn assert_trail_in_order(state: &DynamoState, finding_id: &str) {
    let trail = state.audit_trail(finding_id).await.unwrap();
    let times: Vec<DateTime<Utc>> = trail
        .iter()
        .map(|e| {
            e.at.parse::<DateTime<Utc>>()
                .unwrap_or_else(|_| panic!("audit time {:?}", e.at))
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{finding_id}: {trail:#?}");
    let events: Vec<&str> = trail.iter().map(|e| e.event.as_str()).collect();
    let executing = events.iter().position(|e| *e == "action-executing");
    let executed = events.iter().position(|e| *e == "action-executed");
    assert!(
        matches!((executing, executed), (Some(a), Some(b)) if a < b),
        "{finding_id}: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "action-executed").count(),
        1,
        "{finding_id}: {events:?}"
    );
}

#[tokio::test]
async fn at_twenty_percent_faults_auto_idle_ec2_stops_each_idle_instance_once_after_its_record() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let idle = seed::run_instances(&c.ec2, "t3.large", 20, &[("Owner", "ana")], false).await;
    let busy = seed::run_instances(&c.ec2, "t3.large", 20, &[("Owner", "bo")], false).await;
    for id in &idle {
        seed::put_usage(
            &c.cloudwatch,
            id,
            Usage::IDLE,
            Utc::now() + chrono::Duration::days(1),
            15,
        )
        .await;
    }
    for id in &busy {
        seed::put_usage(
            &c.cloudwatch,
            id,
            Usage::BUSY,
            Utc::now() + chrono::Duration::days(1),
            15,
        )
        .await;
    }
    let deps = finops_tests::deps(&moto, "idle-ec2", auto(), Some(TABLE), None).await;
    for (n, id) in idle.iter().enumerate() {
        lose(&moto, "ec2", "StopInstances", &format!("={id}"), 0.3, 100 + n as u64).await;
    }
    throttle_everything(&moto, 30).await;
    for id in idle.iter().chain(&busy) {
        count(&moto, "ec2", "StopInstances", &format!("={id}")).await;
    }

    for run in 0..3 {
        // A run may fail as a whole (its state table throttled past every retry): Lambda retries.
        let run_result = idle_ec2::handler::handle(event("idle-ec2"), &deps, Utc::now()).await;
        if let Ok(report) = run_result {
            for o in &report.outcomes {
                let id = o.finding_id.rsplit(':').next().unwrap_or_default();
                assert!(idle.contains(&id.to_string()), "run {run}: acted on {id}: {o:?}");
            }
        }
    }
    let rules = moto.faults().await;
    moto.clear_faults().await;
    idle_ec2::handler::handle(event("idle-ec2"), &deps, Utc::now())
        .await
        .expect("the run after the faults");

    let lost: u64 = idle
        .iter()
        .map(|id| carried_out(&rules, "StopInstances", &format!("={id}")))
        .sum();
    assert!(lost > 0, "{rules}");
    for id in &busy {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running", "{id}");
        assert_eq!(carried_out(&rules, "StopInstances", &format!("={id}")), 0, "{id}");
    }
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let actions = actions_by_resource(&items);
    let state = deps.state.as_ref().unwrap();
    for id in &idle {
        assert_eq!(seed::state_of(&c.ec2, id).await, "stopped", "{id}");
        // One action, recorded and finished; its trail in order.
        let records = actions
            .get(id)
            .unwrap_or_else(|| panic!("{id} stopped without an action record"));
        assert_executed_once(id, records);
        assert_trail_in_order(state, &records[0]["finding_id"]).await;
    }
    assert_eq!(actions.len(), idle.len(), "{actions:#?}");
}

#[tokio::test]
async fn at_twenty_percent_faults_auto_ebs_cleanup_takes_one_snapshot_per_volume_and_deletes_each_once() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let mut volumes = BTreeSet::new();
    for i in 0..8 {
        let owner = format!("owner-{i}");
        volumes.insert(seed::create_volume(&c.ec2, "gp2", 100, None, "us-east-1a", &[("Owner", owner.as_str())]).await);
    }
    let deps = finops_tests::deps(&moto, "ebs-cleanup", auto(), Some(TABLE), None).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event("ebs-cleanup"), &deps, today)
        .await
        .unwrap();
    let week = today + Duration::days(8);

    for (n, v) in volumes.iter().enumerate() {
        lose(&moto, "ec2", "CreateSnapshot", &format!("={v}"), 0.5, 200 + n as u64).await;
        lose(&moto, "ec2", "DeleteVolume", &format!("={v}"), 0.3, 300 + n as u64).await;
    }
    throttle_everything(&moto, 40).await;
    for v in &volumes {
        count(&moto, "ec2", "CreateSnapshot", &format!("={v}")).await;
        count(&moto, "ec2", "DeleteVolume", &format!("={v}")).await;
    }
    for _ in 0..3 {
        let _ = ebs_cleanup::handler::handle(event("ebs-cleanup"), &deps, week).await;
    }
    let rules = moto.faults().await;
    moto.clear_faults().await;
    let after = ebs_cleanup::handler::handle(event("ebs-cleanup"), &deps, week)
        .await
        .expect("the run after the faults");

    let lost_snapshots: u64 = rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "CreateSnapshot" && r["fault"] == "lost")
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum();
    assert!(lost_snapshots > 0, "{rules}");
    let left: BTreeSet<String> = seed::volumes(&c.ec2)
        .await
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect();
    let snapshots = seed::snapshots(&c.ec2).await;
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let actions = actions_by_resource(&items);
    let state = deps.state.as_ref().unwrap();
    for v in &volumes {
        assert!(
            !left.contains(v),
            "{v} not deleted: {:?}",
            after
                .outcomes
                .iter()
                .filter(|o| o.finding_id.ends_with(v.as_str()))
                .collect::<Vec<_>>()
        );
        // At most one snapshot per run that reached the delete (three under faults, one after),
        // however many answers were lost: each run that deletes takes its own (issue 26: an
        // earlier one may hold older data), and never two.
        let of_v: Vec<_> = snapshots
            .iter()
            .filter(|s| {
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some(SOURCE_VOLUME_TAG) && t.value() == Some(v))
            })
            .map(|s| s.snapshot_id().unwrap_or_default().to_string())
            .collect();
        assert!((1..=4).contains(&of_v.len()), "{v}: snapshots {of_v:?}");
        let records = actions
            .get(v)
            .unwrap_or_else(|| panic!("{v} deleted without an action record"));
        assert_executed_once(v, records);
        assert_trail_in_order(state, &records[0]["finding_id"]).await;
    }

    // Each delete rolled back with half the answers to CreateVolume lost (throttling is the
    // first part's): tried until it succeeds (a person clicking again), one restored volume per
    // snapshot.
    let adapter = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let ports = finops_checks::executor::RollbackPorts {
        volumes: Some(&adapter),
        ..Default::default()
    };
    lose(&moto, "ec2", "CreateVolume", "", 0.5, 400).await;
    for records in actions.values() {
        let done = records.iter().find(|r| r["status"] == "executed").unwrap();
        let rollback: remediation::act::Rollback = serde_json::from_str(&done["rollback"]).unwrap();
        let mut tries = 0;
        while finops_checks::executor::rollback(&rollback, &ports).await.is_err() {
            tries += 1;
            assert!(tries < 5, "{}: the rollback never succeeded", done["resource_id"]);
        }
    }
    let rules = moto.faults().await;
    moto.clear_faults().await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["fault"] == "lost" && r["operation"] == "CreateVolume" && r["injected"].as_u64() > Some(0)),
        "{rules}"
    );
    let restored = seed::volumes(&c.ec2).await;
    for v in &volumes {
        // One restored volume per deleted volume, from its newest snapshot (the delete's own).
        let mut of_v: Vec<_> = snapshots
            .iter()
            .filter(|s| {
                s.tags()
                    .iter()
                    .any(|t| t.key() == Some(SOURCE_VOLUME_TAG) && t.value() == Some(v))
            })
            .collect();
        of_v.sort_by_key(|s| std::cmp::Reverse(s.start_time().map(|t| t.secs())));
        for (n, snap) in of_v.iter().enumerate() {
            let from = restored
                .iter()
                .filter(|r| r.snapshot_id() == snap.snapshot_id())
                .count();
            assert_eq!(
                from,
                usize::from(n == 0),
                "{v}: {:?} restored {from} time(s)",
                snap.snapshot_id()
            );
        }
    }
}

#[tokio::test]
async fn at_twenty_percent_faults_auto_s3_public_blocks_each_public_bucket_once_after_its_record() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let mut public = BTreeSet::new();
    for i in 0..20 {
        let b = format!("bucket-{i:02}");
        s3.create_bucket().bucket(&b).send().await.unwrap();
        if i % 2 == 0 {
            s3.put_bucket_acl()
                .bucket(&b)
                .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
                .send()
                .await
                .unwrap();
            public.insert(b);
        }
    }
    let deps = finops_tests::deps(&moto, "s3-public", auto(), Some(TABLE), None).await;
    throttle_everything(&moto, 50).await;
    for _ in 0..3 {
        let _ = s3_public::handler::handle(event("s3-public"), &deps, Utc::now()).await;
    }
    moto.clear_faults().await;
    s3_public::handler::handle(event("s3-public"), &deps, Utc::now())
        .await
        .expect("the run after the faults");

    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let actions = actions_by_resource(&items);
    let state = deps.state.as_ref().unwrap();
    for b in &public {
        let block = s3
            .get_public_access_block()
            .bucket(b)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{b} has no public access block: {e:?}"));
        let cfg = block.public_access_block_configuration().unwrap();
        assert_eq!(cfg.block_public_acls(), Some(true), "{b}");
        let records = actions
            .get(b)
            .unwrap_or_else(|| panic!("{b} blocked without an action record"));
        assert_executed_once(b, records);
        assert_trail_in_order(state, &records[0]["finding_id"]).await;
    }
    assert_eq!(actions.len(), public.len(), "{actions:#?}");
}

/// Clicks `link`'s decision three times under faults (a slow page, an impatient person), then
/// clears the faults, runs the hourly sweep (which settles an execution left mid-way) and clicks
/// once more. Returns the fault rules' counts.
async fn click_under_faults(lp: &Loop, link: &str, operation: &str, seed: u64) -> serde_json::Value {
    lose(&lp.moto, "ec2", operation, "", 0.5, seed).await;
    throttle_everything(&lp.moto, seed + 1).await;
    count(&lp.moto, "ec2", operation, "").await;
    let click = || async {
        lp.post_form(
            "/decide",
            &[("token", &token_of(link)), ("approver", "ana@example.com")],
        )
        .await
    };
    for _ in 0..3 {
        // A click that met a fault may fail (the page says to try again): what it did is read
        // from AWS and the table below.
        click().await;
    }
    let rules = lp.moto.faults().await;
    lp.moto.clear_faults().await;
    let hourly = serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap();
    approval::handler::handle(hourly, lp.approval_app(), Utc::now() + Duration::hours(1))
        .await
        .expect("the hourly sweep");
    let (status, page) = click().await;
    assert!(status < 500, "{status}: {page}");
    rules
}

fn lost(rules: &serde_json::Value, operation: &str) -> u64 {
    rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == operation && r["fault"] == "lost")
        .map(|r| r["injected"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn at_twenty_percent_faults_an_approval_clicked_three_times_executes_once_and_rolls_back_once() {
    let policy = Policy {
        mode: Mode::Approve,
        approvals: remediation::policy::ApprovalsPolicy {
            anyone_with_link: true,
            ..Default::default()
        },
        ..Policy::default()
    };
    let lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(
        &c.cloudwatch,
        &id,
        Usage::IDLE,
        Utc::now() + chrono::Duration::days(1),
        15,
    )
    .await;
    let deps = lp.detector_deps("idle-ec2", policy).await;
    idle_ec2::handler::handle(event("idle-ec2"), &deps, Utc::now())
        .await
        .unwrap();
    let request = Loop::of_type(&lp.drain().await, "approval-request").remove(0);
    let approve = request["approve_url"].as_str().expect("an approve link").to_string();
    let request_id = request["request_id"].as_str().unwrap().to_string();

    let rules = click_under_faults(&lp, &approve, "StopInstances", 61).await;
    assert_eq!(seed::state_of(&c.ec2, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "executed", "{stored:#?}");
    // One stop: a lost answer costs the SDK's retry of the same call, never a second decision.
    let stops = carried_out(&rules, "StopInstances", "");
    assert!(stops >= 1 && stops <= 1 + lost(&rules, "StopInstances"), "{rules}");
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    assert_eq!(
        actions_by_resource(&items).get(&id).map(Vec::len),
        Some(1),
        "{items:#?}"
    );
    assert_trail_in_order(lp.state(), &stored.finding.id).await;

    // The action result carries the way back; rolled back under the same faults, once.
    let result = Loop::of_type(&lp.drain().await, "action-result")
        .into_iter()
        .find(|r| r["outcome"] == "executed")
        .expect("an executed action result");
    let rollback = result["rollback_url"].as_str().expect("a rollback link").to_string();
    let rules = click_under_faults(&lp, &rollback, "StartInstances", 81).await;
    assert_eq!(seed::state_of(&c.ec2, &id).await, "running");
    let action_id = stored.action_id.clone().unwrap();
    assert_eq!(
        lp.state().action(&action_id).await.unwrap().unwrap().status,
        "rolled-back"
    );
    let starts = carried_out(&rules, "StartInstances", "");
    assert!(starts >= 1 && starts <= 1 + lost(&rules, "StartInstances"), "{rules}");
    let trail = lp.state().audit_trail(&stored.finding.id).await.unwrap();
    assert_eq!(
        trail.iter().filter(|e| e.event == "rolled-back").count(),
        1,
        "{trail:#?}"
    );
}
