//! slack-notify: wires tracing, configuration, the Slack secret and clients once, then serves
//! SNS events.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use remediation::config::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    remediation::telemetry::init();
    let app = slack_notify::handler::App::new(Deps::from_env().await?)?;
    tracing::info!(destination = ?app.poster.destination, "slack-notify ready");
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        slack_notify::handler::function_handler(event, app).await
    }))
    .await
}
