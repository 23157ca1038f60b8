//! idle-ec2 end to end: the real handler, the real SDK clients, moto server.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::config::Deps;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};

const TABLE: &str = "finops-state";

fn now() -> DateTime<Utc> {
    "2026-11-26T06:00:00Z".parse().unwrap()
}

fn scheduled_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap()
}

/// A small account: who is who.
struct Fleet {
    idle: BTreeSet<String>,
    busy: String,
    proxy: String,
    exempt: String,
    stopped: String,
    asg: String,
    spot: String,
    gap: String,
}

impl Fleet {
    fn all_running_but_stopped(&self) -> Vec<&String> {
        let mut v: Vec<&String> = self.idle.iter().collect();
        v.extend([&self.busy, &self.proxy, &self.exempt, &self.asg, &self.spot, &self.gap]);
        v
    }
}

async fn seed_fleet(moto: &Moto) -> Fleet {
    let c = moto.clients().await;
    let (ec2, cw) = (&c.ec2, &c.cloudwatch);
    let mut idle = BTreeSet::new();
    idle.insert(seed::run_instance(ec2, "t3.large", &[("Owner", "ana"), ("Name", "old-batch")]).await);
    idle.insert(seed::run_instance(ec2, "m5.xlarge", &[("Owner", "bo")]).await);
    idle.insert(seed::run_instance(ec2, "c6i.large", &[("Owner", "cy"), ("finops:exempt", "false")]).await);
    let busy = seed::run_instance(ec2, "m5.large", &[("Owner", "ana")]).await;
    let proxy = seed::run_instance(ec2, "t3.small", &[("Owner", "bo")]).await;
    let exempt = seed::run_instance(ec2, "r5.large", &[("Owner", "cy"), ("finops:exempt", " True ")]).await;
    let stopped = seed::run_instance(ec2, "t3.large", &[("Owner", "ana")]).await;
    let asg = seed::run_instance(ec2, "t3.large", &[("aws:autoscaling:groupName", "web-asg")]).await;
    let spot = seed::run_instances(ec2, "t3.large", 1, &[("Owner", "dee")], true)
        .await
        .remove(0);
    let gap = seed::run_instance(ec2, "t3.large", &[("Owner", "dee")]).await;
    seed::stop(ec2, &stopped).await;

    let mut datums = Vec::new();
    for id in idle.iter().chain([&exempt, &stopped, &asg, &spot]) {
        datums.extend(seed::daily_datums(id, Usage::IDLE, now(), 14, &[]));
    }
    datums.extend(seed::daily_datums(&busy, Usage::BUSY, now(), 14, &[]));
    datums.extend(seed::daily_datums(&proxy, Usage::PROXY, now(), 14, &[]));
    // Quiet, but CloudWatch has no CPU datapoint for one day: not 14 idle days.
    let missing = finops_checks::idle_ec2::detect::lookback_days(now(), 14)[5];
    datums.extend(seed::daily_datums(&gap, Usage::IDLE, now(), 14, &[missing]));
    seed::put_datums(cw, datums).await;
    Fleet {
        idle,
        busy,
        proxy,
        exempt,
        stopped,
        asg,
        spot,
        gap,
    }
}

/// The policy of most tests here: `mode`, and a blast radius wide enough to act on the three
/// idle instances of nine (the default allows one; its own test below keeps the default).
fn policy(mode: Mode) -> Policy {
    Policy {
        mode,
        max_actions_percent: 100.0,
        ..Policy::default()
    }
}

/// Dependencies as main builds them, with state and topic when given.
async fn deps(moto: &Moto, policy: Policy, table: Option<&str>, topic: Option<&str>) -> Deps {
    finops_tests::deps(moto, "idle-ec2", policy, table, topic).await
}

/// Acts on a dry run's findings in auto mode at `at`, through the real guarded, re-evaluating stop.
async fn stop_in_auto(
    moto: &Moto,
    auto: &Deps,
    report: &RunReport,
    at: DateTime<Utc>,
) -> Vec<remediation::model::Outcome> {
    let c = moto.clients().await;
    let ec2 = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let cloudwatch = remediation::aws::cloudwatch::CloudWatch::new(c.cloudwatch.clone(), 1);
    let ctx = remediation::flow::RunContext {
        mode: Mode::Auto,
        policy: &auto.policy,
        now: at,
        sinks: auto.sinks(),
        held: Default::default(),
    };
    let stop = finops_checks::idle_ec2::act::StopInstance {
        ec2: &ec2,
        policy: &auto.policy,
        usage: Some(&cloudwatch),
        others: &[],
        now: at,
    };
    remediation::flow::apply(&ctx, &report.findings, &stop, report.scanned)
        .await
        .0
}

