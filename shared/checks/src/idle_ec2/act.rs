//! Stop an EC2 instance; rollback: start it again.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::idle_ec2::detect::{busy_since, days_since_detection, skip_reason};
use finops_core::model::{ActionKind, Ec2Instance, Finding, Tags};
use finops_core::policy::Policy;
use remediation::act::{precondition, ActionDeclaration, Executed, Recheck, Refused, Remediation, Rollback};
use remediation::aws::cloudwatch::UsageApi;
use remediation::aws::ec2::InstanceApi;
use remediation::error::Result;

/// The declaration of the stop action.
pub static DECLARATION: ActionDeclaration = ActionDeclaration {
    action: ActionKind::Stop,
    // DescribeInstanceTypes: the re-check learns whether the type has instance storage;
    // GetMetricData: an idle instance's usage since detection is re-read before the stop.
    permissions: &[
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceTypes",
        "ec2:StopInstances",
        "cloudwatch:GetMetricData",
    ],
    acts_from_states: &["running"],
    // CreateGrant: EC2 starting an instance whose volumes use a customer-managed KMS key.
    rollback_permissions: &[
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceTypes",
        "ec2:StartInstances",
        "kms:CreateGrant",
    ],
};

/// Stops instances through an [`InstanceApi`], honouring the policy's guards at the last moment
/// and re-evaluating the reason for the stop on fresh data: an idle-ec2 finding's usage since
/// detection (through `usage`), a tag-compliance finding's tags as they are `now`.
pub struct StopInstance<'a> {
    pub ec2: &'a dyn InstanceApi,
    pub policy: &'a Policy,
    /// CloudWatch, for re-reading idle instances' usage; without it an idle stop is refused.
    pub usage: Option<&'a dyn UsageApi>,
    /// How the stops other rules propose are re-proven right before acting, by rule (the caller
    /// that runs them says: tag-compliance's are re-evaluated on the instance's tags). A stop of
    /// a rule not here is refused.
    pub others: &'a [(&'static str, StillDue)],
    pub now: DateTime<Utc>,
}

/// Whether a stop another rule proposed is still due, on the instance's tags now, the policy and
/// today's date; `Err` says why not.
pub type StillDue = fn(&Tags, &Policy, NaiveDate) -> std::result::Result<(), String>;

/// An idle instance's usage on the days since its detection, or why it could not be read.
type SinceDetection = std::result::Result<(Vec<NaiveDate>, crate::idle_ec2::detect::UsageByDay), String>;

