//! The approval executor's actions and ways back: each approved finding's action, the look at
//! one that never recorded its end, and each rollback, dispatched to the check whose action it is.

use std::time::Duration as StdDuration;

use async_trait::async_trait;

use finops_core::model::{ActionKind, Finding, OutcomeKind};
use finops_core::policy::Policy;
use remediation::act::{Remediation, Rollback, Undone};
use remediation::aws::cloudwatch::CloudWatch;
use remediation::aws::ec2::{Ec2, InstanceApi, VolumeApi};
use remediation::aws::s3::{BucketApi, S3};
use remediation::decide::{Executor, Observed};
use remediation::error::{Error, Result};
use remediation::flow::{self, Acted, Decider, RunContext};

use crate::ebs_cleanup::act::{self as snapshot_and_delete, SnapshotAndDelete};
use crate::idle_ec2::act::{self as stop_instance, StopInstance};
use crate::s3_public::act::{self as block_public_access, BlockPublicAccess};
use crate::tag_compliance::detect as tag_compliance;

/// A notify-only finding's outcome: nothing to execute.
fn notify_only(finding: &Finding) -> Acted {
    Acted {
        outcome: finops_core::model::Outcome::new(
            &finding.id,
            OutcomeKind::Skipped,
            "nothing to execute: this finding only notifies",
        ),
        action_id: None,
        obsolete: false,
        deferred: false,
        held: None,
    }
}

/// The AWS executor: the same actions the detectors run in auto mode, in the finding's account.
pub struct AwsExecutor {
    pub clients: remediation::aws::Clients,
    pub policy: Policy,
}

impl AwsExecutor {
    /// Clients in the finding's account (through its member role, unless it is the hub's own)
    /// and region: an action never runs with another account's or region's clients.
    async fn reach(&self, finding: &Finding) -> Result<remediation::aws::Clients> {
        remediation::org::reach_finding(
            &self.clients,
            self.policy.organization.as_ref(),
            &finding.resource.account,
            &finding.resource.region,
            &finding.resource.id,
        )
        .await
    }

    fn ec2(clients: &remediation::aws::Clients, finding: &Finding) -> Ec2 {
        Ec2::new(clients.ec2.clone(), clients.region.clone()).with_account(finding.resource.account.clone())
    }

    /// S3 in the finding's account (the account-level Block Public Access is read per account).
    fn s3(clients: &remediation::aws::Clients, finding: &Finding) -> S3 {
        S3::new(clients, finding.resource.account.clone())
    }
}

#[async_trait]
impl Executor for AwsExecutor {
    async fn execute(&self, ctx: &RunContext<'_>, finding: &Finding, decider: Decider<'_>) -> (Acted, Vec<String>) {
        // Nothing to execute needs no account: a notify-only finding never fails on STS.
        if finding.action == ActionKind::Notify {
            return (notify_only(finding), vec![]);
        }
        let clients = match self.reach(finding).await {
            Ok(c) => c,
            Err(e) => {
                return (
                    Acted {
                        outcome: finops_core::model::Outcome::new(
                            &finding.id,
                            OutcomeKind::Failed,
                            format!(
                                "not executed: account {} in {} could not be reached: {e}",
                                finding.resource.account, finding.resource.region
                            ),
                        ),
                        action_id: None,
                        obsolete: false,
                        deferred: false,
                        held: None,
                    },
                    vec![],
                )
            }
        };
        let (ec2, s3) = (Self::ec2(&clients, finding), Self::s3(&clients, finding));
        let cloudwatch = CloudWatch::new(clients.cloudwatch.clone(), 1);
        let stop;
        let snapshot;
        let block;
        let remediation: &dyn Remediation = match finding.action {
            ActionKind::Stop => {
                stop = StopInstance {
                    ec2: &ec2,
                    policy: &self.policy,
                    usage: Some(&cloudwatch),
                    others: &[(tag_compliance::RULE, tag_compliance::stop_still_due)],
                    now: ctx.now,
                };
                &stop
            }
            ActionKind::SnapshotAndDelete => {
                snapshot = SnapshotAndDelete {
                    ec2: &ec2,
                    policy: &self.policy,
                    wait: StdDuration::from_secs(u64::from(self.policy.ebs_cleanup.snapshot_wait_seconds)),
                    poll: StdDuration::from_secs(5),
                    sightings: ctx.sinks.state,
                    now: ctx.now,
                };
                &snapshot
            }
            ActionKind::BlockPublicAccess => {
                block = BlockPublicAccess {
                    s3: &s3,
                    policy: &self.policy,
                    // `auto` is no person: a website bucket waits for one.
                    approved: decider.by != "auto",
                };
                &block
            }
            // Answered above, before reaching any account.
            ActionKind::Notify => return (notify_only(finding), vec![]),
        };
        let (mut acted, notes) = flow::execute(ctx, std::slice::from_ref(finding), remediation, decider).await;
        let one = acted.pop().unwrap_or_else(|| Acted {
            outcome: finops_core::model::Outcome::new(&finding.id, OutcomeKind::Failed, "the flow returned no outcome"),
            action_id: None,
            obsolete: false,
            deferred: false,
            held: None,
        });
        (one, notes)
    }

