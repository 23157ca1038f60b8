//! The idle-ec2 run: running instances → guards → daily CPU → daily network of the instances whose
//! CPU leaves them possibly idle → pure detector → flow.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::idle_ec2::act::StopInstance;
use crate::idle_ec2::detect::{self as idle_ec2, lookback_days, skip_reason, RULE};
use finops_core::model::{Ec2Instance, Finding, Outcome, OutcomeKind, RunReport};
use finops_core::policy::Policy;
use finops_core::pricing::PriceBook;
use remediation::aws::cloudwatch::{Measures, UsageApi};
use remediation::aws::ec2::InstanceApi;
use remediation::error::Result;
use remediation::flow::{self, RunContext, Sinks};

/// The AWS ports the rule reads and acts through.
pub struct Ports<'a> {
    pub ec2: &'a dyn InstanceApi,
    pub usage: &'a dyn UsageApi,
    /// The prices of the scan's region.
    pub prices: &'a PriceBook,
}

/// One scan at `now`, in the mode the policy sets for idle-ec2.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(ports: Ports<'_>, policy: &Policy, sinks: Sinks<'_>, now: DateTime<Utc>) -> Result<RunReport> {
    let ctx = RunContext::new(RULE, policy, sinks, now);
    ctx.check_sinks()?;

    let inventory = ports.ec2.running_instances().await?;
    let mut outcomes = Vec::new();
    let mut candidates: Vec<Ec2Instance> = Vec::new();
    for instance in inventory.iter() {
        match skip_reason(instance, policy) {
            // Its storage could not be learnt (DescribeInstanceTypes denied or throttled): not
            // assessed, so `failed`: a run that could judge nothing says so (its error alarms),
            // never an "ok" with no findings every day.
            Some(reason) if idle_ec2::storage_unknown(instance, policy) => outcomes.push(Outcome::new(
                Finding::id_for(RULE, &instance.resource()),
                OutcomeKind::Failed,
                format!("not assessed: {reason}"),
            )),
            Some(reason) => outcomes.push(Outcome::new(
                Finding::id_for(RULE, &instance.resource()),
                OutcomeKind::Skipped,
                reason,
            )),
            None => candidates.push(instance.clone()),
        }
    }

    let days = lookback_days(now, policy.idle_ec2.lookback_days);
    let ids: Vec<String> = candidates.iter().map(|i| i.id.clone()).collect();
    // Two phases, for CloudWatch bills each metric asked for: the CPU of every candidate (N
    // metrics), then the network of those whose CPU leaves them possibly idle (2 each). A day is
    // idle only when both are low, so the others cannot be found idle whatever their network.
    let mut report = ports.usage.daily_usage(&ids, &days, Measures::Cpu).await;
    let possibly_idle = idle_ec2::cpu_leaves_possibly_idle(&report.usage, &days, policy);
    let network = ports.usage.daily_usage(&possibly_idle, &days, Measures::Network).await;
    idle_ec2::add_network(&mut report.usage, network.usage);
    for (id, reason) in network.failed {
        report.usage.remove(&id);
        report.failed.insert(id, reason);
    }
    let (failed, measured): (Vec<Ec2Instance>, Vec<Ec2Instance>) =
        candidates.into_iter().partition(|i| report.failed.contains_key(&i.id));
    for instance in &failed {
        let reason = report
            .failed
            .get(&instance.id)
            .map(String::as_str)
            .unwrap_or("unknown error");
        outcomes.push(Outcome::new(
            Finding::id_for(RULE, &instance.resource()),
            OutcomeKind::Failed,
            format!("metrics unavailable, not assessed: {reason}"),
        ));
    }
    let usage: HashMap<_, _> = report.usage;
    let findings = idle_ec2::detect_priced(&measured, &usage, policy, ports.prices, now);
    tracing::info!(scanned = inventory.len(), findings = findings.len(), "detected");
    let (findings, snoozed, snooze_notes) = ctx.set_aside_snoozed(findings).await;
    outcomes.extend(snoozed);

    let remediation = StopInstance {
        ec2: ports.ec2,
        policy,
        usage: Some(ports.usage),
        // Its own findings only: idle stops, re-proven on their usage.
        others: &[],
        now,
    };
    let (acted, mut notes) = flow::apply(&ctx, &findings, &remediation, inventory.len()).await;
    outcomes.extend(acted);
    notes.splice(0..0, snooze_notes);
    Ok(ctx.report(RULE, inventory.len(), findings, outcomes, notes))
}
