//! The `finops` binary end to end against moto: every subcommand, run as an operator runs it
//! (the table from `FINOPS_TABLE` or `--table`, AWS from the environment), beside the functions
//! it steers.

use std::process::Command;

use chrono::{Duration, Utc};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};
use remediation::state::{ApprovalStore, DynamoState, StateStore};
use serde_json::Value;

const TABLE: &str = "finops-state";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `finops args…` with only the environment an operator would have (moto's endpoint).
fn finops(moto: &Moto, table: Option<&str>, args: &[&str]) -> Run {
    finops_in(moto, table, args, None)
}

/// `finops args…` in a terminal `COLUMNS` wide enough that no cell wraps.
fn finops_wide(moto: &Moto, table: Option<&str>, args: &[&str]) -> Run {
    finops_in(moto, table, args, Some("250"))
}

fn finops_in(moto: &Moto, table: Option<&str>, args: &[&str], columns: Option<&str>) -> Run {
    finops_with(moto, table, args, columns, &[])
}

/// `finops args…` with the operator's environment and `extra` variables.
fn finops_with(moto: &Moto, table: Option<&str>, args: &[&str], columns: Option<&str>, extra: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_finops"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(t) = table {
        cmd.env("FINOPS_TABLE", t);
    }
    if let Some(c) = columns {
        cmd.env("COLUMNS", c);
    }
    cmd.envs(extra.iter().copied());
    let out = cmd.output().expect("finops runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal: {}",
        run.stdout
    );
    run
}

fn ok(r: Run) -> String {
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r.stdout
}

fn json(r: Run) -> Value {
    let out = ok(r);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../../events/idle-ec2/scheduled.json")).unwrap()
}

async fn setup() -> (Moto, DynamoState, String) {
    let moto = Moto::start().expect("moto");
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let sqs = aws_sdk_sqs_client(&moto).await;
    let (topic, _) = seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    (moto, DynamoState::new(c.dynamodb.clone(), TABLE), topic)
}

async fn aws_sdk_sqs_client(moto: &Moto) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto.sdk_config().await)
}

async fn idle_instance(moto: &Moto) -> String {
    let c = moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    id
}

fn policy(mode: Mode) -> Policy {
    finops_tests::approvals::slack_policy(mode, "U0ANA")
}

async fn idle_run(moto: &Moto, topic: &str, mode: Mode) -> RunReport {
    let deps = finops_tests::deps(moto, "idle-ec2", policy(mode), Some(TABLE), Some(topic)).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap()
}