    async fn rollback(&self, finding: &Finding, rollback: &Rollback) -> Result<Undone> {
        let clients = self.reach(finding).await?;
        let (ec2, s3) = (Self::ec2(&clients, finding), Self::s3(&clients, finding));
        let ports = RollbackPorts {
            instances: Some(&ec2),
            volumes: Some(&ec2),
            buckets: Some(&s3),
        };
        crate::executor::rollback(rollback, &ports).await
    }

    async fn observe(&self, finding: &Finding) -> Result<Observed> {
        let id = &finding.resource.id;
        let clients = self.reach(finding).await?;
        Ok(match finding.action {
            ActionKind::Stop => match Self::ec2(&clients, finding)
                .describe(std::slice::from_ref(id))
                .await?
                .first()
            {
                Some(i) if matches!(i.state.as_str(), "stopped" | "stopping") => {
                    Observed::Done(format!("found the instance {}", i.state))
                }
                Some(i) => Observed::NotDone(format!("found the instance {}: the stop did not happen", i.state)),
                None => Observed::NotDone("the instance no longer exists".into()),
            },
            ActionKind::SnapshotAndDelete => {
                match Self::ec2(&clients, finding)
                    .describe_volumes(std::slice::from_ref(id))
                    .await?
                    .first()
                {
                    None => Observed::Done("the volume is gone".into()),
                    Some(v) if matches!(v.state.as_str(), "deleting" | "deleted") => {
                        Observed::Done(format!("the volume is {}", v.state))
                    }
                    Some(v) => Observed::NotDone(format!("the volume is still there ({}): not deleted", v.state)),
                }
            }
            ActionKind::BlockPublicAccess => {
                let bucket = Self::s3(&clients, finding)
                    .exposure(id, &finding.resource.region)
                    .await?;
                let wanted: finops_core::inventory::BlockSettings = self.policy.s3_public.block.into();
                if bucket.block == Some(wanted) {
                    Observed::Done("Block Public Access is on as the action sets it".into())
                } else {
                    Observed::NotDone(format!(
                        "Block Public Access is {}: not as the action sets it",
                        finops_core::inventory::shown_block(bucket.block)
                    ))
                }
            }
            ActionKind::Notify => Observed::NotDone("nothing to execute: this finding only notifies".into()),
        })
    }

