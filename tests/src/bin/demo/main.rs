//! `make demo`: a seeded demo account in moto, every function run through its real Lambda binary
//! (against a local Lambda Runtime API, `finops_tests::local`), and what they found, in dollars;
//! then the human loop (Slack, approval, snooze, Jira, the weekly report over weeks of history)
//! and the operator's `finops status`. With `--org`
//! (`make org-demo`): the organisation fan-out over member accounts and regions.

use std::collections::BTreeMap;

use chrono::Utc;
use finops_checks::rightsizing::detect::RightsizingEvidence;
use finops_tests::local::Watch;
use finops_tests::moto::workspace_root;
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::model::{Finding, RunReport};
use remediation::policy::{Mode, Policy};

mod org;

const TABLE: &str = "finops-demo";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("demo: {msg}");
    std::process::exit(1)
}

/// ~50 instances: idle ones of many types, busy ones, exempt, stopped, managed and spot ones.
async fn seed_demo_account(moto: &Moto) -> usize {
    let c = moto.clients().await;
    let now = Utc::now();
    let owners = ["ana", "bo", "cy", "dee", "eli"];
    let mut datums = Vec::new();
    let mut count = 0;
    let idle_types = [
        "t3.large",
        "m5.xlarge",
        "c5.2xlarge",
        "r5.large",
        "t3.medium",
        "m6i.large",
        "t2.micro",
        "c6i.xlarge",
        "r6i.xlarge",
        "m7g.large",
        "t4g.small",
        "m5.2xlarge",
    ];
    for (i, t) in idle_types.iter().enumerate() {
        let owner = owners[i % owners.len()];
        let name = format!("legacy-{}", i + 1);
        let id = seed::run_instance(&c.ec2, t, &[("Owner", owner), ("Name", &name), ("CostCenter", "cc-42")]).await;
        datums.extend(seed::daily_datums(&id, Usage::IDLE, now, 14, &[]));
        count += 1;
    }
    for i in 0..26 {
        let t = ["m5.large", "c5.xlarge", "t3.large", "r5.xlarge"][i % 4];
        let tags = [
            ("Owner", owners[i % owners.len()]),
            ("Name", "api"),
            ("CostCenter", "cc-7"),
            ("Environment", "prod"),
        ];
        let id = seed::run_instance(&c.ec2, t, &tags).await;
        datums.extend(seed::daily_datums(
            &id,
            if i % 5 == 0 { Usage::PROXY } else { Usage::BUSY },
            now,
            14,
            &[],
        ));
        count += 1;
    }
    for t in ["m5.4xlarge", "t3.large", "c6i.large", "r5.2xlarge"] {
        let id = seed::run_instance(
            &c.ec2,
            t,
            &[("Owner", "sre"), ("finops:exempt", "true"), ("Name", "dr-standby")],
        )
        .await;
        datums.extend(seed::daily_datums(&id, Usage::IDLE, now, 14, &[]));
        count += 1;
    }
    for _ in 0..4 {
        let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "bo"), ("Name", "parked")]).await;
        seed::stop(&c.ec2, &id).await;
        count += 1;
    }
    for _ in 0..2 {
        let id = seed::run_instance(
            &c.ec2,
            "m5.large",
            &[("aws:autoscaling:groupName", "web-asg"), ("Owner", "web")],
        )
        .await;
        datums.extend(seed::daily_datums(&id, Usage::IDLE, now, 14, &[]));
        count += 1;
    }
    let id = seed::run_instances(&c.ec2, "c5.large", 1, &[("Owner", "ml")], true)
        .await
        .remove(0);
    datums.extend(seed::daily_datums(&id, Usage::IDLE, now, 14, &[]));
    count += 1;
    // Quiet, but joined 5 days ago: not enough history to call it idle.
    let id = seed::run_instance(&c.ec2, "m5.large", &[("Owner", "eli"), ("Name", "new-service")]).await;
    datums.extend(seed::daily_datums(&id, Usage::IDLE, now, 5, &[]));
    count += 1;
    seed::put_datums(&c.cloudwatch, datums).await;
    seed::create_table(&c.dynamodb, TABLE).await;
    count
}

