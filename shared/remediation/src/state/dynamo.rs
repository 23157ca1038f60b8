//! The DynamoDB adapter of [`StateStore`].

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::{ActionEnd, ActionRecord, ApprovalOpened, ApprovalRequest, StateStore};
use crate::error::{Error, Result};

/// Name of the TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// An approval request's decision deadline (epoch seconds). While the request is pending its TTL
/// is the same; a request that leaves `pending` loses its TTL (a rollback may need it weeks later)
/// and keeps this.
pub const DEADLINE_ATTRIBUTE: &str = "deadline";

/// The table adapter.
#[derive(Debug, Clone)]
pub struct DynamoState {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<AttributeValue> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| Error::Config(format!("cannot serialise a state item: {e}")))
}

/// A conditional PutItem's outcome: `true` written, `false` held back by its condition.
pub(crate) fn written(
    put: std::result::Result<
        aws_sdk_dynamodb::operation::put_item::PutItemOutput,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::put_item::PutItemError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> Result<bool> {
    applied("PutItem", put)
}

/// Any conditional write's outcome: `true` applied, `false` held back by its condition.
pub(crate) fn applied<O, E>(
    operation: &'static str,
    r: std::result::Result<
        O,
        aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    >,
) -> Result<bool>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match r {
        Ok(_) => Ok(true),
        Err(e)
            if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e) == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::aws("dynamodb", operation, e)),
    }
}

/// The partition of a cost alert's scope and month.
fn alert_pk(scope: &str, month: &str) -> String {
    format!("ALERT#{scope}#{month}")
}

/// A claim's time, fixed-width so that string order is time order.
fn claim_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The ledger's partition of a finding: the month it was detected.
pub(crate) fn ledger_pk(f: &crate::model::Finding) -> String {
    format!("LEDGER#{}", f.detected_at.format("%Y-%m"))
}

/// Dollars as a DynamoDB number (cents precision).
pub(crate) fn money(usd: f64) -> AttributeValue {
    AttributeValue::N(format!("{:.2}", crate::model::round_cents(usd)))
}

/// Partition key of the lock that keeps one open approval per finding.
pub(crate) fn finding_pk(finding_id: &str) -> String {
    format!("FINDING#{finding_id}")
}

