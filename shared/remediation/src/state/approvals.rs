//! The DynamoDB side of [`ApprovalStore`]: each transition one conditional write plus its audit
//! item, in one transaction.

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::dynamo::{s, TransactOutcome, DEADLINE_ATTRIBUTE, TTL_ATTRIBUTE};
use super::{approval_on, rollback_on, BallotJudge, MAX_BALLOTS};
use super::{
    ActionEnd, ApprovalStore, AuditEntry, DynamoState, EmergencyStop, ExecutionEnd, Refusal, RollbackVote, Snooze,
    SnoozeGranted, StaleExecutions, StoredAction, StoredApproval, Vote,
};
use crate::error::{Error, Result};
use crate::identity::{self, Ballot};
use crate::model::Finding;

/// How often a vote is tried again when another decision on the same request got there first
/// (it is re-read and re-counted each time).
const VOTE_ATTEMPTS: usize = 5;

type Item = HashMap<String, AttributeValue>;

fn approval_pk(request_id: &str) -> String {
    format!("APPROVAL#{request_id}")
}

fn action_pk(action_id: &str) -> String {
    format!("ACTION#{action_id}")
}

fn text<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn number(item: &Item, key: &str) -> Option<i64> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn string_set(item: &Item, key: &str) -> Vec<String> {
    match item.get(key) {
        Some(AttributeValue::Ss(v)) => {
            let mut v = v.clone();
            v.sort();
            v
        }
        _ => Vec::new(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(item: &Item, key: &str, what: &str) -> Result<T> {
    let raw =
        text(item, key).ok_or_else(|| Error::unexpected("dynamodb", "GetItem", format!("{what} has no {key}")))?;
    serde_json::from_str(raw)
        .map_err(|e| Error::unexpected("dynamodb", "GetItem", format!("{what} has an unreadable {key}: {e}")))
}

fn stored_approval(item: &Item) -> Result<StoredApproval> {
    let request_id = text(item, "pk")
        .and_then(|pk| pk.strip_prefix("APPROVAL#"))
        .unwrap_or_default()
        .to_string();
    let what = format!("approval {request_id}");
    let finding: Finding = parse_json(item, "finding", &what)?;
    let expires_at = number(item, DEADLINE_ATTRIBUTE)
        .or_else(|| number(item, TTL_ATTRIBUTE))
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| Error::unexpected("dynamodb", "GetItem", format!("{what} has no expiry")))?;
    let approvers = string_set(item, "approvers");
    let decided_at = text(item, "decided_at")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let ballots = ballots(item, "ballots", &what)?
        .unwrap_or_else(|| identity::legacy_ballots(&approvers, decided_at.unwrap_or(expires_at)));
    Ok(StoredApproval {
        version: number(item, "version").unwrap_or(0),
        ballots,
        decided_at,
        status: text(item, "status").unwrap_or("unknown").to_string(),
        finding,
        expires_at,
        required_approvals: number(item, "required_approvals")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1),
        approvers,
        decided_by: text(item, "decided_by").map(str::to_string),
        decided_via: text(item, "decided_via").map(str::to_string),
        action_id: text(item, "action_id").map(str::to_string),
        detail: text(item, "detail").map(str::to_string),
        request_id,
    })
}

fn stored_action(item: &Item) -> Result<StoredAction> {
    let action_id = text(item, "pk")
        .and_then(|pk| pk.strip_prefix("ACTION#"))
        .unwrap_or_default()
        .to_string();
    let what = format!("action {action_id}");
    Ok(StoredAction {
        status: text(item, "status").unwrap_or("unknown").to_string(),
        finding: parse_json(item, "finding", &what)?,
        rollback: parse_json(item, "rollback", &what)?,
        request_id: text(item, "request_id").map(str::to_string),
        decided_by: text(item, "decided_by").unwrap_or("unknown").to_string(),
        rollback_ballots: ballots(item, "rollback_ballots", &what)?.unwrap_or_default(),
        rollback_version: number(item, "rollback_version").unwrap_or(0),
        started_at: text(item, "started_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        seal: text(item, "seal").map(str::to_string),
        action_id,
    })
}

/// The ballots stored as JSON under `key`; `None` for an item written before ballots were.
fn ballots(item: &Item, key: &str, what: &str) -> Result<Option<Vec<Ballot>>> {
    match text(item, key) {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| Error::unexpected("dynamodb", "GetItem", format!("{what} has unreadable {key}: {e}"))),
    }
}

/// How long a request is kept once it leaves `pending` (its TTL from then on, epoch seconds):
/// an approved one past the longest rollback window (365 days) with a margin; a rejected or
/// expired one, which nothing can follow, 90 days.
pub const APPROVED_RETENTION_DAYS: i64 = 400;
pub const CLOSED_RETENTION_DAYS: i64 = 90;

fn retained_until(now: DateTime<Utc>, approved: bool) -> i64 {
    let days = if approved {
        APPROVED_RETENTION_DAYS
    } else {
        CLOSED_RETENTION_DAYS
    };
    (now + chrono::Duration::days(days)).timestamp()
}

/// The condition that nobody else voted since the item was read at `version` (0: never voted
/// on with ballots); the value `:version` is bound when it is not 0.
fn unchanged_since(version: i64, attribute: &str) -> String {
    if version == 0 {
        format!("attribute_not_exists({attribute})")
    } else {
        format!("{attribute} = :version")
    }
}

/// The ballots of `ballots` this function cast on `on`, each once (a copy of a sealed ballot,
/// written in by another role, is one ballot).
fn sealed_once(ballots: &[Ballot], judge: &dyn BallotJudge, on: &str) -> Vec<Ballot> {
    let mut seen = std::collections::BTreeSet::new();
    ballots
        .iter()
        .filter(|b| judge.cast_here(b, on))
        .filter(|b| seen.insert(b.seal.clone()))
        .cloned()
        .collect()
}

/// The partition of a decision's marks (a request's end, an action's rollback attempts): written
/// by the approval function (and the operator) only; the template denies it to every other role.
fn spent_pk(id: &str) -> String {
    format!("SPENT#{id}")
}

impl DynamoState {
    /// The mark that a request's decision is over (taken for execution, rejected, expired or
    /// closed by a snooze): a request written back to `pending` or `approved` by another role
    /// finds it and stays closed. Fails the transaction if the mark exists.
    fn closed_mark(&self, request_id: &str, why: &str, now: DateTime<Utc>) -> Result<TransactWriteItem> {
        self.put(
            HashMap::from([
                ("pk".to_string(), s(spent_pk(request_id))),
                ("sk".to_string(), s("CLOSED")),
                ("kind".to_string(), s("decision-closed")),
                ("why".to_string(), s(why)),
                ("at".to_string(), s(now.to_rfc3339())),
                (TTL_ATTRIBUTE.to_string(), super::dynamo::n(retained_until(now, true))),
            ]),
            Some("attribute_not_exists(pk)"),
        )
    }

    /// A condition that `request_id`'s decision is not over (no [`Self::closed_mark`]).
    fn still_open(&self, request_id: &str) -> Result<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(spent_pk(request_id)))
            .key("sk", s("CLOSED"))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB condition check: {e}")))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Counts rollback attempt `attempt` of `action_id` as begun (fails the transaction if another
    /// began it first).
    fn attempt_taken(&self, action_id: &str, attempt: i64, now: DateTime<Utc>) -> Result<TransactWriteItem> {
        let mut put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .item("pk", s(spent_pk(action_id)))
            .item("sk", s("ROLLBACKS"))
            .item("kind", s("rollback-attempts"))
            .item("attempts", super::dynamo::n(attempt + 1))
            .item("at", s(now.to_rfc3339()));
        put = if attempt == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("attempts = :attempt")
                .expression_attribute_values(":attempt", super::dynamo::n(attempt))
        };
        let put = put
            .build()
            .map_err(|e| Error::Config(format!("bad DynamoDB put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update(&self, pk: String, sk: &str) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
    }

    /// Every item of the table that matches `filter` (a consistent, paginated Scan: only the
    /// hourly sweeps use it).
    async fn scan_items(
        &self,
        filter: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .consistent_read(true);
        for (k, v) in names {
            scan = scan.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            scan = scan.expression_attribute_values(*k, v.clone());
        }
        let mut pages = scan.into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            out.push(item.map_err(|e| Error::aws("dynamodb", "Scan", e))?);
        }
        Ok(out)
    }

    /// Every approval request (with `status`, when given), soonest deadline last; unreadable
    /// items are logged and left out (a Scan: the operator's listing, not a hot path).
    pub async fn approvals_with_status(&self, status: Option<&str>) -> Result<Vec<StoredApproval>> {
        let items = match status {
            Some(st) => {
                self.scan_items(
                    "kind = :approval AND #st = :st",
                    &[("#st", "status")],
                    &[(":approval", s("approval")), (":st", s(st))],
                )
                .await?
            }
            None => {
                self.scan_items("kind = :approval", &[], &[(":approval", s("approval"))])
                    .await?
            }
        };
        let mut out: Vec<StoredApproval> = items
            .iter()
            .filter_map(|i| match stored_approval(i) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable approval item");
                    None
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.expires_at
                .cmp(&a.expires_at)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        Ok(out)
    }

    /// Closes the pending requests on a snoozed resource: where the snooze names its account
    /// and region, those of every rule there (their locks name them, tag-compliance's stop and the
    /// snooze's own finding among them); else any pending request on the resource (a Scan: an
    /// operator's command, not a hot path). Only requests the snooze covers are closed. What
    /// cannot be read or closed is answered as a warning: the snooze is on record already.
    pub(super) async fn close_snoozed_approvals(
        &self,
        z: &Snooze,
        checks: &crate::evidence::Catalog,
    ) -> (Vec<(String, Finding)>, Vec<String>) {
        let mut warnings = Vec::new();
        let mut requests = Vec::new();
        match (&z.account, &z.region) {
            (Some(account), Some(region)) => {
                let mut finding_ids: Vec<String> = checks
                    .rules()
                    .map(|rule| format!("{rule}:{account}:{region}:{}", z.resource_id))
                    .collect();
                finding_ids.push(format!("tag-compliance:{account}:{region}:{}:stop", z.resource_id));
                finding_ids.extend(z.finding_id.clone());
                finding_ids.sort();
                finding_ids.dedup();
                for finding_id in finding_ids {
                    match self.get(&super::dynamo::finding_pk(&finding_id), "OPEN_APPROVAL").await {
                        Ok(Some(lock)) => requests.extend(text(&lock, "request_id").map(str::to_string)),
                        Ok(None) => {}
                        Err(e) => warnings.push(format!("the open request of {finding_id} could not be read: {e}")),
                    }
                }
            }
            _ => {
                let items = self
                    .scan_items(
                        "kind = :approval AND #st = :pending AND resource_id = :res",
                        &[("#st", "status")],
                        &[
                            (":approval", s("approval")),
                            (":pending", s("pending")),
                            (":res", s(&z.resource_id)),
                        ],
                    )
                    .await;
                match items {
                    Ok(items) => requests.extend(
                        items
                            .iter()
                            .filter_map(|i| text(i, "pk")?.strip_prefix("APPROVAL#").map(str::to_string)),
                    ),
                    Err(e) => warnings.push(format!("the pending requests could not be listed: {e}")),
                }
            }
        }
        requests.sort();
        requests.dedup();
        let mut closed = Vec::new();
        for request_id in requests {
            match self.close_as_snoozed(&request_id, z).await {
                Ok(Some(finding)) => closed.push((request_id, finding)),
                Ok(None) => {}
                Err(e) => warnings.push(format!(
                    "request {request_id} was left open ({e}); its approval is refused by the re-check before acting"
                )),
            }
        }
        (closed, warnings)
    }

    /// `pending → snoozed` (its audit item, the ledger line closed, the lock released so the run
    /// after the snooze asks again); its finding, or `None` if it was not pending.
    async fn close_as_snoozed(&self, request_id: &str, z: &Snooze) -> Result<Option<Finding>> {
        let Some(current) = self.approval(request_id).await? else {
            return Ok(None);
        };
        if current.status != "pending" || !z.covers(&current.finding.resource) {
            return Ok(None);
        }
        let close = built(
            self.update(approval_pk(request_id), "REQUEST")
                .update_expression(
                    "SET #st = :snoozed, decided_by = :by, decided_via = :via, decided_at = :at, #dl = :deadline, #exp = :keep",
                )
                .expression_attribute_values(":keep", super::dynamo::n(retained_until(z.at, false)))
                .condition_expression("#st = :pending")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_names("#dl", DEADLINE_ATTRIBUTE)
                .expression_attribute_values(":deadline", super::dynamo::n(current.expires_at.timestamp()))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":snoozed", s("snoozed"))
                .expression_attribute_values(":by", s(&z.by))
                .expression_attribute_values(":via", s(&z.via))
                .expression_attribute_values(":at", s(z.at.to_rfc3339())),
        )?;
        let audit = self.audit(
            &current.finding.id,
            z.at,
            "closed-snoozed",
            request_id,
            &format!("closed, nothing done: {}", z.describe()),
        )?;
        let ledger = self.ledger_close(&current.finding, "snoozed", z.at)?;
        let closed = self.closed_mark(request_id, "snoozed", z.at)?;
        if !self.transition(vec![close, closed, audit, ledger]).await? {
            return Ok(None);
        }
        self.release_approval_lock(&current.finding.id, request_id).await;
        Ok(Some(current.finding))
    }

    /// Deletes the finding's open-approval lock if `request_id` still holds it (best effort: a
    /// lock left behind lapses at the request's expiry).
    async fn release_approval_lock(&self, finding_id: &str, request_id: &str) {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(super::dynamo::finding_pk(finding_id)))
            .key("sk", s("OPEN_APPROVAL"))
            .condition_expression("request_id = :rid")
            .expression_attribute_values(":rid", s(request_id))
            .send()
            .await;
        if let Err(e) = deleted {
            if !e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
            {
                tracing::warn!(error = %e, request_id, "approval lock not released; it lapses at expiry");
            }
        }
    }

    /// Writes a ballot's transaction: `true` applied; `false` to be tried again on a fresh read
    /// (someone else voted or decided in between, or another transaction held the item, which is
    /// kept in `conflict` for the error if every try meets one).
    async fn ballot_written(&self, items: Vec<TransactWriteItem>, conflict: &mut Option<Error>) -> Result<bool> {
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TransactOutcome::ConditionFailed) => Ok(false),
            Err(TransactOutcome::Conflict(e)) => {
                *conflict = Some(e);
                Ok(false)
            }
            Err(TransactOutcome::Failed(e)) => Err(e),
        }
    }

    /// Runs a transition; a failed condition is `Ok(false)`.
    async fn transition(&self, items: Vec<TransactWriteItem>) -> Result<bool> {
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TransactOutcome::ConditionFailed) => Ok(false),
            Err(TransactOutcome::Failed(e) | TransactOutcome::Conflict(e)) => Err(e),
        }
    }

    /// Why a transition on a pending request failed.
    async fn refusal(&self, request_id: &str, approver: Option<&str>, now: DateTime<Utc>) -> Result<Refusal> {
        Ok(match self.approval(request_id).await? {
            None => Refusal::Unknown,
            Some(a) if a.status != "pending" => Refusal::NotPending(a.status),
            Some(a) if a.expires_at <= now => Refusal::Expired,
            Some(a) if approver.is_some_and(|who| a.approvers.iter().any(|x| x == who)) => Refusal::SameApprover,
            // The item changed between the write and this read: report what it is now.
            Some(a) => Refusal::NotPending(a.status),
        })
    }
}