/// Unattached and attached volumes, with the sighting history a deployed system would have
/// recorded (first seen unattached N days ago); returns how many volumes.
async fn seed_demo_volumes(moto: &Moto) -> usize {
    let c = moto.clients().await;
    let now = Utc::now();
    let unattached: [(&str, i32, Option<i32>, &str, i64); 8] = [
        ("gp2", 500, None, "ana", 40),
        ("gp3", 1000, None, "bo", 21),
        ("io1", 200, Some(4000), "cy", 12),
        ("st1", 2000, None, "dee", 30),
        ("sc1", 4000, None, "eli", 9),
        ("gp2", 100, None, "ana", 15),
        ("gp3", 250, None, "bo", 3),
        ("gp2", 80, None, "cy", 1),
    ];
    for (t, size, iops, owner, seen_days_ago) in unattached {
        let id = seed::create_volume(
            &c.ec2,
            t,
            size,
            iops,
            "us-east-1a",
            &[("Owner", owner), ("Name", "detached")],
        )
        .await;
        c.dynamodb
            .put_item()
            .table_name(TABLE)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("SEEN#ebs-unattached#123456789012#us-east-1".into()),
            )
            .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(id))
            .item(
                "first_seen",
                aws_sdk_dynamodb::types::AttributeValue::S((now - chrono::Duration::days(seen_days_ago)).to_rfc3339()),
            )
            .send()
            .await
            .unwrap_or_else(|e| fail(format!("seeding sightings: {e}")));
    }
    seed::create_volume(
        &c.ec2,
        "gp2",
        300,
        None,
        "us-east-1a",
        &[("Owner", "sre"), ("finops:exempt", "true")],
    )
    .await;
    let host = seed::run_instance(&c.ec2, "t3.micro", &[("Owner", "web")]).await;
    let data = seed::create_volume(&c.ec2, "gp3", 100, None, "us-east-1a", &[("Owner", "web")]).await;
    seed::attach(&c.ec2, &data, &host).await;
    unattached.len() + 2
}

