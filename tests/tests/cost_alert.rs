//! cost-alert end to end: canned Cost Explorer results in moto (its documented control API),
//! the real handler and SDK. moto has no GetCostForecast, so the linear projection is exercised.

use chrono::{DateTime, Utc};
use finops_tests::{seed, Moto};
use remediation::config::Deps;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};

const TABLE: &str = "finops-state";

fn event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/cost-alert/scheduled.json")).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn deps(moto: &Moto, policy: Policy, topic: Option<&str>) -> Deps {
    finops_tests::deps(moto, "cost-alert", policy, Some(TABLE), topic).await
}

fn evidence(r: &RunReport, scope: &str) -> serde_json::Value {
    let f = r
        .findings
        .iter()
        .find(|f| f.resource.id == scope)
        .unwrap_or_else(|| panic!("no {scope}: {r:#?}"));
    serde_json::to_value(&f.evidence).unwrap()
}

#[tokio::test]
async fn a_projected_overrun_alerts_once_per_level_per_month_and_escalates() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    // 25 days in: $9,700 projects to $11,640 for November (116% of $10,000).
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-26",
        &[
            ("Amazon Elastic Compute Cloud - Compute", 8000.0),
            ("Amazon Simple Storage Service", 1500.0),
            ("AWS Lambda", 200.0),
        ],
    );
    // A day later: $12,500 projects to $14,423 (144%).
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-27",
        &[
            ("Amazon Elastic Compute Cloud - Compute", 11000.0),
            ("Amazon Simple Storage Service", 1500.0),
        ],
    );
    let mut policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    policy
        .cost_alert
        .per_service_usd
        .insert("Amazon Simple Storage Service".into(), 1000.0);
    let deps = deps(&moto, policy, Some(&topic)).await;

    let first = cost_alert::handler::handle(event(), &deps, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap();

    let total = evidence(&first, "TOTAL");
    assert_eq!(total["month_to_date_usd"], 9700.0);
    assert_eq!(total["forecast_usd"], 11640.0);
    assert_eq!(total["forecast_method"], "linear-projection");
    assert_eq!(total["level_percent"], 100);
    assert_eq!(total["crossed"][0]["basis"], "forecast");
    assert_eq!(total["top_services"][0][0], "Amazon Elastic Compute Cloud - Compute");
    assert!(
        first.notes.iter().any(|n| n.contains("linear projection")),
        "{:?}",
        first.notes
    );
    // S3: $1,500 month to date against $1,000 reaches the 150% level on spend alone.
    let s3 = evidence(&first, "Amazon Simple Storage Service");
    assert_eq!(s3["level_percent"], 150);
    assert_eq!(s3["crossed"][0]["basis"], "month-to-date");
    assert!(
        first.outcomes.iter().all(|o| o.outcome == OutcomeKind::Executed),
        "{:?}",
        first.outcomes
    );
    let messages = seed::drain_queue(&sqs, &queue).await;
    assert_eq!(messages.len(), 2);
    for m in &messages {
        assert_eq!(m["MessageAttributes"]["type"]["Value"], "cost-alert");
        let body: serde_json::Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
        assert!(body["finding"]["evidence"]["month_to_date_usd"].is_number());
    }

    // The same day again: nothing new to say.
    let replay = cost_alert::handler::handle(event(), &deps, at("2026-11-26T18:00:00Z"))
        .await
        .unwrap();
    assert!(
        replay.outcomes.iter().all(|o| o.outcome == OutcomeKind::Skipped),
        "{:?}",
        replay.outcomes
    );
    assert!(seed::drain_queue(&sqs, &queue).await.is_empty());

    // Next day: the total escalates to 120% and alerts again; S3 stays at 150%, already said.
    let next = cost_alert::handler::handle(event(), &deps, at("2026-11-27T06:00:00Z"))
        .await
        .unwrap();
    assert_eq!(evidence(&next, "TOTAL")["level_percent"], 120);
    let total_outcome = next.outcomes.iter().find(|o| o.finding_id.ends_with(":TOTAL")).unwrap();
    assert_eq!(total_outcome.outcome, OutcomeKind::Executed);
    let s3_outcome = next
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(":Amazon Simple Storage Service"))
        .unwrap();
    assert_eq!(s3_outcome.outcome, OutcomeKind::Skipped);
    assert_eq!(seed::drain_queue(&sqs, &queue).await.len(), 1);
}

#[tokio::test]
async fn dry_run_reports_without_recording_or_sending() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-26",
        &[("Amazon Elastic Compute Cloud - Compute", 10_500.0)],
    );
    let deps = deps(&moto, Policy::default(), None).await;

    let report = cost_alert::handler::handle(event(), &deps, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap();

    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::DryRun);
    assert!(report.outcomes[0].detail.contains("would alert"));
    // Nothing claimed or sent: the scan's own run record (and its place's last run) is all it writes.
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let mut pks: Vec<&str> = items.iter().map(|i| i["pk"].as_str()).collect();
    pks.sort_unstable();
    assert_eq!(pks, ["RUN#cost-alert", "RUN#cost-alert#LAST"], "{items:?}");
}

