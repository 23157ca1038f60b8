//! Notifications: one typed JSON message per event on the SNS topic, with `type`, `rule` and
//! `severity` message attributes for subscription filter policies. Slack and Jira subscribe;
//! no detector calls them.

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::act::Rollback;
use crate::error::{Error, Result};
use crate::model::{Finding, OutcomeKind, Severity};
use crate::policy::Mode;

/// A message on the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// A finding reported (dry-run).
    Finding { mode: Mode, finding: Finding },
    /// A human is asked to approve or reject an action.
    ApprovalRequest {
        request_id: String,
        finding: Finding,
        expires_at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        approve_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reject_url: Option<String>,
    },
    /// A cost threshold was crossed (new for this month, or at a higher level).
    CostAlert { finding: Finding },
    /// The tag-compliance sweep's figures.
    TagReport {
        by_type: std::collections::BTreeMap<String, crate::detect::tag_compliance::Compliance>,
        overall_percent: f64,
        kpi_percent: f64,
        /// Non-compliant resources (id, missing keys), at most 50.
        non_compliant: Vec<(String, Vec<String>)>,
        non_compliant_total: usize,
    },
    /// An action ran (or failed).
    ActionResult {
        action_id: String,
        finding: Finding,
        outcome: OutcomeKind,
        detail: String,
        decided_by: String,
        rollback: Rollback,
    },
}

impl Message {
    /// The `type` attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Finding { .. } => "finding",
            Message::ApprovalRequest { .. } => "approval-request",
            Message::CostAlert { .. } => "cost-alert",
            Message::TagReport { .. } => "tag-report",
            Message::ActionResult { .. } => "action-result",
        }
    }

    fn finding(&self) -> Option<&Finding> {
        match self {
            Message::Finding { finding, .. }
            | Message::ApprovalRequest { finding, .. }
            | Message::CostAlert { finding }
            | Message::ActionResult { finding, .. } => Some(finding),
            Message::TagReport { .. } => None,
        }
    }

    /// The `rule` attribute.
    pub fn rule(&self) -> &str {
        match self.finding() {
            Some(f) => &f.rule,
            None => crate::detect::tag_compliance::RULE,
        }
    }

    /// The `severity` attribute (a failed action is at least high; a tag report under its KPI medium).
    pub fn severity(&self) -> Severity {
        match self {
            Message::ActionResult {
                outcome: OutcomeKind::Failed,
                finding,
                ..
            } => finding.severity.max(Severity::High),
            Message::TagReport {
                overall_percent,
                kpi_percent,
                ..
            } => {
                if overall_percent < kpi_percent {
                    Severity::Medium
                } else {
                    Severity::Low
                }
            }
            other => other.finding().map(|f| f.severity).unwrap_or(Severity::Low),
        }
    }
}

/// Where messages go.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes every message, or fails naming how many did not go.
    async fn publish(&self, messages: &[Message]) -> Result<()>;
}

/// The SNS adapter: PublishBatch, ten messages (and at most 256 KiB) per call.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

/// SNS caps a whole PublishBatch at 256 KiB; stay under it with room for attributes.
const MAX_BATCH_BYTES: usize = 240 * 1024;

impl SnsPublisher {
    /// Publishes to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    fn entry(index: usize, message: &Message, body: String) -> Result<PublishBatchRequestEntry> {
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| Error::Config(format!("bad SNS attribute: {e}")))
        };
        PublishBatchRequestEntry::builder()
            .id(format!("m{index}"))
            .message(body)
            .message_attributes("type", attr(message.kind())?)
            .message_attributes("rule", attr(message.rule())?)
            .message_attributes("severity", attr(message.severity().as_str())?)
            .build()
            .map_err(|e| Error::Config(format!("bad SNS entry: {e}")))
    }

    async fn send(&self, entries: Vec<PublishBatchRequestEntry>) -> Result<()> {
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::aws("sns", "PublishBatch", e))?;
        if let Some(first) = out.failed().first() {
            return Err(Error::Aws {
                service: "sns",
                operation: "PublishBatch",
                code: first.code().to_string(),
                message: format!(
                    "{} message(s) not published: {}",
                    out.failed().len(),
                    first.message().unwrap_or_default()
                ),
                retryable: !first.sender_fault(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Publisher for SnsPublisher {
    async fn publish(&self, messages: &[Message]) -> Result<()> {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for (i, message) in messages.iter().enumerate() {
            let body = serde_json::to_string(message)
                .map_err(|e| Error::Config(format!("cannot serialise a message: {e}")))?;
            if !batch.is_empty() && (batch.len() == 10 || batch_bytes + body.len() > MAX_BATCH_BYTES) {
                self.send(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            batch_bytes += body.len();
            batch.push(Self::entry(i, message, body)?);
        }
        if !batch.is_empty() {
            self.send(batch).await?;
        }
        Ok(())
    }
}
