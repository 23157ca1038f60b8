//! Handles the EventBridge scheduled event that triggers an unattached-eip scan.

use chrono::{DateTime, Utc};
use finops_checks::unattached_eip::inventory::Addresses;
use finops_checks::unattached_eip::{run, RULE};
use lambda_runtime::LambdaEvent;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, deps, Utc::now()))
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Checks that `payload` is a scheduled event, then runs one scan at `now` in its account and
/// region.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    deps.recorded(RULE, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let reach = deps.scheduled_reach(&payload).await?;
    let addresses = Addresses {
        client: reach.clients.ec2.clone(),
        account: reach.account.clone(),
        region: reach.region.clone(),
    };
    let (policy, stop) = deps.policy_for_run(RULE).await?;
    let mut report = run::run(&addresses, &policy, deps.sinks_for(&reach), now).await?;
    deps.finish_report_for(&mut report, stop, &reach);
    Ok(report)
}