fn flagged(report: &RunReport) -> BTreeSet<String> {
    report.findings.iter().map(|f| f.resource.id.clone()).collect()
}

fn outcome_of<'a>(report: &'a RunReport, instance: &str) -> &'a remediation::model::Outcome {
    report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&format!(":{instance}")))
        .unwrap_or_else(|| panic!("no outcome for {instance}: {:#?}", report.outcomes))
}

#[tokio::test]
async fn dry_run_finds_exactly_the_idle_instances_and_changes_nothing() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let deps = deps(&moto, Policy::default(), None, None).await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert_eq!(report.mode, Mode::DryRun);
    assert_eq!(flagged(&report), fleet.idle);
    // Nine running instances were looked at; the stopped one is not in the inventory.
    assert_eq!(report.scanned, 9);
    // t3.large 60.74 + m5.xlarge 140.16 + c6i.large 62.05
    assert_eq!(report.estimated_monthly_savings_usd, 262.95);
    for id in &fleet.idle {
        assert_eq!(outcome_of(&report, id).outcome, OutcomeKind::DryRun);
    }
    assert!(outcome_of(&report, &fleet.exempt).detail.contains("exempt"));
    assert!(outcome_of(&report, &fleet.asg)
        .detail
        .contains("Auto Scaling group web-asg"));
    assert!(outcome_of(&report, &fleet.spot).detail.contains("spot"));
    for id in [&fleet.busy, &fleet.proxy, &fleet.gap] {
        assert!(
            !report.outcomes.iter().any(|o| o.finding_id.ends_with(id.as_str())),
            "{id} should be silent"
        );
    }
    assert!(report.notes.iter().any(|n| n.contains("state is off")));
    assert!(report.notes.iter().any(|n| n.contains("notifications are off")));
    let ec2 = &deps.clients.ec2;
    assert_eq!(seed::state_of(ec2, &fleet.stopped).await, "stopped");
    assert!(!report
        .outcomes
        .iter()
        .any(|o| o.finding_id.ends_with(fleet.stopped.as_str())));
    for id in fleet.all_running_but_stopped() {
        assert_eq!(seed::state_of(ec2, id).await, "running", "{id}");
    }
    // The evidence carries the per-day numbers.
    let evidence = serde_json::to_value(&report.findings[0].evidence).unwrap();
    assert_eq!(evidence["days"].as_array().unwrap().len(), 14);
    assert_eq!(evidence["days"][0]["cpu_average_percent"], 1.0);
    assert_eq!(evidence["days"][0]["network_bytes"], 100_000.0);
}

#[tokio::test]
async fn the_scan_costs_one_describe_page_one_type_lookup_and_two_metric_calls_for_a_small_account() {
    let moto = Moto::start().unwrap();
    seed_fleet(&moto).await;
    let deps = deps(&moto, Policy::default(), None, None).await;
    let before = deps.clients.calls.snapshot();
    idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    let after = deps.clients.calls.snapshot();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(delta("EC2.DescribeInstances"), 1);
    // The CPU of every candidate, then the network of those whose CPU leaves them possibly idle.
    assert_eq!(delta("CloudWatch.GetMetricData"), 2);
    // Instance storage of the types present, asked once for all of them.
    assert_eq!(delta("EC2.DescribeInstanceTypes"), 1);
    assert_eq!(deps.clients.calls.total() - before.values().sum::<u64>(), 4);
}

