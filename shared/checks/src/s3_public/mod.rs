//! Effectively public S3 buckets: Block Public Access put on (its way back: the settings before).
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

#[cfg(feature = "aws")]
pub mod act;
pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{S3PublicEvidence, RULE};
