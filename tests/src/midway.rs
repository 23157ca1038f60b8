//! A real action with an operator stepping in while it runs: before the action on each finding
//! goes ahead, the resources named are snoozed (as a Slack click or `finops snooze` does, through
//! the same state code), so a test sees whether what was decided before is proven again right
//! before acting.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use remediation::act::{ActionDeclaration, Executed, Irreversible, Recheck, Remediation, Rollback};
use remediation::model::Finding;
use remediation::state::{ApprovalStore, DynamoState, Snooze};

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
            let z = Snooze {
                resource_id: id.clone(),
                until: now + Duration::days(30),
                by: "U0ANA".into(),
                via: "slack".into(),
                reason: "quarter-end batch".into(),
                at: now,
                finding_id: None,
                account: None,
                region: None,
            };
            self.state.snooze(&z, true).await.expect("snooze recorded");
        }
        self.inner.execute(f, pre).await
    }
}
