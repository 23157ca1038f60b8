//! What a run of the autopilot costs on the AWS bill: estimated from what it did (the calls its
//! clients made, counted, and the units AWS bills some of them by) at the public prices, with the
//! price source named as for every other price.
//!
//! Billed per unit, not per call:
//! - CloudWatch GetMetricData: $0.01 per 1,000 metrics requested, however they are packed
//!   (<https://aws.amazon.com/cloudwatch/pricing/>, "API requests"; not in the free tier).
//! - Cost Explorer API: $0.01 a request (<https://aws.amazon.com/aws-cost-management/aws-cost-explorer/pricing/>).
//! - AWS Config custom-rule evaluations: $0.001 each, the first 100,000 a month
//!   (<https://aws.amazon.com/config/pricing/>).
//! - DynamoDB on demand: $0.125 per million read request units, $0.625 per million write request
//!   units (<https://aws.amazon.com/dynamodb/pricing/on-demand/>). Estimated as one unit per read
//!   or write request (items under 4 KB and 1 KB: the autopilot's are) and two per item of a
//!   transaction.
//! - SNS: $0.50 per million publishes (<https://aws.amazon.com/sns/pricing/>).
//! - Lambda on arm64: $0.0000133334 per GB-second and $0.20 per million requests
//!   (<https://aws.amazon.com/lambda/pricing/>).
//! - Step Functions standard workflows: $0.025 per 1,000 state transitions
//!   (<https://aws.amazon.com/step-functions/pricing/>).
//! - S3 requests on S3 Standard: $0.005 per 1,000 PUT and LIST requests, $0.0004 per 1,000 GET
//!   and other requests, DELETE free (<https://aws.amazon.com/s3/pricing/>, "Requests & data
//!   retrievals"); a bucket's configuration reads (ACL, policy, Block Public Access…) counted as
//!   GET requests.
//!
//! Every other call the autopilot makes (EC2 and Organizations reads, S3 Control, STS) is free. The prices
//! are us-east-1's list prices before free tiers: an upper bound for a small deployment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a run did that AWS bills.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// CloudWatch GetMetricData: the metrics requested.
    #[serde(default)]
    pub metrics_requested: u64,
    /// Cost Explorer requests.
    #[serde(default)]
    pub cost_explorer_requests: u64,
    /// AWS Config evaluations put.
    #[serde(default)]
    pub config_evaluations: u64,
    /// DynamoDB read and write request units (estimated, see the module).
    #[serde(default)]
    pub dynamodb_read_units: u64,
    #[serde(default)]
    pub dynamodb_write_units: u64,
    /// SNS publishes.
    #[serde(default)]
    pub sns_publishes: u64,
    /// Lambda: the invocation's duration times its memory; `0` outside Lambda.
    #[serde(default)]
    pub lambda_gb_seconds: f64,
    /// Lambda invocations (1 for a run in Lambda).
    #[serde(default)]
    pub lambda_requests: u64,
    /// Step Functions state transitions (an organisation run's).
    #[serde(default)]
    pub state_transitions: u64,
    /// S3 PUT and LIST requests, and GET and other requests.
    #[serde(default)]
    pub s3_put_list_requests: u64,
    #[serde(default)]
    pub s3_get_requests: u64,
    /// Calls AWS does not bill (EC2, S3 and Organizations reads, STS…).
    #[serde(default)]
    pub free_calls: u64,
}

/// The prices a run's cost is estimated at, and where they come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePrices {
    pub per_metric_requested: f64,
    pub per_cost_explorer_request: f64,
    pub per_config_evaluation: f64,
    pub per_dynamodb_read_unit: f64,
    pub per_dynamodb_write_unit: f64,
    pub per_sns_publish: f64,
    pub per_lambda_gb_second: f64,
    pub per_lambda_request: f64,
    pub per_state_transition: f64,
    pub per_s3_put_list_request: f64,
    pub per_s3_get_request: f64,
    /// Where these prices come from.
    pub source: String,
}

impl ServicePrices {
    /// The list prices in us-east-1 (see the module's links).
    pub fn embedded() -> ServicePrices {
        ServicePrices {
            per_metric_requested: 0.01 / 1_000.0,
            per_cost_explorer_request: 0.01,
            per_config_evaluation: 0.001,
            per_dynamodb_read_unit: 0.125 / 1_000_000.0,
            per_dynamodb_write_unit: 0.625 / 1_000_000.0,
            per_sns_publish: 0.50 / 1_000_000.0,
            per_lambda_gb_second: 0.000_013_333_4,
            per_lambda_request: 0.20 / 1_000_000.0,
            per_state_transition: 0.025 / 1_000.0,
            per_s3_put_list_request: 0.005 / 1_000.0,
            per_s3_get_request: 0.0004 / 1_000.0,
            source: "AWS list prices, us-east-1, before free tiers (embedded, 2026-12)".into(),
        }
    }
}

