//! unattached-eip: wires tracing, configuration and clients once, then serves events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let deps = Deps::from_env().await?;
    tracing::info!(policy = %deps.policy_source, "unattached-eip ready (dry-run only)");
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        unattached_eip::handler::function_handler(event, deps).await
    }))
    .await
}