#[tokio::test]
async fn auto_mode_stops_the_idle_instances_records_them_and_leaves_the_rest_running() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), Some(&topic)).await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    for id in &fleet.idle {
        assert_eq!(
            outcome_of(&report, id).outcome,
            OutcomeKind::Executed,
            "{:?}",
            outcome_of(&report, id)
        );
        assert_eq!(seed::state_of(&c.ec2, id).await, "stopped", "{id}");
    }
    for id in [
        &fleet.busy,
        &fleet.proxy,
        &fleet.exempt,
        &fleet.asg,
        &fleet.spot,
        &fleet.gap,
    ] {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running", "{id}");
    }
    // Each action: a record with pre-state and rollback, finished as executed, and its audit trail.
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let actions: Vec<_> = items.iter().filter(|i| i["pk"].starts_with("ACTION#")).collect();
    assert_eq!(actions.len(), fleet.idle.len());
    for a in &actions {
        assert_eq!(a["status"], "executed");
        let pre: serde_json::Value = serde_json::from_str(&a["pre_state"]).unwrap();
        assert_eq!(pre["state"], "running");
        let rollback: serde_json::Value = serde_json::from_str(&a["rollback"]).unwrap();
        assert_eq!(rollback["action"], "start-instance");
        assert!(fleet.idle.contains(rollback["instance_id"].as_str().unwrap()));
    }
    let audit_events: Vec<&str> = items
        .iter()
        .filter(|i| i["pk"].starts_with("AUDIT#"))
        .map(|i| i["event"].as_str())
        .collect();
    assert_eq!(audit_events.iter().filter(|e| **e == "action-executing").count(), 3);
    assert_eq!(audit_events.iter().filter(|e| **e == "action-executed").count(), 3);
    // One action-result message per stop, with filterable attributes.
    let messages = seed::drain_queue(&sqs, &queue).await;
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert_eq!(m["MessageAttributes"]["type"]["Value"], "action-result");
        assert_eq!(m["MessageAttributes"]["rule"]["Value"], "idle-ec2");
        let body: serde_json::Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
        assert_eq!(body["type"], "action-result");
        assert_eq!(body["outcome"], "executed");
    }
}

#[tokio::test]
async fn the_recorded_rollback_starts_a_stopped_instance_again() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = items.iter().find(|i| i["pk"].starts_with("ACTION#")).unwrap();
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
    let ec2 = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let remediation::act::Rollback::StartInstance { instance_id, .. } = &rollback else {
        panic!("a stop's rollback is a start: {rollback:?}");
    };
    assert!(fleet.idle.contains(instance_id));
    assert_eq!(seed::state_of(&c.ec2, instance_id).await, "stopped");

    let detail = finops_checks::executor::rollback(
        &rollback,
        &finops_checks::executor::RollbackPorts {
            instances: Some(&ec2),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .detail;

    assert!(detail.contains("started again"), "{detail}");
    assert_eq!(seed::state_of(&c.ec2, instance_id).await, "running");
    // A second rollback finds nothing to undo and changes nothing.
    let again = finops_checks::executor::rollback(
        &rollback,
        &finops_checks::executor::RollbackPorts {
            instances: Some(&ec2),
            ..Default::default()
        },
    )
    .await;
    assert!(again.unwrap_err().to_string().contains("not stopped"));
}

#[tokio::test]
async fn approve_mode_writes_one_pending_approval_and_one_message_even_when_the_event_is_replayed() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let deps = deps(&moto, policy(Mode::Approve), Some(TABLE), Some(&topic)).await;

    let first = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    let replay = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    for id in &fleet.idle {
        assert_eq!(outcome_of(&first, id).outcome, OutcomeKind::PendingApproval);
        assert_eq!(outcome_of(&replay, id).outcome, OutcomeKind::PendingApproval);
        assert!(outcome_of(&replay, id).detail.contains("no new request"));
        // Nothing is stopped before a human says so.
        assert_eq!(seed::state_of(&c.ec2, id).await, "running");
    }
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let approvals: Vec<_> = items.iter().filter(|i| i["pk"].starts_with("APPROVAL#")).collect();
    assert_eq!(approvals.len(), 3);
    let now_epoch = now().timestamp();
    for a in &approvals {
        assert_eq!(a["status"], "pending");
        assert_eq!(a["notified"], "true");
        let ttl: i64 = a["expires_at"].parse().unwrap();
        assert_eq!(ttl - now_epoch, 72 * 3600);
    }
    let messages = seed::drain_queue(&sqs, &queue).await;
    assert_eq!(
        messages.len(),
        3,
        "one approval request per idle instance, none for the replay"
    );
    let mut asked = BTreeSet::new();
    for m in &messages {
        assert_eq!(m["MessageAttributes"]["type"]["Value"], "approval-request");
        let body: serde_json::Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
        assert!(body["approve_url"].as_str().unwrap().contains("/decide?token="));
        assert!(body["reject_url"].as_str().unwrap().contains("/decide?token="));
        asked.insert(body["finding"]["resource"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(asked, fleet.idle);
}

#[tokio::test]
async fn an_exemption_added_after_detection_is_honoured_when_acting() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    // Detect in dry-run, then an owner tags one instance exempt and stops another by hand.
    let dry = deps(&moto, Policy::default(), None, None).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &dry, now()).await.unwrap();
    let mut ids = fleet.idle.iter();
    let (tagged, stopped_by_hand) = (ids.next().unwrap().clone(), ids.next().unwrap().clone());
    seed::tag(&c.ec2, &tagged, "finops:exempt", "TRUE").await;
    seed::stop(&c.ec2, &stopped_by_hand).await;

    let auto = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    let outcomes = stop_in_auto(&moto, &auto, &report, now()).await;

    let by_id: HashMap<&str, &remediation::model::Outcome> = outcomes
        .iter()
        .map(|o| (o.finding_id.rsplit(':').next().unwrap(), o))
        .collect();
    assert_eq!(by_id[tagged.as_str()].outcome, OutcomeKind::Skipped);
    assert!(by_id[tagged.as_str()].detail.contains("exempt"));
    assert_eq!(seed::state_of(&c.ec2, &tagged).await, "running");
    assert_eq!(by_id[stopped_by_hand.as_str()].outcome, OutcomeKind::Skipped);
    assert!(by_id[stopped_by_hand.as_str()].detail.contains("stopped"));
    let third = ids.next().unwrap();
    assert_eq!(by_id[third.as_str()].outcome, OutcomeKind::Executed);
    // Only the one executed action is on record.
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count(), 1);
}