/// Buckets: public by ACL, public by policy, private behind a VPC endpoint condition, an exempt
/// public website, and private ones; returns how many.
async fn seed_demo_buckets(moto: &Moto) -> usize {
    use aws_sdk_s3::types::{BucketCannedAcl, Tag, Tagging};
    let config = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let policy = |bucket: &str, condition: Option<serde_json::Value>| {
        let mut st = serde_json::json!({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")});
        if let Some(c) = condition {
            st["Condition"] = c;
        }
        serde_json::json!({"Version": "2012-10-17", "Statement": [st]}).to_string()
    };
    let buckets = [
        "marketing-exports",
        "ml-training-data",
        "partner-drop",
        "www-example-com",
        "billing-reports",
        "app-logs",
    ];
    for b in buckets {
        s3.create_bucket()
            .bucket(b)
            .send()
            .await
            .unwrap_or_else(|e| fail(format!("seeding buckets: {e}")));
    }
    let acl = |b: &'static str| s3.put_bucket_acl().bucket(b).acl(BucketCannedAcl::PublicRead).send();
    acl("marketing-exports").await.unwrap_or_else(|e| fail(e));
    acl("www-example-com").await.unwrap_or_else(|e| fail(e));
    s3.put_bucket_policy()
        .bucket("ml-training-data")
        .policy(policy("ml-training-data", None))
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    s3.put_bucket_policy()
        .bucket("partner-drop")
        .policy(policy(
            "partner-drop",
            Some(serde_json::json!({"StringEquals": {"aws:SourceVpce": "vpce-0abc"}})),
        ))
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    let exempt = Tagging::builder()
        .tag_set(
            Tag::builder()
                .key("finops:exempt")
                .value("true")
                .build()
                .unwrap_or_else(|e| fail(e)),
        )
        .build()
        .unwrap_or_else(|e| fail(e));
    s3.put_bucket_tagging()
        .bucket("www-example-com")
        .tagging(exempt)
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    buckets.len()
}

fn money(usd: Option<f64>) -> String {
    usd.map(|v| format!("${v:>9.2}")).unwrap_or_else(|| "   unknown".into())
}

/// (kind, why) columns of a finding: what its check says of it.
fn describe(f: &Finding) -> (String, String) {
    finops_checks::CATALOG.summary(f)
}

fn print_report(title: &str, report: &RunReport) {
    print_report_limited(title, report, usize::MAX);
}

fn print_report_limited(title: &str, report: &RunReport, limit: usize) {
    println!(
        "\n== {title}: rule {}, mode {}, {} scanned, {} finding(s)",
        report.rule,
        report.mode.as_str(),
        report.scanned,
        report.findings.len()
    );
    println!(
        "{:<30} {:<11} {:<7} {:<58} {:>10}  action",
        "resource", "type", "owner", "why", "$/month"
    );
    let outcomes: BTreeMap<&str, &remediation::model::Outcome> =
        report.outcomes.iter().map(|o| (o.finding_id.as_str(), o)).collect();
    let mut findings: Vec<&Finding> = report.findings.iter().collect();
    findings.sort_by(|a, b| {
        b.estimated_monthly_savings_usd
            .partial_cmp(&a.estimated_monthly_savings_usd)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if findings.len() > limit {
        println!("(the first {limit} of {})", findings.len());
    }
    for f in findings.into_iter().take(limit) {
        let (kind, why) = describe(f);
        let outcome = outcomes
            .get(f.id.as_str())
            .map(|o| {
                format!(
                    "{} ({})",
                    f.action.as_str(),
                    serde_json::to_value(o.outcome)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or("")
                )
            })
            .unwrap_or_default();
        println!(
            "{:<30} {:<11} {:<7} {:<58} {:>10}  {}",
            f.resource.id,
            kind,
            f.owner(),
            why,
            money(f.estimated_monthly_savings_usd),
            outcome
        );
    }
    println!(
        "{:<109} {:>10}",
        "total estimated savings",
        money(Some(report.estimated_monthly_savings_usd))
    );
    let skipped: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| !report.findings.iter().any(|f| f.id == o.finding_id))
        .collect();
    if !skipped.is_empty() {
        println!("-- passed over:");
        for o in skipped {
            let id = o.finding_id.rsplit(':').next().unwrap_or(&o.finding_id);
            println!("   {id:<30} {:?}: {}", o.outcome, o.detail);
        }
    }
    for n in &report.notes {
        println!("   note: {n}");
    }
}

fn parse_report(v: serde_json::Value) -> RunReport {
    serde_json::from_value(v).unwrap_or_else(|e| fail(format!("the response is not a run report: {e}")))
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--org") {
        return org::run().await;
    }
    let moto = Moto::start().unwrap_or_else(|e| fail(e));
    println!("moto server (local AWS) on {}", moto.endpoint());
    let seeded = seed_demo_account(&moto).await;
    println!("seeded a demo account: {seeded} instances with 14 days of CloudWatch history");
    let volumes = seed_demo_volumes(&moto).await;
    let buckets = seed_demo_buckets(&moto).await;
    println!("seeded {buckets} S3 buckets: two public, one public but exempt (a website), three private");
    println!("seeded {volumes} EBS volumes, 9 unattached, with the sightings a deployed system would have recorded");

    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = seed::topic_with_queue(&c.sns, &sqs, "finops-demo").await;
    // Each function runs as its own role in the template (the local AWS refuses what it does not grant).
    let stack = finops_tests::Stack::with(Some(TABLE), Some(&topic));
    let mut keys = std::collections::HashMap::new();
    for f in [
        "idle-ec2",
        "ebs-cleanup",
        "s3-public",
        "cost-alert",
        "tag-compliance",
        "rightsizing",
    ] {
        keys.insert(f, moto.role_key(f, &stack).await);
    }
    let base_env = |function: &str, policy: &str| {
        vec![
            ("AWS_ENDPOINT_URL".to_string(), moto.endpoint()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                keys.get(function).cloned().unwrap_or_default(),
            ),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "role-secret".to_string()),
            ("FINOPS_TABLE".to_string(), TABLE.to_string()),
            ("FINOPS_TOPIC_ARN".to_string(), topic.clone()),
            (
                "FINOPS_APPROVAL_URL".to_string(),
                "http://127.0.0.1:9000/approval".to_string(),
            ),
            (
                "FINOPS_LINK_SIGNING_KEY".to_string(),
                "demo-signing-key-demo-signing-key-0123".to_string(),
            ),
            ("FINOPS_POLICY".to_string(), policy.to_string()),
            // Keep the table readable: the function's JSON logs at warn and above only.
            ("RUST_LOG".to_string(), "warn,lambda_runtime=error".to_string()),
        ]
    };
    let event = workspace_root().join("events/idle-ec2/scheduled.json");

    println!("\nrunning idle-ec2 as its Lambda binary against a local Lambda Runtime API...");
    let dry = {
        let watch = Watch::start("idle-ec2", &base_env("idle-ec2", "mode: dry-run")).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("idle-ec2", &event).unwrap_or_else(|e| fail(e)))
    };
    print_report("idle-ec2 (default policy: dry-run, nothing changed)", &dry);
    let _ = seed::drain_queue(&sqs, &queue).await;

    let approve = {
        // Approve mode needs someone who may approve; the demo has no identity provider, so its
        // policy says explicitly that anyone with the link may (recorded as unverified).
        let policy = "{mode: approve, approvals: {slack_users: [U0DEMO], anyone_with_link: true}}";
        println!("\nidle-ec2 policy: {policy}");
        let watch = Watch::start("idle-ec2", &base_env("idle-ec2", policy)).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("idle-ec2", &event).unwrap_or_else(|e| fail(e)))
    };
    print_report("idle-ec2 (policy mode: approve, approvers listed)", &approve);
    let messages = seed::drain_queue(&sqs, &queue).await;
    println!(
        "\n== approval requests published to SNS ({}), as Slack will link them:",
        messages.len()
    );
    for m in messages.iter().take(3) {
        let body: serde_json::Value = m["Message"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        println!(
            "   {} {} {}\n     approve: {}\n     reject:  {}",
            body["finding"]["resource"]["id"].as_str().unwrap_or("?"),
            body["finding"]["action"].as_str().unwrap_or("?"),
            money(body["finding"]["estimated_monthly_savings_usd"].as_f64()),
            body["approve_url"].as_str().unwrap_or("-"),
            body["reject_url"].as_str().unwrap_or("-"),
        );
    }
    if messages.len() > 3 {
        println!("   ... and {} more", messages.len() - 3);
    }
    let pending = seed::scan_table(&c.dynamodb, TABLE)
        .await
        .into_iter()
        .filter(|i| i.get("status").map(String::as_str) == Some("pending"))
        .count();
    println!("   {pending} pending approval item(s) in DynamoDB table {TABLE}");
    let ebs_event = workspace_root().join("events/ebs-cleanup/scheduled.json");
    let ebs = {
        let watch = Watch::start("ebs-cleanup", &base_env("ebs-cleanup", "mode: dry-run")).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("ebs-cleanup", &ebs_event).unwrap_or_else(|e| fail(e)))
    };
    print_report(
        "ebs-cleanup (dry-run: snapshot-then-delete proposed, nothing changed)",
        &ebs,
    );

    let s3_event = workspace_root().join("events/s3-public/scheduled.json");
    let s3 = {
        let watch = Watch::start("s3-public", &base_env("s3-public", "mode: dry-run")).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("s3-public", &s3_event).unwrap_or_else(|e| fail(e)))
    };
    print_report(
        "s3-public (dry-run: Block Public Access proposed, nothing changed)",
        &s3,
    );

    // Cost Explorer answers from moto's documented queue of canned results.
    let today = Utc::now().date_naive();
    let month = today.format("%Y-%m-01").to_string();
    let costs = serde_json::json!({"results": [{"ResultsByTime": [{
        "TimePeriod": {"Start": month, "End": today.format("%Y-%m-%d").to_string()}, "Total": {}, "Estimated": true,
        "Groups": [
            {"Keys": ["Amazon Elastic Compute Cloud - Compute"], "Metrics": {"UnblendedCost": {"Amount": "7412.18", "Unit": "USD"}}},
            {"Keys": ["Amazon Relational Database Service"], "Metrics": {"UnblendedCost": {"Amount": "2210.40", "Unit": "USD"}}},
            {"Keys": ["Amazon Simple Storage Service"], "Metrics": {"UnblendedCost": {"Amount": "1388.02", "Unit": "USD"}}},
            {"Keys": ["AWS Lambda"], "Metrics": {"UnblendedCost": {"Amount": "96.51", "Unit": "USD"}}}]}],
        "DimensionValueAttributes": []}]});
    finops_tests::moto::http(
        moto.port,
        "POST",
        "/moto-api/static/ce/cost-and-usage-results",
        &costs.to_string(),
    )
    .unwrap_or_else(|e| fail(e));
    let cost_event = workspace_root().join("events/cost-alert/scheduled.json");
    let cost = {
        let policy = "{mode: dry-run, cost_alert: {per_service_usd: {Amazon Simple Storage Service: 1000}}}";
        let watch = Watch::start("cost-alert", &base_env("cost-alert", policy)).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("cost-alert", &cost_event).unwrap_or_else(|e| fail(e)))
    };
    print_report("cost-alert (dry-run: thresholds $10,000 total, $1,000 for S3)", &cost);

    let tag_event = workspace_root().join("events/tag-compliance/scheduled.json");
    let tags = {
        let watch =
            Watch::start("tag-compliance", &base_env("tag-compliance", "mode: dry-run")).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("tag-compliance", &tag_event).unwrap_or_else(|e| fail(e)))
    };
    let mut tags_shown = tags.clone();
    tags_shown.outcomes.clear();
    print_report_limited(
        "tag-compliance (sweep: required tags Owner, CostCenter, Environment)",
        &tags_shown,
        8,
    );

    let sizing_event = workspace_root().join("events/rightsizing/scheduled.json");
    let sizing = {
        // Bedrock has no local emulator: the rules explain here; deployed, the policy's model does
        // (and the rules stay the fallback).
        let policy = "{mode: dry-run, rightsizing: {bedrock_model_id: \"\"}}";
        let watch = Watch::start("rightsizing", &base_env("rightsizing", policy)).unwrap_or_else(|e| fail(e));
        parse_report(watch.invoke("rightsizing", &sizing_event).unwrap_or_else(|e| fail(e)))
    };
    let mut sizing_shown = sizing.clone();
    sizing_shown
        .outcomes
        .retain(|o| o.outcome != remediation::model::OutcomeKind::Skipped);
    print_report_limited(
        "rightsizing (recommendations only; rules explain locally, Amazon Bedrock when deployed)",
        &sizing_shown,
        8,
    );
    let first = sizing
        .findings
        .first()
        .and_then(|f| f.evidence.get::<RightsizingEvidence>());
    if let Some(e) = first {
        println!("   why ({}): {}", e.rationale_source, e.rationale);
    }

    let total = dry.estimated_monthly_savings_usd + ebs.estimated_monthly_savings_usd;
    println!("\n== total estimated savings found: ${total:.2}/month (idle EC2 + unattached EBS)");
    println!(
        "   rightsizing would save a further ${:.2}/month; the cost alert and public buckets are risks, not savings",
        sizing.estimated_monthly_savings_usd
    );

    human_in_the_loop().await;
    println!("\n== the operator's day: the demo account, every rule's last run and the approvals still open");
    finops(&moto.endpoint(), TABLE, &["status"]);
    finops(&moto.endpoint(), TABLE, &["approvals", "--status", "pending"]);
    println!("\ndone: moto, the Slack stand-in and the approval server have been stopped.");
}

