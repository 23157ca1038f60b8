//! ebs-cleanup end to end: the real handler, the real SDK clients, moto server. Time moves on by
//! calling the handler with a later `now`.

use chrono::{DateTime, Duration, Utc};
use finops_tests::seed;
use finops_tests::Moto;
use remediation::config::Deps;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};

const TABLE: &str = "finops-state";

fn event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap()
}

struct Volumes {
    gp2: String,
    io1: String,
    attached: String,
    exempt: String,
}

async fn seed_volumes(moto: &Moto) -> Volumes {
    let c = moto.clients().await;
    let instance = seed::run_instance(&c.ec2, "t3.micro", &[]).await;
    let gp2 = seed::create_volume(
        &c.ec2,
        "gp2",
        100,
        None,
        "us-east-1a",
        &[("Owner", "ana"), ("Name", "old-data")],
    )
    .await;
    let io1 = seed::create_volume(&c.ec2, "io1", 200, Some(1000), "us-east-1b", &[("Owner", "bo")]).await;
    let attached = seed::create_volume(&c.ec2, "gp3", 50, None, "us-east-1a", &[("Owner", "cy")]).await;
    seed::attach(&c.ec2, &attached, &instance).await;
    let exempt = seed::create_volume(&c.ec2, "gp2", 500, None, "us-east-1a", &[("finops:exempt", "TRUE")]).await;
    seed::create_table(&c.dynamodb, TABLE).await;
    Volumes {
        gp2,
        io1,
        attached,
        exempt,
    }
}

async fn deps(moto: &Moto, mode: Mode) -> Deps {
    deps_with(moto, mode, |_| {}).await
}

/// `mode`, a blast radius wide enough for this small account (two of three volumes), and `edit`.
async fn deps_with(moto: &Moto, mode: Mode, edit: impl FnOnce(&mut Policy)) -> Deps {
    let mut policy = Policy {
        mode,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    edit(&mut policy);
    finops_tests::deps(moto, "ebs-cleanup", policy, Some(TABLE), None).await
}

fn outcome<'a>(r: &'a RunReport, id: &str) -> &'a remediation::model::Outcome {
    r.outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&format!(":{id}")))
        .unwrap_or_else(|| panic!("no outcome for {id}: {:#?}", r.outcomes))
}

#[tokio::test]
async fn the_grace_period_counts_from_the_first_sighting_and_then_the_volumes_are_flagged() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;
    let today = Utc::now();

    let first = ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    assert!(first.findings.is_empty(), "{:#?}", first.findings);
    assert!(outcome(&first, &v.gp2)
        .detail
        .contains("unattached for 0 day(s); grace period is 7"));
    let six_days = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(6))
        .await
        .unwrap();
    assert!(six_days.findings.is_empty());

    let week = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(7))
        .await
        .unwrap();

    let mut flagged: Vec<&str> = week.findings.iter().map(|f| f.resource.id.as_str()).collect();
    flagged.sort();
    let mut expected = vec![v.gp2.as_str(), v.io1.as_str()];
    expected.sort();
    assert_eq!(flagged, expected);
    // gp2 100 GB: $10 − $5 snapshot; io1 200 GB + 1000 IOPS: $25 + $65 − $10 snapshot.
    assert_eq!(week.estimated_monthly_savings_usd, 85.0);
    assert!(outcome(&week, &v.exempt).detail.contains("exempt"));
    assert!(!week
        .outcomes
        .iter()
        .any(|o| o.finding_id.ends_with(v.attached.as_str())));
    let evidence = serde_json::to_value(&week.findings[0].evidence).unwrap();
    assert_eq!(evidence["since_basis"], "first-seen");
    assert_eq!(evidence["unattached_days"], 7);
    // Dry-run changed nothing.
    assert_eq!(seed::volumes(&moto.clients().await.ec2).await.len(), 4 + 1); // + the instance's root volume
    assert!(seed::snapshots(&moto.clients().await.ec2).await.is_empty());
}

