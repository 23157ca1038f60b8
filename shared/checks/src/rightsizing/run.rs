//! The rightsizing run: running instances → the idle-ec2 guards (a resize needs a stop and a
//! start, so the same instances are off limits) → hourly peaks → the rules' sizing → Bedrock's
//! explanation (optional, validated) → findings. It recommends and changes nothing, so it runs as
//! a dry-run whatever the mode: resizing is left to the owner, with the evidence in hand.

use chrono::{DateTime, Duration, Utc};

use crate::idle_ec2::detect::skip_reason;
use crate::rightsizing::bedrock::{self, Explainer};
use crate::rightsizing::detect::{self as rightsizing, RightsizingEvidence, RULE};
use finops_core::model::{Ec2Instance, Finding, Outcome, OutcomeKind, RunReport};
use finops_core::policy::{Mode, Policy};
use finops_core::pricing::PriceBook;
use remediation::aws::cloudwatch::PeakApi;
use remediation::aws::ec2::InstanceApi;
use remediation::error::{Error, Result};
use remediation::flow::{self, RunContext, Sinks};

/// At most this many recommendations are explained by the model per run (the largest savings
/// first); the rest keep the rules' rationale. Bounds the run's time and the model's cost.
pub const MAX_EXPLAINED: usize = 25;

/// The AWS ports the rule reads through.
pub struct Ports<'a> {
    pub ec2: &'a dyn InstanceApi,
    pub peaks: &'a dyn PeakApi,
    /// The model that explains; `None`: the rules' rationale only.
    pub explainer: Option<&'a dyn Explainer>,
    /// The prices of the scan's region.
    pub prices: &'a PriceBook,
}

/// One scan at `now`.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(ports: Ports<'_>, policy: &Policy, sinks: Sinks<'_>, now: DateTime<Utc>) -> Result<RunReport> {
    let mut ctx = RunContext::new(RULE, policy, sinks, now);
    ctx.mode = Mode::DryRun;
    let p = &policy.rightsizing;

    let inventory = ports.ec2.running_instances().await?;
    let mut outcomes = Vec::new();
    let mut candidates: Vec<&Ec2Instance> = Vec::new();
    for instance in &inventory {
        match skip_reason(instance, policy) {
            Some(reason) => outcomes.push(Outcome::new(
                Finding::id_for(RULE, &instance.resource()),
                OutcomeKind::Skipped,
                reason,
            )),
            None => candidates.push(instance),
        }
    }
    // Whole UTC days, ending at today's 00:00.
    let end = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .ok_or_else(|| Error::Config("no midnight today".into()))?;
    let start = end - Duration::days(i64::from(p.lookback_days));
    let ids: Vec<String> = candidates.iter().map(|i| i.id.clone()).collect();
    let report = ports.peaks.peaks(&ids, start, end).await;

    let mut sized = Vec::new();
    for instance in candidates {
        let id = Finding::id_for(RULE, &instance.resource());
        if let Some(reason) = report.failed.get(&instance.id) {
            outcomes.push(Outcome::new(
                id,
                OutcomeKind::Failed,
                format!("metrics unavailable, not sized: {reason}"),
            ));
            continue;
        }
        let peaks = report.peaks.get(&instance.id).cloned().unwrap_or_default();
        match rightsizing::size_priced(instance, &peaks, p, &policy.idle_ec2, ports.prices) {
            Ok(e) => sized.push((instance, e)),
            Err(why) => outcomes.push(Outcome::new(id, OutcomeKind::Skipped, why.to_string())),
        }
    }
    // Largest savings first: those are the ones the model explains when there are many.
    sized.sort_by(|a, b| {
        let saving = |e: &rightsizing::RightsizingEvidence| e.current_usd_per_hour - e.recommended_usd_per_hour;
        saving(&b.1).total_cmp(&saving(&a.1)).then(a.0.id.cmp(&b.0.id))
    });
    // Snoozed instances are set aside before the model is asked about any: nothing about them
    // is sent (or paid for).
    let drafts = sized
        .iter()
        .map(|(instance, e)| rightsizing::finding(instance, e.clone(), now))
        .collect();
    let (kept, snoozed, mut notes) = ctx.set_aside_snoozed(drafts).await;
    outcomes.extend(snoozed);
    let kept: std::collections::HashSet<String> = kept.into_iter().map(|f| f.resource.id).collect();
    sized.retain(|(instance, _)| kept.contains(&instance.id));
    let mut explained = 0;
    let mut findings = Vec::new();
    for (i, (instance, mut e)) in sized.into_iter().enumerate() {
        if let Some(model) = ports.explainer {
            if i < MAX_EXPLAINED && bedrock::explain(model, &instance.id, &mut e).await {
                explained += 1;
            }
        }
        findings.push(rightsizing::finding(instance, e, now));
    }
    if let Some(model) = ports.explainer {
        notes.push(format!(
            "{explained} of {} recommendation(s) explained by {}; the others by the rules",
            findings.len(),
            model.model_id()
        ));
    }
    tracing::info!(scanned = inventory.len(), findings = findings.len(), explained, "sized");

    let (_, flow_notes) = flow::dry_run(&ctx, &findings).await;
    notes.extend(flow_notes);
    for f in &findings {
        if let Some(e) = f.evidence.get::<RightsizingEvidence>() {
            outcomes.push(Outcome::new(
                &f.id,
                OutcomeKind::DryRun,
                format!(
                    "recommend {} → {} ({} risk, by {}): ${:.2}/month",
                    e.current_type,
                    e.recommended_type,
                    e.risk.as_str(),
                    e.rationale_source,
                    f.estimated_monthly_savings_usd.unwrap_or(0.0)
                ),
            ));
        }
    }
    Ok(ctx.report(RULE, inventory.len(), findings, outcomes, notes))
}
