//! The fault table: each scan on a seeded moto, once fault-free and once with a seeded 20 % of
//! its services' requests answered as AWS answers when overloaded (the fault layer of
//! `tests/moto_server.py`). Per scan: faults injected, the SDK's retries, and whether the faulty
//! run flagged what the fault-free run flagged (each resource flagged or reported failed), how
//! many it reported failed, and how many findings the fault-free run does not have (must be 0).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use finops_tests::{seed, Moto};

use crate::fail;
use crate::others::{seed_buckets, seed_volumes, TABLE};

struct Run {
    flagged: BTreeSet<String>,
    failed: BTreeSet<String>,
    calls: u64,
    attempts: u64,
}

fn child(me: &Path, args: &[&str]) -> Run {
    let out = Command::new(me).args(args).output().unwrap_or_else(|e| fail(e));
    if !out.status.success() {
        fail(format!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(e));
    let set = |k: &str| -> BTreeSet<String> {
        r[k].as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    Run {
        flagged: set("flagged"),
        failed: set("failed_ids"),
        calls: r["calls"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0),
        attempts: r["attempts"].as_u64().unwrap_or(0),
    }
}

async fn compare(me: &Path, moto: &Moto, label: &str, args: &[&str], faults: &[(&str, &str, &str)]) {
    let clean = child(me, args);
    for (i, (service, operation, fault)) in faults.iter().enumerate() {
        moto.inject_fault(service, operation, 0.2, 17 + i as u64, fault).await;
    }
    let faulty = child(me, args);
    let injected: u64 = moto
        .faults()
        .await
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r["injected"].as_u64()).sum())
        .unwrap_or(0);
    moto.clear_faults().await;
    let missing = clean
        .flagged
        .difference(&faulty.flagged)
        .filter(|id| !faulty.failed.contains(*id))
        .count();
    let false_findings = faulty.flagged.difference(&clean.flagged).count();
    println!(
        "{:<34} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>6}",
        label,
        injected,
        faulty.attempts.saturating_sub(faulty.calls),
        clean.flagged.len(),
        faulty.flagged.len(),
        if missing == 0 { "yes" } else { "NO" },
        faulty.failed.len(),
        false_findings,
    );
    if missing > 0 || false_findings > 0 {
        fail(format!(
            "{label}: {missing} silently missing, {false_findings} false findings"
        ));
    }
}

/// Seeds and compares each scan.
pub async fn run(moto_command: &[String], me: &Path) {
    println!();
    println!("under faults: each scan fault-free, then at 20% injected faults (seeded); same moto");
    println!(
        "{:<34} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>6}",
        "scan", "injected", "retries", "found", "faulty", "covered", "failed", "false"
    );
    let start = || Moto::start_command(moto_command.to_vec()).unwrap_or_else(|e| fail(e));

    let moto = start();
    crate::seed(&moto, 500).await;
    let endpoint = moto.endpoint();
    compare(
        me,
        &moto,
        "idle-ec2 N=500",
        &["scan", &endpoint],
        &[("ec2", "*", "throttle"), ("monitoring", "GetMetricData", "503")],
    )
    .await;
    drop(moto);

    let moto = start();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    seed_volumes(&c.ec2, 500, &[("Owner", "bench")]).await;
    let endpoint = moto.endpoint();
    // The first run records the sightings; compared are two reruns.
    child(me, &["scan-rule", "ebs-cleanup", &endpoint]);
    compare(
        me,
        &moto,
        "ebs-cleanup V=500",
        &["scan-rule", "ebs-cleanup", &endpoint],
        &[("ec2", "*", "throttle"), ("dynamodb", "*", "throttle")],
    )
    .await;
    drop(moto);

    let moto = start();
    seed_buckets(&aws_sdk_s3::Client::new(&moto.sdk_config().await), 100, 10).await;
    let endpoint = moto.endpoint();
    compare(
        me,
        &moto,
        "s3-public B=100 P=10",
        &["scan-rule", "s3-public", &endpoint],
        &[("s3", "*", "throttle")],
    )
    .await;
    drop(moto);

    let moto = start();
    let c = moto.clients().await;
    seed::run_instances(&c.ec2, "t3.small", 200, &[("Owner", "bench")], false).await;
    seed_volumes(&c.ec2, 200, &[("Owner", "bench")]).await;
    seed_buckets(&aws_sdk_s3::Client::new(&moto.sdk_config().await), 40, 0).await;
    let endpoint = moto.endpoint();
    compare(
        me,
        &moto,
        "tag-compliance I=200 V=400 B=40",
        &["scan-rule", "tag-compliance", &endpoint],
        &[("ec2", "*", "throttle"), ("s3", "*", "throttle")],
    )
    .await;
    drop(moto);

    let moto = start();
    let c = moto.clients().await;
    let ids = seed::run_instances(&c.ec2, "m5.2xlarge", 100, &[("Owner", "bench")], false).await;
    let now = chrono::Utc::now();
    for id in &ids {
        seed::put_hourly(&c.cloudwatch, "AWS/EC2", "CPUUtilization", id, now, 14, |h| {
            if h % 24 == 14 {
                35.0
            } else {
                20.0
            }
        })
        .await;
    }
    let endpoint = moto.endpoint();
    compare(
        me,
        &moto,
        "rightsizing I=100",
        &["scan-rule", "rightsizing", &endpoint],
        &[("ec2", "*", "throttle"), ("monitoring", "GetMetricData", "503")],
    )
    .await;
}
