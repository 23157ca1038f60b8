//! Handles the two s3-public triggers: the scheduled sweep of every bucket, and the EventBridge
//! "Config Rules Compliance Change" of one bucket turning NON_COMPLIANT; and a fan-out item
//! (the sweep of one member account's buckets in the item's region).

use chrono::{DateTime, Utc};
use finops_checks::s3_public::run::{self as s3_public, Scope};
use lambda_runtime::LambdaEvent;
use remediation::aws::s3::S3;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::policy::Policy;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, deps, Utc::now()))
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Works out the trigger, then runs at `now`.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let rule = finops_checks::s3_public::detect::RULE;
    deps.recorded(rule, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let item = deps.item_reach(&payload).await?;
    let (account, scope) = match (&item, remediation::events::scheduled(&payload)) {
        (Some(reach), _) => (reach.account.clone(), Scope::All),
        (None, Ok(s)) => (s.account, Scope::All),
        (None, Err(scheduled_error)) => {
            let change = remediation::events::compliance_change(&payload).map_err(|change_error| {
                Error::Event(format!(
                    "neither a scheduled event ({scheduled_error}) nor a Config compliance change ({change_error})"
                ))
            })?;
            if change.resource_type != "AWS::S3::Bucket" {
                return Err(Error::Event(format!(
                    "compliance change of a {}, not an S3 bucket",
                    change.resource_type
                )));
            }
            if change.compliance != "NON_COMPLIANT" {
                return Ok(nothing_to_do(
                    &deps.policy,
                    format!(
                        "{} became {} under {}: nothing to do",
                        change.resource_id, change.compliance, change.rule_name
                    ),
                ));
            }
            (change.account, Scope::Bucket(change.resource_id))
        }
    };
    let (policy, stop) = deps.policy_for_run(finops_checks::s3_public::detect::RULE).await?;
    let s3 = match &item {
        // An item sees its own region's buckets: each bucket is judged once per account.
        Some(reach) => S3::new(&reach.clients, account.clone()).only_in(reach.region.clone()),
        None => S3::new(&deps.clients, account.clone()),
    };
    let sinks = match &item {
        Some(reach) => deps.sinks_for(reach),
        None => deps.sinks(),
    };
    let mut report = s3_public::run(&s3, &account, scope, &policy, sinks, now).await?;
    match &item {
        Some(reach) => deps.finish_report_for(&mut report, stop, reach),
        None => deps.finish_report(&mut report, stop),
    }
    Ok(report)
}

fn nothing_to_do(policy: &Policy, note: String) -> RunReport {
    RunReport {
        rule: finops_checks::s3_public::detect::RULE.to_string(),
        mode: policy.mode_for(finops_checks::s3_public::detect::RULE),
        scanned: 0,
        findings: vec![],
        outcomes: vec![],
        estimated_monthly_savings_usd: 0.0,
        failed: 0,
        findings_total: 0,
        skipped: 0,
        compliance: None,
        notes: vec![note],
        held: 0,
        own_cost_usd: None,
    }
}
