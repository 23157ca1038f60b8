//! Each rule's run: inventory → detect → the shared flow, returning the response contract.

pub mod cost_alert;
pub mod ebs_cleanup;
pub mod idle_ec2;
pub mod rightsizing;
pub mod s3_public;
pub mod tag_compliance;
