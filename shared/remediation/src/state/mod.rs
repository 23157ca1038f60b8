//! State in one DynamoDB table (`pk`/`sk` strings): approval requests, action records with their
//! pre-state and rollback, and an audit item for every transition. Every write is conditional,
//! so a replayed event or a double click changes nothing.

pub mod dynamo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::act::Rollback;
use crate::error::Result;
use crate::model::Finding;
use crate::policy::Mode;

pub use dynamo::DynamoState;

/// A request for a human decision about one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub request_id: String,
    pub finding: Finding,
    pub created_at: DateTime<Utc>,
    /// After this the request means "do nothing" (also the item's TTL).
    pub expires_at: DateTime<Utc>,
}

/// What opening an approval request did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalOpened {
    /// A new pending request was written.
    Created,
    /// A request for this finding is still open; nothing was written.
    AlreadyOpen { request_id: String, notified: bool },
}

/// An action as recorded before it runs (status `executing`) and after (`executed` / `failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub action_id: String,
    pub finding: Finding,
    pub mode: Mode,
    /// Who or what decided: `auto`, or an approver.
    pub decided_by: String,
    /// The resource as it was right before the action.
    pub pre_state: serde_json::Value,
    /// How to undo the action.
    pub rollback: Rollback,
    pub started_at: DateTime<Utc>,
}

/// How a recorded action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    Executed,
    /// Started, to be finished by a later run.
    Deferred,
    Failed,
}

impl ActionEnd {
    /// The record's status.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionEnd::Executed => "executed",
            ActionEnd::Deferred => "deferred",
            ActionEnd::Failed => "failed",
        }
    }
}

/// The state the flow needs.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Opens a pending approval unless one for the same finding is still open.
    async fn open_approval(&self, request: &ApprovalRequest) -> Result<ApprovalOpened>;
    /// Notes that the approval request reached SNS.
    async fn mark_notified(&self, request_id: &str) -> Result<()>;
    /// Records an action and its pre-state and rollback before it runs; fails if it exists.
    async fn begin_action(&self, record: &ActionRecord) -> Result<()>;
    /// Records how an action ended; only from `executing`.
    async fn finish_action(&self, record: &ActionRecord, end: ActionEnd, detail: &str, at: DateTime<Utc>)
        -> Result<()>;

    /// Records that `scope` alerted at `level` in `month` (yyyy-mm); `true` if that is new, `false`
    /// if this or a higher level was already alerted this month.
    async fn raise_alert(&self, scope: &str, month: &str, level: u32, at: DateTime<Utc>) -> Result<bool>;

    /// When each of `present` was first seen in `scope` (now, for those seen for the first time);
    /// forgets the ids of `scope` that are no longer present.
    async fn first_seen(
        &self,
        scope: &str,
        present: &[String],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, DateTime<Utc>>>;
}
