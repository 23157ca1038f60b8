//! CloudWatch alarm notifications: what CloudWatch publishes to SNS when an alarm whose actions
//! name the FinOps topic changes state (the template's dead-letter and error alarms do). They
//! carry no FinOps `type`; slack-notify shows them.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A CloudWatch alarm's state change as published to SNS.
///
/// Not `aws_lambda_events`' `CloudWatchAlarmPayload`: that type requires a description and every
/// trigger field, but CloudWatch sends `"AlarmDescription": null` for an alarm without one, and
/// older or metric-math notifications lack some trigger fields; a refused alarm would fail into
/// the dead-letter queue, which is what this type exists to stop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmNotification {
    pub alarm_name: String,
    #[serde(default)]
    pub alarm_description: Option<String>,
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub new_state_value: String,
    pub new_state_reason: String,
    /// As CloudWatch writes it: `2026-11-26T06:05:12.345+0000`.
    pub state_change_time: String,
    /// The region's display name (`US East (N. Virginia)`).
    pub region: String,
    #[serde(default)]
    pub alarm_arn: Option<String>,
    #[serde(default)]
    pub old_state_value: Option<String>,
    #[serde(default)]
    pub trigger: Option<AlarmTrigger>,
}

/// What the alarm watches and when it fires.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmTrigger {
    #[serde(default)]
    pub metric_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// `MAXIMUM`, `SUM`, … (absent for a percentile or metric math).
    #[serde(default)]
    pub statistic: Option<String>,
    /// A percentile such as `p99`.
    #[serde(default)]
    pub extended_statistic: Option<String>,
    #[serde(default)]
    pub dimensions: Option<Vec<AlarmDimension>>,
    #[serde(default)]
    pub period: Option<i64>,
    #[serde(default)]
    pub evaluation_periods: Option<i64>,
    #[serde(default)]
    pub datapoints_to_alarm: Option<i64>,
    #[serde(default)]
    pub comparison_operator: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// A metric-math alarm's queries; the one returning data is what the alarm compares.
    #[serde(default)]
    pub metrics: Option<Vec<AlarmMetricQuery>>,
}

/// A dimension (CloudWatch writes these two keys in lower case).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlarmDimension {
    pub name: String,
    pub value: String,
}

/// One query of a metric-math alarm.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmMetricQuery {
    pub id: String,
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub return_data: Option<bool>,
}

impl AlarmNotification {
    /// When the state changed, if CloudWatch's timestamp reads as one.
    pub fn changed_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_str(&self.state_change_time, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_rfc3339(&self.state_change_time))
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The region code from the alarm's ARN (`us-east-1`).
    pub fn region_code(&self) -> Option<&str> {
        self.alarm_arn.as_deref()?.split(':').nth(3).filter(|r| !r.is_empty())
    }

    /// What the alarm watches: `AWS/SQS ApproximateNumberOfMessagesVisible (QueueName=dlq)`, or
    /// a metric-math alarm's expression.
    pub fn metric(&self) -> Option<String> {
        let t = self.trigger.as_ref()?;
        if let (Some(ns), Some(name)) = (&t.namespace, &t.metric_name) {
            let dims: Vec<String> = t
                .dimensions
                .iter()
                .flatten()
                .map(|d| format!("{}={}", d.name, d.value))
                .collect();
            return Some(if dims.is_empty() {
                format!("{ns} {name}")
            } else {
                format!("{ns} {name} ({})", dims.join(", "))
            });
        }
        let queries = t.metrics.as_deref()?;
        let returned = queries
            .iter()
            .find(|q| q.return_data == Some(true))
            .or(queries.first())?;
        returned
            .expression
            .as_ref()
            .map(|e| format!("metric math: {e}"))
            .or_else(|| returned.label.clone())
    }

