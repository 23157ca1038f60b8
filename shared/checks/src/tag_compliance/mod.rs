//! Resources missing the required tags: Config evaluations, the compliance figures, and (as the
//! policy says) a stop of a non-compliant instance past its grace.
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{TagComplianceEvidence, RULE};
