//! tag-compliance: wires tracing, configuration and clients once, then serves events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let deps = Deps::from_env().await?;
    tracing::info!(policy = %deps.policy_source, mode = deps.policy.mode_for("tag-compliance").as_str(), "tag-compliance ready");
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        tag_compliance::handler::function_handler(event, deps).await
    }))
    .await
}
