//! Actions. Each one declares the IAM permissions it needs, the states it may act from, and its
//! rollback; re-checks the resource right before acting; and returns the pre-state it captured.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{ActionKind, Finding};

/// What an action is allowed to do and needs, stated once; the SAM template is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionDeclaration {
    pub action: ActionKind,
    /// IAM actions the action itself needs (including its re-check).
    pub permissions: &'static [&'static str],
    /// Resource states the action may start from.
    pub acts_from_states: &'static [&'static str],
    /// IAM actions its rollback needs.
    pub rollback_permissions: &'static [&'static str],
}

pub use crate::state::rollback::Rollback;

impl Rollback {
    /// Whether this way back undoes `finding`'s own action on `finding`'s own resource (an action
    /// record is in a table other roles can write: a recipe for another resource, or of another
    /// kind, is never run).
    pub fn is_for(&self, finding: &crate::model::Finding) -> bool {
        use crate::model::ActionKind;
        let r = &finding.resource;
        match self {
            Rollback::StartInstance {
                instance_id, region, ..
            } => finding.action == ActionKind::Stop && *instance_id == r.id && *region == r.region,
            Rollback::RecreateVolume { spec, .. } => {
                finding.action == ActionKind::SnapshotAndDelete
                    && spec.source_volume_id == r.id
                    && spec.availability_zone.starts_with(r.region.as_str())
            }
            Rollback::RestorePublicAccessBlock { bucket, .. } => {
                finding.action == ActionKind::BlockPublicAccess && *bucket == r.id
            }
            Rollback::Nothing { .. } | Rollback::Irreversible { .. } => true,
        }
    }
}

impl std::fmt::Display for Rollback {
    /// The way back as a person reads it in an audit trail or Slack.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::StartInstance {
                instance_id,
                region,
                hibernated: false,
                ..
            } => write!(f, "start {instance_id} again ({region})"),
            Rollback::StartInstance {
                instance_id,
                region,
                hibernated: true,
                ..
            } => write!(f, "resume {instance_id} from hibernation ({region})"),
            Rollback::RecreateVolume { spec, .. } => write!(
                f,
                "recreate {} ({} GiB {} in {}) from the snapshot taken before the delete",
                spec.source_volume_id, spec.size_gib, spec.volume_type, spec.availability_zone
            ),
            Rollback::RestorePublicAccessBlock { bucket, prior, .. } => write!(
                f,
                "put back {bucket}'s Block Public Access: {}",
                crate::inventory::shown_block(*prior)
            ),
            Rollback::Nothing { reason } | Rollback::Irreversible { reason } => write!(f, "none: {reason}"),
        }
    }
}

/// An action that cannot be undone, known before anything is re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irreversible {
    /// Why there is no way back.
    pub reason: String,
    /// Whether the policy accepts such actions (then only on a human's approval).
    pub accepted: bool,
}

/// How an action ended in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Done and verified.
    Done(String),
    /// AWS accepted the change (its own answer: the call's `CurrentState`, the put's success),
    /// but reads still showed the old state after the bounded wait: AWS's reads trail its writes.
    /// Recorded as done, its rollback available; the hourly sweep confirms it.
    Unverified(String),
    /// Started but not finished (a snapshot still pending); a later run finishes it.
    Deferred(String),
}

/// Why a finding is not acted on after its re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The decision is no longer true on fresh data (gone, exempt now, busy, tagged, attached,
    /// private): an approval of it is closed as obsolete.
    Obsolete(String),
    /// Not now, for a reason that does not judge the decision (its fresh data could not be
    /// read, or it waits for a person): nothing is done.
    NotNow(String),
}

/// The result of re-checking one finding right before acting: the pre-state, or why not.
pub type Recheck = std::result::Result<serde_json::Value, Refused>;

/// One kind of remediation.
#[async_trait]
pub trait Remediation: Send + Sync {
    /// What it needs and may do.
    fn declaration(&self) -> &'static ActionDeclaration;

    /// Re-reads every finding's resource (batched) and re-evaluates the rule's own condition on
    /// that fresh data (not only the guards): `Ok(pre-state)` if the action may still go ahead,
    /// `Err` if not. Findings whose resource vanished are obsolete.
    async fn recheck(&self, findings: &[&Finding]) -> Result<HashMap<String, Recheck>>;

