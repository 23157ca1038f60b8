//! Snooze from Slack: a signed click through the approval function leaves a resource alone until
//! the snooze ends, closes its open approval, and is honoured again right before any action.

use chrono::{DateTime, Duration, Utc};
use finops_tests::approvals::{button_urls, snooze_buttons, token_of, Loop};
use finops_tests::seed::{self, Usage};
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};
use remediation::state::{ApprovalStore, DynamoState, StateStore};
use serde_json::Value;

const TABLE: &str = "finops-state";

fn policy(mode: Mode) -> Policy {
    finops_tests::approvals::slack_policy(mode, "U0ANA")
}

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap()
}

/// One instance idle for the 30 days before now.
async fn idle_instance(lp: &Loop) -> String {
    idle_instance_until(lp, Utc::now()).await
}

/// An idle instance whose usage is seeded up to `end`: a run at `end` sees every day it judges,
/// even when `end` is past midnight UTC.
async fn idle_instance_until(lp: &Loop, end: DateTime<Utc>) -> String {
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, end, 30).await;
    id
}

async fn idle_run(lp: &Loop, mode: Mode, at: DateTime<Utc>) -> RunReport {
    let deps = lp.detector_deps("idle-ec2", policy(mode)).await;
    idle_ec2::handler::handle(scheduled(), &deps, at).await.unwrap()
}

/// What slack-notify posted for what the run published: the posts' JSON.
async fn posted(lp: &Loop) -> Vec<Value> {
    let published = lp.drain().await;
    let before = lp.slack.requests().len();
    for r in lp.notify_slack(&published).await {
        r.unwrap();
    }
    lp.slack.requests()[before..].iter().map(|r| r.json()).collect()
}

fn snooze_token(post: &Value, days: u32) -> String {
    let buttons = snooze_buttons(post);
    buttons
        .iter()
        .find(|(a, _)| a == &format!("finops_snooze_{days}"))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("no Snooze {days} days button in {post:#}"))
}

#[tokio::test]
async fn a_slack_snooze_skips_the_instance_until_it_ends_and_the_run_after_flags_it_again() {
    let mut lp = Loop::start(policy(Mode::DryRun)).await;
    lp.notify.options.interactive = true;
    let id = idle_instance(&lp).await;
    let t0 = Utc::now() - Duration::days(8);

    // The dry run reports it; its Slack message carries the Snooze control.
    let first = idle_run(&lp, Mode::DryRun, t0).await;
    assert_eq!(first.findings.len(), 1, "{first:#?}");
    let finding_id = first.findings[0].id.clone();
    let posts = posted(&lp).await;
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let blocks = posts[0]["blocks"].to_string();
    assert!(blocks.contains("Snooze reason"), "{blocks}");
    let token = snooze_token(&posts[0], 7);

    // Someone not on the allow-list, and a forged length: nothing is snoozed.
    lp.set_clock(Some(t0));
    let (status, reply) = lp
        .slack_click("finops_snooze_7", &token, "U0EVE", Some("mine now"), t0)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Not allowed"), "{reply}");
    let forged = token.replacen('.', "x.", 1);
    let (_, reply) = lp.slack_click("finops_snooze_7", &forged, "U0ANA", None, t0).await;
    assert!(reply.contains("Invalid link"), "{reply}");
    assert!(lp.state().snoozes(t0).await.unwrap().is_empty());

    // Ana snoozes it for 7 days with a reason.
    let (status, reply) = lp
        .slack_click("finops_snooze_7", &token, "U0ANA", Some("quarter-end batch"), t0)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Snoozed") && reply.contains(&id), "{reply}");
    let until = (t0 + Duration::days(7)).format("%Y-%m-%d %H:%M UTC").to_string();

    // The next run skips it and says whose snooze it is and until when.
    let snoozed = idle_run(&lp, Mode::DryRun, t0 + Duration::hours(1)).await;
    assert!(snoozed.findings.is_empty(), "{snoozed:#?}");
    let outcome = snoozed.outcomes.iter().find(|o| o.finding_id == finding_id).unwrap();
    assert_eq!(outcome.outcome, OutcomeKind::Skipped);
    assert_eq!(
        outcome.detail,
        format!("snoozed until {until} by U0ANA: quarter-end batch")
    );
    assert!(posted(&lp).await.is_empty(), "a snoozed resource is not posted again");

    // The run after the snooze ends flags it again.
    let after = idle_run(&lp, Mode::DryRun, Utc::now()).await;
    assert_eq!(after.findings.len(), 1, "{after:#?}");
    assert_eq!(after.findings[0].resource.id, id);

    // The trail says who snoozed it, how and why.
    let trail = lp.state().audit_trail(&finding_id).await.unwrap();
    let entry = trail
        .iter()
        .find(|e| e.event == "snoozed")
        .expect("a snoozed audit item");
    assert!(entry.detail.contains("by U0ANA: quarter-end batch"), "{trail:#?}");

    // Each scan left its run record: the snoozed one counts a skip and no finding.
    let runs = lp.state().runs("idle-ec2", None, None).await.unwrap();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let middle = &runs[1];
    assert_eq!((middle.findings, middle.outcomes.get("skipped")), (0, Some(&1)));
    assert_eq!((runs[0].findings, runs[0].result.as_str()), (1, "ok"));
}