impl StopInstance<'_> {
    /// The idle findings' usage from the detection day up to `now` (one batched read), or why it
    /// could not be read, by instance.
    async fn usage_since_detection(&self, findings: &[&Finding]) -> HashMap<String, SinceDetection> {
        let idle: Vec<&&Finding> = findings
            .iter()
            .filter(|f| f.rule == crate::idle_ec2::detect::RULE)
            .collect();
        let mut out = HashMap::new();
        if idle.is_empty() {
            return out;
        }
        let Some(usage) = self.usage else {
            for f in idle {
                out.insert(
                    f.resource.id.clone(),
                    Err("its usage since detection cannot be re-read here (no CloudWatch)".to_string()),
                );
            }
            return out;
        };
        let earliest = idle.iter().map(|f| f.detected_at).min().unwrap_or(self.now);
        let days = days_since_detection(earliest, self.now);
        let ids: Vec<String> = idle.iter().map(|f| f.resource.id.clone()).collect();
        let mut report = usage
            .daily_usage(&ids, &days, remediation::aws::cloudwatch::Measures::All)
            .await;
        for f in idle {
            let id = &f.resource.id;
            let entry = match report.failed.remove(id) {
                Some(e) => Err(format!("its usage since detection could not be re-read: {e}")),
                None => Ok((
                    days_since_detection(f.detected_at, self.now),
                    report.usage.remove(id).unwrap_or_default(),
                )),
            };
            out.insert(id.clone(), entry);
        }
        out
    }

    /// The rule's own condition on fresh data: still idle, or still untagged and due.
    fn still_true(
        &self,
        finding: &Finding,
        instance: &Ec2Instance,
        usage: &mut HashMap<String, SinceDetection>,
    ) -> std::result::Result<(), Refused> {
        match finding.rule.as_str() {
            crate::idle_ec2::detect::RULE => match usage.remove(&instance.id) {
                Some(Ok((days, series))) => {
                    let today = self.now.date_naive();
                    if let Some(busy) = busy_since(&series, &days, today, self.policy) {
                        return Err(Refused::Obsolete(format!("re-evaluated: {busy}")));
                    }
                    // A whole day since detection without CPU data proves nothing idle.
                    match days
                        .iter()
                        .find(|d| **d < today && series.get(d).and_then(|u| u.cpu_average).is_none())
                    {
                        Some(day) => Err(Refused::NotNow(format!(
                            "not stopped: no CPU data for {day} since detection, so idleness cannot be re-proven"
                        ))),
                        None => Ok(()),
                    }
                }
                Some(Err(e)) => Err(Refused::NotNow(format!("not stopped: {e}"))),
                None => Err(Refused::NotNow("not stopped: its usage was not re-read".into())),
            },
            other => match self.others.iter().find(|(rule, _)| *rule == other) {
                Some((_, still_due)) => still_due(&instance.tags, self.policy, self.now.date_naive())
                    .map_err(|why| Refused::Obsolete(format!("re-evaluated: {why}"))),
                None => Err(Refused::Obsolete(format!(
                    "no re-evaluation is known for rule {other}: not stopped on an old decision"
                ))),
            },
        }
    }
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
        // The same guards as detection (state, exemption, ASG, spot, ...), re-read now: a tag
        // added since the scan wins. Only instances that pass are re-evaluated.
        let guarded: Vec<&Finding> = findings
            .iter()
            .copied()
            .filter(|f| {
                current
                    .get(&f.resource.id)
                    .is_some_and(|i| skip_reason(i, self.policy).is_none())
            })
            .collect();
        let mut usage = self.usage_since_detection(&guarded).await;
        Ok(findings
            .iter()
            .map(|f| {
                let verdict = match current.get(&f.resource.id) {
                    None => Err(Refused::Obsolete("instance no longer exists".to_string())),
                    Some(i) => match skip_reason(i, self.policy) {
                        // Storage that could not be learnt is a failed read, not a changed decision.
                        Some(reason) if i.instance_store.is_none() => {
                            Err(Refused::NotNow(format!("re-check: {reason}")))
                        }
                        Some(reason) => Err(Refused::Obsolete(format!("re-check: {reason}"))),
                        None => self.still_true(f, i, &mut usage).map(|()| {
                            serde_json::json!({
                                "state": i.state,
                                "instance_type": i.instance_type,
                                "tags": i.tags,
                                "launch_time": i.launch_time,
                                "re_evaluated_at": self.now,
                                "hibernation": i.hibernation,
                                "public_ipv4": i.public_ipv4,
                            })
                        }),
                    },
                };
                (f.id.clone(), verdict)
            })
            .collect())
    }

    fn rollback_for(&self, finding: &Finding, pre_state: &serde_json::Value) -> Rollback {
        Rollback::StartInstance {
            instance_id: finding.resource.id.clone(),
            region: finding.resource.region.clone(),
            hibernated: hibernates(pre_state),
            launched_at: pre_state
                .get("launch_time")
                .and_then(|t| serde_json::from_value(t.clone()).ok()),
        }
    }

    fn asks_first(&self, _finding: &Finding, pre_state: &serde_json::Value) -> Option<String> {
        let ip = auto_assigned_ipv4(pre_state)?;
        Some(format!(
            "its public IPv4 address {ip} is auto-assigned: a stop releases it and the instance starts with another, so a person decides"
        ))
    }

    async fn execute(&self, finding: &Finding, pre_state: &serde_json::Value) -> Result<Executed> {
        let id = &finding.resource.id;
        let hibernate = hibernates(pre_state);
        let answered = self.ec2.stop(id, hibernate).await?;
        let accepted = matches!(answered.as_str(), "stopping" | "stopped");
        // Verify with fresh reads rather than trusting the call's echo; a read right after the
        // stop may still show it running, so the reads back off before anything is concluded.
        let settled = remediation::act::settle(
            || async {
                Ok(self
                    .ec2
                    .describe(std::slice::from_ref(id))
                    .await?
                    .first()
                    .map(|i| i.state.clone())
                    .unwrap_or_else(|| "missing".into()))
            },
            |s: &String| matches!(s.as_str(), "stopping" | "stopped"),
        )
        .await;
        let seen = settled.seen(|s| format!("the instance {s}"));
        let how = if hibernate { "hibernated" } else { "stopped" };
        let address = match pre_state
            .get("public_ipv4")
            .and_then(|ip| ip.get("address"))
            .and_then(|a| a.as_str())
        {
            Some(a) if auto_assigned_ipv4(pre_state).is_some() => format!("; its public IPv4 {a} was released"),
            Some(a) => format!("; it keeps its Elastic IP {a}"),
            None => String::new(),
        };
        match (settled.shown, accepted, settled.error) {
            (true, _, _) => Ok(Executed::Done(format!(
                "{how} (state {}; StopInstances said {answered}){address}",
                settled.reading.unwrap_or_default()
            ))),
            (false, true, _) => Ok(Executed::Unverified(format!(
                "{how}: StopInstances answered {answered}, though after {} s {seen} (AWS's reads trail its writes); the hourly sweep confirms it{address}",
                remediation::act::settle_seconds()
            ))),
            (false, false, Some(e)) => Err(e),
            (false, false, None) => Err(precondition(
                id,
                format!("StopInstances answered {answered} and {seen}"),
            )),
        }
    }
}