#[tokio::test]
async fn a_volume_attached_again_loses_its_sighting() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    let instance = seed::run_instance(&moto.clients().await.ec2, "t3.micro", &[]).await;
    seed::attach(&moto.clients().await.ec2, &v.gp2, &instance).await;
    ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(1))
        .await
        .unwrap();
    moto.clients()
        .await
        .ec2
        .detach_volume()
        .volume_id(&v.gp2)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();

    // Detached again and seen so on day 2: its grace period starts over from there.
    ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(2))
        .await
        .unwrap();
    let later = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();
    assert!(later.findings.iter().all(|f| f.resource.id != v.gp2));
    assert!(outcome(&later, &v.gp2).detail.contains("unattached for 6 day(s)"));
}

#[tokio::test]
async fn auto_mode_snapshots_then_deletes_and_the_rollback_recreates_the_volume() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::Auto).await;
    let admin = moto.clients().await;
    let ec2 = &admin.ec2;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();

    let run = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();

    for id in [&v.gp2, &v.io1] {
        let o = outcome(&run, id);
        assert_eq!(o.outcome, OutcomeKind::Executed, "{o:?}");
        assert!(
            o.detail.contains("completed") && o.detail.contains("volume deleted"),
            "{}",
            o.detail
        );
    }
    let left: Vec<String> = seed::volumes(ec2)
        .await
        .iter()
        .filter_map(|x| x.volume_id().map(str::to_string))
        .collect();
    assert!(!left.contains(&v.gp2) && !left.contains(&v.io1));
    assert!(left.contains(&v.attached) && left.contains(&v.exempt));
    // Each snapshot carries the restore recipe and the volume's tags.
    let snaps = seed::snapshots(ec2).await;
    assert_eq!(snaps.len(), 2);
    let io1_snap = snaps
        .iter()
        .find(|s| s.volume_id() == Some(v.io1.as_str()))
        .expect("snapshot of io1");
    let tag = |k: &str| {
        io1_snap
            .tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("finops:source-volume-id").as_deref(), Some(v.io1.as_str()));
    assert_eq!(tag("finops:source-az").as_deref(), Some("us-east-1b"));
    assert_eq!(tag("finops:source-type").as_deref(), Some("io1"));
    assert_eq!(tag("finops:source-iops").as_deref(), Some("1000"));
    assert_eq!(tag("Owner").as_deref(), Some("bo"));

    // The recorded rollback recreates the volume as it was.
    let items = seed::scan_table(&moto.clients().await.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == v.io1)
        .expect("action record");
    assert_eq!(record["status"], "executed");
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
    let adapter = remediation::aws::ec2::Ec2::new(ec2.clone(), "us-east-1");
    let ports = finops_checks::executor::RollbackPorts {
        volumes: Some(&adapter),
        ..Default::default()
    };
    let undone = finops_checks::executor::rollback(&rollback, &ports).await.unwrap();
    assert!(undone.detail.contains("recreated"), "{undone}");
    assert!(undone
        .restored
        .as_ref()
        .is_some_and(|id| undone.detail.contains(id.as_str())));
    let restored = seed::volumes(ec2)
        .await
        .into_iter()
        .find(|x| x.snapshot_id() == io1_snap.snapshot_id())
        .expect("restored volume");
    assert_eq!(restored.availability_zone(), Some("us-east-1b"));
    assert_eq!(restored.volume_type().map(|t| t.as_str()), Some("io1"));
    assert_eq!(restored.size(), Some(200));
    assert_eq!(restored.iops(), Some(1000));
    assert!(restored
        .tags()
        .iter()
        .any(|t| t.key() == Some("Owner") && t.value() == Some("bo")));

    // A replay deletes nothing more and takes no second snapshot.
    let replay = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();
    assert!(replay.outcomes.iter().all(|o| o.outcome != OutcomeKind::Executed));
    assert_eq!(seed::snapshots(ec2).await.len(), 2);
}

#[tokio::test]
async fn an_exemption_added_before_acting_keeps_the_volume() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::Auto).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    seed::tag(&moto.clients().await.ec2, &v.gp2, "finops:exempt", "true").await;

    let run = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();

    assert!(outcome(&run, &v.gp2).detail.contains("exempt"));
    assert!(seed::volumes(&moto.clients().await.ec2)
        .await
        .iter()
        .any(|x| x.volume_id() == Some(v.gp2.as_str())));
    assert!(seed::snapshots(&moto.clients().await.ec2)
        .await
        .iter()
        .all(|s| s.volume_id() != Some(v.gp2.as_str())));
}

