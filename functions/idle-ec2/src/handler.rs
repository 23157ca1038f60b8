//! Handles the EventBridge scheduled event that triggers an idle-ec2 scan.

use chrono::{DateTime, Utc};
use finops_checks::idle_ec2::run::{self as idle_ec2, Ports};
use lambda_runtime::LambdaEvent;
use remediation::aws::cloudwatch::CloudWatch;
use remediation::aws::ec2::Ec2;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, deps, Utc::now()))
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Checks that `payload` is a scheduled event or a fan-out item, then runs one scan at `now` in
/// its account and region.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let rule = finops_checks::idle_ec2::detect::RULE;
    deps.recorded(rule, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let reach = deps.scheduled_reach(&payload).await?;
    let ec2 = Ec2::new(reach.clients.ec2.clone(), reach.region.clone()).with_account(reach.account.clone());
    let usage = CloudWatch::new(reach.clients.cloudwatch.clone(), deps.metrics_concurrency);
    let (policy, stop) = deps.policy_for_run(finops_checks::idle_ec2::detect::RULE).await?;
    let prices = deps.price_book(&reach.region, now).await;
    let mut report = idle_ec2::run(
        Ports {
            ec2: &ec2,
            usage: &usage,
            prices: &prices,
        },
        &policy,
        deps.sinks_for(&reach),
        now,
    )
    .await?;
    deps.finish_report_for(&mut report, stop, &reach);
    Ok(report)
}
