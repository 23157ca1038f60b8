//! Put S3 Block Public Access on a bucket. Before it, the prior block settings (or their absence),
//! the ACL and the policy are captured; the rollback restores the prior block settings exactly
//! (deleting the configuration when there was none). A bucket with website hosting on is blocked
//! only on a person's approval.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::s3_public::detect::{
    access_points_matter, disagreements, live_access_points, policies_restricted, public_reasons, rests_on_disputed,
    skip_reason, AccessPointExposure, BlockSettings, BucketExposure,
};
use finops_core::model::{ActionKind, Finding};
use finops_core::policy::Policy;
use remediation::act::{precondition, ActionDeclaration, Executed, Recheck, Refused, Remediation, Rollback};
use remediation::aws::s3::BucketApi;
use remediation::error::Result;

/// The declaration of the block-public-access action (IAM names: `GetPublicAccessBlock` and
/// `DeletePublicAccessBlock` are authorised as `s3:GetBucketPublicAccessBlock` and
/// `s3:PutBucketPublicAccessBlock`; the access points' reads are S3 Control's).
pub static DECLARATION: ActionDeclaration = ActionDeclaration {
    action: ActionKind::BlockPublicAccess,
    permissions: &[
        "s3:GetBucketAcl",
        "s3:GetBucketPolicy",
        "s3:GetBucketPolicyStatus",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketTagging",
        "s3:GetBucketWebsite",
        "s3:GetAccountPublicAccessBlock",
        "s3:ListAccessPoints",
        "s3:GetAccessPoint",
        "s3:GetAccessPointPolicy",
        "s3:GetAccessPointPolicyStatus",
        "s3:PutBucketPublicAccessBlock",
    ],
    acts_from_states: &["public"],
    rollback_permissions: &["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
};

/// Blocks public access through a [`BucketApi`].
pub struct BlockPublicAccess<'a> {
    pub s3: &'a dyn BucketApi,
    pub policy: &'a Policy,
    /// A person approved this action: only then is a bucket with website hosting on blocked.
    pub approved: bool,
}

/// A bucket's exposure as the rule judges it: ACL, policy and Block Public Access for every
/// bucket; AWS's own evaluation of a policy where there is one; the access points where the policy
/// delegates to them; the tags (exemption) and website hosting only when that makes it public or
/// AWS's evaluation disagrees.
pub async fn assess(
    s3: &dyn BucketApi,
    bucket: &str,
    region: &str,
    account_block: Option<BlockSettings>,
) -> Result<BucketExposure> {
    let mut exposure = s3.exposure(bucket, region).await?;
    // The cross-checks only add: one that cannot be read leaves the bucket judged by its own ACL
    // and policy, as before they existed, and says so (`unread`) for the run's notes. A policy
    // RestrictPublicBuckets neutralises opens nothing whoever reads it: AWS is not asked.
    if exposure.policy.is_some() && !policies_restricted(&exposure, account_block) {
        match s3.bucket_policy_status(bucket, region).await {
            Ok(status) => exposure.aws_policy_public = status,
            Err(e) => exposure.unread.push(format!(
                "AWS's own evaluation of its policy (GetBucketPolicyStatus): {e}"
            )),
        }
    }
    if access_points_matter(&exposure, account_block) {
        match s3.access_points(bucket, region).await {
            Ok(points) => exposure.access_points = points,
            Err(e) => exposure.unread.push(format!("its access points: {e}")),
        }
    }
    if !public_reasons(&exposure, account_block).is_empty() || !disagreements(&exposure, account_block).is_empty() {
        let (tags, website) = futures::join!(s3.bucket_tags(bucket, region), s3.website(bucket, region));
        exposure.tags = tags?;
        exposure.website = website?;
    }
    Ok(exposure)
}

