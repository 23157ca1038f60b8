//! org-fanout: wires tracing, configuration and clients once, then serves the state machine's
//! targets and summary steps.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let deps = Deps::from_env().await?;
    let app = org_fanout::handler::App::new(deps)?;
    tracing::info!(policy = %app.deps.policy_source, bucket = %app.bucket, "org-fanout ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        org_fanout::handler::function_handler(event, app).await
    }))
    .await
}
