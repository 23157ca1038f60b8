//! `make bench`: the idle-ec2 scan at N = 1,000 and 5,000 instances (10% idle) with 14 days of
//! metrics in moto, then one scan of each other detector on a seeded account (ebs-cleanup twice:
//! first sightings, then a rerun). Reports AWS API calls by operation (counted in the SDK client),
//! wall time and peak RSS of the scanning process, beside each scan's floor.
//!
//! Each scan's CPU seconds (user + system of the scanning child) stand beside its wall time.
//! Then the fault table (`faults.rs`): each scan fault-free and at 20 % injected faults.
//!
//! `bench` runs everything; `bench 1000,5000` only the idle scan at those sizes; `bench others`
//! only the other detectors; `bench faults` only the fault table; `bench load` only the load on
//! the approval function (200 concurrent mixed requests, latency p50/p99).
//!
//! Moto runs through tests/bench/moto_indexed.py (GetMetricData answered from an index; same
//! answers as stock moto, checked by tests/tests/bench_wrapper.rs), because stock moto rescans
//! every datapoint for every query and period and would not finish at N = 5,000.

mod faults;
mod load;
mod org;
mod others;

use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use finops_checks::idle_ec2::run::{self as idle_ec2, Ports};
use finops_tests::moto::workspace_root;
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::aws::cloudwatch::CloudWatch;
use remediation::aws::ec2::Ec2;
use remediation::aws::Clients;
use remediation::flow::Sinks;
use remediation::policy::Policy;

pub(crate) fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(1)
}

/// CPU time of this process so far, user plus system, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// What every scanning child prints beside its own figures: the resources it flagged and those it
/// reported failed, its calls and attempts, CPU seconds and peak memory.
pub(crate) fn child_report(
    report: &remediation::model::RunReport,
    clients: &Clients,
    wall_ms: u128,
) -> serde_json::Value {
    use remediation::model::OutcomeKind;
    let id_of = |finding_id: &str| finding_id.rsplit(':').next().unwrap_or_default().to_string();
    serde_json::json!({
        "scanned": report.scanned,
        "findings": report.findings.len(),
        "failed": report.outcomes.iter().filter(|o| o.outcome == OutcomeKind::Failed).count(),
        "flagged": report.findings.iter().map(|f| f.resource.id.clone()).collect::<Vec<_>>(),
        "failed_ids": report.outcomes.iter().filter(|o| o.outcome == OutcomeKind::Failed).map(|o| id_of(&o.finding_id)).collect::<Vec<_>>(),
        "calls": clients.calls.snapshot(),
        "metrics": clients.calls.units().get("metrics").copied().unwrap_or(0),
        // The scan's own AWS bill at list prices (Lambda's GB-seconds aside: not run in Lambda).
        "usd": remediation::cost::RunCost::estimate(clients.calls.usage(), &remediation::cost::ServicePrices::embedded()).usd,
        "attempts": clients.calls.attempts(),
        "wall_ms": wall_ms,
        "cpu_s": cpu_seconds(),
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// Peak resident set of this process (VmHWM), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub(crate) async fn clients_for(endpoint: &str) -> Clients {
    let config = finops_tests::moto::sdk_config_for(endpoint, 3).await;
    Clients::from_config(&config).unwrap_or_else(|e| fail(e))
}

/// The child: one dry-run idle scan against `endpoint`, printed as JSON.
async fn scan(endpoint: &str) {
    let clients = clients_for(endpoint).await;
    let ec2 = Ec2::new(clients.ec2.clone(), "us-east-1");
    let usage = CloudWatch::new(clients.cloudwatch.clone(), 4);
    let started = Instant::now();
    let report = idle_ec2::run(
        Ports {
            ec2: &ec2,
            usage: &usage,
            prices: &remediation::pricing::PriceBook::embedded(),
        },
        &Policy::default(),
        Sinks::default(),
        Utc::now(),
    )
    .await
    .unwrap_or_else(|e| fail(e));
    let wall_ms = started.elapsed().as_millis();
    println!("{}", child_report(&report, &clients, wall_ms));
}

pub(crate) async fn seed(moto: &Moto, n: usize) {
    let c = moto.clients().await;
    let now = Utc::now();
    let mut launched = Vec::with_capacity(n);
    while launched.len() < n {
        let batch = (n - launched.len()).min(500) as i32;
        launched.extend(seed::run_instances(&c.ec2, "t3.large", batch, &[("Owner", "bench")], false).await);
    }
    let mut datums = Vec::new();
    for (i, id) in launched.iter().enumerate() {
        let usage = if i % 10 == 0 { Usage::IDLE } else { Usage::BUSY };
        datums.extend(seed::daily_datums(id, usage, now, 14, &[]));
        if datums.len() >= 20_000 {
            seed::put_datums(&c.cloudwatch, std::mem::take(&mut datums)).await;
        }
    }
    seed::put_datums(&c.cloudwatch, datums).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("scan") => {
            let endpoint = args.get(2).unwrap_or_else(|| fail("usage: bench scan ENDPOINT"));
            scan(endpoint).await;
            return;
        }
        Some("org-item") => {
            let (Some(endpoint), Some(item)) = (args.get(2), args.get(3)) else {
                fail("usage: bench org-item ENDPOINT ITEM_JSON")
            };
            org::item(endpoint, item).await;
            return;
        }
        Some("scan-rule") => {
            let (Some(rule), Some(endpoint)) = (args.get(2), args.get(3)) else {
                fail("usage: bench scan-rule RULE ENDPOINT")
            };
            others::scan(rule, endpoint).await;
            return;
        }
        _ => {}
    }
    let root = workspace_root();
    let python = root.join(".venv/bin/python").to_string_lossy().into_owned();
    let wrapper = root.join("tests/bench/moto_indexed.py").to_string_lossy().into_owned();
    let me = std::env::current_exe().unwrap_or_else(|e| fail(e));
    let moto_command = vec![python, wrapper];
    let sizes: Vec<usize> = match args.get(1).map(String::as_str) {
        Some("others") | Some("faults") | Some("load") | Some("org") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| s.parse().unwrap_or_else(|_| fail(format!("bad size {s}"))))
            .collect(),
        None => vec![1000, 5000],
    };
    if !sizes.is_empty() {
        idle(&sizes, &moto_command, &me).await;
    }
    if matches!(args.get(1).map(String::as_str), None | Some("others")) {
        others::run(&moto_command, &me).await;
    }
    if matches!(args.get(1).map(String::as_str), None | Some("faults")) {
        faults::run(&moto_command, &me).await;
    }
    if matches!(args.get(1).map(String::as_str), None | Some("load")) {
        load::run().await;
    }
    if matches!(args.get(1).map(String::as_str), None | Some("org")) {
        org::run(&moto_command, &me).await;
    }
}

