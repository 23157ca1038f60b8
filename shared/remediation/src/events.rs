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

/// What an AWS Config custom rule invocation asks about.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigInvocation {
    /// A resource changed; the item (type, id, status, tags, capture time) is in the event.
    Change(crate::aws::config::ConfigItem),
    /// A resource changed but its item was too large for the event: fetch it.
    Oversized {
        resource_type: String,
        resource_id: String,
        capture_time: chrono::DateTime<chrono::Utc>,
    },
    /// The periodic evaluation of every resource.
    Scheduled { at: chrono::DateTime<chrono::Utc> },
}

/// A Config custom rule event (`ConfigEvent`), its invoking event parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRuleEvent {
    pub account: String,
    pub rule_name: String,
    pub result_token: String,
    /// The resource left the rule's scope: evaluate it NOT_APPLICABLE.
    pub event_left_scope: bool,
    pub invocation: ConfigInvocation,
}

fn text<'a>(v: &'a serde_json::Value, path: &[&str]) -> Result<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur
            .get(k)
            .ok_or_else(|| Error::Event(format!("invokingEvent has no {}", path.join("."))))?;
    }
    cur.as_str()
        .ok_or_else(|| Error::Event(format!("invokingEvent.{} is not a string", path.join("."))))
}

fn time(v: &serde_json::Value, path: &[&str]) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = text(v, path)?;
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| Error::Event(format!("invokingEvent.{} is not a time ({t:?}): {e}", path.join("."))))
}

/// Accepts only a Config custom rule event with a result token and a known message type.
pub fn config_rule(payload: &serde_json::Value) -> Result<ConfigRuleEvent> {
    let event: aws_lambda_events::event::config::ConfigEvent = serde_json::from_value(payload.clone())
        .map_err(|e| Error::Event(format!("expected an AWS Config rule event: {e}")))?;
    let invoking = event
        .invoking_event
        .as_deref()
        .ok_or_else(|| Error::Event("Config rule event without invokingEvent".into()))?;
    let invoking: serde_json::Value =
        serde_json::from_str(invoking).map_err(|e| Error::Event(format!("invokingEvent is not JSON: {e}")))?;
    let result_token = event
        .result_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Event("Config rule event without resultToken".into()))?;
    let invocation = match text(&invoking, &["messageType"])? {
        "ConfigurationItemChangeNotification" => {
            let item = invoking
                .get("configurationItem")
                .ok_or_else(|| Error::Event("invokingEvent has no configurationItem".into()))?;
            let tags = match item.get("tags") {
                Some(serde_json::Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Default::default(),
            };
            ConfigInvocation::Change(crate::aws::config::ConfigItem {
                resource_type: text(item, &["resourceType"])?.to_string(),
                resource_id: text(item, &["resourceId"])?.to_string(),
                status: text(item, &["configurationItemStatus"])?.to_string(),
                tags,
                capture_time: time(item, &["configurationItemCaptureTime"])?,
            })
        }
        "OversizedConfigurationItemChangeNotification" => ConfigInvocation::Oversized {
            resource_type: text(&invoking, &["configurationItemSummary", "resourceType"])?.to_string(),
            resource_id: text(&invoking, &["configurationItemSummary", "resourceId"])?.to_string(),
            capture_time: time(&invoking, &["configurationItemSummary", "configurationItemCaptureTime"])?,
        },
        "ScheduledNotification" => ConfigInvocation::Scheduled {
            at: time(&invoking, &["notificationCreationTime"])?,
        },
        other => return Err(Error::Event(format!("unknown Config messageType {other:?}"))),
    };
    Ok(ConfigRuleEvent {
        account: event.account_id.unwrap_or_default(),
        rule_name: event.config_rule_name.unwrap_or_default(),
        result_token,
        event_left_scope: event.event_left_scope,
        invocation,
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
    fn every_config_rule_sample_parses_to_its_invocation() {
        let load = |name: &str| -> serde_json::Value {
            let path = format!("{}/../../events/tag-compliance/{name}", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let change = config_rule(&load("config-item-change.json")).unwrap();
        let ConfigInvocation::Change(item) = &change.invocation else {
            panic!("{change:?}")
        };
        assert_eq!(item.resource_type, "AWS::EC2::Instance");
        assert_eq!(item.tags.get("Owner").map(String::as_str), Some("ana"));
        assert!(!change.result_token.is_empty());
        assert!(matches!(
            config_rule(&load("config-oversized-change.json")).unwrap().invocation,
            ConfigInvocation::Oversized { .. }
        ));
        assert!(matches!(
            config_rule(&load("config-scheduled.json")).unwrap().invocation,
            ConfigInvocation::Scheduled { .. }
        ));
        let mut bad = load("config-item-change.json");
        bad["invokingEvent"] = "{not json".into();
        assert!(config_rule(&bad)
            .unwrap_err()
            .to_string()
            .contains("invokingEvent is not JSON"));
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
