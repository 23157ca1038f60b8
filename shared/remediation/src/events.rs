//! Checks of the events that trigger the functions: anything else is refused with an error that
//! says what arrived.

use aws_lambda_events::eventbridge::EventBridgeEvent;

use crate::error::{Error, Result};

/// What a scheduled trigger tells the function.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// The account the schedule runs in (EventBridge names it in every event).
    pub account: String,
}

/// Accepts only an EventBridge "Scheduled Event" (what a schedule rule sends).
pub fn scheduled(payload: &serde_json::Value) -> Result<Scheduled> {
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(payload.clone())
        .map_err(|e| Error::Event(format!("expected an EventBridge scheduled event: {e}")))?;
    if event.detail_type != "Scheduled Event" || event.source != "aws.events" {
        return Err(Error::Event(format!(
            "expected source \"aws.events\" and detail-type \"Scheduled Event\", got source {:?} and detail-type {:?}",
            event.source, event.detail_type
        )));
    }
    Ok(Scheduled {
        account: event.account.unwrap_or_default(),
    })
}

/// An AWS Config "Config Rules Compliance Change" event, as EventBridge delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceChange {
    pub account: String,
    pub rule_name: String,
    pub resource_type: String,
    pub resource_id: String,
    /// `COMPLIANT`, `NON_COMPLIANT`, `NOT_APPLICABLE` or `INSUFFICIENT_DATA`.
    pub compliance: String,
}

/// Accepts only a Config Rules Compliance Change event naming a resource and its new compliance.
pub fn compliance_change(payload: &serde_json::Value) -> Result<ComplianceChange> {
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(payload.clone())
        .map_err(|e| Error::Event(format!("expected an EventBridge Config compliance event: {e}")))?;
    if event.detail_type != "Config Rules Compliance Change" || event.source != "aws.config" {
        return Err(Error::Event(format!(
            "expected source \"aws.config\" and detail-type \"Config Rules Compliance Change\", got source {:?} and detail-type {:?}",
            event.source, event.detail_type
        )));
    }
    let field = |path: &[&str]| -> Result<String> {
        let mut v = &event.detail;
        for key in path {
            v = v
                .get(key)
                .ok_or_else(|| Error::Event(format!("compliance event has no detail.{}", path.join("."))))?;
        }
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Event(format!("detail.{} is not a string", path.join("."))))
    };
    Ok(ComplianceChange {
        account: event.account.clone().unwrap_or_default(),
        rule_name: field(&["configRuleName"])?,
        resource_type: field(&["resourceType"])?,
        resource_id: field(&["resourceId"])?,
        compliance: field(&["newEvaluationResult", "complianceType"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::from_str(include_str!("../../../events/idle-ec2/scheduled.json")).unwrap()
    }

    #[test]
    fn the_sample_scheduled_event_is_accepted_with_its_account() {
        assert_eq!(scheduled(&sample()).unwrap().account, "123456789012");
    }

    #[test]
    fn an_event_from_another_source_is_refused_with_what_it_was() {
        let mut e = sample();
        e["source"] = "aws.config".into();
        e["detail-type"] = "Config Rules Compliance Change".into();
        let err = scheduled(&e).unwrap_err().to_string();
        assert!(
            err.contains("aws.config") && err.contains("Config Rules Compliance Change"),
            "{err}"
        );
    }

    #[test]
    fn a_compliance_change_names_the_bucket_and_its_new_state() {
        let e: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/s3-public/config-compliance-change.json")).unwrap();
        let c = compliance_change(&e).unwrap();
        assert_eq!(c.resource_type, "AWS::S3::Bucket");
        assert_eq!(c.compliance, "NON_COMPLIANT");
        assert!(!c.resource_id.is_empty());
        let mut missing = e.clone();
        missing["detail"].as_object_mut().unwrap().remove("resourceId");
        assert!(compliance_change(&missing)
            .unwrap_err()
            .to_string()
            .contains("detail.resourceId"));
        assert!(compliance_change(&sample()).is_err());
    }

    #[test]
    fn a_payload_that_is_not_an_eventbridge_event_is_refused() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!([1, 2]),
            serde_json::json!("run"),
        ] {
            assert!(matches!(scheduled(&bad), Err(Error::Event(_))));
        }
    }
}
