//! Snoozes: a resource left alone until a time, by someone, for a reason. One partition
//! (`SNOOZES`, one item per resource id and where it holds: [`super::snooze_key`]), so a run reads every snooze with one Query; each grant
//! and lift leaves an audit item on the resource's trail (`AUDIT#RESOURCE#<id>`) and, when it came
//! from a finding, on the finding's.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
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
        resource_id: text(item, "resource_id").or_else(|| text(item, "sk"))?,
        until: time(item, "until")?,
        by: text(item, "by")?,
        via: text(item, "via").unwrap_or_default(),
        reason: text(item, "reason").unwrap_or_default(),
        at: time(item, "at")?,
        finding_id: text(item, "finding_id"),
        account: text(item, "account"),
        region: text(item, "region"),
    })
}

impl DynamoState {
    /// Every snooze on record, expired or not (DynamoDB's TTL deletes lazily), and how many items
    /// could not be read as one.
    pub async fn all_snoozes(&self) -> Result<(Vec<Snooze>, usize)> {
        self.snooze_items(None).await
    }

    /// The snoozes of `resource_id` in force at `now` (only its items are read: the keys that
    /// begin with the id, then the exact id).
    pub(crate) async fn resource_snoozes(&self, resource_id: &str, now: DateTime<Utc>) -> Result<Vec<Snooze>> {
        let (found, _) = self.snooze_items(Some(resource_id)).await?;
        Ok(found
            .into_iter()
            .filter(|z| z.resource_id == resource_id && z.until > now)
            .collect())
    }

    /// The snooze items whose keys begin with `prefix` (all without one), read strongly
    /// consistent so a snooze just granted counts, and how many could not be read as one.
    async fn snooze_items(&self, prefix: Option<&str>) -> Result<(Vec<Snooze>, usize)> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(SNOOZES_PK))
            .consistent_read(true);
        let q = match prefix {
            Some(p) => q
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(p)),
            None => q.key_condition_expression("pk = :pk"),
        };
        let mut pages = q.into_paginator().items().send();
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

    /// Records `snooze` (replacing one on the same resource and place) with its audit items, then
    /// closes the resource's pending approvals. With `keep_longer`, a snooze in force that ends
    /// later is kept and nothing is recorded (checked in the write itself, so two clicks at once
    /// cannot cut it short either).
    pub(crate) async fn grant_snooze(&self, snooze: &Snooze, keep_longer: bool) -> Result<SnoozeGranted> {
        let key = snooze.key();
        let previous = self
            .get(SNOOZES_PK, &key)
            .await?
            .as_ref()
            .and_then(stored_snooze)
            .filter(|z| z.until > snooze.at);
        if let Some(p) = previous.as_ref().filter(|p| keep_longer && p.until > snooze.until) {
            return Ok(SnoozeGranted {
                kept: Some(p.clone()),
                ..SnoozeGranted::default()
            });
        }
        let mut item: Item = HashMap::from([
            ("pk".to_string(), s(SNOOZES_PK)),
            ("sk".to_string(), s(&key)),
            ("resource_id".to_string(), s(&snooze.resource_id)),
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
        for (name, value) in [("account", &snooze.account), ("region", &snooze.region)] {
            if let Some(v) = value {
                item.insert(name.into(), s(v));
            }
        }
        let detail = format!("{} ({})", snooze.describe(), snooze.where_text());
        let put = if keep_longer {
            // Only over no snooze, or one that ends no later than this one.
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR #exp <= :until")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":until", n(snooze.until.timestamp()))
                .build()
                .map_err(|e| Error::Config(format!("bad DynamoDB put: {e}")))?;
            TransactWriteItem::builder().put(put).build()
        } else {
            self.put(item, None)?
        };
        let mut items = vec![
            put,
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
        match self.transact(items).await {
            Ok(()) => {}
            // A longer snooze was granted in between: it stands.
            Err(super::dynamo::TransactOutcome::ConditionFailed) if keep_longer => {
                let kept = self.get(SNOOZES_PK, &key).await?.as_ref().and_then(stored_snooze);
                return Ok(SnoozeGranted {
                    kept,
                    ..SnoozeGranted::default()
                });
            }
            Err(e) => return Err(e.into_error()),
        }
        // The snooze is on record from here: what fails now is reported, not an error.
        let (closed_requests, warnings) = self.close_snoozed_approvals(snooze).await;
        Ok(SnoozeGranted {
            closed_requests,
            replaced: previous,
            kept: None,
            warnings,
        })
    }

    /// Lifts the snooze under `key` ([`super::snooze_key`]), recording who did, and why; `None` if
    /// there was none.
    pub(crate) async fn lift_snooze(
        &self,
        key: &str,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Snooze>> {
        let Some(current) = self.get(SNOOZES_PK, key).await?.as_ref().and_then(stored_snooze) else {
            return Ok(None);
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(SNOOZES_PK))
            .key("sk", s(key))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB delete: {e}")))?;
        let detail = format!(
            "snooze lifted by {by}: {reason} (it ran until {})",
            current.until_text()
        );
        let resource_id = current.resource_id.as_str();
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