/// Prints a rendered Slack message readably: its text, then each block's words and buttons.
fn print_slack(post: &serde_json::Value) {
    println!("  ┌ slack: {}", post["text"].as_str().unwrap_or_default());
    for block in post["blocks"].as_array().into_iter().flatten() {
        let mut lines: Vec<String> = Vec::new();
        if let Some(t) = block.pointer("/text/text").and_then(|t| t.as_str()) {
            lines.extend(t.lines().map(str::to_string));
        }
        for f in block["fields"].as_array().into_iter().flatten() {
            if let Some(t) = f["text"].as_str() {
                lines.push(t.replace('\n', ": "));
            }
        }
        for el in block["elements"].as_array().into_iter().flatten() {
            match (el.pointer("/text/text").and_then(|t| t.as_str()), el["url"].as_str()) {
                (Some(t), Some(u)) => lines.push(format!("[{t}] {u}")),
                (Some(t), None) => lines.push(format!("[{t}]")),
                _ => {
                    if let Some(t) = el["text"].as_str() {
                        lines.push(t.to_string())
                    }
                }
            }
        }
        if let Some(label) = block.pointer("/label/text").and_then(|t| t.as_str()) {
            lines.push(format!("{label}: [________________]"));
        }
        for l in lines {
            println!("  │ {l}");
        }
    }
    println!("  └");
}

fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\nHTTP %{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| fail(format!("curl: {e}")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn page_summary(html: &str) -> String {
    let title = html
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or("?");
    let status = html.lines().last().unwrap_or_default();
    format!("{status}, page \"{title}\"")
}

/// Approve mode → Slack message → link followed with curl → instance stopped → result → audit.
async fn human_in_the_loop() {
    use finops_tests::approvals::{button_urls, token_of, Loop};
    use remediation::state::ApprovalStore;
    println!("\n== human in the loop: idle-ec2 in approve mode, Slack, an approval link, the audit trail");
    // No identity provider in the demo: the policy says explicitly that anyone with the link may
    // decide (recorded as unverified, never one of a two-person rule's approvers).
    let policy = Policy {
        mode: Mode::Approve,
        approvals: remediation::policy::ApprovalsPolicy {
            anyone_with_link: true,
            slack_users: vec!["U0DEMO".into()],
            ..Default::default()
        },
        ..Policy::default()
    };
    println!(
        "demo policy: approvals.anyone_with_link: true, approvals.slack_users: [U0DEMO] \
         (typed addresses are recorded as unverified; a deployment lists its approvers or connects approvals.oidc)"
    );
    let mut lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "m5.xlarge", &[("Owner", "ana"), ("Name", "forgotten-etl")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let deps = lp.detector_deps("idle-ec2", policy).await;
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../../events/idle-ec2/scheduled.json")).unwrap_or_else(|e| fail(e));
    let report = idle_ec2::handler::handle(event, &deps, Utc::now())
        .await
        .unwrap_or_else(|e| fail(e));
    print_report("idle-ec2 (approve mode)", &report);
    let first_messages = lp.drain().await;
    let published = first_messages.clone();
    for r in lp.notify_slack(&published).await {
        r.unwrap_or_else(|e| fail(e));
    }
    println!(
        "\nslack-notify posted to the local Slack stand-in ({} message):",
        lp.slack.requests().len()
    );
    let post = lp.slack.requests()[0].json();
    print_slack(&post);
    let approve = button_urls(&post)
        .into_iter()
        .find(|(t, _)| t == "Approve")
        .map(|(_, u)| u)
        .unwrap_or_else(|| fail("no Approve button"));
    println!(
        "\n$ curl '{}…'   (GET: a confirmation page, nothing changes)",
        &approve[..approve.len().min(60)]
    );
    println!(
        "  {}; instance {id} is {}",
        page_summary(&curl(&[&approve])),
        seed::state_of(&c.ec2, &id).await
    );
    let form = format!("token={}&approver=ana%40example.com", token_of(&approve));
    println!(
        "$ curl -X POST {}/decide -d 'token=…&approver=ana@example.com'",
        lp.approval_server.url()
    );
    let posted = curl(&[
        "-X",
        "POST",
        &format!("{}/decide", lp.approval_server.url()),
        "-d",
        &form,
    ]);
    println!(
        "  {}; instance {id} is {}",
        page_summary(&posted),
        seed::state_of(&c.ec2, &id).await
    );
    println!("$ curl -X POST … (the same link again)");
    let again = curl(&[
        "-X",
        "POST",
        &format!("{}/decide", lp.approval_server.url()),
        "-d",
        &form,
    ]);
    println!("  {}", page_summary(&again));

    let published = lp.drain().await;
    for r in lp.notify_slack(&published).await {
        r.unwrap_or_else(|e| fail(e));
    }
    println!("\nthe action result in Slack:");
    if let Some(last) = lp.slack.requests().last() {
        print_slack(&last.json());
    }
    let finding_id = report.findings.first().map(|f| f.id.clone()).unwrap_or_default();
    println!("\naudit trail of {finding_id}:");
    for e in lp.state().audit_trail(&finding_id).await.unwrap_or_else(|e| fail(e)) {
        let at = chrono::DateTime::parse_from_rfc3339(&e.at)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string()
            })
            .unwrap_or_else(|_| e.at.clone());
        println!("  {at}  {:<20} {}", e.event, e.detail);
    }
    jira(&lp, &first_messages, &published).await;
    let snoozed = snooze(&mut lp).await;
    past_weeks(&lp).await;
    savings_report(&lp, &deps).await;
    operator(&lp, &id, &snoozed);
}

/// A Snooze pressed in Slack: the next run sets the instance aside, saying whose snooze it is.
async fn snooze(lp: &mut finops_tests::approvals::Loop) -> String {
    use finops_tests::approvals::snooze_buttons;
    println!("\n== snooze from Slack: an owner needs an instance left alone for a month");
    lp.notify.options.interactive = true;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "c5.2xlarge", &[("Owner", "raj"), ("Name", "quarter-end-batch")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let dry = finops_tests::approvals::slack_policy(Mode::DryRun, "U0DEMO");
    let deps = lp.detector_deps("idle-ec2", dry).await;
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../../events/idle-ec2/scheduled.json")).unwrap_or_else(|e| fail(e));
    idle_ec2::handler::handle(event.clone(), &deps, Utc::now())
        .await
        .unwrap_or_else(|e| fail(e));
    let before = lp.slack.requests().len();
    for r in lp.notify_slack(&lp.drain().await).await {
        r.unwrap_or_else(|e| fail(e));
    }
    let post = lp
        .slack
        .requests()
        .iter()
        .skip(before)
        .map(|r| r.json())
        .find(|p| p.to_string().contains(&id))
        .unwrap_or_else(|| fail("no Slack message about the batch instance"));
    print_slack(&post);
    let token = snooze_buttons(&post)
        .into_iter()
        .find(|(a, _)| a == "finops_snooze_30")
        .map(|(_, t)| t)
        .unwrap_or_else(|| fail("no Snooze 30 days button"));
    println!("U0DEMO types \"quarter-end batch\" and presses [Snooze 30 days] (a signed Slack request):");
    let (status, reply) = lp
        .slack_click(
            "finops_snooze_30",
            &token,
            "U0DEMO",
            Some("quarter-end batch"),
            Utc::now(),
        )
        .await;
    let text = serde_json::from_str::<serde_json::Value>(&reply)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or(reply);
    println!("  HTTP {status}: {text}");
    let next = idle_ec2::handler::handle(event, &deps, Utc::now())
        .await
        .unwrap_or_else(|e| fail(e));
    if let Some(o) = next.outcomes.iter().find(|o| o.finding_id.ends_with(&id)) {
        println!("the next idle-ec2 run: {id} {:?}: {}", o.outcome, o.detail);
    }
    let _ = lp.drain().await;
    id
}

/// Three earlier weeks of history, made the way a deployment makes it: idle-ec2 in auto mode at
/// each week's time, stopping that week's idle instances (the ledger realises them then).
async fn past_weeks(lp: &finops_tests::approvals::Loop) {
    println!("\n== three earlier weeks: idle-ec2 in auto mode at each week's time (the ledger's history)");
    let c = lp.moto.clients().await;
    // A small account: the blast radius is a share of what is scanned, so the demo allows all.
    let auto = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    println!("   policy: {{mode: auto, max_actions_percent: 100}}");
    let deps = lp.detector_deps("idle-ec2", auto).await;
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../../events/idle-ec2/scheduled.json")).unwrap_or_else(|e| fail(e));
    for (weeks_ago, types) in [
        (3, &["m5.large", "r5.large"][..]),
        (2, &["m5.2xlarge"][..]),
        (1, &["t3.xlarge", "c5.xlarge", "m5.large"][..]),
    ] {
        let at = Utc::now() - chrono::Duration::weeks(weeks_ago);
        for t in types {
            let id = seed::run_instance(&c.ec2, t, &[("Owner", "team-data")]).await;
            seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, at, 14).await;
        }
        let r = idle_ec2::handler::handle(event.clone(), &deps, at)
            .await
            .unwrap_or_else(|e| fail(e));
        let stopped = r
            .outcomes
            .iter()
            .filter(|o| o.outcome == remediation::model::OutcomeKind::Executed)
            .count();
        println!(
            "   {}: {stopped} stopped automatically, ${:.2}/month",
            at.format("%Y-%m-%d"),
            r.findings
                .iter()
                .filter(|f| r
                    .outcomes
                    .iter()
                    .any(|o| o.finding_id == f.id && o.outcome == remediation::model::OutcomeKind::Executed))
                .filter_map(|f| f.estimated_monthly_savings_usd)
                .sum::<f64>()
        );
    }
    let _ = lp.drain().await;
}

/// `finops <args>` from the real binary against `endpoint` and `table`, printed as an operator
/// sees it.
fn finops(endpoint: &str, table: &str, args: &[&str]) {
    println!("\n$ finops {}", args.join(" "));
    let out = std::process::Command::new(finops_tests::local::debug_dir().join("finops"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("FINOPS_TABLE", table)
        .output()
        .unwrap_or_else(|e| fail(format!("finops did not run ({e}): make debug-build")));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        fail(String::from_utf8_lossy(&out.stderr));
    }
}

/// `finops doctor` on the loop's deployment (its secret, the Slack stand-in behind the webhook;
/// Bedrock has no local emulator, so the rules explain): what a newcomer runs after deploying.
fn doctor(endpoint: &str) {
    println!("\n$ finops doctor --secret {}", finops_tests::approvals::SECRET_ID);
    let out = std::process::Command::new(finops_tests::local::debug_dir().join("finops"))
        .args(["doctor", "--secret", finops_tests::approvals::SECRET_ID])
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("FINOPS_POLICY", "{rightsizing: {bedrock_model_id: \"\"}}")
        .output()
        .unwrap_or_else(|e| fail(format!("finops did not run ({e}): make debug-build")));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        fail(format!(
            "finops doctor found a fault in the demo's deployment: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

/// What the operator sees of the loop: its snoozes, and the trails of the approved and the
/// snoozed instance.
fn operator(lp: &finops_tests::approvals::Loop, approved: &str, snoozed: &str) {
    println!("\n== the operator's day: the finops command line (the loop's table)");
    let endpoint = lp.moto.endpoint();
    doctor(&endpoint);
    finops(&endpoint, finops_tests::approvals::TABLE, &["snoozes"]);
    finops(&endpoint, finops_tests::approvals::TABLE, &["audit", approved]);
    finops(&endpoint, finops_tests::approvals::TABLE, &["audit", snoozed]);
}

/// jira-sync on the same messages, against a local Jira Cloud stand-in.
async fn jira(lp: &finops_tests::approvals::Loop, opened: &[serde_json::Value], acted: &[serde_json::Value]) {
    use finops_tests::approvals::Loop;
    use finops_tests::httpserver::JiraStandIn;
    println!("\n== jira-sync: the same SNS messages, to a local Jira Cloud stand-in (REST v3)");
    let (jira, server) = JiraStandIn::start("FIN", "finops-bot@example.com", "demo-token").await;
    let mut policy = Policy::default();
    policy.jira.site_url = server.url();
    policy.jira.project_key = "FIN".into();
    let mut deps = lp.detector_deps("jira-sync", policy).await;
    deps.secrets = remediation::secrets::Secrets::parse(
        "demo",
        r#"{"jira_email": "finops-bot@example.com", "jira_api_token": "demo-token"}"#,
    )
    .unwrap_or_else(|e| fail(e));
    let app = jira_sync::handler::App::new(deps).unwrap_or_else(|e| fail(e));
    for m in opened.iter().chain(opened).chain(acted) {
        jira_sync::handler::handle(Loop::sns_event(m), &app, Utc::now())
            .await
            .unwrap_or_else(|e| fail(e));
    }
    for issue in jira.issues() {
        println!(
            "   {} [{}] {} · labels {} · priority {}",
            issue.key,
            issue.status,
            issue.fields["summary"].as_str().unwrap_or_default(),
            issue.fields["labels"],
            issue.fields["priority"]["name"].as_str().unwrap_or("-")
        );
        println!(
            "     {} comment(s); the approval request was delivered twice, one issue was opened",
            issue.comments.len()
        );
    }
    let calls: Vec<String> = jira
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    println!("   Jira calls: {}", calls.join(", "));
}

/// savings-report from the ledger the loop wrote, written to target/demo/.
async fn savings_report(lp: &finops_tests::approvals::Loop, deps: &remediation::config::Deps) {
    println!("\n== savings-report: the ledger of this loop, as the weekly report sees it");
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
        .join("demo");
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../../../events/savings-report/scheduled.json"))
            .unwrap_or_else(|e| fail(e));
    let out = savings_report::handler::handle(event, deps, Some(dir), Utc::now())
        .await
        .unwrap_or_else(|e| fail(e));
    println!(
        "   estimated ${}/month, realised ${}/month ({}%), {} open finding(s)",
        out["estimated_monthly_usd"], out["realised_monthly_usd"], out["realisation_percent"], out["open_findings"]
    );
    let published = lp.drain().await;
    for r in lp.notify_slack(&published).await {
        r.unwrap_or_else(|e| fail(e));
    }
    if let Some(last) = lp.slack.requests().last() {
        print_slack(&last.json());
    }
    println!(
        "   the HTML report (inline SVG charts, no scripts): {}",
        out["report"].as_str().unwrap_or("?")
    );
}