#[tokio::test]
async fn status_shows_the_switch_and_each_rules_last_run_and_stop_holds_every_function() {
    let (moto, state, topic) = setup().await;
    let t = Some(TABLE);

    let before = ok(finops(&moto, t, &["status"]));
    assert!(before.contains("Emergency stop: off"), "{before}");
    assert!(before.contains("idle-ec2") && before.contains("never"), "{before}");
    // No table: a clear error, not a guess.
    let no_table = finops(&moto, None, &["status"]);
    assert_eq!(no_table.code, 1);
    assert!(no_table.stderr.contains("FINOPS_TABLE"), "{}", no_table.stderr);

    let id = idle_instance(&moto).await;
    idle_run(&moto, &topic, Mode::DryRun).await;
    // The same rule ran elsewhere too: an hour earlier it failed in another account and region,
    // three days ago was the last time it ran in a third, and a fourth is as healthy as here.
    let elsewhere =
        |account: &str, region: &str, hours_ago: i64, result: &str, error: &str| remediation::state::RunRecord {
            rule: "idle-ec2".into(),
            at: Utc::now() - Duration::hours(hours_ago),
            mode: "auto".into(),
            account: account.into(),
            region: region.into(),
            scanned: 3,
            findings: 0,
            estimated_monthly_savings_usd: 0.0,
            outcomes: Default::default(),
            duration_ms: 40,
            errors: if error.is_empty() { vec![] } else { vec![error.into()] },
            result: result.into(),
            cost: None,
        };
    for run in [
        elsewhere(
            "222222222222",
            "eu-west-1",
            1,
            "failed",
            "AccessDenied: ec2:DescribeInstances",
        ),
        elsewhere("333333333333", "us-west-2", 72, "ok", ""),
        elsewhere("444444444444", "ap-south-1", 0, "ok", ""),
        // An older run of that place finishing last does not replace its last run.
        elsewhere("444444444444", "ap-south-1", 100, "failed", "finished late"),
    ] {
        state.record_run(&run).await.unwrap();
    }
    let s = json(finops(&moto, t, &["status", "--output", "json"]));
    let places = s["last_runs"]["idle-ec2"].as_array().expect("one last run per place");
    assert_eq!(places.len(), 4, "{s:#}");
    let here = places
        .iter()
        .find(|p| p["region"] == "us-east-1")
        .expect("this account's run");
    assert_eq!(
        (here["findings"].as_u64(), here["result"].as_str()),
        (Some(1), Some("ok")),
        "{s:#}"
    );
    assert_eq!(here["mode"], "dry-run");
    // Issue 30: the run's own cost is in its record, and the month's is summed by rule.
    let metrics = here["cost"]["usage"]["metrics_requested"].as_u64().unwrap_or(0);
    assert!(metrics > 0, "{s:#}");
    let cloudwatch = here["cost"]["by_service"]["cloudwatch"].as_f64().unwrap_or(0.0);
    assert!((cloudwatch - metrics as f64 * 0.00001).abs() < 1e-12, "{s:#}");
    assert!(
        s["own_cost_usd_30_days"]["idle-ec2"].as_f64().unwrap_or(0.0) >= cloudwatch,
        "{s:#}"
    );
    // And where the prices came from, each source once.
    let sources = s["own_cost_prices"].as_array().cloned().unwrap_or_default();
    assert!(
        sources
            .iter()
            .any(|p| p == here["cost"]["prices"].as_str().unwrap_or("-")),
        "{s:#}"
    );
    assert_eq!(places[3]["account"], "333333333333", "newest first: {s:#}");
    assert_eq!(s["last_runs"]["ebs-cleanup"], serde_json::json!([]));
    let table = ok(finops_wide(&moto, t, &["status"]));
    assert!(table.contains("dry-run") && table.contains("$"), "{table}");
    assert!(
        table.contains("run cost") && table.contains("The autopilot's own AWS cost, last 30 days"),
        "{table}"
    );
    // The two healthy places share a line; the failing one and the one no longer scanned have
    // their own.
    assert!(
        table.contains("2 places") && !table.contains("finished late"),
        "{table}"
    );
    assert!(
        table.contains("222222222222/eu-west-1") && table.contains("AccessDenied"),
        "the failing place is shown: {table}"
    );
    assert!(
        table.contains("333333333333/us-west-2") && table.contains("not run since"),
        "the place left behind is shown: {table}"
    );
    // Stop needs a reason; with one, every function runs as dry-run.
    assert_eq!(finops(&moto, t, &["stop"]).code, 2);
    let stopped = ok(finops(&moto, t, &["--table", TABLE, "stop", "--reason", "incident 42"]));
    assert!(stopped.contains("Emergency stop ON"), "{stopped}");
    let switch = state.emergency_stop().await.unwrap().unwrap();
    assert!(switch.on && switch.reason == "incident 42", "{switch:?}");
    assert!(
        switch.by.contains("moto"),
        "who stopped it is the caller's identity: {switch:?}"
    );
    let held = idle_run(&moto, &topic, Mode::Auto).await;
    assert!(held.notes.iter().any(|n| n.contains("EMERGENCY STOP")), "{held:#?}");
    assert_eq!(seed::state_of(&moto.clients().await.ec2, &id).await, "running");
    let s = json(finops(&moto, t, &["status", "--output", "json"]));
    assert_eq!(s["emergency_stop"]["on"], true);

    // A name that could pass for an identity is refused.
    for fake in [
        "boss (as arn:aws:iam::111111111111:user/boss)",
        "arn:aws:iam::111111111111:user/boss",
    ] {
        assert_eq!(finops(&moto, t, &["resume", "--by", fake]).code, 2, "{fake}");
    }
    ok(finops(&moto, t, &["resume", "--by", "ops@example.com"]));
    let switch = state.emergency_stop().await.unwrap().unwrap();
    // A name given with --by is recorded beside the caller's AWS identity, never instead of it.
    assert!(
        !switch.on && switch.by == "ops@example.com (as arn:aws:sts::123456789012:user/moto)",
        "{switch:?}"
    );
    let trail = state.audit_trail("CONTROL").await.unwrap();
    assert_eq!(
        trail.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["emergency-stop-on", "emergency-stop-off"]
    );
}

