//! The per-resource acting lock: one conditional item per resource (`LOCK#<account/region/id>`),
//! shared by every rule, run and the approval executor. An action takes it right before it is
//! recorded. Done, it marks the lock with when it finished and keeps it until it lapses (a
//! Lambda's longest run and a minute): a run whose re-check was read before that moment cannot act
//! on the same resource again, while one that read the resource after it may (its re-check saw the
//! action's effect). It is given back at once when the action failed or was deferred (a retry
//! re-checks from scratch) or never began.

use crate::error::SdkErrorExt as _;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::dynamo::{applied, n, s, DynamoState, TTL_ATTRIBUTE};
use crate::error::{Error, Result};

/// How long a lock holds: Lambda runs 15 minutes at most.
pub const LOCK_MINUTES: i64 = 16;

fn lock_pk(resource: &str) -> String {
    format!("LOCK#{resource}")
}

impl DynamoState {
    /// Takes the lock on `resource` for `holder` at `now`: `None` when taken (or already this
    /// holder's), else who holds it and until when, as a person reads it.
    /// `read_at`: when the taker's re-check read the resource.
    pub(crate) async fn take_lock(
        &self,
        resource: &str,
        holder: &str,
        now: DateTime<Utc>,
        read_at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let until = now + Duration::minutes(LOCK_MINUTES);
        // A lock that claims to hold longer than any lock is taken for is no lock (another role
        // that can write the table cannot hold a resource for ever).
        let longest = until + Duration::minutes(1);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(lock_pk(resource)))
            .item("sk", s("LOCK"))
            .item("kind", s("lock"))
            .item("holder", s(holder))
            .item("until_ms", n(until.timestamp_millis()))
            .item(TTL_ATTRIBUTE, n((until + Duration::days(1)).timestamp()))
            // A lock without a readable end (missing, or not a number: another role's writing)
            // is no lock either.
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(until_ms) OR NOT attribute_type(until_ms, :number) \
                 OR until_ms < :now OR until_ms > :longest OR holder = :holder OR done_ms < :read",
            )
            .expression_attribute_values(":number", s("N"))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":read", n(read_at.timestamp_millis()))
            .expression_attribute_values(":longest", n(longest.timestamp_millis()))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        if applied("PutItem", put)? {
            return Ok(None);
        }
        Ok(Some(self.lock_of(resource, now).await?.unwrap_or_else(|| {
            "another action, finished after this run read the resource".into()
        })))
    }

    /// Marks `holder`'s lock on `resource` finished at `at` and keeps it a whole lock's time from
    /// then (an action that ran long still holds off runs that read the resource during it).
    /// `at` is the moment from which a read shows the action's effect.
    pub(crate) async fn finish_lock(&self, resource: &str, holder: &str, at: DateTime<Utc>) -> Result<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(lock_pk(resource)))
            .key("sk", s("LOCK"))
            .update_expression("SET done_ms = :at, until_ms = :until, #ttl = :ttl")
            .condition_expression("holder = :holder")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":at", n(at.timestamp_millis()))
            .expression_attribute_values(":until", n((at + Duration::minutes(LOCK_MINUTES)).timestamp_millis()))
            .expression_attribute_values(
                ":ttl",
                n((at + Duration::minutes(LOCK_MINUTES) + Duration::days(1)).timestamp()),
            )
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        applied("UpdateItem", update).map(|_| ())
    }

    /// Who holds the lock on `resource` at `now` with an action still under way, as a person
    /// reads it; `None` when nobody does (a finished action's lock holds only runs that read the
    /// resource before it finished).
    pub(crate) async fn lock_of(&self, resource: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(lock_pk(resource)))
            .key("sk", s("LOCK"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "GetItem", e))?;
        let Some(item) = got.item else { return Ok(None) };
        if item.contains_key("done_ms") {
            return Ok(None);
        }
        let until = match item.get("until_ms") {
            Some(AttributeValue::N(ms)) => ms.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis),
            _ => None,
        };
        let longest = now + Duration::minutes(LOCK_MINUTES + 1);
        let Some(until) = until.filter(|u| *u >= now && *u <= longest) else {
            return Ok(None);
        };
        let who = match item.get("holder") {
            Some(AttributeValue::S(h)) => format!("action {h}"),
            _ => "another action".into(),
        };
        Ok(Some(format!("{who}, until {}", until.format("%H:%M:%S UTC"))))
    }

    /// Gives the lock on `resource` back, if `holder` still holds it.
    pub(crate) async fn give_back_lock(&self, resource: &str, holder: &str) -> Result<()> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lock_pk(resource)))
            .key("sk", s("LOCK"))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        applied("DeleteItem", delete).map(|_| ())
    }
}