    /// How the action will be undone, known before it runs so that it is recorded first.
    fn rollback_for(&self, finding: &Finding, pre_state: &serde_json::Value) -> Rollback;

    /// `Some(why)` when, on the fresh pre-state, this action must be a person's decision even in
    /// auto mode (an instance whose public address a stop releases): it is asked about instead.
    fn asks_first(&self, _finding: &Finding, _pre_state: &serde_json::Value) -> Option<String> {
        None
    }

    /// `Some` when the policy makes this action impossible to undo (e.g. a delete without a
    /// snapshot): the flow then never runs it automatically, and asks only if the policy accepts it.
    fn irreversible(&self, _finding: &Finding) -> Option<Irreversible> {
        None
    }

    /// Performs the action and verifies it; says what happened.
    async fn execute(&self, finding: &Finding, pre_state: &serde_json::Value) -> Result<Executed>;
}

/// The waits between verification reads (0.5, 1, 2 and 4 s: 7.5 s in all, inside the policy's
/// time margin): EC2 and S3 answer a read right after a write with the old state for a while
/// (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
pub const SETTLE_WAITS_MS: [u64; 4] = [500, 1000, 2000, 4000];

/// What the verification reads found.
pub struct Settled<T> {
    /// The last reading that answered.
    pub reading: Option<T>,
    /// Whether a reading showed the change.
    pub shown: bool,
    /// The last read's error, when it failed.
    pub error: Option<Error>,
}

impl<T> Settled<T> {
    /// What the reads saw, as a person reads it (`seen` says a reading).
    pub fn seen(&self, seen: impl Fn(&T) -> String) -> String {
        match (&self.reading, &self.error) {
            (_, Some(e)) => format!("the last read failed ({e})"),
            (Some(r), None) => seen(r),
            (None, None) => "nothing could be read".into(),
        }
    }
}

/// Reads with `read` until `shows` holds for what it read, waiting [`SETTLE_WAITS_MS`] between
/// tries (a read that fails is tried again the same way). A write AWS accepted is never taken for
/// a failed one because a read after it failed: the caller sees both what was read and the error.
pub async fn settle<T, F, Fut>(read: F, shows: impl Fn(&T) -> bool) -> Settled<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut waits = SETTLE_WAITS_MS.iter();
    let mut settled = Settled {
        reading: None,
        shown: false,
        error: None,
    };
    loop {
        match read().await {
            Ok(v) if shows(&v) => {
                return Settled {
                    reading: Some(v),
                    shown: true,
                    error: None,
                }
            }
            Ok(v) => {
                settled.reading = Some(v);
                settled.error = None;
            }
            Err(e) => settled.error = Some(e),
        }
        match waits.next() {
            Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(*ms)).await,
            None => return settled,
        }
    }
}

/// How long the verification reads may wait in all, as a person reads it.
pub fn settle_seconds() -> f64 {
    SETTLE_WAITS_MS.iter().sum::<u64>() as f64 / 1000.0
}

/// How long a rollback waits for an instance it started to be `running`.
pub const START_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a rollback did: what it says, and the resource it made (a restored volume has a new id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    pub detail: String,
    /// The id of a resource the rollback created in place of the one the action removed.
    pub restored: Option<String>,
}

impl Undone {
    pub fn said(detail: String) -> Self {
        Undone { detail, restored: None }
    }
}

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A failed re-check or verification as an error.
pub fn precondition(resource: &str, message: impl Into<String>) -> Error {
    Error::Precondition {
        resource: resource.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn a_way_back_reads_as_a_person_says_it_never_as_rust_debug() {
        let start = Rollback::StartInstance {
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
            hibernated: false,
            launched_at: None,
        };
        assert_eq!(start.to_string(), "start i-0abc again (eu-west-1)");
        let restore = Rollback::RestorePublicAccessBlock {
            bucket: "photos".into(),
            region: "us-east-1".into(),
            prior: None,
            left: None,
        };
        assert_eq!(
            restore.to_string(),
            "put back photos's Block Public Access: not set (all four off)"
        );
        for shown in [start.to_string(), restore.to_string()] {
            assert!(!shown.contains('{') && !shown.contains("Some("), "{shown}");
        }
    }
}