#[tokio::test]
async fn under_the_thresholds_there_is_nothing_to_say() {
    let moto = Moto::start().unwrap();
    seed::queue_costs(&moto, "2026-11-01", "2026-11-26", &[("AWS Lambda", 120.0)]);
    let deps = deps(&moto, Policy::default(), None).await;
    let report = cost_alert::handler::handle(event(), &deps, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap();
    assert!(report.findings.is_empty());
    assert_eq!(report.scanned, 1);
}

#[tokio::test]
async fn on_the_first_day_of_a_month_todays_spend_is_checked_and_alerts() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    // A runaway first day: $10,500 billed by 18:00 on 1 December.
    seed::queue_costs(
        &moto,
        "2026-12-01",
        "2026-12-02",
        &[("Amazon Elastic Compute Cloud - Compute", 10_500.0)],
    );
    let policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    let deps = deps(&moto, policy, Some(&topic)).await;

    let report = cost_alert::handler::handle(event(), &deps, at("2026-12-01T18:00:00Z"))
        .await
        .unwrap();

    assert_eq!(report.scanned, 1, "{report:#?}");
    let total = evidence(&report, "TOTAL");
    assert_eq!(total["month_to_date_usd"], 10_500.0);
    assert_eq!(total["level_percent"], 100);
    assert_eq!(total["crossed"][0]["basis"], "month-to-date");
    // moto has no GetCostForecast and no whole day has passed: the notes say there is no forecast.
    assert!(
        report.notes.iter().any(|n| n.contains("no whole day")),
        "{:?}",
        report.notes
    );
    assert_eq!(seed::drain_queue(&sqs, &queue).await.len(), 1);
}

fn outcomes(r: &RunReport) -> Vec<OutcomeKind> {
    r.outcomes.iter().map(|o| o.outcome).collect()
}

#[tokio::test]
async fn an_alert_that_could_not_be_published_is_sent_by_the_next_run_and_only_once() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-26",
        &[("Amazon Elastic Compute Cloud - Compute", 10_500.0)],
    );
    let policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    // SNS refuses the first run's publish (its topic does not exist).
    let broken = deps(
        &moto,
        policy.clone(),
        Some("arn:aws:sns:us-east-1:123456789012:no-such-topic"),
    )
    .await;
    let first = cost_alert::handler::handle(event(), &broken, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap();
    assert_eq!(outcomes(&first), vec![OutcomeKind::Failed], "{:?}", first.outcomes);
    assert!(
        first.outcomes[0].detail.contains("not published"),
        "{:?}",
        first.outcomes
    );

    let deps = deps(&moto, policy, Some(&topic)).await;
    let second = cost_alert::handler::handle(event(), &deps, at("2026-11-26T07:00:00Z"))
        .await
        .unwrap();
    assert_eq!(outcomes(&second), vec![OutcomeKind::Executed], "{:?}", second.outcomes);
    assert_eq!(seed::drain_queue(&sqs, &queue).await.len(), 1);

    let third = cost_alert::handler::handle(event(), &deps, at("2026-11-26T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(outcomes(&third), vec![OutcomeKind::Skipped], "{:?}", third.outcomes);
    assert!(seed::drain_queue(&sqs, &queue).await.is_empty());
}

#[tokio::test]
async fn two_runs_at_the_same_time_alert_once() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    seed::queue_costs(
        &moto,
        "2026-11-01",
        "2026-11-26",
        &[("Amazon Elastic Compute Cloud - Compute", 10_500.0)],
    );
    let policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    let deps = deps(&moto, policy, Some(&topic)).await;
    let now = at("2026-11-26T06:00:00Z");

    let (a, b) = tokio::join!(
        cost_alert::handler::handle(event(), &deps, now),
        cost_alert::handler::handle(event(), &deps, now)
    );

    let mut all = outcomes(&a.unwrap());
    all.extend(outcomes(&b.unwrap()));
    all.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(all, vec![OutcomeKind::Executed, OutcomeKind::Skipped]);
    assert_eq!(seed::drain_queue(&sqs, &queue).await.len(), 1);
}

fn org_policy() -> Policy {
    Policy {
        organization: Some(remediation::policy::OrganizationPolicy {
            regions: vec!["us-east-1".into()],
            ..Default::default()
        }),
        ..Policy::default()
    }
}

/// Issue 26, problem 6: in organisation mode cost-alert watched whatever spend the hub's Cost
/// Explorer shows, which is the whole organisation's only in the management account. Run in the
/// management account it says whose spend it read.
#[tokio::test]
async fn in_organisation_mode_the_management_accounts_cost_explorer_is_read_and_said() {
    let moto = Moto::start().unwrap();
    let hub = moto.clients().await;
    finops_tests::org::organisation(&hub, 1).await;
    seed::queue_costs(&moto, "2026-11-01", "2026-11-26", &[("AWS Lambda", 120.0)]);
    let deps = deps(&moto, org_policy(), None).await;
    let report = cost_alert::handler::handle(event(), &deps, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("management account 123456789012") && n.contains("whole organisation")),
        "{:#?}",
        report.notes
    );
    assert!(moto.iam_refusals().await.is_empty(), "{:?}", moto.iam_refusals().await);
}

/// ... and where the management account cannot be learnt (here: the account is in no
/// organisation), the run fails saying why, so the errors alarm fires: never a quiet "ok" about
/// one account's spend.
#[tokio::test]
async fn in_organisation_mode_a_hub_that_cannot_see_the_organisations_spend_fails_loudly() {
    let moto = Moto::start().unwrap();
    seed::queue_costs(&moto, "2026-11-01", "2026-11-26", &[("AWS Lambda", 120.0)]);
    let deps = deps(&moto, org_policy(), None).await;
    let err = cost_alert::handler::handle(event(), &deps, at("2026-11-26T06:00:00Z"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("could not learn the organisation's management account") && err.contains("nothing was checked"),
        "{err}"
    );
}