#[tokio::test]
async fn a_snooze_closes_the_open_approval_and_an_approval_granted_before_it_is_not_carried_out() {
    let mut lp = Loop::start(policy(Mode::Approve)).await;
    lp.notify.options.interactive = true;
    let now = Utc::now();
    let ec2 = lp.moto.clients().await.ec2;

    // Pending request, then Snooze 30 days on its message: closed as snoozed, announced.
    let a = idle_instance(&lp).await;
    let report = idle_run(&lp, Mode::Approve, now).await;
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::PendingApproval, "{report:#?}");
    let posts = posted(&lp).await;
    let request_id = posts[0]["blocks"].to_string();
    let approve = button_urls(&posts[0])
        .into_iter()
        .find(|(t, _)| t == "Approve")
        .map(|(_, u)| u)
        .unwrap();
    let (status, reply) = lp
        .slack_click("finops_snooze_30", &snooze_token(&posts[0], 30), "U0ANA", None, now)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("1 pending request(s) closed"), "{reply}");
    let published = lp.drain().await;
    let results = Loop::of_type(&published, "approval-result");
    assert_eq!(results.len(), 1, "{published:#?}");
    assert_eq!(results[0]["status"], "snoozed");
    let rid = results[0]["request_id"].as_str().unwrap().to_string();
    assert!(request_id.contains(&rid));
    assert_eq!(lp.state().approval(&rid).await.unwrap().unwrap().status, "snoozed");
    // Approving it now changes nothing: it is closed.
    let (_, reply) = lp
        .slack_click("finops_approve", &token_of(&approve), "U0ANA", None, now)
        .await;
    assert!(reply.contains("Already snoozed"), "{reply}");
    assert_eq!(seed::state_of(&ec2, &a).await, "running");
    // A reason left empty still reads.
    let snoozes = lp.state().snoozes(now).await.unwrap();
    assert_eq!(snoozes.len(), 1);
    assert!(
        snoozes[0].describe().ends_with("by U0ANA: no reason given"),
        "{snoozes:?}"
    );
    // And the next approve run asks nothing about it.
    let again = idle_run(&lp, Mode::Approve, now + Duration::hours(1)).await;
    assert!(again.findings.is_empty(), "{again:#?}");

    // Approved first, snoozed before the execution arrives: the re-check refuses it.
    let b = idle_instance_until(&lp, now + Duration::hours(2)).await;
    let report = idle_run(&lp, Mode::Approve, now + Duration::hours(2)).await;
    let pending = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&b))
        .expect("b is asked about");
    assert_eq!(pending.outcome, OutcomeKind::PendingApproval, "{report:#?}");
    let posts = posted(&lp).await;
    let post = posts
        .iter()
        .find(|p| p.to_string().contains(&b))
        .expect("b's request is posted");
    let approve = button_urls(post).into_iter().find(|(t, _)| t == "Approve").unwrap().1;
    let snooze = snooze_token(post, 90);
    let (_, reply) = lp
        .slack_click("finops_approve", &token_of(&approve), "U0ANA", None, now)
        .await;
    assert!(reply.contains("Approved"), "{reply}");
    let approved = lp.drain().await;
    let (_, reply) = lp
        .slack_click("finops_snooze_90", &snooze, "U0ANA", Some("migration"), now)
        .await;
    assert!(reply.contains("Snoozed") && !reply.contains("closed"), "{reply}");
    for r in lp.deliver_to_approval(&approved).await {
        r.unwrap();
    }
    assert_eq!(
        seed::state_of(&ec2, &b).await,
        "running",
        "a snoozed instance is not stopped"
    );
    let finding_b = &report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&b))
        .unwrap()
        .finding_id;
    let trail = lp.state().audit_trail(finding_b).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.event == "obsolete" && e.detail.contains("snoozed until")),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn a_snooze_on_a_tag_compliance_stop_request_keeps_the_instance_running_and_a_shorter_click_cuts_nothing() {
    use remediation::policy::TagAction;
    let mut policy = policy(Mode::Approve);
    policy.tag_compliance.action = TagAction::MarkAndStop;
    let mut lp = Loop::start(policy.clone()).await;
    lp.notify.options.interactive = true;
    let now = Utc::now();
    let ec2 = lp.moto.clients().await.ec2;
    // Marked untagged 20 days ago: past the 14-day grace, so the sweep asks to stop it.
    let marked = (now - Duration::days(20)).date_naive().to_string();
    let id = seed::run_instance(
        &ec2,
        "t3.large",
        &[
            ("Owner", "ana"),
            (finops_checks::tag_compliance::run::MARK_TAG, &marked),
        ],
    )
    .await;
    let deps = lp.detector_deps("tag-compliance", policy).await;
    let sweep: Value = serde_json::from_str(include_str!("../../events/tag-compliance/scheduled.json")).unwrap();
    let first = tag_compliance::handler::handle(sweep.clone(), &deps, now)
        .await
        .unwrap();
    let stop_id = format!("{}:stop", first.findings[0].id);
    let asked = first.outcomes.iter().find(|o| o.finding_id == stop_id);
    assert_eq!(
        asked.map(|o| o.outcome),
        Some(OutcomeKind::PendingApproval),
        "{first:#?}"
    );
    let posts = posted(&lp).await;
    let post = posts
        .iter()
        .find(|p| p.to_string().contains("Approve"))
        .unwrap_or_else(|| panic!("the stop request is posted: {posts:#?}"));

    // Snoozed for 30 days from the stop request's message: the request closes, the snooze is
    // on the instance (in this account and region), and the next sweep leaves it running.
    let (status, reply) = lp
        .slack_click(
            "finops_snooze_30",
            &snooze_token(post, 30),
            "U0ANA",
            Some("renaming tags"),
            now,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(&format!("{id} is left alone")), "{reply}");
    assert!(reply.contains("1 pending request(s) closed"), "{reply}");
    let snoozes = lp.state().snoozes(now).await.unwrap();
    assert_eq!(snoozes.len(), 1, "{snoozes:#?}");
    assert_eq!(snoozes[0].resource_id, id);
    assert_eq!(
        (snoozes[0].account.as_deref(), snoozes[0].region.as_deref()),
        (Some("123456789012"), Some("us-east-1"))
    );
    let _ = lp.drain().await;
    let next = tag_compliance::handler::handle(sweep.clone(), &deps, now + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        next.outcomes
            .iter()
            .all(|o| o.outcome != OutcomeKind::PendingApproval && o.outcome != OutcomeKind::Executed),
        "{next:#?}"
    );
    assert!(
        next.outcomes.iter().any(|o| o.detail.contains("snoozed until")),
        "{next:#?}"
    );
    assert_eq!(seed::state_of(&ec2, &id).await, "running");

    // A later 7-day click on the same message does not cut the 30-day snooze short.
    let (status, reply) = lp
        .slack_click("finops_snooze_7", &snooze_token(post, 7), "U0ANA", Some("shorter"), now)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("already snoozed until"), "{reply}");
    let snoozes = lp.state().snoozes(now).await.unwrap();
    assert_eq!(snoozes[0].until, snoozes[0].at + Duration::days(30), "{snoozes:#?}");
    assert_eq!(snoozes[0].reason, "renaming tags");
}