/// Whether the pre-state says the instance hibernates (its memory is kept across the stop).
fn hibernates(pre_state: &serde_json::Value) -> bool {
    pre_state.get("hibernation").and_then(serde_json::Value::as_bool) == Some(true)
}

/// The auto-assigned public IPv4 address the pre-state records, if any (an Elastic IP stays).
fn auto_assigned_ipv4(pre_state: &serde_json::Value) -> Option<&str> {
    let ip = pre_state.get("public_ipv4")?;
    (ip.get("elastic").and_then(serde_json::Value::as_bool) == Some(false))
        .then(|| ip.get("address").and_then(serde_json::Value::as_str))
        .flatten()
}

/// Rollback of a stop: starts the instance if it is stopped, then waits (up to `wait`, checking
/// every `poll`) until it is `running`. `pending` is not done: an instance whose EBS volumes use a
/// KMS key EC2 may not use goes `pending` → `stopped`, so only `running` counts.
pub async fn start_again(
    ec2: &dyn InstanceApi,
    instance_id: &str,
    launched_at: Option<DateTime<Utc>>,
    wait: std::time::Duration,
    poll: std::time::Duration,
) -> Result<String> {
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
    // Started since the action stopped it (EC2 sets LaunchTime at every start), and stopped
    // again: that stop is someone else's, and a start would undo it. Asked, not overwritten.
    let launched_now = current.first().and_then(|i| i.launch_time);
    if let (Some(then), Some(now)) = (launched_at, launched_now) {
        if now > then {
            return Err(precondition(
                instance_id,
                format!(
                    "not started: it was started again at {} after this action stopped it, and stopped since by someone else; starting it would undo their stop. Start it by hand if it should run",
                    now.format("%Y-%m-%d %H:%M UTC")
                ),
            ));
        }
    }
    ec2.start(instance_id).await?;
    let started = tokio::time::Instant::now();
    let deadline = started + wait;
    // A read right after StartInstances may still show it stopped (AWS's reads trail its
    // writes): `stopped` counts as stopped again only once it was seen pending, or after the
    // verification reads' usual wait.
    let trailing = std::time::Duration::from_millis(remediation::act::SETTLE_WAITS_MS.iter().sum());
    let mut seen_pending = false;
    loop {
        let after = ec2.describe(&[instance_id.to_string()]).await?;
        let state = after
            .first()
            .map(|i| i.state.clone())
            .unwrap_or_else(|| "missing".into());
        match state.as_str() {
            "running" => return Ok("started again (state running)".to_string()),
            "stopped" if !seen_pending && started.elapsed() < trailing => {
                tokio::time::sleep(poll.min(std::time::Duration::from_secs(1))).await
            }
            "pending" if tokio::time::Instant::now() < deadline => {
                seen_pending = true;
                tokio::time::sleep(poll).await
            }
            "pending" => {
                return Err(precondition(
                    instance_id,
                    format!(
                    "StartInstances returned but the instance is still pending after {} s: not counted as rolled back",
                    wait.as_secs()
                ),
                ))
            }
            other => {
                return Err(precondition(
                    instance_id,
                    format!(
                    "StartInstances returned but the instance is {other} (a KMS key EC2 may not use stops it again)"
                ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finops_core::model::Ec2Instance;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A fake of the port (not of EC2): the states the instance goes through after a start.
    struct Starting {
        states: Mutex<Vec<&'static str>>,
    }

    #[async_trait]
    impl InstanceApi for Starting {
        async fn running_instances(&self) -> Result<Vec<Ec2Instance>> {
            Ok(vec![])
        }
        async fn describe(&self, ids: &[String]) -> Result<Vec<Ec2Instance>> {
            let mut states = self.states.lock().unwrap();
            let state = if states.len() > 1 { states.remove(0) } else { states[0] };
            Ok(ids
                .iter()
                .map(|id| Ec2Instance {
                    id: id.clone(),
                    instance_type: "m5.large".into(),
                    state: state.into(),
                    account: "1".into(),
                    region: "us-east-1".into(),
                    lifecycle: None,
                    root_device_type: "ebs".into(),
                    instance_store: Some(false),
                    launch_time: None,
                    tags: Default::default(),
                    hibernation: false,
                    public_ipv4: None,
                })
                .collect())
        }
        async fn stop(&self, _id: &str, _hibernate: bool) -> Result<String> {
            Ok("stopping".into())
        }
        async fn start(&self, _id: &str) -> Result<String> {
            Ok("pending".into())
        }
        async fn live_instances(&self) -> Result<Vec<Ec2Instance>> {
            Ok(vec![])
        }
        async fn tag_resource(&self, _id: &str, _k: &str, _v: &str) -> Result<()> {
            Ok(())
        }
        async fn untag_resource(&self, _id: &str, _k: &str) -> Result<()> {
            Ok(())
        }
    }

    async fn roll_back(states: Vec<&'static str>) -> Result<String> {
        let ec2 = Starting {
            states: Mutex::new(states),
        };
        start_again(&ec2, "i-1", None, Duration::from_millis(40), Duration::from_millis(10)).await
    }

    #[tokio::test]
    async fn a_rollback_counts_only_once_the_instance_is_running() {
        let done = roll_back(vec!["stopped", "pending", "pending", "running"])
            .await
            .unwrap();
        assert!(done.contains("running"), "{done}");
    }

    #[tokio::test]
    async fn an_instance_still_pending_when_the_wait_ends_is_not_rolled_back() {
        let err = roll_back(vec!["stopped", "pending"]).await.unwrap_err().to_string();
        assert!(err.contains("still pending"), "{err}");
    }

    #[tokio::test]
    async fn an_instance_that_falls_back_to_stopped_is_not_rolled_back() {
        // What EC2 does when the volume's KMS key cannot be used: pending, then stopped.
        let err = roll_back(vec!["stopped", "pending", "stopped"])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is stopped"), "{err}");
    }
}
