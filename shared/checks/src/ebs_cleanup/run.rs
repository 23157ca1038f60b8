//! The ebs-cleanup run: unattached volumes → sightings → pure detector → flow (snapshot, wait,
//! re-check, delete).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ebs_cleanup::act::SnapshotAndDelete;
use crate::ebs_cleanup::detect::{self as ebs_cleanup, skip_reason, RULE};
use finops_core::model::{EbsVolume, Finding, Outcome, OutcomeKind, RunReport};
use finops_core::policy::Policy;
use finops_core::pricing::PriceBook;
use remediation::aws::ec2::VolumeApi;
use remediation::error::Result;
use remediation::flow::{self, RunContext, Sinks};

pub use crate::ebs_cleanup::detect::sighting_scope;

/// One scan at `now`, in the mode the policy sets for ebs-cleanup; `scope` is the account and
/// region's sighting scope ([`sighting_scope`]). `home`: the scan is of the function's own
/// account and home region, where older versions kept every sighting in one scope
/// ([`ebs_cleanup::LEGACY_SIGHTING_SCOPE`]): that scope is emptied into this one.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(
    volumes: &dyn VolumeApi,
    scope: &str,
    home: bool,
    prices: &PriceBook,
    policy: &Policy,
    sinks: Sinks<'_>,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let ctx = RunContext::new(RULE, policy, sinks, now);
    ctx.check_sinks()?;

    let inventory = volumes.available_volumes().await?;
    let mut outcomes = Vec::new();
    let mut notes = Vec::new();
    // Every unattached volume is a sighting, exempt or not, so lifting an exemption keeps the history.
    let first_seen: HashMap<String, DateTime<Utc>> = match sinks.state {
        Some(state) => {
            let ids: Vec<String> = inventory.iter().map(|v| v.id.clone()).collect();
            // Sightings from before scopes were per account and region keep their times; those
            // of volumes attached since are forgotten, as the old scan would have.
            if home && scope != ebs_cleanup::LEGACY_SIGHTING_SCOPE {
                match state.retire_sightings(ebs_cleanup::LEGACY_SIGHTING_SCOPE, scope, &ids).await {
                    Ok(0) => {}
                    Ok(n) => notes.push(format!("{n} earlier sighting(s) carried into {scope}, times kept")),
                    Err(e) => notes.push(format!(
                        "earlier sightings not carried over ({e}): those volumes' grace periods start again, the safe direction"
                    )),
                }
            }
            state.first_seen(scope, &ids, now).await?
        }
        None => {
            notes.push("no state table: grace periods count from each volume's CreateTime".to_string());
            HashMap::new()
        }
    };
    let mut candidates: Vec<EbsVolume> = Vec::new();
    for v in &inventory {
        match skip_reason(v, policy) {
            Some(reason) => outcomes.push(Outcome::new(
                Finding::id_for(RULE, &v.resource()),
                OutcomeKind::Skipped,
                reason,
            )),
            None => candidates.push(v.clone()),
        }
    }
    let findings = ebs_cleanup::detect_priced(&candidates, &first_seen, policy, prices, now);
    for v in candidates
        .iter()
        .filter(|v| !findings.iter().any(|f| f.resource.id == v.id))
    {
        let since = first_seen.get(&v.id).copied().or(v.create_time).unwrap_or(now);
        outcomes.push(Outcome::new(
            Finding::id_for(RULE, &v.resource()),
            OutcomeKind::Skipped,
            format!(
                "unattached for {} day(s); grace period is {} day(s)",
                (now - since).num_days(),
                policy.ebs_cleanup.grace_days
            ),
        ));
    }
    tracing::info!(scanned = inventory.len(), findings = findings.len(), "detected");
    let (findings, snoozed, snooze_notes) = ctx.set_aside_snoozed(findings).await;
    outcomes.extend(snoozed);
    notes.extend(snooze_notes);

    let remediation = SnapshotAndDelete {
        ec2: volumes,
        policy,
        wait: Duration::from_secs(u64::from(policy.ebs_cleanup.snapshot_wait_seconds)),
        poll: Duration::from_secs(5),
        sightings: sinks.state,
        now,
    };
    let (acted, flow_notes) = flow::apply(&ctx, &findings, &remediation, inventory.len()).await;
    outcomes.extend(acted);
    notes.extend(flow_notes);
    Ok(ctx.report(RULE, inventory.len(), findings, outcomes, notes))
}