#[tokio::test]
async fn without_a_table_the_grace_period_counts_from_create_time_and_says_so() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let mut deps = deps(&moto, Mode::DryRun).await;
    deps.state = None;
    let later: DateTime<Utc> = Utc::now() + Duration::days(30);
    let report = ebs_cleanup::handler::handle(event(), &deps, later).await.unwrap();
    assert!(report.findings.iter().any(|f| f.resource.id == v.gp2));
    assert!(report.notes.iter().any(|n| n.contains("CreateTime")));
    let evidence = serde_json::to_value(&report.findings[0].evidence).unwrap();
    assert_eq!(evidence["since_basis"], "create-time");
}

fn snapshot_tag(s: &aws_sdk_ec2::types::Snapshot, key: &str) -> Option<String> {
    s.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}

#[tokio::test]
async fn a_snapshot_from_before_the_current_detach_is_never_what_the_delete_relies_on() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let vol = seed::create_volume(&c.ec2, "gp2", 100, None, "us-east-1a", &[("Owner", "ana")]).await;
    // An earlier action snapshotted this volume (tagged as that action tagged it); the volume was
    // then attached again and written to: that snapshot holds old data.
    let stale = c
        .ec2
        .create_snapshot()
        .volume_id(&vol)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("finops:source-volume-id")
                        .value(&vol)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id
        .unwrap();
    let deps = deps(&moto, Mode::Auto).await;
    let today = Utc::now() + Duration::seconds(2);
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();

    let run = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();

    let o = outcome(&run, &vol);
    assert_eq!(o.outcome, OutcomeKind::Executed, "{o:?}");
    assert!(
        !o.detail.contains(&stale),
        "deleted against the stale snapshot: {}",
        o.detail
    );
    let snaps = seed::snapshots(&c.ec2).await;
    let fresh = snaps
        .iter()
        .find(|s| s.volume_id() == Some(vol.as_str()) && s.snapshot_id() != Some(stale.as_str()))
        .expect("a fresh snapshot taken for this delete");
    let fresh_id = fresh.snapshot_id().unwrap();
    assert!(o.detail.contains(fresh_id), "{}", o.detail);
    assert!(snapshot_tag(fresh, "finops:source-sighting").is_some_and(|t| t.starts_with(&format!("{vol}@"))));

    // The recorded rollback restores from the fresh snapshot, not the stale one.
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == vol)
        .expect("action record");
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
    let adapter = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let ports = finops_checks::executor::RollbackPorts {
        volumes: Some(&adapter),
        ..Default::default()
    };
    finops_checks::executor::rollback(&rollback, &ports).await.unwrap();
    let restored: Vec<_> = seed::volumes(&c.ec2)
        .await
        .into_iter()
        .filter(|v| v.snapshot_id().is_some_and(|s| !s.is_empty()))
        .collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].snapshot_id(), Some(fresh_id));
}

#[tokio::test]
async fn without_a_snapshot_nothing_is_deleted_unless_the_policy_accepts_it_and_a_human_approves() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let today = Utc::now();
    let no_snapshot = |p: &mut Policy| p.ebs_cleanup.snapshot_before_delete = false;
    let refused = deps_with(&moto, Mode::Auto, no_snapshot).await;
    ebs_cleanup::handler::handle(event(), &refused, today).await.unwrap();

    // Not accepted: auto deletes nothing and records no false rollback.
    let run = ebs_cleanup::handler::handle(event(), &refused, today + Duration::days(8))
        .await
        .unwrap();
    for id in [&v.gp2, &v.io1] {
        let o = outcome(&run, id);
        assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
        assert!(o.detail.contains("could not be undone"), "{}", o.detail);
    }
    // Accepted, still not in auto mode.
    let accepted = deps_with(&moto, Mode::Auto, |p| {
        no_snapshot(p);
        p.ebs_cleanup.allow_irreversible_delete = true;
    })
    .await;
    let run = ebs_cleanup::handler::handle(event(), &accepted, today + Duration::days(8))
        .await
        .unwrap();
    assert!(outcome(&run, &v.gp2).detail.contains("only a human's approval"));
    // Approve mode without acceptance asks nobody.
    let mut ask = deps_with(&moto, Mode::Approve, no_snapshot).await;
    ask.publisher = Some(remediation::notify::SnsPublisher::new(
        ask.clients.sns.clone(),
        seed::topic_with_queue(
            &moto.clients().await.sns,
            &aws_sdk_sqs::Client::new(&moto.sdk_config().await),
            "finops",
        )
        .await
        .0,
    ));
    let run = ebs_cleanup::handler::handle(event(), &ask, today + Duration::days(8))
        .await
        .unwrap();
    assert!(
        outcome(&run, &v.gp2).detail.contains("not asked"),
        "{:?}",
        outcome(&run, &v.gp2)
    );
    let items = seed::scan_table(&moto.clients().await.dynamodb, TABLE).await;
    assert!(!items
        .iter()
        .any(|i| i["pk"].starts_with("ACTION#") || i["pk"].starts_with("APPROVAL#")));
    assert_eq!(
        seed::volumes(&moto.clients().await.ec2).await.len(),
        5,
        "nothing deleted"
    );
}

