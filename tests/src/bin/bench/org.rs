//! The organisation scan: the hub and five member accounts × two regions (12 account-regions) of
//! 500 instances each in one moto, the targets step's items run as the Map runs them (at most 4
//! at once), each item in a child process of its own, so its calls, time and peak memory are its
//! own. Also the highest EC2 request rate any item put on its account-region (EC2's documented
//! non-mutating refill rate is 20 requests per second).

use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use finops_tests::org::clients_in;
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::config::Deps;
use remediation::policy::{OrganizationPolicy, Policy};
use serde_json::Value;

use crate::{child_report, fail};

const MEMBERS: usize = 5;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const PER_ITEM: usize = 500;
const CONCURRENCY: usize = 4;
// The results bucket the template's org-fanout role is resolved with in the harness (`Stack`).
const RESULTS: &str = "finops-fanout-results";
/// EC2's documented refill rate for non-mutating actions (requests per second, per account and region).
const EC2_REFILL_PER_SECOND: usize = 20;

fn policy() -> Policy {
    Policy {
        organization: Some(OrganizationPolicy {
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            max_concurrency: CONCURRENCY as u32,
            ..OrganizationPolicy::default()
        }),
        ..Policy::default()
    }
}

/// The child: one item of an idle-ec2 fan-out, through the function's handler, printed as JSON
/// with its EC2 request rate.
pub async fn item(endpoint: &str, item: &str) {
    let base = crate::clients_for(endpoint).await;
    let clients =
        remediation::aws::Clients::from_config_counting(&base.config, remediation::aws::CallCounter::recording())
            .unwrap_or_else(|e| fail(e));
    let deps = Deps {
        state: None,
        publisher: None,
        links: None,
        report_links: None,
        metrics_concurrency: 4,
        config_test_mode: false,
        clients,
        policy: policy(),
        policy_source: "bench".into(),
        pricing: None,
        secrets: Default::default(),
    };
    let event: Value = serde_json::from_str(item).unwrap_or_else(|e| fail(e));
    let started = Instant::now();
    let report = idle_ec2::handler::handle(event, &deps, Utc::now())
        .await
        .unwrap_or_else(|e| fail(e));
    let wall_ms = started.elapsed().as_millis();
    // The most EC2 calls that started within any one second.
    let ec2: Vec<Instant> = deps
        .clients
        .calls
        .timeline()
        .into_iter()
        .filter(|(op, _)| op.starts_with("EC2."))
        .map(|(_, t)| t)
        .collect();
    let peak = ec2
        .iter()
        .map(|start| {
            ec2.iter()
                .filter(|t| **t >= *start && t.duration_since(*start).as_secs_f64() < 1.0)
                .count()
        })
        .max()
        .unwrap_or(0);
    let mut out = child_report(&report, &deps.clients, wall_ms);
    out["ec2_peak_per_second"] = peak.into();
    println!("{out}");
}

