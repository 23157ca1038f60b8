//! jira-sync: wires tracing, configuration, the Jira secret and clients once, then serves SNS
//! events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let app = jira_sync::handler::App::new(Deps::from_env().await?)?;
    tracing::info!(jira = ?app.jira, project = %app.deps.policy.jira.project_key, "jira-sync ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        jira_sync::handler::function_handler(event, app).await
    }))
    .await
}
