//! Handles the EventBridge scheduled event that triggers an idle-ec2 scan.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::aws::cloudwatch::CloudWatch;
use remediation::aws::ec2::Ec2;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::rules::idle_ec2::{self, Ports};
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    handle(event.payload, deps, Utc::now()).await
}

/// Checks that `payload` is a scheduled event, then runs one scan at `now`.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    check_scheduled_event(&payload)?;
    let ec2 = Ec2::new(deps.clients.ec2.clone(), deps.clients.region.clone());
    let usage = CloudWatch::new(deps.clients.cloudwatch.clone(), deps.metrics_concurrency);
    let mut report = idle_ec2::run(
        Ports {
            ec2: &ec2,
            usage: &usage,
        },
        &deps.policy,
        deps.sinks(),
        now,
    )
    .await?;
    report.notes.insert(0, format!("policy: {}", deps.policy_source));
    Ok(report)
}

/// Accepts only an EventBridge "Scheduled Event" (what a schedule rule sends).
pub fn check_scheduled_event(payload: &serde_json::Value) -> Result<(), Error> {
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(payload.clone())
        .map_err(|e| Error::Event(format!("expected an EventBridge scheduled event: {e}")))?;
    if event.detail_type != "Scheduled Event" || event.source != "aws.events" {
        return Err(Error::Event(format!(
            "expected source \"aws.events\" and detail-type \"Scheduled Event\", got source {:?} and detail-type {:?}",
            event.source, event.detail_type
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        let text = include_str!("../../../events/idle-ec2/scheduled.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_sample_scheduled_event_is_accepted() {
        check_scheduled_event(&sample()).unwrap();
    }

    #[test]
    fn an_event_from_another_source_is_refused_with_what_it_was() {
        let mut e = sample();
        e["source"] = "aws.config".into();
        e["detail-type"] = "Config Rules Compliance Change".into();
        let err = check_scheduled_event(&e).unwrap_err().to_string();
        assert!(
            err.contains("aws.config") && err.contains("Config Rules Compliance Change"),
            "{err}"
        );
    }

    #[test]
    fn a_payload_that_is_not_an_eventbridge_event_is_refused() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!([1, 2]),
            serde_json::json!("run"),
        ] {
            let err = check_scheduled_event(&bad).unwrap_err();
            assert!(matches!(err, Error::Event(_)), "{err}");
        }
    }
}
