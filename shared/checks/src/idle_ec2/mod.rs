//! Idle EC2 instances: running ones whose CPU and network stayed under the policy's limits on
//! enough days of the lookback; stopped (their way back: started again).
//!
//! The pure detector and its evidence (`detect`) build without the AWS SDK; the rule run
//! (`run`: inventory → guards → detect → the flow) and its actions (`act`) with the `aws` feature.

#[cfg(feature = "aws")]
pub mod act;
pub mod detect;
#[cfg(feature = "aws")]
pub mod run;

pub use detect::{IdleEc2Evidence, RULE};