    async fn observe_rollback(&self, finding: &Finding, rollback: &Rollback) -> Result<(Observed, Option<String>)> {
        use snapshot_and_delete::{RESTORED_FROM_TAG, SIGHTING_TAG, SOURCE_VOLUME_TAG};
        let clients = self.reach(finding).await?;
        Ok(match rollback {
            Rollback::StartInstance { instance_id, .. } => {
                match Self::ec2(&clients, finding)
                    .describe(std::slice::from_ref(instance_id))
                    .await?
                    .first()
                {
                    Some(i) if matches!(i.state.as_str(), "pending" | "running") => {
                        (Observed::Done(format!("found the instance {}", i.state)), None)
                    }
                    Some(i) => (Observed::NotDone(format!("found the instance {}", i.state)), None),
                    None => (Observed::NotDone("the instance no longer exists".into()), None),
                }
            }
            Rollback::RestorePublicAccessBlock {
                bucket, region, prior, ..
            } => {
                let now = Self::s3(&clients, finding).exposure(bucket, region).await?;
                let shown = finops_core::inventory::shown_block(now.block);
                if now.block == *prior {
                    (Observed::Done(format!("Block Public Access is back to {shown}")), None)
                } else {
                    (Observed::NotDone(format!("Block Public Access is {shown}")), None)
                }
            }
            Rollback::RecreateVolume { spec, sighting } => {
                // The volume a rollback makes carries the snapshot it came from.
                let ec2 = Self::ec2(&clients, finding);
                let snapshots = match sighting {
                    Some(s) => ec2.snapshots_tagged(SIGHTING_TAG, s).await?,
                    None => ec2.snapshots_tagged(SOURCE_VOLUME_TAG, &spec.source_volume_id).await?,
                };
                let mut restored = None;
                for (snapshot, _, _) in &snapshots {
                    if let Some(v) = ec2
                        .volumes_tagged(RESTORED_FROM_TAG, snapshot)
                        .await?
                        .into_iter()
                        .next()
                    {
                        restored = Some((v.id, snapshot.clone()));
                        break;
                    }
                }
                match restored {
                    Some((id, snapshot)) => (
                        Observed::Done(format!("found volume {id} restored from {snapshot}")),
                        Some(id),
                    ),
                    None => (Observed::NotDone("no volume restored from its snapshots".into()), None),
                }
            }
            Rollback::Nothing { .. } | Rollback::Irreversible { .. } => {
                (Observed::NotDone("it has no way back".into()), None)
            }
        })
    }

    async fn tags_now(&self, finding: &Finding) -> Result<Option<finops_core::model::Tags>> {
        let id = &finding.resource.id;
        if finding.action == ActionKind::Notify {
            return Ok(Some(finding.resource.tags.clone()));
        }
        let clients = self.reach(finding).await?;
        Ok(match finding.action {
            ActionKind::Stop => Self::ec2(&clients, finding)
                .describe(std::slice::from_ref(id))
                .await?
                .into_iter()
                .next()
                .map(|i| i.tags),
            ActionKind::SnapshotAndDelete => Self::ec2(&clients, finding)
                .describe_volumes(std::slice::from_ref(id))
                .await?
                .into_iter()
                .next()
                .map(|v| v.tags),
            ActionKind::BlockPublicAccess => Some(
                Self::s3(&clients, finding)
                    .bucket_tags(id, &finding.resource.region)
                    .await?,
            ),
            ActionKind::Notify => Some(finding.resource.tags.clone()),
        })
    }
}

/// The AWS ports a rollback may need; a rollback whose port is missing fails saying so.
#[derive(Default)]
pub struct RollbackPorts<'a> {
    pub instances: Option<&'a dyn InstanceApi>,
    pub volumes: Option<&'a dyn VolumeApi>,
    pub buckets: Option<&'a dyn remediation::aws::s3::BucketApi>,
}

fn port<'a, T: ?Sized>(p: Option<&'a T>, what: &str) -> Result<&'a T> {
    p.ok_or_else(|| Error::Config(format!("this rollback needs the {what} port")))
}

/// Undoes an action. Each rollback re-checks that it can act and verifies the result.
pub async fn rollback(rollback: &Rollback, ports: &RollbackPorts<'_>) -> Result<Undone> {
    match rollback {
        Rollback::StartInstance {
            instance_id,
            hibernated,
            launched_at,
            ..
        } => {
            let ec2 = port(ports.instances, "EC2 instance")?;
            let started = stop_instance::start_again(
                ec2,
                instance_id,
                *launched_at,
                remediation::act::START_WAIT,
                std::time::Duration::from_secs(5),
            )
            .await?;
            Ok(Undone::said(if *hibernated {
                format!("resumed from hibernation ({started})")
            } else {
                started
            }))
        }
        Rollback::RecreateVolume { spec, sighting } => {
            snapshot_and_delete::recreate(port(ports.volumes, "EBS volume")?, spec, sighting.as_deref()).await
        }
        Rollback::RestorePublicAccessBlock {
            bucket,
            region,
            prior,
            left,
        } => block_public_access::restore(port(ports.buckets, "S3")?, bucket, region, *prior, *left)
            .await
            .map(Undone::said),
        Rollback::Nothing { reason } | Rollback::Irreversible { reason } => Err(Error::Precondition {
            resource: "-".into(),
            message: format!("nothing to roll back: {reason}"),
        }),
    }
}
