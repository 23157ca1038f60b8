//! Notifications: one typed JSON message per event on the SNS topic, with `type`, `rule` and
//! `severity` message attributes for subscription filter policies. Slack and Jira subscribe;
//! no detector calls them.

pub mod alarm;

use crate::error::SdkErrorExt as _;
use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Finding, OutcomeKind, Severity};
use crate::policy::Mode;
use crate::state::rollback::Rollback;

/// One Snooze choice on a message: the resource left alone for `days` days; Slack sends `token`
/// back when it is pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnoozeButton {
    pub days: u32,
    pub token: String,
}

impl SnoozeButton {
    /// The choices for `finding`, signed by `links`, each usable until `until`.
    pub fn all_for(links: &crate::approval::LinkSigner, finding: &Finding, until: DateTime<Utc>) -> Vec<SnoozeButton> {
        crate::approval::SNOOZE_DAYS
            .iter()
            .map(|&days| SnoozeButton {
                days,
                token: links.snooze_token(&finding.id, &finding.resource.id, days, until),
            })
            .collect()
    }
}

/// A message on the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// A finding reported (dry-run).
    Finding {
        mode: Mode,
        finding: Finding,
        /// Also listed in this run's digest: Slack shows the digest, not this message.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        in_digest: bool,
        /// The Snooze choices (signed), when the run can sign them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        snooze: Vec<SnoozeButton>,
    },
    /// A human is asked to approve or reject an action.
    ApprovalRequest {
        request_id: String,
        finding: Finding,
        expires_at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        approve_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reject_url: Option<String>,
        /// Also listed in this run's digest.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        in_digest: bool,
        /// The Snooze choices (signed), when the run can sign them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        snooze: Vec<SnoozeButton>,
        /// Why an auto-mode run asks instead of acting: the blast radius of its period is spent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held: Option<String>,
    },
    /// Many findings of one run in one message: counts and dollars per rule, the largest items.
    Digest {
        mode: Mode,
        total_findings: usize,
        total_usd: f64,
        by_rule: std::collections::BTreeMap<String, RuleTotals>,
        top: Vec<DigestItem>,
    },
    /// A decision on an approval request that is not (yet) an action: approved through Slack
    /// (the approval function executes it on receipt), rejected, or expired.
    ApprovalResult {
        request_id: String,
        finding: Finding,
        /// `approved`, `rejected` or `expired`.
        status: String,
        decided_by: String,
        detail: String,
    },
    /// A cost threshold was crossed (new for this month, or at a higher level).
    CostAlert { finding: Finding },
    /// The tag-compliance sweep's figures.
    TagReport {
        by_type: std::collections::BTreeMap<String, crate::model::Compliance>,
        overall_percent: f64,
        kpi_percent: f64,
        /// Non-compliant resources (id, missing keys), at most 50.
        non_compliant: Vec<(String, Vec<String>)>,
        non_compliant_total: usize,
    },
    /// The weekly savings report's summary, with a link to the full HTML report.
    SavingsReport {
        report: Box<crate::report::SavingsReport>,
        /// A presigned link to the HTML report (absent when it was not uploaded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report_url: Option<String>,
    },
    /// A run held back from acting: it would have acted on more than the blast radius allows
    /// (`would_act` > `limit`), so it acted on none (and asked, where it could).
    Held {
        rule: String,
        would_act: usize,
        limit: usize,
        scanned: usize,
        detail: String,
        /// How many the run did act on before the limit held the rest (0: the whole run held).
        #[serde(default)]
        acted: usize,
    },
    /// One fan-out run of one rule across the organisation: findings and dollars per account,
    /// and the targets that failed with their reason.
    OrgDigest { digest: Box<crate::digest::OrgDigest> },
    /// An action ran (or failed).
    ActionResult {
        action_id: String,
        finding: Finding,
        outcome: OutcomeKind,
        detail: String,
        decided_by: String,
        rollback: Rollback,
        /// A signed link to roll the action back (approved like any action).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollback_url: Option<String>,
        /// This message reports a rollback.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rolled_back: bool,
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
            Message::SavingsReport { .. } => "savings-report",
            Message::ActionResult { .. } => "action-result",
            Message::Digest { .. } => "digest",
            Message::ApprovalResult { .. } => "approval-result",
            Message::Held { .. } => "held",
            Message::OrgDigest { .. } => "org-digest",
        }
    }

    fn finding(&self) -> Option<&Finding> {
        match self {
            Message::Finding { finding, .. }
            | Message::ApprovalRequest { finding, .. }
            | Message::CostAlert { finding }
            | Message::ApprovalResult { finding, .. }
            | Message::ActionResult { finding, .. } => Some(finding),
            Message::TagReport { .. }
            | Message::Digest { .. }
            | Message::SavingsReport { .. }
            | Message::OrgDigest { .. }
            | Message::Held { .. } => None,
        }
    }

    /// The `rule` attribute (a digest spanning several rules says `several`).
    pub fn rule(&self) -> &str {
        match self {
            Message::Digest { by_rule, .. } => match by_rule.keys().next() {
                Some(r) if by_rule.len() == 1 => r,
                _ => "several",
            },
            Message::SavingsReport { .. } => "several",
            Message::Held { rule, .. } => rule,
            Message::OrgDigest { digest } => &digest.rule,
            // The tag-compliance sweep's figures are the one message without a finding.
            Message::TagReport { .. } => "tag-compliance",
            _ => match self.finding() {
                Some(f) => &f.rule,
                None => "several",
            },
        }
    }

    /// Whether this message is also summarised in a digest (Slack skips it).
    pub fn in_digest(&self) -> bool {
        matches!(
            self,
            Message::Finding { in_digest: true, .. } | Message::ApprovalRequest { in_digest: true, .. }
        )
    }

    /// Extra attributes for filter policies: `status` of an approval result, `in_digest`.
    pub fn extra_attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Message::ApprovalResult { status, .. } = self {
            out.push(("status", status.clone()));
        }
        if self.in_digest() {
            out.push(("in_digest", "true".to_string()));
        }
        out
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
            Message::OrgDigest { digest } if digest.has_problems() => Severity::Medium,
            other => other.finding().map(|f| f.severity).unwrap_or(Severity::Low),
        }
    }
}

