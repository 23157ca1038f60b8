//! The s3-public run: buckets (all, or the one a Config event names) → exposure → pure detector →
//! flow (put Block Public Access, keeping the prior settings). A bucket with website hosting on
//! may be public on purpose, and one where AWS's own evaluation disagrees with this reading is
//! not known for sure: neither is blocked automatically, only asked about.

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::s3_public::act::{assess, BlockPublicAccess};
use crate::s3_public::detect::{
    self as s3_public, needs_a_person, public_reasons, resource, skip_reason, BucketExposure, RULE,
};
use finops_core::model::{Finding, Outcome, OutcomeKind, Resource, ResourceKind, RunReport};
use finops_core::policy::{Mode, Policy};
use remediation::aws::s3::BucketApi;
use remediation::error::Result;
use remediation::flow::{self, RunContext, Sinks};
use remediation::state::budget::Budget;

/// Which buckets a run looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every bucket (the scheduled sweep).
    All,
    /// One bucket (a Config compliance change).
    Bucket(String),
}

/// The finding id of a bucket known only by name (not found, or not readable).
fn bucket_finding_id(name: &str, account: &str) -> String {
    let bucket = Resource {
        kind: ResourceKind::S3Bucket,
        id: name.to_string(),
        account: account.to_string(),
        region: String::new(),
        tags: Default::default(),
    };
    Finding::id_for(RULE, &bucket)
}

/// Buckets read at once (three calls each, two more for a public one).
const CONCURRENCY: usize = 8;

/// One scan at `now`, in the mode the policy sets for s3-public.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(
    s3: &dyn BucketApi,
    account: &str,
    scope: Scope,
    policy: &Policy,
    sinks: Sinks<'_>,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    RunContext::new(RULE, policy, sinks, now).check_sinks()?;
    let mut outcomes = Vec::new();
    let mut notes = Vec::new();

    let mut buckets = s3.buckets().await?;
    // Outside an organisation run, every automatic block in the account (a Config event's, a
    // sweep's every 6 hours) draws from one rolling budget: at most `max_actions` and
    // `max_actions_percent` of its buckets in the window, however many events and sweeps.
    let events_budget = sinks.budget.is_none().then(|| Budget::Events {
        account: account.to_string(),
        resources: buckets.len(),
    });
    let sinks = Sinks {
        budget: sinks.budget.or(events_budget.as_ref()),
        ..sinks
    };
    let ctx = RunContext::new(RULE, policy, sinks, now);
    if let Scope::Bucket(name) = &scope {
        buckets.retain(|(b, _)| b == name);
        if buckets.is_empty() {
            outcomes.push(Outcome::new(
                bucket_finding_id(name, account),
                OutcomeKind::Skipped,
                "bucket not found in this account",
            ));
        }
    }
    let account_block = match s3.account_block().await {
        Ok(b) => b,
        Err(e) => {
            // Without the account settings, judge the buckets on their own: that can only flag more.
            notes.push(format!(
                "account-level Block Public Access unreadable, buckets judged alone: {e}"
            ));
            None
        }
    };

    let reads = buckets
        .iter()
        .map(|(name, region)| async move { (name, assess(s3, name, region, account_block).await) });
    let fetched: Vec<_> = stream::iter(reads).buffer_unordered(CONCURRENCY).collect().await;
    let mut exposures: Vec<BucketExposure> = Vec::with_capacity(fetched.len());
    for (name, result) in fetched {
        match result {
            Ok(b) => exposures.push(b),
            Err(e) => {
                outcomes.push(Outcome::new(
                    bucket_finding_id(name, account),
                    OutcomeKind::Failed,
                    format!("not assessed: {e}"),
                ));
            }
        }
    }
    exposures.sort_by(|a, b| a.name.cmp(&b.name));
    let unread: Vec<String> = exposures
        .iter()
        .filter(|b| !b.unread.is_empty())
        .map(|b| format!("{}: {}", b.name, b.unread.join("; ")))
        .collect();
    if let Some(first) = unread.first() {
        notes.push(format!(
            "{} bucket(s) judged by their own ACL and policy alone, for a cross-check could not be read (first: {first})",
            unread.len()
        ));
    }
    // Scanned: every bucket listed — those passed over or failed so far (one outcome each) and those
    // read.
    let scanned = outcomes.len() + exposures.len();
    for b in &exposures {
        if let Some(reason) = skip_reason(b, policy) {
            let reasons = public_reasons(b, account_block);
            let detail = if reasons.is_empty() {
                reason
            } else {
                format!(
                    "public but {reason}: reported, not changed ({} grant(s)/statement(s))",
                    reasons.len()
                )
            };
            outcomes.push(Outcome::new(
                Finding::id_for(RULE, &resource(b)),
                OutcomeKind::Skipped,
                detail,
            ));
        }
    }
    let findings = s3_public::detect(&exposures, account_block, policy, now);
    tracing::info!(scanned, findings = findings.len(), "detected");
    let (findings, snoozed, snooze_notes) = ctx.set_aside_snoozed(findings).await;
    outcomes.extend(snoozed);
    notes.extend(snooze_notes);

    let remediation = BlockPublicAccess {
        s3,
        policy,
        approved: false,
    };
    let (for_a_person, others): (Vec<Finding>, Vec<Finding>) =
        findings.iter().cloned().partition(|f| needs_a_person(f).is_some());
    let (acted, flow_notes) = if ctx.mode == Mode::Auto && !for_a_person.is_empty() {
        let (mut acted, mut flow_notes) = flow::apply(&ctx, &others, &remediation, scanned).await;
        let (asked, ask_notes) = ask_instead(&ctx, &for_a_person).await;
        acted.extend(asked);
        flow_notes.extend(ask_notes);
        (acted, flow_notes)
    } else {
        flow::apply(&ctx, &findings, &remediation, scanned).await
    };
    outcomes.extend(acted.into_iter().map(|mut o| {
        if let Some(why) = for_a_person
            .iter()
            .find(|f| f.id == o.finding_id)
            .and_then(needs_a_person)
        {
            o.detail = format!("{why}: {}", o.detail);
        }
        o
    }));
    notes.extend(flow_notes);
    Ok(ctx.report(RULE, scanned, findings, outcomes, notes))
}

/// In auto mode, findings that need a person: an approval request each, as the approve mode asks.
async fn ask_instead(ctx: &RunContext<'_>, findings: &[Finding]) -> (Vec<Outcome>, Vec<String>) {
    if ctx.sinks.publisher.is_none() {
        let outcomes = findings
            .iter()
            .map(|f| {
                Outcome::new(
                    &f.id,
                    OutcomeKind::Skipped,
                    "needs an approval, but no topic (FINOPS_TOPIC_ARN) to ask it on: not changed",
                )
            })
            .collect();
        return (outcomes, vec![]);
    }
    flow::request_approvals(ctx, findings).await
}
