//! Snapshot an unattached EBS volume, wait until the snapshot is `completed`, re-check, delete.
//! Rollback: a new volume from that snapshot, in the same AZ, with the same type, IOPS,
//! throughput, encryption and tags.
//!
//! The snapshot carries everything needed to restore, as tags. A snapshot still `pending` when
//! the wait ends defers the delete: the next run finds the snapshot by its tag and deletes only
//! once it is `completed` (never before), without taking a second one.
//!
//! Only a snapshot of the volume's *current* unattached spell is ever relied on: each snapshot is
//! tagged with the spell (`<volume>@<first sighting>`), and one from an earlier spell (the volume
//! was attached and written to since) is never reused; a fresh one is taken instead.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::ebs_cleanup::detect::{sighting_scope, skip_reason, EbsCleanupEvidence, LEGACY_SIGHTING_SCOPE};
use finops_core::model::{ActionKind, Finding, Tags};
use finops_core::policy::Policy;
use remediation::act::{
    precondition, ActionDeclaration, Executed, Irreversible, Recheck, Refused, Remediation, Rollback,
};
use remediation::aws::ec2::{VolumeApi, VolumeSpec};
use remediation::error::{Error, Result};
use remediation::state::StateStore;

/// The declaration of the snapshot-and-delete action.
pub static DECLARATION: ActionDeclaration = ActionDeclaration {
    action: ActionKind::SnapshotAndDelete,
    permissions: &[
        "ec2:DescribeVolumes",
        "ec2:DescribeSnapshots",
        "ec2:CreateSnapshot",
        "ec2:CreateTags",
        "ec2:DeleteVolume",
    ],
    acts_from_states: &["available"],
    // The KMS actions: EC2 creating a volume from a snapshot encrypted with a customer-managed key.
    rollback_permissions: &[
        "ec2:DescribeSnapshots",
        "ec2:DescribeVolumes",
        "ec2:CreateVolume",
        "ec2:CreateTags",
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
    ],
};

/// Tag on every snapshot this action takes: the volume it came from.
pub const SOURCE_VOLUME_TAG: &str = "finops:source-volume-id";
/// Tag on every snapshot this action takes: the unattached spell it captured,
/// `<volume id>@<first sighting of the current detach, RFC 3339 seconds>`.
pub const SIGHTING_TAG: &str = "finops:source-sighting";

/// The unattached spell a finding is about: when the volume's current detach was first seen.
fn spell_start(finding: &Finding) -> Option<DateTime<Utc>> {
    finding.evidence.get::<EbsCleanupEvidence>().map(|e| e.unattached_since)
}

