//! Jira tickets in the state table: `TICKET#<finding id>` / `JIRA` holds the issue key, so a
//! replayed message or a re-detected finding never opens a second issue, and a string set of the
//! events already written to the issue, so a replayed update never comments twice.
//!
//! Creating is claimed first (status `creating`, lapsing after 5 minutes so a crashed run does not
//! block the finding for good), then the key is stored; a failed create releases the claim. A
//! create Jira may have carried out without answering leaves the ticket `uncertain`: the next run
//! searches for the finding's label before it creates anything.

use crate::error::SdkErrorExt as _;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::dynamo::{applied, s, written, DynamoState};
use crate::error::{Error, Result};

/// A finding's ticket as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Ticket {
    /// No ticket, or a claim that lapsed: this run may create one.
    None,
    /// Another run is creating it now.
    Creating,
    /// The issue exists.
    Created { key: String },
    /// An earlier create may have opened the issue (Jira did not answer, or its run stopped
    /// mid-way) at `since`: search for it before creating one.
    Unsure { since: Option<DateTime<Utc>> },
}

fn ticket_pk(finding_id: &str) -> String {
    format!("TICKET#{finding_id}")
}

const SK: &str = "JIRA";

impl DynamoState {
    /// The finding's ticket.
    pub async fn ticket(&self, finding_id: &str, now: DateTime<Utc>) -> Result<Ticket> {
        let Some(item) = self.get(&ticket_pk(finding_id), SK).await? else {
            return Ok(Ticket::None);
        };
        let field = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Ok(match (field("status").as_deref(), field("issue_key")) {
            (Some("created"), Some(key)) => Ticket::Created { key },
            (Some("creating"), _) => {
                let claimed = field("claimed_at")
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc));
                if claimed.is_some_and(|t| t > now - Duration::minutes(5)) {
                    Ticket::Creating
                } else {
                    Ticket::Unsure { since: claimed }
                }
            }
            (Some("uncertain"), _) => Ticket::Unsure {
                since: field("uncertain_at")
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc)),
            },
            _ => Ticket::None,
        })
    }

    /// Claims the creation of the finding's ticket; `false` when another run holds a fresh claim
    /// or the ticket exists.
    pub async fn claim_ticket(&self, finding_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let stale = now - Duration::minutes(5);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(ticket_pk(finding_id)))
            .item("sk", s(SK))
            .item("kind", s("ticket"))
            .item("status", s("creating"))
            .item("claimed_at", s(now.to_rfc3339()))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :creating AND claimed_at < :stale) OR #st = :uncertain",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":creating", s("creating"))
            .expression_attribute_values(":uncertain", s("uncertain"))
            .expression_attribute_values(":stale", s(stale.to_rfc3339()))
            .send()
            .await;
        written(put)
    }

    /// Records the created issue's key (and the event that created it).
    pub async fn ticket_created(&self, finding_id: &str, key: &str, event: &str, now: DateTime<Utc>) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ticket_pk(finding_id)))
            .key("sk", s(SK))
            .update_expression("SET #st = :created, issue_key = :key, created_at = :at ADD events :ev")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":created", s("created"))
            .expression_attribute_values(":key", s(key))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":ev", AttributeValue::Ss(vec![event.to_string()]))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
        Ok(())
    }

    /// Gives up a creation claim (the create failed; the message will be retried).
    pub async fn release_ticket(&self, finding_id: &str) -> Result<()> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(ticket_pk(finding_id)))
            .key("sk", s(SK))
            .condition_expression("#st = :creating")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":creating", s("creating"))
            .send()
            .await;
        applied("DeleteItem", out).map(|_| ())
    }

    /// Records that a create held by this run went unanswered (`why`): the next run searches first.
    pub async fn ticket_uncertain(&self, finding_id: &str, now: DateTime<Utc>, why: &str) -> Result<()> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ticket_pk(finding_id)))
            .key("sk", s(SK))
            .update_expression("SET #st = :uncertain, uncertain_at = :at, uncertain_why = :why")
            .condition_expression("#st = :creating")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":creating", s("creating"))
            .expression_attribute_values(":uncertain", s("uncertain"))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":why", s(why))
            .send()
            .await;
        applied("UpdateItem", out).map(|_| ())
    }

    /// Claims writing `event` to the finding's issue; `false` when it was written already.
    pub async fn claim_ticket_event(&self, finding_id: &str, event: &str) -> Result<bool> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ticket_pk(finding_id)))
            .key("sk", s(SK))
            .update_expression("ADD events :ev")
            .condition_expression("#st = :created AND NOT contains(events, :one)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":created", s("created"))
            .expression_attribute_values(":ev", AttributeValue::Ss(vec![event.to_string()]))
            .expression_attribute_values(":one", s(event))
            .send()
            .await;
        applied("UpdateItem", out)
    }

    /// Forgets `event` (writing it to the issue failed; the message will be retried).
    pub async fn release_ticket_event(&self, finding_id: &str, event: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ticket_pk(finding_id)))
            .key("sk", s(SK))
            .update_expression("DELETE events :ev")
            .expression_attribute_values(":ev", AttributeValue::Ss(vec![event.to_string()]))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
        Ok(())
    }
}