    /// When it fires: `Maximum > 0 for 1 of 1 period(s) of 300 s`.
    pub fn condition(&self) -> Option<String> {
        let t = self.trigger.as_ref()?;
        let op = match t.comparison_operator.as_deref()? {
            "GreaterThanThreshold" => ">".to_string(),
            "GreaterThanOrEqualToThreshold" => "≥".to_string(),
            "LessThanThreshold" => "<".to_string(),
            "LessThanOrEqualToThreshold" => "≤".to_string(),
            other => other.to_string(),
        };
        let stat = match (&t.statistic, &t.extended_statistic) {
            (Some(s), _) => {
                let lower = s.to_lowercase();
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            }
            (None, Some(p)) => p.clone(),
            (None, None) => "value".to_string(),
        };
        let mut out = match t.threshold {
            Some(th) => format!("{stat} {op} {th}"),
            None => format!("{stat} {op}"),
        };
        if let Some(n) = t.evaluation_periods {
            let m = t.datapoints_to_alarm.unwrap_or(n);
            out.push_str(&format!(" for {m} of {n} period(s)"));
            if let Some(p) = t.period {
                out.push_str(&format!(" of {p} s"));
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error alarm of `infra/template.yaml` (metric math), as CloudWatch publishes it.
    const METRIC_MATH: &str = r#"{"AlarmName":"finops-ErrorsAlarm-X1","AlarmDescription":null,
        "AWSAccountId":"123456789012","NewStateValue":"ALARM","NewStateReason":"Threshold Crossed: 1 out of the last 1 datapoints [2.0 (26/11/26 06:00:00)] was greater than the threshold (0.0).",
        "StateChangeTime":"2026-11-26T06:05:12.345+0000","Region":"EU (Ireland)",
        "AlarmArn":"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:finops-ErrorsAlarm-X1","OldStateValue":"OK",
        "Trigger":{"Period":300,"EvaluationPeriods":1,"ComparisonOperator":"GreaterThanThreshold","Threshold":0.0,
        "TreatMissingData":"notBreaching","EvaluateLowSampleCountPercentile":"",
        "Metrics":[{"Expression":"SUM([idle, ebs])","Id":"errors","ReturnData":true},
                   {"Id":"idle","MetricStat":{"Metric":{"Dimensions":[{"value":"idle","name":"FunctionName"}],"MetricName":"Errors","Namespace":"AWS/Lambda"},"Period":300,"Stat":"Sum"},"ReturnData":false}]}}"#;

    #[test]
    fn a_metric_math_alarm_without_a_description_reads() {
        let a: AlarmNotification = serde_json::from_str(METRIC_MATH).unwrap();
        assert_eq!(a.alarm_description, None);
        assert_eq!(a.metric().as_deref(), Some("metric math: SUM([idle, ebs])"));
        assert_eq!(
            a.condition().as_deref(),
            Some("value > 0 for 1 of 1 period(s) of 300 s")
        );
        assert_eq!(a.region_code(), Some("eu-west-1"));
        assert_eq!(a.changed_at(), "2026-11-26T06:05:12.345Z".parse().ok());
    }

    #[test]
    fn a_single_metric_alarm_names_its_metric_dimensions_and_statistic() {
        let a: AlarmNotification = serde_json::from_str(
            r#"{"AlarmName":"dlq","AlarmDescription":"x","AWSAccountId":"1","NewStateValue":"OK",
            "NewStateReason":"r","StateChangeTime":"2026-11-26T06:05:12.345+0000","Region":"US East (N. Virginia)",
            "OldStateValue":"ALARM","Trigger":{"MetricName":"ApproximateNumberOfMessagesVisible","Namespace":"AWS/SQS",
            "Statistic":"MAXIMUM","Unit":null,"Dimensions":[{"value":"finops-dlq","name":"QueueName"}],"Period":300,
            "EvaluationPeriods":3,"DatapointsToAlarm":2,"ComparisonOperator":"GreaterThanOrEqualToThreshold","Threshold":5.5}}"#,
        )
        .unwrap();
        assert_eq!(
            a.metric().as_deref(),
            Some("AWS/SQS ApproximateNumberOfMessagesVisible (QueueName=finops-dlq)")
        );
        assert_eq!(
            a.condition().as_deref(),
            Some("Maximum ≥ 5.5 for 2 of 3 period(s) of 300 s")
        );
        assert_eq!(a.region_code(), None);
    }
}