fn built(u: aws_sdk_dynamodb::types::builders::UpdateBuilder) -> Result<TransactWriteItem> {
    let update = u
        .build()
        .map_err(|e| Error::Config(format!("bad DynamoDB update: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

impl DynamoState {
    /// The switch as stored. It fails closed: an item whose `on` is not a boolean reads as on.
    pub(crate) async fn read_emergency_stop(&self) -> Result<Option<EmergencyStop>> {
        Ok(self.get("CONTROL", "EMERGENCY_STOP").await?.map(|item| {
            let (on, odd) = match item.get("on") {
                Some(AttributeValue::Bool(on)) => (*on, None),
                other => (
                    true,
                    Some(format!("the switch's `on` is {other:?}, not a boolean: treated as on")),
                ),
            };
            let reason = text(&item, "reason").unwrap_or_default().to_string();
            EmergencyStop {
                on,
                by: text(&item, "by").unwrap_or("unknown").to_string(),
                at: text(&item, "at").unwrap_or_default().to_string(),
                reason: match odd {
                    Some(odd) => format!("{reason} ({odd})"),
                    None => reason,
                },
            }
        }))
    }
}

#[async_trait]
impl ApprovalStore for DynamoState {
    async fn approval(&self, request_id: &str) -> Result<Option<StoredApproval>> {
        match self.get(&approval_pk(request_id), "REQUEST").await? {
            Some(item) => Ok(Some(stored_approval(&item)?)),
            None => Ok(None),
        }
    }

    async fn vote(
        &self,
        request_id: &str,
        ballot: &Ballot,
        at_least: &(dyn for<'f> Fn(&'f Finding) -> u32 + Send + Sync),
        judge: &dyn BallotJudge,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Vote, Refusal>> {
        let mut conflict = None;
        for _ in 0..VOTE_ATTEMPTS {
            let Some(current) = self.approval(request_id).await? else {
                return Ok(Err(Refusal::Unknown));
            };
            if current.status != "pending" {
                return Ok(Err(Refusal::NotPending(current.status)));
            }
            if current.expires_at <= now {
                return Ok(Err(Refusal::Expired));
            }
            // Only the ballots this function cast on this very request and finding are kept and
            // counted: one written by another role, or moved here from another request, is not.
            let on = approval_on(request_id, &current.finding);
            let kept = sealed_once(&current.ballots, judge, &on);
            let counted: Vec<Ballot> = kept.iter().filter(|b| judge.counts(b, &on)).cloned().collect();
            if counted.iter().any(|b| b.same_as(ballot)) {
                return Ok(Err(Refusal::SameApprover));
            }
            if kept.len() >= MAX_BALLOTS {
                return Ok(Err(Refusal::Full));
            }
            if !ballot.verified && kept.iter().any(|b| !b.verified) {
                return Ok(Err(Refusal::TypedAlready));
            }
            let sealed = judge.seal(ballot.clone(), &on);
            let mut ballots = kept;
            ballots.push(sealed.clone());
            let mut counting = counted;
            counting.push(sealed);
            let required = current.required_approvals.max(at_least(&current.finding));
            let met = identity::quorum_met(&counting, required);
            let mut approvers: Vec<String> = ballots.iter().map(|b| b.id.clone()).collect();
            approvers.sort();
            approvers.dedup();
            let decided_by = approvers.join(", ");
            // The vote, and the approval it completes, are one transaction.
            let mut set = vec!["ballots = :ballots", "#ver = :next", "#dl = :deadline"];
            let mut u = self
                .update(approval_pk(request_id), "REQUEST")
                .condition_expression(format!(
                    "#st = :pending AND {}",
                    unchanged_since(current.version, "#ver")
                ))
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#ver", "version")
                .expression_attribute_names("#dl", DEADLINE_ATTRIBUTE)
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":ballots", super::dynamo::json(&ballots)?)
                .expression_attribute_values(":next", super::dynamo::n(current.version + 1))
                .expression_attribute_values(":deadline", super::dynamo::n(current.expires_at.timestamp()))
                .expression_attribute_values(":who", AttributeValue::Ss(approvers.clone()));
            if current.version != 0 {
                u = u.expression_attribute_values(":version", super::dynamo::n(current.version));
            }
            if met {
                // Out of `pending`: the decision deadline is no longer its lifetime; it is kept
                // past any rollback window, so a rollback weeks later still finds it.
                set.extend([
                    "#st = :approved",
                    "decided_by = :by",
                    "decided_via = :via",
                    "decided_at = :at",
                    "#ttl = :keep",
                ]);
                u = u
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":approved", s("approved"))
                    .expression_attribute_values(":by", s(&decided_by))
                    .expression_attribute_values(":via", s(&ballot.via))
                    .expression_attribute_values(":at", s(now.to_rfc3339()))
                    .expression_attribute_values(":keep", super::dynamo::n(retained_until(now, true)));
            }
            set.push("approvers = :who");
            u = u.update_expression(format!("SET {}", set.join(", ")));
            let proof = if ballot.verified { "verified" } else { "unverified" };
            let mut items = vec![
                built(u)?,
                self.still_open(request_id)?,
                self.audit(
                    &current.finding.id,
                    now,
                    "approval-vote",
                    &format!("{request_id}:{}", ballot.id),
                    &format!("approved by {} via {} ({proof})", ballot.id, ballot.via),
                )?,
            ];
            if met {
                items.push(self.audit(
                    &current.finding.id,
                    now,
                    "approved",
                    request_id,
                    &format!("approved by {decided_by} via {}", ballot.via),
                )?);
            }
            if !self.ballot_written(items, &mut conflict).await? {
                // Its decision is over, whatever the item says (another role wrote it back).
                if let Some(mark) = self.get(&spent_pk(request_id), "CLOSED").await? {
                    tracing::error!(
                        request_id,
                        "a vote on a request whose decision is over: its item says pending (written by another role?)"
                    );
                    return Ok(Err(Refusal::NotPending(
                        text(&mark, "why").unwrap_or("closed").to_string(),
                    )));
                }
                continue;
            }
            if !met {
                return Ok(Ok(Vote::NeedMore {
                    have: identity::people(&counting),
                    need: required,
                }));
            }
            return Ok(Ok(Vote::Approved(Box::new(StoredApproval {
                status: "approved".into(),
                decided_by: Some(decided_by),
                decided_via: Some(ballot.via.clone()),
                decided_at: Some(now),
                version: current.version + 1,
                ballots,
                approvers,
                ..current
            }))));
        }
        Err(conflict.unwrap_or_else(|| Error::Precondition {
            resource: request_id.to_string(),
            message: format!("the request changed under {VOTE_ATTEMPTS} votes in a row"),
        }))
    }

    async fn approved_waiting(&self, before: DateTime<Utc>) -> Result<Vec<StoredApproval>> {
        let items = self
            .scan_items(
                "kind = :approval AND #st = :approved",
                &[("#st", "status")],
                &[(":approval", s("approval")), (":approved", s("approved"))],
            )
            .await?;
        let mut out = Vec::new();
        for item in &items {
            match stored_approval(item) {
                // A decision time that cannot be read counts as old (it is stuck).
                Ok(a) if a.decided_at.is_none_or(|t| t < before) => out.push(a),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable approval item"),
            }
        }
        Ok(out)
    }

    async fn reject(
        &self,
        request_id: &str,
        approver: &str,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<StoredApproval, Refusal>> {
        let Some(current) = self.approval(request_id).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        let reject = built(
            self.update(approval_pk(request_id), "REQUEST")
                .update_expression(
                    "SET #st = :rejected, decided_by = :by, decided_via = :via, decided_at = :at, #dl = :deadline, #exp = :keep",
                )
                .expression_attribute_values(":keep", super::dynamo::n(retained_until(now, false)))
                .condition_expression("#st = :pending AND #exp > :now")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_names("#dl", DEADLINE_ATTRIBUTE)
                .expression_attribute_values(":deadline", super::dynamo::n(current.expires_at.timestamp()))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":rejected", s("rejected"))
                .expression_attribute_values(":by", s(approver))
                .expression_attribute_values(":via", s(via))
                .expression_attribute_values(":at", s(now.to_rfc3339()))
                .expression_attribute_values(":now", super::dynamo::n(now.timestamp())),
        )?;
        let audit = self.audit(
            &current.finding.id,
            now,
            "rejected",
            request_id,
            &format!("rejected by {approver} via {via}"),
        )?;
        let ledger = self.ledger_close(&current.finding, "rejected", now)?;
        let closed = self.closed_mark(request_id, "rejected", now)?;
        if self.transition(vec![reject, closed, audit, ledger]).await? {
            Ok(Ok(StoredApproval {
                status: "rejected".into(),
                decided_by: Some(approver.to_string()),
                decided_via: Some(via.to_string()),
                ..current
            }))
        } else {
            Ok(Err(self.refusal(request_id, None, now).await?))
        }
    }

    async fn begin_execution(&self, request_id: &str, finding_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let take = built(
            self.update(approval_pk(request_id), "REQUEST")
                .update_expression("SET #st = :executing, executing_at = :at")
                .condition_expression("#st = :approved")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":approved", s("approved"))
                .expression_attribute_values(":executing", s("executing"))
                .expression_attribute_values(":at", s(now.to_rfc3339())),
        )?;
        let audit = self.audit(finding_id, now, "executing", request_id, "re-check and act")?;
        let closed = self.closed_mark(request_id, "executing", now)?;
        self.transition(vec![take, closed, audit]).await
    }

    async fn finish_execution(
        &self,
        request_id: &str,
        finding: &Finding,
        end: ExecutionEnd,
        action_id: Option<&str>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let status = end.as_str();
        let mut u = self
            .update(approval_pk(request_id), "REQUEST")
            .update_expression("SET #st = :st, detail = :d, finished_at = :at, action_id = :a")
            .condition_expression("#st = :executing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":executing", s("executing"))
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":d", s(detail))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":a", s(action_id.unwrap_or("-")));
        u = u.expression_attribute_names("#st", "status");
        let audit = self.audit(&finding.id, now, status, request_id, detail)?;
        let mut items = vec![built(u)?, audit];
        if end == ExecutionEnd::Obsolete {
            items.push(self.ledger_close(finding, "obsolete", now)?);
        }
        if !self.transition(items).await? {
            return Err(Error::Precondition {
                resource: request_id.to_string(),
                message: "the request is not executing".into(),
            });
        }
        if end != ExecutionEnd::Executed {
            // Closed without its action: a later run may ask about the finding again (instead of
            // "already awaiting approval" until this request's expiry).
            self.release_approval_lock(&finding.id, request_id).await;
        }
        Ok(())
    }

    async fn stale_executions(&self, before: DateTime<Utc>) -> Result<StaleExecutions> {
        let items = self
            .scan_items(
                "(#st = :executing AND (kind = :action OR kind = :approval)) OR (#st = :rolling AND kind = :action)",
                &[("#st", "status")],
                &[
                    (":executing", s("executing")),
                    (":rolling", s("rolling-back")),
                    (":action", s("action")),
                    (":approval", s("approval")),
                ],
            )
            .await?;
        // Begun before `before`: a start time that cannot be read counts as old (it is stuck).
        let begun_before = |item: &Item, attribute: &str| {
            text(item, attribute)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_none_or(|t| t.with_timezone(&Utc) < before)
        };
        let mut out = StaleExecutions::default();
        let mut requests = Vec::new();
        for item in &items {
            let unreadable = |e: Error| tracing::warn!(error = %e, "skipping an unreadable executing item");
            let rolling = text(item, "status") == Some("rolling-back");
            match text(item, "kind") {
                Some("action") if rolling && begun_before(item, "rollback_at") => match stored_action(item) {
                    Ok(a) => out.rollbacks.push(a),
                    Err(e) => unreadable(e),
                },
                Some("action") if rolling => {}
                Some("action") if begun_before(item, "started_at") => match stored_action(item) {
                    Ok(a) => out.actions.push(a),
                    Err(e) => unreadable(e),
                },
                Some("approval") if begun_before(item, "executing_at") => match stored_approval(item) {
                    Ok(a) => requests.push(a),
                    Err(e) => unreadable(e),
                },
                _ => {}
            }
        }
        if requests.is_empty() {
            return Ok(out);
        }
        // The actions those requests recorded, whatever their status: one Scan for all of them.
        let mut recorded: HashMap<String, StoredAction> = HashMap::new();
        for item in self
            .scan_items(
                "kind = :action AND attribute_exists(request_id)",
                &[],
                &[(":action", s("action"))],
            )
            .await?
        {
            if let Ok(a) = stored_action(&item) {
                if let Some(rid) = a.request_id.clone() {
                    recorded.insert(rid, a);
                }
            }
        }
        out.requests = requests
            .into_iter()
            .map(|a| {
                let action = recorded.remove(&a.request_id);
                (a, action)
            })
            .collect();
        Ok(out)
    }

    async fn unverified_actions(&self) -> Result<Vec<StoredAction>> {
        let items = self
            .scan_items(
                "kind = :action AND #st = :executed AND unverified = :yes",
                &[("#st", "status")],
                &[
                    (":action", s("action")),
                    (":executed", s("executed")),
                    (":yes", AttributeValue::Bool(true)),
                ],
            )
            .await?;
        let mut out = Vec::new();
        for item in &items {
            match stored_action(item) {
                Ok(a) => out.push(a),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable unverified action"),
            }
        }
        Ok(out)
    }

    async fn settle_unverified(
        &self,
        action: &StoredAction,
        confirmed: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut u = self
            .update(action_pk(&action.action_id), "RECORD")
            .condition_expression("#st = :executed AND unverified = :yes")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":executed", s("executed"))
            .expression_attribute_values(":yes", AttributeValue::Bool(true));
        u = if confirmed {
            u.update_expression("SET verified_at = :at REMOVE unverified")
                .expression_attribute_values(":at", s(now.to_rfc3339()))
        } else {
            u.update_expression("SET #st = :failed, detail = :d, resolved_by = :by REMOVE unverified")
                .expression_attribute_values(":failed", s("failed"))
                .expression_attribute_values(":d", s(detail))
                .expression_attribute_values(":by", s("sweep"))
        };
        let mut items = vec![
            built(u)?,
            self.audit(
                &action.finding.id,
                now,
                if confirmed { "action-verified" } else { "action-failed" },
                &action.action_id,
                detail,
            )?,
        ];
        if !confirmed {
            // Its savings were counted when it was recorded done: no longer.
            items.push(self.ledger_close(&action.finding, "failed", now)?);
        }
        self.transition(items).await
    }

    async fn resolve_stale_action(
        &self,
        action: &StoredAction,
        executed: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let end = if executed {
            ActionEnd::Executed
        } else {
            ActionEnd::Failed
        };
        let items = self.action_end(&action.action_id, &action.finding, end, detail, now, Some("sweep"))?;
        self.transition(items).await
    }

    async fn expire_pending(&self, now: DateTime<Utc>) -> Result<Vec<StoredApproval>> {
        let items = self
            .scan_items(
                "kind = :approval AND #st = :pending AND #exp <= :now",
                &[("#st", "status"), ("#exp", TTL_ATTRIBUTE)],
                &[
                    (":approval", s("approval")),
                    (":pending", s("pending")),
                    (":now", super::dynamo::n(now.timestamp())),
                ],
            )
            .await?;
        let mut stale = Vec::new();
        for item in &items {
            match stored_approval(item) {
                Ok(a) => stale.push(a),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable approval item"),
            }
        }
        let mut expired = Vec::new();
        for a in stale {
            let expire = built(
                self.update(approval_pk(&a.request_id), "REQUEST")
                    .update_expression(
                        "SET #st = :expired, decided_by = :by, decided_at = :at, #dl = :deadline, #exp = :keep",
                    )
                    .expression_attribute_values(":keep", super::dynamo::n(retained_until(now, false)))
                    .condition_expression("#st = :pending AND #exp <= :now")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                    .expression_attribute_names("#dl", DEADLINE_ATTRIBUTE)
                    .expression_attribute_values(":deadline", super::dynamo::n(a.expires_at.timestamp()))
                    .expression_attribute_values(":pending", s("pending"))
                    .expression_attribute_values(":expired", s("expired"))
                    .expression_attribute_values(":by", s("expiry"))
                    .expression_attribute_values(":at", s(now.to_rfc3339()))
                    .expression_attribute_values(":now", super::dynamo::n(now.timestamp())),
            )?;
            let audit = self.audit(
                &a.finding.id,
                now,
                "expired",
                &a.request_id,
                &format!("no decision by {}: nothing done", a.expires_at.to_rfc3339()),
            )?;
            let ledger = self.ledger_close(&a.finding, "expired", now)?;
            let closed = self.closed_mark(&a.request_id, "expired", now)?;
            if self.transition(vec![expire, closed, audit, ledger]).await? {
                expired.push(StoredApproval {
                    status: "expired".into(),
                    ..a
                });
            }
        }
        Ok(expired)
    }

    async fn action(&self, action_id: &str) -> Result<Option<StoredAction>> {
        match self.get(&action_pk(action_id), "RECORD").await? {
            Some(item) => Ok(Some(stored_action(&item)?)),
            None => Ok(None),
        }
    }

    async fn begin_rollback(
        &self,
        action_id: &str,
        ballot: &Ballot,
        required: u32,
        judge: &dyn BallotJudge,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<RollbackVote, Refusal>> {
        let mut conflict = None;
        for _ in 0..VOTE_ATTEMPTS {
            let Some(action) = self.action(action_id).await? else {
                return Ok(Err(Refusal::Unknown));
            };
            if action.status != "executed" {
                return Ok(Err(Refusal::NotExecuted(action.status)));
            }
            if !action.rollback.is_for(&action.finding) {
                return Ok(Err(Refusal::ForeignRollback));
            }
            // Ballots count for one attempt: those of a failed rollback do not make the next.
            let attempt = self.rollback_attempts(action_id).await?;
            let on = rollback_on(&action, attempt);
            let kept = sealed_once(&action.rollback_ballots, judge, &on);
            let counted: Vec<Ballot> = kept.iter().filter(|b| judge.counts(b, &on)).cloned().collect();
            if counted.iter().any(|b| b.same_as(ballot)) {
                return Ok(Err(Refusal::SameApprover));
            }
            if kept.len() >= MAX_BALLOTS {
                return Ok(Err(Refusal::Full));
            }
            if !ballot.verified && kept.iter().any(|b| !b.verified) {
                return Ok(Err(Refusal::TypedAlready));
            }
            let sealed = judge.seal(ballot.clone(), &on);
            let mut ballots = kept;
            ballots.push(sealed.clone());
            let mut counting = counted;
            counting.push(sealed);
            let met = identity::quorum_met(&counting, required);
            let by = counting.iter().map(|b| b.id.as_str()).collect::<Vec<_>>().join(", ");
            let mut set = vec!["rollback_ballots = :ballots", "#ver = :next"];
            let mut u = self
                .update(action_pk(action_id), "RECORD")
                .condition_expression(format!(
                    "#st = :executed AND {}",
                    unchanged_since(action.rollback_version, "#ver")
                ))
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#ver", "rollback_version")
                .expression_attribute_values(":executed", s("executed"))
                .expression_attribute_values(":ballots", super::dynamo::json(&ballots)?)
                .expression_attribute_values(":next", super::dynamo::n(action.rollback_version + 1));
            if action.rollback_version != 0 {
                u = u.expression_attribute_values(":version", super::dynamo::n(action.rollback_version));
            }
            if met {
                set.extend(["#st = :rolling", "rollback_by = :by", "rollback_at = :at"]);
                u = u
                    .expression_attribute_values(":rolling", s("rolling-back"))
                    .expression_attribute_values(":by", s(&by))
                    .expression_attribute_values(":at", s(now.to_rfc3339()));
            }
            u = u.update_expression(format!("SET {}", set.join(", ")));
            let proof = if ballot.verified { "verified" } else { "unverified" };
            let mut items = vec![
                built(u)?,
                self.audit(
                    &action.finding.id,
                    now,
                    "rollback-vote",
                    &format!("{action_id}:{}", ballot.id),
                    &format!("rollback approved by {} via {} ({proof})", ballot.id, ballot.via),
                )?,
            ];
            if met {
                // This attempt is taken: its ballots never begin another.
                items.push(self.attempt_taken(action_id, attempt, now)?);
                items.push(self.audit(
                    &action.finding.id,
                    now,
                    "rollback-started",
                    action_id,
                    &format!("rollback approved by {by}"),
                )?);
            }
            if !self.ballot_written(items, &mut conflict).await? {
                continue;
            }
            if !met {
                return Ok(Ok(RollbackVote::NeedMore {
                    have: identity::people(&counting),
                    need: required,
                }));
            }
            return Ok(Ok(RollbackVote::Begin(Box::new(StoredAction {
                status: "rolling-back".into(),
                rollback_version: action.rollback_version + 1,
                rollback_ballots: ballots,
                ..action
            }))));
        }
        Err(conflict.unwrap_or_else(|| Error::Precondition {
            resource: action_id.to_string(),
            message: format!("the action changed under {VOTE_ATTEMPTS} rollback votes in a row"),
        }))
    }

    async fn rollback_attempts(&self, action_id: &str) -> Result<i64> {
        Ok(self
            .get(&spent_pk(action_id), "ROLLBACKS")
            .await?
            .and_then(|item| number(&item, "attempts"))
            .unwrap_or(0))
    }

    async fn finish_rollback(
        &self,
        action: &StoredAction,
        ok: bool,
        by: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let status = if ok { "rolled-back" } else { "executed" };
        let mut items = vec![
            built(
                self.update(action_pk(&action.action_id), "RECORD")
                    // A failed rollback starts its approvals afresh (the same people may ask again).
                    .update_expression(if ok {
                        "SET #st = :st, rollback_detail = :d"
                    } else {
                        "SET #st = :st, rollback_detail = :d, rollback_version = :next REMOVE rollback_ballots"
                    })
                    .condition_expression("#st = :rolling")
                    .expression_attribute_names("#st", "status")
                    .set_expression_attribute_values(Some({
                        let mut v = HashMap::from([
                            (":rolling".to_string(), s("rolling-back")),
                            (":st".to_string(), s(status)),
                            (":d".to_string(), s(detail)),
                        ]);
                        if !ok {
                            v.insert(":next".to_string(), super::dynamo::n(action.rollback_version + 1));
                        }
                        v
                    })),
            )?,
            self.audit(
                &action.finding.id,
                now,
                if ok { "rolled-back" } else { "rollback-failed" },
                &action.action_id,
                &format!("{detail} (by {by})"),
            )?,
        ];
        if ok {
            items.push(self.ledger_realise(&action.finding, 0.0, "rolled-back", now)?);
            // The request is updated only if it is still there as `executed`: a request that
            // lapsed (items written before requests lost their TTL on approval) must not make
            // the rollback's record fail.
            let request = match &action.request_id {
                Some(rid) => self.approval(rid).await?.filter(|a| a.status == "executed"),
                None => None,
            };
            if request.is_none() && action.request_id.is_some() {
                tracing::warn!(action_id = %action.action_id, "the action's request is gone or not executed: only the action is marked rolled back");
            }
            if let Some(rid) = request.as_ref().map(|r| &r.request_id) {
                items.push(built(
                    self.update(approval_pk(rid), "REQUEST")
                        .update_expression("SET #st = :rb")
                        .condition_expression("#st = :executed")
                        .expression_attribute_names("#st", "status")
                        .expression_attribute_values(":executed", s("executed"))
                        .expression_attribute_values(":rb", s("rolled-back")),
                )?);
            }
        }
        if self.transition(items).await? {
            Ok(())
        } else {
            Err(Error::Precondition {
                resource: action.finding.resource.id.clone(),
                message: format!("action {} is not rolling back", action.action_id),
            })
        }
    }

    async fn set_emergency_stop(&self, on: bool, by: &str, reason: &str, now: DateTime<Utc>) -> Result<()> {
        let put = self.put(
            HashMap::from([
                ("pk".to_string(), s("CONTROL")),
                ("sk".to_string(), s("EMERGENCY_STOP")),
                ("kind".to_string(), s("control")),
                ("on".to_string(), AttributeValue::Bool(on)),
                ("by".to_string(), s(by)),
                ("at".to_string(), s(now.to_rfc3339())),
                ("reason".to_string(), s(reason)),
            ]),
            None,
        )?;
        let audit = self.audit(
            "CONTROL",
            now,
            if on { "emergency-stop-on" } else { "emergency-stop-off" },
            by,
            reason,
        )?;
        match self.transact(vec![put, audit]).await {
            Ok(()) => Ok(()),
            Err(TransactOutcome::Failed(e) | TransactOutcome::Conflict(e)) => Err(e),
            Err(TransactOutcome::ConditionFailed) => Err(Error::Precondition {
                resource: "CONTROL".into(),
                message: "the switch was set twice in the same instant".into(),
            }),
        }
    }

    async fn claim_post(&self, key: &str, now: DateTime<Utc>) -> Result<bool> {
        let stale = now - chrono::Duration::minutes(5);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("POST#{key}")))
            .item("sk", s("SLACK"))
            .item("kind", s("post"))
            .item("status", s("posting"))
            .item("claimed_at", s(now.to_rfc3339()))
            .item(
                TTL_ATTRIBUTE,
                super::dynamo::n((now + chrono::Duration::days(30)).timestamp()),
            )
            .condition_expression("attribute_not_exists(pk) OR (#st = :posting AND claimed_at < :stale)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":posting", s("posting"))
            .expression_attribute_values(":stale", s(stale.to_rfc3339()))
            .send()
            .await;
        super::dynamo::written(put)
    }

    async fn mark_posted(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("POST#{key}")))
            .key("sk", s("SLACK"))
            .update_expression("SET #st = :posted, posted_at = :at")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":posted", s("posted"))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
        Ok(())
    }

    async fn post_status(&self, key: &str) -> Result<Option<String>> {
        let item = self.get(&format!("POST#{key}"), "SLACK").await?;
        Ok(item.as_ref().and_then(|i| text(i, "status")).map(str::to_string))
    }

    async fn mark_post_uncertain(&self, key: &str, now: DateTime<Utc>, why: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("POST#{key}")))
            .key("sk", s("SLACK"))
            .update_expression("SET #st = :uncertain, uncertain_at = :at, uncertain_why = :why")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":uncertain", s("uncertain"))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":why", s(why))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "UpdateItem", e))?;
        Ok(())
    }

    async fn release_post(&self, key: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("POST#{key}")))
            .key("sk", s("SLACK"))
            .condition_expression("#st = :posting")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":posting", s("posting"))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "DeleteItem", e))?;
        Ok(())
    }

    async fn snooze(
        &self,
        snooze: &Snooze,
        keep_longer: bool,
        checks: &crate::evidence::Catalog,
    ) -> Result<SnoozeGranted> {
        self.grant_snooze(snooze, keep_longer, checks).await
    }

    async fn unsnooze(&self, snooze: &Snooze, by: &str, reason: &str, now: DateTime<Utc>) -> Result<super::Unsnoozed> {
        self.lift_snooze(snooze, by, reason, now).await
    }

    async fn audit_trail(&self, finding_id: &str) -> Result<Vec<AuditEntry>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("AUDIT#{finding_id}")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| Error::aws("dynamodb", "Query", e))?;
            out.push(AuditEntry {
                at: text(&item, "at").unwrap_or_default().to_string(),
                event: text(&item, "event").unwrap_or_default().to_string(),
                ref_id: text(&item, "ref_id").unwrap_or_default().to_string(),
                detail: text(&item, "detail").unwrap_or_default().to_string(),
            });
        }
        Ok(out)
    }
}
