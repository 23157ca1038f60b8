//! The invocation's deadline (Lambda's): how long a run has left, and how long an action may
//! still wait. Below the actions and the flow, which both read it.

use chrono::{DateTime, Duration, Utc};

use crate::policy::Policy;

tokio::task_local! {
    /// The invocation's deadline (Lambda's), when the flow runs inside one.
    static DEADLINE: DateTime<Utc>;
}

/// Runs `fut` knowing the invocation's deadline (Lambda's `context.deadline`): acting flows
/// inside it start no new action, and cut their waits, once less than the policy's margin is left.
pub async fn within_deadline<F: std::future::Future>(deadline: DateTime<Utc>, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// Lambda's deadlines are epoch milliseconds of now plus the timeout: one before 2020 is no
/// deadline at all but a runtime emulator's constant (`cargo lambda watch` sends 600000, 1970's
/// first ten minutes), under which nothing could ever act.
const PLAUSIBLE_DEADLINE_MS: i64 = 1_577_836_800_000;

/// Runs `fut` within Lambda's deadline (`context.deadline`: milliseconds since the epoch); a
/// deadline that is no time at all (0, out of range, or before 2020: an emulator's constant, said
/// in a warning) leaves the flow without one.
pub async fn within_invocation<F: std::future::Future>(deadline_ms: u64, fut: F) -> F::Output {
    match deadline_of(deadline_ms) {
        Some(deadline) => within_deadline(deadline, fut).await,
        None => fut.await,
    }
}

/// The deadline `deadline_ms` names, if it is a plausible one.
fn deadline_of(deadline_ms: u64) -> Option<DateTime<Utc>> {
    let ms = i64::try_from(deadline_ms).ok().filter(|ms| *ms > 0)?;
    if ms < PLAUSIBLE_DEADLINE_MS {
        tracing::warn!(
            deadline_ms,
            "the runtime's deadline is no real time (a local emulator's constant): running without one"
        );
        return None;
    }
    DateTime::from_timestamp_millis(ms)
}

/// How long the invocation has left, when it has a deadline.
pub fn time_left() -> Option<Duration> {
    DEADLINE.try_with(|d| *d - Utc::now()).ok()
}

/// How long an action may still wait (for a snapshot, an instance to start): `wanted`, cut to
/// the invocation's time left less the policy's margin.
pub fn wait_budget(wanted: std::time::Duration, policy: &Policy) -> std::time::Duration {
    match time_left() {
        None => wanted,
        Some(left) => {
            let usable = (left - Duration::seconds(i64::from(policy.action_time_margin_seconds)))
                .to_std()
                .unwrap_or_default();
            wanted.min(usable)
        }
    }
}
