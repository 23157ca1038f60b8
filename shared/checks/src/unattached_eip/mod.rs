//! Elastic IP addresses associated with nothing (Trusted Advisor's "Unassociated Elastic IP
//! Addresses"): reported with what each costs, never released (a release cannot be undone).
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the inventory port
//! (`inventory`: DescribeAddresses) and the rule run (`run`: inventory → guards → detect → the
//! flow's dry run) with the `aws` feature.

pub mod detect;
#[cfg(feature = "aws")]
pub mod inventory;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{UnattachedEipEvidence, RULE};
