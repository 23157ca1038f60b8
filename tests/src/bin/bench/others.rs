//! The other detectors' scans, each on its own seeded moto, each beside its floor:
//!
//! - ebs-cleanup, V unattached volumes: ceil(V/1000) DescribeVolumes + 1 Query of the sightings +
//!   one conditional PutItem per volume seen for the first time (BatchWriteItem takes no
//!   conditions), so the first run pays V writes and a rerun none.
//! - s3-public, B buckets of which P public: 1 ListBuckets + 1 account GetPublicAccessBlock + 3 per
//!   bucket (ACL, policy, block: S3 has no batch read of bucket configuration) + 2 per public bucket
//!   (tags and website hosting, read only where they decide something). A bucket with a policy
//!   adds GetBucketPolicyStatus (AWS's own evaluation), and where a policy delegates to access
//!   points the region's ListAccessPoints (once) and up to 3 reads per internet access point; the
//!   bench's buckets are public through their ACL, with no policy.
//! - cost-alert: GetCostAndUsage for the month to date, GetCostForecast, and GetCostAndUsage for
//!   last month when the policy compares with it: 3 ($0.01 each on AWS).
//! - tag-compliance sweep, I instances, V volumes, B buckets: ceil(I/1000) DescribeInstances +
//!   ceil(V/1000) DescribeVolumes + 1 ListBuckets + B GetBucketTagging.
//! - rightsizing, I instances with 14 days of hourly CPU: ceil(I/1000) DescribeInstances +
//!   ceil(4I/500) GetMetricData (hourly CPU and memory maxima, daily network in and out, packed
//!   500 queries to a call). No model is asked here (the rules explain).
//!
//! moto answers DescribeInstances and DescribeVolumes in one page whatever their size, so those
//! counts can sit below the floor (AWS would page at 1,000).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::types::{BucketCannedAcl, Tag, Tagging};
use chrono::Utc;
use finops_tests::{seed, Moto};
use futures::stream::{self, StreamExt};
use remediation::config::Deps;
use remediation::policy::Policy;
use remediation::state::DynamoState;

use crate::{child_report, clients_for, fail};

pub(crate) const TABLE: &str = "finops-bench";
const VOLUMES: usize = 2000;
const BUCKETS: usize = 200;
const SERVICES: usize = 40;
const TAG_INSTANCES: usize = 1000;
const TAG_VOLUMES: usize = 1000;
const TAG_BUCKETS: usize = 100;
const SIZED_INSTANCES: usize = 500;

fn scheduled(rule: &str) -> serde_json::Value {
    let text = match rule {
        "ebs-cleanup" => include_str!("../../../../events/ebs-cleanup/scheduled.json"),
        "s3-public" => include_str!("../../../../events/s3-public/scheduled.json"),
        "cost-alert" => include_str!("../../../../events/cost-alert/scheduled.json"),
        "tag-compliance" => include_str!("../../../../events/tag-compliance/scheduled.json"),
        "rightsizing" => include_str!("../../../../events/rightsizing/scheduled.json"),
        other => fail(format!("no bench scan for {other}")),
    };
    serde_json::from_str(text).unwrap_or_else(|e| fail(e))
}

fn policy(rule: &str) -> Policy {
    let mut policy = Policy::default();
    match rule {
        "ebs-cleanup" => policy.ebs_cleanup.grace_days = 0,
        "cost-alert" => policy.cost_alert.over_last_month_percent = Some(20.0),
        "rightsizing" => policy.rightsizing.bedrock_model_id = String::new(),
        _ => {}
    }
    policy
}

/// The child: one dry-run scan of `rule` through its Lambda handler, printed as JSON.
pub async fn scan(rule: &str, endpoint: &str) {
    let clients = clients_for(endpoint).await;
    let deps = Deps {
        state: (rule == "ebs-cleanup").then(|| DynamoState::new(clients.dynamodb.clone(), TABLE)),
        publisher: None,
        links: None,
        report_links: None,
        metrics_concurrency: 4,
        config_test_mode: false,
        clients,
        policy: policy(rule),
        policy_source: "bench".into(),
        pricing: None,
        secrets: Default::default(),
    };
    let event = scheduled(rule);
    let now = Utc::now();
    let started = Instant::now();
    let report = match rule {
        "ebs-cleanup" => ebs_cleanup::handler::handle(event, &deps, now).await,
        "s3-public" => s3_public::handler::handle(event, &deps, now).await,
        "cost-alert" => cost_alert::handler::handle(event, &deps, now).await,
        "tag-compliance" => tag_compliance::handler::handle(event, &deps, now).await,
        "rightsizing" => rightsizing::handler::handle(event, &deps, None, now).await,
        other => fail(format!("no bench scan for {other}")),
    }
    .unwrap_or_else(|e| fail(e));
    let wall_ms = started.elapsed().as_millis();
    println!("{}", child_report(&report, &deps.clients, wall_ms));
}

