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