pub async fn run(moto_command: &[String], me: &std::path::Path) {
    println!(
        "\norganisation scan: idle-ec2 over the hub + {MEMBERS} members × {} regions = {} account-regions × {PER_ITEM} instances, {CONCURRENCY} items at once; each item a process of its own",
        REGIONS.len(),
        (MEMBERS + 1) * REGIONS.len()
    );
    let moto = Moto::start_command(moto_command.to_vec()).unwrap_or_else(|e| fail(e));
    let hub = moto.clients().await;
    let seeded = Instant::now();
    let members = finops_tests::org::organisation(&hub, MEMBERS).await;
    let own = hub.identity().await.unwrap_or_else(|e| fail(e)).account;
    let now = Utc::now();
    for account in std::iter::once(&own).chain(members.iter()) {
        for region in REGIONS {
            let c = clients_in(&hub, account, region).await;
            let ids = seed::run_instances(&c.ec2, "t3.large", PER_ITEM as i32, &[("Owner", "bench")], false).await;
            let mut datums = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let usage = if i % 10 == 0 { Usage::IDLE } else { Usage::BUSY };
                datums.extend(seed::daily_datums(id, usage, now, 14, &[]));
            }
            seed::put_datums(&c.cloudwatch, datums).await;
        }
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(RESULTS)
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    println!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());

    // The targets step, as the state machine runs it.
    let app = org_fanout::handler::App::with_bucket(
        finops_tests::deps(&moto, "org-fanout", policy(), None, None).await,
        RESULTS.into(),
    )
    .unwrap_or_else(|e| fail(e));
    let targets = org_fanout::handler::handle(
        serde_json::json!({"source": "finops.targets", "rule": "idle-ec2", "run_id": "bench-1"}),
        &app,
        now,
    )
    .await
    .unwrap_or_else(|e| fail(e));
    let key = targets["key"].as_str().unwrap_or_else(|| fail("no items key"));
    let body = s3
        .get_object()
        .bucket(RESULTS)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    let bytes = body.body.collect().await.unwrap_or_else(|e| fail(e)).into_bytes();
    let items: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_else(|e| fail(e));

    // The Map: at most CONCURRENCY children at once.
    let started = Instant::now();
    let endpoint = moto.endpoint();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for item in items {
        let gate = gate.clone();
        let me = me.to_path_buf();
        let endpoint = endpoint.clone();
        let label = format!(
            "{} {}",
            item["account"].as_str().unwrap_or("?"),
            item["region"].as_str().unwrap_or("?")
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap_or_else(|e| fail(e));
            let out = tokio::task::spawn_blocking(move || {
                Command::new(me)
                    .args(["org-item", &endpoint, &item.to_string()])
                    .output()
            })
            .await
            .unwrap_or_else(|e| fail(e))
            .unwrap_or_else(|e| fail(e));
            if !out.status.success() {
                fail(format!("an item failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(e));
            (label, report)
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(t.await.unwrap_or_else(|e| fail(e)));
    }
    let wall = started.elapsed().as_secs_f64();
    // Per item: 1 DescribeInstances page, 1 DescribeInstanceTypes, the CPU of every instance
    // (500 queries a call), then the network of the one in ten whose CPU is idle, and one STS call
    // (AssumeRole for a member, GetCallerIdentity for the hub's own account).
    let floor = PER_ITEM.div_ceil(1000) + 1 + PER_ITEM.div_ceil(500) + (2 * PER_ITEM.div_ceil(10)).div_ceil(500) + 1;
    println!(
        "{:>28} {:>6} {:>6} {:>6} {:>8} {:>7} {:>9} {:>9}  calls by operation",
        "item", "found", "calls", "floor", "wall s", "cpu s", "peak MiB", "EC2 /s"
    );
    let mut peak_rate = 0;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (label, r) in &rows {
        let calls: u64 = r["calls"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let rate = r["ec2_peak_per_second"].as_u64().unwrap_or(0) as usize;
        peak_rate = peak_rate.max(rate);
        println!(
            "{:>28} {:>6} {:>6} {:>6} {:>8.1} {:>7.2} {:>9.1} {:>9}  {}",
            label,
            r["findings"].as_u64().unwrap_or(0),
            calls,
            floor,
            r["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            r["cpu_s"].as_f64().unwrap_or(0.0),
            r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            rate,
            r["calls"]
        );
    }
    let found: u64 = rows.iter().filter_map(|(_, r)| r["findings"].as_u64()).sum();
    println!(
        "{} items, {found} findings (10% of {} instances seeded idle), {wall:.1} s in all; highest EC2 rate on one account-region {peak_rate}/s (EC2's non-mutating refill: {EC2_REFILL_PER_SECOND}/s){}",
        rows.len(),
        rows.len() * PER_ITEM,
        if peak_rate < EC2_REFILL_PER_SECOND { "" } else { "  OVER" }
    );
}