#[tokio::test]
async fn a_snooze_granted_while_a_batch_is_acted_on_spares_the_actions_not_yet_begun() {
    let moto = finops_tests::Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
        seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
        ids.push(id);
    }
    let auto = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        action_concurrency: 1,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "idle-ec2", Policy::default(), Some(TABLE), None).await;
    let report = idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    assert_eq!(report.findings.len(), 2, "{report:#?}");
    let (first, second) = (&report.findings[0].resource.id, &report.findings[1].resource.id);

    let ec2 = remediation::aws::ec2::Ec2::new(c.ec2.clone(), "us-east-1");
    let cloudwatch = remediation::aws::cloudwatch::CloudWatch::new(c.cloudwatch.clone(), 1);
    let now = Utc::now();
    let ctx = remediation::flow::RunContext {
        mode: Mode::Auto,
        policy: &auto,
        now,
        sinks: deps.sinks(),
        held: Default::default(),
    };
    let stop = finops_checks::idle_ec2::act::StopInstance {
        ec2: &ec2,
        policy: &auto,
        usage: Some(&cloudwatch),
        others: &[],
        now,
    };
    // While the first instance is being stopped, its owner snoozes the second.
    let action = finops_tests::midway::SnoozeMidway {
        inner: &stop,
        state: remediation::state::DynamoState::new(c.dynamodb.clone(), TABLE),
        snooze: vec![second.clone()],
    };

    let (outcomes, _) = remediation::flow::apply(&ctx, &report.findings, &action, report.scanned).await;

    assert_eq!(outcomes[0].outcome, OutcomeKind::Executed, "{outcomes:#?}");
    assert_eq!(seed::state_of(&c.ec2, first).await, "stopped");
    assert_eq!(outcomes[1].outcome, OutcomeKind::Skipped, "{outcomes:#?}");
    assert!(
        outcomes[1].detail.contains("snoozed until") && outcomes[1].detail.contains("quarter-end batch"),
        "{outcomes:#?}"
    );
    assert_eq!(
        seed::state_of(&c.ec2, second).await,
        "running",
        "the snooze is read again right before each action"
    );
}