/// The value of [`SIGHTING_TAG`] for a volume's spell.
pub fn sighting(volume: &str, since: DateTime<Utc>) -> String {
    format!("{volume}@{}", since.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Snapshots and deletes volumes through a [`VolumeApi`].
pub struct SnapshotAndDelete<'a> {
    pub ec2: &'a dyn VolumeApi,
    pub policy: &'a Policy,
    /// How long to wait for a snapshot to complete in this run.
    pub wait: Duration,
    /// Pause between snapshot state checks.
    pub poll: Duration,
    /// Where unattached spells are recorded: the re-check reads the volume's current spell
    /// there (without it, only the grace period is re-evaluated).
    pub sightings: Option<&'a dyn StateStore>,
    pub now: DateTime<Utc>,
}

fn spec_from(pre_state: &serde_json::Value) -> Option<VolumeSpec> {
    serde_json::from_value(pre_state.get("spec")?.clone()).ok()
}

/// The tags a snapshot carries: the restore recipe and the spell it captured, then the volume's
/// own tags.
fn restore_tags(spec: &VolumeSpec, sighting: Option<&str>) -> Tags {
    let mut tags: Tags = spec.tags.clone();
    let opt = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
    tags.insert(SOURCE_VOLUME_TAG.into(), spec.source_volume_id.clone());
    if let Some(sighting) = sighting {
        tags.insert(SIGHTING_TAG.into(), sighting.to_string());
    }
    tags.insert("finops:source-az".into(), spec.availability_zone.clone());
    tags.insert("finops:source-type".into(), spec.volume_type.clone());
    tags.insert("finops:source-size-gib".into(), spec.size_gib.to_string());
    tags.insert("finops:source-iops".into(), opt(spec.iops));
    tags.insert("finops:source-throughput".into(), opt(spec.throughput));
    tags.insert("finops:source-encrypted".into(), spec.encrypted.to_string());
    tags
}

impl SnapshotAndDelete<'_> {
    /// The volume's sighting in its account and region's scope, else — only for a decision
    /// about exactly the spell it records (taken before an upgrade, no home scan since) — in
    /// the scope every sighting had before. Any other old time is no proof of this spell: a
    /// scan may have seen the volume attached since and detached again.
    async fn sighting_of(
        &self,
        state: &dyn StateStore,
        finding: &Finding,
        decided: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let scope = sighting_scope(&finding.resource.account, &finding.resource.region);
        match state.sighting(&scope, &finding.resource.id).await? {
            Some(at) => Ok(Some(at)),
            None => Ok(state
                .sighting(LEGACY_SIGHTING_SCOPE, &finding.resource.id)
                .await?
                .filter(|old| old.timestamp() == decided.timestamp())),
        }
    }

    /// The rule's own condition on fresh data: the volume is still in the unattached spell the
    /// decision was about (not attached again since), and that spell is past the grace period
    /// the policy sets now.
    async fn still_unattached(&self, finding: &Finding) -> std::result::Result<(), Refused> {
        let Some(decided) = spell_start(finding) else {
            return Err(Refused::Obsolete(format!(
                "{} is not an ebs-cleanup finding: nothing to re-evaluate, so no delete",
                finding.id
            )));
        };
        let since = match self.sightings {
            None => decided,
            Some(state) => match self.sighting_of(state, finding, decided).await {
                Err(e) => {
                    return Err(Refused::NotNow(format!(
                        "its unattached record could not be re-read ({e}): not deleted"
                    )))
                }
                Ok(None) => {
                    return Err(Refused::Obsolete(format!(
                        "re-evaluated: no record of it being unattached since {} any more (a scan saw it attached): not deleted",
                        decided.to_rfc3339_opts(SecondsFormat::Secs, true)
                    )))
                }
                Ok(Some(current)) if current.timestamp() > decided.timestamp() => {
                    return Err(Refused::Obsolete(format!(
                        "re-evaluated: attached again since detection (this detach was first seen {}, the decision was about the one seen {})",
                        current.to_rfc3339_opts(SecondsFormat::Secs, true),
                        decided.to_rfc3339_opts(SecondsFormat::Secs, true)
                    )))
                }
                Ok(Some(current)) => current,
            },
        };
        let days = (self.now - since).num_days();
        let grace = i64::from(self.policy.ebs_cleanup.grace_days);
        if days < grace {
            return Err(Refused::Obsolete(format!(
                "re-evaluated: unattached for {days} day(s), the grace period is now {grace} day(s)"
            )));
        }
        Ok(())
    }

    /// The newest snapshot this action took of `volume` in its current unattached spell (which
    /// began at `since`), started at or after `from`, whose state `wanted` accepts: (id, state).
    /// Without a known spell there is none.
    async fn spell_snapshot(
        &self,
        volume: &str,
        since: Option<DateTime<Utc>>,
        from: DateTime<Utc>,
        wanted: fn(&str) -> bool,
    ) -> Result<Option<(String, String)>> {
        let Some(since) = since else { return Ok(None) };
        let from = from.max(since);
        let found = self
            .ec2
            .snapshots_tagged(SIGHTING_TAG, &sighting(volume, since))
            .await?;
        Ok(found
            .into_iter()
            // Whole seconds: AWS reports start times to the second.
            .find(|(_, state, started)| wanted(state) && started.is_some_and(|t| t.timestamp() >= from.timestamp()))
            .map(|(id, state, _)| (id, state)))
    }

    /// Takes the snapshot, at most one however the answers fare: CreateSnapshot has no client
    /// token. A throttled attempt proves nothing was started and is tried again; after any other
    /// failure AWS may have started the snapshot, so the spell's tag is looked up (a snapshot
    /// started since `asked`), and when the snapshot is not (yet) visible the delete is deferred
    /// (`None`): the next run waits for it if it is still being taken.
    async fn take_snapshot(
        &self,
        volume: &str,
        spec: &VolumeSpec,
        since: Option<DateTime<Utc>>,
        asked: DateTime<Utc>,
    ) -> Result<Option<String>> {
        const ATTEMPTS: u32 = 4;
        let description = format!("FinOps Autopilot: before deleting {volume}");
        let tags = restore_tags(spec, since.map(|t| sighting(volume, t)).as_deref());
        let mut attempt = 1;
        loop {
            let err = match self.ec2.create_snapshot(volume, &description, &tags).await {
                Ok(id) => return Ok(Some(id)),
                Err(e) => e,
            };
            if !err.is_retryable() || since.is_none() {
                return Err(err);
            }
            // EC2 reads are eventually consistent: wait before looking, 1, 2, then 4 s.
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            if let Some((id, _)) = self.spell_snapshot(volume, since, asked, |s| s != "error").await? {
                tracing::warn!(volume, snapshot = %id, error = %err, "CreateSnapshot failed, but the snapshot was taken");
                return Ok(Some(id));
            }
            if !nothing_started(&err) {
                tracing::warn!(volume, error = %err, "CreateSnapshot went unanswered and its snapshot is not visible yet; deferred");
                return Ok(None);
            }
            if attempt >= ATTEMPTS {
                return Err(err);
            }
            tracing::warn!(volume, attempt, error = %err, "CreateSnapshot throttled; trying again");
            attempt += 1;
        }
    }

    /// Waits until the snapshot completes or the wait ends; returns its last state.
    async fn wait_for(&self, volume: &str, snapshot: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + remediation::deadline::wait_budget(self.wait, self.policy);
        loop {
            let state = self
                .ec2
                .snapshots_tagged(SOURCE_VOLUME_TAG, volume)
                .await?
                .into_iter()
                .find(|(id, _, _)| id == snapshot)
                .map(|(_, state, _)| state)
                .unwrap_or_else(|| "missing".into());
            if state != "pending" || tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[async_trait]
impl Remediation for SnapshotAndDelete<'_> {
    fn declaration(&self) -> &'static ActionDeclaration {
        &DECLARATION
    }

    async fn recheck(&self, findings: &[&Finding]) -> Result<HashMap<String, Recheck>> {
        let ids: Vec<String> = findings.iter().map(|f| f.resource.id.clone()).collect();
        let current: HashMap<String, _> = self
            .ec2
            .describe_volumes(&ids)
            .await?
            .into_iter()
            .map(|v| (v.id.clone(), v))
            .collect();
        let mut out = HashMap::with_capacity(findings.len());
        for f in findings {
            let verdict = match current.get(&f.resource.id) {
                None => Err(Refused::Obsolete("volume no longer exists".to_string())),
                Some(v) => match skip_reason(v, self.policy) {
                    Some(reason) => Err(Refused::Obsolete(format!("re-check: {reason}"))),
                    None => self.still_unattached(f).await.map(|()| {
                        serde_json::json!({"state": v.state, "spec": VolumeSpec::of(v), "re_evaluated_at": self.now})
                    }),
                },
            };
            out.insert(f.id.clone(), verdict);
        }
        Ok(out)
    }

    fn rollback_for(&self, finding: &Finding, pre_state: &serde_json::Value) -> Rollback {
        if let Some(no_way_back) = self.irreversible(finding) {
            return match no_way_back.accepted {
                true => Rollback::Irreversible {
                    reason: no_way_back.reason,
                },
                false => Rollback::Nothing {
                    reason: no_way_back.reason,
                },
            };
        }
        match spec_from(pre_state) {
            Some(spec) => Rollback::RecreateVolume {
                sighting: spell_start(finding).map(|since| sighting(&spec.source_volume_id, since)),
                spec,
            },
            // Without a spec there is nothing to restore from; execute refuses the same pre-state.
            None => Rollback::Nothing {
                reason: format!("no pre-state captured for {}", finding.resource.id),
            },
        }
    }

    fn irreversible(&self, _finding: &Finding) -> Option<Irreversible> {
        let p = &self.policy.ebs_cleanup;
        (!p.snapshot_before_delete).then(|| Irreversible {
            reason: match p.allow_irreversible_delete {
                true => "no snapshot is taken (ebs_cleanup.snapshot_before_delete: false): the deleted volume cannot be brought back".into(),
                false => "no snapshot is taken (ebs_cleanup.snapshot_before_delete: false) and irreversible deletes are not accepted (ebs_cleanup.allow_irreversible_delete: false)".into(),
            },
            accepted: p.allow_irreversible_delete,
        })
    }

    async fn execute(&self, finding: &Finding, pre_state: &serde_json::Value) -> Result<Executed> {
        let volume = &finding.resource.id;
        let spec = spec_from(pre_state).ok_or_else(|| precondition(volume, "no volume spec in the pre-state"))?;
        let mut detail = String::new();
        if let Some(Irreversible {
            accepted: false,
            reason,
        }) = self.irreversible(finding)
        {
            return Err(precondition(volume, format!("not deleted: {reason}")));
        }
        if self.policy.ebs_cleanup.snapshot_before_delete {
            let since = spell_start(finding);
            // One still being taken by an earlier run is waited for, not doubled.
            if let Some((earlier, _)) = self
                .spell_snapshot(volume, since, DateTime::<Utc>::MIN_UTC, |s| s == "pending")
                .await?
            {
                let state = self.wait_for(volume, &earlier).await?;
                if state == "pending" {
                    return Ok(Executed::Deferred(format!(
                        "snapshot {earlier} (taken earlier) still pending: the volume is deleted on a later run, after a fresh snapshot"
                    )));
                }
                detail.push_str(&format!("earlier snapshot {earlier} {state}; "));
            }
            // The snapshot the delete stands on is taken in this invocation, every time: between
            // two scans the volume may have been attached, written and detached, and an earlier
            // snapshot would lose that data (it only makes this one incremental).
            let asked = Utc::now();
            let snapshot = match self.take_snapshot(volume, &spec, since, asked).await? {
                Some(id) => {
                    detail.push_str(&format!("snapshot {id} taken; "));
                    id
                }
                None => {
                    return Ok(Executed::Deferred(
                        "CreateSnapshot went unanswered: the next run waits for its snapshot if it is being taken, then takes a fresh one; volume kept"
                            .into(),
                    ))
                }
            };
            let state = self.wait_for(volume, &snapshot).await?;
            match state.as_str() {
                "completed" => detail.push_str("completed; "),
                "pending" => {
                    return Ok(Executed::Deferred(format!(
                        "{detail}still pending: the volume is deleted on a later run, after a fresh snapshot"
                    )))
                }
                other => {
                    return Err(precondition(
                        volume,
                        format!("{detail}snapshot is {other}; volume kept"),
                    ))
                }
            }
        }
        // Re-check right before the irreversible step: the snapshot wait may have been long.
        let now = self.ec2.describe_volumes(std::slice::from_ref(volume)).await?;
        match now.first() {
            None => return Err(precondition(volume, format!("{detail}volume vanished before delete"))),
            Some(v) => {
                if let Some(reason) = skip_reason(v, self.policy) {
                    return Err(precondition(volume, format!("{detail}not deleted: {reason}")));
                }
            }
        }
        // The emergency stop and the volume's snoozes, read again right before the irreversible
        // step (a snapshot wait may have lasted minutes since the flow read them); both fail
        // closed.
        if let Some(state) = self.sightings {
            if let Some(why) = remediation::state::guards::stopped(state).await {
                return Ok(Executed::Deferred(format!(
                    "{detail}{why}: the volume is not deleted now (its snapshot is kept)"
                )));
            }
            if let Some(why) = remediation::state::guards::snoozed(state, &finding.resource, self.now).await {
                return Ok(Executed::Deferred(format!(
                    "{detail}{why}: the volume is not deleted (its snapshot is kept)"
                )));
            }
        }
        // What counts is the volume: an answer lost after the delete makes the SDK's retry fail
        // with InvalidVolume.NotFound, and the volume is gone all the same.
        let deleted = self.ec2.delete_volume(volume).await;
        let gone = |v: &Vec<finops_core::model::EbsVolume>| {
            matches!(
                v.first().map(|v| v.state.as_str()),
                None | Some("deleting") | Some("deleted")
            )
        };
        // A read right after the delete may still show the volume available: read again, backing
        // off, before concluding anything.
        let settled = remediation::act::settle(|| self.ec2.describe_volumes(std::slice::from_ref(volume)), gone).await;
        let seen = settled.seen(|v| {
            format!(
                "reads still showed it {}",
                v.first().map(|v| v.state.as_str()).unwrap_or("gone")
            )
        });
        match (deleted, settled.shown) {
            (Ok(()), true) => Ok(Executed::Done(format!("{detail}volume deleted"))),
            (Ok(()), false) => Ok(Executed::Unverified(format!(
                "{detail}volume deleted: EC2 accepted DeleteVolume, though after {} s {seen} (AWS's reads trail its writes); the hourly sweep confirms it",
                remediation::act::settle_seconds()
            ))),
            (Err(e), true) => {
                tracing::warn!(volume, error = %e, "DeleteVolume failed, but the volume is gone");
                Ok(Executed::Done(format!(
                    "{detail}volume deleted ({e}, but the volume is gone)"
                )))
            }
            (Err(e), false) => Err(e),
        }
    }
}

/// Whether a failed call is a throttle, which EC2 sends before doing anything.
fn nothing_started(e: &Error) -> bool {
    matches!(e, Error::Aws { code, .. } if matches!(code.as_str(), "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "RequestThrottled"))
}

/// Tag on a volume a rollback recreated: the snapshot it was made from.
pub const RESTORED_FROM_TAG: &str = "finops:restored-from";

/// The volume restored from `snapshot`: the one an earlier attempt made (its answer lost, or the
/// rollback clicked twice), else a new one. Each failed attempt is followed by a look for the
/// volume it may have made before the next.
async fn restore_once(ec2: &dyn VolumeApi, spec: &VolumeSpec, snapshot: &str) -> Result<String> {
    const ATTEMPTS: u32 = 4;
    let made_earlier = || async {
        Ok::<_, Error>(
            ec2.volumes_tagged(RESTORED_FROM_TAG, snapshot)
                .await?
                .into_iter()
                .find(|v| matches!(v.state.as_str(), "creating" | "available" | "in-use"))
                .map(|v| v.id),
        )
    };
    if let Some(id) = made_earlier().await? {
        return Ok(id);
    }
    let mut tagged = spec.clone();
    tagged.tags.insert(RESTORED_FROM_TAG.into(), snapshot.to_string());
    let mut attempt = 1;
    loop {
        let err = match ec2.create_volume(&tagged, snapshot).await {
            Ok(id) => return Ok(id),
            Err(e) => e,
        };
        if !err.is_retryable() || attempt >= ATTEMPTS {
            return Err(err);
        }
        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        if let Some(id) = made_earlier().await? {
            tracing::warn!(snapshot, volume = %id, error = %err, "CreateVolume failed, but the volume was made");
            return Ok(id);
        }
        attempt += 1;
    }
}

/// Rollback of a delete: a new volume from the completed snapshot of the spell that was deleted
/// (records without a spell: the newest completed snapshot of the source volume).
pub async fn recreate(
    ec2: &dyn VolumeApi,
    spec: &VolumeSpec,
    sighting: Option<&str>,
) -> Result<remediation::act::Undone> {
    let snapshots = match sighting {
        Some(s) => ec2.snapshots_tagged(SIGHTING_TAG, s).await?,
        None => ec2.snapshots_tagged(SOURCE_VOLUME_TAG, &spec.source_volume_id).await?,
    };
    let (snapshot, _, _) = snapshots
        .into_iter()
        .find(|(_, state, _)| state == "completed")
        .ok_or_else(|| {
            precondition(
                &spec.source_volume_id,
                "no completed snapshot of the volume to restore from",
            )
        })?;
    let id = restore_once(ec2, spec, &snapshot).await?;
    let created = ec2.describe_volumes(std::slice::from_ref(&id)).await?;
    match created.first() {
        Some(v) if v.availability_zone == spec.availability_zone && v.volume_type == spec.volume_type => {
            Ok(remediation::act::Undone {
                detail: format!(
                    "volume {id} recreated from {snapshot} in {} ({}, {} GiB)",
                    v.availability_zone, v.volume_type, v.size_gib
                ),
                restored: Some(id.clone()),
            })
        }
        Some(v) => Err(precondition(
            &id,
            format!("recreated volume differs: {} {}", v.availability_zone, v.volume_type),
        )),
        None => Err(precondition(&id, "CreateVolume returned but the volume is not there")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebs_cleanup::detect::{EbsCleanupEvidence, SinceBasis};
    use finops_core::model::{EbsVolume, Evidence, Resource, ResourceKind, Severity};
    use std::sync::Mutex;

    /// An in-memory fake of the port (not of EC2): one volume, snapshots whose state the test sets.
    #[derive(Default)]
    struct FakeVolumes {
        snapshot_state: Mutex<String>,
        /// (id, tags, start time)
        snapshots_taken: Mutex<Vec<(String, Tags, DateTime<Utc>)>>,
        deleted: Mutex<Vec<String>>,
    }

    impl FakeVolumes {
        fn taken(&self) -> usize {
            self.snapshots_taken.lock().unwrap().len()
        }
    }

    fn vol() -> EbsVolume {
        EbsVolume {
            id: "vol-1".into(),
            volume_type: "gp2".into(),
            size_gib: 10,
            iops: None,
            throughput: None,
            availability_zone: "us-east-1a".into(),
            state: "available".into(),
            attached_to: vec![],
            encrypted: false,
            kms_key_id: None,
            snapshot_id: None,
            create_time: None,
            account: "1".into(),
            region: "us-east-1".into(),
            tags: Default::default(),
        }
    }

    #[async_trait]
    impl VolumeApi for FakeVolumes {
        async fn available_volumes(&self) -> Result<Vec<EbsVolume>> {
            Ok(vec![vol()])
        }
        async fn all_volumes(&self) -> Result<Vec<EbsVolume>> {
            Ok(vec![vol()])
        }
        async fn describe_volumes(&self, _ids: &[String]) -> Result<Vec<EbsVolume>> {
            let deleted = !self.deleted.lock().unwrap().is_empty();
            Ok(if deleted { vec![] } else { vec![vol()] })
        }
        async fn create_snapshot(&self, _v: &str, _d: &str, tags: &Tags) -> Result<String> {
            let mut taken = self.snapshots_taken.lock().unwrap();
            let id = format!("snap-{}", taken.len() + 1);
            taken.push((id.clone(), tags.clone(), Utc::now()));
            Ok(id)
        }
        async fn snapshots_tagged(&self, k: &str, v: &str) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>> {
            let state = self.snapshot_state.lock().unwrap().clone();
            let mut found: Vec<_> = self
                .snapshots_taken
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, tags, _)| tags.get(k).map(String::as_str) == Some(v))
                .map(|(id, _, at)| (id.clone(), state.clone(), Some(*at)))
                .collect();
            found.reverse();
            Ok(found)
        }
        async fn delete_volume(&self, id: &str) -> Result<()> {
            self.deleted.lock().unwrap().push(id.to_string());
            Ok(())
        }
        async fn create_volume(&self, _spec: &VolumeSpec, _snapshot: &str) -> Result<String> {
            Ok("vol-2".into())
        }
        async fn volumes_tagged(&self, _k: &str, _v: &str) -> Result<Vec<EbsVolume>> {
            Ok(vec![])
        }
    }

    /// A finding about vol-1, unattached since `since`.
    fn finding_since(since: DateTime<Utc>) -> Finding {
        Finding {
            id: "ebs-cleanup:1:us-east-1:vol-1".into(),
            rule: "ebs-cleanup".into(),
            resource: Resource {
                kind: ResourceKind::EbsVolume,
                id: "vol-1".into(),
                account: "1".into(),
                region: "us-east-1".into(),
                tags: Default::default(),
            },
            evidence: Evidence::of(&EbsCleanupEvidence {
                volume_type: "gp2".into(),
                size_gib: 10,
                iops: None,
                throughput: None,
                availability_zone: "us-east-1a".into(),
                state: "available".into(),
                unattached_since: since,
                since_basis: SinceBasis::FirstSeen,
                unattached_days: 8,
                grace_days: 7,
                volume_usd_per_month: Some(1.0),
                snapshot_usd_per_month: 0.5,
                snapshot_before_delete: true,
                price_source: None,
            }),
            action: ActionKind::SnapshotAndDelete,
            estimated_monthly_savings_usd: Some(0.5),
            severity: Severity::Low,
            detected_at: Utc::now(),
        }
    }

    fn finding() -> Finding {
        finding_since(Utc::now() - chrono::Duration::days(8))
    }

    fn action<'a>(fake: &'a FakeVolumes, policy: &'a Policy) -> SnapshotAndDelete<'a> {
        SnapshotAndDelete {
            ec2: fake,
            policy,
            wait: Duration::from_millis(30),
            poll: Duration::from_millis(10),
            sightings: None,
            now: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_snapshot_of_an_earlier_spell_is_not_reused_and_a_fresh_one_is_taken() {
        let fake = FakeVolumes::default();
        *fake.snapshot_state.lock().unwrap() = "pending".into();
        let policy = Policy::default();
        let action = action(&fake, &policy);
        // The earlier spell: snapshotted, then (say) attached again and written to.
        let earlier = finding_since(Utc::now() - chrono::Duration::days(40));
        let pre = action
            .recheck(&[&earlier])
            .await
            .unwrap()
            .remove(&earlier.id)
            .unwrap()
            .unwrap();
        assert!(matches!(
            action.execute(&earlier, &pre).await.unwrap(),
            Executed::Deferred(_)
        ));
        assert_eq!(fake.taken(), 1);

        // Detached again and flagged again: the old snapshot holds old data.
        *fake.snapshot_state.lock().unwrap() = "completed".into();
        let now = finding();
        let done = action.execute(&now, &pre).await.unwrap();
        assert_eq!(fake.taken(), 2, "a fresh snapshot was taken");
        assert!(
            matches!(&done, Executed::Done(d) if d.contains("snap-2 taken") && !d.contains("snap-1")),
            "{done:?}"
        );
        // The rollback recorded for it restores that spell's snapshot.
        let Rollback::RecreateVolume { sighting: Some(s), .. } = action.rollback_for(&now, &pre) else {
            panic!("no spell in the rollback")
        };
        let spell = fake.snapshots_taken.lock().unwrap()[1].1[SIGHTING_TAG].clone();
        assert_eq!(s, spell);
    }

    #[tokio::test]
    async fn without_a_snapshot_there_is_no_rollback_and_the_delete_is_refused_unless_accepted() {
        let fake = FakeVolumes::default();
        let mut policy = Policy::default();
        policy.ebs_cleanup.snapshot_before_delete = false;
        let f = finding();
        let refused = action(&fake, &policy);
        let pre = refused.recheck(&[&f]).await.unwrap().remove(&f.id).unwrap().unwrap();
        assert!(matches!(refused.rollback_for(&f, &pre), Rollback::Nothing { .. }));
        let err = refused.execute(&f, &pre).await.unwrap_err().to_string();
        assert!(err.contains("allow_irreversible_delete"), "{err}");
        assert!(fake.deleted.lock().unwrap().is_empty());

        policy.ebs_cleanup.allow_irreversible_delete = true;
        let accepted = action(&fake, &policy);
        let Rollback::Irreversible { reason } = accepted.rollback_for(&f, &pre) else {
            panic!("an accepted irreversible delete must be recorded as such")
        };
        assert!(reason.contains("cannot be brought back"), "{reason}");
        assert!(accepted.irreversible(&f).is_some_and(|i| i.accepted));
    }

    /// Issue 26, problem 3: a delete deferred because its snapshot was pending was finished by a
    /// later run with that old snapshot, though the volume may have been attached, written and
    /// detached between two daily scans (the same spell to the scans). The run that deletes now
    /// always takes a fresh snapshot; the earlier one is waited for, never stood on.
    #[tokio::test]
    async fn a_deferred_delete_is_finished_on_a_fresh_snapshot_taken_by_the_run_that_deletes() {
        let fake = FakeVolumes::default();
        *fake.snapshot_state.lock().unwrap() = "pending".into();
        let policy = Policy::default();
        let action = action(&fake, &policy);
        let f = finding();
        let pre = action.recheck(&[&f]).await.unwrap().remove(&f.id).unwrap().unwrap();

        let first = action.execute(&f, &pre).await.unwrap();
        assert!(
            matches!(&first, Executed::Deferred(d) if d.contains("still pending")),
            "{first:?}"
        );
        assert!(
            fake.deleted.lock().unwrap().is_empty(),
            "deleted before the snapshot completed"
        );

        // The next run while it is still pending: waited for, no second snapshot piled on.
        let second = action.execute(&f, &pre).await.unwrap();
        assert!(matches!(second, Executed::Deferred(_)));
        assert_eq!(fake.taken(), 1);
        assert!(fake.deleted.lock().unwrap().is_empty());

        // It completed; meanwhile the volume was (unseen) attached, written and detached.
        *fake.snapshot_state.lock().unwrap() = "completed".into();
        let third = action.execute(&f, &pre).await.unwrap();
        assert_eq!(fake.taken(), 2, "a fresh snapshot is taken by the run that deletes");
        assert!(
            matches!(&third, Executed::Done(d) if d.contains("snap-2 taken") && d.contains("volume deleted")),
            "{third:?}"
        );
        assert_eq!(*fake.deleted.lock().unwrap(), vec!["vol-1".to_string()]);
    }

    #[tokio::test]
    async fn a_failed_snapshot_keeps_the_volume() {
        let fake = FakeVolumes::default();
        *fake.snapshot_state.lock().unwrap() = "error".into();
        let policy = Policy::default();
        let action = SnapshotAndDelete {
            ec2: &fake,
            policy: &policy,
            wait: Duration::from_millis(10),
            poll: Duration::from_millis(5),
            sightings: None,
            now: Utc::now(),
        };
        let f = finding();
        let pre = action.recheck(&[&f]).await.unwrap().remove(&f.id).unwrap().unwrap();
        let err = action.execute(&f, &pre).await.unwrap_err().to_string();
        assert!(err.contains("error") && err.contains("volume kept"), "{err}");
        assert!(fake.deleted.lock().unwrap().is_empty());
    }

    #[test]
    fn the_snapshot_tags_carry_the_whole_restore_recipe() {
        let spec = VolumeSpec {
            source_volume_id: "vol-1".into(),
            availability_zone: "us-east-1b".into(),
            volume_type: "gp3".into(),
            size_gib: 200,
            iops: Some(4000),
            throughput: Some(250),
            encrypted: true,
            kms_key_id: None,
            tags: [("Owner".to_string(), "ana".to_string())].into(),
        };
        let tags = restore_tags(&spec, Some("vol-1@2026-11-18T06:00:00Z"));
        assert_eq!(tags[SOURCE_VOLUME_TAG], "vol-1");
        assert_eq!(tags["finops:source-az"], "us-east-1b");
        assert_eq!(tags["finops:source-type"], "gp3");
        assert_eq!(tags["finops:source-size-gib"], "200");
        assert_eq!(tags["finops:source-iops"], "4000");
        assert_eq!(tags["finops:source-throughput"], "250");
        assert_eq!(tags["finops:source-encrypted"], "true");
        assert_eq!(tags[SIGHTING_TAG], "vol-1@2026-11-18T06:00:00Z");
        assert_eq!(tags["Owner"], "ana");
    }
}