#[tokio::test]
async fn a_volume_of_a_kubernetes_cluster_is_left_alone_with_the_reason() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let pv = seed::create_volume(
        &c.ec2,
        "gp3",
        20,
        None,
        "us-east-1a",
        &[
            ("kubernetes.io/created-for/pv/name", "pvc-0a1b"),
            ("ebs.csi.aws.com/cluster", "true"),
        ],
    )
    .await;
    let deps = deps(&moto, Mode::Auto).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();

    let run = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(30))
        .await
        .unwrap();

    assert!(run.findings.is_empty(), "{:#?}", run.findings);
    let o = outcome(&run, &pv);
    assert_eq!(o.outcome, OutcomeKind::Skipped);
    assert!(o.detail.contains("persistent volume pvc-0a1b"), "{}", o.detail);
    assert_eq!(seed::volumes(&c.ec2).await.len(), 1);
    assert!(seed::snapshots(&c.ec2).await.is_empty());
}

/// The real snapshot-and-delete, counting how many of its actions are under way at once.
struct Overlap<'a> {
    inner: finops_checks::ebs_cleanup::act::SnapshotAndDelete<'a>,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    /// When set, an operator turns the emergency stop on once each action has begun.
    stop_midway: Option<aws_sdk_dynamodb::Client>,
}

#[async_trait::async_trait]
impl remediation::act::Remediation for Overlap<'_> {
    fn declaration(&self) -> &'static remediation::act::ActionDeclaration {
        self.inner.declaration()
    }
    async fn recheck(
        &self,
        findings: &[&remediation::model::Finding],
    ) -> remediation::Result<std::collections::HashMap<String, remediation::act::Recheck>> {
        self.inner.recheck(findings).await
    }
    fn rollback_for(&self, f: &remediation::model::Finding, pre: &serde_json::Value) -> remediation::act::Rollback {
        self.inner.rollback_for(f, pre)
    }
    async fn execute(
        &self,
        f: &remediation::model::Finding,
        pre: &serde_json::Value,
    ) -> remediation::Result<remediation::act::Executed> {
        use std::sync::atomic::Ordering::SeqCst;
        let under_way = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(under_way, SeqCst);
        // moto completes snapshots at once; a real one takes minutes. Hold each action a moment
        // so that actions which overlap are seen overlapping.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if let Some(ddb) = &self.stop_midway {
            use aws_sdk_dynamodb::types::AttributeValue as V;
            ddb.put_item()
                .table_name(TABLE)
                .item("pk", V::S("CONTROL".into()))
                .item("sk", V::S("EMERGENCY_STOP".into()))
                .item("on", V::Bool(true))
                .item("by", V::S("ops".into()))
                .item("reason", V::S("incident".into()))
                .item("at", V::S(Utc::now().to_rfc3339()))
                .send()
                .await
                .expect("PutItem");
        }
        let done = self.inner.execute(f, pre).await;
        self.now.fetch_sub(1, SeqCst);
        done
    }
}

