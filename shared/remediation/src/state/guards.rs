//! The guards read right before anything changes: the emergency stop and a resource's
//! snoozes, both failing closed. The flow reads them before it acts, and an action with a long
//! wait reads them again before its irreversible step.

use chrono::{DateTime, Utc};

use super::StateStore;

/// Why `resource` may not be acted on right now: a snooze in force covers it, or its snoozes
/// cannot be read (fails closed).
pub async fn snoozed(state: &dyn StateStore, resource: &crate::model::Resource, now: DateTime<Utc>) -> Option<String> {
    match state.snoozes_of(&resource.id, now).await {
        Ok(found) => super::Snoozes::new(found)
            .covering(resource)
            .map(super::Snooze::describe),
        Err(e) => Some(format!("its snoozes could not be read ({e}), so it counts as snoozed")),
    }
}

/// Why nothing may be done right now: the emergency stop is on, or cannot be read (fails closed).
pub async fn stopped(state: &dyn StateStore) -> Option<String> {
    match state.emergency_stop().await {
        Ok(Some(stop)) if stop.on => Some(format!(
            "emergency stop is on (set by {} at {}: {})",
            stop.by, stop.at, stop.reason
        )),
        Ok(_) => None,
        Err(e) => Some(format!(
            "the emergency stop could not be read ({e}), so it counts as on"
        )),
    }
}