#[tokio::test]
async fn a_longer_click_over_a_shorter_snooze_stored_without_a_ttl_is_recorded_not_refused() {
    let mut lp = Loop::start(policy(Mode::DryRun)).await;
    lp.notify.options.interactive = true;
    let id = idle_instance(&lp).await;
    let now = Utc::now();
    let run = idle_run(&lp, Mode::DryRun, now).await;
    let parts = remediation::model::Finding::parse_id(&run.findings[0].id).unwrap();
    let key = remediation::state::snooze_key(&id, Some(parts.account), Some(parts.region));
    let posts = posted(&lp).await;

    // A two-day snooze on record as an older version or a hand edit leaves it: no TTL attribute.
    let c = lp.moto.clients().await;
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_string());
    c.dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", s("SNOOZES"))
        .item("sk", s(&key))
        .item("resource_id", s(&id))
        .item("until", s(&(now + Duration::days(2)).to_rfc3339()))
        .item("by", s("U0BOB"))
        .item("at", s(&(now - Duration::days(1)).to_rfc3339()))
        .item("account", s(parts.account))
        .item("region", s(parts.region))
        .send()
        .await
        .unwrap();

    // A 7-day click ends later: it is recorded, and the answer says so.
    lp.set_clock(Some(now));
    let (status, reply) = lp
        .slack_click(
            "finops_snooze_7",
            &snooze_token(&posts[0], 7),
            "U0ANA",
            Some("batch"),
            now,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("left alone until"), "{reply}");
    let snoozes = lp.state().snoozes_of(&id, now).await.unwrap();
    assert_eq!(snoozes.len(), 1, "{snoozes:#?}");
    assert_eq!(
        (snoozes[0].by.as_str(), snoozes[0].until),
        ("U0ANA", now + Duration::days(7))
    );
}

fn cli_snooze(by: &str, at: DateTime<Utc>, days: i64) -> remediation::state::Snooze {
    finops_tests::snooze("i-0feed", by, "cli", "r", at, at + Duration::days(days))
}

/// A table with Ana's 7-day snooze of `i-0feed` granted at `now`, and a second state on it
/// whose first write is preceded by `step_in` (another writer, through its own client).
async fn snoozed_then_stepped_in(
    step_in: impl FnOnce(DynamoState) -> finops_tests::midway::BoxedStep + Send + 'static,
) -> (finops_tests::Moto, DynamoState, DynamoState, remediation::state::Snooze) {
    let moto = finops_tests::Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let state = DynamoState::new(c.dynamodb.clone(), TABLE);
    let ana = cli_snooze("ana", Utc::now(), 7);
    state.snooze(&ana, false, &finops_checks::CATALOG).await.unwrap();
    let client =
        finops_tests::midway::stepped_in_client(&moto, move |other| step_in(DynamoState::new(other, TABLE))).await;
    (moto, state, DynamoState::new(client, TABLE), ana)
}

