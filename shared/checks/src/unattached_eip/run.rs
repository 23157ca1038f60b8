//! The unattached-eip run: addresses → guards → detect → the flow's dry run, whatever the policy's
//! mode (a release cannot be undone: it is never done here).

use chrono::{DateTime, Utc};

use finops_core::model::{Finding, Outcome, OutcomeKind, RunReport};
use finops_core::policy::{Mode, Policy};
use remediation::error::Result;
use remediation::flow::{self, RunContext, Sinks};

use super::detect::{self, skip_reason, RULE};
use super::inventory::AddressApi;

/// One scan at `now`.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(
    addresses: &dyn AddressApi,
    policy: &Policy,
    sinks: Sinks<'_>,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let mut ctx = RunContext::new(RULE, policy, sinks, now);
    ctx.mode = Mode::DryRun;

    let inventory = addresses.addresses().await?;
    let mut outcomes: Vec<Outcome> = inventory
        .iter()
        .filter_map(|a| {
            let reason = skip_reason(a, policy)?;
            Some(Outcome::new(
                Finding::id_for(RULE, &a.resource()),
                OutcomeKind::Skipped,
                reason,
            ))
        })
        .collect();
    let findings = detect::detect(&inventory, policy, now);
    tracing::info!(scanned = inventory.len(), findings = findings.len(), "detected");
    let (findings, snoozed, mut notes) = ctx.set_aside_snoozed(findings).await;
    outcomes.extend(snoozed);

    let (dry, flow_notes) = flow::dry_run(&ctx, &findings).await;
    outcomes.extend(dry);
    notes.extend(flow_notes);
    Ok(ctx.report(RULE, inventory.len(), findings, outcomes, notes))
}
