//! Unattached EBS volumes past their grace period: snapshotted, then deleted (their way back:
//! recreated from the snapshot).
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

#[cfg(feature = "aws")]
pub mod act;
pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{EbsCleanupEvidence, RULE};
