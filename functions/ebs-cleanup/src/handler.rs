//! Handles the EventBridge scheduled event that triggers an ebs-cleanup scan.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::aws::ec2::Ec2;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::rules::ebs_cleanup;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, deps, Utc::now()))
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Checks that `payload` is a scheduled event, then runs one scan at `now`.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let trigger = remediation::events::scheduled(&payload)?;
    let ec2 = Ec2::new(deps.clients.ec2.clone(), deps.clients.region.clone()).with_account(trigger.account);
    let (policy, stop) = deps.policy_for_run(remediation::detect::ebs_cleanup::RULE).await?;
    let mut report = ebs_cleanup::run(&ec2, &policy, deps.sinks(), now).await?;
    deps.finish_report(&mut report, stop);
    Ok(report)
}