/// The message bodies of an SNS Lambda event, as published (byte for byte, so a replay can be
/// recognised); an error names what is wrong with the event.
fn sns_bodies(payload: &serde_json::Value) -> Result<Vec<String>> {
    let event = aws_lambda_events::sns::SnsEvent::deserialize(payload)
        .map_err(|e| Error::Event(format!("not an SNS event: {e}")))?;
    Ok(event.records.into_iter().map(|r| r.sns.message).collect())
}

/// The messages of an SNS Lambda event, each with its body as published (byte for byte, so a
/// replay can be recognised); an error names what is wrong with the event.
pub fn from_sns_event(payload: &serde_json::Value) -> Result<Vec<(String, Message)>> {
    sns_bodies(payload)?
        .into_iter()
        .map(|body| {
            let message = serde_json::from_str(&body)
                .map_err(|e| Error::Event(format!("an SNS message that is not a FinOps message: {e}")))?;
            Ok((body, message))
        })
        .collect()
}

/// What arrives on the topic: a FinOps message, or a CloudWatch alarm's state change (the
/// template's alarms publish to the same topic, without a FinOps `type`).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    FinOps(Box<Message>),
    Alarm(Box<alarm::AlarmNotification>),
}

impl Incoming {
    /// Reads one SNS message body; neither a FinOps message nor an alarm is an event error that
    /// says how each reading failed.
    pub fn parse(body: &str) -> Result<Incoming> {
        let as_finops = match serde_json::from_str::<Message>(body) {
            Ok(m) => return Ok(Incoming::FinOps(Box::new(m))),
            Err(e) => e,
        };
        serde_json::from_str::<alarm::AlarmNotification>(body)
            .map(|a| Incoming::Alarm(Box::new(a)))
            .map_err(|as_alarm| {
                Error::Event(format!(
                    "an SNS message that is neither a FinOps message nor a CloudWatch alarm (as a FinOps message: {as_finops}; as an alarm: {as_alarm})"
                ))
            })
    }

    /// The message's kind: a FinOps `type`, or `cloudwatch-alarm`.
    pub fn kind(&self) -> &'static str {
        match self {
            Incoming::FinOps(m) => m.kind(),
            Incoming::Alarm(_) => "cloudwatch-alarm",
        }
    }

    /// Whether a digest summarises it (alarms never are).
    pub fn in_digest(&self) -> bool {
        matches!(self, Incoming::FinOps(m) if m.in_digest())
    }
}

/// Every message of an SNS Lambda event, FinOps or alarm, each with its body as published.
pub fn incoming_from_sns_event(payload: &serde_json::Value) -> Result<Vec<(String, Incoming)>> {
    sns_bodies(payload)?
        .into_iter()
        .map(|body| Incoming::parse(&body).map(|i| (body, i)))
        .collect()
}

/// Counts and dollars of one rule in a digest.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleTotals {
    pub count: usize,
    pub usd: f64,
}

/// One line of a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    pub finding_id: String,
    pub rule: String,
    pub resource_id: String,
    pub action: String,
    pub owner: String,
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_url: Option<String>,
}

/// Totals per rule of a set of findings.
pub fn totals(findings: &[&Finding]) -> std::collections::BTreeMap<String, RuleTotals> {
    let mut out: std::collections::BTreeMap<String, RuleTotals> = Default::default();
    for f in findings {
        let t = out.entry(f.rule.clone()).or_default();
        t.count += 1;
        t.usd += f.estimated_monthly_savings_usd.unwrap_or(0.0);
    }
    for t in out.values_mut() {
        t.usd = crate::model::round_cents(t.usd);
    }
    out
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
        let mut entry = PublishBatchRequestEntry::builder()
            .id(format!("m{index}"))
            .message(body)
            .message_attributes("type", attr(message.kind())?)
            .message_attributes("rule", attr(message.rule())?)
            .message_attributes("severity", attr(message.severity().as_str())?);
        for (k, v) in message.extra_attributes() {
            entry = entry.message_attributes(k, attr(&v)?);
        }
        entry.build().map_err(|e| Error::Config(format!("bad SNS entry: {e}")))
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