#[tokio::test]
async fn a_snooze_closes_the_request_skips_the_instance_and_unsnooze_brings_it_back() {
    let (moto, state, topic) = setup().await;
    let t = Some(TABLE);
    let id = idle_instance(&moto).await;
    let asked = idle_run(&moto, &topic, Mode::Approve).await;
    assert_eq!(asked.outcomes[0].outcome, OutcomeKind::PendingApproval, "{asked:#?}");
    let finding_id = asked.findings[0].id.clone();

    let pending = json(finops(
        &moto,
        t,
        &["approvals", "--status", "pending", "--output", "json"],
    ));
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending:#}");
    assert_eq!(pending[0]["resource_id"], id.as_str());
    let rid = pending[0]["request_id"].as_str().unwrap().to_string();
    let listed = ok(finops(&moto, t, &["approvals"]));
    assert!(listed.contains(&rid) && listed.contains("pending"), "{listed}");
    let s = json(finops(&moto, t, &["status", "--output", "json"]));
    assert_eq!(s["open_approvals"]["idle-ec2"], 1);

    // A reason is required; then the snooze closes the request.
    assert_ne!(
        finops(&moto, t, &["snooze", &id, "--days", "30", "--reason", "  "]).code,
        0
    );
    let out = ok(finops(
        &moto,
        t,
        &[
            "snooze",
            &id,
            "--days",
            "30",
            "--reason",
            "quarter-end batch",
            "--by",
            "ops@example.com",
        ],
    ));
    assert!(out.contains(&format!("Closed pending request {rid}")), "{out}");
    assert_eq!(state.approval(&rid).await.unwrap().unwrap().status, "snoozed");
    let snoozes = json(finops(&moto, t, &["snoozes", "--output", "json"]));
    assert_eq!(snoozes[0]["resource_id"], id.as_str());
    assert_eq!(snoozes[0]["via"], "cli");
    assert!(ok(finops(&moto, t, &["snoozes"])).contains("quarter-end batch"));

    // The next run sets it aside, saying whose snooze it is.
    let skipped = idle_run(&moto, &topic, Mode::Approve).await;
    assert!(skipped.findings.is_empty(), "{skipped:#?}");
    assert!(
        skipped.outcomes[0]
            .detail
            .contains("by ops@example.com (as arn:aws:sts::123456789012:user/moto): quarter-end batch"),
        "{skipped:#?}"
    );

    // The trail, in order, by resource id and by finding id.
    let trail = json(finops(&moto, t, &["audit", &id, "--output", "json"]));
    let events: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["approval-requested", "closed-snoozed", "snoozed"], "{trail:#}");
    let by_finding = ok(finops(&moto, t, &["audit", &finding_id]));
    assert!(
        by_finding.contains(&format!("finding {finding_id}"))
            && by_finding.contains("closed-snoozed")
            && by_finding.contains("ops@example.com"),
        "{by_finding}"
    );
    assert!(ok(finops(&moto, t, &["audit", "i-nothing"])).contains("No audit trail"));

    // Lifted: the next run asks again; lifting twice is an error.
    ok(finops(&moto, t, &["unsnooze", &id, "--reason", "batch moved"]));
    let again = finops(&moto, t, &["unsnooze", &id]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("is not snoozed"), "{}", again.stderr);
    let asked_again = idle_run(&moto, &topic, Mode::Approve).await;
    assert_eq!(
        asked_again.outcomes[0].outcome,
        OutcomeKind::PendingApproval,
        "{asked_again:#?}"
    );
    let trail = json(finops(&moto, t, &["audit", &id, "--output", "json"]));
    assert_eq!(trail.as_array().unwrap().last().unwrap()["event"], "approval-requested");
    assert!(trail.to_string().contains("unsnoozed"));
}

