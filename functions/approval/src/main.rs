//! approval: wires tracing, configuration, secrets and clients once, then serves requests.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let app = approval::handler::App::new(Deps::from_env().await?).await?;
    tracing::info!(policy = %app.deps.policy_source, slack = app.slack_signing_secret.is_some(), "approval ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        approval::handler::function_handler(event, app).await
    }))
    .await
}
