//! s3-public: wires tracing, configuration and clients once, then serves events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let deps = Deps::from_env().await?;
    tracing::info!(policy = %deps.policy_source, mode = deps.policy.mode_for("s3-public").as_str(), "s3-public ready");
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        s3_public::handler::function_handler(event, deps).await
    }))
    .await
}
