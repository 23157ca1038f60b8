//! CloudWatch: daily usage of many instances in as few GetMetricData calls as the API allows.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use chrono::{Days, NaiveDate};
use futures::stream::{self, StreamExt};

use super::{from_chrono, to_chrono};
use crate::detect::idle_ec2::{DayUsage, UsageByDay};
use crate::error::{Error, Result};

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

/// What the idle-ec2 flow needs of CloudWatch.
#[async_trait]
pub trait UsageApi: Send + Sync {
    /// Daily CPU average and network sums of `instance_ids` over `days` (consecutive UTC days).
    async fn daily_usage(&self, instance_ids: &[String], days: &[NaiveDate]) -> UsageReport;
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
}

impl Series {
    const ALL: [Series; 3] = [Series::Cpu, Series::NetworkIn, Series::NetworkOut];

    fn metric(self) -> (&'static str, &'static str, char) {
        match self {
            Series::Cpu => ("CPUUtilization", "Average", 'c'),
            Series::NetworkIn => ("NetworkIn", "Sum", 'i'),
            Series::NetworkOut => ("NetworkOut", "Sum", 'o'),
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
        format!("{}{}", self.series.metric().2, self.instance)
    }

    fn parse_id(id: &str) -> Option<QuerySpec> {
        let mut chars = id.chars();
        let series = match chars.next()? {
            'c' => Series::Cpu,
            'i' => Series::NetworkIn,
            'o' => Series::NetworkOut,
            _ => return None,
        };
        Some(QuerySpec {
            instance: chars.as_str().parse().ok()?,
            series,
        })
    }

    fn to_query(self, instance_id: &str) -> MetricDataQuery {
        let (name, stat, _) = self.series.metric();
        let metric = Metric::builder()
            .namespace("AWS/EC2")
            .metric_name(name)
            .dimensions(Dimension::builder().name("InstanceId").value(instance_id).build())
            .build();
        MetricDataQuery::builder()
            .id(self.id())
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(DAY_SECONDS)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build()
    }
}

#[async_trait]
impl UsageApi for CloudWatch {
    async fn daily_usage(&self, instance_ids: &[String], days: &[NaiveDate]) -> UsageReport {
        let mut report = UsageReport::default();
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

        // Queries of all instances, flattened and packed 500 to a call: ceil(3N/500) calls.
        let specs: Vec<QuerySpec> = (0..instance_ids.len())
            .flat_map(|instance| Series::ALL.map(|series| QuerySpec { instance, series }))
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
        let mut results = stream::iter(calls).buffer_unordered(self.concurrency);
        while let Some((chunk, result)) = results.next().await {
            match result {
                Ok(points) => {
                    for (spec, date, value) in points {
                        if !days.contains(&date) {
                            continue;
                        }
                        let Some(id) = instance_ids.get(spec.instance) else {
                            continue;
                        };
                        let day: &mut DayUsage = report.usage.entry(id.clone()).or_default().entry(date).or_default();
                        match spec.series {
                            Series::Cpu => day.cpu_average = Some(value),
                            Series::NetworkIn => day.network_in = Some(value),
                            Series::NetworkOut => day.network_out = Some(value),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, queries = chunk.len(), "GetMetricData failed; its instances are marked failed");
                    for spec in &chunk {
                        if let Some(id) = instance_ids.get(spec.instance) {
                            report.failed.insert(id.clone(), e.to_string());
                        }
                    }
                }
            }
        }
        for id in report.failed.keys() {
            report.usage.remove(id);
        }
        report
    }
}

impl CloudWatch {
    /// One GetMetricData request, following NextToken; returns (query, day, value) triples.
    async fn fetch(
        &self,
        queries: Vec<MetricDataQuery>,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(QuerySpec, NaiveDate, f64)>> {
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
                for (t, v) in result.timestamps().iter().zip(result.values()) {
                    if let Some(t) = to_chrono(t) {
                        out.push((spec, t.date_naive(), *v));
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
        for series in Series::ALL {
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