#[tokio::test]
async fn a_laptop_scan_reports_findings_in_dry_run_and_changes_nothing() {
    let (moto, state, _) = setup().await;
    let id = idle_instance(&moto).await;
    let c = moto.clients().await;
    let items_before = seed::scan_table(&c.dynamodb, TABLE).await.len();

    // A policy that says auto is still a dry run from the laptop.
    let dir = std::env::temp_dir().join(format!("finops-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "mode: auto\n").unwrap();
    let out = ok(finops(
        &moto,
        None,
        &["scan", "idle-ec2", "--policy", policy.to_str().unwrap()],
    ));
    assert!(out.contains(&id) && out.contains("dry run, nothing changed"), "{out}");
    let report = json(finops(&moto, None, &["scan", "idle-ec2", "--output", "json"]));
    assert_eq!(report["mode"], "dry-run");
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(seed::state_of(&c.ec2, &id).await, "running");
    assert_eq!(
        seed::scan_table(&c.dynamodb, TABLE).await.len(),
        items_before,
        "nothing written"
    );

    // With the table, snoozes are honoured (read only).
    ok(finops(
        &moto,
        Some(TABLE),
        &["snooze", &id, "--days", "7", "--reason", "load test"],
    ));
    let snoozed = json(finops(&moto, Some(TABLE), &["scan", "idle-ec2", "--output", "json"]));
    assert_eq!(snoozed["findings"].as_array().map(Vec::len), Some(0), "{snoozed:#}");
    assert!(snoozed["outcomes"].to_string().contains("snoozed until"), "{snoozed:#}");
    assert!(
        state.runs("idle-ec2", None, None).await.unwrap().is_empty(),
        "a laptop scan is not a run record"
    );

    // A policy that does not read, and an unknown rule: clear errors.
    std::fs::write(&policy, "mode: sometimes\n").unwrap();
    let bad = finops(&moto, None, &["scan", "idle-ec2", "--policy", policy.to_str().unwrap()]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("policy.yaml"), "{}", bad.stderr);
    assert_eq!(finops(&moto, None, &["scan", "idle-gpu"]).code, 2);
    let _ = std::fs::remove_dir_all(&dir);

    // CloudWatch down: the scan still prints what it saw, and its exit (3) says it is partial.
    moto.inject_fault("monitoring", "GetMetricData", 1.0, 1, "503").await;
    let partial = finops(&moto, None, &["scan", "idle-ec2"]);
    assert_eq!(partial.code, 3, "{}{}", partial.stdout, partial.stderr);
    assert!(
        partial.stdout.contains(&id) && partial.stdout.contains("not assessed"),
        "{}",
        partial.stdout
    );
    assert!(partial.stderr.contains("could not be assessed"), "{}", partial.stderr);
}

#[tokio::test]
async fn the_report_sums_the_ledger_and_the_scans_of_the_weeks() {
    let (moto, state, topic) = setup().await;
    idle_instance(&moto).await;
    idle_run(&moto, &topic, Mode::Approve).await;
    idle_run(&moto, &topic, Mode::DryRun).await;
    let r = json(finops(
        &moto,
        Some(TABLE),
        &["report", "--weeks", "2", "--output", "json"],
    ));
    assert_eq!(r["scans"]["idle-ec2"]["runs"], 2, "{r:#}");
    assert_eq!(r["by_rule"]["idle-ec2"]["findings"], 1, "{r:#}");
    assert!(r["estimated_usd"].as_f64().unwrap() > 0.0, "{r:#}");
    let text = ok(finops(&moto, Some(TABLE), &["report"]));
    assert!(text.starts_with("Savings ") && text.contains("idle-ec2"), "{text}");
    assert_eq!(finops(&moto, Some(TABLE), &["report", "--weeks", "0"]).code, 2);
    let _ = (state, Duration::zero());
}

#[tokio::test]
async fn unsnooze_lifts_every_snooze_of_the_resource_and_says_what_still_holds() {
    let (moto, state, _topic) = setup().await;
    let t = Some(TABLE);
    let id = "i-0abc1234567890def";
    let slack = |now: chrono::DateTime<Utc>| remediation::state::Snooze {
        resource_id: id.into(),
        until: now + Duration::days(7),
        by: "U0ANA".into(),
        via: "slack".into(),
        reason: "batch".into(),
        at: now,
        finding_id: None,
        account: Some("123456789012".into()),
        region: Some("us-east-1".into()),
        lifted_by: None,
        lifted_at: None,
    };
    // A Slack snooze in one account and region, and an operator's everywhere.
    state
        .snooze(&slack(Utc::now()), true, &finops_checks::CATALOG)
        .await
        .unwrap();
    ok(finops(
        &moto,
        t,
        &["snooze", id, "--days", "30", "--reason", "migration"],
    ));

    // Lifting the one place's: the snooze everywhere still holds there, and it says so.
    let out = ok(finops_wide(
        &moto,
        t,
        &["unsnooze", id, "--account", "123456789012", "--region", "us-east-1"],
    ));
    assert!(
        out.contains("still snoozed") && out.contains("everywhere") && !out.contains("assess it again"),
        "{out}"
    );
    assert_eq!(state.snoozes_of(id, Utc::now()).await.unwrap().len(), 1);
    // Lifting there again: nothing of its own there, and the snooze that holds there is named.
    let wider = finops_wide(
        &moto,
        t,
        &["unsnooze", id, "--account", "123456789012", "--region", "us-east-1"],
    );
    assert_eq!(wider.code, 1);
    assert!(
        wider.stderr.contains("snoozed everywhere, which holds there too")
            && wider.stderr.contains(&format!("finops unsnooze {id}\n")),
        "{}",
        wider.stderr
    );
    let finding = format!("idle-ec2:123456789012:us-east-1:{id}");
    assert_eq!(finops(&moto, t, &["unsnooze", &finding, "--all-places"]).code, 2);
    // A snooze in one region of the account does not hold the whole account: not called wider.
    state
        .snooze(
            &remediation::state::Snooze {
                resource_id: "i-other".into(),
                ..slack(Utc::now())
            },
            true,
            &finops_checks::CATALOG,
        )
        .await
        .unwrap();
    let narrower = finops_wide(&moto, t, &["unsnooze", "i-other", "--account", "123456789012"]);
    assert_eq!(narrower.code, 1);
    assert!(
        !narrower.stderr.contains("holds there too") && narrower.stderr.contains("is not snoozed there"),
        "{}",
        narrower.stderr
    );

    // Without a place, the snooze everywhere only: the one in a place still holds, and it says so.
    state
        .snooze(&slack(Utc::now()), true, &finops_checks::CATALOG)
        .await
        .unwrap();
    let out = ok(finops_wide(&moto, t, &["unsnooze", id]));
    assert!(
        out.contains("still snoozed in 123456789012/us-east-1") && !out.contains("assess it again"),
        "{out}"
    );
    let none_everywhere = finops(&moto, t, &["unsnooze", id]);
    assert_eq!(none_everywhere.code, 1);
    assert!(
        none_everywhere.stderr.contains("in 123456789012/us-east-1") && none_everywhere.stderr.contains("--all-places"),
        "{}",
        none_everywhere.stderr
    );

    // --all-places: every snooze of the resource is lifted, and the next runs assess it.
    ok(finops(
        &moto,
        t,
        &["snooze", id, "--days", "30", "--reason", "migration"],
    ));
    let out = ok(finops_wide(&moto, t, &["unsnooze", id, "--all-places"]));
    assert!(
        out.contains("assess it again") && out.contains("123456789012/us-east-1"),
        "{out}"
    );
    assert!(state.snoozes_of(id, Utc::now()).await.unwrap().is_empty());
    let trail = json(finops(&moto, t, &["audit", id, "--output", "json"]));
    let lifted = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["event"] == "unsnoozed")
        .count();
    assert_eq!(lifted, 4, "{trail:#}");
}

#[tokio::test]
async fn snooze_refuses_a_place_it_cannot_hold_and_splits_a_pasted_finding_id() {
    let (moto, state, _topic) = setup().await;
    let t = Some(TABLE);
    let reason = ["--days", "7", "--reason", "r"];
    for place in [
        ["--account", "12345"],
        ["--account", "*"],
        ["--region", "*"],
        ["--region", "us-east-1/x"],
        ["--region", "US East"],
    ] {
        let args: Vec<&str> = ["snooze", "i-1"].iter().chain(&reason).chain(&place).copied().collect();
        let r = finops(&moto, t, &args);
        assert_eq!(r.code, 2, "{place:?} accepted: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(place[0]), "{place:?}: {}", r.stderr);
    }
    let args: Vec<&str> = ["snooze", "i-1@123456789012/us-east-1"]
        .iter()
        .chain(&reason)
        .copied()
        .collect();
    let r = finops(&moto, t, &args);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains('@'), "{}", r.stderr);
    assert!(state.all_snoozes().await.unwrap().0.is_empty(), "nothing was snoozed");

    // A finding id pasted from Slack snoozes its resource where the finding is.
    let args: Vec<&str> = ["snooze", "idle-ec2:123456789012:eu-west-1:i-0feed", "--output", "json"]
        .iter()
        .chain(&reason)
        .copied()
        .collect();
    let out = json(finops(&moto, t, &args));
    assert_eq!(out["snooze"]["resource_id"], "i-0feed", "{out:#}");
    assert_eq!(out["snooze"]["account"], "123456789012");
    assert_eq!(out["snooze"]["region"], "eu-west-1");
    // A tag-compliance stop's id names its instance; a finding id's place is checked as a flag's.
    let args: Vec<&str> = [
        "snooze",
        "tag-compliance:123456789012:eu-west-1:i-0stop:stop",
        "--output",
        "json",
    ]
    .iter()
    .chain(&reason)
    .copied()
    .collect();
    let out = json(finops(&moto, t, &args));
    assert_eq!(out["snooze"]["resource_id"], "i-0stop", "{out:#}");
    assert_eq!(
        out["snooze"]["finding_id"],
        "tag-compliance:123456789012:eu-west-1:i-0stop:stop"
    );
    let args: Vec<&str> = ["snooze", "idle-ec2:123:us-east-1:i-1"]
        .iter()
        .chain(&reason)
        .copied()
        .collect();
    assert_eq!(finops(&moto, t, &args).code, 2);
    // Real regions are accepted.
    for region in ["us-gov-west-1", "cn-north-1", "ap-southeast-5", "il-central-1"] {
        let args: Vec<&str> = ["snooze", "TOTAL", "--account", "123456789012", "--region", region]
            .iter()
            .chain(&reason)
            .copied()
            .collect();
        ok(finops(&moto, t, &args));
    }
    // Unless it names another place.
    let args: Vec<&str> = [
        "snooze",
        "idle-ec2:123456789012:eu-west-1:i-0feed",
        "--region",
        "us-east-1",
    ]
    .iter()
    .chain(&reason)
    .copied()
    .collect();
    assert_eq!(finops(&moto, t, &args).code, 2);
}

/// `finops doctor` against a healthy deployment in moto (a Config recorder, Cost Explorer, a
/// quota that leaves room, the secret's keys, a live Slack webhook, the Bedrock model): every
/// check ok, exit 0, and nothing posted to Slack. Then the same deployment broken the ways a
/// newcomer's is: each failure named with its fix, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_ok_for_a_healthy_deployment_and_names_each_fault_with_its_fix() {
    use finops_tests::httpserver::{BedrockStandIn, SlackStandIn};
    let moto = Moto::start().expect("moto");
    let (slack, slack_server) = SlackStandIn::start().await;
    let (bedrock, bedrock_server) = BedrockStandIn::start().await;
    let config = aws_sdk_config::Client::new(&moto.sdk_config().await);
    let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
        .name("default")
        .role_arn("arn:aws:iam::123456789012:role/config")
        .build();
    config
        .put_configuration_recorder()
        .configuration_recorder(recorder)
        .send()
        .await
        .expect("PutConfigurationRecorder");
    let channel = aws_sdk_config::types::DeliveryChannel::builder()
        .name("default")
        .s3_bucket_name("config-bucket")
        .build();
    let s3 = aws_sdk_s3::Client::new(&moto.sdk_config().await);
    s3.create_bucket()
        .bucket("config-bucket")
        .send()
        .await
        .expect("CreateBucket");
    config
        .put_delivery_channel()
        .delivery_channel(channel)
        .send()
        .await
        .expect("PutDeliveryChannel");
    config
        .start_configuration_recorder()
        .configuration_recorder_name("default")
        .send()
        .await
        .expect("StartConfigurationRecorder");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let webhook = format!("{}/services/T000/B000/XXXX", slack_server.url());
    let healthy = serde_json::json!({"slack_webhook_url": webhook, "slack_signing_secret": "s3cr3t"}).to_string();
    sm.create_secret()
        .name("finops/autopilot")
        .secret_string(&healthy)
        .send()
        .await
        .expect("CreateSecret");
    let report = serde_json::json!({"report_link_key": "r".repeat(64), "approval_url": "https://x.lambda-url.us-east-1.on.aws/"});
    sm.create_secret()
        .name("finops/report-links")
        .secret_string(report.to_string())
        .send()
        .await
        .expect("CreateSecret");
    bedrock.answer_next(BedrockStandIn::answer("ok"));
    let bedrock_url = bedrock_server.url();
    let doctor = |args: &[&str], extra: &[(&str, &str)]| {
        let mut env = vec![
            ("FINOPS_BEDROCK_ENDPOINT", bedrock_url.as_str()),
            ("FINOPS_SECRET_ID", "finops/autopilot"),
        ];
        env.extend_from_slice(extra);
        let args: Vec<&str> = ["doctor"].into_iter().chain(args.iter().copied()).collect();
        let r = finops_with(&moto, None, &args, None, &env);
        (r.code, r.stdout)
    };
    let (code, text) = tokio::task::block_in_place(|| {
        doctor(
            &["--config-rules", "--reserve-concurrency", "--slack-interactive"],
            &[("FINOPS_REPORT_LINK_SECRET_ID", "finops/report-links")],
        )
    });
    assert_eq!(code, 0, "{text}");
    assert!(
        says(
            &text,
            "ok Report-link secret finops/report-links: the report links' key and the approval URL"
        ),
        "{text}"
    );
    for line in [
        "ok    AWS credentials",
        "ok    AWS Config recorder     recording (default)",
        "ok    Cost Explorer",
        "ok    Lambda concurrency      account quota 1000",
        "ok    Secret                  finops/autopilot: every key its functions read is there",
        "ok    Slack                   the webhook answers (an empty test message was refused, nothing posted)",
        "ok    Bedrock model           global.amazon.nova-2-lite-v1:0 answers",
        "Everything the deployment needs is in place.",
    ] {
        assert!(says(&text, line), "{line:?} missing from:\n{text}");
    }
    assert!(
        slack.posted().is_empty(),
        "the doctor posted to Slack: {:?}",
        slack.posted()
    );

    // Broken: no recorder, a new account's quota, a secret without the signing secret, a revoked
    // webhook, and a legacy model.
    config
        .stop_configuration_recorder()
        .configuration_recorder_name("default")
        .send()
        .await
        .expect("StopConfigurationRecorder");
    let quota = remediation::http::HttpClient::new(std::time::Duration::from_secs(5)).unwrap();
    let set = quota
        .send(
            "moto",
            "POST",
            &format!("{}/_finops/lambda-settings", moto.endpoint()),
            &[("content-type", "application/json")],
            br#"{"concurrent_executions": 50}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(set.status, 200);
    sm.put_secret_value()
        .secret_id("finops/autopilot")
        .secret_string(serde_json::json!({"slack_webhook_url": webhook}).to_string())
        .send()
        .await
        .expect("PutSecretValue");
    slack.answer_next(finops_tests::httpserver::Response::new(404, "text/plain", "no_service"));
    bedrock.answer_next(BedrockStandIn::error(
        404,
        "ResourceNotFoundException",
        "This model version has reached the end of its life.",
    ));
    let (code, text) = tokio::task::block_in_place(|| {
        doctor(
            &["--config-rules", "--reserve-concurrency", "--slack-interactive"],
            &[(
                "FINOPS_POLICY",
                "{rightsizing: {bedrock_model_id: amazon.titan-text-lite-v1}}",
            )],
        )
    });
    assert_eq!(code, 1, "{text}");
    for want in [
        "FAIL  AWS Config recorder     no configuration recorder is recording in this region",
        "or deploy with EnableConfigRules=false",
        "FAIL  Lambda concurrency      account quota 50, unreserved 50: the stack reserves 41 and Lambda keeps 100 unreserved",
        "deploy with ReserveConcurrency=false, or ask for a quota that leaves 141 unreserved",
        "FAIL  Secret                  finops/autopilot lacks slack_signing_secret (SlackInteractive=true)",
        "FAIL  Slack                   the webhook answered 404 no_service",
        "create a new incoming webhook",
        "note  Bedrock model           amazon.titan-text-lite-v1: ResourceNotFoundException: This model version has reached the end of its life.",
        "4 check(s) failed",
    ] {
        assert!(says(&text, want), "{want:?} missing from:\n{text}");
    }
    // A third-party model is never called: its first call would subscribe the account to it.
    let asked_before = bedrock.requests().len();
    let (_, text) = tokio::task::block_in_place(|| {
        doctor(
            &[],
            &[(
                "FINOPS_POLICY",
                "{rightsizing: {bedrock_model_id: anthropic.claude-3-haiku-20240307-v1:0}}",
            )],
        )
    });
    assert!(
        says(
            &text,
            "note Bedrock model anthropic.claude-3-haiku-20240307-v1:0: not called"
        ),
        "{text}"
    );
    assert_eq!(
        bedrock.requests().len(),
        asked_before,
        "the doctor called a third-party model"
    );
    // Without the flags, what the stack does not use is a note, not a failure.
    slack.answer_next(finops_tests::httpserver::Response::new(400, "text/plain", "no_text"));
    bedrock.answer_next(BedrockStandIn::answer("ok"));
    let (code, text) = tokio::task::block_in_place(|| doctor(&[], &[]));
    assert_eq!(code, 0, "{text}");
    assert!(
        says(
            &text,
            "note AWS Config recorder none recording (fine: EnableConfigRules=false)"
        ),
        "{text}"
    );
    assert!(says(&text, "note Lambda concurrency"), "{text}");
}

/// Whether `text` says `want`, however its columns are padded.
fn says(text: &str, want: &str) -> bool {
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    flat(text).contains(&flat(want))
}

/// Issue 25, secrets per function: `finops secrets split` moves the approval function's and
/// jira-sync's keys out of the one secret every function used to read, in two steps that never
/// leave a function without its credentials; `finops doctor` says which layout it finds.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_split_moves_each_functions_keys_to_its_own_secret_then_prunes_the_old_one() {
    let moto = Moto::start().expect("moto");
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let read = |id: &'static str| {
        let sm = sm.clone();
        async move {
            let text = sm
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .expect("GetSecretValue")
                .secret_string()
                .unwrap_or_default()
                .to_string();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let old = serde_json::json!({
        "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X",
        "slack_signing_secret": "sign-me",
        "oidc_client_secret": "oidc-me",
        "jira_email": "ops@example.com",
        "jira_api_token": "jira-me",
        "link_signing_key": "l".repeat(64),
    });
    sm.create_secret()
        .name("finops/autopilot")
        .secret_string(old.to_string())
        .send()
        .await
        .expect("CreateSecret");
    let split = |args: &[&str]| {
        let args: Vec<&str> = ["secrets", "split", "--from", "finops/autopilot"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        finops(&moto, None, &args)
    };
    // Jira keys without a place for them: refused, nothing written.
    let r = tokio::task::block_in_place(|| split(&["--approval", "finops/approval"]));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--jira"), "{}", r.stderr);
    // Pruning before the new secrets exist: refused, the old secret untouched.
    let r =
        tokio::task::block_in_place(|| split(&["--approval", "finops/approval", "--jira", "finops/jira", "--prune"]));
    assert_ne!(r.code, 0);
    assert_eq!(read("finops/autopilot").await, old);
    // Step one: the new secrets written, the old one unchanged, the parameters printed.
    let out = ok(tokio::task::block_in_place(|| {
        split(&["--approval", "finops/approval", "--jira", "finops/jira"])
    }));
    assert!(out.contains("ApprovalSecretArn=arn:aws:secretsmanager:"), "{out}");
    assert!(out.contains("JiraSecretArn=arn:aws:secretsmanager:"), "{out}");
    assert_eq!(read("finops/autopilot").await, old);
    assert_eq!(
        read("finops/approval").await,
        serde_json::json!({"slack_signing_secret": "sign-me", "oidc_client_secret": "oidc-me", "link_signing_key": "l".repeat(64)})
    );
    assert_eq!(
        read("finops/jira").await,
        serde_json::json!({"jira_email": "ops@example.com", "jira_api_token": "jira-me"})
    );
    // The doctor, with the new secrets named but the old one not pruned: slack-notify could
    // still read the signing secret.
    let doctor = |args: &[&str]| {
        let args: Vec<&str> = ["doctor", "--secret", "finops/autopilot"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        finops(&moto, None, &args)
    };
    let r = tokio::task::block_in_place(|| {
        doctor(&["--approval-secret", "finops/approval", "--jira-secret", "finops/jira"])
    });
    assert!(
        says(&r.stdout, "FAIL Secrets per function finops/autopilot (slack-notify's) still holds slack_signing_secret, oidc_client_secret, jira_api_token, link_signing_key"),
        "{}",
        r.stdout
    );
    // Step two, after the deploy: the old secret keeps Slack's delivery only.
    let out = ok(tokio::task::block_in_place(|| {
        split(&["--approval", "finops/approval", "--jira", "finops/jira", "--prune"])
    }));
    assert!(out.contains("removed 5 key(s)"), "{out}");
    assert_eq!(
        read("finops/autopilot").await,
        serde_json::json!({"slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X"})
    );
    let r = tokio::task::block_in_place(|| {
        doctor(&["--approval-secret", "finops/approval", "--jira-secret", "finops/jira"])
    });
    assert!(says(&r.stdout, "ok Secrets per function"), "{}", r.stdout);
    // The one-secret layout is named, not failed.
    let r = tokio::task::block_in_place(|| doctor(&[]));
    assert!(says(&r.stdout, "note Secrets per function one secret"), "{}", r.stdout);
    assert!(
        says(&r.stdout, "ok Approvers 0 Slack user(s), sign-in admits nobody"),
        "{}",
        r.stdout
    );
    // Anyone with a link: a trial setting, said so.
    let r = tokio::task::block_in_place(|| {
        finops_with(
            &moto,
            None,
            &["doctor", "--secret", "finops/autopilot"],
            None,
            &[(
                "FINOPS_POLICY",
                "{approvals: {slack_users: [U0ANA], anyone_with_link: true}}",
            )],
        )
    });
    assert!(
        says(
            &r.stdout,
            "note Approvers 1 Slack user(s), sign-in admits nobody; anyone_with_link: true"
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("for trials only"), "{}", r.stdout);
}