impl DynamoState {
    /// Every sighting recorded in `scope` (one partition: one Query, however many there are);
    /// an entry whose time does not read is left out.
    async fn sightings_in(&self, scope: &str) -> Result<HashMap<String, DateTime<Utc>>> {
        let mut known: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("SEEN#{scope}")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| Error::aws("dynamodb", "Query", e))?;
            let (Some(AttributeValue::S(id)), Some(AttributeValue::S(at))) = (item.get("sk"), item.get("first_seen"))
            else {
                continue;
            };
            if let Ok(at) = DateTime::parse_from_rfc3339(at) {
                known.insert(id.clone(), at.with_timezone(&Utc));
            }
        }
        Ok(known)
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Uses `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoState {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The audit item for one transition; the trail of a finding is one Query on its pk.
    pub(crate) fn audit(
        &self,
        finding_id: &str,
        at: DateTime<Utc>,
        event: &str,
        id: &str,
        detail: &str,
    ) -> Result<TransactWriteItem> {
        let item = HashMap::from([
            ("pk".to_string(), s(format!("AUDIT#{finding_id}"))),
            ("sk".to_string(), s(format!("{}#{event}#{id}", at.to_rfc3339()))),
            ("kind".to_string(), s("audit")),
            ("event".to_string(), s(event)),
            ("ref_id".to_string(), s(id)),
            ("detail".to_string(), s(detail)),
            ("at".to_string(), s(at.to_rfc3339())),
        ]);
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    /// The ledger line of a finding: estimated dollars at detection (kept from the first time),
    /// by month of detection, rule and owner.
    pub(crate) fn ledger_estimate(&self, f: &crate::model::Finding) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(ledger_pk(f)))
            .key("sk", s(&f.id))
            .update_expression(
                "SET kind = :kind, #rule = :rule, #owner = :owner, resource_id = :res, estimated_usd = :est, \
                 detected_at = if_not_exists(detected_at, :det), #st = if_not_exists(#st, :estimated), \
                 realised_usd = if_not_exists(realised_usd, :zero)",
            )
            .expression_attribute_names("#rule", "rule")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":kind", s("ledger"))
            .expression_attribute_values(":rule", s(&f.rule))
            .expression_attribute_values(":owner", s(f.owner()))
            .expression_attribute_values(":res", s(&f.resource.id))
            .expression_attribute_values(":est", money(f.estimated_monthly_savings_usd.unwrap_or(0.0)))
            .expression_attribute_values(":det", s(f.detected_at.to_rfc3339()))
            .expression_attribute_values(":estimated", s("estimated"))
            .expression_attribute_values(":zero", money(0.0))
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The ledger line's realised dollars (`usd`), with its status and when.
    pub(crate) fn ledger_realise(
        &self,
        f: &crate::model::Finding,
        usd: f64,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem> {
        self.ledger_end(f, usd, status, "realised_at", at)
    }

    /// Closes a ledger line without savings (`rejected`, `expired`): nothing was realised.
    pub(crate) fn ledger_close(
        &self,
        f: &crate::model::Finding,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem> {
        self.ledger_end(f, 0.0, status, "closed_at", at)
    }

    /// The writes that end an `executing` action as `end`: its record (only from `executing`; with
    /// who resolved it, when not the run that began it), the audit item, and the ledger realised
    /// when executed.
    pub(crate) fn action_end(
        &self,
        action_id: &str,
        f: &crate::model::Finding,
        end: crate::state::ActionEnd,
        detail: &str,
        at: DateTime<Utc>,
        resolved_by: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>> {
        let status = end.as_str();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("ACTION#{action_id}")))
            .key("sk", s("RECORD"))
            .update_expression(match (resolved_by, end) {
                (None, crate::state::ActionEnd::Unverified) => {
                    "SET #st = :st, detail = :d, finished_at = :at, unverified = :yes"
                }
                (None, _) => "SET #st = :st, detail = :d, finished_at = :at",
                (Some(_), _) => "SET #st = :st, detail = :d, finished_at = :at, resolved_by = :by",
            })
            .condition_expression("#st = :executing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":d", s(detail))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .expression_attribute_values(":executing", s("executing"));
        if let Some(by) = resolved_by {
            update = update.expression_attribute_values(":by", s(by));
        }
        if resolved_by.is_none() && end == crate::state::ActionEnd::Unverified {
            update = update.expression_attribute_values(":yes", AttributeValue::Bool(true));
        }
        let update = update
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB update: {e}")))?;
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit(&f.id, at, &format!("action-{status}"), action_id, detail)?,
        ];
        if matches!(
            end,
            crate::state::ActionEnd::Executed | crate::state::ActionEnd::Unverified
        ) {
            items.push(self.ledger_realise(f, f.estimated_monthly_savings_usd.unwrap_or(0.0), "realised", at)?);
        }
        Ok(items)
    }

    /// Sets a ledger line's realised dollars and status, with the time in `at_attribute`.
    fn ledger_end(
        &self,
        f: &crate::model::Finding,
        usd: f64,
        status: &str,
        at_attribute: &str,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(ledger_pk(f)))
            .key("sk", s(&f.id))
            .update_expression(format!(
                "SET kind = :kind, realised_usd = :usd, #st = :st, {at_attribute} = :at, #rule = :rule, #owner = :owner, \
                 estimated_usd = if_not_exists(estimated_usd, :est), detected_at = if_not_exists(detected_at, :det)"
            ))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#rule", "rule")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":kind", s("ledger"))
            .expression_attribute_values(":usd", money(usd))
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .expression_attribute_values(":rule", s(&f.rule))
            .expression_attribute_values(":owner", s(f.owner()))
            .expression_attribute_values(":est", money(f.estimated_monthly_savings_usd.unwrap_or(0.0)))
            .expression_attribute_values(":det", s(f.detected_at.to_rfc3339()))
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> std::result::Result<(), TransactOutcome> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let codes: Vec<String> = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                    return Err(TransactOutcome::ConditionFailed);
                }
                let e = Error::aws("dynamodb", "TransactWriteItems", err);
                if codes.iter().any(|c| c == "TransactionConflict") {
                    return Err(TransactOutcome::Conflict(e));
                }
                Err(TransactOutcome::Failed(e))
            }
        }
    }

    pub(crate) async fn get(&self, pk: &str, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "GetItem", e))?;
        Ok(out.item)
    }
}

pub(crate) enum TransactOutcome {
    ConditionFailed,
    /// Another transaction on the same items was in progress (nothing was written; a retry may pass).
    Conflict(Error),
    Failed(Error),
}

impl TransactOutcome {
    /// The error of a transaction that had no condition to fail (or whose failed condition is one).
    pub(crate) fn into_error(self) -> Error {
        match self {
            TransactOutcome::ConditionFailed => Error::unexpected(
                "dynamodb",
                "TransactWriteItems",
                "a condition failed on a write that should have none",
            ),
            TransactOutcome::Conflict(e) | TransactOutcome::Failed(e) => e,
        }
    }
}

impl DynamoState {
    /// Sets the boolean `flag` of an existing approval request (`notified`, `unsent`).
    async fn flag_request(&self, request_id: &str, flag: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("APPROVAL#{request_id}")))
            .key("sk", s("REQUEST"))
            .update_expression("SET #flag = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#flag", flag)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl StateStore for DynamoState {
    async fn emergency_stop(&self) -> Result<Option<crate::state::EmergencyStop>> {
        self.read_emergency_stop().await
    }

    async fn snoozes(&self, now: DateTime<Utc>) -> Result<Vec<super::Snooze>> {
        self.active_snoozes(now).await
    }

    async fn snoozes_of(&self, resource_id: &str, now: DateTime<Utc>) -> Result<Vec<super::Snooze>> {
        self.resource_snoozes(resource_id, now).await
    }

    async fn snooze_ends(
        &self,
        resources: &[&crate::model::Resource],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>> {
        DynamoState::snooze_ends(self, resources, now).await
    }

    async fn record_run(&self, run: &super::RunRecord) -> Result<()> {
        self.put_run(run).await
    }

    async fn lock_resource(
        &self,
        resource: &str,
        holder: &str,
        now: DateTime<Utc>,
        read_at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        self.take_lock(resource, holder, now, read_at).await
    }

    async fn lock_done(&self, resource: &str, holder: &str, at: DateTime<Utc>) -> Result<()> {
        self.finish_lock(resource, holder, at).await
    }

    async fn resource_lock(&self, resource: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        self.lock_of(resource, now).await
    }

    async fn unlock_resource(&self, resource: &str, holder: &str) -> Result<()> {
        self.give_back_lock(resource, holder).await
    }

    async fn register_scanned(&self, rule: &str, period: &super::budget::Period, now: DateTime<Utc>) -> Result<()> {
        self.add_scanned(rule, period, now).await
    }

    async fn draw_action(
        &self,
        rule: &str,
        period: &super::budget::Period,
        limits: super::budget::Limits,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<super::budget::Grant> {
        self.draw_from(rule, period, limits, resource, now).await
    }

    async fn record_compliance(&self, point: &super::CompliancePoint) -> Result<()> {
        self.put_compliance(point).await
    }

    async fn open_approval(&self, request: &ApprovalRequest) -> Result<ApprovalOpened> {
        let f = &request.finding;
        let expires = request.expires_at.timestamp();
        let lock = HashMap::from([
            ("pk".to_string(), s(finding_pk(&f.id))),
            ("sk".to_string(), s("OPEN_APPROVAL")),
            ("kind".to_string(), s("approval-lock")),
            ("request_id".to_string(), s(&request.request_id)),
            (TTL_ATTRIBUTE.to_string(), n(expires)),
        ]);
        let item = HashMap::from([
            ("pk".to_string(), s(format!("APPROVAL#{}", request.request_id))),
            ("sk".to_string(), s("REQUEST")),
            ("kind".to_string(), s("approval")),
            ("status".to_string(), s("pending")),
            ("notified".to_string(), AttributeValue::Bool(false)),
            ("finding_id".to_string(), s(&f.id)),
            ("rule".to_string(), s(&f.rule)),
            ("resource_id".to_string(), s(&f.resource.id)),
            ("action".to_string(), s(f.action.as_str())),
            ("finding".to_string(), json(f)?),
            ("created_at".to_string(), s(request.created_at.to_rfc3339())),
            (
                "required_approvals".to_string(),
                n(i64::from(request.required_approvals.max(1))),
            ),
            // The decision deadline, kept when the request leaves `pending` and loses its TTL.
            (DEADLINE_ATTRIBUTE.to_string(), n(expires)),
            (TTL_ATTRIBUTE.to_string(), n(expires)),
        ]);
        // The lock may be taken over only once the previous request has expired (DynamoDB's TTL
        // deletes lazily, so the expiry is checked here rather than trusted to have happened).
        let lock_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(lock))
            .condition_expression("attribute_not_exists(pk) OR #exp < :now")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(request.created_at.timestamp()))
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB put: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().put(lock_put).build(),
            self.put(item, Some("attribute_not_exists(pk)"))?,
            self.audit(
                &f.id,
                request.created_at,
                "approval-requested",
                &request.request_id,
                &format!(
                    "{} proposed; pending until {}",
                    f.action.as_str(),
                    request.expires_at.format("%Y-%m-%d %H:%M UTC")
                ),
            )?,
            self.ledger_estimate(f)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(ApprovalOpened::Created),
            Err(TransactOutcome::Failed(e) | TransactOutcome::Conflict(e)) => Err(e),
            Err(TransactOutcome::ConditionFailed) => {
                let lock = self.get(&finding_pk(&f.id), "OPEN_APPROVAL").await?;
                let request_id = match lock.as_ref().and_then(|l| l.get("request_id")) {
                    Some(AttributeValue::S(id)) => id.clone(),
                    _ => {
                        return Err(Error::unexpected(
                            "dynamodb",
                            "GetItem",
                            format!("approval lock of {} vanished or has no request_id", f.id),
                        ))
                    }
                };
                let existing = self.get(&format!("APPROVAL#{request_id}"), "REQUEST").await?;
                let notified = matches!(
                    existing.as_ref().and_then(|i| i.get("notified")),
                    Some(AttributeValue::Bool(true))
                );
                let created_at = match existing.as_ref().and_then(|i| i.get("created_at")) {
                    Some(AttributeValue::S(t)) => DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc)),
                    _ => None,
                };
                let unsent = matches!(
                    existing.as_ref().and_then(|i| i.get("unsent")),
                    Some(AttributeValue::Bool(true))
                );
                Ok(ApprovalOpened::AlreadyOpen {
                    request_id,
                    notified,
                    created_at,
                    unsent,
                })
            }
        }
    }

    async fn mark_notified(&self, request_id: &str) -> Result<()> {
        self.flag_request(request_id, "notified").await
    }

    async fn mark_unsent(&self, request_id: &str) -> Result<()> {
        self.flag_request(request_id, "unsent").await
    }

    async fn begin_action(&self, record: &ActionRecord) -> Result<()> {
        let f = &record.finding;
        let item = HashMap::from([
            ("pk".to_string(), s(format!("ACTION#{}", record.action_id))),
            ("sk".to_string(), s("RECORD")),
            ("kind".to_string(), s("action")),
            ("status".to_string(), s("executing")),
            ("finding_id".to_string(), s(&f.id)),
            ("rule".to_string(), s(&f.rule)),
            ("resource_id".to_string(), s(&f.resource.id)),
            ("action".to_string(), s(f.action.as_str())),
            ("mode".to_string(), s(record.mode.as_str())),
            ("decided_by".to_string(), s(&record.decided_by)),
            ("finding".to_string(), json(f)?),
            ("pre_state".to_string(), json(&record.pre_state)?),
            ("rollback".to_string(), json(&record.rollback)?),
            ("started_at".to_string(), s(record.started_at.to_rfc3339())),
        ]);
        let mut item = item;
        if let Some(rid) = &record.request_id {
            item.insert("request_id".to_string(), s(rid));
        }
        if let Some(seal) = &record.seal {
            item.insert("seal".to_string(), s(seal));
        }
        let items = vec![
            self.ledger_estimate(f)?,
            self.put(item, Some("attribute_not_exists(pk)"))?,
            self.audit(
                &f.id,
                record.started_at,
                "action-executing",
                &record.action_id,
                &format!("{} by {}; pre-state captured", f.action.as_str(), record.decided_by),
            )?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TransactOutcome::Failed(e) | TransactOutcome::Conflict(e)) => Err(e),
            Err(TransactOutcome::ConditionFailed) => Err(Error::Precondition {
                resource: f.resource.id.clone(),
                message: format!("action {} is already recorded", record.action_id),
            }),
        }
    }

    async fn finish_action(
        &self,
        record: &ActionRecord,
        end: ActionEnd,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let items = self.action_end(&record.action_id, &record.finding, end, detail, at, None)?;
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TransactOutcome::Failed(e) | TransactOutcome::Conflict(e)) => Err(e),
            Err(TransactOutcome::ConditionFailed) => Err(Error::Precondition {
                resource: record.finding.resource.id.clone(),
                message: format!("action {} is not executing", record.action_id),
            }),
        }
    }

    async fn first_seen(
        &self,
        scope: &str,
        present: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>> {
        let pk = format!("SEEN#{scope}");
        let known = self.sightings_in(scope).await?;
        let mut out = HashMap::with_capacity(present.len());
        for id in present {
            if let Some(at) = known.get(id) {
                out.insert(id.clone(), *at);
                continue;
            }
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("sk", s(id))
                .item("kind", s("sighting"))
                .item("first_seen", s(now.to_rfc3339()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            // Written, or another run recorded it first (its time stands; this run waits a day
            // longer at most): either way it is first seen about now.
            written(put)?;
            out.insert(id.clone(), now);
        }
        for id in known.keys().filter(|id| !present.contains(id)) {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(id))
                .send()
                .await
                .map_err(|e| Error::aws("dynamodb", "DeleteItem", e))?;
        }
        Ok(out)
    }

    async fn retire_sightings(&self, from: &str, to: &str, present: &[String]) -> Result<usize> {
        let from_pk = format!("SEEN#{from}");
        let mut moved = 0;
        for (id, at) in self.sightings_in(from).await? {
            if present.contains(&id) {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s(format!("SEEN#{to}")))
                    .item("sk", s(&id))
                    .item("kind", s("sighting"))
                    .item("first_seen", s(at.to_rfc3339()))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                if written(put)? {
                    moved += 1;
                }
            }
            // Moved, or no longer unattached (attached since, or gone): the old entry goes, so a
            // later detach starts its own grace period.
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&from_pk))
                .key("sk", s(&id))
                .send()
                .await
                .map_err(|e| Error::aws("dynamodb", "DeleteItem", e))?;
        }
        Ok(moved)
    }

    async fn sighting(&self, scope: &str, id: &str) -> Result<Option<DateTime<Utc>>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("SEEN#{scope}")))
            .key("sk", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "GetItem", e))?;
        match item.item().and_then(|i| i.get("first_seen")) {
            None => Ok(None),
            Some(AttributeValue::S(at)) => DateTime::parse_from_rfc3339(at)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| Error::unexpected("dynamodb", "GetItem", format!("sighting of {id}: {e}"))),
            Some(other) => Err(Error::unexpected(
                "dynamodb",
                "GetItem",
                format!("sighting of {id} is not a string: {other:?}"),
            )),
        }
    }

    async fn claim_alert(&self, scope: &str, month: &str, level: u32, at: DateTime<Utc>) -> Result<bool> {
        // `level` is the highest level sent; a claim (`claim_level`, `claimed_at`) is in flight
        // until SNS accepts the message, and lapses after 5 minutes if its run died.
        let stale = at - chrono::Duration::minutes(5);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(alert_pk(scope, month)))
            .key("sk", s("LEVEL"))
            .update_expression("SET #kind = :kind, claim_level = :level, claimed_at = :at")
            .condition_expression(
                "(attribute_not_exists(#level) OR #level < :level) AND (attribute_not_exists(claimed_at) OR claimed_at < :stale)",
            )
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#level", "level")
            .expression_attribute_values(":kind", s("alert"))
            .expression_attribute_values(":level", n(i64::from(level)))
            .expression_attribute_values(":at", s(claim_time(at)))
            .expression_attribute_values(":stale", s(claim_time(stale)))
            .send()
            .await;
        applied("UpdateItem", update)
    }

    async fn confirm_alert(&self, scope: &str, month: &str, level: u32, at: DateTime<Utc>) -> Result<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(alert_pk(scope, month)))
            .key("sk", s("LEVEL"))
            .update_expression("SET #level = :level, alerted_at = :at REMOVE claim_level, claimed_at")
            .condition_expression("attribute_not_exists(#level) OR #level < :level")
            .expression_attribute_names("#level", "level")
            .expression_attribute_values(":level", n(i64::from(level)))
            .expression_attribute_values(":at", s(at.to_rfc3339()))
            .send()
            .await;
        // Held back: a higher level was already recorded as sent, which is what counts.
        applied("UpdateItem", update).map(|_| ())
    }

    async fn release_alert(&self, scope: &str, month: &str, at: DateTime<Utc>) -> Result<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(alert_pk(scope, month)))
            .key("sk", s("LEVEL"))
            .update_expression("REMOVE claim_level, claimed_at")
            .condition_expression("claimed_at = :at")
            .expression_attribute_values(":at", s(claim_time(at)))
            .send()
            .await;
        // Held back: the claim lapsed and another run holds it now.
        applied("UpdateItem", update).map(|_| ())
    }
}