#[tokio::test]
async fn auto_mode_without_a_state_table_refuses_to_act() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let deps = deps(&moto, policy(Mode::Auto), None, None).await;
    let err = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FINOPS_TABLE"), "{err}");
    for id in &fleet.idle {
        assert_eq!(seed::state_of(&deps.clients.ec2, id).await, "running");
    }
}

#[tokio::test]
async fn an_unreachable_cloudwatch_fails_each_instance_and_stops_nothing() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let mut deps = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    // CloudWatch at a port where nothing listens, with no retries: every GetMetricData fails.
    let dead = aws_sdk_cloudwatch::config::Builder::from(&moto.sdk_config_with_attempts(1).await)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    deps.clients.cloudwatch = aws_sdk_cloudwatch::Client::from_conf(dead);

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert!(report.findings.is_empty());
    for id in &fleet.idle {
        let o = outcome_of(&report, id);
        assert_eq!(o.outcome, OutcomeKind::Failed);
        assert!(o.detail.contains("GetMetricData"), "{}", o.detail);
        assert_eq!(seed::state_of(&c.ec2, id).await, "running");
    }
}

#[tokio::test]
async fn a_non_scheduled_event_is_refused_before_any_aws_call() {
    let moto = Moto::start().unwrap();
    let deps = deps(&moto, Policy::default(), None, None).await;
    let err = idle_ec2::handler::handle(serde_json::json!({"hello": "world"}), &deps, now())
        .await
        .unwrap_err();
    assert!(matches!(err, remediation::Error::Event(_)), "{err}");
    assert_eq!(deps.clients.calls.total(), 0);
}

#[tokio::test]
async fn an_instance_whose_type_has_instance_storage_is_never_stopped_and_the_run_says_why() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    // EBS-backed, idle for 14 days, but an m5d: its local NVMe disk is wiped by a stop.
    let m5d = seed::run_instance(&c.ec2, "m5d.large", &[("Owner", "ana")]).await;
    seed::put_datums(&c.cloudwatch, seed::daily_datums(&m5d, Usage::IDLE, now(), 14, &[])).await;
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    let o = outcome_of(&report, &m5d);
    assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
    assert!(
        o.detail.contains("m5d.large has instance-store volumes"),
        "{}",
        o.detail
    );
    assert_eq!(seed::state_of(&c.ec2, &m5d).await, "running");
    assert!(!flagged(&report).contains(&m5d));
    // The others are unaffected: the EBS-only idle instances were stopped.
    for id in &fleet.idle {
        assert_eq!(seed::state_of(&c.ec2, id).await, "stopped", "{id}");
    }
}

