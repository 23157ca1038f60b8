//! Oversized EC2 instances: a smaller type from the hourly peaks, explained by rules or Amazon
//! Bedrock; recommendations only.
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

#[cfg(feature = "aws")]
pub mod bedrock;
pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{RightsizingEvidence, RULE};
