//! What a run of the autopilot costs on the AWS bill: estimated from what it did (the calls its
//! clients made, counted, and the units AWS bills some of them by) at the public prices, with the
//! price source named as for every other price.
//!
//! Billed per unit, not per call:
//! - CloudWatch GetMetricData: $0.01 per 1,000 metrics requested, however they are packed
//!   (<https://aws.amazon.com/cloudwatch/pricing/>, "API requests"; not in the free tier).
//! - Cost Explorer API: $0.01 a request (<https://aws.amazon.com/aws-cost-management/aws-cost-explorer/pricing/>).
//! - AWS Config custom-rule evaluations: $0.001 each for the first 100,000 a month, less beyond
//!   (<https://aws.amazon.com/config/pricing/>; the first tier is used, an upper bound).
//! - DynamoDB on demand: $0.125 per million read request units, $0.625 per million write request
//!   units (<https://aws.amazon.com/dynamodb/pricing/on-demand/>). Estimated as one unit per read
//!   or write request and two per item of a transaction: a lower bound, since an item over 1 KB
//!   (a finding with its evidence is about 2 KB) takes a write unit per KB.
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
//! - Amazon Bedrock: by the tokens the model read and wrote, at the model's list price
//!   (<https://aws.amazon.com/bedrock/pricing/>; see [`bedrock_token_prices`]).
//!
//! Every other call the autopilot makes (EC2 and Organizations reads, S3 Control, STS) is free. The
//! embedded prices are us-east-1's list prices before free tiers: an upper bound for a small
//! deployment. A run in another region is costed at that region's prices from the AWS Price List
//! API where it lists them ([`PRICE_LIST_LINES`], cached a month like the instance prices), each
//! price it does not list staying the embedded one, and the source says which.

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
    /// Bedrock: the tokens each model read and wrote (Converse's `usage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_tokens: BTreeMap<String, ModelTokens>,
}

/// The tokens a model read (the prompt) and wrote (the answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTokens {
    pub input: u64,
    pub output: u64,
}

/// A model's list prices per token read and written, on demand, by its model id or inference
/// profile (`global.`, `us.`, `eu.`… prefixes name where it runs, not what it costs here), from
/// <https://aws.amazon.com/bedrock/pricing/>; `None` for a model not listed here (its tokens are
/// counted, and the run's cost says they are not priced).
pub fn bedrock_token_prices(model_id: &str) -> Option<(f64, f64)> {
    let base = model_id
        .split_once('.')
        .filter(|(geo, _)| ["global", "us", "eu", "apac", "jp", "au", "ca", "us-gov"].contains(geo))
        .map_or(model_id, |(_, rest)| rest);
    let per_million = match base {
        "amazon.nova-2-lite-v1:0" => (0.30, 2.50),
        "amazon.nova-lite-v1:0" => (0.06, 0.24),
        "amazon.nova-micro-v1:0" => (0.035, 0.14),
        "amazon.nova-pro-v1:0" => (0.80, 3.20),
        "anthropic.claude-3-haiku-20240307-v1:0" => (0.25, 1.25),
        _ => return None,
    };
    Some((per_million.0 / 1_000_000.0, per_million.1 / 1_000_000.0))
}

