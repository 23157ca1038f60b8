//! The benchmark's moto wrapper answers GetMetricData exactly as stock moto does, on data built
//! to hit the edges: several points per period, points on period boundaries, units, gaps, two
//! namespaces sharing a metric name and dimensions (stock moto ignores the namespace there),
//! queries without dimensions, descending order, and a metric-math query (falls back to stock).

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, ScanBy, StandardUnit};
use aws_smithy_types::DateTime;
use finops_tests::moto::workspace_root;
use finops_tests::Moto;

const DAY: i64 = 86_400;
const START: i64 = 1_795_000_000 - 1_795_000_000 % DAY;

fn datums(ns_variant: usize) -> Vec<MetricDatum> {
    let mut out = Vec::new();
    for i in 0..6 {
        let dim = Dimension::builder().name("InstanceId").value(format!("i-{i}")).build();
        for day in 0..5 {
            if (i + day) % 4 == 3 {
                continue; // a gap
            }
            for (k, offset) in [0, 3600, DAY - 1].into_iter().enumerate() {
                let ts = START + day * DAY + offset;
                let value = (i as usize * 7 + day as usize * 3 + k + ns_variant) as f64 * 1.5;
                out.push(
                    MetricDatum::builder()
                        .metric_name(if k == 2 { "NetworkIn" } else { "CPUUtilization" })
                        .dimensions(dim.clone())
                        .timestamp(DateTime::from_secs(ts))
                        .value(value)
                        .unit(if k == 1 {
                            StandardUnit::Bytes
                        } else {
                            StandardUnit::Percent
                        })
                        .build(),
                );
            }
        }
    }
    out
}

fn stat_query(
    id: &str,
    ns: &str,
    name: &str,
    instance: Option<&str>,
    stat: &str,
    period: i32,
    unit: Option<StandardUnit>,
) -> MetricDataQuery {
    let mut metric = Metric::builder().namespace(ns).metric_name(name);
    if let Some(i) = instance {
        metric = metric.dimensions(Dimension::builder().name("InstanceId").value(i).build());
    }
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(period)
                .stat(stat)
                .set_unit(unit)
                .build(),
        )
        .build()
}

fn queries() -> Vec<MetricDataQuery> {
    let mut q = Vec::new();
    let mut n = 0;
    for i in 0..7 {
        for (name, stat) in [
            ("CPUUtilization", "Average"),
            ("CPUUtilization", "Sum"),
            ("NetworkIn", "Maximum"),
            ("CPUUtilization", "SampleCount"),
        ] {
            for period in [86_400, 3600 * 6] {
                n += 1;
                q.push(stat_query(
                    &format!("q{n}"),
                    "AWS/EC2",
                    name,
                    Some(&format!("i-{i}")),
                    stat,
                    period,
                    None,
                ));
            }
        }
        n += 1;
        q.push(stat_query(
            &format!("q{n}"),
            "AWS/EC2",
            "CPUUtilization",
            Some(&format!("i-{i}")),
            "Average",
            86_400,
            Some(StandardUnit::Bytes),
        ));
    }
    q.push(stat_query(
        "all",
        "AWS/EC2",
        "CPUUtilization",
        None,
        "Sum",
        86_400,
        None,
    ));
    q.push(stat_query(
        "other",
        "Custom/App",
        "CPUUtilization",
        None,
        "Average",
        86_400,
        None,
    ));
    q
}

type Answer = Vec<(String, Vec<i64>, Vec<f64>)>;

async fn ask(moto: &Moto, queries: Vec<MetricDataQuery>, scan_by: ScanBy) -> Answer {
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    let out = cw
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from_secs(START))
        .end_time(DateTime::from_secs(START + 5 * DAY))
        .scan_by(scan_by)
        .send()
        .await
        .expect("GetMetricData");
    out.metric_data_results()
        .iter()
        .map(|r| {
            (
                r.id().unwrap_or_default().to_string(),
                r.timestamps().iter().map(|t| t.secs()).collect(),
                r.values().to_vec(),
            )
        })
        .collect()
}

async fn seed(moto: &Moto) {
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    for (variant, ns) in ["AWS/EC2", "Custom/App"].into_iter().enumerate() {
        cw.put_metric_data()
            .namespace(ns)
            .set_metric_data(Some(datums(variant)))
            .send()
            .await
            .expect("PutMetricData");
    }
}

#[tokio::test]
async fn the_indexed_wrapper_answers_get_metric_data_exactly_like_stock_moto() {
    let root = workspace_root();
    let stock = Moto::start().unwrap();
    let indexed = Moto::start_command(vec![
        root.join(".venv/bin/python").to_string_lossy().into_owned(),
        root.join("tests/bench/moto_indexed.py").to_string_lossy().into_owned(),
    ])
    .unwrap();
    seed(&stock).await;
    seed(&indexed).await;

    for scan_by in [ScanBy::TimestampAscending, ScanBy::TimestampDescending] {
        let a = ask(&stock, queries(), scan_by.clone()).await;
        let b = ask(&indexed, queries(), scan_by.clone()).await;
        assert_eq!(a.len(), queries().len());
        // The data really exercises the edges: gaps, several points a day, the namespace quirk.
        assert!(a.iter().any(|(_, t, _)| t.len() == 5) && a.iter().any(|(_, t, _)| !t.is_empty() && t.len() < 5));
        assert_eq!(a, b, "wrapper and stock moto disagree ({scan_by:?})");
    }

    // Metric math falls back to stock moto, so it answers alike too.
    let mut with_math = queries();
    with_math.push(MetricDataQuery::builder().id("m1").expression("q1 + q3").build());
    assert_eq!(
        ask(&stock, with_math.clone(), ScanBy::TimestampAscending).await,
        ask(&indexed, with_math, ScanBy::TimestampAscending).await
    );
}