/// A run's estimated cost: in all, and by service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCost {
    pub usage: RunUsage,
    pub usd: f64,
    /// Dollars by service (`cloudwatch`, `cost-explorer`, `config`, `dynamodb`, `sns`, `lambda`,
    /// `step-functions`), only those above zero.
    pub by_service: BTreeMap<String, f64>,
    /// Where the prices come from.
    pub prices: String,
}

impl RunCost {
    /// `usage` at `prices`.
    pub fn estimate(usage: RunUsage, prices: &ServicePrices) -> RunCost {
        let lines = [
            (
                "cloudwatch",
                usage.metrics_requested as f64 * prices.per_metric_requested,
            ),
            (
                "cost-explorer",
                usage.cost_explorer_requests as f64 * prices.per_cost_explorer_request,
            ),
            ("config", usage.config_evaluations as f64 * prices.per_config_evaluation),
            (
                "dynamodb",
                usage.dynamodb_read_units as f64 * prices.per_dynamodb_read_unit
                    + usage.dynamodb_write_units as f64 * prices.per_dynamodb_write_unit,
            ),
            ("sns", usage.sns_publishes as f64 * prices.per_sns_publish),
            (
                "lambda",
                usage.lambda_gb_seconds * prices.per_lambda_gb_second
                    + usage.lambda_requests as f64 * prices.per_lambda_request,
            ),
            (
                "step-functions",
                usage.state_transitions as f64 * prices.per_state_transition,
            ),
            (
                "s3",
                usage.s3_put_list_requests as f64 * prices.per_s3_put_list_request
                    + usage.s3_get_requests as f64 * prices.per_s3_get_request,
            ),
        ];
        let by_service: BTreeMap<String, f64> = lines
            .into_iter()
            .filter(|(_, usd)| *usd > 0.0)
            .map(|(service, usd)| (service.to_string(), usd))
            .collect();
        RunCost {
            usd: by_service.values().sum(),
            by_service,
            usage,
            prices: prices.source.clone(),
        }
    }
}

/// DynamoDB operations that read (one request unit each, estimated).
const DYNAMODB_READS: &[&str] = &["GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"];
/// DynamoDB operations that write one item (one request unit each, estimated).
const DYNAMODB_WRITES: &[&str] = &["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"];

impl RunUsage {
    /// The usage of calls counted by `Service.Operation` (as the clients' counter keys them), with
    /// the units counted beside them: `metrics` (GetMetricData queries), `evaluations` (Config
    /// evaluations put) and `transaction_items` (DynamoDB transaction items).
    pub fn from_calls(calls: &BTreeMap<String, u64>, units: &BTreeMap<String, u64>) -> RunUsage {
        let unit = |k: &str| units.get(k).copied().unwrap_or(0);
        let mut usage = RunUsage {
            metrics_requested: unit("metrics"),
            config_evaluations: unit("evaluations"),
            dynamodb_write_units: 2 * unit("transaction_items"),
            ..RunUsage::default()
        };
        for (key, n) in calls {
            let (service, operation) = key.split_once('.').unwrap_or((key.as_str(), ""));
            match service {
                "CloudWatch" if operation == "GetMetricData" => {}
                "Cost Explorer" => usage.cost_explorer_requests += n,
                "Config Service" if operation == "PutEvaluations" => {}
                "DynamoDB" if DYNAMODB_READS.contains(&operation) => usage.dynamodb_read_units += n,
                "DynamoDB" if DYNAMODB_WRITES.contains(&operation) => usage.dynamodb_write_units += n,
                // Counted by its items above.
                "DynamoDB" if operation == "TransactWriteItems" => {}
                "SNS" if operation == "Publish" => usage.sns_publishes += n,
                "S3" if operation.starts_with("Put") || operation.starts_with("List") => {
                    usage.s3_put_list_requests += n
                }
                "S3" if operation.starts_with("Get") || operation.starts_with("Head") => usage.s3_get_requests += n,
                _ => usage.free_calls += n,
            }
        }
        usage
    }

    /// What the calls cost that `self` has over `before` (the same counters read earlier).
    pub fn since(&self, before: &RunUsage) -> RunUsage {
        RunUsage {
            metrics_requested: self.metrics_requested.saturating_sub(before.metrics_requested),
            cost_explorer_requests: self
                .cost_explorer_requests
                .saturating_sub(before.cost_explorer_requests),
            config_evaluations: self.config_evaluations.saturating_sub(before.config_evaluations),
            dynamodb_read_units: self.dynamodb_read_units.saturating_sub(before.dynamodb_read_units),
            dynamodb_write_units: self.dynamodb_write_units.saturating_sub(before.dynamodb_write_units),
            sns_publishes: self.sns_publishes.saturating_sub(before.sns_publishes),
            lambda_gb_seconds: (self.lambda_gb_seconds - before.lambda_gb_seconds).max(0.0),
            lambda_requests: self.lambda_requests.saturating_sub(before.lambda_requests),
            state_transitions: self.state_transitions.saturating_sub(before.state_transitions),
            s3_put_list_requests: self.s3_put_list_requests.saturating_sub(before.s3_put_list_requests),
            s3_get_requests: self.s3_get_requests.saturating_sub(before.s3_get_requests),
            free_calls: self.free_calls.saturating_sub(before.free_calls),
        }
    }
}

