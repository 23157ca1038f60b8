//! Tracing: JSON lines on stderr in Lambda (or with `FINOPS_LOG_FORMAT=json`), readable text
//! elsewhere; `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok()
        || std::env::var("FINOPS_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// The CloudWatch namespace of the system's own metrics (the template's dashboard reads it).
pub const NAMESPACE: &str = "FinOpsAutopilot";

/// One CloudWatch Embedded Metric Format record: `dimensions` name the series, `metrics` are
/// `(name, value, unit)`.
pub fn emf(at_ms: i64, dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) -> serde_json::Value {
    let mut record = serde_json::json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, _, u)| serde_json::json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }]
        }
    });
    for (k, v) in dimensions {
        record[*k] = serde_json::json!(v);
    }
    for (n, v, _) in metrics {
        record[*n] = serde_json::json!(v);
    }
    record
}

/// A run's metrics: findings and estimated dollars per rule, outcomes per rule and kind.
pub fn run_metrics(report: &crate::model::RunReport, at_ms: i64) -> Vec<serde_json::Value> {
    let mut out = vec![emf(
        at_ms,
        &[("Rule", &report.rule)],
        &[
            ("Findings", report.findings.len() as f64, "Count"),
            (
                "EstimatedMonthlySavingsUsd",
                report.estimated_monthly_savings_usd,
                "None",
            ),
        ],
    )];
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for o in &report.outcomes {
        let kind = serde_json::to_value(o.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *by_kind.entry(kind).or_default() += 1;
    }
    for (kind, n) in by_kind {
        out.push(emf(
            at_ms,
            &[("Rule", &report.rule), ("Outcome", &kind)],
            &[("Outcomes", n as f64, "Count")],
        ));
    }
    out
}

/// Dollars a executed action realises (per month).
pub fn realised_metric(rule: &str, usd: f64, at_ms: i64) -> serde_json::Value {
    emf(at_ms, &[("Rule", rule)], &[("RealisedMonthlySavingsUsd", usd, "None")])
}

/// Writes EMF records to stdout inside Lambda, where CloudWatch Logs turns them into metrics;
/// elsewhere (tests, `make invoke`'s stdout contract) it writes nothing.
pub fn emit(records: &[serde_json::Value]) {
    if std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_err() {
        return;
    }
    for r in records {
        println!("{r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_record_names_its_dimensions_and_metrics_and_carries_their_values() {
        let r = emf(
            1_795_680_000_000,
            &[("Rule", "idle-ec2")],
            &[("Findings", 3.0, "Count")],
        );
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "FinOpsAutopilot");
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Rule"]])
        );
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([{"Name": "Findings", "Unit": "Count"}])
        );
        assert_eq!(
            (r["Rule"].as_str(), r["Findings"].as_f64()),
            (Some("idle-ec2"), Some(3.0))
        );
        assert_eq!(r["_aws"]["Timestamp"], 1_795_680_000_000i64);
    }
}