#[tokio::test]
async fn above_the_blast_radius_auto_mode_acts_on_none_and_asks_instead() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    // The default limits: 10 actions and 10% of what was scanned (9 → 1).
    let auto = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    let deps = deps(&moto, auto, Some(TABLE), Some(&topic)).await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert_eq!(flagged(&report), fleet.idle);
    for id in &fleet.idle {
        let o = outcome_of(&report, id);
        assert_eq!(o.outcome, OutcomeKind::PendingApproval, "{o:?}");
        assert!(
            o.detail.contains("would act on 3 of 9 scanned, limit 1"),
            "{}",
            o.detail
        );
        assert_eq!(seed::state_of(&c.ec2, id).await, "running", "{id}");
    }
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count(), 0);
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("APPROVAL#")).count(), 3);
    let messages = seed::drain_queue(&sqs, &queue).await;
    let kinds: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["MessageAttributes"]["type"]["Value"].as_str())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "held").count(), 1, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "approval-request").count(),
        3,
        "{kinds:?}"
    );
    let held = messages
        .iter()
        .find(|m| m["MessageAttributes"]["type"]["Value"] == "held")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(held["Message"].as_str().unwrap()).unwrap();
    assert_eq!((body["would_act"].as_u64(), body["limit"].as_u64()), (Some(3), Some(1)));
    let slack = remediation::slack::render(
        &serde_json::from_value(body).unwrap(),
        remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
    );
    assert!(
        slack["text"].as_str().unwrap().contains("would act on 3, limit 1"),
        "{slack}"
    );
}

#[tokio::test]
async fn an_emergency_switch_that_is_not_a_boolean_counts_as_on() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    // Written by hand, as the string "false": what it means cannot be known, so it stops.
    c.dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("CONTROL".into()))
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("EMERGENCY_STOP".into()),
        )
        .item("on", aws_sdk_dynamodb::types::AttributeValue::S("false".into()))
        .item("by", aws_sdk_dynamodb::types::AttributeValue::S("ops".into()))
        .send()
        .await
        .unwrap();
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert_eq!(report.mode, Mode::DryRun);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("EMERGENCY STOP") && n.contains("not a boolean")),
        "{:?}",
        report.notes
    );
    for id in &fleet.idle {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running", "{id}");
    }
}

#[tokio::test]
async fn the_emergency_stop_is_read_before_each_action_not_once_per_run() {
    use remediation::state::ApprovalStore;
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let auto = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    // The run's mode was settled (auto) before the operator pulled the switch.
    let dry = deps(&moto, Policy::default(), None, None).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &dry, now()).await.unwrap();
    // The operator pulls it (the functions' roles are denied the switch).
    remediation::state::DynamoState::new(c.dynamodb.clone(), TABLE)
        .set_emergency_stop(true, "ops@example.com", "incident 42", now())
        .await
        .unwrap();

    let outcomes = stop_in_auto(&moto, &auto, &report, now()).await;

    assert_eq!(outcomes.len(), 3);
    for o in &outcomes {
        assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
        assert!(
            o.detail.contains("emergency stop is on") && o.detail.contains("incident 42"),
            "{}",
            o.detail
        );
    }
    for id in &fleet.idle {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running", "{id}");
    }
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count(), 0);
}

#[tokio::test]
async fn an_invocation_near_its_deadline_starts_no_action_and_defers_them_all() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let auto = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;

    // Lambda's deadline is 10 s away; the policy keeps a 30 s margin for an action.
    let deadline = Utc::now() + chrono::Duration::seconds(10);
    let report =
        remediation::flow::within_deadline(deadline, idle_ec2::handler::handle(scheduled_event(), &auto, now()))
            .await
            .unwrap();

    for id in &fleet.idle {
        let o = outcome_of(&report, id);
        assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
        assert!(
            o.detail.contains("deferred") && o.detail.contains("30s margin"),
            "{o:?}"
        );
        assert_eq!(seed::state_of(&c.ec2, id).await, "running");
    }
    assert!(
        report.notes.iter().any(|n| n.contains("time budget")),
        "{:?}",
        report.notes
    );
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    assert!(!items.iter().any(|i| i["pk"].starts_with("ACTION#")), "nothing begun");

    // The next invocation, with its time, acts on them.
    let report = remediation::flow::within_deadline(
        Utc::now() + chrono::Duration::minutes(5),
        idle_ec2::handler::handle(scheduled_event(), &auto, now()),
    )
    .await
    .unwrap();
    for id in &fleet.idle {
        assert_eq!(outcome_of(&report, id).outcome, OutcomeKind::Executed);
        assert_eq!(seed::state_of(&c.ec2, id).await, "stopped");
    }
}

#[tokio::test]
async fn a_stop_decided_days_ago_is_not_made_when_the_days_since_have_no_cpu_data() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let dry = deps(&moto, Policy::default(), None, None).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &dry, now()).await.unwrap();

    // Acted on three days later: CloudWatch has nothing for those days (agent gone, metrics
    // missing): a day without data proves nothing idle, so nothing is stopped.
    let auto = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    let later = now() + chrono::Duration::days(3);
    let outcomes = stop_in_auto(&moto, &auto, &report, later).await;
    assert_eq!(outcomes.len(), fleet.idle.len());
    for o in &outcomes {
        assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
        assert!(o.detail.contains("no CPU data for 2026-11-2"), "{o:?}");
    }
    for id in &fleet.idle {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running");
    }
}

