//! CloudWatch: daily usage of many instances in as few GetMetricData calls as the API allows.

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::stream::{self, StreamExt};

use super::{from_chrono, to_chrono};
use crate::error::{Error, Result};
use crate::inventory::{DayUsage, UsageByDay};

/// GetMetricData takes at most 500 queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// One day, the period of every idle-ec2 query.
const DAY_SECONDS: i32 = 86_400;

/// Daily usage of a set of instances. Instances whose data could not be fetched are in `failed`
/// with the reason, so one throttled call costs its own instances, not the run.
#[derive(Debug, Default)]
pub struct UsageReport {
    pub usage: HashMap<String, UsageByDay>,
    pub failed: HashMap<String, String>,
}

/// Which of idle-ec2's daily measures a query asks for. CloudWatch bills GetMetricData per metric
/// requested ($0.01 per 1,000), so the scan asks for CPU first and for network only where the CPU
/// leaves an instance possibly idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measures {
    /// CPU average and network in and out: three metrics an instance.
    All,
    /// The CPU average alone: one metric an instance.
    Cpu,
    /// Network in and out: two metrics an instance.
    Network,
}

impl Measures {
    fn series(self) -> &'static [Series] {
        match self {
            Measures::All => &Series::ALL,
            Measures::Cpu => &[Series::Cpu],
            Measures::Network => &[Series::NetworkIn, Series::NetworkOut],
        }
    }
}

/// What the idle-ec2 flow needs of CloudWatch.
#[async_trait]
pub trait UsageApi: Send + Sync {
    /// The `measures` of `instance_ids` over `days` (consecutive UTC days): daily CPU average,
    /// network sums, or both.
    async fn daily_usage(&self, instance_ids: &[String], days: &[NaiveDate], measures: Measures) -> UsageReport;
}

/// The SDK adapter; `concurrency` bounds the GetMetricData calls in flight.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
    concurrency: usize,
}

impl CloudWatch {
    /// Wraps a client; at most `concurrency` calls run at once.
    pub fn new(client: aws_sdk_cloudwatch::Client, concurrency: usize) -> Self {
        CloudWatch {
            client,
            concurrency: concurrency.max(1),
        }
    }
}

/// Which series a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    Cpu,
    NetworkIn,
    NetworkOut,
    /// Hourly maximum of CPUUtilization (rightsizing).
    CpuHourlyMax,
    /// Hourly maximum of the CloudWatch agent's mem_used_percent (rightsizing; often absent).
    MemHourlyMax,
}

/// One hour, the period of the rightsizing peaks.
const HOUR_SECONDS: i32 = 3_600;

impl Series {
    /// idle-ec2's series.
    const ALL: [Series; 3] = [Series::Cpu, Series::NetworkIn, Series::NetworkOut];
    /// rightsizing's series.
    const PEAKS: [Series; 4] = [
        Series::CpuHourlyMax,
        Series::MemHourlyMax,
        Series::NetworkIn,
        Series::NetworkOut,
    ];

    /// Namespace, metric, statistic, period and the query id's letter.
    fn metric(self) -> (&'static str, &'static str, &'static str, i32, char) {
        match self {
            Series::Cpu => ("AWS/EC2", "CPUUtilization", "Average", DAY_SECONDS, 'c'),
            Series::NetworkIn => ("AWS/EC2", "NetworkIn", "Sum", DAY_SECONDS, 'i'),
            Series::NetworkOut => ("AWS/EC2", "NetworkOut", "Sum", DAY_SECONDS, 'o'),
            Series::CpuHourlyMax => ("AWS/EC2", "CPUUtilization", "Maximum", HOUR_SECONDS, 'h'),
            Series::MemHourlyMax => ("CWAgent", "mem_used_percent", "Maximum", HOUR_SECONDS, 'm'),
        }
    }
}

/// One query of a call: the instance (by index into the request) and the series.
#[derive(Debug, Clone, Copy)]
struct QuerySpec {
    instance: usize,
    series: Series,
}