async fn idle(sizes: &[usize], moto_command: &[String], me: &std::path::Path) {
    println!("idle-ec2 scan, dry-run, 14-day lookback, 10% idle; moto 5.2.5 with the indexed GetMetricData wrapper");
    println!(
        "metrics: GetMetricData metrics requested (billed $0.01 per 1,000), beside 3N (all three measures of every instance);"
    );
    println!(
        "$/scan: the scan's own AWS bill at list prices; c7n $/scan: Cloud Custodian's GetMetricStatistics requests on the same"
    );
    println!("estate (one per instance and metric filter, filters in turn), at $0.01 per 1,000 past the free 1M requests a month");
    println!(
        "{:>6} {:>7} {:>8} {:>6} {:>6} {:>8} {:>6} {:>9} {:>10} {:>8} {:>7} {:>10} {:>12}  calls by operation",
        "N",
        "found",
        "failed",
        "calls",
        "floor",
        "metrics",
        "3N",
        "$/scan",
        "c7n $/scan",
        "wall s",
        "cpu s",
        "peak MiB",
        "seed s"
    );
    for &n in sizes {
        let moto = Moto::start_command(moto_command.to_vec()).unwrap_or_else(|e| fail(e));
        let seeded = Instant::now();
        seed(&moto, n).await;
        let seed_s = seeded.elapsed().as_secs_f64();
        let out = Command::new(me)
            .args(["scan", &moto.endpoint()])
            .output()
            .unwrap_or_else(|e| fail(e));
        if !out.status.success() {
            fail(format!("scan failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(e));
        // DescribeInstances pages, the CPU of every instance, then the network (two metrics) of
        // the one in ten whose CPU is idle; one DescribeInstanceTypes.
        let possibly_idle = n.div_ceil(10);
        let floor = n.div_ceil(1000) + 1 + n.div_ceil(500) + (2 * possibly_idle).div_ceil(500);
        let c7n_requests = n + 2 * possibly_idle;
        let calls: u64 = r["calls"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        println!(
            "{:>6} {:>7} {:>8} {:>6} {:>6} {:>8} {:>6} {:>9.4} {:>10.4} {:>8.1} {:>7.2} {:>10.1} {:>12.1}  {}",
            n,
            r["findings"],
            r["failed"],
            calls,
            floor,
            r["metrics"],
            3 * n,
            r["usd"].as_f64().unwrap_or(0.0),
            c7n_requests as f64 * 0.01 / 1000.0,
            r["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            r["cpu_s"].as_f64().unwrap_or(0.0),
            r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            seed_s,
            r["calls"]
        );
    }
}