/// `n` unattached volumes, first seen now and flagged by a dry run 8 days later: the dry-run
/// dependencies (with the table), the volumes, that run's report and its time.
async fn flagged_volumes(moto: &Moto, n: usize) -> (Deps, Vec<String>, RunReport, DateTime<Utc>) {
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(seed::create_volume(&c.ec2, "gp3", 50, None, "us-east-1a", &[("Owner", "ana")]).await);
    }
    let deps = deps(moto, Mode::DryRun).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    let later = today + Duration::days(8);
    let report = ebs_cleanup::handler::handle(event(), &deps, later).await.unwrap();
    assert_eq!(report.findings.len(), n, "{report:#?}");
    (deps, ids, report, later)
}

/// What an operator does once each action has begun.
enum Midway {
    Nothing,
    /// Turns the emergency stop on.
    Stop,
    /// Snoozes this volume (as a Slack click does).
    Snooze(String),
}

/// Acts on `report`'s findings in auto mode through the real snapshot-and-delete (each action
/// held a moment, and `midway` done once each has begun): the outcomes, and the most actions
/// under way at once.
async fn act_in_auto(
    moto: &Moto,
    deps: &Deps,
    report: &RunReport,
    later: DateTime<Utc>,
    midway: Midway,
) -> (Vec<remediation::model::Outcome>, usize) {
    let c = moto.clients().await;
    let mut policy = deps.policy.clone();
    policy.mode = Mode::Auto;
    let ec2 = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let ctx = remediation::flow::RunContext {
        mode: Mode::Auto,
        policy: &policy,
        now: later,
        sinks: deps.sinks(),
        held: Default::default(),
    };
    let action = Overlap {
        inner: finops_checks::ebs_cleanup::act::SnapshotAndDelete {
            ec2: &ec2,
            policy: &policy,
            wait: std::time::Duration::from_secs(30),
            poll: std::time::Duration::from_millis(100),
            sightings: deps.sinks().state,
            now: later,
        },
        now: Default::default(),
        most: Default::default(),
        stop_midway: matches!(midway, Midway::Stop).then(|| c.dynamodb.clone()),
    };
    let outcomes = match midway {
        Midway::Snooze(volume) => {
            let snoozing = finops_tests::midway::SnoozeMidway {
                inner: &action,
                state: remediation::state::DynamoState::new(c.dynamodb.clone(), TABLE),
                snooze: vec![volume],
            };
            remediation::flow::apply(&ctx, &report.findings, &snoozing, report.scanned).await
        }
        _ => remediation::flow::apply(&ctx, &report.findings, &action, report.scanned).await,
    };
    (outcomes.0, action.most.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn the_actions_of_one_run_overlap_up_to_the_policys_concurrency() {
    let moto = Moto::start().unwrap();
    let (deps, ids, report, later) = flagged_volumes(&moto, 6).await;
    let c = moto.clients().await;

    let (outcomes, most) = act_in_auto(&moto, &deps, &report, later, Midway::Nothing).await;

    assert!(
        outcomes.iter().all(|o| o.outcome == OutcomeKind::Executed),
        "{outcomes:#?}"
    );
    assert_eq!(
        most, deps.policy.action_concurrency as usize,
        "at most action_concurrency (4) at once, and that many"
    );
    // Outcomes keep the findings' order, and every volume is gone.
    let order: Vec<&str> = outcomes.iter().map(|o| o.finding_id.as_str()).collect();
    let expected: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(order, expected);
    let left = seed::volumes(&c.ec2).await;
    assert!(ids
        .iter()
        .all(|id| left.iter().all(|v| v.volume_id() != Some(id.as_str()))));
}

#[tokio::test]
async fn an_emergency_stop_turned_on_while_a_snapshot_is_taken_keeps_the_volume() {
    let moto = Moto::start().unwrap();
    let (deps, ids, report, later) = flagged_volumes(&moto, 1).await;
    let (c, volume) = (moto.clients().await, ids[0].clone());

    let (outcomes, _) = act_in_auto(&moto, &deps, &report, later, Midway::Stop).await;

    assert_eq!(outcomes[0].outcome, OutcomeKind::Skipped, "{outcomes:#?}");
    assert!(outcomes[0].detail.contains("emergency stop is on"), "{outcomes:#?}");
    assert!(
        seed::volumes(&c.ec2)
            .await
            .iter()
            .any(|v| v.volume_id() == Some(volume.as_str())),
        "the delete waits for the operator"
    );
    assert_eq!(seed::snapshots(&c.ec2).await.len(), 1, "the snapshot taken is kept");
}

#[tokio::test]
async fn a_snooze_granted_while_a_snapshot_is_taken_keeps_the_volume() {
    let moto = Moto::start().unwrap();
    let (deps, ids, report, later) = flagged_volumes(&moto, 1).await;
    let (c, volume) = (moto.clients().await, ids[0].clone());

    // The owner presses Snooze once the flow has read the snoozes and the action has begun.
    let (outcomes, _) = act_in_auto(&moto, &deps, &report, later, Midway::Snooze(volume.clone())).await;

    assert_eq!(outcomes[0].outcome, OutcomeKind::Skipped, "{outcomes:#?}");
    assert!(
        outcomes[0].detail.contains("snoozed until") && outcomes[0].detail.contains("quarter-end batch"),
        "{outcomes:#?}"
    );
    assert!(
        seed::volumes(&c.ec2)
            .await
            .iter()
            .any(|v| v.volume_id() == Some(volume.as_str())),
        "a volume snoozed during its snapshot is not deleted"
    );
    assert_eq!(seed::snapshots(&c.ec2).await.len(), 1, "the snapshot taken is kept");
}

async fn put_sighting(moto: &Moto, scope: &str, id: &str, at: DateTime<Utc>) {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    moto.clients()
        .await
        .dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", S(format!("SEEN#{scope}")))
        .item("sk", S(id.into()))
        .item("kind", S("sighting".into()))
        .item("first_seen", S(at.to_rfc3339()))
        .send()
        .await
        .expect("PutItem");
}

#[tokio::test]
async fn sightings_recorded_before_scopes_were_per_account_and_region_keep_their_times() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;
    let today = Utc::now();
    // Seen unattached 10 days ago by the version that kept one scope for everything.
    let legacy = finops_checks::ebs_cleanup::detect::LEGACY_SIGHTING_SCOPE;
    put_sighting(&moto, legacy, &v.gp2, today - Duration::days(10)).await;
    // Seen unattached a month ago, attached since: that sighting is over.
    put_sighting(&moto, legacy, &v.attached, today - Duration::days(30)).await;

    let report = ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    let flagged: Vec<&str> = report.findings.iter().map(|f| f.resource.id.as_str()).collect();
    assert_eq!(
        flagged,
        [v.gp2.as_str()],
        "its grace period did not start again: {report:#?}"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("1 earlier sighting(s) carried")),
        "{:?}",
        report.notes
    );
    let items = seed::scan_table(&moto.clients().await.dynamodb, TABLE).await;
    let scope = finops_checks::ebs_cleanup::detect::sighting_scope("123456789012", "us-east-1");
    let moved = items
        .iter()
        .find(|i| i["pk"] == format!("SEEN#{scope}") && i["sk"] == v.gp2)
        .expect("moved into its scope");
    assert_eq!(moved["first_seen"], (today - Duration::days(10)).to_rfc3339());
    assert!(
        !items.iter().any(|i| i["pk"] == format!("SEEN#{legacy}")),
        "the old scope is emptied"
    );
    assert!(
        !items.iter().any(|i| i["sk"] == v.attached),
        "an attached volume's old sighting is forgotten"
    );

    // A decision taken before the upgrade, acted on before any scan moved its sighting: the
    // re-check reads the old scope and deletes as decided, instead of calling it obsolete.
    moto.clients()
        .await
        .dynamodb
        .delete_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SEEN#{scope}")),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(v.gp2.clone()))
        .send()
        .await
        .expect("DeleteItem");
    // An old time other than the decision's own spell proves nothing (a scan may have seen it
    // attached since): refused.
    put_sighting(&moto, legacy, &v.gp2, today - Duration::days(20)).await;
    let (outcomes, _) = act_in_auto(&moto, &deps, &report, today, Midway::Nothing).await;
    assert_eq!(outcomes[0].outcome, OutcomeKind::Skipped, "{outcomes:?}");
    assert!(
        outcomes[0].detail.contains("no record of it being unattached"),
        "{outcomes:?}"
    );
    put_sighting(&moto, legacy, &v.gp2, today - Duration::days(10)).await;
    let (outcomes, _) = act_in_auto(&moto, &deps, &report, today, Midway::Nothing).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].outcome, OutcomeKind::Executed, "{outcomes:?}");
    assert!(!seed::volumes(&moto.clients().await.ec2)
        .await
        .iter()
        .any(|v2| v2.volume_id() == Some(v.gp2.as_str())));

    // The once-attached volume detached now: its grace period starts now, not a month ago.
    let instance = seed::volumes(&moto.clients().await.ec2)
        .await
        .iter()
        .find(|x| x.volume_id() == Some(v.attached.as_str()))
        .and_then(|x| {
            x.attachments()
                .first()
                .and_then(|a| a.instance_id().map(str::to_string))
        })
        .expect("attached");
    moto.clients()
        .await
        .ec2
        .detach_volume()
        .volume_id(&v.attached)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .expect("DetachVolume");
    let next = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(1))
        .await
        .unwrap();
    assert!(!next.findings.iter().any(|f| f.resource.id == v.attached), "{next:#?}");
    assert!(
        outcome(&next, &v.attached).detail.contains("unattached for 0 day(s)"),
        "{next:#?}"
    );
}

