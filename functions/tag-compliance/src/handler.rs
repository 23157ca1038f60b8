//! Handles tag-compliance's two triggers: an AWS Config custom rule event (change, oversized
//! change, periodic) and the EventBridge scheduled sweep.

use chrono::{DateTime, Utc};
use finops_checks::tag_compliance::run::{self as tag_compliance, Ports};
use lambda_runtime::LambdaEvent;
use remediation::aws::config::Config;
use remediation::aws::ec2::Ec2;
use remediation::aws::s3::S3;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::Error;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, deps: &Deps) -> Result<RunReport, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, deps, Utc::now()))
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Works out the trigger, then evaluates or sweeps at `now`.
pub async fn handle(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let rule = finops_checks::tag_compliance::detect::RULE;
    deps.recorded(rule, &payload, now, Box::pin(scan(payload.clone(), deps, now)))
        .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(payload: serde_json::Value, deps: &Deps, now: DateTime<Utc>) -> Result<RunReport, Error> {
    let is_config_event = payload.get("invokingEvent").is_some();
    let item = deps.item_reach(&payload).await?;
    let (account, config_event) = if let Some(reach) = &item {
        (reach.account.clone(), None)
    } else if is_config_event {
        let e = remediation::events::config_rule(&payload)?;
        (e.account.clone(), Some(e))
    } else {
        let s = remediation::events::scheduled(&payload)
            .map_err(|e| Error::Event(format!("neither a Config rule event (no invokingEvent) nor {e}")))?;
        (s.account, None)
    };
    let reach = item.unwrap_or_else(|| deps.own_reach(account.clone()));
    let region = reach.region.clone();
    let ec2 = Ec2::new(reach.clients.ec2.clone(), region.clone()).with_account(account.clone());
    let s3 = match &reach.run_id {
        // An item sees its own region's buckets: each bucket is counted once per account.
        Some(_) => S3::new(&reach.clients, account.clone()).only_in(region.clone()),
        None => S3::new(&reach.clients, account.clone()),
    };
    let config = Config::new(reach.clients.config_service.clone());
    let ports = Ports {
        instances: &ec2,
        volumes: &ec2,
        buckets: &s3,
        config: &config,
    };
    let (policy, stop) = deps.policy_for_run(finops_checks::tag_compliance::detect::RULE).await?;
    let mut report = match config_event {
        Some(e) => tag_compliance::on_config_event(&ports, e, &region, &policy, deps.config_test_mode, now).await?,
        None => tag_compliance::sweep(&ports, &account, &region, &policy, deps.sinks_for(&reach), now).await?,
    };
    deps.finish_report_for(&mut report, stop, &reach);
    Ok(report)
}