#[tokio::test]
async fn a_lift_never_ends_a_snooze_granted_between_its_read_and_its_write() {
    use remediation::state::Unsnoozed;
    let bo = cli_snooze("bo", Utc::now() + Duration::seconds(1), 30);
    let granted = bo.clone();
    let (_moto, state, stepped, ana) = snoozed_then_stepped_in(move |other| {
        Box::pin(async move {
            other.snooze(&granted, false, &finops_checks::CATALOG).await.unwrap();
        })
    })
    .await;
    // Ana's lift read her snooze; Bo's replaced it before the lift's write landed.
    let later = Utc::now() + Duration::seconds(2);
    let lift = stepped.unsnooze(&ana, "ana", "done", later).await.unwrap();
    assert_eq!(lift, Unsnoozed::Replaced(bo.clone()));
    assert_eq!(state.snoozes_of("i-0feed", later).await.unwrap(), vec![bo.clone()]);

    // Bo's is lifted as read; lifted twice, it is gone; the ended item takes a new snooze.
    assert_eq!(
        state.unsnooze(&bo, "bo", "done", later).await.unwrap(),
        Unsnoozed::Lifted(bo.clone())
    );
    assert!(state.snoozes_of("i-0feed", later).await.unwrap().is_empty());
    assert_eq!(
        state.unsnooze(&bo, "bo", "again", later).await.unwrap(),
        Unsnoozed::Gone
    );
    let again = cli_snooze("ana", later + Duration::seconds(1), 7);
    let granted = state.snooze(&again, true, &finops_checks::CATALOG).await.unwrap();
    assert_eq!((granted.kept, granted.replaced), (None, None));
    assert_eq!(
        state.snoozes_of("i-0feed", later + Duration::seconds(2)).await.unwrap(),
        vec![again]
    );
}

#[tokio::test]
async fn two_lifts_at_once_lift_once_and_the_second_says_it_was_gone() {
    use remediation::state::Unsnoozed;
    let (_moto, state, stepped, ana) = snoozed_then_stepped_in(|other| {
        Box::pin(async move {
            let read = other.snoozes_of("i-0feed", Utc::now()).await.unwrap();
            let lift = other.unsnooze(&read[0], "bo", "first", Utc::now()).await.unwrap();
            assert!(matches!(lift, Unsnoozed::Lifted(_)), "{lift:?}");
        })
    })
    .await;
    let lift = stepped.unsnooze(&ana, "ana", "second", Utc::now()).await.unwrap();
    assert_eq!(lift, Unsnoozed::Gone);
    let trail = state
        .audit_trail(&remediation::state::snoozes::resource_audit_id("i-0feed"))
        .await
        .unwrap();
    let lifts: Vec<&str> = trail
        .iter()
        .filter(|e| e.event == "unsnoozed")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(lifts.len(), 1, "{trail:#?}");
    assert!(lifts[0].contains("lifted by bo"), "{lifts:?}");
}

#[tokio::test]
async fn a_click_never_cuts_short_a_longer_snooze_granted_between_its_read_and_its_write() {
    let bo = cli_snooze("bo", Utc::now() + Duration::seconds(1), 30);
    let granted = bo.clone();
    let (_moto, state, stepped, _ana) = snoozed_then_stepped_in(move |other| {
        Box::pin(async move {
            other.snooze(&granted, false, &finops_checks::CATALOG).await.unwrap();
        })
    })
    .await;
    // The click read Ana's 7 days, so its 10 days were to replace them; Bo's 30 came in between.
    let click = remediation::state::Snooze {
        via: "slack".into(),
        ..cli_snooze("U0CY", Utc::now() + Duration::seconds(2), 10)
    };
    let answer = stepped.snooze(&click, true, &finops_checks::CATALOG).await.unwrap();
    assert_eq!(answer.kept, Some(bo.clone()));
    assert_eq!(state.snoozes_of("i-0feed", Utc::now()).await.unwrap(), vec![bo]);
}

#[tokio::test]
async fn a_grant_or_lift_whose_write_already_landed_is_reported_done_not_failed() {
    use remediation::state::Unsnoozed;
    // As when the SDK retries a request whose first try was committed but went unanswered: the
    // same grant lands just before this one's write.
    let bo = cli_snooze("bo", Utc::now() + Duration::seconds(1), 30);
    let same = bo.clone();
    let (_moto, state, stepped, _ana) = snoozed_then_stepped_in(move |other| {
        Box::pin(async move {
            other.snooze(&same, false, &finops_checks::CATALOG).await.unwrap();
        })
    })
    .await;
    let granted = stepped.snooze(&bo, false, &finops_checks::CATALOG).await.unwrap();
    assert_eq!(granted.kept, None);
    assert_eq!(state.snoozes_of("i-0feed", Utc::now()).await.unwrap(), vec![bo.clone()]);

    // The same for a lift.
    let at = Utc::now() + Duration::seconds(2);
    let (_moto, _state, stepped, ana) = snoozed_then_stepped_in(move |other| {
        Box::pin(async move {
            let read = other.snoozes_of("i-0feed", at).await.unwrap();
            other.unsnooze(&read[0], "ana", "done", at).await.unwrap();
        })
    })
    .await;
    assert_eq!(
        stepped.unsnooze(&ana, "ana", "done", at).await.unwrap(),
        Unsnoozed::Lifted(ana)
    );
}