pub(crate) async fn seed_volumes(ec2: &aws_sdk_ec2::Client, n: usize, tags: &'static [(&'static str, &'static str)]) {
    stream::iter(0..n)
        .for_each_concurrent(16, |_| async move {
            seed::create_volume(ec2, "gp3", 100, None, "us-east-1a", tags).await;
        })
        .await;
}

pub(crate) async fn seed_buckets(s3: &aws_sdk_s3::Client, n: usize, public_every: usize) {
    stream::iter(0..n)
        .for_each_concurrent(16, |i| async move {
            let name = format!("bench-bucket-{i:04}");
            s3.create_bucket()
                .bucket(&name)
                .send()
                .await
                .unwrap_or_else(|e| fail(e));
            if public_every > 0 && i % public_every == 0 {
                s3.put_bucket_acl()
                    .bucket(&name)
                    .acl(BucketCannedAcl::PublicRead)
                    .send()
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
            if i % 2 == 0 {
                let owner = Tag::builder()
                    .key("Owner")
                    .value("bench")
                    .build()
                    .unwrap_or_else(|e| fail(e));
                let tagging = Tagging::builder().tag_set(owner).build().unwrap_or_else(|e| fail(e));
                s3.put_bucket_tagging()
                    .bucket(&name)
                    .tagging(tagging)
                    .send()
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
        })
        .await;
}

/// Queues one month-to-date answer of `services` services at `usd_each` each.
fn queue_costs(moto: &Moto, services: usize, usd_each: f64) {
    let groups: Vec<(String, f64)> = (0..services).map(|i| (format!("Service {i:02}"), usd_each)).collect();
    seed::queue_costs(moto, "2026-11-01", "2026-11-26", &groups);
}

struct Scenario {
    rule: &'static str,
    label: String,
    floor: usize,
}

fn measure(me: &Path, moto: &Moto, s: &Scenario, seed_s: f64) {
    let out = Command::new(me)
        .args(["scan-rule", s.rule, &moto.endpoint()])
        .output()
        .unwrap_or_else(|e| fail(e));
    if !out.status.success() {
        fail(format!(
            "{} scan failed: {}",
            s.rule,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(e));
    let calls: u64 = r["calls"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    println!(
        "{:<34} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9.4} {:>8.1} {:>7.2} {:>9.1} {:>7.1}  {}",
        s.label,
        r["scanned"],
        r["findings"],
        r["failed"],
        calls,
        s.floor,
        r["usd"].as_f64().unwrap_or(0.0),
        r["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["cpu_s"].as_f64().unwrap_or(0.0),
        r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        seed_s,
        r["calls"]
    );
}

/// Seeds and measures each scan.
pub async fn run(moto_command: &[String], me: &Path) {
    println!();
    println!("other detectors, dry-run, one scan each through the Lambda handler; same moto");
    println!(
        "{:<34} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9} {:>8} {:>7} {:>9} {:>7}  calls by operation",
        "scan", "scanned", "found", "failed", "calls", "floor", "$/scan", "wall s", "cpu s", "peak MiB", "seed s"
    );
    let start = || Moto::start_command(moto_command.to_vec()).unwrap_or_else(|e| fail(e));

    // ebs-cleanup: first run records every sighting, the rerun only reads them.
    let moto = start();
    let seeded = Instant::now();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    seed_volumes(&c.ec2, VOLUMES, &[("Owner", "bench")]).await;
    let seed_s = seeded.elapsed().as_secs_f64();
    let first = VOLUMES.div_ceil(1000) + 1 + VOLUMES;
    let s = Scenario {
        rule: "ebs-cleanup",
        label: format!("ebs-cleanup V={VOLUMES}, first sightings"),
        floor: first,
    };
    measure(me, &moto, &s, seed_s);
    let s = Scenario {
        rule: "ebs-cleanup",
        label: format!("ebs-cleanup V={VOLUMES}, rerun"),
        floor: VOLUMES.div_ceil(1000) + 1,
    };
    measure(me, &moto, &s, 0.0);
    drop(moto);

    // s3-public: every 10th bucket public through its ACL.
    let public = BUCKETS.div_ceil(10);
    let moto = start();
    let seeded = Instant::now();
    seed_buckets(&aws_sdk_s3::Client::new(&moto.sdk_config().await), BUCKETS, 10).await;
    let seed_s = seeded.elapsed().as_secs_f64();
    let s = Scenario {
        rule: "s3-public",
        label: format!("s3-public B={BUCKETS} P={public}"),
        floor: 2 + 3 * BUCKETS + 2 * public,
    };
    measure(me, &moto, &s, seed_s);
    drop(moto);

    // cost-alert: 40 services at $300 each month to date (over $10,000), last month's answer next.
    let moto = start();
    queue_costs(&moto, SERVICES, 300.0);
    queue_costs(&moto, SERVICES, 200.0);
    let s = Scenario {
        rule: "cost-alert",
        label: format!("cost-alert, {SERVICES} services"),
        floor: 3,
    };
    measure(me, &moto, &s, 0.0);
    drop(moto);

    // tag-compliance sweep: half the instances carry every required key; the seeded volumes, the
    // instances' root volumes (moto makes one per instance) and the buckets miss some.
    let moto = start();
    let seeded = Instant::now();
    let c = moto.clients().await;
    let mut launched = 0;
    while launched < TAG_INSTANCES {
        let batch = (TAG_INSTANCES - launched).min(500);
        let tags: &[(&str, &str)] = if launched % 1000 == 0 {
            &[("Owner", "bench"), ("CostCenter", "cc-1"), ("Environment", "dev")]
        } else {
            &[("Owner", "bench")]
        };
        seed::run_instances(&c.ec2, "t3.small", batch as i32, tags, false).await;
        launched += batch;
    }
    seed_volumes(&c.ec2, TAG_VOLUMES, &[("Owner", "bench")]).await;
    seed_buckets(&aws_sdk_s3::Client::new(&moto.sdk_config().await), TAG_BUCKETS, 0).await;
    let seed_s = seeded.elapsed().as_secs_f64();
    let s = Scenario {
        rule: "tag-compliance",
        label: format!(
            "tag-compliance I={TAG_INSTANCES} V={} B={TAG_BUCKETS}",
            TAG_VOLUMES + TAG_INSTANCES
        ),
        floor: TAG_INSTANCES.div_ceil(1000) + (TAG_VOLUMES + TAG_INSTANCES).div_ceil(1000) + 1 + TAG_BUCKETS,
    };
    measure(me, &moto, &s, seed_s);
    drop(moto);

    // rightsizing: instances at 20% CPU (35% one hour a day), 14 days of hourly datapoints each.
    let moto = start();
    let seeded = Instant::now();
    let c = moto.clients().await;
    let mut ids = Vec::new();
    while ids.len() < SIZED_INSTANCES {
        let batch = (SIZED_INSTANCES - ids.len()).min(500);
        ids.extend(seed::run_instances(&c.ec2, "m5.2xlarge", batch as i32, &[("Owner", "bench")], false).await);
    }
    let now = Utc::now();
    let cw = &c.cloudwatch;
    stream::iter(ids.iter())
        .for_each_concurrent(8, |id| async move {
            seed::put_hourly(cw, "AWS/EC2", "CPUUtilization", id, now, 14, |h| {
                if h % 24 == 14 {
                    35.0
                } else {
                    20.0
                }
            })
            .await;
        })
        .await;
    let seed_s = seeded.elapsed().as_secs_f64();
    let s = Scenario {
        rule: "rightsizing",
        label: format!("rightsizing I={SIZED_INSTANCES}, hourly peaks"),
        floor: SIZED_INSTANCES.div_ceil(1000) + (4 * SIZED_INSTANCES).div_ceil(500),
    };
    measure(me, &moto, &s, seed_s);
}