/// Issue 26, problem 5: a failed DescribeInstanceTypes (an SCP denying it, or throttling past every
/// retry) left every instance's storage unknown, a guard's skip: the run said ok with 0 findings,
/// every day. Now each such instance is `failed` (not assessed), and a run that could assess
/// nothing is an error, which Lambda counts (the template's errors alarm).
#[tokio::test]
async fn a_failed_describe_instance_types_is_a_failed_run_not_a_quiet_ok() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    let idle = seed::run_instances(&c.ec2, "m5.large", 3, &[("Owner", "ana")], false).await;
    for id in &idle {
        seed::put_usage(&c.cloudwatch, id, Usage::IDLE, now(), 14).await;
    }
    moto.inject_fault("ec2", "DescribeInstanceTypes", 1.0, 3, "throttle")
        .await;
    let deps = deps(&moto, Policy::default(), None, None).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert_eq!(report.findings.len(), 0);
    assert_eq!(report.failed, 3, "{report:#?}");
    assert_eq!(report.skipped, 0, "{report:#?}");
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.outcome == OutcomeKind::Failed && o.detail.contains("DescribeInstanceTypes")),
        "{report:#?}"
    );
    let answered = remediation::flow::invocation_result(report);
    assert!(
        answered
            .as_ref()
            .is_err_and(|e| e.to_string().contains("DescribeInstanceTypes")),
        "the invocation fails, so the errors alarm counts it: {answered:?}"
    );
}

/// Issue 26, problems 7 and 13. A stop releases an auto-assigned public IPv4 address (the
/// rollback starts the instance with another), so in auto mode such an instance is asked about,
/// the request saying so, never stopped; an Elastic IP stays with the instance, which is stopped
/// and its address on record. A hibernation-enabled instance is hibernated (its rollback resumes
/// it); members of an EC2 Fleet or a Spot Fleet are left alone like Auto Scaling members.
#[tokio::test]
async fn addresses_a_stop_releases_are_asked_about_hibernating_instances_hibernate_and_fleet_members_stay() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let public = seed::run_public_instances(&c.ec2, "t3.large", 1, &[("Owner", "ana")])
        .await
        .remove(0);
    let elastic = seed::run_public_instances(&c.ec2, "t3.large", 1, &[("Owner", "bo")])
        .await
        .remove(0);
    let eip = c.ec2.allocate_address().send().await.expect("AllocateAddress");
    c.ec2
        .associate_address()
        .instance_id(&elastic)
        .allocation_id(eip.allocation_id().unwrap())
        .send()
        .await
        .expect("AssociateAddress");
    let hibernating = c
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
        .min_count(1)
        .max_count(1)
        .hibernation_options(
            aws_sdk_ec2::types::HibernationOptionsRequest::builder()
                .configured(true)
                .build(),
        )
        .network_interfaces(
            aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .associate_public_ip_address(false)
                .build(),
        )
        .send()
        .await
        .expect("RunInstances")
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let ec2_fleet = seed::run_instance(&c.ec2, "t3.large", &[("aws:ec2:fleet-id", "fleet-0a1b")]).await;
    let spot_fleet = seed::run_instance(&c.ec2, "t3.large", &[("aws:ec2spot:fleet-request-id", "sfr-0c2d")]).await;
    for id in [&public, &elastic, &hibernating, &ec2_fleet, &spot_fleet] {
        seed::put_usage(&c.cloudwatch, id, Usage::IDLE, now(), 14).await;
    }
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), Some(&topic)).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    let outcome = |id: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id))
            .unwrap_or_else(|| panic!("{id}: {report:#?}"))
            .clone()
    };

    // The auto-assigned address: asked, saying the address would change; still running.
    assert_eq!(seed::state_of(&c.ec2, &public).await, "running");
    let asked = outcome(&public);
    assert_eq!(asked.outcome, OutcomeKind::PendingApproval, "{asked:?}");
    assert!(asked.detail.contains("auto-assigned"), "{asked:?}");
    let messages = seed::drain_queue(&sqs, &queue).await;
    let request = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m["Message"].as_str()?).ok())
        .find(|m| m["type"] == "approval-request")
        .expect("an approval request");
    assert_eq!(request["finding"]["resource"]["id"], public.as_str());
    assert!(
        request["finding"]["evidence"]["public_ipv4_changes"].is_string(),
        "{request:#}"
    );
    assert!(
        request["held"].as_str().is_some_and(|h| h.contains("auto-assigned")),
        "{request:#}"
    );
    let slack = remediation::slack::render(
        &serde_json::from_value(request.clone()).unwrap(),
        remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
    )
    .to_string();
    assert!(
        slack.contains("public_ipv4_changes") || slack.contains("auto-assigned"),
        "{slack}"
    );

    // The Elastic IP: stopped, the address on record (it stays with the instance).
    assert_eq!(seed::state_of(&c.ec2, &elastic).await, "stopped");
    let stopped = outcome(&elastic);
    assert!(stopped.detail.contains("keeps its Elastic IP"), "{stopped:?}");
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = |id: &str| {
        items
            .iter()
            .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == id)
            .unwrap_or_else(|| panic!("{id}: no action record"))
            .clone()
    };
    let pre: serde_json::Value = serde_json::from_str(&record(&elastic)["pre_state"]).unwrap();
    assert_eq!(pre["public_ipv4"]["elastic"], true, "{pre:#}");
    assert_eq!(pre["public_ipv4"]["address"], eip.public_ip().unwrap(), "{pre:#}");

    // Hibernated, and its way back says resume.
    assert_eq!(seed::state_of(&c.ec2, &hibernating).await, "stopped");
    assert!(
        outcome(&hibernating).detail.starts_with("hibernated"),
        "{:?}",
        outcome(&hibernating)
    );
    let rollback: remediation::act::Rollback = serde_json::from_str(&record(&hibernating)["rollback"]).unwrap();
    assert!(rollback.to_string().starts_with("resume"), "{rollback}");

    // Fleet members: left alone, saying why.
    for (id, fleet) in [
        (&ec2_fleet, "EC2 Fleet fleet-0a1b"),
        (&spot_fleet, "Spot Fleet sfr-0c2d"),
    ] {
        assert_eq!(seed::state_of(&c.ec2, id).await, "running");
        let o = outcome(id);
        assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
        assert!(o.detail.contains(fleet), "{o:?}");
    }
}