#[async_trait]
impl Remediation for BlockPublicAccess<'_> {
    fn declaration(&self) -> &'static ActionDeclaration {
        &DECLARATION
    }

    async fn recheck(&self, findings: &[&Finding]) -> Result<HashMap<String, Recheck>> {
        let account_block = self.s3.account_block().await?;
        let mut out = HashMap::with_capacity(findings.len());
        for f in findings {
            let verdict = match assess(self.s3, &f.resource.id, &f.resource.region, account_block).await {
                Err(e) => Err(Refused::NotNow(format!("re-check failed: {e}"))),
                Ok(b) => match skip_reason(&b, self.policy) {
                    Some(reason) => Err(Refused::Obsolete(format!("re-check: {reason}"))),
                    None if public_reasons(&b, account_block).is_empty()
                        && disagreements(&b, account_block).is_empty() =>
                    {
                        Err(Refused::Obsolete("re-evaluated: no longer public".to_string()))
                    }
                    None if b.website && !self.approved => Err(Refused::NotNow(
                        "re-check: website hosting on: blocked only on a person's approval, not automatically"
                            .to_string(),
                    )),
                    None if !self.approved
                        && rests_on_disputed(&public_reasons(&b, account_block), &disagreements(&b, account_block)) =>
                    {
                        let differ: Vec<String> = disagreements(&b, account_block)
                            .iter()
                            .map(ToString::to_string)
                            .collect();
                        Err(Refused::NotNow(format!(
                            "re-check: {}: blocked only on a person's approval, not automatically",
                            differ.join("; ")
                        )))
                    }
                    None => Ok(serde_json::json!({
                        "region": b.region,
                        "block": b.block,
                        "grants": b.grants,
                        "policy": b.policy,
                        "aws_policy_public": b.aws_policy_public,
                        // Only the access points that open the bucket: each may carry a 20 KB policy.
                        "access_points": live_access_points(&b, account_block).collect::<Vec<_>>(),
                        "unread": b.unread,
                        "website": b.website,
                        "account_block": account_block,
                    })),
                },
            };
            out.insert(f.id.clone(), verdict);
        }
        Ok(out)
    }

    fn rollback_for(&self, finding: &Finding, pre_state: &serde_json::Value) -> Rollback {
        let prior: Option<BlockSettings> = pre_state
            .get("block")
            .and_then(|b| serde_json::from_value(b.clone()).ok());
        Rollback::RestorePublicAccessBlock {
            bucket: finding.resource.id.clone(),
            region: finding.resource.region.clone(),
            prior,
            left: Some(self.policy.s3_public.block.into()),
        }
    }

    async fn execute(&self, finding: &Finding, pre_state: &serde_json::Value) -> Result<Executed> {
        let (bucket, region) = (&finding.resource.id, &finding.resource.region);
        let wanted: BlockSettings = self.policy.s3_public.block.into();
        self.s3.put_block(bucket, region, wanted).await?;
        // S3 said the put succeeded (AWS's own answer): the verification reads back off while
        // S3's configuration reads still show the old settings, and a read that fails is read
        // again; neither is ever taken for a failed put.
        let settled = remediation::act::settle(|| self.s3.exposure(bucket, region), |b| b.block == Some(wanted)).await;
        let after = match settled.reading {
            Some(after) if settled.shown => after,
            _ => {
                let seen =
                    settled.seen(|b| format!("reads still showed {}", crate::s3_public::detect::shown_block(b.block)));
                return Ok(Executed::Unverified(format!(
                    "Block Public Access put ({wanted}): S3 accepted it, though after {} s {seen} (AWS's reads trail its writes); the hourly sweep confirms it",
                    remediation::act::settle_seconds()
                )));
            }
        };
        let account_block = reread(|| self.s3.account_block()).await?;
        // The access points are as the re-check read them a moment ago: the put changed the bucket's
        // settings, not theirs.
        let mut after = after;
        after.access_points = pre_state
            .get("access_points")
            .and_then(|a| serde_json::from_value::<Vec<AccessPointExposure>>(a.clone()).ok())
            .unwrap_or_default();
        let remaining = public_reasons(&after, account_block);
        Ok(Executed::Done(if remaining.is_empty() {
            format!("Block Public Access put ({wanted}); the bucket is no longer public")
        } else {
            let through: Vec<String> = remaining.iter().map(ToString::to_string).collect();
            format!(
                "Block Public Access put ({wanted}); still public through {}: widen s3_public.block",
                through.join("; ")
            )
        }))
    }
}

/// `read`, tried again up to twice more (after 0.5 s, then 1 s) when it fails: for the reads that
/// verify a put AWS already accepted.
async fn reread<T, F, Fut>(read: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = std::time::Duration::from_millis(500);
    let mut last = read().await;
    for _ in 0..2 {
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
        last = read().await;
    }
    last
}

/// Rollback: the bucket's Block Public Access as it was before the action.
/// What the action left (`left`) is compared with the bucket's settings now first: settings someone
/// changed since are not overwritten; the rollback says what changed and does nothing.
pub async fn restore(
    s3: &dyn BucketApi,
    bucket: &str,
    region: &str,
    prior: Option<BlockSettings>,
    left: Option<BlockSettings>,
) -> Result<String> {
    if let Some(left) = left {
        let current = s3.exposure(bucket, region).await?.block;
        if current != Some(left) && current != prior {
            return Err(precondition(
                bucket,
                format!(
                    "not rolled back: Block Public Access is now {}, not the {} this action left, so someone changed it since; putting back {} would overwrite that. Change it by hand if {} is still wanted",
                    crate::s3_public::detect::shown_block(current),
                    left,
                    crate::s3_public::detect::shown_block(prior),
                    crate::s3_public::detect::shown_block(prior)
                ),
            ));
        }
    }
    match prior {
        Some(settings) => s3.put_block(bucket, region, settings).await?,
        None => s3.delete_block(bucket, region).await?,
    }
    let settled = remediation::act::settle(|| s3.exposure(bucket, region), |b| b.block == prior).await;
    if let (None, Some(e)) = (&settled.reading, settled.error) {
        return Err(e);
    }
    let now = settled
        .reading
        .ok_or_else(|| precondition(bucket, "the restore could not be read back"))?;
    if now.block == prior {
        Ok(format!(
            "Block Public Access of {bucket} restored to {}",
            crate::s3_public::detect::shown_block(prior)
        ))
    } else {
        Err(precondition(
            bucket,
            format!(
                "restore returned but the bucket shows {}",
                crate::s3_public::detect::shown_block(now.block)
            ),
        ))
    }
}
