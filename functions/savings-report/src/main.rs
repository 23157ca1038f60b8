//! savings-report: wires tracing, configuration and clients once, then serves scheduled events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let deps = Deps::from_env().await?;
    tracing::info!(policy = %deps.policy_source, bucket = %deps.policy.savings_report.bucket, "savings-report ready");
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        savings_report::handler::function_handler(event, deps).await
    }))
    .await
}
