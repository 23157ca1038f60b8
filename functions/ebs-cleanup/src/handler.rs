//! Handles the EventBridge scheduled event that triggers an ebs-cleanup scan.

use chrono::{DateTime, Utc};
use finops_checks::ebs_cleanup::run as ebs_cleanup;
use lambda_runtime::LambdaEvent;
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
    let rule = finops_checks::ebs_cleanup::detect::RULE;
    deps.recorded(rule, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let reach = deps.scheduled_reach(&payload).await?;
    let ec2 = Ec2::new(reach.clients.ec2.clone(), reach.region.clone()).with_account(reach.account.clone());
    let (policy, stop) = deps.policy_for_run(finops_checks::ebs_cleanup::detect::RULE).await?;
    let prices = deps.price_book(&reach.region, now).await;
    let scope = ebs_cleanup::sighting_scope(&reach.account, &reach.region);
    let mut report = ebs_cleanup::run(&ec2, &scope, reach.home, &prices, &policy, deps.sinks_for(&reach), now).await?;
    deps.finish_report_for(&mut report, stop, &reach);
    Ok(report)
}