impl QuerySpec {
    /// Query ids must match `^[a-z][a-zA-Z0-9_]*$`.
    fn id(&self) -> String {
        format!("{}{}", self.series.metric().4, self.instance)
    }

    fn parse_id(id: &str) -> Option<QuerySpec> {
        let mut chars = id.chars();
        let series = match chars.next()? {
            'c' => Series::Cpu,
            'i' => Series::NetworkIn,
            'o' => Series::NetworkOut,
            'h' => Series::CpuHourlyMax,
            'm' => Series::MemHourlyMax,
            _ => return None,
        };
        Some(QuerySpec {
            instance: chars.as_str().parse().ok()?,
            series,
        })
    }

    fn to_query(self, instance_id: &str) -> MetricDataQuery {
        let (namespace, name, stat, period, _) = self.series.metric();
        let metric = Metric::builder()
            .namespace(namespace)
            .metric_name(name)
            .dimensions(Dimension::builder().name("InstanceId").value(instance_id).build())
            .build();
        MetricDataQuery::builder()
            .id(self.id())
            .metric_stat(MetricStat::builder().metric(metric).period(period).stat(stat).build())
            .return_data(true)
            .build()
    }
}

/// Values of one instance: (series, timestamp, value).
type Points = Vec<(Series, DateTime<Utc>, f64)>;

impl CloudWatch {
    /// `set`'s series of all instances between `start` and `end`, packed 500 queries to a call
    /// (ceil(|set|·N/500) calls, `concurrency` in flight). Instances of a failed call are in the
    /// second map with the reason, and not in the first.
    async fn series(
        &self,
        instance_ids: &[String],
        set: &[Series],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> (HashMap<String, Points>, HashMap<String, String>) {
        let specs: Vec<QuerySpec> = (0..instance_ids.len())
            .flat_map(|instance| {
                set.iter().map(move |series| QuerySpec {
                    instance,
                    series: *series,
                })
            })
            .collect();
        let chunks: Vec<Vec<QuerySpec>> = specs.chunks(MAX_QUERIES_PER_CALL).map(<[QuerySpec]>::to_vec).collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let queries: Vec<MetricDataQuery> =
                    chunk.iter().map(|s| s.to_query(&instance_ids[s.instance])).collect();
                let call = self.fetch(queries, start, end);
                async move { (chunk, call.await) }
            })
            .collect();
        let mut points: HashMap<String, Points> = HashMap::new();
        let mut failed: HashMap<String, String> = HashMap::new();
        let mut results = stream::iter(calls).buffer_unordered(self.concurrency);
        while let Some((chunk, result)) = results.next().await {
            match result {
                Ok(values) => {
                    for (spec, t, value) in values {
                        if let Some(id) = instance_ids.get(spec.instance) {
                            points.entry(id.clone()).or_default().push((spec.series, t, value));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, queries = chunk.len(), "GetMetricData failed; its instances are marked failed");
                    for spec in &chunk {
                        if let Some(id) = instance_ids.get(spec.instance) {
                            failed.insert(id.clone(), e.to_string());
                        }
                    }
                }
            }
        }
        for id in failed.keys() {
            points.remove(id);
        }
        (points, failed)
    }
}

pub use crate::inventory::InstancePeaks;

/// Peaks of a set of instances; those whose data could not be fetched are in `failed`.
#[derive(Debug, Default)]
pub struct PeakReport {
    pub peaks: HashMap<String, InstancePeaks>,
    pub failed: HashMap<String, String>,
}

/// What rightsizing needs of CloudWatch.
#[async_trait]
pub trait PeakApi: Send + Sync {
    /// Hourly CPU (and memory) maxima and daily network of `instance_ids` in [start, end).
    async fn peaks(&self, instance_ids: &[String], start: DateTime<Utc>, end: DateTime<Utc>) -> PeakReport;
}

