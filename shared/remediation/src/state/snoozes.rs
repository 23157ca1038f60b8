//! Snoozes: a resource left alone until a time, by someone, for a reason. One partition
//! (`SNOOZES`, one item per resource id), so a run reads every snooze with one Query; each grant
//! and lift leaves an audit item on the resource's trail (`AUDIT#RESOURCE#<id>`) and, when it came
//! from a finding, on the finding's.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::dynamo::{n, s, DynamoState, TTL_ATTRIBUTE};
use super::{Snooze, SnoozeGranted};
use crate::error::{Error, Result};

/// The partition every snooze is in.
pub const SNOOZES_PK: &str = "SNOOZES";

/// The audit partition of a resource (snoozes granted or lifted by resource id).
pub fn resource_audit_id(resource_id: &str) -> String {
    format!("RESOURCE#{resource_id}")
}

type Item = HashMap<String, AttributeValue>;

fn text(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn time(item: &Item, key: &str) -> Option<DateTime<Utc>> {
    text(item, key)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A stored snooze; `None` when it lacks what a snooze needs (it then snoozes nothing).
fn stored_snooze(item: &Item) -> Option<Snooze> {
    Some(Snooze {
        resource_id: text(item, "sk")?,
        until: time(item, "until")?,
        by: text(item, "by")?,
        via: text(item, "via").unwrap_or_default(),
        reason: text(item, "reason").unwrap_or_default(),
        at: time(item, "at")?,
        finding_id: text(item, "finding_id"),
    })
}

impl DynamoState {
    /// Every snooze on record, expired or not (DynamoDB's TTL deletes lazily), and how many items
    /// could not be read as one.
    pub async fn all_snoozes(&self) -> Result<(Vec<Snooze>, usize)> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(SNOOZES_PK))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let (mut out, mut unreadable) = (Vec::new(), 0);
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| Error::aws("dynamodb", "Query", e))?;
            match stored_snooze(&item) {
                Some(z) => out.push(z),
                None => {
                    unreadable += 1;
                    tracing::warn!(resource = ?text(&item, "sk"), "a snooze item without until, by or at snoozes nothing");
                }
            }
        }
        Ok((out, unreadable))
    }

    /// The snoozes in force at `now`.
    pub(crate) async fn active_snoozes(&self, now: DateTime<Utc>) -> Result<Vec<Snooze>> {
        let (all, _) = self.all_snoozes().await?;
        Ok(all.into_iter().filter(|z| z.until > now).collect())
    }

    /// Records `snooze` (replacing one on the same resource) with its audit items, then closes the
    /// finding's pending approval, if it has one.
    pub(crate) async fn grant_snooze(&self, snooze: &Snooze) -> Result<SnoozeGranted> {
        let previous = self
            .get(SNOOZES_PK, &snooze.resource_id)
            .await?
            .as_ref()
            .and_then(stored_snooze)
            .filter(|z| z.until > snooze.at);
        let mut item: Item = HashMap::from([
            ("pk".to_string(), s(SNOOZES_PK)),
            ("sk".to_string(), s(&snooze.resource_id)),
            ("kind".to_string(), s("snooze")),
            ("until".to_string(), s(snooze.until.to_rfc3339())),
            ("by".to_string(), s(&snooze.by)),
            ("via".to_string(), s(&snooze.via)),
            ("reason".to_string(), s(&snooze.reason)),
            ("at".to_string(), s(snooze.at.to_rfc3339())),
            (TTL_ATTRIBUTE.to_string(), n(snooze.until.timestamp())),
        ]);
        if let Some(f) = &snooze.finding_id {
            item.insert("finding_id".into(), s(f));
        }
        let detail = snooze.describe();
        let mut items = vec![
            self.put(item, None)?,
            self.audit(
                &resource_audit_id(&snooze.resource_id),
                snooze.at,
                "snoozed",
                &snooze.resource_id,
                &detail,
            )?,
        ];
        if let Some(f) = &snooze.finding_id {
            items.push(self.audit(f, snooze.at, "snoozed", &snooze.resource_id, &detail)?);
        }
        self.transact(items)
            .await
            .map_err(super::dynamo::TransactOutcome::into_error)?;
        Ok(SnoozeGranted {
            closed_requests: self.close_snoozed_approvals(snooze).await?,
            replaced: previous,
        })
    }

    /// Lifts the snooze of `resource_id` (recording who did, and why); `None` if there was none.
    pub(crate) async fn lift_snooze(
        &self,
        resource_id: &str,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Snooze>> {
        let Some(current) = self
            .get(SNOOZES_PK, resource_id)
            .await?
            .as_ref()
            .and_then(stored_snooze)
        else {
            return Ok(None);
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(SNOOZES_PK))
            .key("sk", s(resource_id))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB delete: {e}")))?;
        let detail = format!(
            "snooze lifted by {by}: {reason} (it ran until {})",
            current.until_text()
        );
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.audit(&resource_audit_id(resource_id), now, "unsnoozed", resource_id, &detail)?,
        ];
        if let Some(f) = &current.finding_id {
            items.push(self.audit(f, now, "unsnoozed", resource_id, &detail)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(Some(current)),
            // Lifted by someone else in between.
            Err(super::dynamo::TransactOutcome::ConditionFailed) => Ok(None),
            Err(e) => Err(e.into_error()),
        }
    }
}
