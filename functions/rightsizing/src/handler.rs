//! Handles the EventBridge scheduled event that triggers a rightsizing scan.

use std::time::Duration;

use chrono::{DateTime, Utc};
use finops_checks::rightsizing::bedrock::{Bedrock, Explainer};
use finops_checks::rightsizing::run::{self as rightsizing, Ports};
use lambda_runtime::LambdaEvent;
use remediation::aws::cloudwatch::CloudWatch;
use remediation::aws::ec2::Ec2;
use remediation::config::Deps;
use remediation::model::RunReport;
use remediation::Error;

/// Environment variable: a Bedrock runtime endpoint other than AWS's (local runs and tests).
pub const BEDROCK_ENDPOINT_VAR: &str = "FINOPS_BEDROCK_ENDPOINT";

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    /// `None` when `rightsizing.bedrock_model_id` is empty: the rules explain.
    pub bedrock: Option<Bedrock>,
}

impl App {
    /// The Bedrock client of the policy's model (at `FINOPS_BEDROCK_ENDPOINT` if set).
    pub fn new(deps: Deps) -> App {
        let endpoint = std::env::var(BEDROCK_ENDPOINT_VAR)
            .ok()
            .filter(|e| !e.trim().is_empty());
        let bedrock = Self::bedrock(&deps, endpoint.as_deref());
        App { deps, bedrock }
    }

    /// The Bedrock client of `deps`' policy at `endpoint` (AWS's when `None`).
    pub fn bedrock(deps: &Deps, endpoint: Option<&str>) -> Option<Bedrock> {
        let p = &deps.policy.rightsizing;
        let model = p.bedrock_model_id.trim();
        (!model.is_empty()).then(|| {
            Bedrock::new(
                &deps.clients.config,
                endpoint,
                model,
                Duration::from_secs(p.bedrock_timeout_seconds),
            )
        })
    }
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<serde_json::Value>, app: &App) -> Result<RunReport, Error> {
    let explainer = app.bedrock.as_ref().map(|b| b as &dyn Explainer);
    handle(event.payload, &app.deps, explainer, Utc::now())
        .await
        .and_then(remediation::flow::invocation_result)
}

/// Checks that `payload` is a scheduled event or a fan-out item, then sizes the running
/// instances of its account and region at `now`.
pub async fn handle(
    payload: serde_json::Value,
    deps: &Deps,
    explainer: Option<&dyn Explainer>,
    now: DateTime<Utc>,
) -> Result<RunReport, Error> {
    let rule = finops_checks::rightsizing::detect::RULE;
    deps.recorded(
        rule,
        &payload,
        now,
        Box::pin(scan(payload.clone(), deps, explainer, now)),
    )
    .await
}

/// The scan itself (recorded by [`handle`]).
async fn scan(
    payload: serde_json::Value,
    deps: &Deps,
    explainer: Option<&dyn Explainer>,
    now: DateTime<Utc>,
) -> Result<RunReport, Error> {
    let reach = deps.scheduled_reach(&payload).await?;
    let ec2 = Ec2::new(reach.clients.ec2.clone(), reach.region.clone()).with_account(reach.account.clone());
    let peaks = CloudWatch::new(reach.clients.cloudwatch.clone(), deps.metrics_concurrency);
    let mut report = rightsizing::run(
        Ports {
            ec2: &ec2,
            peaks: &peaks,
            explainer,
            prices: &deps.price_book(&reach.region, now).await,
        },
        &deps.policy,
        deps.sinks_for(&reach),
        now,
    )
    .await?;
    deps.finish_report_for(&mut report, None, &reach);
    Ok(report)
}