/// Issue 26, problem 11: a rollback started an instance whatever happened since. When someone
/// started it after the action's stop and stopped it again, that stop is theirs: the rollback says
/// so and leaves it stopped (EC2 sets LaunchTime at every start, "the time that the instance was
/// last launched", API_Instance).
#[tokio::test]
async fn a_rollback_does_not_undo_a_stop_someone_made_after_the_action() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, now(), 14).await;
    let deps = deps(&moto, policy(Mode::Auto), Some(TABLE), None).await;
    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::Executed, "{report:#?}");
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == id)
        .expect("the action record");
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();

    // A second later its owner starts it, works, and stops it again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.ec2
        .start_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("StartInstances");
    seed::stop(&c.ec2, &id).await;
    let ec2 = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let refused = finops_checks::executor::rollback(
        &rollback,
        &finops_checks::executor::RollbackPorts {
            instances: Some(&ec2),
            ..Default::default()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("started again at") && refused.contains("stopped since by someone else"),
        "{refused}"
    );
    assert_eq!(seed::state_of(&c.ec2, &id).await, "stopped");
}

/// Issue 30: CloudWatch bills GetMetricData per metric requested ($0.01 per 1,000), however they are
/// packed. The scan asks for the CPU of each of the 6 instances the guards leave (6 metrics), then
/// for the network of the 4 whose CPU leaves them possibly idle (the 3 idle ones and the proxy; 8
/// metrics): 14 metrics, counted at the server, where asking all three measures of each asked 18.
/// It finds exactly what one query of all three measures finds, with the same evidence.
#[tokio::test]
async fn the_idle_scan_asks_for_network_only_where_the_cpu_leaves_an_instance_possibly_idle_and_finds_the_same() {
    use remediation::aws::cloudwatch::{CloudWatch, Measures, UsageApi};
    use remediation::aws::ec2::InstanceApi;
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let deps = deps(&moto, Policy::default(), None, None).await;
    moto.clear_metrics_requested().await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert_eq!(moto.metrics_requested().await, (2, 14));
    let found: BTreeSet<String> = report.findings.iter().map(|f| f.resource.id.clone()).collect();
    assert_eq!(found, fleet.idle);

    // Today's single query of all three measures, judged by the same detector.
    let ec2 = remediation::aws::ec2::Ec2::new(deps.clients.ec2.clone(), "us-east-1");
    let policy = Policy::default();
    let candidates: Vec<_> = ec2
        .running_instances()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| finops_checks::idle_ec2::detect::skip_reason(i, &policy).is_none())
        .collect();
    assert_eq!(candidates.len(), 6);
    let days = finops_checks::idle_ec2::detect::lookback_days(now(), policy.idle_ec2.lookback_days);
    let ids: Vec<String> = candidates.iter().map(|i| i.id.clone()).collect();
    let all = CloudWatch::new(deps.clients.cloudwatch.clone(), 4)
        .daily_usage(&ids, &days, Measures::All)
        .await;
    assert!(all.failed.is_empty(), "{:?}", all.failed);
    let expected = finops_checks::idle_ec2::detect::detect_priced(
        &candidates,
        &all.usage,
        &policy,
        &remediation::pricing::PriceBook::embedded(),
        now(),
    );
    let evidence = |fs: &[remediation::model::Finding]| -> Vec<(String, serde_json::Value)> {
        let mut v: Vec<_> = fs
            .iter()
            .map(|f| (f.resource.id.clone(), serde_json::to_value(&f.evidence).unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(evidence(&report.findings), evidence(&expected));
    // That query asks for 18 metrics.
    assert_eq!(moto.metrics_requested().await, (3, 32));
}

/// Issue 30: every run records what it cost on the AWS bill, estimated from what it did. This
/// scan's 14 metrics (counted at the server, see above) are $0.00014 of CloudWatch; its record
/// says so, beside its DynamoDB and other calls.
#[tokio::test]
async fn each_run_records_its_own_cost_from_what_it_asked_for() {
    let moto = Moto::start().unwrap();
    seed_fleet(&moto).await;
    seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    let deps = deps(&moto, Policy::default(), Some(TABLE), None).await;
    moto.clear_metrics_requested().await;

    idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    let (_, at_the_server) = moto.metrics_requested().await;
    let state = deps.state.as_ref().unwrap();
    let runs = state.runs("idle-ec2", None, None).await.unwrap();
    let cost = runs[0].cost.as_ref().expect("the run's cost is recorded");
    assert_eq!(cost.usage.metrics_requested, at_the_server);
    assert_eq!(cost.usage.metrics_requested, 14);
    assert!(
        (cost.by_service["cloudwatch"] - 14.0 * 0.01 / 1000.0).abs() < 1e-12,
        "{cost:?}"
    );
    // The snooze lookup and the finding's writes are DynamoDB's; EC2's reads are free.
    assert!(
        cost.usage.dynamodb_read_units + cost.usage.dynamodb_write_units > 0,
        "{cost:?}"
    );
    assert!(cost.usage.free_calls >= 2, "{cost:?}");
    assert!(cost.prices.contains("us-east-1"));
}

/// Issue 30: with the two-phase query a failed network call fails only the possibly idle
/// instances it asked about ("metrics unavailable, not assessed", never found idle); the busy one
/// and the one with a day of no data are judged on their CPU alone and stay silent. Before, one
/// call asked for all three measures, so the same failure failed every instance in it.
#[tokio::test]
async fn a_failed_network_query_fails_the_possibly_idle_instances_and_finds_none_idle() {
    let moto = Moto::start().unwrap();
    let fleet = seed_fleet(&moto).await;
    let deps = deps(&moto, Policy::default(), None, None).await;
    // Only the second phase asks for NetworkIn; CloudWatch refuses it (not retried).
    moto.fault_rule(serde_json::json!({"service": "monitoring", "operation": "GetMetricData",
        "body_contains": "NetworkIn", "share": 1.0, "status": 400, "content_type": "text/xml",
        "body": "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform cloudwatch:GetMetricData</Message></Error><RequestId>r</RequestId></ErrorResponse>"}))
        .await;

    let report = idle_ec2::handler::handle(scheduled_event(), &deps, now())
        .await
        .unwrap();

    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    for id in fleet.idle.iter().chain([&fleet.proxy]) {
        let o = outcome_of(&report, id);
        assert_eq!(o.outcome, OutcomeKind::Failed, "{o:?}");
        assert!(o.detail.contains("metrics unavailable, not assessed"), "{}", o.detail);
    }
    for id in [&fleet.busy, &fleet.gap] {
        assert!(
            !report.outcomes.iter().any(|o| o.finding_id.ends_with(id.as_str())),
            "{id} is judged on its CPU: {:#?}",
            report.outcomes
        );
    }
    assert_eq!(report.failed, 4);
}
