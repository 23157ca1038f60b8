//! What the savings report reads: the ledger lines of some months (one Query per month) and the
//! tag-compliance figures the sweep records (`KPI#tag-compliance` / `<date>`).

use crate::error::SdkErrorExt as _;
use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::dynamo::{s, DynamoState};
use crate::error::{Error, Result};

/// One ledger line: a finding's estimated and realised monthly dollars, and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerLine {
    pub finding_id: String,
    pub rule: String,
    pub owner: String,
    pub resource_id: String,
    pub estimated_usd: f64,
    pub realised_usd: f64,
    /// `estimated` (open), `realised`, `rolled-back`, `rejected` or `expired`.
    pub status: String,
    pub detected_at: DateTime<Utc>,
    /// When the action executed (or was rolled back).
    pub realised_at: Option<DateTime<Utc>>,
    /// When a rejection or expiry closed it.
    pub closed_at: Option<DateTime<Utc>>,
}

/// One sweep's compliance figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompliancePoint {
    pub date: NaiveDate,
    pub overall_percent: f64,
    /// Percent by resource type.
    pub by_type: BTreeMap<String, f64>,
}

const KPI_PK: &str = "KPI#tag-compliance";

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &HashMap<String, AttributeValue>, k: &str) -> Option<f64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

fn time(item: &HashMap<String, AttributeValue>, k: &str) -> Option<DateTime<Utc>> {
    text(item, k)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A ledger item as a line; `None` (logged) when it lacks what a line needs.
fn ledger_line(item: &HashMap<String, AttributeValue>) -> Option<LedgerLine> {
    let line = LedgerLine {
        finding_id: text(item, "sk")?,
        rule: text(item, "rule")?,
        owner: text(item, "owner").unwrap_or_else(|| "unknown".into()),
        resource_id: text(item, "resource_id").unwrap_or_default(),
        estimated_usd: number(item, "estimated_usd").unwrap_or(0.0),
        realised_usd: number(item, "realised_usd").unwrap_or(0.0),
        status: text(item, "status").unwrap_or_else(|| "estimated".into()),
        detected_at: time(item, "detected_at")?,
        realised_at: time(item, "realised_at"),
        closed_at: time(item, "closed_at"),
    };
    Some(line)
}

impl DynamoState {
    async fn query_all(&self, pk: &str, sk_from: Option<&str>) -> Result<Vec<HashMap<String, AttributeValue>>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk));
        q = match sk_from {
            Some(from) => q
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":from", s(from)),
            None => q.key_condition_expression("pk = :pk"),
        };
        let mut pages = q.into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| Error::aws("dynamodb", "Query", e))?);
        }
        Ok(out)
    }

    /// The ledger lines of `months` (`yyyy-mm`); unreadable items are skipped and counted.
    pub async fn ledger_lines(&self, months: &[String]) -> Result<(Vec<LedgerLine>, usize)> {
        let mut lines = Vec::new();
        let mut unreadable = 0;
        for m in months {
            for item in self.query_all(&format!("LEDGER#{m}"), None).await? {
                match ledger_line(&item) {
                    Some(l) => lines.push(l),
                    None => {
                        unreadable += 1;
                        tracing::warn!(month = %m, "skipping a ledger item without rule or detected_at");
                    }
                }
            }
        }
        Ok((lines, unreadable))
    }

    /// The compliance figures recorded on or after `since`.
    pub async fn compliance_since(&self, since: NaiveDate) -> Result<Vec<CompliancePoint>> {
        let items = self.query_all(KPI_PK, Some(&since.to_string())).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let date = text(item, "sk")?.parse().ok()?;
                let by_type = text(item, "by_type")
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                Some(CompliancePoint {
                    date,
                    overall_percent: number(item, "overall_percent")?,
                    by_type,
                })
            })
            .collect())
    }

    /// Records a sweep's figures (one item per day; a later sweep that day replaces it).
    pub async fn put_compliance(&self, point: &CompliancePoint) -> Result<()> {
        let by_type = serde_json::to_string(&point.by_type)
            .map_err(|e| Error::Config(format!("cannot serialise compliance figures: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(KPI_PK))
            .item("sk", s(point.date.to_string()))
            .item("kind", s("kpi"))
            .item(
                "overall_percent",
                AttributeValue::N(format!("{:.2}", point.overall_percent)),
            )
            .item("by_type", s(by_type))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "PutItem", e))?;
        Ok(())
    }
}
