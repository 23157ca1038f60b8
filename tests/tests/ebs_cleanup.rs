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
    finops_tests::deps(
        moto,
        Policy {
            mode,
            ..Policy::default()
        },
        Some(TABLE),
        None,
    )
    .await
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
    assert_eq!(seed::volumes(&deps.clients.ec2).await.len(), 4 + 1); // + the instance's root volume
    assert!(seed::snapshots(&deps.clients.ec2).await.is_empty());
}

#[tokio::test]
async fn a_volume_attached_again_loses_its_sighting() {
    let moto = Moto::start().unwrap();
    let v = seed_volumes(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;
    let today = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, today).await.unwrap();
    let instance = seed::run_instance(&deps.clients.ec2, "t3.micro", &[]).await;
    seed::attach(&deps.clients.ec2, &v.gp2, &instance).await;
    ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(1))
        .await
        .unwrap();
    deps.clients
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
    let ec2 = &deps.clients.ec2;
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
    let items = seed::scan_table(&deps.clients.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == v.io1)
        .expect("action record");
    assert_eq!(record["status"], "executed");
    let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
    let adapter = remediation::aws::ec2::Ec2::new(ec2.clone(), "us-east-1");
    let ports = remediation::act::RollbackPorts {
        volumes: Some(&adapter),
        ..Default::default()
    };
    let detail = remediation::act::rollback(&rollback, &ports).await.unwrap();
    assert!(detail.contains("recreated"), "{detail}");
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
    seed::tag(&deps.clients.ec2, &v.gp2, "finops:exempt", "true").await;

    let run = ebs_cleanup::handler::handle(event(), &deps, today + Duration::days(8))
        .await
        .unwrap();

    assert!(outcome(&run, &v.gp2).detail.contains("exempt"));
    assert!(seed::volumes(&deps.clients.ec2)
        .await
        .iter()
        .any(|x| x.volume_id() == Some(v.gp2.as_str())));
    assert!(seed::snapshots(&deps.clients.ec2)
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