#[async_trait]
impl PeakApi for CloudWatch {
    async fn peaks(&self, instance_ids: &[String], start: DateTime<Utc>, end: DateTime<Utc>) -> PeakReport {
        let (points, failed) = self.series(instance_ids, &Series::PEAKS, start, end).await;
        let mut peaks: HashMap<String, InstancePeaks> = HashMap::new();
        for (id, values) in points {
            let p = peaks.entry(id).or_default();
            for (series, t, v) in values {
                match series {
                    Series::CpuHourlyMax => p.cpu_hourly_max.push((t, v)),
                    Series::MemHourlyMax => p.mem_hourly_max.push((t, v)),
                    Series::NetworkIn | Series::NetworkOut => {
                        *p.network_daily_bytes.entry(t.date_naive()).or_default() += v;
                    }
                    Series::Cpu => {}
                }
            }
            p.cpu_hourly_max.sort_by_key(|(t, _)| *t);
            p.mem_hourly_max.sort_by_key(|(t, _)| *t);
        }
        PeakReport { peaks, failed }
    }
}

#[async_trait]
impl UsageApi for CloudWatch {
    async fn daily_usage(&self, instance_ids: &[String], days: &[NaiveDate], measures: Measures) -> UsageReport {
        let mut report = UsageReport::default();
        if instance_ids.is_empty() {
            return report;
        }
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return report;
        };
        let start = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let end = last
            .checked_add_days(Days::new(1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let (Some(start), Some(end)) = (start, end) else {
            return report;
        };
        let (points, failed) = self.series(instance_ids, measures.series(), start, end).await;
        for (id, values) in points {
            for (series, t, value) in values {
                let date = t.date_naive();
                if !days.contains(&date) {
                    continue;
                }
                let day: &mut DayUsage = report.usage.entry(id.clone()).or_default().entry(date).or_default();
                match series {
                    Series::Cpu => day.cpu_average = Some(value),
                    Series::NetworkIn => day.network_in = Some(value),
                    Series::NetworkOut => day.network_out = Some(value),
                    Series::CpuHourlyMax | Series::MemHourlyMax => {}
                }
            }
        }
        report.failed = failed;
        report
    }
}

impl CloudWatch {
    /// One GetMetricData request, following NextToken; returns (query, day, value) triples.
    async fn fetch(
        &self,
        queries: Vec<MetricDataQuery>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(QuerySpec, DateTime<Utc>, f64)>> {
        let mut out = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(from_chrono(start))
                .end_time(from_chrono(end))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| Error::aws("cloudwatch", "GetMetricData", e))?;
            for result in page.metric_data_results() {
                let Some(spec) = result.id().and_then(QuerySpec::parse_id) else {
                    return Err(Error::unexpected(
                        "cloudwatch",
                        "GetMetricData",
                        format!("a result for a query that was not asked: {:?}", result.id()),
                    ));
                };
                // A query CloudWatch could not answer is a failure, never an empty (idle) series.
                if let Some(code @ (StatusCode::Forbidden | StatusCode::InternalError)) = result.status_code() {
                    return Err(Error::unexpected(
                        "cloudwatch",
                        "GetMetricData",
                        format!(
                            "query {:?} answered {}: {:?}",
                            result.id(),
                            code.as_str(),
                            result.messages().iter().filter_map(|m| m.value()).collect::<Vec<_>>()
                        ),
                    ));
                }
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    if let Some(t) = to_chrono(t) {
                        out.push((spec, t, *v));
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_round_trip_and_match_cloudwatch_syntax() {
        for series in Series::ALL.into_iter().chain(Series::PEAKS) {
            let spec = QuerySpec { instance: 4711, series };
            let id = spec.id();
            assert!(id.chars().next().unwrap().is_ascii_lowercase());
            let back = QuerySpec::parse_id(&id).unwrap();
            assert_eq!((back.instance, back.series), (4711, series));
        }
        assert!(QuerySpec::parse_id("x1").is_none());
        assert!(QuerySpec::parse_id("c").is_none());
    }
}
