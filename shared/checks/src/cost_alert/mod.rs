//! Spend against the month's threshold: an alert at each level crossed, once per crossing.
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{CostAlertEvidence, RULE};
