//! Handles the EventBridge scheduled event that triggers a cost check.

use chrono::{DateTime, Utc};
use finops_checks::cost_alert::run as cost_alert;
use lambda_runtime::LambdaEvent;
use remediation::aws::costexplorer::CostExplorer;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    handle(event.payload, deps, Utc::now())
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Checks that `payload` is a scheduled event, then checks costs at `now`.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let rule = finops_checks::cost_alert::detect::RULE;
    deps.recorded(rule, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let trigger = remediation::events::scheduled(&payload)?;
    let (policy, stop) = deps.policy_for_run(finops_checks::cost_alert::detect::RULE).await?;
    // In organisation mode the alert is about the organisation's spend: read where it is seen.
    let whose = match &policy.organization {
        Some(_) => Some(remediation::org::payer(&deps.clients).await?),
        None => None,
    };
    let ce = CostExplorer::new(deps.clients.costexplorer.clone());
    let mut report = cost_alert::run(&ce, &trigger.account, &deps.clients.region, &policy, deps.sinks(), now).await?;
    report.notes.extend(whose);
    deps.finish_report(&mut report, stop);
    Ok(report)
}
