//! Snoozes: a resource left alone until a time, by someone, for a reason. One partition
//! (`SNOOZES`, one item per resource id and where it holds: [`super::snooze_key`]), so a run reads every snooze with one Query; each grant
//! and lift leaves an audit item on the resource's trail (`AUDIT#RESOURCE#<id>`) and, when it came
//! from a finding, on the finding's.

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::dynamo::{n, s, DynamoState, TransactOutcome, TTL_ATTRIBUTE};
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
        lifted_by: text(item, "lifted_by"),
        lifted_at: time(item, "lifted_at"),
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
            .filter(|z| z.resource_id == resource_id && z.in_force(now))
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
        Ok(all.into_iter().filter(|z| z.in_force(now)).collect())
    }

    /// Records `snooze` (replacing one on the same resource and place) with its audit items, then
    /// closes the resource's pending approvals. With `keep_longer`, a snooze in force that ends
    /// later is kept and nothing is recorded. The write is conditioned on the item read just
    /// before it (its `at`, `until` and `lifted_at`, or its absence), so two grants at once, or a
    /// grant and a lift, never overwrite what the other wrote unseen: a changed item is read
    /// again, up to three times.
    pub(crate) async fn grant_snooze(
        &self,
        snooze: &Snooze,
        keep_longer: bool,
        checks: &crate::evidence::Catalog,
    ) -> Result<SnoozeGranted> {
        let key = snooze.key();
        for _ in 0..3 {
            let read = self.get(SNOOZES_PK, &key).await?;
            let stored = read.as_ref().and_then(stored_snooze);
            if stored.as_ref() == Some(snooze) {
                // On record as asked already (a retried request whose first try landed unanswered).
                let (closed_requests, warnings) = self.close_snoozed_approvals(snooze, checks).await;
                return Ok(SnoozeGranted {
                    closed_requests,
                    warnings,
                    ..SnoozeGranted::default()
                });
            }
            let previous = stored.filter(|z| z.in_force(snooze.at));
            if let Some(p) = previous.as_ref().filter(|p| keep_longer && p.until > snooze.until) {
                return Ok(SnoozeGranted {
                    kept: Some(p.clone()),
                    ..SnoozeGranted::default()
                });
            }
            let unchanged = as_read(read.as_ref());
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.snooze_item(snooze)))
                .condition_expression(unchanged.condition)
                .set_expression_attribute_names(unchanged.names)
                .set_expression_attribute_values(unchanged.values)
                .build()
                .map_err(|e| Error::Config(format!("bad DynamoDB put: {e}")))?;
            let detail = format!("{} ({})", snooze.describe(), snooze.where_text());
            let mut items = vec![
                TransactWriteItem::builder().put(put).build(),
                // Named by its key: two snoozes of one resource in two places, granted or
                // lifted at one instant, are two audit items.
                self.audit(
                    &resource_audit_id(&snooze.resource_id),
                    snooze.at,
                    "snoozed",
                    &key,
                    &detail,
                )?,
            ];
            if let Some(f) = &snooze.finding_id {
                items.push(self.audit(f, snooze.at, "snoozed", &key, &detail)?);
            }
            match self.transact(items).await {
                Ok(()) => {}
                // Granted or lifted by someone else in between (or at the same moment): read it
                // again.
                Err(TransactOutcome::ConditionFailed | TransactOutcome::Conflict(_)) => continue,
                Err(e) => return Err(e.into_error()),
            }
            // The snooze is on record from here: what fails now is reported, not an error.
            let (closed_requests, warnings) = self.close_snoozed_approvals(snooze, checks).await;
            return Ok(SnoozeGranted {
                closed_requests,
                replaced: previous,
                kept: None,
                warnings,
            });
        }
        Err(Error::unexpected(
            "dynamodb",
            "TransactWriteItems",
            format!(
                "the snooze of {key} changed three times while it was being granted: nothing was recorded, try again"
            ),
        ))
    }

    /// The stored form of `snooze`. It stays on record for [`ENDED_KEPT_DAYS`] after it ends (the
    /// TTL), so a rule can tell when a resource's last snooze ended.
    fn snooze_item(&self, snooze: &Snooze) -> Item {
        let mut item: Item = HashMap::from([
            ("pk".to_string(), s(SNOOZES_PK)),
            ("sk".to_string(), s(snooze.key())),
            ("resource_id".to_string(), s(&snooze.resource_id)),
            ("kind".to_string(), s("snooze")),
            ("until".to_string(), s(snooze.until.to_rfc3339())),
            ("by".to_string(), s(&snooze.by)),
            ("via".to_string(), s(&snooze.via)),
            ("reason".to_string(), s(&snooze.reason)),
            ("at".to_string(), s(snooze.at.to_rfc3339())),
            (TTL_ATTRIBUTE.to_string(), n(ended_kept_until(snooze.until))),
        ]);
        if let Some(f) = &snooze.finding_id {
            item.insert("finding_id".into(), s(f));
        }
        for (name, value) in [("account", &snooze.account), ("region", &snooze.region)] {
            if let Some(v) = value {
                item.insert(name.into(), s(v));
            }
        }
        item
    }

    /// Ends `snooze` now, as it was read: if it was replaced or lifted since, nothing is changed
    /// and the answer says what is there instead. The item stays, marked lifted (by whom, when),
    /// so the rules know when the resource's snooze ended; the lift is on the resource's audit
    /// trail (and its finding's).
    pub(crate) async fn lift_snooze(
        &self,
        snooze: &Snooze,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<super::Unsnoozed> {
        let key = snooze.key();
        for _ in 0..3 {
            let read = self.get(SNOOZES_PK, &key).await?;
            let stored = read.as_ref().and_then(stored_snooze);
            let lifted_so = read.as_ref().and_then(|item| text(item, "lift_reason")).as_deref() == Some(reason);
            if let Some(z) = stored
                .as_ref()
                .filter(|z| lifted_so && z.lifted_at == Some(now) && z.lifted_by.as_deref() == Some(by))
            {
                // Lifted as asked already (a retried request whose first try landed unanswered).
                let as_read = Snooze {
                    lifted_at: None,
                    lifted_by: None,
                    ..z.clone()
                };
                if as_read == *snooze {
                    return Ok(super::Unsnoozed::Lifted(as_read));
                }
            }
            let current = match stored.filter(|z| z.in_force(now)) {
                None => return Ok(super::Unsnoozed::Gone),
                Some(z) if z != *snooze => return Ok(super::Unsnoozed::Replaced(z)),
                Some(z) => z,
            };
            let unchanged = as_read(read.as_ref());
            let mut names = unchanged.names.unwrap_or_default();
            names.insert("#exp".into(), TTL_ATTRIBUTE.into());
            let mut values = unchanged.values.unwrap_or_default();
            values.insert(":now".into(), s(now.to_rfc3339()));
            values.insert(":exp".into(), n(ended_kept_until(now)));
            values.insert(":by".into(), s(by));
            values.insert(":why".into(), s(reason));
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(SNOOZES_PK))
                .key("sk", s(&key))
                .update_expression("SET #exp = :exp, lifted_by = :by, lifted_at = :now, lift_reason = :why")
                .condition_expression(unchanged.condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(|e| Error::Config(format!("bad DynamoDB update: {e}")))?;
            let detail = format!(
                "snooze lifted by {by}: {reason} (it ran until {}, {})",
                current.until_text(),
                current.where_text()
            );
            let resource_id = current.resource_id.as_str();
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                self.audit(&resource_audit_id(resource_id), now, "unsnoozed", &key, &detail)?,
            ];
            if let Some(f) = &current.finding_id {
                items.push(self.audit(f, now, "unsnoozed", &key, &detail)?);
            }
            match self.transact(items).await {
                Ok(()) => return Ok(super::Unsnoozed::Lifted(current)),
                // Replaced or lifted by someone else in between: the next read says which.
                Err(TransactOutcome::ConditionFailed | TransactOutcome::Conflict(_)) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(Error::unexpected(
            "dynamodb",
            "TransactWriteItems",
            format!("the snooze of {key} changed three times while it was being lifted: nothing was lifted, try again"),
        ))
    }

    /// When the last snooze that covered each of `resources` ended (ran out or was lifted,
    /// before `now`), while its item is kept, by resource id: one Query of the snoozes.
    pub(crate) async fn snooze_ends(
        &self,
        resources: &[&crate::model::Resource],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>> {
        let (found, _) = self.snooze_items(None).await?;
        let mut by_id: HashMap<&str, Vec<&Snooze>> = HashMap::new();
        for z in &found {
            by_id.entry(z.resource_id.as_str()).or_default().push(z);
        }
        Ok(resources
            .iter()
            .filter_map(|r| {
                let of = by_id.get(r.id.as_str())?;
                let end = of.iter().filter(|z| z.covers(r)).filter_map(|z| z.ended(now)).max()?;
                Some((r.id.clone(), end))
            })
            .collect())
    }
}

/// How long an ended snooze stays on record.
pub const ENDED_KEPT_DAYS: i64 = 90;

fn ended_kept_until(end: DateTime<Utc>) -> i64 {
    (end + chrono::Duration::days(ENDED_KEPT_DAYS)).timestamp()
}

/// The condition that an item is unchanged since it was read: still absent, or with the same
/// `at`, `until` and `lifted_at` (a grant writes its own `at`, a lift its `lifted_at`), with its
/// names and values.
struct AsRead {
    condition: String,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

fn as_read(read: Option<&Item>) -> AsRead {
    let Some(item) = read else {
        return AsRead {
            condition: "attribute_not_exists(pk)".into(),
            names: None,
            values: None,
        };
    };
    let mut parts = vec!["attribute_exists(pk)".to_string()];
    let (mut names, mut values) = (HashMap::new(), HashMap::new());
    for (attribute, name, value) in [
        ("at", "#at", ":read_at"),
        ("until", "#until", ":read_until"),
        ("lifted_at", "#lifted", ":read_lifted"),
    ] {
        names.insert(name.to_string(), attribute.to_string());
        match item.get(attribute) {
            Some(v) => {
                parts.push(format!("{name} = {value}"));
                values.insert(value.to_string(), v.clone());
            }
            None => parts.push(format!("attribute_not_exists({name})")),
        }
    }
    AsRead {
        condition: parts.join(" AND "),
        names: Some(names),
        values: (!values.is_empty()).then_some(values),
    }
}
