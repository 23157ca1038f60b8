//! Stop an EC2 instance; rollback: start it again.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{precondition, ActionDeclaration, Executed, Recheck, Remediation, Rollback};
use crate::aws::ec2::InstanceApi;
use crate::detect::idle_ec2::skip_reason;
use crate::error::Result;
use crate::model::{ActionKind, Finding};
use crate::policy::Policy;

/// The declaration of the stop action.
pub static DECLARATION: ActionDeclaration = ActionDeclaration {
    action: ActionKind::Stop,
    permissions: &["ec2:DescribeInstances", "ec2:StopInstances"],
    acts_from_states: &["running"],
    rollback_permissions: &["ec2:DescribeInstances", "ec2:StartInstances"],
};

/// Stops instances through an [`InstanceApi`], honouring the policy's guards at the last moment.
pub struct StopInstance<'a> {
    pub ec2: &'a dyn InstanceApi,
    pub policy: &'a Policy,
}

#[async_trait]
impl Remediation for StopInstance<'_> {
    fn declaration(&self) -> &'static ActionDeclaration {
        &DECLARATION
    }

    async fn recheck(&self, findings: &[&Finding]) -> Result<HashMap<String, Recheck>> {
        let ids: Vec<String> = findings.iter().map(|f| f.resource.id.clone()).collect();
        let current: HashMap<String, _> = self
            .ec2
            .describe(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        Ok(findings
            .iter()
            .map(|f| {
                let verdict = match current.get(&f.resource.id) {
                    None => Err("instance no longer exists".to_string()),
                    // The same guards as detection (state, exemption, ASG, spot, ...), re-read now:
                    // a tag added since the scan wins.
                    Some(i) => match skip_reason(i, self.policy) {
                        Some(reason) => Err(format!("re-check: {reason}")),
                        None => Ok(serde_json::json!({
                            "state": i.state,
                            "instance_type": i.instance_type,
                            "tags": i.tags,
                            "launch_time": i.launch_time,
                        })),
                    },
                };
                (f.id.clone(), verdict)
            })
            .collect())
    }

    fn rollback_for(&self, finding: &Finding, _pre_state: &serde_json::Value) -> Rollback {
        Rollback::StartInstance {
            instance_id: finding.resource.id.clone(),
            region: finding.resource.region.clone(),
        }
    }

    async fn execute(&self, finding: &Finding, _pre_state: &serde_json::Value) -> Result<Executed> {
        let id = &finding.resource.id;
        let after = self.ec2.stop(id).await?;
        // Verify with a fresh read rather than trusting the call's echo.
        let now = self.ec2.describe(std::slice::from_ref(id)).await?;
        let state = now.first().map(|i| i.state.as_str()).unwrap_or("missing");
        if matches!(state, "stopping" | "stopped") {
            Ok(Executed::Done(format!(
                "stopped (state {state}; StopInstances said {after})"
            )))
        } else {
            Err(precondition(
                id,
                format!("StopInstances returned but the instance is {state}"),
            ))
        }
    }
}

/// Rollback of a stop: starts the instance if it is stopped, and verifies it is starting.
pub async fn start_again(ec2: &dyn InstanceApi, instance_id: &str) -> Result<String> {
    let current = ec2.describe(&[instance_id.to_string()]).await?;
    let state = current
        .first()
        .map(|i| i.state.clone())
        .unwrap_or_else(|| "missing".into());
    if state != "stopped" {
        return Err(precondition(
            instance_id,
            format!("cannot start: instance is {state}, not stopped"),
        ));
    }
    ec2.start(instance_id).await?;
    let after = ec2.describe(&[instance_id.to_string()]).await?;
    let state = after.first().map(|i| i.state.as_str()).unwrap_or("missing");
    if matches!(state, "pending" | "running") {
        Ok(format!("started again (state {state})"))
    } else {
        Err(precondition(
            instance_id,
            format!("StartInstances returned but the instance is {state}"),
        ))
    }
}
