//! Detectors: pure functions of data already fetched, a policy and `now`. No I/O, no clock.

pub mod cost_alert;
pub mod ebs_cleanup;
pub mod idle_ec2;
pub mod rightsizing;
pub mod s3_public;
pub mod tag_compliance;
