//! Run records: one item per scan (`RUN#<rule>` / `<time>#<account>#<region>`), kept 90 days, for
//! the savings report's weeks; and the last run of each place (`RUN#<rule>#LAST` /
//! `<account>#<region>`), so `finops status` reads every account and region's last run of a rule
//! with one Query, however many accounts ran since (a newer success in one account never hides a
//! failure in another).

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::dynamo::{n, s, DynamoState, TTL_ATTRIBUTE};
use super::RunRecord;
use crate::error::{Error, Result};

/// How long a run record is kept.
pub const RUN_RETENTION_DAYS: i64 = 90;

fn run_pk(rule: &str) -> String {
    format!("RUN#{rule}")
}

fn last_run_pk(rule: &str) -> String {
    format!("RUN#{rule}#LAST")
}

/// A time, fixed-width, so that string order is time order.
fn sortable(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl DynamoState {
    pub(crate) async fn put_run(&self, run: &RunRecord) -> Result<()> {
        let body =
            serde_json::to_string(run).map_err(|e| Error::Config(format!("cannot serialise a run record: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(run_pk(&run.rule)))
            .item("sk", s(format!("{}#{}#{}", sortable(run.at), run.account, run.region)))
            .item("kind", s("run"))
            .item("run", s(body.as_str()))
            .item(
                TTL_ATTRIBUTE,
                n((run.at + chrono::Duration::days(RUN_RETENTION_DAYS)).timestamp()),
            )
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "PutItem", e))?;
        // The place's last run, unless a run that started later already wrote it (two runs of
        // one place can finish out of order).
        let last = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(last_run_pk(&run.rule)))
            .item("sk", s(format!("{}#{}", run.account, run.region)))
            .item("kind", s("last-run"))
            .item("at", s(sortable(run.at)))
            .item("run", s(body))
            .item(
                TTL_ATTRIBUTE,
                n((run.at + chrono::Duration::days(RUN_RETENTION_DAYS)).timestamp()),
            )
            .condition_expression("attribute_not_exists(sk) OR #at <= :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", s(sortable(run.at)))
            .send()
            .await;
        super::dynamo::applied("PutItem", last)?;
        Ok(())
    }

    /// The last run of `rule` in each account and region it ran in (within the retention), newest
    /// first; for a table written before those were kept, its newest run. Unreadable items are
    /// left out, and logged.
    pub async fn last_runs(&self, rule: &str) -> Result<Vec<RunRecord>> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(last_run_pk(rule)));
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws("dynamodb", "Query", e))?;
            out.extend(page.items().iter().filter_map(|i| readable(rule, i)));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        if out.is_empty() {
            return self.runs(rule, None, Some(1)).await;
        }
        out.sort_by(|a, b| {
            b.at.cmp(&a.at)
                .then_with(|| (&a.account, &a.region).cmp(&(&b.account, &b.region)))
        });
        Ok(out)
    }

    /// The runs of `rule` at or after `since`, newest first, at most `limit` (unreadable items are
    /// left out, and logged).
    pub async fn runs(&self, rule: &str, since: Option<DateTime<Utc>>, limit: Option<i32>) -> Result<Vec<RunRecord>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(run_pk(rule)))
            .scan_index_forward(false);
        q = match since {
            Some(t) => q
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":from", s(sortable(t))),
            None => q.key_condition_expression("pk = :pk"),
        };
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = q
                .clone()
                .set_limit(limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws("dynamodb", "Query", e))?;
            out.extend(page.items().iter().filter_map(|i| readable(rule, i)));
            let full = limit.is_some_and(|l| out.len() >= usize::try_from(l).unwrap_or(0));
            match page.last_evaluated_key {
                Some(k) if !full => start = Some(k),
                _ => break,
            }
        }
        if let Some(l) = limit.and_then(|l| usize::try_from(l).ok()) {
            out.truncate(l);
        }
        Ok(out)
    }
}

/// The run record an item holds, or `None` (logged) when it cannot be read.
fn readable(rule: &str, item: &HashMap<String, AttributeValue>) -> Option<RunRecord> {
    match item
        .get("run")
        .and_then(|v| v.as_s().ok())
        .map(|b| serde_json::from_str::<RunRecord>(b))
    {
        Some(Ok(r)) => Some(r),
        _ => {
            tracing::warn!(rule, sk = ?item.get("sk"), "skipping an unreadable run record");
            None
        }
    }
}