/// Dollars as a person reads a small cost: cents when there are some, else a fraction of a cent,
/// and "under $0.0001" below what four places show.
pub fn shown_usd(usd: f64) -> String {
    if usd >= 0.01 {
        format!("${usd:.2}")
    } else if usd >= 0.0001 {
        format!("${usd:.4}")
    } else if usd > 0.0 {
        "under $0.0001".to_string()
    } else {
        "$0".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn a_run_s_cost_is_computed_from_its_calls_and_units() {
        // An idle scan of 2,000 instances, 765 of them possibly idle by CPU: 4 + 4 GetMetricData
        // calls asking 2,000 + 1,530 metrics (6 counted here: the counts are the test's); 2
        // DescribeInstances, 1 DescribeInstanceTypes; 2 writes, 1 query and a 2-item transaction;
        // 1 publish; 512 MB for 20 s.
        let c = calls(&[
            ("CloudWatch.GetMetricData", 6),
            ("EC2.DescribeInstances", 2),
            ("EC2.DescribeInstanceTypes", 1),
            ("DynamoDB.PutItem", 2),
            ("DynamoDB.Query", 1),
            ("DynamoDB.TransactWriteItems", 1),
            ("SNS.Publish", 1),
        ]);
        let units = calls(&[("metrics", 3_530), ("transaction_items", 2)]);
        let mut usage = RunUsage::from_calls(&c, &units);
        usage.lambda_gb_seconds = 0.5 * 20.0;
        usage.lambda_requests = 1;
        assert_eq!(usage.metrics_requested, 3_530);
        assert_eq!((usage.dynamodb_read_units, usage.dynamodb_write_units), (1, 2 + 4));
        assert_eq!((usage.sns_publishes, usage.free_calls), (1, 3));
        let cost = RunCost::estimate(usage, &ServicePrices::embedded());
        // 3,530 metrics at $0.01 per 1,000.
        assert!((cost.by_service["cloudwatch"] - 0.0353).abs() < 1e-12, "{cost:?}");
        // 10 GB-s and one request.
        assert!((cost.by_service["lambda"] - (10.0 * 0.000_013_333_4 + 0.2e-6)).abs() < 1e-12);
        assert!((cost.by_service["dynamodb"] - (0.125e-6 + 6.0 * 0.625e-6)).abs() < 1e-15);
        assert!((cost.by_service["sns"] - 0.5e-6).abs() < 1e-15);
        assert!(!cost.by_service.contains_key("cost-explorer"));
        let sum: f64 = cost.by_service.values().sum();
        assert!((cost.usd - sum).abs() < 1e-15);
        assert!(cost.prices.contains("us-east-1"));
    }

    #[test]
    fn cost_explorer_and_config_evaluations_are_billed_per_request_and_per_evaluation() {
        let c = calls(&[
            ("Cost Explorer.GetCostAndUsage", 2),
            ("Cost Explorer.GetCostForecast", 1),
        ]);
        let usage = RunUsage::from_calls(&c, &BTreeMap::new());
        assert_eq!(RunCost::estimate(usage, &ServicePrices::embedded()).usd, 0.03);
        let c = calls(&[("Config Service.PutEvaluations", 2)]);
        let usage = RunUsage::from_calls(&c, &calls(&[("evaluations", 150)]));
        let cost = RunCost::estimate(usage, &ServicePrices::embedded());
        assert!((cost.usd - 0.15).abs() < 1e-12);
    }

    #[test]
    fn s3_bills_its_requests_and_s3_control_does_not() {
        let c = calls(&[
            ("S3.ListBuckets", 1),
            ("S3.GetBucketAcl", 200),
            ("S3.GetBucketPolicy", 200),
            ("S3.PutPublicAccessBlock", 1),
            ("S3.DeletePublicAccessBlock", 1),
            ("S3 Control.GetPublicAccessBlock", 1),
        ]);
        let usage = RunUsage::from_calls(&c, &BTreeMap::new());
        assert_eq!((usage.s3_put_list_requests, usage.s3_get_requests), (2, 400));
        assert_eq!(usage.free_calls, 2);
        let cost = RunCost::estimate(usage, &ServicePrices::embedded());
        assert!(
            (cost.usd - (2.0 * 0.005 + 400.0 * 0.0004) / 1000.0).abs() < 1e-15,
            "{cost:?}"
        );
    }

    #[test]
    fn small_costs_read_as_a_person_would_write_them() {
        assert_eq!(shown_usd(0.0353), "$0.04");
        assert_eq!(shown_usd(0.000_137), "$0.0001");
        assert_eq!(shown_usd(0.000_04), "under $0.0001");
        assert_eq!(shown_usd(0.0), "$0");
    }
}