/// Issue 26, problem 3: a delete deferred after its snapshot was taken (here: the emergency stop,
/// turned on while the snapshot was taken) was finished by a later run on that old snapshot,
/// though the volume had been attached, written and detached between the two daily scans. The
/// run that deletes takes a fresh snapshot, and the recorded rollback restores that one.
#[tokio::test]
async fn a_deferred_delete_after_an_unseen_attach_and_detach_takes_a_fresh_snapshot_before_deleting() {
    let moto = Moto::start().unwrap();
    let (deps, ids, report, later) = flagged_volumes(&moto, 1).await;
    let (c, volume) = (moto.clients().await, ids[0].clone());
    let (outcomes, _) = act_in_auto(&moto, &deps, &report, later, Midway::Stop).await;
    assert!(outcomes[0].detail.contains("emergency stop is on"), "{outcomes:#?}");
    let first = seed::snapshots(&c.ec2).await;
    assert_eq!(first.len(), 1);

    // The operator lifts the stop; between two scans the volume is attached, written, detached.
    c.dynamodb
        .delete_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("CONTROL".into()))
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("EMERGENCY_STOP".into()),
        )
        .send()
        .await
        .expect("DeleteItem");
    let instance = seed::run_instance(&c.ec2, "t3.micro", &[]).await;
    seed::attach(&c.ec2, &volume, &instance).await;
    c.ec2
        .detach_volume()
        .volume_id(&volume)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .expect("DetachVolume");
    // AWS reports snapshot start times to the second: the next one is a second later at least.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (outcomes, _) = act_in_auto(&moto, &deps, &report, later + Duration::days(1), Midway::Nothing).await;
    assert_eq!(outcomes[0].outcome, OutcomeKind::Executed, "{outcomes:#?}");
    let all = seed::snapshots(&c.ec2).await;
    assert_eq!(all.len(), 2, "a fresh snapshot was taken before the delete");
    let fresh = all
        .iter()
        .find(|s| s.snapshot_id() != first[0].snapshot_id())
        .and_then(|s| s.snapshot_id())
        .expect("the fresh snapshot")
        .to_string();
    assert!(outcomes[0].detail.contains(&fresh), "{outcomes:#?}");
    assert!(seed::volumes(&c.ec2)
        .await
        .iter()
        .all(|v| v.volume_id() != Some(volume.as_str())));

    // The recorded rollback brings back the fresh snapshot's data, not the old one's.
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == volume && i["status"] == "executed")
        .expect("the executed action record");
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
    let adapter = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let ports = finops_checks::executor::RollbackPorts {
        volumes: Some(&adapter),
        ..Default::default()
    };
    finops_checks::executor::rollback(&rollback, &ports).await.unwrap();
    let restored: Vec<_> = seed::volumes(&c.ec2)
        .await
        .into_iter()
        .filter_map(|v| v.snapshot_id().map(str::to_string))
        .collect();
    assert_eq!(restored, [fresh], "restored from the fresh snapshot");
}
