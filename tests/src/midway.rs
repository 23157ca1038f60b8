//! A real action with an operator stepping in while it runs: before the action on each finding
//! goes ahead, the resources named are snoozed (as a Slack click or `finops snooze` does, through
//! the same state code), so a test sees whether what was decided before is proven again right
//! before acting.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use remediation::act::{ActionDeclaration, Executed, Irreversible, Recheck, Remediation, Rollback};
use remediation::model::Finding;
use remediation::state::{ApprovalStore, DynamoState};

pub struct SnoozeMidway<'a> {
    pub inner: &'a dyn Remediation,
    pub state: DynamoState,
    /// The resources snoozed (everywhere, for 30 days) once the first action has begun.
    pub snooze: Vec<String>,
}

#[async_trait::async_trait]
impl Remediation for SnoozeMidway<'_> {
    fn declaration(&self) -> &'static ActionDeclaration {
        self.inner.declaration()
    }
    async fn recheck(&self, findings: &[&Finding]) -> remediation::Result<HashMap<String, Recheck>> {
        self.inner.recheck(findings).await
    }
    fn rollback_for(&self, f: &Finding, pre: &serde_json::Value) -> Rollback {
        self.inner.rollback_for(f, pre)
    }
    fn irreversible(&self, f: &Finding) -> Option<Irreversible> {
        self.inner.irreversible(f)
    }
    async fn execute(&self, f: &Finding, pre: &serde_json::Value) -> remediation::Result<Executed> {
        let now = Utc::now();
        for id in &self.snooze {
            let z = crate::snooze(id, "U0ANA", "slack", "quarter-end batch", now, now + Duration::days(30));
            self.state
                .snooze(&z, true, &finops_checks::CATALOG)
                .await
                .expect("snooze recorded");
        }
        self.inner.execute(f, pre).await
    }
}

/// A DynamoDB client on which another writer steps in between a read and the write that
/// follows it: right before this client's first `TransactWriteItems` is sent, `step_in` runs to
/// completion on a thread and runtime of its own, with a client of its own made there (a pooled
/// connection of the test's runtime, blocked meanwhile, would never be driven), so a test sees
/// whether the write is conditioned on what was read.
pub async fn stepped_in_client(
    moto: &crate::Moto,
    step_in: impl FnOnce(aws_sdk_dynamodb::Client) -> BoxedStep + Send + 'static,
) -> aws_sdk_dynamodb::Client {
    let step_in: StepIn = Box::new(step_in);
    let conf = aws_sdk_dynamodb::config::Builder::from(&moto.sdk_config().await)
        .interceptor(SteppedIn {
            endpoint: moto.endpoint(),
            step_in: std::sync::Mutex::new(Some(step_in)),
        })
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub type BoxedStep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type StepIn = Box<dyn FnOnce(aws_sdk_dynamodb::Client) -> BoxedStep + Send>;

struct SteppedIn {
    endpoint: String,
    step_in: std::sync::Mutex<Option<StepIn>>,
}

impl std::fmt::Debug for SteppedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SteppedIn")
    }
}

impl aws_sdk_dynamodb::config::Intercept for SteppedIn {
    fn name(&self) -> &'static str {
        "stepped-in"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        if !target.ends_with(".TransactWriteItems") {
            return Ok(());
        }
        let Some(step_in) = self.step_in.lock().map_err(|e| e.to_string())?.take() else {
            return Ok(());
        };
        let endpoint = self.endpoint.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| {
                    rt.block_on(async move {
                        let conf = crate::moto::sdk_config_for(&endpoint, 3).await;
                        step_in(aws_sdk_dynamodb::Client::new(&conf)).await
                    })
                })
        })
        .join()
        .map_err(|_| "the step-in panicked")??;
        Ok(())
    }
}
