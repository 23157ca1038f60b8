//! Load on the approval function: 200 concurrent mixed requests (`finops_tests::load`) through
//! its Function URL stand-in, with the answers' latency distribution per kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use finops_tests::approvals::Loop;
use finops_tests::load::{self, quantile, Kind};

use crate::fail;

pub async fn run() {
    println!();
    println!(
        "approval function, 200 concurrent mixed requests (40 open requests) through the Function URL stand-in; moto"
    );
    println!(
        "{:<28} {:>5} {:>18} {:>8} {:>8} {:>8}",
        "requests", "count", "answers", "p50 ms", "p99 ms", "max ms"
    );
    let lp = Loop::start(load::policy()).await;
    let open = load::open_requests(&lp, 40).await;
    if open.len() != 40 {
        fail(format!("{} open requests, not 40", open.len()));
    }
    let started = Instant::now();
    let answers = load::fire(&lp, &open).await;
    let wall = started.elapsed();
    let mut by_kind: BTreeMap<Kind, Vec<&load::Answer>> = BTreeMap::new();
    for a in &answers {
        by_kind.entry(a.kind).or_default().push(a);
    }
    let row = |label: &str, of: &[&load::Answer]| {
        let latencies: Vec<Duration> = of.iter().map(|a| a.latency).collect();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for a in of {
            *statuses.entry(a.status).or_default() += 1;
        }
        let answers: Vec<String> = statuses.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<28} {:>5} {:>18} {:>8.1} {:>8.1} {:>8.1}",
            label,
            of.len(),
            answers.join(" "),
            ms(quantile(&latencies, 0.5)),
            ms(quantile(&latencies, 0.99)),
            ms(quantile(&latencies, 1.0)),
        );
    };
    for (kind, of) in &by_kind {
        let label = match kind {
            Kind::Valid => "valid approvals",
            Kind::Replayed => "the same, replayed at once",
            Kind::Forged => "forged links",
            Kind::StaleSlack => "Slack, signature 10 min old",
            Kind::Oversized => "oversized bodies (100 KiB)",
        };
        row(label, of);
    }
    let all: Vec<&load::Answer> = answers.iter().collect();
    row("all", &all);
    let executed = answers
        .iter()
        .filter(|a| a.status == 200 && a.body.contains("Done"))
        .count();
    println!(
        "executed {executed} of 40 requests once each; all 200 answered in {:.2} s",
        wall.as_secs_f64()
    );
    if executed != 40 || answers.iter().any(|a| a.status == 0 || a.status >= 500) {
        fail("the load run broke a promise (see approval_load.rs)");
    }
}
