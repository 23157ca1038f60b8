//! rightsizing: wires tracing, configuration, clients and the Bedrock client once, then serves
//! scheduled events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let app = rightsizing::handler::App::new(Deps::from_env().await?);
    tracing::info!(policy = %app.deps.policy_source, model = app.bedrock.as_ref().map_or("none (rules only)", |b| b.model_id()), "rightsizing ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        rightsizing::handler::function_handler(event, app).await
    }))
    .await
}
