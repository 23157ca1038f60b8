//! FinOps Autopilot's checks. A check is one folder: its pure detector and evidence (`detect`),
//! its rule run (`run`: inventory → guards → detect → plan → act → record → notify, through the
//! shared flow) and its actions with their rollbacks (`act`). [`CATALOG`] lists them, one line
//! each: what the layers below ask of any finding (why, cannot be undone, a table's columns), the
//! rules a snooze closes, the rules a report adds up.
//!
//! Without the `aws` feature only the detectors build, on the pure core alone: no AWS SDK, no
//! async runtime (`cargo test -p finops-checks --no-default-features`). With it (the default), the
//! runs, the actions, the approval executor and the permissions each function needs, on top of
//! `remediation`.

pub mod cost_alert;
pub mod ebs_cleanup;
pub mod idle_ec2;
pub mod rightsizing;
pub mod s3_public;
pub mod tag_compliance;

#[cfg(feature = "aws")]
pub mod executor;
#[cfg(feature = "aws")]
pub mod permissions;

use finops_core::evidence::{Catalog, Evidenced};

/// Every check, one line each.
pub static CATALOG: Catalog = Catalog::new(&[
    &Evidenced::<cost_alert::CostAlertEvidence>::CHECK,
    &Evidenced::<ebs_cleanup::EbsCleanupEvidence>::CHECK,
    &Evidenced::<idle_ec2::IdleEc2Evidence>::CHECK,
    &Evidenced::<rightsizing::RightsizingEvidence>::CHECK,
    &Evidenced::<s3_public::S3PublicEvidence>::CHECK,
    &Evidenced::<tag_compliance::TagComplianceEvidence>::CHECK,
]);
