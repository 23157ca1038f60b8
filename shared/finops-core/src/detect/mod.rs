//! Detectors: pure functions of data already fetched, a policy and `now`. No I/O, no clock.

pub mod cost_alert;
pub mod ebs_cleanup;
pub mod idle_ec2;
pub mod rightsizing;
pub mod s3_public;
pub mod tag_compliance;

use crate::evidence::{Catalog, Evidenced};

/// Every check, by rule: what recording and notifying ask of a finding's evidence, and the rules
/// a snooze closes the open approvals of on its resource.
pub static CATALOG: Catalog = Catalog::new(&[
    &Evidenced::<cost_alert::CostAlertEvidence>::CHECK,
    &Evidenced::<ebs_cleanup::EbsCleanupEvidence>::CHECK,
    &Evidenced::<idle_ec2::IdleEc2Evidence>::CHECK,
    &Evidenced::<rightsizing::RightsizingEvidence>::CHECK,
    &Evidenced::<s3_public::S3PublicEvidence>::CHECK,
    &Evidenced::<tag_compliance::TagComplianceEvidence>::CHECK,
]);
