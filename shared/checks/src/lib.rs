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

#[cfg(test)]
mod tests {
    use super::*;
    use finops_core::model::ActionKind;

    #[test]
    fn the_catalog_knows_every_rule_and_which_of_them_act_on_a_resource_by_themselves() {
        let rules: Vec<&str> = CATALOG.rules().collect();
        assert_eq!(
            rules,
            [
                "cost-alert",
                "ebs-cleanup",
                "idle-ec2",
                "rightsizing",
                "s3-public",
                "tag-compliance"
            ]
        );
        // What an unsealed action record may be, and nothing else: the approvals run the way
        // back of no other (rule, action).
        let mut takes = Vec::new();
        for rule in CATALOG.rules() {
            for action in [
                ActionKind::Stop,
                ActionKind::SnapshotAndDelete,
                ActionKind::BlockPublicAccess,
                ActionKind::Notify,
            ] {
                if CATALOG.takes(rule, action) {
                    takes.push((rule, action));
                }
            }
        }
        assert_eq!(
            takes,
            [
                ("ebs-cleanup", ActionKind::SnapshotAndDelete),
                ("idle-ec2", ActionKind::Stop),
                ("s3-public", ActionKind::BlockPublicAccess),
                ("tag-compliance", ActionKind::Stop),
            ]
        );
        assert!(!CATALOG.takes("idle-nat", ActionKind::Stop));
    }
}