/// The prices the Price List API gives for a region: the [`ServicePrices`] field each sets, the
/// service code and the usage type (named without the region's prefix: `EU-CW:GMD-Metrics` in
/// eu-west-1 is `CW:GMD-Metrics`). Cost Explorer's API is priced once for every region and stays
/// the embedded price.
pub const PRICE_LIST_LINES: &[(&str, &str, &str)] = &[
    ("per_metric_requested", "AmazonCloudWatch", "CW:GMD-Metrics"),
    ("per_config_evaluation", "AWSConfig", "ConfigRuleEvaluations"),
    ("per_dynamodb_read_unit", "AmazonDynamoDB", "ReadRequestUnits"),
    ("per_dynamodb_write_unit", "AmazonDynamoDB", "WriteRequestUnits"),
    ("per_sns_publish", "AmazonSNS", "Requests-Tier1"),
    ("per_lambda_gb_second", "AWSLambda", "Lambda-GB-Second-ARM"),
    ("per_lambda_request", "AWSLambda", "Request-ARM"),
    ("per_state_transition", "AmazonStates", "StateTransition"),
    ("per_s3_put_list_request", "AmazonS3", "Requests-Tier1"),
    ("per_s3_get_request", "AmazonS3", "Requests-Tier2"),
];

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

    /// The embedded prices standing in for `region`'s, saying why.
    pub fn embedded_for(region: &str, why: &str) -> ServicePrices {
        let mut p = ServicePrices::embedded();
        p.source = format!("{}, standing in for {region} ({why})", p.source);
        p
    }

    /// `region`'s prices from the Price List API (`found`, by [`PRICE_LIST_LINES`]' fields) in
    /// `month`, each one it did not list staying the embedded one and named in the source. A
    /// listed price more than four times off the embedded one either way (a unit misread, a
    /// glitch) is not believed: no region's list price differs that much.
    pub fn regional(region: &str, month: &str, found: &BTreeMap<String, f64>) -> ServicePrices {
        let embedded = ServicePrices::embedded();
        let mut p = embedded.clone();
        let mut missing = Vec::new();
        for (field, service, usage_type) in PRICE_LIST_LINES {
            let believable = |usd: f64| {
                let list = embedded.get(field).unwrap_or(0.0);
                usd.is_finite() && usd > 0.0 && usd >= list / 4.0 && usd <= list * 4.0
            };
            match found.get(*field) {
                Some(usd) if believable(*usd) => {
                    p.set(field, *usd);
                }
                _ => missing.push(format!("{service} {usage_type}")),
            }
        }
        p.source = format!("AWS Price List API, {region}, {month}");
        if !missing.is_empty() {
            p.source.push_str(&format!(
                "; us-east-1 list prices (embedded) for {}",
                missing.join(", ")
            ));
        }
        p
    }

    /// Lambda, DynamoDB, SNS and Step Functions are billed where the autopilot runs (`hub`, in
    /// `hub_region`); CloudWatch, Config and S3 where it scanned (`scanned`, in
    /// `scanned_region`): a fan-out item's prices take each from its own region.
    pub fn billed_where(
        hub: &ServicePrices,
        hub_region: &str,
        scanned: &ServicePrices,
        scanned_region: &str,
    ) -> ServicePrices {
        let mut p = hub.clone();
        p.per_metric_requested = scanned.per_metric_requested;
        p.per_config_evaluation = scanned.per_config_evaluation;
        p.per_s3_put_list_request = scanned.per_s3_put_list_request;
        p.per_s3_get_request = scanned.per_s3_get_request;
        if hub.source != scanned.source {
            p.source = format!(
                "where it ran ({hub_region}): {}; where it scanned ({scanned_region}): {}",
                hub.source, scanned.source
            );
        }
        p
    }

    /// Every price, by its field's name.
    fn listed(&self) -> [(&'static str, f64); 11] {
        [
            ("per_metric_requested", self.per_metric_requested),
            ("per_cost_explorer_request", self.per_cost_explorer_request),
            ("per_config_evaluation", self.per_config_evaluation),
            ("per_dynamodb_read_unit", self.per_dynamodb_read_unit),
            ("per_dynamodb_write_unit", self.per_dynamodb_write_unit),
            ("per_sns_publish", self.per_sns_publish),
            ("per_lambda_gb_second", self.per_lambda_gb_second),
            ("per_lambda_request", self.per_lambda_request),
            ("per_state_transition", self.per_state_transition),
            ("per_s3_put_list_request", self.per_s3_put_list_request),
            ("per_s3_get_request", self.per_s3_get_request),
        ]
    }

    /// The price named by `field`.
    pub fn get(&self, field: &str) -> Option<f64> {
        self.listed().into_iter().find(|(f, _)| *f == field).map(|(_, usd)| usd)
    }

    /// Sets the price named by `field`; `false` for a field there is not.
    pub fn set(&mut self, field: &str, usd: f64) -> bool {
        let slot = match field {
            "per_metric_requested" => &mut self.per_metric_requested,
            "per_cost_explorer_request" => &mut self.per_cost_explorer_request,
            "per_config_evaluation" => &mut self.per_config_evaluation,
            "per_dynamodb_read_unit" => &mut self.per_dynamodb_read_unit,
            "per_dynamodb_write_unit" => &mut self.per_dynamodb_write_unit,
            "per_sns_publish" => &mut self.per_sns_publish,
            "per_lambda_gb_second" => &mut self.per_lambda_gb_second,
            "per_lambda_request" => &mut self.per_lambda_request,
            "per_state_transition" => &mut self.per_state_transition,
            "per_s3_put_list_request" => &mut self.per_s3_put_list_request,
            "per_s3_get_request" => &mut self.per_s3_get_request,
            _ => return false,
        };
        *slot = usd;
        true
    }

    /// Whether every price is a finite positive figure (a cached copy that is not is asked again).
    pub fn is_sound(&self) -> bool {
        self.listed().iter().all(|(_, p)| p.is_finite() && *p > 0.0)
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
    /// What the run used that has no price here (a model not in [`bedrock_token_prices`]), left
    /// out of `usd` and said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
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
        let mut by_service: BTreeMap<String, f64> = lines
            .into_iter()
            // A figure that is no number is left out rather than recorded as one.
            .filter(|(_, usd)| usd.is_finite() && *usd > 0.0)
            .map(|(service, usd)| (service.to_string(), usd))
            .collect();
        let mut unpriced = Vec::new();
        let mut bedrock = 0.0;
        for (model, t) in &usage.model_tokens {
            match bedrock_token_prices(model) {
                Some((per_in, per_out)) => bedrock += t.input as f64 * per_in + t.output as f64 * per_out,
                None => unpriced.push(format!(
                    "Bedrock tokens of {model} ({} read, {} written): no list price known here",
                    t.input, t.output
                )),
            }
        }
        if bedrock.is_finite() && bedrock > 0.0 {
            by_service.insert("bedrock".into(), bedrock);
        }
        RunCost {
            usd: by_service.values().sum(),
            by_service,
            usage,
            prices: prices.source.clone(),
            unpriced,
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
    /// evaluations put), `transaction_items` (DynamoDB transaction items) and
    /// `input_tokens:<model>`/`output_tokens:<model>` (Bedrock's).
    pub fn from_calls(calls: &BTreeMap<String, u64>, units: &BTreeMap<String, u64>) -> RunUsage {
        let unit = |k: &str| units.get(k).copied().unwrap_or(0);
        let mut usage = RunUsage {
            metrics_requested: unit("metrics"),
            config_evaluations: unit("evaluations"),
            dynamodb_write_units: 2 * unit("transaction_items"),
            ..RunUsage::default()
        };
        for (key, n) in units {
            if let Some(model) = key.strip_prefix("input_tokens:") {
                usage.model_tokens.entry(model.to_string()).or_default().input += n;
            } else if let Some(model) = key.strip_prefix("output_tokens:") {
                usage.model_tokens.entry(model.to_string()).or_default().output += n;
            }
        }
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
                // Billed by its tokens (above).
                "Bedrock Runtime" => {}
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
            model_tokens: self
                .model_tokens
                .iter()
                .map(|(model, t)| {
                    let b = before.model_tokens.get(model).copied().unwrap_or_default();
                    let t = ModelTokens {
                        input: t.input.saturating_sub(b.input),
                        output: t.output.saturating_sub(b.output),
                    };
                    (model.clone(), t)
                })
                .filter(|(_, t)| t.input + t.output > 0)
                .collect(),
        }
    }
}

/// Dollars as a person reads a small cost: cents when there are some, else a fraction of a cent,
/// and "under $0.0001" below what four places show.
pub fn shown_usd(usd: f64) -> String {
    // What rounds to a cent reads as cents ($0.00996 is "$0.01", not "$0.0100").
    if usd >= 0.009_95 {
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
    fn bedrock_is_billed_by_the_tokens_of_each_model_and_an_unknown_model_is_said_not_priced() {
        let c = calls(&[("Bedrock Runtime.Converse", 2)]);
        let units = calls(&[
            ("input_tokens:global.amazon.nova-2-lite-v1:0", 824),
            ("output_tokens:global.amazon.nova-2-lite-v1:0", 122),
            ("input_tokens:example.private-model-v9", 10),
            ("output_tokens:example.private-model-v9", 5),
        ]);
        let usage = RunUsage::from_calls(&c, &units);
        assert_eq!(usage.free_calls, 0, "Converse is billed by its tokens");
        assert_eq!(
            usage.model_tokens["global.amazon.nova-2-lite-v1:0"],
            ModelTokens {
                input: 824,
                output: 122
            }
        );
        let cost = RunCost::estimate(usage, &ServicePrices::embedded());
        // $0.30 and $2.50 per million tokens read and written.
        assert!(
            (cost.by_service["bedrock"] - (824.0 * 0.30 + 122.0 * 2.50) / 1e6).abs() < 1e-15,
            "{cost:?}"
        );
        assert_eq!(cost.usd, cost.by_service["bedrock"]);
        assert_eq!(cost.unpriced.len(), 1, "{cost:?}");
        assert!(cost.unpriced[0].contains("example.private-model-v9 (10 read, 5 written)"));
        // A geography's profile is priced as its model; an unknown geography is not a model's.
        assert_eq!(
            bedrock_token_prices("eu.amazon.nova-lite-v1:0"),
            bedrock_token_prices("amazon.nova-lite-v1:0")
        );
        assert_eq!(bedrock_token_prices("mars.amazon.nova-lite-v1:0"), None);
    }

    #[test]
    fn a_region_s_prices_are_the_price_list_s_where_it_lists_them_and_the_source_names_the_rest() {
        let found: BTreeMap<String, f64> = [
            ("per_metric_requested", 0.000_012),
            ("per_lambda_gb_second", 0.000_015),
            ("per_sns_publish", f64::NAN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let p = ServicePrices::regional("eu-south-1", "2026-12", &found);
        assert_eq!(p.per_metric_requested, 0.000_012);
        assert_eq!(p.per_lambda_gb_second, 0.000_015);
        let embedded = ServicePrices::embedded();
        assert_eq!(
            p.per_sns_publish, embedded.per_sns_publish,
            "a price that is no number is not used"
        );
        assert_eq!(p.per_cost_explorer_request, embedded.per_cost_explorer_request);
        assert!(p.is_sound());
        assert!(
            p.source
                .starts_with("AWS Price List API, eu-south-1, 2026-12; us-east-1 list prices (embedded) for ")
                && p.source.contains("AmazonSNS Requests-Tier1")
                && p.source.contains("AmazonS3 Requests-Tier1")
                && !p.source.contains("CW:GMD-Metrics"),
            "{}",
            p.source
        );
        // A listed price far off the list price (a unit misread) is not believed.
        let off: BTreeMap<String, f64> = [("per_metric_requested".to_string(), 0.01)].into_iter().collect();
        let q = ServicePrices::regional("eu-south-1", "2026-12", &off);
        assert_eq!(q.per_metric_requested, embedded.per_metric_requested);
        assert!(q.source.contains("AmazonCloudWatch CW:GMD-Metrics"), "{}", q.source);
        let mut bad = p.clone();
        assert!(bad.set("per_s3_get_request", 0.0));
        assert!(!bad.is_sound());
        assert!(!bad.set("per_nothing", 1.0));
    }

    #[test]
    fn small_costs_read_as_a_person_would_write_them() {
        assert_eq!(shown_usd(0.0353), "$0.04");
        assert_eq!(shown_usd(0.000_137), "$0.0001");
        assert_eq!(shown_usd(0.000_04), "under $0.0001");
        assert_eq!(shown_usd(0.0), "$0");
        assert_eq!(shown_usd(0.009_96), "$0.01");
    }
}
